/**
 * Scenarios: what a run does, as a JSON file validated with valibot. Every field has a default,
 * so `{}` is a valid scenario (the built-in default); a bad file gets one line naming the field
 * path and the bad value (`ScenarioError`, exit code 2 in the CLI). Command-line options override
 * the file (`applyOverrides`).
 *
 * Units: sizes in pages of 4 KiB unless the name says MiB; times in milliseconds; rates per second;
 * fractions in [0, 1]; weights are relative (any non-negative numbers).
 */
import { readFileSync } from 'node:fs';
import * as v from 'valibot';
import { MUTANTS } from '../checker/points.js';

export const SCENARIO_VERSION = 1;

/** The mutating thread's vocabulary (spec/mm-events.md), by the names scenarios use. */
export const MUTATION_KINDS = [
  'munmap',
  'mprotect',
  'madvise-dontneed',
  'madvise-free',
  'madvise-hugepage',
  'numa-hinting',
  'page-migration',
  'swap-out',
  'fork',
  'writeback',
  'clear-refs',
  'thp-split',
  'thp-collapse',
  'memory-failure',
  'exit',
  'oom-reap',
  'cpu-access',
] as const;
export type MutationKind = (typeof MUTATION_KINDS)[number];

export const ACCESS_PATTERNS = ['sequential', 'uniform', 'hotset', 'zipf'] as const;
export type AccessPattern = (typeof ACCESS_PATTERNS)[number];

export const REGION_KINDS = ['anon', 'shmem', 'file'] as const;

/** What a device's program does after an operation fails with -EFAULT (workload.efaultFallback). */
export const EFAULT_FALLBACKS = ['none', 'cpu'] as const;
export type EfaultFallback = (typeof EFAULT_FALLBACKS)[number];

