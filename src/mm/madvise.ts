/**
 * madvise(2) for the advice values the mutator uses (mm/madvise.c, v5.10): MADV_DONTNEED and
 * MADV_FREE under the mmap read lock (each one CLEAR invalidation per VMA, racing with device
 * walks that hold the same read lock), MADV_HUGEPAGE / MADV_NOHUGEPAGE under the write lock
 * (VMA flags only, splitting and merging VMA records like madvise_behavior + vma_merge).
 */
import {
  FR_DEVICE_PRIVATE,
  FR_LAZYFREE,
  FR_PAGECACHE,
  PAGE_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_TABLE,
  PTE_PAYLOAD_MASK,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
  PTRS_PER_PTE,
  VM_HMMSIM_ANON_VMA,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VMA_END,
  VMA_FILE,
  VMA_FLAGS,
  VMA_HUGE_ORDER,
  VMA_PGOFF,
  VMA_START,
  VMA_STRIDE,
} from './layout.js';
import { type MmStruct, vmaRemove, vmaSetFlags, vmaSplit } from './mm.js';
import { EINVAL, ENOMEM, MMU_NOTIFY_CLEAR } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { isHugeZeroPmd, ptlLock, ptlUnlock, splitHugePmd, zapRangeNotify } from './pgtable.js';
import { vmaIsAnonymous } from './thp.js';

export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;

/** This thread's madvise counters (merged by the sim). */
export const madviseStats = {
  dontneed: 0,
  free: 0,
  /** frames made lazy-free by MADV_FREE (a THP counts once) */
  lazyFreed: 0,
  /** swap entries MADV_FREE dropped (their content counted as discarded by swapFree) */
  swapDropped: 0,
  /** present pages MADV_FREE left alone because the frame is shared (COW after fork) */
  sharedSkipped: 0,
  hugepage: 0,
};

/**
 * do_madvise: `start` page aligned (else -EINVAL), `len` rounded up to pages, 0 is a no-op.
 * Returns 0, -EINVAL (bad advice or arguments; DONTNEED/FREE on hugetlb or VM_PFNMAP; FREE on a
 * non-anonymous VMA), or -ENOMEM when part of the range is unmapped (the mapped parts are still
 * advised, like the kernel's unmapped_error).
 */
export function madvise(mm: MmStruct, start: number, len: number, advice: number): number {
  if (start < 0 || start % PAGE_SIZE !== 0 || !(len >= 0)) return -EINVAL;
  if (
    advice !== MADV_DONTNEED &&
    advice !== MADV_FREE &&
    advice !== MADV_HUGEPAGE &&
    advice !== MADV_NOHUGEPAGE
  ) {
    return -EINVAL;
  }
  const end = start + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  if (end === start) return 0;
  // madvise_need_mmap_write: only the VMA-flag advice changes VMAs
  const write = advice === MADV_HUGEPAGE || advice === MADV_NOHUGEPAGE;
  if (write) mm.mmapWriteLock();
  else mm.mmapReadLock();
  try {
    return madviseWalk(mm, start / PAGE_SIZE, end / PAGE_SIZE, advice);
  } finally {
    if (write) mm.mmapWriteUnlock();
    else mm.mmapReadUnlock();
  }
}

/** The VMA loop of do_madvise (holes give -ENOMEM at the end, errors stop at once). */
function madviseWalk(mm: MmStruct, sp: number, ep: number, advice: number): number {
  let unmappedError = 0;
  let p = sp;
  for (;;) {
    const vi = mm.findVmaIndex(p);
    if (vi < 0) return -ENOMEM;
    const vs = mm.vmaField(vi, VMA_START);
    if (p < vs) {
      unmappedError = -ENOMEM;
      p = vs;
      if (p >= ep) return -ENOMEM;
    }
    const t = Math.min(ep, mm.vmaField(vi, VMA_END));
    let err: number;
    if (advice === MADV_DONTNEED) err = madviseDontneed(mm, vi, p, t);
    else if (advice === MADV_FREE) err = madviseFree(mm, vi, p, t);
    else err = madviseHugepage(mm, vi, p, t, advice);
    if (err !== 0) return err;
    p = t;
    if (p >= ep) return unmappedError;
  }
}

