/**
 * mmap, munmap, mprotect and the driver-side mapping helpers (remap_pfn_range, vm_insert_page).
 * VMAs change only under the mmap lock held for write; PTE changes follow the ordering rules of
 * spec/mm-events.md (removal / lowering inside an invalidation, frees after the PTE clear).
 */
import {
  HUGE_ZERO_PFN,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_MIGRATION,
  PMD_TYPE_NONE,
  PMD_TYPE_TABLE,
  PTE_PAYLOAD_MASK,
  PTE_PROTNONE,
  PTE_SPECIAL,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_MASK,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
  PUD_SIZE,
  VM_EXEC,
  VM_HMMSIM_ANON_VMA,
  VM_HUGETLB,
  VM_IO,
  VM_MAYSHARE,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  VMA_END,
  VMA_FILE,
  VMA_FLAGS,
  VMA_START,
} from './layout.js';
import { type MmStruct, vmaInsert, vmaMergeNext, vmaRecord, vmaRemove, vmaSetFlags, vmaSplit } from './mm.js';
import {
  EBADF,
  EBUSY,
  EFAULT,
  EINVAL,
  ENOMEM,
  EPERM,
  MMU_NOTIFY_PROTECTION_VMA,
  MMU_NOTIFY_UNMAP,
} from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { freePgtables, ptlLock, ptlUnlock, splitHugePmd, zapRangeNotify } from './pgtable.js';

export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_HUGETLB = 0x40000;
export const MAP_FIXED_NOREPLACE = 0x100000;

/** Lowest address mmap places a mapping at (and the lowest MAP_FIXED accepts). */
export const MMAP_MIN_ADDR = PMD_SIZE;

export interface MmapOptions {
  /** MAP_FIXED address, or a hint (used if free) */
  addr?: number;
  /** bytes (rounded up to pages, or to 2 MiB for hugetlb) */
  length: number;
  /** PROT_* */
  prot: number;
  /** MAP_SHARED or MAP_PRIVATE, | MAP_ANONYMOUS, MAP_FIXED, MAP_HUGETLB */
  flags: number;
  /** file id (PhysMem.createFile) for a file mapping */
  file?: number;
  /** byte offset into the file (page aligned) */
  offset?: number;
  /** placement alignment in bytes (a power of two >= 4096; hugetlb forces 2 MiB) */
  align?: number;
  /** hugetlb page order: 9 (the same as MAP_HUGETLB) */
  hugeOrder?: number;
}

function protToVmFlags(prot: number): number {
  return (
    ((prot & PROT_READ) !== 0 ? VM_READ : 0) |
    ((prot & PROT_WRITE) !== 0 ? VM_WRITE : 0) |
    ((prot & PROT_EXEC) !== 0 ? VM_EXEC : 0)
  );
}

/**
 * do_mmap: create a mapping; returns its byte address, or a negative errno (-EINVAL bad
 * arguments, -EBADF bad file, -ENOMEM no room / too many VMAs, -EPERM fixed below MMAP_MIN_ADDR,
 * -EEXIST for MAP_FIXED_NOREPLACE over a mapping). Takes the mmap lock for write.
 */