/** The mirroring protocols a device may speak (spec/legacy-v5.4.md). */
export const PROTOCOLS = ['v5.10', 'v5.4'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

const DeviceSpecSchema = v.strictObject({
  /** the protocol of the built-in reference device (or the one a user's driver speaks) */
  protocol: v.optional(v.picklist(PROTOCOLS)),
  /** a user's driver module (a path, relative to the working directory) */
  driver: v.optional(v.string()),
});

const count = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
const fraction = v.pipe(v.number(), v.minValue(0), v.maxValue(1));
const nonNegative = v.pipe(v.number(), v.minValue(0), v.finite());

const PagesRange = v.strictObject({
  min: count(1),
  max: count(1),
});

const Region = v.strictObject({
  /** pages of 4 KiB; each region starts on a 2 MiB boundary */
  pages: count(1),
  kind: v.optional(v.picklist(REGION_KINDS), 'anon'),
  prot: v.optional(v.picklist(['rw', 'r', 'none']), 'rw'),
  /** madvise(HUGEPAGE) at set-up */
  hugepage: v.optional(v.boolean(), false),
});

const defaultWeights: Record<MutationKind, number> = {
  munmap: 2,
  mprotect: 3,
  'madvise-dontneed': 4,
  'madvise-free': 2,
  'madvise-hugepage': 1,
  'numa-hinting': 3,
  'page-migration': 3,
  'swap-out': 3,
  fork: 1,
  writeback: 2,
  'clear-refs': 2,
  'thp-split': 1,
  'thp-collapse': 1,
  'memory-failure': 0.2,
  exit: 1,
  'oom-reap': 1,
  'cpu-access': 12,
};

const Weights = v.strictObject(
  Object.fromEntries(MUTATION_KINDS.map((k) => [k, v.optional(nonNegative)])) as {
    [K in MutationKind]: v.OptionalSchema<typeof nonNegative, undefined>;
  },
);

const ScenarioSchema = v.strictObject({
  version: v.optional(v.literal(SCENARIO_VERSION), SCENARIO_VERSION),
  name: v.optional(v.string(), 'default'),
  description: v.optional(v.string(), ''),
  /** run seed (uint32); omitted: a fresh one, printed and stored */
  seed: v.optional(count(0, 0xffffffff)),
  /** device workers (one open file each on the process's mm) */
  devices: v.optional(count(1, 16), 2),
  /** the protocol of every device not named in `perDevice` */
  protocol: v.optional(v.picklist(PROTOCOLS), 'v5.10'),
  /** a user's driver module for every device not named in `perDevice` (null: the reference device) */
  driver: v.optional(v.nullable(v.string()), null),
  /** per device (index i is device i): its protocol and/or driver; devices past the end use the defaults */
  perDevice: v.optional(v.array(DeviceSpecSchema), []),
  /**
   * v5.10 devices only: one interval subscription per this many pages (0: one over the whole
   * address space, as the test driver does)
   */
  subscriptionPages: v.optional(count(0), 0),
  /** options of the v5.4 (legacy) devices; an error when no device speaks v5.4 */
  legacy: v.optional(
    v.strictObject({
      /** write every page of the rw regions at set-up, so the v5.4 walk starts without zero pages */
      pretouch: v.optional(v.boolean(), false),
    }),
  ),
  /** stop after this many mutator operations (takes precedence over durationMs) */
  ops: v.optional(count(1)),
  /** stop after this long (ms) */
  durationMs: v.optional(count(1), 5000),
  memory: v.optional(
    v.strictObject({
      addressSpaceMiB: v.optional(count(2, 4096), 64),
      frames: v.optional(count(2048, 1 << 24), 32768),
      wordsPerPage: v.optional(count(1, 1024), 16),
      thp: v.optional(v.picklist(['madvise', 'always', 'never']), 'madvise'),
      /** when frames are freed: after invalidate_range_end, or right after the PTE clear */
      free: v.optional(v.picklist(['after-end', 'after-clear']), 'after-end'),
    }),
    {},
  ),
  regions: v.optional(v.pipe(v.array(Region), v.minLength(1)), [
    { pages: 512, kind: 'anon', prot: 'rw', hugepage: false },
    { pages: 1024, kind: 'anon', prot: 'rw', hugepage: true },
    { pages: 128, kind: 'shmem', prot: 'rw', hugepage: false },
    { pages: 128, kind: 'file', prot: 'rw', hugepage: false },
  ]),
  workload: v.optional(
    v.strictObject({
      pattern: v.optional(v.picklist(ACCESS_PATTERNS), 'uniform'),
      /** pages per range-fault call */
      rangePages: v.optional(PagesRange, { min: 1, max: 64 }),
      /** fraction of ranges faulted for write (and then written through the mirror) */
      writeFraction: v.optional(fraction, 0.5),
      /** fraction of operations that are snapshots (no fault, no mirror change) */
      snapshotFraction: v.optional(fraction, 0.1),
      /** fraction of operations that migrate the range to device memory */
      migrateFraction: v.optional(fraction, 0.05),
      /** hotset: the hot set's share of the pages, and the chance an access goes there */
      hotSetFraction: v.optional(fraction, 0.1),
      hotProbability: v.optional(fraction, 0.9),
      zipfExponent: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(10)), 1.1),
      /** device operations per second per device; 0 = as fast as it can */
      opsPerSecond: v.optional(nonNegative, 0),
      /** the regions (indices) devices work in; omitted: all */
      regions: v.optional(v.pipe(v.array(count(0)), v.minLength(1))),
      /**
       * after a read, write or migrate operation fails with -EFAULT: 'none' (go on to the next
       * operation), or 'cpu' (the device's program reads each page of the range from the CPU first,
       * as the mutator's cpu-access does: a page in another device's private memory migrates back
       * to system memory through migrate_to_ram; the operation is not retried)
       */
      efaultFallback: v.optional(v.picklist(EFAULT_FALLBACKS), 'none'),
    }),
    {},
  ),
  mutator: v.optional(
    v.strictObject({
      /** mutations per second; 0 = as fast as it can */
      opsPerSecond: v.optional(nonNegative, 2000),
      weights: v.optional(Weights, {}),
      /** pages each mutation covers */
      rangePages: v.optional(PagesRange, { min: 1, max: 32 }),
      /** CPU accesses: fraction that are writes */
      cpuWriteFraction: v.optional(fraction, 0.5),
      /** chance that a mutation's range starts where a device is working right now */
      followDevices: v.optional(fraction, 0.5),
      /** the regions (indices) mutations hit; omitted: all */
      regions: v.optional(v.pipe(v.array(count(0)), v.minLength(1))),
    }),
    {},
  ),
  /** kernel switch (spec/hmm-range-fault.md) */
  kernel: v.optional(v.picklist(['5.10.109', '5.10.0']), '5.10.109'),
  mutant: v.optional(v.nullable(v.string()), null),
  /**
   * device accesses in a per-device access section the invalidate op drains, instead of under the
   * update lock (spec/driver.md); the mutant no-access-drain turns it on by itself
   */
  accessSection: v.optional(v.boolean(), false),
  jitter: v.optional(v.boolean(), false),
  /**
   * the oracles (quiescent audits, end-of-run checks, per-access generation checks and write
   * counting); false only to measure what checking costs
   */
  oracles: v.optional(v.boolean(), true),
  /** a quiescent mirror-coherence audit every this many mutator ops (0: only at the end) */
  auditEveryOps: v.optional(count(0), 250),
  /** stop the run at the first violation */
  stopOnViolation: v.optional(v.boolean(), false),
  /** a wait longer than this is reported as a hang (ms) */
  watchdogMs: v.optional(count(100), 10000),
  /**
   * TEST ONLY: make one device fail on purpose, to test how a run ends (exit code 3, results
   * written): throw after `crashAfterOps` operations, or take its file's update lock after
   * `hangAfterOps` operations and hold it forever.
   */
  testFaults: v.optional(
    v.strictObject({
      device: v.optional(count(0, 15), 0),
      crashAfterOps: v.optional(count(1)),
      hangAfterOps: v.optional(count(1)),
    }),
  ),
});

