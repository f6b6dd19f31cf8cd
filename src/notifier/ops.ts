/**
 * Interval-notifier ops and their thread-local registry.
 *
 * The kernel stores a pointer to `struct mmu_interval_notifier_ops` in each subscription and any
 * CPU calls through it. Here the invalidate op must run in whichever thread invalidates (the main
 * thread for mutations, a device worker when its own fault breaks COW or it migrates pages), and
 * a JS closure cannot live in shared memory. So a subscription's slot stores a reference
 * `(kind, opsId)`; every thread registers, per kind, a resolver that turns an opsId into an ops
 * object over the state that thread has attached, and resolves each subscription once (cached per
 * slot and insert generation by the per-mm core).
 *
 * An ops object may also be passed directly (single-threaded use): it is registered under an
 * automatic id of kind MMU_INTERVAL_OPS_KIND_LOCAL, resolvable only in the inserting thread. An
 * invalidation of such a subscription from another thread throws.
 */
import type { MmuNotifierRange } from '../mm/mmu-notifier.js';
import type { MmuIntervalNotifier } from './interval-notifier.js';

/** struct mmu_interval_notifier_ops (v5.10 has only `invalidate`). */
export interface MmuIntervalNotifierOps {
  /**
   * Called with the whole invalidation range (not clipped to the subscription) and the odd
   * `curSeq` every overlapping subscription of this invalidation receives. The op takes its user
   * lock (only tries it if the range is not blockable, returning false on failure), calls
   * `mmuIntervalSetSeq(sub, curSeq)`, tears its mappings down, unlocks and returns true.
   */
  invalidate(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): boolean;
}

/** A kind: a positive integer below 2^31, or a string (hashed to one, the same in every thread). */
export type MmuIntervalOpsKind = number | string;

/** An ops reference that any thread which registered `kind` can resolve. */
export interface MmuIntervalOpsRef {
  kind: MmuIntervalOpsKind;
  /** any Int32, meaningful to the kind's resolver (e.g. a mirror index) */
  opsId: number;
}

export type MmuIntervalOpsResolver = (opsId: number) => MmuIntervalNotifierOps;

/** The kind stored for ops objects passed directly to insert. */
export const MMU_INTERVAL_OPS_KIND_LOCAL = 0;

/** This thread's registry. `epoch` changes when a resolver goes away, so cores drop caches. */
export const opsRegistry = {
  epoch: 0,
  kinds: new Map<number, MmuIntervalOpsResolver>(),
  kindNames: new Map<number, string>(),
  local: new Map<number, { ops: MmuIntervalNotifierOps; refs: number }>(),
  localIds: new WeakMap<MmuIntervalNotifierOps, number>(),
  nextLocalId: 1,
};

/** FNV-1a, folded to a positive 31-bit integer: the same number in every thread. */
function hashKind(name: string): number {
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h & 0x7fffffff || 1;
}

/** The integer a kind is stored as in a slot. */
export function mmuIntervalOpsKindId(kind: MmuIntervalOpsKind): number {
  if (typeof kind === 'string') return hashKind(kind);
  if (!Number.isInteger(kind) || kind <= 0 || kind > 0x7fffffff) {
    throw new RangeError(
      `interval-notifier ops kind must be a positive 31-bit integer or a string, got ${kind}`,
    );
  }
  return kind;
}

/**
 * Register, in this thread, how to resolve subscriptions of `kind`. Every thread that may
 * invalidate (or that inserts and wants its own invalidations to reach the op) registers it.
 * Registering the same resolver again is a no-op; a different one for a kind already taken throws.
 */
export function registerMmuIntervalOpsKind(kind: MmuIntervalOpsKind, resolve: MmuIntervalOpsResolver): void {
  const id = mmuIntervalOpsKindId(kind);
  const name = String(kind);
  const old = opsRegistry.kinds.get(id);
  if (old !== undefined) {
    if (old === resolve) return;
    const oldName = opsRegistry.kindNames.get(id);
    throw new Error(
      oldName !== name
        ? `interval-notifier ops kind '${name}' hashes like '${oldName}': choose another name`
        : `interval-notifier ops kind '${name}' is already registered in this thread`,
    );
  }
  opsRegistry.kinds.set(id, resolve);
  opsRegistry.kindNames.set(id, name);
}

/** Forget a kind in this thread (tests, teardown); cached resolutions are dropped. */
export function unregisterMmuIntervalOpsKind(kind: MmuIntervalOpsKind): void {
  const id = mmuIntervalOpsKindId(kind);
  if (opsRegistry.kinds.delete(id)) {
    opsRegistry.kindNames.delete(id);
    opsRegistry.epoch++;
  }
}

/** Register an ops object passed directly; returns its local id (the same object, the same id). */
export function localOpsAcquire(ops: MmuIntervalNotifierOps): number {
  let id = opsRegistry.localIds.get(ops);
  if (id === undefined) {
    id = opsRegistry.nextLocalId++;
    opsRegistry.localIds.set(ops, id);
  }
  const e = opsRegistry.local.get(id);
  if (e) e.refs++;
  else opsRegistry.local.set(id, { ops, refs: 1 });
  return id;
}

/** Drop one subscription's use of a local ops id (called by remove in the inserting thread). */
export function localOpsRelease(id: number): void {
  const e = opsRegistry.local.get(id);
  if (e && --e.refs <= 0) opsRegistry.local.delete(id);
}

/** True if `x` is an ops object rather than a reference. */
export function isMmuIntervalNotifierOps(
  x: MmuIntervalNotifierOps | MmuIntervalOpsRef,
): x is MmuIntervalNotifierOps {
  return typeof (x as Partial<MmuIntervalNotifierOps>).invalidate === 'function';
}
