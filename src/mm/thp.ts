/**
 * Transparent huge pages from the mutator's side: the "THP split" mutation
 * (split_huge_pmd issued on its own, as reclaim and the deferred split do), plus the small VMA
 * predicates the other mm-B mutations share (vma_is_anonymous, hugepage_vma_check).
 */
import {
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_HUGE,
  PTE_TYPE_MASK,
  PTRS_PER_PTE,
  THP_MODE_ALWAYS,
  THP_MODE_MADVISE,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_MIXEDMAP,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_SHARED,
  VMA_END,
  VMA_FILE,
  VMA_FLAGS,
  VMA_START,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { EINVAL } from './mmu-notifier.js';
import { splitHugePmd } from './pgtable.js';

/**
 * vma_is_anonymous for hmmsim: a private anonymous VMA. A MAP_SHARED|MAP_ANONYMOUS mapping is a
 * shmem file here (spec/mm-events.md), so it is not anonymous. Caller holds the mmap lock.
 */
export function vmaIsAnonymous(mm: MmStruct, vi: number): boolean {
  return mm.vmaField(vi, VMA_FILE) < 0 && (mm.vmaField(vi, VMA_FLAGS) & VM_SHARED) === 0;
}

/**
 * hugepage_vma_check + transhuge_vma_suitable: may the 2 MiB step `pmdIdx` of VMA `vi` hold a
 * THP? The same rule the fault path applies, so khugepaged never builds what a fault could not.
 */
export function thpSuitable(mm: MmStruct, vi: number, pmdIdx: number): boolean {
  const vflags = mm.vmaField(vi, VMA_FLAGS);
  if (!vmaIsAnonymous(mm, vi)) return false;
  if ((vflags & (VM_PFNMAP | VM_MIXEDMAP | VM_IO | VM_NOHUGEPAGE | VM_HUGETLB)) !== 0) return false;
  const mode = mm.thpMode;
  if (mode !== THP_MODE_ALWAYS && !(mode === THP_MODE_MADVISE && (vflags & VM_HUGEPAGE) !== 0)) return false;
  const s = pmdIdx * PTRS_PER_PTE;
  return mm.vmaField(vi, VMA_START) <= s && mm.vmaField(vi, VMA_END) >= s + PTRS_PER_PTE;
}

/** Counters of this thread's THP splits (merged by the sim). */
export const thpStats = { splits: 0 };

/**
 * The "THP split" mutation (spec/mm-events.md): under the mmap read lock, split the huge PMD
 * that maps `address` (a THP or the huge zero page) into 512 PTEs mapping the same frames, as
 * one CLEAR over the 2 MiB step (split_huge_pmd, via pgtable.ts). Hugetlb PMDs are never split
 * (the kernel has no such operation). Returns 0, or -EINVAL when nothing huge is mapped there.
 */
export function splitHugePage(mm: MmStruct, address: number): number {
  const page = Math.floor(address / PAGE_SIZE);
  if (page < 0 || page >= mm.npages) return -EINVAL;
  mm.mmapReadLock();
  try {
    const vi = mm.vmaAt(page);
    if (vi < 0 || (mm.vmaField(vi, VMA_FLAGS) & VM_HUGETLB) !== 0) return -EINVAL;
    const idx = page >>> 9;
    // A hint read: splitHugePmd re-reads the PMD under the PTL and leaves a non-huge one alone.
    const w = Atomics.load(mm.pmd, idx);
    if ((w & PTE_TYPE_MASK) !== PMD_TYPE_HUGE) return -EINVAL;
    const r = splitHugePmd(mm, idx * PMD_SIZE);
    if (r === 0) thpStats.splits++;
    return r;
  } finally {
    mm.mmapReadUnlock();
  }
}