type Parsed = v.InferOutput<typeof ScenarioSchema>;

/** A fully defaulted scenario. */
export interface Scenario extends Omit<Parsed, 'mutator'> {
  mutator: Omit<Parsed['mutator'], 'weights'> & { weights: Record<MutationKind, number> };
}

/** A bad scenario or option: one line, naming the field. The CLI prints it and exits 2. */
export class ScenarioError extends Error {
  override name = 'ScenarioError';
}

function show(x: unknown): string {
  try {
    const s = JSON.stringify(x);
    return s === undefined ? String(x) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(x);
  }
}

/** Validate a parsed JSON value; throws ScenarioError with one line. */
export function parseScenario(input: unknown, source = 'scenario'): Scenario {
  const r = v.safeParse(ScenarioSchema, input, { abortPipeEarly: true });
  if (!r.success) {
    const issue = r.issues[0];
    const path = v.getDotPath(issue) ?? '(top level)';
    const msg =
      issue.type === 'strict_object' && issue.expected === 'never'
        ? 'unknown field'
        : issue.message.replace(/^Invalid /, 'invalid ');
    throw new ScenarioError(`${source}: field "${path}": ${msg} (got ${show(issue.input)})`);
  }
  const p = r.output;
  const s: Scenario = {
    ...p,
    mutator: { ...p.mutator, weights: { ...defaultWeights } },
  };
  for (const k of MUTATION_KINDS) {
    const w = p.mutator.weights[k];
    if (w !== undefined) s.mutator.weights[k] = w;
  }
  checkScenario(s, source);
  return withImpliedOptions(s);
}

