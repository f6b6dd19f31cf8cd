/**
 * memory_failure for a page mapped in one mm (hwpoison_user_mappings -> try_to_unmap_one with
 * the page poisoned): inside a one-page CLEAR the PTE becomes a hwpoison entry; the frame is
 * flagged poisoned, its content counted as discarded, and it never returns to the allocator. A
 * THP is split first (try_to_split_thp_page: its own 2 MiB CLEAR).
 */
import {
  FR_DEVICE_PRIVATE,
  FR_PAGECACHE,
  FR_POISON,
  MM_FREE_AFTER_CLEAR,
  PAGE_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_TABLE,
  PTE_DEVMAP,
  PTE_PAYLOAD_MASK,
  PTE_SPECIAL,
  PTE_TYPE_HWPOISON,
  PTE_TYPE_MASK,
  PTE_TYPE_PRESENT,
  VM_HUGETLB,
  VMA_FLAGS,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { EBUSY, EFAULT, MMU_NOTIFY_CLEAR } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { trylockPage, unlockPage } from './numa.js';
import { isHugeZeroPmd, ptlLock, ptlUnlock, splitHugePmd } from './pgtable.js';

/** This thread's counters (merged by the sim). */
export const memoryFailureStats = { poisoned: 0, refused: 0 };

/**
 * Poison the page mapped at byte `address`. Returns 0 when poisoned (or already a hwpoison
 * entry), -EFAULT when no page is mapped there, -EBUSY for what hmmsim does not handle: the zero
 * page, page-cache and shared (rmap-only) frames, hugetlb, device-private and locked pages.
 * Takes the mmap read lock (a stand-in for the rmap locks; the kernel holds no mmap lock).
 */
export function memoryFailure(mm: MmStruct, address: number): number {
  const page = Math.floor(address / PAGE_SIZE);
  if (page < 0 || page >= mm.npages) return -EFAULT;
  const phys = mm.phys;
  mm.mmapReadLock();
  try {
    const vi = mm.vmaAt(page);
    if (vi < 0) return -EFAULT;
    if ((mm.vmaField(vi, VMA_FLAGS) & VM_HUGETLB) !== 0) return refuse();
    const idx = page >>> 9;
    const w = Atomics.load(mm.pmd, idx);
    if ((w & PTE_TYPE_MASK) === PMD_TYPE_HUGE) {
      if (isHugeZeroPmd(w)) return refuse();
      if (phys.pageRefcount(w & PTE_PAYLOAD_MASK) !== 1) return refuse();
      splitHugePmd(mm, address);
    }
    if ((Atomics.load(mm.pmd, idx) & PTE_TYPE_MASK) !== PMD_TYPE_TABLE) return -EFAULT;
    const e = Atomics.load(mm.pte, page);
    const et = e & PTE_TYPE_MASK;
    if (et === PTE_TYPE_HWPOISON) return 0;
    if (et !== PTE_TYPE_PRESENT) return e === 0 ? -EFAULT : refuse();
    if ((e & (PTE_SPECIAL | PTE_DEVMAP)) !== 0) return refuse();
    const pfn = e & PTE_PAYLOAD_MASK;
    if ((phys.frameState(pfn) & (FR_PAGECACHE | FR_DEVICE_PRIVATE)) !== 0 || phys.pageRefcount(pfn) !== 1) {
      return refuse();
    }
    if (!trylockPage(phys, pfn)) return refuse();
    const a = page * PAGE_SIZE;
    const range = rangeInit(mm, MMU_NOTIFY_CLEAR, a, a + PAGE_SIZE);
    invalidateRangeStart(mm, range);
    ptlLock(mm);
    const ok = Atomics.load(mm.pte, page) === e;
    if (ok) {
      // TestSetPageHWPoison, then the PTE becomes the hwpoison entry (try_to_unmap_one)
      phys.setFrameFlag(pfn, FR_POISON);
      Atomics.store(mm.pte, page, PTE_TYPE_HWPOISON | pfn);
    }
    ptlUnlock(mm);
    const afterClear = mm.freeMode === MM_FREE_AFTER_CLEAR;
    // the last reference: generation++, discarded += its write counter, kept out of the pool
    if (ok && afterClear) phys.putPage(pfn, MMU_NOTIFY_CLEAR, mm.id, page);
    invalidateRangeEnd(mm, range);
    if (!ok) {
      unlockPage(phys, pfn);
      return refuse();
    }
    if (!afterClear) phys.putPage(pfn, MMU_NOTIFY_CLEAR, mm.id, page);
    memoryFailureStats.poisoned++;
    return 0;
  } finally {
    mm.mmapReadUnlock();
  }
}

function refuse(): number {
  memoryFailureStats.refused++;
  return -EBUSY;
}
