/**
 * Reclaim of anonymous memory (shrink_page_list -> try_to_unmap -> pageout), driven by the
 * mutator over a virtual range: for each page, a one-page CLEAR brackets the PTE becoming a swap
 * entry (try_to_unmap_one); the content then goes to the swap slot and the frame is freed. A
 * frame still lazy-free after MADV_FREE is discarded instead and its PTE left none. A THP is split
 * first (reclaim's THP split: its own 2 MiB CLEAR), then swapped page by page.
 */
import { jitterPoint, POINT_BEFORE_END } from '../checker/points.js';
import {
  FR_LAZYFREE,
  FR_PAGECACHE,
  FR_REFCOUNT_MASK,
  FR_TAIL,
  MM_FREE_AFTER_CLEAR,
  PAGE_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_TABLE,
  PTE_DEVMAP,
  PTE_PAYLOAD_MASK,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
  PTRS_PER_PTE,
  VM_HUGETLB,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VMA_END,
  VMA_FLAGS,
  VMA_START,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { MMU_NOTIFY_CLEAR } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { trylockPage, unlockPage } from './numa.js';
import { isHugeZeroPmd, ptlLock, ptlUnlock, splitHugePmd } from './pgtable.js';

/** This thread's reclaim counters (merged by the sim). */
export const reclaimStats = {
  /** pages written to swap */
  swappedOut: 0,
  /** lazy-free pages dropped without writing (their content counted as discarded) */
  lazyDiscarded: 0,
  /** pages left alone: shared (rmap-only) frames, page-cache pages, locked frames */
  skipped: 0,
  /** THPs split for reclaim */
  thpSplits: 0,
  /** pages not reclaimed because the swap area was full */
  swapFull: 0,
};

/**
 * Reclaim the exclusively owned private anonymous pages mapped in [start, end) (byte
 * addresses). Takes the mmap read lock: hmmsim's stand-in for the rmap locks reclaim holds (the
 * kernel's reclaim holds no mmap lock; here it keeps the VMA table stable for the walk).
 * Returns the number of pages reclaimed (swapped out or discarded).
 */
export function swapOut(mm: MmStruct, start: number, end: number): number {
  const sp = Math.floor(start / PAGE_SIZE);
  const ep = Math.min(Math.ceil(end / PAGE_SIZE), mm.npages);
  let done = 0;
  mm.mmapReadLock();
  try {
    for (let vi = mm.findVmaIndex(sp); vi >= 0 && vi < mm.vmaCount; vi++) {
      const vs = mm.vmaField(vi, VMA_START);
      if (vs >= ep) break;
      if ((mm.vmaField(vi, VMA_FLAGS) & (VM_HUGETLB | VM_PFNMAP | VM_IO | VM_MIXEDMAP)) !== 0) continue;
      const a = Math.max(sp, vs);
      const b = Math.min(ep, mm.vmaField(vi, VMA_END));
      for (let p = a; p < b; ) {
        const idx = p >>> 9;
        const stepEnd = Math.min((idx + 1) * PTRS_PER_PTE, b);
        // Hint read; every change below re-checks its entry under the PTL.
        const w = Atomics.load(mm.pmd, idx);
        if ((w & PTE_TYPE_MASK) === PMD_TYPE_HUGE && !isHugeZeroPmd(w)) {
          const head = w & PTE_PAYLOAD_MASK;
          if (mm.phys.pageRefcount(head) !== 1) {
            reclaimStats.skipped += stepEnd - p;
            p = stepEnd;
            continue;
          }
          splitHugePmd(mm, idx * PTRS_PER_PTE * PAGE_SIZE);
          reclaimStats.thpSplits++;
        }
        if ((Atomics.load(mm.pmd, idx) & PTE_TYPE_MASK) === PMD_TYPE_TABLE) {
          for (let q = p; q < stepEnd; q++) {
            const e = Atomics.load(mm.pte, q);
            if ((e & PTE_TYPE_MASK) !== PTE_TYPE_PRESENT || (e & (PTE_SPECIAL | PTE_DEVMAP)) !== 0) continue;
            const r = reclaimOnePage(mm, q, e);
            if (r < 0) return done;
            done += r;
          }
        }
        p = stepEnd;
      }
    }
  } finally {
    mm.mmapReadUnlock();
  }
  return done;
}

/**
 * shrink_page_list for one page mapped by PTE word `e`: add_to_swap, try_to_unmap_one (CLEAR
 * [addr, addr + 4 KiB)), pageout, free. Returns 1 if reclaimed, 0 if skipped, -1 if swap is full.
 */
function reclaimOnePage(mm: MmStruct, page: number, e: number): number {
  const phys = mm.phys;
  const pfn = e & PTE_PAYLOAD_MASK;
  const st = phys.frameState(pfn);
  // page_count: an order-0 frame carries its own count (one read of its state word serves both
  // tests); a tail asks its head
  const rc = (st & FR_TAIL) === 0 ? st & FR_REFCOUNT_MASK : phys.pageRefcount(pfn);
  if ((st & FR_PAGECACHE) !== 0 || rc !== 1 || !trylockPage(phys, pfn)) {
    reclaimStats.skipped++;
    return 0;
  }
  const addr = page * PAGE_SIZE;
  const range = rangeInit(mm, MMU_NOTIFY_CLEAR, addr, addr + PAGE_SIZE);
  invalidateRangeStart(mm, range);
  // Lazy-free is decided after the start callbacks: device writes (which cancel it) are fenced
  // off by then, and CPU writes come from the mutating thread itself. The kernel makes the same
  // decision late, on PageDirty after the PTE clear.
  const lazy = (phys.frameState(pfn) & FR_LAZYFREE) !== 0;
  const slot = lazy ? -1 : phys.swapAlloc();
  if (!lazy && slot < 0) {
    invalidateRangeEnd(mm, range);
    unlockPage(phys, pfn);
    reclaimStats.swapFull++;
    return -1;
  }
  ptlLock(mm);
  const ok = Atomics.load(mm.pte, page) === e;
  if (ok) {
    // pageout before the swap entry is visible: the content and its write counter move into the
    // slot first. The kernel's swap cache keeps the page findable through the entry from
    // add_to_swap on (do_swap_page finds it there); hmmsim has no swap cache, so a fault on the
    // entry (a device's hmm_range_fault) reads the slot, which must hold the content by then.
    // The frame cannot change meanwhile: the start callbacks fenced device writes, and the PTE
    // is still `e` under the PTL.
    if (!lazy) phys.swapOutContent(slot, pfn);
    Atomics.store(mm.pte, page, lazy ? 0 : PTE_TYPE_SWAP | slot);
  }
  ptlUnlock(mm);
  jitterPoint(POINT_BEFORE_END);
  const afterClear = mm.freeMode === MM_FREE_AFTER_CLEAR;
  if (ok && afterClear) freeReclaimed(mm, page, pfn, lazy);
  invalidateRangeEnd(mm, range);
  if (!ok) {
    unlockPage(phys, pfn);
    if (slot >= 0) phys.swapFree(slot, true);
    reclaimStats.skipped++;
    return 0;
  }
  if (!afterClear) freeReclaimed(mm, page, pfn, lazy);
  return 1;
}

/** The frame's last reference goes: moved into swap, or (lazy-free) discarded and counted. */
function freeReclaimed(mm: MmStruct, page: number, pfn: number, lazy: boolean): void {
  unlockPage(mm.phys, pfn);
  if (lazy) {
    mm.phys.putPage(pfn, MMU_NOTIFY_CLEAR, mm.id, page);
    reclaimStats.lazyDiscarded++;
  } else {
    mm.phys.putPageMoved(pfn, MMU_NOTIFY_CLEAR, mm.id, page);
    reclaimStats.swappedOut++;
  }
}
