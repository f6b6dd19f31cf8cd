/**
 * The driver's named points and clock, as one thread sees them.
 *
 * `driverPoint(p)` is `jitterPoint(p)` plus an optional thread-local hook: a deterministic test (or,
 * later, a controlled scheduler) can run another thread's work synchronously at a named point and
 * so build an exact interleaving in one thread. With no hook it costs one branch.
 *
 * `driverNow()` is the simulator's clock for HMM_RANGE_DEFAULT_TIMEOUT: wall time when
 * free-running, or a virtual clock a scheduler installs so replays give the same -EBUSY outcomes.
 */
import * as points from '../checker/points.js';

// A module-local copy: an imported binding is reloaded from its module cell at every use (see
// hmm/hmm.ts); this one is on every driver point.
const { jitterPoint } = points;

/** Driver-private hook ids beyond checker/points.ts (never jittered). */
export const HOOK_AFTER_INVALIDATE = 100; // invalidate op: after unlock, before returning true
export const HOOK_AFTER_HMM_RANGE_FAULT = 101; // range-fault routine: hmm_range_fault returned 0

export type PointHook = (point: number) => void;

let hook: PointHook | null = null;
let clock: (() => number) | null = null;

/** Install (or clear with null) this thread's point hook. Returns the previous one. */
export function setPointHook(h: PointHook | null): PointHook | null {
  const prev = hook;
  hook = h;
  return prev;
}

/** Install (or clear with null) this thread's virtual clock (milliseconds). */
export function setDriverClock(c: (() => number) | null): void {
  clock = c;
}

export function driverPoint(p: number): void {
  jitterPoint(p);
  if (hook !== null) hook(p);
}

/** A driver-private hook point: only the hook sees it. */
export function driverHook(p: number): void {
  if (hook !== null) hook(p);
}

export function driverNow(): number {
  return clock === null ? performance.now() : clock();
}