/** Cross-field checks valibot's per-field schema cannot express. */
export function checkScenario(s: Scenario, source = 'scenario'): void {
  const bad = (path: string, msg: string): never => {
    throw new ScenarioError(`${source}: field "${path}": ${msg}`);
  };
  if (s.mutant !== null && MUTANTS[s.mutant] === undefined) {
    bad('mutant', `unknown mutant ${show(s.mutant)} (known: ${Object.keys(MUTANTS).join(', ')})`);
  }
  const spacePages = s.memory.addressSpaceMiB * 256;
  if (s.memory.addressSpaceMiB % 2 !== 0) bad('memory.addressSpaceMiB', 'must be a multiple of 2 MiB');
  // Regions are laid out from 2 MiB upward (page 0's PMD is left unmapped, like NULL's page),
  // each starting on a 2 MiB boundary.
  let end = 512;
  for (let i = 0; i < s.regions.length; i++) {
    const start = Math.ceil(end / 512) * 512;
    end = start + s.regions[i]!.pages;
    if (end > spacePages) {
      bad(
        `regions.${i}.pages`,
        `the regions end at page ${end}, outside the address space (${spacePages} pages)`,
      );
    }
  }
  const total = s.regions.reduce((a, r) => a + r.pages, 0);
  if (s.memory.frames < total + 2048) {
    bad(
      'memory.frames',
      `${s.memory.frames} frames cannot back ${total} pages of regions (need >= ${total + 2048})`,
    );
  }
  if (s.memory.frames % 512 !== 0) bad('memory.frames', 'must be a multiple of 512');
  for (const [path, r] of [
    ['workload.rangePages', s.workload.rangePages],
    ['mutator.rangePages', s.mutator.rangePages],
  ] as const) {
    if (r.min > r.max) bad(`${path}.min`, `min ${r.min} is above max ${r.max}`);
    const largest = Math.max(...s.regions.map((x) => x.pages));
    if (r.max > largest)
      bad(`${path}.max`, `${r.max} pages is larger than every region (largest ${largest})`);
  }
  const wsum = MUTATION_KINDS.reduce((a, k) => a + s.mutator.weights[k], 0);
  if (!(wsum > 0)) bad('mutator.weights', 'at least one weight must be positive');
  if (s.testFaults !== undefined && s.testFaults.device >= s.devices) {
    bad('testFaults.device', `device ${s.testFaults.device} does not exist (${s.devices} devices)`);
  }
  if (s.workload.snapshotFraction + s.workload.migrateFraction > 1) {
    bad('workload.snapshotFraction', 'snapshotFraction + migrateFraction must be at most 1');
  }
  for (const [path, list] of [
    ['workload.regions', s.workload.regions],
    ['mutator.regions', s.mutator.regions],
  ] as const) {
    for (const [i, r] of (list ?? []).entries()) {
      if (r >= s.regions.length)
        bad(`${path}.${i}`, `region ${r} does not exist (${s.regions.length} regions)`);
    }
  }
  if (s.perDevice.length > s.devices) {
    bad('perDevice', `${s.perDevice.length} entries for ${s.devices} devices`);
  }
  const specs = deviceSpecs(s);
  if (s.legacy !== undefined && !specs.some((d) => d.protocol === 'v5.4')) {
    bad('legacy', 'legacy (v5.4) options given, but no device speaks v5.4');
  }
}

/** What device i runs: its protocol and its driver module (null: the built-in reference device). */
export interface DeviceSpec {
  protocol: Protocol;
  driver: string | null;
}

export function deviceSpecs(s: Scenario): DeviceSpec[] {
  return Array.from({ length: s.devices }, (_, i) => {
    const p = s.perDevice[i];
    return { protocol: p?.protocol ?? s.protocol, driver: p?.driver ?? s.driver };
  });
}

/** The built-in default: 2 devices, every mutation kind, 5 seconds. */
export function defaultScenario(): Scenario {
  return parseScenario({}, 'default scenario');
}

export function loadScenarioFile(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ScenarioError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ScenarioError(`${path}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  return parseScenario(json, path);
}

/** Command-line overrides (already parsed and range-checked by the CLI). */
export interface ScenarioOverrides {
  devices?: number | undefined;
  durationMs?: number | undefined;
  ops?: number | undefined;
  seed?: number | undefined;
  mutant?: string | undefined;
  jitter?: boolean | undefined;
  protocol?: Protocol | undefined;
  driver?: string | undefined;
  /** legacy (v5.4) flag: pre-touch the rw regions */
  pretouch?: boolean | undefined;
}

export function applyOverrides(s: Scenario, o: ScenarioOverrides): Scenario {
  const out: Scenario = { ...s };
  if (o.devices !== undefined) out.devices = o.devices;
  if (o.ops !== undefined) out.ops = o.ops;
  if (o.durationMs !== undefined) {
    out.durationMs = o.durationMs;
    if (o.ops === undefined) delete out.ops;
  }
  if (o.seed !== undefined) out.seed = o.seed;
  if (o.mutant !== undefined) out.mutant = o.mutant;
  if (o.jitter !== undefined) out.jitter = o.jitter;
  if (o.protocol !== undefined) {
    out.protocol = o.protocol;
    out.perDevice = out.perDevice.map((d) => ({ ...d, protocol: o.protocol }));
  }
  if (o.driver !== undefined) {
    out.driver = o.driver;
    out.perDevice = out.perDevice.map((d) => ({ ...d, driver: o.driver }));
  }
  if (o.pretouch !== undefined) out.legacy = { ...(out.legacy ?? {}), pretouch: o.pretouch };
  checkScenario(out, 'options');
  return withImpliedOptions(out);
}

/** no-access-drain is a bug of the access-section model only: running it implies that model. */
export function withImpliedOptions(s: Scenario): Scenario {
  if (s.mutant === 'no-access-drain' && !s.accessSection) return { ...s, accessSection: true };
  return s;
}
