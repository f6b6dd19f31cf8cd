/**
 * Per-thread measurements the core does not count itself, taken at the seams:
 * - time inside device invalidate ops, per event, and the part spent waiting for the device's
 *   update lock (from op entry to the op's POINT_IN_INVALIDATE, which the reference device passes
 *   right after taking the lock and setting the seq);
 * - mmap-lock acquisitions that had to wait (MmStruct's lock methods return whether they waited).
 *
 * SEAM: these wrap the methods of DmirrorFile and MmStruct on this thread's prototypes (the
 * objects are thread-local views; the shared state is untouched). If the core grows native
 * counters for these, replace `installInstrumentation` with reads of them.
 */
import { POINT_IN_INVALIDATE } from '../checker/points.js';
import { DmirrorFile } from '../driver/dmirror.js';
import { MmStruct } from '../mm/mm.js';
import { MMU_NOTIFY_EVENT_COUNT, type MmuNotifierRange } from '../mm/mmu-notifier.js';

export const instrumentStats = {
  /** microseconds inside invalidate ops, per MMU_NOTIFY_* event */
  opUs: new Float64Array(MMU_NOTIFY_EVENT_COUNT),
  /** microseconds of that spent before the lock was taken */
  lockWaitUs: new Float64Array(MMU_NOTIFY_EVENT_COUNT),
  opCalls: new Float64Array(MMU_NOTIFY_EVENT_COUNT),
  mmapReadWaits: 0,
  mmapWriteWaits: 0,
};

let installed = false;
/** set while an invalidate op runs on this thread: its entry time, and when it got the lock */
let opStart = -1;
let opLocked = -1;

/** Call from this thread's point hook: notes when an invalidate op got its lock. */
export function instrumentPoint(p: number): void {
  if (p === POINT_IN_INVALIDATE && opStart >= 0 && opLocked < 0) opLocked = performance.now();
}

export function resetInstrumentStats(): void {
  instrumentStats.opUs.fill(0);
  instrumentStats.lockWaitUs.fill(0);
  instrumentStats.opCalls.fill(0);
  instrumentStats.mmapReadWaits = 0;
  instrumentStats.mmapWriteWaits = 0;
}

export function installInstrumentation(): void {
  if (installed) return;
  installed = true;
  type Inv = (this: DmirrorFile, sub: never, range: MmuNotifierRange, cur: number) => boolean;
  const proto = DmirrorFile.prototype as unknown as { invalidateSub: Inv };
  const inv = proto.invalidateSub;
  proto.invalidateSub = function (
    this: DmirrorFile,
    sub: never,
    range: MmuNotifierRange,
    cur: number,
  ): boolean {
    const outerStart = opStart;
    const outerLocked = opLocked;
    const t0 = performance.now();
    opStart = t0;
    opLocked = -1;
    try {
      return inv.call(this, sub, range, cur);
    } finally {
      const t1 = performance.now();
      const e = range.event;
      instrumentStats.opCalls[e]!++;
      instrumentStats.opUs[e]! += (t1 - t0) * 1000;
      if (opLocked >= 0) instrumentStats.lockWaitUs[e]! += (opLocked - t0) * 1000;
      opStart = outerStart;
      opLocked = outerLocked;
    }
  };
  const mp = MmStruct.prototype;
  const rl = mp.mmapReadLock;
  const wl = mp.mmapWriteLock;
  mp.mmapReadLock = function (this: MmStruct): boolean {
    const w = rl.call(this);
    if (w) instrumentStats.mmapReadWaits++;
    return w;
  };
  mp.mmapWriteLock = function (this: MmStruct): boolean {
    const w = wl.call(this);
    if (w) instrumentStats.mmapWriteWaits++;
    return w;
  };
}
