/**
 * fork's address-space copy (dup_mmap / copy_page_range): the child gets every VMA; the PTEs of a
 * VMA are copied only when it has anonymous pages (or is hugetlb / PFNMAP / MIXEDMAP), as the
 * kernel skips the rest and lets the child fault them in. Private (COW) VMAs lose write in both
 * parent and child inside a PROTECTION_PAGE invalidation on the parent (CLEAR for hugetlb, as
 * copy_hugetlb_page_range), so a device mirror of the parent stops writing frames that are now
 * shared. Frames, swap slots and device-private pages gain a reference per copy.
 */
import {
  HUGE_ZERO_PFN,
  MM_FREE_AFTER_CLEAR,
  PAGE_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_MIGRATION,
  PMD_TYPE_TABLE,
  PTE_PAYLOAD_MASK,
  PTE_SPECIAL,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_MASK,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
  PTE_WRITE,
  PTRS_PER_PTE,
  THP_MODE_ALWAYS,
  THP_MODE_NEVER,
  VM_HMMSIM_ANON_VMA,
  VM_HUGETLB,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_SHARED,
} from './layout.js';
import { createMm, type MmStruct, vmaInsert, vmaRecord } from './mm.js';
import { MMU_NOTIFY_CLEAR, MMU_NOTIFY_PROTECTION_PAGE } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { ptlLock, ptlUnlock } from './pgtable.js';

/** Thread-local: fork statistics (tests). */
export const forkStats = { copiedVmas: 0, copiedEntries: 0 };

/**
 * dup_mm: a child mm (same size and options, one user) sharing the parent's frames copy-on-write.
 * Takes the parent's mmap lock for write.
 */
export function forkMm(mm: MmStruct): MmStruct {
  const child = createMm(mm.phys, {
    size: mm.size,
    freeMode: mm.freeMode === MM_FREE_AFTER_CLEAR ? 'after-clear' : 'after-end',
    thpMode: mm.thpMode === THP_MODE_ALWAYS ? 'always' : mm.thpMode === THP_MODE_NEVER ? 'never' : 'madvise',
  });
  mm.mmapWriteLock();
  try {
    const n = mm.vmaCount;
    for (let i = 0; i < n; i++) {
      const v = vmaRecord(mm, i);
      vmaInsert(child, v);
      if (v.file >= 0) mm.phys.fileGet(v.file);
      if ((v.flags & (VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP)) === 0 && (v.flags & VM_HMMSIM_ANON_VMA) === 0)
        continue;
      copyPageRange(mm, child, v.start, v.end, v.flags);
    }
  } finally {
    mm.mmapWriteUnlock();
  }
  return child;
}

/** copy_page_range for one VMA [start, end) (pages). */
function copyPageRange(src: MmStruct, dst: MmStruct, start: number, end: number, vflags: number): void {
  const cow = (vflags & VM_SHARED) === 0;
  const phys = src.phys;
  forkStats.copiedVmas++;
  const range = cow
    ? rangeInit(
        src,
        (vflags & VM_HUGETLB) !== 0 ? MMU_NOTIFY_CLEAR : MMU_NOTIFY_PROTECTION_PAGE,
        start * PAGE_SIZE,
        end * PAGE_SIZE,
      )
    : null;
  if (range) invalidateRangeStart(src, range);
  ptlLock(src);
  for (let p = start; p < end; ) {
    const idx = p >>> 9;
    const stepEnd = Math.min((idx + 1) * PTRS_PER_PTE, end);
    const w = Atomics.load(src.pmd, idx);
    const t = w & PTE_TYPE_MASK;
    if (t === PMD_TYPE_HUGE || t === PMD_TYPE_MIGRATION) {
      // copy_huge_pmd: the whole huge entry (VMAs never cut a huge PMD: splits happen first)
      const head = w & PTE_PAYLOAD_MASK;
      if (t === PMD_TYPE_HUGE && head !== HUGE_ZERO_PFN) {
        if (phys.isCompound(head) && phys.compoundHead(head) === head) phys.getPage(head);
        else for (let k = 0; k < PTRS_PER_PTE; k++) phys.getPage(head + k);
      }
      const nw = cow ? w & ~PTE_WRITE : w;
      if (nw !== w) Atomics.store(src.pmd, idx, nw);
      Atomics.store(dst.pmd, idx, nw);
      forkStats.copiedEntries++;
    } else if (t === PMD_TYPE_TABLE) {
      let any = false;
      for (let q = p; q < stepEnd; q++) {
        const e = Atomics.load(src.pte, q);
        if (e === 0) continue;
        const et = e & PTE_TYPE_MASK;
        let ne = e;
        if (et === PTE_TYPE_PRESENT) {
          if ((e & PTE_SPECIAL) === 0) phys.getPage(e & PTE_PAYLOAD_MASK);
          if (cow) ne = e & ~PTE_WRITE;
        } else if (et === PTE_TYPE_SWAP) {
          phys.swapDup(e & PTE_PAYLOAD_MASK);
        } else if (et === PTE_TYPE_DEVICE_PRIVATE) {
          phys.getPage(e & PTE_PAYLOAD_MASK);
          if (cow) ne = e & ~PTE_WRITE;
        } else if (et === PTE_TYPE_MIGRATION) {
          if (cow) ne = e & ~PTE_WRITE;
        } else {
          continue; // hwpoison: not copied
        }
        if (ne !== e) Atomics.store(src.pte, q, ne);
        Atomics.store(dst.pte, q, ne);
        any = true;
        forkStats.copiedEntries++;
      }
      if (any) Atomics.store(dst.pmd, idx, PMD_TYPE_TABLE);
    }
    p = stepEnd;
  }
  ptlUnlock(src);
  if (range) invalidateRangeEnd(src, range);
}
