/**
 * The mmu_notifier chain (include/linux/mmu_notifier.h): the one hook both mirror APIs hang off.
 * The mm issues each invalidation once through this chain; the v5.10 interval-notifier core and
 * the v5.4 `struct hmm` are both subscribers of it. Nothing here knows which API a device uses.
 */

/** enum mmu_notifier_event (v5.10 values). */
export const MMU_NOTIFY_UNMAP = 0;
export const MMU_NOTIFY_CLEAR = 1;
export const MMU_NOTIFY_PROTECTION_VMA = 2;
export const MMU_NOTIFY_PROTECTION_PAGE = 3;
export const MMU_NOTIFY_SOFT_DIRTY = 4;
export const MMU_NOTIFY_RELEASE = 5;
export const MMU_NOTIFY_MIGRATE = 6;
export const MMU_NOTIFY_EVENT_NAMES = [
  'UNMAP',
  'CLEAR',
  'PROTECTION_VMA',
  'PROTECTION_PAGE',
  'SOFT_DIRTY',
  'RELEASE',
  'MIGRATE',
] as const;
export const MMU_NOTIFY_EVENT_COUNT = 7;

/** range->flags */
export const MMU_NOTIFIER_RANGE_BLOCKABLE = 1;

/** Kernel error numbers, returned negated like the kernel's. */
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EOVERFLOW = 75;

/** struct mmu_notifier_range. Addresses are bytes, `end` exclusive. */
export interface MmuNotifierRange {
  /** the mm's id (MmStruct.id) */
  mmId: number;
  start: number;
  end: number;
  event: number;
  flags: number;
  /** migrate_pgmap_owner: the device id that started a MIGRATE, else -1 */
  owner: number;
  /** hmmsim: the open file (mirror) that started a MIGRATE, else -1 (driver.md quirk (c)) */
  ownerFile: number;
}

export function mmuNotifierRangeInit(
  mmId: number,
  event: number,
  start: number,
  end: number,
  blockable = true,
  owner = -1,
  ownerFile = -1,
): MmuNotifierRange {
  return { mmId, start, end, event, flags: blockable ? MMU_NOTIFIER_RANGE_BLOCKABLE : 0, owner, ownerFile };
}

export function mmuNotifierRangeBlockable(r: MmuNotifierRange): boolean {
  return (r.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0;
}

/**
 * A subscriber on an mm's chain (struct mmu_notifier with its ops). Both the interval-notifier
 * core and the legacy struct hmm implement it; each thread that attaches the mm attaches its
 * subscribers too, since the state they act on lives in shared memory.
 */
export interface MmuNotifierSubscriber {
  /** 0, or -EAGAIN when a non-blockable start could not proceed. */
  invalidateRangeStart(range: MmuNotifierRange): number;
  invalidateRangeEnd(range: MmuNotifierRange): void;
  /** mm teardown (__mmu_notifier_release) */
  release(range: MmuNotifierRange): void;
}

/**
 * The chain of one mm as seen from one thread. `mmu_notifier_invalidate_range_start` calls every
 * subscriber; if a non-blockable start fails in one, the ones already started are ended again
 * (hmmsim models v5.10's behaviour here; the v5.4 leak is the legacy module's business) and
 * -EAGAIN is returned: the caller must not call the end.
 */
export class MmuNotifierChain {
  readonly subscribers: MmuNotifierSubscriber[] = [];
  /**
   * Which core's start to model (this thread's view of the chain). 'v5.10' (default): the first
   * failing subscriber stops the loop and the ones already started are ended again. 'v5.4'
   * (v5.4 __mmu_notifier_invalidate_range_start): every subscriber is called even after a failure,
   * nothing is unwound, and -EAGAIN is returned; since the caller then skips the end, a subscriber
   * whose start succeeded never sees its end (the legacy `notifiers` leak, spec/legacy-v5.4.md).
   */
  startPairing: 'v5.10' | 'v5.4' = 'v5.10';

  register(s: MmuNotifierSubscriber): void {
    if (!this.subscribers.includes(s)) this.subscribers.push(s);
  }

  unregister(s: MmuNotifierSubscriber): void {
    const i = this.subscribers.indexOf(s);
    if (i >= 0) this.subscribers.splice(i, 1);
  }

  invalidateRangeStart(range: MmuNotifierRange): number {
    const subs = this.subscribers;
    if (this.startPairing === 'v5.4') {
      let failed = 0;
      for (let i = 0; i < subs.length; i++) {
        const ret = subs[i]!.invalidateRangeStart(range);
        if (ret !== 0) failed = ret; // v5.4: pr_info and go on; no unwinding
      }
      return failed;
    }
    for (let i = 0; i < subs.length; i++) {
      const ret = subs[i]!.invalidateRangeStart(range);
      if (ret !== 0) {
        // v5.10 __mmu_notifier_invalidate_range_start: undo the subscribers already started.
        for (let j = 0; j < i; j++) subs[j]!.invalidateRangeEnd(range);
        return ret;
      }
    }
    return 0;
  }

  invalidateRangeEnd(range: MmuNotifierRange): void {
    const subs = this.subscribers;
    for (let i = 0; i < subs.length; i++) subs[i]!.invalidateRangeEnd(range);
  }

  release(range: MmuNotifierRange): void {
    const subs = this.subscribers;
    for (let i = 0; i < subs.length; i++) subs[i]!.release(range);
  }
}
