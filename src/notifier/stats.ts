/**
 * Thread-local statistics of the interval-notifier core: plain number fields bumped on the hot
 * paths (no allocation, no shared words). The simulation merges each thread's object at the end.
 */
export interface MmuNotifierStats {
  /** mmuIntervalReadBegin calls */
  readBegins: number;
  /** of which slept because an invalidation of the subscription was open */
  readBeginSleeps: number;
  /** total milliseconds slept in mmuIntervalReadBegin */
  readBeginSleepMs: number;
  /** the last mmuIntervalReadBegin of this thread slept (an out-param for retry statistics) */
  lastReadBeginSlept: boolean;
  /** ... and for how long (ms, 0 if it did not sleep) */
  lastReadBeginSleepMs: number;
  /** invalidateRangeStart calls on the core */
  invalidateStarts: number;
  /** of which hit at least one subscription (made the seq odd) */
  invalidationsHit: number;
  /** invalidate ops called */
  opsCalled: number;
  /** invalidate ops that returned false */
  opsFalse: number;
  /** of those, on a blockable range: a kernel WARN_ON, the loop went on */
  blockableWarnings: number;
  /** non-blockable starts that failed with -EAGAIN */
  eagain: number;
  /** mmuIntervalNotifierRemove calls that had to wait for the final end (case (c)) */
  removeWaits: number;
  /** total milliseconds those waits took */
  removeWaitMs: number;
}

export const mmuNotifierStats: MmuNotifierStats = {
  readBegins: 0,
  readBeginSleeps: 0,
  readBeginSleepMs: 0,
  lastReadBeginSlept: false,
  lastReadBeginSleepMs: 0,
  invalidateStarts: 0,
  invalidationsHit: 0,
  opsCalled: 0,
  opsFalse: 0,
  blockableWarnings: 0,
  eagain: 0,
  removeWaits: 0,
  removeWaitMs: 0,
};

export function resetMmuNotifierStats(): void {
  const s = mmuNotifierStats;
  s.readBegins = 0;
  s.readBeginSleeps = 0;
  s.readBeginSleepMs = 0;
  s.lastReadBeginSlept = false;
  s.lastReadBeginSleepMs = 0;
  s.invalidateStarts = 0;
  s.invalidationsHit = 0;
  s.opsCalled = 0;
  s.opsFalse = 0;
  s.blockableWarnings = 0;
  s.eagain = 0;
  s.removeWaits = 0;
  s.removeWaitMs = 0;
}

/** A copy, for sending to the main thread. */
export function snapshotMmuNotifierStats(): MmuNotifierStats {
  return { ...mmuNotifierStats };
}
