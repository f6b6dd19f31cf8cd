/**
 * Named interleaving points and bug injections ("mutants", spec/checking.md). The protocol code
 * calls `jitterPoint(POINT_X)` at each named point; by default that is one branch on a
 * thread-local flag. With jitter on, a point spins or yields for a short random time to widen
 * race windows. Mutants are bits of one word, read once per operation by the code they perturb.
 * The same points will later be the scheduling points of a controlled scheduler.
 *
 * Configuration is per thread: the main thread sets it from the run options, and each device
 * worker sets it from its task payload before running.
 */

// ---- mutants (bit flags) ----
export const MUTANT_SKIP_READ_RETRY = 1 << 0;
export const MUTANT_RETRY_OUTSIDE_LOCK = 1 << 1;
export const MUTANT_NO_SET_SEQ = 1 << 2;
export const MUTANT_INVALIDATE_NO_LOCK = 1 << 3;
export const MUTANT_INVALIDATE_NOOP = 1 << 4;
export const MUTANT_BEGIN_NO_WAIT = 1 << 5;
export const MUTANT_FREE_BEFORE_START = 1 << 6;
export const MUTANT_SEQ_NOT_ODD = 1 << 7;
export const MUTANT_NO_ACCESS_DRAIN = 1 << 8;
export const MUTANT_REMOVE_EARLY_RETURN = 1 << 9;

export const MUTANTS: Record<string, number> = {
  'skip-read-retry': MUTANT_SKIP_READ_RETRY,
  'retry-outside-lock': MUTANT_RETRY_OUTSIDE_LOCK,
  'no-set-seq': MUTANT_NO_SET_SEQ,
  'invalidate-no-lock': MUTANT_INVALIDATE_NO_LOCK,
  'invalidate-noop': MUTANT_INVALIDATE_NOOP,
  'begin-no-wait': MUTANT_BEGIN_NO_WAIT,
  'free-before-start': MUTANT_FREE_BEFORE_START,
  'seq-not-odd': MUTANT_SEQ_NOT_ODD,
  'no-access-drain': MUTANT_NO_ACCESS_DRAIN,
  'remove-early-return': MUTANT_REMOVE_EARLY_RETURN,
};

// ---- named interleaving points ----
export const POINT_AFTER_READ_BEGIN = 0; // driver: after mmuIntervalReadBegin, before the walk
export const POINT_WALK_STEP = 1; // hmm: between two steps of the page walk
export const POINT_BEFORE_USER_LOCK = 2; // driver: after hmm_range_fault, before the update lock
export const POINT_BEFORE_PROGRAM = 3; // driver: after read_retry, before programming the mirror
export const POINT_IN_INVALIDATE = 4; // driver's invalidate op, under its lock
export const POINT_AFTER_START = 5; // mm: after invalidate_range_start, before the PTE change
export const POINT_BEFORE_END = 6; // mm: after the PTE change, before invalidate_range_end
export const POINT_BEFORE_FREE = 7; // mm: after end, before frames are freed
export const POINT_DEVICE_ACCESS = 8; // driver: inside a device access through the mirror
export const POINT_FAULT = 9; // mm: inside handleMmFault, before the PTE is installed
export const POINT_COUNT = 10;
export const POINT_NAMES = [
  'after-read-begin',
  'walk-step',
  'before-user-lock',
  'before-program',
  'in-invalidate',
  'after-start',
  'before-end',
  'before-free',
  'device-access',
  'fault',
] as const;

/** This thread's fault-injection state. */
export const injection = {
  /** OR of MUTANT_* bits */
  mutants: 0,
  /** widen race windows at the named points */
  jitter: false,
  /** xorshift32 state for jitter delays (seeded per thread) */
  rng: 0x9e3779b9 | 0,
  /** how often each point was passed with jitter on (thread-local; merged by the sim) */
  passes: new Float64Array(POINT_COUNT),
};

const sleepWord = new Int32Array(new SharedArrayBuffer(4));

export function configureInjection(mutants: number, jitter: boolean, seed: number): void {
  injection.mutants = mutants | 0;
  injection.jitter = jitter;
  injection.rng = seed | 0 || 1;
  injection.passes.fill(0);
}

export function mutantOn(bit: number): boolean {
  return (injection.mutants & bit) !== 0;
}

let pointHook: ((point: number) => void) | null = null;

/**
 * Install (or clear with null) this thread's hook on every named point (mm and driver points
 * alike): a deterministic test runs another thread's work synchronously there. Returns the
 * previous hook. The driver's own hook points are in driver/sched.ts.
 */
export function setJitterPointHook(h: ((point: number) => void) | null): ((point: number) => void) | null {
  const prev = pointHook;
  pointHook = h;
  return prev;
}

/**
 * A named interleaving point. The test hook (if any) runs first. With jitter on: half the time nothing, otherwise a short spin
 * (up to ~2 us) or, rarely, a sleep of up to ~100 us, so another thread can run into the window.
 */
export function jitterPoint(point: number): void {
  if (pointHook !== null) pointHook(point);
  if (!injection.jitter) return;
  injection.passes[point]!++;
  let x = injection.rng;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  injection.rng = x;
  const r = (x >>> 0) % 1024;
  if (r < 512) return;
  if (r < 1000) {
    const n = (r - 512) * 8;
    let s = 0;
    for (let i = 0; i < n; i++) s += i;
    if (s < 0) injection.rng ^= s;
    return;
  }
  Atomics.wait(sleepWord, 0, 0, 0.1);
}
