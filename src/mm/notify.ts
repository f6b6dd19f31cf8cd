/**
 * mmu_notifier_invalidate_range_start / _end as the mm's mutations call them: one place that
 * brackets every PTE change the same way, runs the jitter points that widen the window between
 * the start callbacks and the PTE change (POINT_AFTER_START) and between the change and the end
 * callbacks (POINT_BEFORE_END), and counts invalidations per event for the statistics.
 */
import { jitterPoint, POINT_AFTER_START, POINT_BEFORE_END } from '../checker/points.js';
import type { MmStruct } from './mm.js';
import {
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MMU_NOTIFY_EVENT_COUNT,
  MMU_NOTIFY_RELEASE,
  type MmuNotifierRange,
  mmuNotifierRangeInit,
} from './mmu-notifier.js';

// Module-local copies of imports used once per invalidation (an imported binding is reloaded
// from its module cell, with a TDZ check, at every use; see src/hmm/hmm.ts).
const jitter = jitterPoint;
const AFTER_START = POINT_AFTER_START;
const BEFORE_END = POINT_BEFORE_END;
const BLOCKABLE = MMU_NOTIFIER_RANGE_BLOCKABLE;

/**
 * This thread's invalidation counters: starts issued per event (index MMU_NOTIFY_*), starts that
 * failed with -EAGAIN, and bytes covered. A sim reads and merges them.
 */
export const invalidationStats = {
  starts: new Float64Array(MMU_NOTIFY_EVENT_COUNT),
  failed: new Float64Array(MMU_NOTIFY_EVENT_COUNT),
  bytes: new Float64Array(MMU_NOTIFY_EVENT_COUNT),
};

export function resetInvalidationStats(): void {
  invalidationStats.starts.fill(0);
  invalidationStats.failed.fill(0);
  invalidationStats.bytes.fill(0);
}

/**
 * mmu_notifier_invalidate_range_start (or _nonblock when the range is not blockable): 0, or
 * -EAGAIN from a non-blockable start, in which case the caller must not call the end.
 */
export function invalidateRangeStart(mm: MmStruct, range: MmuNotifierRange): number {
  const e = range.event;
  const st = invalidationStats;
  st.starts[e]!++;
  st.bytes[e]! += range.end - range.start;
  const ret = mm.notifiers.invalidateRangeStart(range);
  if (ret !== 0) {
    st.failed[e]!++;
    return ret;
  }
  jitter(AFTER_START);
  return 0;
}

/** mmu_notifier_invalidate_range_end */
export function invalidateRangeEnd(mm: MmStruct, range: MmuNotifierRange): void {
  jitter(BEFORE_END);
  mm.notifiers.invalidateRangeEnd(range);
}

/** mmu_notifier_release (exit_mmap): every subscriber is told the mm goes away. */
export function mmuNotifierRelease(mm: MmStruct): void {
  const range = mmuNotifierRangeInit(mm.id, MMU_NOTIFY_RELEASE, 0, mm.size);
  invalidationStats.starts[MMU_NOTIFY_RELEASE]!++;
  invalidationStats.bytes[MMU_NOTIFY_RELEASE]! += mm.size;
  mm.notifiers.release(range);
}

/** A range for this mm (mmu_notifier_range_init). */
export function rangeInit(
  mm: MmStruct,
  event: number,
  start: number,
  end: number,
  blockable = true,
  owner = -1,
  ownerFile = -1,
): MmuNotifierRange {
  // mmuNotifierRangeInit's object, built here (same fields, same order: one hidden class)
  return {
    mmId: mm.id,
    start,
    end,
    event,
    flags: blockable ? BLOCKABLE : 0,
    owner,
    ownerFile,
  };
}