export function mmap(mm: MmStruct, opts: MmapOptions): number {
  const flags = opts.flags;
  const type = flags & (MAP_SHARED | MAP_PRIVATE);
  if (type !== MAP_SHARED && type !== MAP_PRIVATE) return -EINVAL;
  const hugetlb = (flags & MAP_HUGETLB) !== 0 || (opts.hugeOrder ?? 0) === 9;
  const unit = hugetlb ? PMD_SIZE : PAGE_SIZE;
  if (!(opts.length > 0)) return -EINVAL;
  const len = Math.ceil(opts.length / unit) * unit;
  const anon = (flags & MAP_ANONYMOUS) !== 0;
  const phys = mm.phys;
  let file = -1;
  let pgoff = 0;
  if (!anon) {
    if (hugetlb) return -EINVAL; // hugetlbfs files are not modelled
    file = opts.file ?? -1;
    if (file < 0 || phys.fileNpages(file) <= 0) return -EBADF;
    const off = opts.offset ?? 0;
    if (off % PAGE_SIZE !== 0 || off < 0) return -EINVAL;
    pgoff = off / PAGE_SIZE;
  }
  let align = Math.max(opts.align ?? PAGE_SIZE, unit);
  if ((align & (align - 1)) !== 0) return -EINVAL;
  const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
  if (fixed) {
    const a = opts.addr ?? -1;
    if (a % unit !== 0 || a < 0) return -EINVAL;
    if (a < MMAP_MIN_ADDR) return -EPERM;
    if (a + len > mm.size) return -ENOMEM;
    align = unit;
  }
  let vflags = protToVmFlags(opts.prot);
  if (type === MAP_SHARED) vflags |= VM_SHARED | VM_MAYSHARE;
  if (hugetlb) vflags |= VM_HUGETLB;
  mm.mmapWriteLock();
  try {
    let start: number;
    if (fixed) {
      start = opts.addr!;
      if (overlaps(mm, start, start + len)) {
        if ((flags & MAP_FIXED_NOREPLACE) !== 0) return -17; // -EEXIST
        const r = doMunmap(mm, start, start + len, false);
        if (r !== 0) return r;
      }
    } else {
      start = -1;
      const hint = opts.addr;
      if (hint !== undefined && hint % align === 0 && hint >= MMAP_MIN_ADDR && hint + len <= mm.size) {
        if (!overlaps(mm, hint, hint + len)) start = hint;
      }
      if (start < 0) start = findGap(mm, len, align);
      if (start < 0) return -ENOMEM;
    }
    if (anon && type === MAP_SHARED) {
      // shmem_zero_setup: an unnamed shmem file backs a shared anonymous mapping
      file = phys.createFile(len / PAGE_SIZE, { shmem: true, unnamed: true });
      if (file < 0) return -ENOMEM;
    }
    const r = vmaInsert(mm, {
      start: start / PAGE_SIZE,
      end: (start + len) / PAGE_SIZE,
      flags: vflags,
      file,
      pgoff,
      hugeOrder: hugetlb ? 9 : 0,
    });
    if (r < 0) return r;
    if (file >= 0) phys.fileGet(file);
    mergeAround(mm, start, start + len);
    return start;
  } finally {
    mm.mmapWriteUnlock();
  }
}

/**
 * vma_merge after mmap / mprotect: merge compatible neighbours from the VMA before [start, end)
 * to the one after it, so that repeated mprotect / MAP_FIXED churn does not fill the VMA table.
 * Caller holds the mmap lock for write.
 */
function mergeAround(mm: MmStruct, start: number, end: number): void {
  let i = mm.findVmaIndex(start / PAGE_SIZE);
  if (i < 0) return;
  if (i > 0) i--;
  while (i + 1 < mm.vmaCount && mm.vmaField(i, VMA_START) <= end / PAGE_SIZE) {
    const r = vmaMergeNext(mm, i, VM_HMMSIM_ANON_VMA);
    if (r === -2) i++;
    else if (r >= 0) mm.phys.filePut(r);
  }
}

/** Does any VMA overlap [start, end) (bytes)? Caller holds the mmap lock. */
function overlaps(mm: MmStruct, start: number, end: number): boolean {
  const i = mm.findVmaIndex(start / PAGE_SIZE);
  return i >= 0 && mm.vmaField(i, VMA_START) < end / PAGE_SIZE;
}

