/**
 * Which driver each device of a run uses: the built-in v5.10 reference device (`dmirror`), the
 * built-in v5.4 reference device (`legacy-dmirror`), or a user's driver module loaded from a file.
 *
 * A user's module is `unknown` until validated: it must export a `MirrorDriver` (src/driver/types.ts)
 * as its default export or as `driver`. The driver object is checked when loaded, its devices and
 * files when the world is built on the main thread; anything missing is a `DriverError`: one
 * line naming the module and the missing member (the CLI prints it and exits 2).
 *
 * A device's module is named by a string that travels in the world descriptor: `builtin:dmirror`,
 * `builtin:legacy-dmirror`, or a `file:` URL, which each worker imports again (the workers run
 * under tsx, so a `.ts` module loads as it is).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dmirrorDriver } from '../driver/dmirror.js';
import { legacyDmirrorDriver } from '../driver/legacy-dmirror.js';
import type { MirrorDriver } from '../driver/types.js';
import type { Protocol, Scenario } from './scenario.js';
import { deviceSpecs } from './scenario.js';

export const BUILTIN_DMIRROR = 'builtin:dmirror';
export const BUILTIN_LEGACY_DMIRROR = 'builtin:legacy-dmirror';

/** A driver module that cannot be used: one line. */
export class DriverError extends Error {
  override name = 'DriverError';
}

/** Device i of a run: protocol, the module it loads, and how reports name it. */
export interface ResolvedDevice {
  protocol: Protocol;
  module: string;
  /** "dmirror (v5.10 reference)", "legacy-dmirror (v5.4 reference)", or the path as given */
  label: string;
}

/** Resolve a scenario's devices; a user's driver path must exist (else DriverError). */
export function resolveDevices(s: Scenario, cwd = process.cwd()): ResolvedDevice[] {
  return deviceSpecs(s).map((d) => {
    if (d.driver === null) {
      return d.protocol === 'v5.4'
        ? { protocol: d.protocol, module: BUILTIN_LEGACY_DMIRROR, label: 'legacy-dmirror' }
        : { protocol: d.protocol, module: BUILTIN_DMIRROR, label: 'dmirror' };
    }
    const path = resolve(cwd, d.driver);
    if (!existsSync(path)) throw new DriverError(`driver ${d.driver}: no such file`);
    return { protocol: d.protocol, module: pathToFileURL(path).href, label: d.driver };
  });
}

function isObject(x: unknown): x is Record<string, unknown> {
  return (typeof x === 'object' || typeof x === 'function') && x !== null;
}

/** The members of each level a driver must have (types.ts: those not marked optional). */
const REQUIRED = {
  driver: { name: 'string', createDevice: 'function', attachDevice: 'function' },
  device: { id: 'number', owner: 'number', descriptor: 'function', open: 'function', attachFile: 'function' },
  file: {
    id: 'number',
    descriptor: 'function',
    rangeFault: 'function',
    invalidate: 'function',
    read: 'function',
    write: 'function',
    stats: 'function',
    close: 'function',
  },
} as const;

/** Throw a DriverError naming the first required member `x` lacks. */
export function checkMembers(x: unknown, level: keyof typeof REQUIRED, where: string): void {
  if (!isObject(x)) throw new DriverError(`driver ${where}: the ${level} is not an object (got ${typeof x})`);
  for (const [k, t] of Object.entries(REQUIRED[level])) {
    if (typeof x[k] !== t) {
      const what = t === 'function' ? 'op' : `${t} field`;
      throw new DriverError(`driver ${where}: the ${level} lacks required ${what} "${k}"`);
    }
  }
}

/** Validate a loaded module's namespace: its default export or `driver` must be a MirrorDriver. */
export function driverFromModule(ns: unknown, where: string): MirrorDriver {
  if (!isObject(ns)) throw new DriverError(`driver ${where}: not a module`);
  const cand = ns.default !== undefined ? ns.default : ns.driver;
  if (cand === undefined) {
    throw new DriverError(`driver ${where}: exports no driver (need a default export or "driver")`);
  }
  checkMembers(cand, 'driver', where);
  // checked member by member above: the object has the MirrorDriver shape
  return cand as MirrorDriver;
}

function builtin(module: string): MirrorDriver | null {
  if (module === BUILTIN_DMIRROR) return dmirrorDriver;
  if (module === BUILTIN_LEGACY_DMIRROR) return legacyDmirrorDriver;
  return null;
}

const loaded = new Map<string, MirrorDriver>();

/** Load (once per thread) the driver of each module; user modules are imported and validated. */
export async function loadDrivers(
  modules: readonly string[],
  labels?: readonly string[],
): Promise<Map<string, MirrorDriver>> {
  const out = new Map<string, MirrorDriver>();
  for (const [i, m] of modules.entries()) {
    if (out.has(m)) continue;
    const b = builtin(m);
    if (b !== null) {
      out.set(m, b);
      continue;
    }
    const have = loaded.get(m);
    if (have !== undefined) {
      out.set(m, have);
      continue;
    }
    const where = labels?.[i] ?? m;
    let ns: unknown;
    try {
      ns = await import(m);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new DriverError(`driver ${where}: failed to load (${msg.split('\n')[0]})`);
    }
    const d = driverFromModule(ns, where);
    loaded.set(m, d);
    out.set(m, d);
  }
  return out;
}
