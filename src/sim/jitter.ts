/**
 * The simulation's addition to --jitter: at the driver's protocol points (seen through the point
 * hook of src/driver/sched.ts), now and then *yield* for 50-500 us, long enough for the other
 * threads on a 2-core machine to run an invalidation into the window. checker/points.ts's own
 * jitter spins for a few microseconds or sleeps 100 us rarely; windows that need a whole
 * invalidation to fit in (retry-outside-lock: between the early retry check and the lock) need
 * these longer yields to be hit within a bounded run. Off unless jitter is on; its own PRNG, so
 * the workload's choices stay those of the seed.
 */
import {
  POINT_AFTER_READ_BEGIN,
  POINT_BEFORE_PROGRAM,
  POINT_BEFORE_USER_LOCK,
  POINT_IN_INVALIDATE,
} from '../checker/points.js';
import { Prng } from './prng.js';

const sleepWord = new Int32Array(new SharedArrayBuffer(4));
let rng: Prng | null = null;
/** one chance in this many to yield at a window point */
const ONE_IN = 8;

/** Turn the yields on (seeded) or off for this thread. */
export function configureSimJitter(on: boolean, seed: number): void {
  rng = on ? new Prng(seed ^ 0x5bd1e995) : null;
}

const WINDOW_POINTS =
  (1 << POINT_AFTER_READ_BEGIN) |
  (1 << POINT_BEFORE_USER_LOCK) |
  (1 << POINT_BEFORE_PROGRAM) |
  (1 << POINT_IN_INVALIDATE);

export function simJitter(p: number): void {
  if (rng === null || p >= 31 || (WINDOW_POINTS & (1 << p)) === 0) return;
  if (rng.below(ONE_IN) !== 0) return;
  Atomics.wait(sleepWord, 0, 0, 0.05 + rng.nextFloat() * 0.45);
}