/** get_unmapped_area, bottom-up from MMAP_MIN_ADDR. */
function findGap(mm: MmStruct, len: number, align: number): number {
  let cand = Math.ceil(MMAP_MIN_ADDR / align) * align;
  const n = mm.vmaCount;
  for (let i = 0; i < n; i++) {
    const vs = mm.vmaStartAddr(i);
    const ve = mm.vmaEndAddr(i);
    if (ve <= cand) continue;
    if (cand + len <= vs) return cand;
    cand = Math.ceil(ve / align) * align;
  }
  return cand + len <= mm.size ? cand : -1;
}

/**
 * Split the VMA containing byte address `addr` there (__split_vma). A boundary inside a huge PMD
 * first splits the PMD (vma_adjust_trans_huge: its own 2 MiB CLEAR, before the caller's own
 * invalidation). Hugetlb VMAs only split at huge-page boundaries (-EINVAL otherwise).
 */
function splitAt(mm: MmStruct, addr: number): number {
  const page = addr / PAGE_SIZE;
  const i = mm.vmaAt(page);
  if (i < 0 || mm.vmaField(i, VMA_START) === page) return 0;
  if ((mm.vmaField(i, VMA_FLAGS) & VM_HUGETLB) !== 0) {
    if (addr % PMD_SIZE !== 0) return -EINVAL;
  } else if (addr % PMD_SIZE !== 0) {
    const t = Atomics.load(mm.pmd, page >>> 9) & PTE_TYPE_MASK;
    if (t === PMD_TYPE_HUGE || t === PMD_TYPE_MIGRATION) splitHugePmd(mm, addr);
  }
  const r = vmaSplit(mm, i, page);
  if (r < 0) return r;
  const f = mm.vmaField(i, VMA_FILE);
  if (f >= 0) mm.phys.fileGet(f);
  return 0;
}

/**
 * munmap: detach the VMAs under the write lock (splitting at the edges), downgrade to read for
 * the teardown: one UNMAP invalidation over [addr, addr + len), PTEs cleared, page tables of
 * emptied steps freed, frames freed after end (or after the clear, per the mm's free mode).
 * Returns 0 or -EINVAL.
 */
export function munmap(mm: MmStruct, addr: number, len: number): number {
  if (addr % PAGE_SIZE !== 0 || !(len > 0) || addr < 0) return -EINVAL;
  const end = addr + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  if (end > mm.size) return -EINVAL;
  mm.mmapWriteLock();
  const r = doMunmap(mm, addr, end, true);
  if (r === 1) mm.mmapReadUnlock();
  else mm.mmapWriteUnlock();
  return r === 1 ? 0 : r;
}

/**
 * __do_munmap with the write lock held. Returns 0 (lock still held for write), 1 (done, lock
 * downgraded to read: `downgrade` was true), or a negative errno (lock held for write).
 */
export function doMunmap(mm: MmStruct, start: number, end: number, downgrade: boolean): number {
  if (!overlaps(mm, start, end)) return 0;
  const first = mm.vmaAt(start / PAGE_SIZE);
  if (first >= 0 && (mm.vmaField(first, VMA_FLAGS) & VM_HUGETLB) !== 0 && start % PMD_SIZE !== 0)
    return -EINVAL;
  const last = mm.vmaAt(end / PAGE_SIZE - 1);
  if (last >= 0 && (mm.vmaField(last, VMA_FLAGS) & VM_HUGETLB) !== 0 && end % PMD_SIZE !== 0) return -EINVAL;
  let r = splitAt(mm, start);
  if (r === 0 && end < mm.size) r = splitAt(mm, end);
  if (r < 0) return r;
  // detach_vmas_to_be_unmapped
  const files: number[] = [];
  for (;;) {
    const i = mm.findVmaIndex(start / PAGE_SIZE);
    if (i < 0 || mm.vmaField(i, VMA_START) >= end / PAGE_SIZE) break;
    const f = mm.vmaField(i, VMA_FILE);
    if (f >= 0) files.push(f);
    vmaRemove(mm, i);
  }
  if (downgrade) mm.mmapWriteDowngrade();
  zapRangeNotify(mm, start, end, MMU_NOTIFY_UNMAP);
  freePgtables(mm, start, end);
  for (const f of files) mm.phys.filePut(f, MMU_NOTIFY_UNMAP);
  return downgrade ? 1 : 0;
}