/** can_madv_lru_vma (VM_LOCKED is not modelled). */
function canMadvLruVma(mm: MmStruct, vi: number): boolean {
  return (mm.vmaField(vi, VMA_FLAGS) & (VM_HUGETLB | VM_PFNMAP)) === 0;
}

/**
 * madvise_dontneed_single_vma -> zap_page_range: one CLEAR over the part of this VMA, entries
 * cleared under the PTL (a partly covered THP split first, nested), frames freed after end (or
 * right after the clear in the 'after-clear' free mode). pgtable.ts's bracket does the order.
 */
function madviseDontneed(mm: MmStruct, vi: number, sp: number, ep: number): number {
  if (!canMadvLruVma(mm, vi)) return -EINVAL;
  madviseStats.dontneed++;
  return zapRangeNotify(mm, sp * PAGE_SIZE, ep * PAGE_SIZE, MMU_NOTIFY_CLEAR);
}

/**
 * madvise_free_single_vma: one CLEAR over the part of this VMA; inside it swap entries are
 * dropped (free_swap_and_cache: content discarded, counted by swapFree) and exclusively owned
 * present pages become lazy-free while staying mapped with the same PTE word (hmmsim has no
 * young/dirty bits to clear). A THP covered whole is marked as a unit; one covered in part is
 * split first (its own CLEAR, nested, as madvise_free_huge_pmd's split_huge_page).
 */
function madviseFree(mm: MmStruct, vi: number, sp: number, ep: number): number {
  if (!canMadvLruVma(mm, vi)) return -EINVAL;
  if (!vmaIsAnonymous(mm, vi)) return -EINVAL;
  madviseStats.free++;
  const range = rangeInit(mm, MMU_NOTIFY_CLEAR, sp * PAGE_SIZE, ep * PAGE_SIZE);
  invalidateRangeStart(mm, range);
  const phys = mm.phys;
  for (let p = sp; p < ep; ) {
    const idx = p >>> 9;
    const stepStart = idx * PTRS_PER_PTE;
    const stepEnd = Math.min(stepStart + PTRS_PER_PTE, ep);
    const whole = p === stepStart && stepEnd === stepStart + PTRS_PER_PTE;
    // Hint read: every decision below is re-made on an Atomics re-read under the PTL.
    const w0 = Atomics.load(mm.pmd, idx);
    if ((w0 & PTE_TYPE_MASK) === PMD_TYPE_HUGE && !whole && !isHugeZeroPmd(w0)) {
      splitHugePmd(mm, p * PAGE_SIZE);
    }
    ptlLock(mm);
    const w = Atomics.load(mm.pmd, idx);
    const t = w & PTE_TYPE_MASK;
    if (t === PMD_TYPE_HUGE) {
      const head = w & PTE_PAYLOAD_MASK;
      // the huge zero page is left alone; a shared THP too (page_mapcount != 1)
      if (whole && !isHugeZeroPmd(w)) {
        if (phys.pageRefcount(head) === 1) {
          phys.setFrameFlag(head, FR_LAZYFREE);
          madviseStats.lazyFreed++;
        } else madviseStats.sharedSkipped++;
      }
    } else if (t === PMD_TYPE_TABLE) {
      for (let q = p; q < stepEnd; q++) {
        const e = Atomics.load(mm.pte, q);
        const et = e & PTE_TYPE_MASK;
        if (et === PTE_TYPE_SWAP) {
          // pte_clear_not_present_full + free_swap_and_cache
          Atomics.store(mm.pte, q, 0);
          phys.swapFree(e & PTE_PAYLOAD_MASK);
          madviseStats.swapDropped++;
        } else if (et === PTE_TYPE_PRESENT && (e & PTE_SPECIAL) === 0) {
          const pfn = e & PTE_PAYLOAD_MASK;
          const st = phys.frameState(pfn);
          if ((st & (FR_PAGECACHE | FR_DEVICE_PRIVATE)) !== 0) continue;
          if (phys.pageRefcount(pfn) !== 1) {
            madviseStats.sharedSkipped++;
            continue;
          }
          if ((st & FR_LAZYFREE) === 0) phys.setFrameFlag(pfn, FR_LAZYFREE);
          madviseStats.lazyFreed++;
        }
      }
    }
    ptlUnlock(mm);
    p = stepEnd;
  }
  invalidateRangeEnd(mm, range);
  return 0;
}

