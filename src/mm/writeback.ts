/**
 * Write-protection mutations that keep frames in place: writeback's page_mkclean (one
 * PROTECTION_PAGE invalidation per shared mapping of a dirty file page, PTE loses write) and
 * clear_refs' soft-dirty reset (one SOFT_DIRTY invalidation over the whole address space under
 * the mmap read lock, every present PTE and huge PMD loses write).
 */
import {
  PAGE_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_TABLE,
  PTE_PAYLOAD_MASK,
  PTE_TYPE_MASK,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
  PTRS_PER_PTE,
  VM_HUGETLB,
  VM_PFNMAP,
  VM_SHARED,
  VMA_END,
  VMA_FILE,
  VMA_FLAGS,
  VMA_PGOFF,
  VMA_START,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { MMU_NOTIFY_PROTECTION_PAGE, MMU_NOTIFY_SOFT_DIRTY } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { ptlLock, ptlUnlock } from './pgtable.js';

/** This thread's counters (merged by the sim). */
export const writebackStats = {
  /** pages page_mkclean found dirty */
  cleaned: 0,
  /** PTEs (huge PMDs count once) write-protected by writeback and clear_refs */
  wrprotected: 0,
};

/** Where one mm maps file page `index` through a shared VMA: byte addresses, one per VMA. */
function sharedMappings(mm: MmStruct, fileId: number, index: number, out: number[]): void {
  // Plain reads of the VMA table: the caller holds the mmap lock (an Atomics RMW acquisition).
  const n = mm.vmaCount;
  for (let vi = 0; vi < n; vi++) {
    if (mm.vmaField(vi, VMA_FILE) !== fileId) continue;
    if ((mm.vmaField(vi, VMA_FLAGS) & VM_SHARED) === 0) continue; // invalid_mkclean_vma
    const vs = mm.vmaField(vi, VMA_START);
    const off = index - mm.vmaField(vi, VMA_PGOFF);
    if (off < 0 || off >= mm.vmaField(vi, VMA_END) - vs) continue;
    out.push((vs + off) * PAGE_SIZE);
  }
}

/**
 * clear_page_dirty_for_io + page_mkclean for file page `index` of `fileId`, over the mms given
 * (hmmsim has no global rmap: the caller names the processes that may map the file). hmmsim has
 * no dirty bit: a page counts as dirty when some shared mapping maps it writable (a shared file
 * mapping is read-only until its first write fault, which is when the kernel dirties the page).
 * A dirty page gets one PROTECTION_PAGE invalidation per shared VMA that covers it
 * (page_mkclean_one runs for each VMA the file's interval tree finds, mapped there or not), and
 * inside it the PTE, if it maps the page, loses write. Each mm's mmap read lock stands in for
 * the i_mmap lock the rmap walk holds. Returns the number of PTEs write-protected.
 */
export function pageMkclean(mms: readonly MmStruct[], fileId: number, index: number): number {
  if (mms.length === 0) return 0;
  const phys = mms[0]!.phys;
  if (!phys.pageCached(fileId, index)) return 0;
  const pfn = phys.findGetPage(fileId, index);
  if (pfn < 0) return 0;
  const addrs: number[] = [];
  let dirty = false;
  for (const mm of mms) {
    mm.mmapReadLock();
    try {
      addrs.length = 0;
      sharedMappings(mm, fileId, index, addrs);
      for (const a of addrs) {
        if (Atomics.load(mm.pte, a / PAGE_SIZE) === (PTE_TYPE_PRESENT | PTE_WRITE | pfn)) dirty = true;
      }
    } finally {
      mm.mmapReadUnlock();
    }
  }
  let done = 0;
  if (dirty) {
    writebackStats.cleaned++;
    for (const mm of mms) {
      mm.mmapReadLock();
      try {
        addrs.length = 0;
        sharedMappings(mm, fileId, index, addrs);
        for (const a of addrs) done += mkcleanOne(mm, a, pfn);
      } finally {
        mm.mmapReadUnlock();
      }
    }
  }
  phys.putPage(pfn);
  writebackStats.wrprotected += done;
  return done;
}

/** page_mkclean_one: PROTECTION_PAGE over [addr, addr + 4 KiB); the PTE loses write. */
function mkcleanOne(mm: MmStruct, addr: number, pfn: number): number {
  const page = addr / PAGE_SIZE;
  const range = rangeInit(mm, MMU_NOTIFY_PROTECTION_PAGE, addr, addr + PAGE_SIZE);
  invalidateRangeStart(mm, range);
  ptlLock(mm);
  let done = 0;
  const e = Atomics.load(mm.pte, page);
  if (
    (Atomics.load(mm.pmd, page >>> 9) & PTE_TYPE_MASK) === PMD_TYPE_TABLE &&
    (e & PTE_TYPE_MASK) === PTE_TYPE_PRESENT &&
    (e & PTE_PAYLOAD_MASK) === pfn &&
    (e & PTE_WRITE) !== 0
  ) {
    Atomics.store(mm.pte, page, e & ~PTE_WRITE);
    done = 1;
  }
  ptlUnlock(mm);
  invalidateRangeEnd(mm, range);
  return done;
}

/**
 * Writeback of a whole file (write_cache_pages): pageMkclean for every cached page, in index
 * order, over the mms given. Returns the number of PTEs write-protected.
 */
export function writebackFile(fileId: number, mms: readonly MmStruct[]): number {
  if (mms.length === 0) return 0;
  const n = mms[0]!.phys.fileNpages(fileId);
  let done = 0;
  for (let i = 0; i < n; i++) done += pageMkclean(mms, fileId, i);
  return done;
}

/**
 * clear_refs_write(CLEAR_REFS_SOFT_DIRTY): under the mmap read lock, one SOFT_DIRTY
 * invalidation over the whole address space (the kernel's [0, -1)); inside it every present PTE
 * and huge PMD of every VMA but VM_PFNMAP and hugetlb ones loses write (clear_soft_dirty /
 * clear_soft_dirty_pmd; the write fault that follows is how soft-dirty tracking notices). The
 * VM_SOFTDIRTY write-lock step is not modelled. Returns the number of entries write-protected.
 */
export function clearRefs(mm: MmStruct): number {
  let done = 0;
  mm.mmapReadLock();
  try {
    const range = rangeInit(mm, MMU_NOTIFY_SOFT_DIRTY, 0, mm.size);
    invalidateRangeStart(mm, range);
    for (let vi = 0; vi < mm.vmaCount; vi++) {
      if ((mm.vmaField(vi, VMA_FLAGS) & (VM_PFNMAP | VM_HUGETLB)) !== 0) continue;
      const a = mm.vmaField(vi, VMA_START);
      const b = mm.vmaField(vi, VMA_END);
      for (let p = a; p < b; ) {
        const idx = p >>> 9;
        const stepEnd = Math.min((idx + 1) * PTRS_PER_PTE, b);
        ptlLock(mm);
        const w = Atomics.load(mm.pmd, idx);
        const t = w & PTE_TYPE_MASK;
        if (t === PMD_TYPE_HUGE) {
          if ((w & PTE_WRITE) !== 0) {
            Atomics.store(mm.pmd, idx, w & ~PTE_WRITE);
            done++;
          }
        } else if (t === PMD_TYPE_TABLE) {
          for (let q = p; q < stepEnd; q++) {
            const e = Atomics.load(mm.pte, q);
            if ((e & PTE_TYPE_MASK) === PTE_TYPE_PRESENT && (e & PTE_WRITE) !== 0) {
              Atomics.store(mm.pte, q, e & ~PTE_WRITE);
              done++;
            }
          }
        }
        ptlUnlock(mm);
        p = stepEnd;
      }
    }
    invalidateRangeEnd(mm, range);
  } finally {
    mm.mmapReadUnlock();
  }
  writebackStats.wrprotected += done;
  return done;
}