/**
 * mprotect: set the protection of [addr, addr + len) (which VMAs must cover without a hole:
 * -ENOMEM otherwise), splitting VMAs at the edges; then change_protection per VMA. Returns 0 or
 * a negative errno. Takes the mmap lock for write.
 */
export function mprotect(mm: MmStruct, addr: number, len: number, prot: number): number {
  if (addr % PAGE_SIZE !== 0 || addr < 0 || len < 0) return -EINVAL;
  if (len === 0) return 0;
  const end = addr + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  if (end > mm.size) return -ENOMEM;
  const newProt = protToVmFlags(prot);
  mm.mmapWriteLock();
  try {
    // the range must be fully mapped
    let p = addr / PAGE_SIZE;
    const ep = end / PAGE_SIZE;
    while (p < ep) {
      const i = mm.vmaAt(p);
      if (i < 0) return -ENOMEM;
      const vs = mm.vmaField(i, VMA_START);
      const ve = mm.vmaField(i, VMA_END);
      if ((mm.vmaField(i, VMA_FLAGS) & VM_HUGETLB) !== 0) {
        if ((addr % PMD_SIZE !== 0 && vs * PAGE_SIZE < addr) || (end % PMD_SIZE !== 0 && ve > ep))
          return -EINVAL;
      }
      p = ve;
    }
    let r = splitAt(mm, addr);
    if (r === 0) r = splitAt(mm, end);
    if (r < 0) return r;
    for (let i = mm.findVmaIndex(addr / PAGE_SIZE); i >= 0 && i < mm.vmaCount; i++) {
      const v = vmaRecord(mm, i);
      if (v.start >= ep) break;
      const nf = (v.flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | newProt;
      if (nf === v.flags) continue; // mprotect_fixup: nothing to do
      vmaSetFlags(mm, i, nf);
      changeProtection(mm, v.start * PAGE_SIZE, v.end * PAGE_SIZE, nf, v.file);
    }
    mergeAround(mm, addr, end);
    return 0;
  } finally {
    mm.mmapWriteUnlock();
  }
}

/** The PTE word a protection change leaves (pte_modify with the VMA's new vm_page_prot). */
function modifyEntry(w: number, vflags: number, shmemShared: boolean, isPmd: boolean): number {
  const t = w & PTE_TYPE_MASK;
  if (isPmd) {
    if (t === PMD_TYPE_MIGRATION) return w & ~PTE_WRITE;
    if (t !== PMD_TYPE_HUGE) return w;
  } else {
    if (t === PTE_TYPE_MIGRATION || t === PTE_TYPE_DEVICE_PRIVATE) return w & ~PTE_WRITE; // "just be safe"
    if (t !== PTE_TYPE_PRESENT) return w;
  }
  let n = w & ~(PTE_WRITE | PTE_PROTNONE);
  if ((vflags & (VM_READ | VM_WRITE)) === 0) n |= PTE_PROTNONE;
  // vm_page_prot is writable only for a shared writable mapping without write-notify (shmem)
  else if (shmemShared && (vflags & VM_WRITE) !== 0 && (w & PTE_WRITE) !== 0) n |= PTE_WRITE;
  return n;
}

/**
 * change_protection over one VMA [start, end): a PROTECTION_VMA invalidation per 1 GiB step that
 * has a populated PMD, from that PMD (clipped to the range) to the step's end within the range
 * (change_pmd_range starts it lazily at the first populated PMD). Hugetlb: one invalidation over
 * the whole range (hugetlb_change_protection). Caller holds the mmap lock for write.
 */
function changeProtection(mm: MmStruct, start: number, end: number, vflags: number, file: number): void {
  const shmemShared = file >= 0 && (vflags & VM_SHARED) !== 0 && mm.phys.fileIsShmem(file);
  if ((vflags & VM_HUGETLB) !== 0) {
    const range = rangeInit(mm, MMU_NOTIFY_PROTECTION_VMA, start, end);
    invalidateRangeStart(mm, range);
    ptlLock(mm);
    for (let idx = start / PMD_SIZE; idx < end / PMD_SIZE; idx++) {
      const w = Atomics.load(mm.pmd, idx);
      if (w !== 0) Atomics.store(mm.pmd, idx, modifyEntry(w, vflags, (vflags & VM_SHARED) !== 0, true));
    }
    ptlUnlock(mm);
    invalidateRangeEnd(mm, range);
    return;
  }
  for (let gs = Math.floor(start / PUD_SIZE) * PUD_SIZE; gs < end; gs += PUD_SIZE) {
    const s = Math.max(gs, start);
    const e = Math.min(gs + PUD_SIZE, end);
    let idx = Math.floor(s / PMD_SIZE);
    const lastIdx = Math.ceil(e / PMD_SIZE);
    while (idx < lastIdx && Atomics.load(mm.pmd, idx) === PMD_TYPE_NONE) idx++;
    if (idx >= lastIdx) continue;
    const range = rangeInit(mm, MMU_NOTIFY_PROTECTION_VMA, Math.max(s, idx * PMD_SIZE), e);
    invalidateRangeStart(mm, range);
    for (; idx < lastIdx; idx++) {
      const ps = Math.max(s, idx * PMD_SIZE);
      const pe = Math.min(e, (idx + 1) * PMD_SIZE);
      let w = Atomics.load(mm.pmd, idx);
      let t = w & PTE_TYPE_MASK;
      if ((t === PMD_TYPE_HUGE || t === PMD_TYPE_MIGRATION) && pe - ps !== PMD_SIZE) {
        splitHugePmd(mm, ps); // partial: split nested inside this invalidation
        w = Atomics.load(mm.pmd, idx);
        t = w & PTE_TYPE_MASK;
      }
      ptlLock(mm);
      w = Atomics.load(mm.pmd, idx);
      t = w & PTE_TYPE_MASK;
      if (t === PMD_TYPE_HUGE) {
        // change_huge_pmd (the huge zero page stays read-only)
        const n = modifyEntry(w, vflags, shmemShared, true);
        Atomics.store(mm.pmd, idx, (w & PTE_PAYLOAD_MASK) === HUGE_ZERO_PFN ? n & ~PTE_WRITE : n);
      } else if (t === PMD_TYPE_MIGRATION) {
        Atomics.store(mm.pmd, idx, w & ~PTE_WRITE);
      } else if (t === PMD_TYPE_TABLE) {
        for (let q = ps / PAGE_SIZE; q < pe / PAGE_SIZE; q++) {
          const pw = Atomics.load(mm.pte, q);
          if (pw === 0) continue;
          const n = modifyEntry(pw, vflags, shmemShared, false);
          if (n !== pw) Atomics.store(mm.pte, q, n);
        }
      }
      ptlUnlock(mm);
    }
    invalidateRangeEnd(mm, range);
  }
}

/**
 * remap_pfn_range: map raw PFNs (not normal pages: no refcount) at [addr, addr + npages pages)
 * of an existing VMA, which becomes VM_PFNMAP | VM_IO. The PTEs are special, writable iff the VMA
 * is shared and writable. `locked`: the caller already holds the mmap lock for write (a driver's
 * mmap op); otherwise it is taken here. Returns 0, -EINVAL, or -EBUSY if a PTE is not none.
 */
export function remapPfnRange(
  mm: MmStruct,
  addr: number,
  pfn: number,
  npages: number,
  locked = false,
): number {
  if (addr % PAGE_SIZE !== 0 || npages <= 0) return -EINVAL;
  if (!locked) mm.mmapWriteLock();
  try {
    const page = addr / PAGE_SIZE;
    const i = mm.vmaAt(page);
    if (i < 0 || mm.vmaField(i, VMA_END) < page + npages) return -EINVAL;
    const f = mm.vmaField(i, VMA_FLAGS);
    if ((f & VM_HUGETLB) !== 0) return -EINVAL;
    vmaSetFlags(mm, i, f | VM_PFNMAP | VM_IO);
    const wr = (f & VM_SHARED) !== 0 && (f & VM_WRITE) !== 0 ? PTE_WRITE : 0;
    ptlLock(mm);
    try {
      for (let k = 0; k < npages; k++) {
        const idx = (page + k) >>> 9;
        const pw = Atomics.load(mm.pmd, idx);
        if (pw !== PMD_TYPE_NONE && pw !== PMD_TYPE_TABLE) return -EBUSY;
        if (Atomics.load(mm.pte, page + k) !== 0) return -EBUSY;
      }
      for (let k = 0; k < npages; k++) {
        Atomics.store(mm.pmd, (page + k) >>> 9, PMD_TYPE_TABLE);
        Atomics.store(mm.pte, page + k, PTE_TYPE_PRESENT | PTE_SPECIAL | wr | ((pfn + k) & PTE_PAYLOAD_MASK));
      }
    } finally {
      ptlUnlock(mm);
    }
    return 0;
  } finally {
    if (!locked) mm.mmapWriteUnlock();
  }
}

/**
 * vm_insert_page: map a normal frame (the mapping takes a reference) at `addr` of a VMA, which
 * becomes VM_MIXEDMAP; the PTE is present and not special, read-only unless the VMA is shared and
 * writable (vm_page_prot). `locked` as for remapPfnRange. Returns 0, -EINVAL or -EBUSY.
 */
export function vmInsertPage(mm: MmStruct, addr: number, pfn: number, locked = false): number {
  if (addr % PAGE_SIZE !== 0) return -EINVAL;
  if (!locked) mm.mmapWriteLock();
  try {
    const page = addr / PAGE_SIZE;
    const i = mm.vmaAt(page);
    if (i < 0) return -EFAULT;
    const f = mm.vmaField(i, VMA_FLAGS);
    if ((f & (VM_PFNMAP | VM_HUGETLB)) !== 0) return -EINVAL;
    if ((f & VM_MIXEDMAP) === 0) vmaSetFlags(mm, i, f | VM_MIXEDMAP);
    const wr = (f & VM_SHARED) !== 0 && (f & VM_WRITE) !== 0 ? PTE_WRITE : 0;
    ptlLock(mm);
    try {
      const idx = page >>> 9;
      const pw = Atomics.load(mm.pmd, idx);
      if ((pw !== PMD_TYPE_NONE && pw !== PMD_TYPE_TABLE) || Atomics.load(mm.pte, page) !== 0) return -EBUSY;
      mm.phys.getPage(pfn);
      Atomics.store(mm.pmd, idx, PMD_TYPE_TABLE);
      Atomics.store(mm.pte, page, PTE_TYPE_PRESENT | wr | pfn);
    } finally {
      ptlUnlock(mm);
    }
    return 0;
  } finally {
    if (!locked) mm.mmapWriteUnlock();
  }
}

/** The VMA end (bytes) of the VMA at `addr`, or -1 (tests, drivers). Caller holds the mmap lock. */
export function vmaEndAt(mm: MmStruct, addr: number): number {
  const i = mm.vmaAt(addr / PAGE_SIZE);
  return i < 0 ? -1 : mm.vmaField(i, VMA_END) * PAGE_SIZE;
}

/** Steps of a range that hold a PTE table (tests: free_pgtables behaviour). */
export function pmdPopulated(mm: MmStruct, addr: number): boolean {
  return Atomics.load(mm.pmd, Math.floor(addr / PMD_SIZE)) !== PMD_TYPE_NONE;
}