/**
 * hugepage_madvise + madvise_behavior: set VM_HUGEPAGE (clearing VM_NOHUGEPAGE) or the reverse
 * on [sp, ep) of VMA `vi`, splitting the record at the edges and merging the result with equal
 * neighbours (vma_merge). Changes no PTE, issues no invalidation. Caller holds the write lock.
 */
function madviseHugepage(mm: MmStruct, vi: number, sp: number, ep: number, advice: number): number {
  const f = mm.vmaField(vi, VMA_FLAGS);
  const nf =
    advice === MADV_HUGEPAGE ? (f & ~VM_NOHUGEPAGE) | VM_HUGEPAGE : (f & ~VM_HUGEPAGE) | VM_NOHUGEPAGE;
  if (nf === f) return 0;
  let i = vi;
  if (mm.vmaField(i, VMA_START) < sp) {
    i = vmaSplit(mm, i, sp);
    if (i < 0) return i;
  }
  if (mm.vmaField(i, VMA_END) > ep) {
    const r = vmaSplit(mm, i, ep);
    if (r < 0) return r;
  }
  vmaSetFlags(mm, i, nf);
  madviseStats.hugepage++;
  vmaMergeAround(mm, i);
  return 0;
}

/** is_mergeable_vma + the pgoff rule of can_vma_merge_after, for VMA records a then b = a + 1. */
function vmaMergeable(mm: MmStruct, a: number, b: number): boolean {
  const v = mm.vmas;
  const A = a * VMA_STRIDE;
  const B = b * VMA_STRIDE;
  // Plain reads: the caller holds the mmap lock for write (an Atomics RMW acquisition).
  if (v[A + VMA_END] !== v[B + VMA_START]) return false;
  if (((v[A + VMA_FLAGS]! ^ v[B + VMA_FLAGS]!) & ~VM_HMMSIM_ANON_VMA) !== 0) return false;
  if (v[A + VMA_FILE] !== v[B + VMA_FILE] || v[A + VMA_HUGE_ORDER] !== v[B + VMA_HUGE_ORDER]) return false;
  if (v[A + VMA_FILE]! < 0) return true;
  return v[A + VMA_PGOFF]! + (v[A + VMA_END]! - v[A + VMA_START]!) === v[B + VMA_PGOFF];
}

/** vma_merge after a flag change: fold VMA `i` into its neighbours where they are equal. */
function vmaMergeAround(mm: MmStruct, i: number): void {
  const v = mm.vmas;
  if (i + 1 < mm.vmaCount && vmaMergeable(mm, i, i + 1)) {
    const anon = v[(i + 1) * VMA_STRIDE + VMA_FLAGS]! & VM_HMMSIM_ANON_VMA;
    Atomics.store(v, i * VMA_STRIDE + VMA_END, v[(i + 1) * VMA_STRIDE + VMA_END]!);
    if (anon !== 0) Atomics.or(v, i * VMA_STRIDE + VMA_FLAGS, anon);
    vmaRemove(mm, i + 1);
  }
  if (i > 0 && vmaMergeable(mm, i - 1, i)) {
    const anon = v[i * VMA_STRIDE + VMA_FLAGS]! & VM_HMMSIM_ANON_VMA;
    Atomics.store(v, (i - 1) * VMA_STRIDE + VMA_END, v[i * VMA_STRIDE + VMA_END]!);
    if (anon !== 0) Atomics.or(v, (i - 1) * VMA_STRIDE + VMA_FLAGS, anon);
    vmaRemove(mm, i);
  }
}
