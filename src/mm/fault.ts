/**
 * handle_mm_fault: the CPU page-fault handler that CPU accesses and hmm_range_fault both call
 * (spec/mm-events.md, Faults). Caller holds the mmap lock for read.
 *
 * Every fault first reads the entry plainly (the kernel's READ_ONCE / orig_pte), decides, does
 * the slow work (allocation, copy) unlocked, then re-checks under the PTL that the entry is still
 * the one it read (pte_same / pmd_same) before installing: a lost race drops its work and retries.
 * Only changes that lower access or change the PFN (COW, THP split) are bracketed by an
 * invalidation; adding access (none -> present, read-only -> writable on the same frame) is not.
 */
import { jitterPoint, POINT_FAULT } from '../checker/points.js';
import {
  FR_PAGECACHE,
  frOwner,
  HUGE_ZERO_PFN,
  MM_MIGRATION_WAIT,
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
  PTE_TYPE_HWPOISON,
  PTE_TYPE_MASK,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
  PTE_WRITE,
  PTRS_PER_PTE,
  THP_MODE_ALWAYS,
  THP_MODE_MADVISE,
  VM_HMMSIM_ANON_VMA,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_MIXEDMAP,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  VMA_END,
  VMA_FILE,
  VMA_FLAGS,
  VMA_PGOFF,
  VMA_START,
  ZERO_PFN,
} from './layout.js';
import { devPagemapOps } from './memremap.js';
import { type MmStruct, vmaOrFlags } from './mm.js';
import { MMU_NOTIFY_CLEAR } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { ptlLock, ptlUnlock, splitHugePmd, ZERO_PTE } from './pgtable.js';
import { FREE_EVENT_OTHER } from './physmem.js';

// enum fault_flag (v5.10 values)
export const FAULT_FLAG_WRITE = 0x01;
export const FAULT_FLAG_MKWRITE = 0x02;
export const FAULT_FLAG_ALLOW_RETRY = 0x04;
export const FAULT_FLAG_RETRY_NOWAIT = 0x08;
export const FAULT_FLAG_KILLABLE = 0x10;
export const FAULT_FLAG_TRIED = 0x20;
export const FAULT_FLAG_USER = 0x40;
export const FAULT_FLAG_REMOTE = 0x80;
export const FAULT_FLAG_INSTRUCTION = 0x100;
export const FAULT_FLAG_INTERRUPTIBLE = 0x200;

// vm_fault_t bits (v5.10 values)
export const VM_FAULT_OOM = 0x000001;
export const VM_FAULT_SIGBUS = 0x000002;
export const VM_FAULT_MAJOR = 0x000004;
export const VM_FAULT_WRITE = 0x000008;
export const VM_FAULT_HWPOISON = 0x000010;
export const VM_FAULT_HWPOISON_LARGE = 0x000020;
export const VM_FAULT_SIGSEGV = 0x000040;
export const VM_FAULT_NOPAGE = 0x000100;
export const VM_FAULT_LOCKED = 0x000200;
export const VM_FAULT_RETRY = 0x000400;
export const VM_FAULT_FALLBACK = 0x000800;
export const VM_FAULT_DONE_COW = 0x001000;
export const VM_FAULT_NEEDDSYNC = 0x002000;
export const VM_FAULT_ERROR =
  VM_FAULT_OOM |
  VM_FAULT_SIGBUS |
  VM_FAULT_SIGSEGV |
  VM_FAULT_HWPOISON |
  VM_FAULT_HWPOISON_LARGE |
  VM_FAULT_FALLBACK;

/** Internal: the entry changed under us, look again (the kernel returns and the access re-faults). */
const AGAIN = -1;
/** Most passes one handleMmFault makes before giving up with VM_FAULT_RETRY (livelock bound). */
const MAX_PASSES = 64;
/** Fault-around window (fault_around_bytes = 64 KiB). */
const FAULT_AROUND_PAGES = 16;
/** Tunables: how long migrationEntryWait waits at most (ms) before letting the caller retry. */
export const faultConfig = { migrationWaitMs: 2000 };

/** This thread's fault statistics (merged by the sim). */
export const faultStats = {
  faults: 0,
  cow: 0,
  reuse: 0,
  zeroPage: 0,
  anonPage: 0,
  thp: 0,
  hugeZero: 0,
  thpFallback: 0,
  swapIn: 0,
  fileMap: 0,
  faultAround: 0,
  migrateToRam: 0,
  migrationWaits: 0,
  oom: 0,
};

/**
 * handle_mm_fault (with the VMA checks of do_user_addr_fault folded in): resolve a fault at byte
 * `address` for `flags` (FAULT_FLAG_WRITE for a write). Caller holds the mmap lock for read.
 * Returns 0, or VM_FAULT_* bits: SIGSEGV (no VMA / not permitted), SIGBUS, HWPOISON, OOM, or
 * RETRY after a bounded number of lost races (not an error: the caller tries again).
 */
export function handleMmFault(mm: MmStruct, address: number, flags: number): number {
  const page = Math.floor(address / PAGE_SIZE);
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  faultStats.faults++;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const r = faultOnce(mm, page, write);
    if (r !== AGAIN) {
      if (r === VM_FAULT_OOM) faultStats.oom++;
      return r;
    }
  }
  return VM_FAULT_RETRY;
}

function faultOnce(mm: MmStruct, page: number, write: boolean): number {
  if (page < 0 || page >= mm.npages) return VM_FAULT_SIGSEGV;
  const vi = mm.vmaAt(page);
  if (vi < 0) return VM_FAULT_SIGSEGV;
  const vflags = mm.vmaField(vi, VMA_FLAGS);
  if ((vflags & (write ? VM_WRITE : VM_READ)) === 0) return VM_FAULT_SIGSEGV;
  if ((vflags & VM_HUGETLB) !== 0) return hugetlbFault(mm, vi, vflags, page, write);
  const idx = page >>> 9;
  // Plain read (READ_ONCE(*pmd)): every change below re-checks it under the PTL (pmd_same).
  const pmd = mm.pmd[idx]!;
  switch (pmd & PTE_TYPE_MASK) {
    case PMD_TYPE_NONE:
      if (thpEligible(mm, vi, vflags, idx)) {
        const r = doHugePmdAnonymousPage(mm, vi, idx, write);
        if (r !== VM_FAULT_FALLBACK) return r;
        faultStats.thpFallback++;
      }
      return handlePteFault(mm, vi, vflags, page, write);
    case PMD_TYPE_TABLE:
      return handlePteFault(mm, vi, vflags, page, write);
    case PMD_TYPE_HUGE:
      return hugePmdFault(mm, vflags, page, pmd, write);
    case PMD_TYPE_MIGRATION:
      migrationEntryWait(mm, page);
      return AGAIN;
    default:
      return VM_FAULT_SIGBUS;
  }
}

/** transhuge_vma_suitable + hugepage_vma_check: may a fault here map a huge PMD? */
function thpEligible(mm: MmStruct, vi: number, vflags: number, idx: number): boolean {
  if (mm.vmaField(vi, VMA_FILE) >= 0) return false;
  if ((vflags & (VM_SHARED | VM_PFNMAP | VM_MIXEDMAP | VM_IO | VM_NOHUGEPAGE)) !== 0) return false;
  const mode = mm.thpMode;
  if (mode !== THP_MODE_ALWAYS && !(mode === THP_MODE_MADVISE && (vflags & VM_HUGEPAGE) !== 0)) return false;
  const s = idx * PTRS_PER_PTE;
  return mm.vmaField(vi, VMA_START) <= s && mm.vmaField(vi, VMA_END) >= s + PTRS_PER_PTE;
}

/**
 * do_huge_pmd_anonymous_page: a read maps the huge zero page, a write a new zeroed THP;
 * VM_FAULT_FALLBACK when no order-9 block is free (the 4 KiB path then runs).
 */
function doHugePmdAnonymousPage(mm: MmStruct, vi: number, idx: number, write: boolean): number {
  vmaOrFlags(mm, vi, VM_HMMSIM_ANON_VMA); // anon_vma_prepare
  if (!write) {
    jitterPoint(POINT_FAULT);
    ptlLock(mm);
    const ok = Atomics.load(mm.pmd, idx) === PMD_TYPE_NONE;
    if (ok) Atomics.store(mm.pmd, idx, PMD_TYPE_HUGE | HUGE_ZERO_PFN);
    ptlUnlock(mm);
    if (ok) faultStats.hugeZero++;
    return ok ? 0 : AGAIN;
  }
  const head = mm.phys.allocHugePage();
  if (head < 0) return VM_FAULT_FALLBACK;
  jitterPoint(POINT_FAULT);
  ptlLock(mm);
  const ok = Atomics.load(mm.pmd, idx) === PMD_TYPE_NONE;
  if (ok) Atomics.store(mm.pmd, idx, PMD_TYPE_HUGE | PTE_WRITE | head);
  ptlUnlock(mm);
  if (!ok) {
    mm.phys.putPage(head, FREE_EVENT_OTHER, mm.id, idx * PTRS_PER_PTE);
    return AGAIN;
  }
  faultStats.thp++;
  return 0;
}

/**
 * A fault on a huge PMD: restore a NUMA-hinting protnone one (do_huge_pmd_numa_page; the write
 * bit it kept is the saved write), make an exclusively owned THP writable
 * (do_huge_pmd_wp_page reuse), otherwise split it (a 2 MiB CLEAR) and let the PTE path COW.
 */
function hugePmdFault(mm: MmStruct, vflags: number, page: number, pmd: number, write: boolean): number {
  const idx = page >>> 9;
  if ((pmd & PTE_PROTNONE) !== 0) {
    ptlLock(mm);
    if (Atomics.load(mm.pmd, idx) === pmd) Atomics.store(mm.pmd, idx, pmd & ~PTE_PROTNONE);
    ptlUnlock(mm);
    return AGAIN;
  }
  if (!write || (pmd & PTE_WRITE) !== 0) return 0;
  const head = pmd & PTE_PAYLOAD_MASK;
  const phys = mm.phys;
  if (
    head !== HUGE_ZERO_PFN &&
    (vflags & VM_SHARED) === 0 &&
    phys.isCompound(head) &&
    phys.compoundHead(head) === head &&
    phys.pageRefcount(head) === 1
  ) {
    ptlLock(mm);
    const ok = Atomics.load(mm.pmd, idx) === pmd;
    if (ok) Atomics.store(mm.pmd, idx, pmd | PTE_WRITE);
    ptlUnlock(mm);
    if (ok) faultStats.reuse++;
    return ok ? 0 : AGAIN;
  }
  // the huge zero page, or a THP shared after fork: __split_huge_pmd, then the 4 KiB COW
  splitHugePmd(mm, idx * PMD_SIZE);
  return AGAIN;
}

/**
 * The PTE-level part of the page-table lock's re-check: make sure the step has a PTE table
 * (pmd_populate on a none PMD) and that it still is one. Caller holds the PTL.
 */
function ensureTableLocked(mm: MmStruct, idx: number): boolean {
  const w = Atomics.load(mm.pmd, idx);
  if (w === PMD_TYPE_TABLE) return true;
  if (w === PMD_TYPE_NONE) {
    Atomics.store(mm.pmd, idx, PMD_TYPE_TABLE);
    return true;
  }
  return false;
}

/**
 * Install `word` at `page` if the PTE is still `expected` (pte_same under the PTL), populating
 * the PTE table if needed. True if installed.
 */
function installPte(mm: MmStruct, page: number, expected: number, word: number): boolean {
  jitterPoint(POINT_FAULT);
  ptlLock(mm);
  const ok = ensureTableLocked(mm, page >>> 9) && Atomics.load(mm.pte, page) === expected;
  if (ok) Atomics.store(mm.pte, page, word);
  ptlUnlock(mm);
  return ok;
}

/** handle_pte_fault */
function handlePteFault(mm: MmStruct, vi: number, vflags: number, page: number, write: boolean): number {
  // Plain read (orig_pte): validated by pte_same under the PTL before anything is installed.
  const pte = mm.pte[page]!;
  if (pte === 0) return doNonePte(mm, vi, vflags, page, write);
  switch (pte & PTE_TYPE_MASK) {
    case PTE_TYPE_PRESENT:
      if ((pte & PTE_PROTNONE) !== 0) {
        // do_numa_page: back to accessible; PTE_WRITE kept by NUMA hinting is the saved write
        ptlLock(mm);
        if (Atomics.load(mm.pte, page) === pte) Atomics.store(mm.pte, page, pte & ~PTE_PROTNONE);
        ptlUnlock(mm);
        return AGAIN;
      }
      if (write && (pte & PTE_WRITE) === 0) return doWpPage(mm, vi, vflags, page, pte);
      return 0;
    case PTE_TYPE_SWAP:
      return doSwapPage(mm, vi, page, pte, write);
    case PTE_TYPE_DEVICE_PRIVATE: {
      // do_swap_page -> page->pgmap->ops->migrate_to_ram, with the mmap read lock held
      const pfn = pte & PTE_PAYLOAD_MASK;
      const ops = devPagemapOps(frOwner(mm.phys.frameState(pfn)));
      if (ops === undefined) return VM_FAULT_SIGBUS;
      faultStats.migrateToRam++;
      const r = ops.migrateToRam(mm, page * PAGE_SIZE, pfn);
      return r !== 0 ? r : AGAIN;
    }
    case PTE_TYPE_MIGRATION:
      migrationEntryWait(mm, page);
      return AGAIN;
    case PTE_TYPE_HWPOISON:
      return VM_FAULT_HWPOISON;
    default:
      return VM_FAULT_SIGBUS;
  }
}

/** do_anonymous_page / do_fault for a none PTE. */
function doNonePte(mm: MmStruct, vi: number, vflags: number, page: number, write: boolean): number {
  const file = mm.vmaField(vi, VMA_FILE);
  const phys = mm.phys;
  if (file < 0) {
    // a VM_PFNMAP / VM_MIXEDMAP VMA has no fault handler for a missing page
    if ((vflags & (VM_PFNMAP | VM_MIXEDMAP)) !== 0) return VM_FAULT_SIGBUS;
    if (!write) {
      if (!installPte(mm, page, 0, ZERO_PTE)) return AGAIN;
      faultStats.zeroPage++;
      return 0;
    }
    vmaOrFlags(mm, vi, VM_HMMSIM_ANON_VMA);
    const pfn = phys.allocPage();
    if (pfn < 0) return VM_FAULT_OOM;
    if (!installPte(mm, page, 0, PTE_TYPE_PRESENT | PTE_WRITE | pfn)) {
      phys.putPage(pfn, FREE_EVENT_OTHER, mm.id, page);
      return AGAIN;
    }
    faultStats.anonPage++;
    return 0;
  }
  const vstart = mm.vmaField(vi, VMA_START);
  const index = mm.vmaField(vi, VMA_PGOFF) + (page - vstart);
  if (index >= phys.fileNpages(file)) return VM_FAULT_SIGBUS;
  const shared = (vflags & VM_SHARED) !== 0;
  if (write && !shared) {
    // do_cow_fault: a private copy of the file page
    const src = phys.findOrCreatePage(file, index);
    if (src < 0) return VM_FAULT_OOM;
    const dst = phys.allocPage();
    if (dst < 0) {
      phys.putPage(src, FREE_EVENT_OTHER, mm.id, page);
      return VM_FAULT_OOM;
    }
    phys.copyPageContent(dst, src);
    phys.putPage(src, FREE_EVENT_OTHER, mm.id, page);
    vmaOrFlags(mm, vi, VM_HMMSIM_ANON_VMA);
    if (!installPte(mm, page, 0, PTE_TYPE_PRESENT | PTE_WRITE | dst)) {
      phys.putPage(dst, FREE_EVENT_OTHER, mm.id, page);
      return AGAIN;
    }
    faultStats.cow++;
    return 0;
  }
  // do_read_fault / do_shared_fault: map the page-cache frame. Shared shmem (no write-notify)
  // maps writable on any fault; a shared regular file maps read-only until the first write.
  const shmem = phys.fileIsShmem(file);
  const canWrite = shared && (vflags & VM_WRITE) !== 0;
  const readPerm = canWrite && shmem ? PTE_WRITE : 0;
  const perm = write ? PTE_WRITE : readPerm;
  const pfn = phys.findOrCreatePage(file, index);
  if (pfn < 0) return VM_FAULT_OOM;
  jitterPoint(POINT_FAULT);
  ptlLock(mm);
  const ok = ensureTableLocked(mm, page >>> 9) && Atomics.load(mm.pte, page) === 0;
  if (ok) {
    Atomics.store(mm.pte, page, PTE_TYPE_PRESENT | perm | pfn);
    if (!write) faultAroundLocked(mm, vi, file, page, index, readPerm);
  }
  ptlUnlock(mm);
  if (!ok) {
    phys.putPage(pfn, FREE_EVENT_OTHER, mm.id, page);
    return AGAIN;
  }
  faultStats.fileMap++;
  return 0;
}

/**
 * do_fault_around / filemap_map_pages: map the neighbours already in the page cache within the
 * 64 KiB-aligned window, clipped to the VMA and the PMD step, with a read fault's permission.
 * Caller holds the PTL (lock order: PTL, then the page-cache lock).
 */
function faultAroundLocked(
  mm: MmStruct,
  vi: number,
  file: number,
  page: number,
  index: number,
  perm: number,
): void {
  const phys = mm.phys;
  let ws = page & ~(FAULT_AROUND_PAGES - 1);
  let we = ws + FAULT_AROUND_PAGES;
  const step = page & ~(PTRS_PER_PTE - 1);
  ws = Math.max(ws, mm.vmaField(vi, VMA_START), step);
  we = Math.min(we, mm.vmaField(vi, VMA_END), step + PTRS_PER_PTE);
  const npages = phys.fileNpages(file);
  for (let q = ws; q < we; q++) {
    if (q === page) continue;
    const qi = index + (q - page);
    if (qi < 0 || qi >= npages || Atomics.load(mm.pte, q) !== 0 || !phys.pageCached(file, qi)) continue;
    const pfn = phys.findGetPage(file, qi);
    if (pfn < 0) continue;
    Atomics.store(mm.pte, q, PTE_TYPE_PRESENT | perm | pfn);
    faultStats.faultAround++;
  }
}

/** do_wp_page: a write to a present read-only PTE of a writable VMA. */
function doWpPage(mm: MmStruct, vi: number, vflags: number, page: number, pte: number): number {
  const pfn = pte & PTE_PAYLOAD_MASK;
  const phys = mm.phys;
  if ((pte & PTE_SPECIAL) !== 0) {
    if (pfn === ZERO_PFN && (vflags & VM_SHARED) === 0) return wpPageCopy(mm, vi, page, pte);
    if ((vflags & VM_SHARED) === 0) return VM_FAULT_SIGBUS; // private COW of a raw PFN: not modelled
    return makeWritable(mm, page, pte); // wp_pfn_shared
  }
  if ((vflags & VM_SHARED) !== 0) return makeWritable(mm, page, pte); // wp_page_shared (page_mkwrite)
  // private: reuse only an exclusively owned anonymous page (v5.10: page_count == 1)
  if ((phys.frameState(pfn) & FR_PAGECACHE) === 0 && phys.pageRefcount(pfn) === 1) {
    const r = makeWritable(mm, page, pte);
    if (r === 0) faultStats.reuse++;
    return r;
  }
  return wpPageCopy(mm, vi, page, pte);
}

/** wp_page_reuse / wp_page_shared: the same frame becomes writable; adds access, no invalidation. */
function makeWritable(mm: MmStruct, page: number, pte: number): number {
  ptlLock(mm);
  const ok = Atomics.load(mm.pte, page) === pte;
  if (ok) Atomics.store(mm.pte, page, pte | PTE_WRITE);
  ptlUnlock(mm);
  return ok ? 0 : AGAIN;
}

/**
 * wp_page_copy: copy the shared frame (or take a zeroed one for the zero page) before the
 * invalidation, then replace the PTE inside a one-page CLEAR invalidation; the old frame's
 * reference goes after end (or right after the change in the 'after-clear' free mode).
 */
function wpPageCopy(mm: MmStruct, vi: number, page: number, pte: number): number {
  const phys = mm.phys;
  const old = pte & PTE_PAYLOAD_MASK;
  const special = (pte & PTE_SPECIAL) !== 0;
  const dst = phys.allocPage();
  if (dst < 0) return VM_FAULT_OOM;
  if (!special) phys.copyPageContent(dst, old);
  vmaOrFlags(mm, vi, VM_HMMSIM_ANON_VMA);
  const addr = page * PAGE_SIZE;
  const range = rangeInit(mm, MMU_NOTIFY_CLEAR, addr, addr + PAGE_SIZE);
  invalidateRangeStart(mm, range);
  jitterPoint(POINT_FAULT);
  ptlLock(mm);
  const ok = Atomics.load(mm.pte, page) === pte;
  if (ok) Atomics.store(mm.pte, page, PTE_TYPE_PRESENT | PTE_WRITE | dst);
  ptlUnlock(mm);
  const afterClear = mm.freeMode !== 0;
  if (ok && !special && afterClear) phys.putPage(old, MMU_NOTIFY_CLEAR, mm.id, page);
  invalidateRangeEnd(mm, range);
  if (!ok) {
    phys.putPage(dst, FREE_EVENT_OTHER, mm.id, page);
    return AGAIN;
  }
  if (!special && !afterClear) phys.putPage(old, MMU_NOTIFY_CLEAR, mm.id, page);
  faultStats.cow++;
  return 0;
}

/**
 * do_swap_page for a swap entry: read the slot into a new frame (no swap cache in hmmsim: each
 * swap-in of a shared slot gets its own copy, counted as copied). A read fault maps read-only; a
 * write fault on an exclusively owned slot maps writable at once; a write to a shared one swaps
 * in, then COWs (one-page CLEAR).
 */
function doSwapPage(mm: MmStruct, vi: number, page: number, pte: number, write: boolean): number {
  const phys = mm.phys;
  const slot = pte & PTE_PAYLOAD_MASK;
  const pfn = phys.allocPage();
  if (pfn < 0) return VM_FAULT_OOM;
  const shared = phys.swapCount(slot) > 1;
  phys.swapInContent(pfn, slot, shared);
  vmaOrFlags(mm, vi, VM_HMMSIM_ANON_VMA);
  const word = PTE_TYPE_PRESENT | (write && !shared ? PTE_WRITE : 0) | pfn;
  if (!installPte(mm, page, pte, word)) {
    // lost the race: our copy goes (it was counted as copied if shared; else the slot still has it)
    phys.putPage(pfn, FREE_EVENT_OTHER, mm.id, page, !shared);
    return AGAIN;
  }
  phys.swapFree(slot, !shared);
  faultStats.swapIn++;
  if (write && shared) return wpPageCopy(mm, vi, page, word) === 0 ? 0 : AGAIN;
  return 0;
}

/**
 * A hugetlb fault (hugetlb_fault): hugetlb_no_page allocates a zeroed huge page (read-only for a
 * private read, writable for a write: hugetlb_cow's reuse); a write to a read-only one reuses it
 * if exclusively owned, else copies it inside a CLEAR over the huge page (hugetlb_cow). No huge
 * page free is VM_FAULT_SIGBUS, as with an empty hugetlb pool.
 */
function hugetlbFault(mm: MmStruct, vi: number, vflags: number, page: number, write: boolean): number {
  const idx = page >>> 9;
  const phys = mm.phys;
  // Plain read: re-checked under the PTL (huge_pte_same) before any change.
  const pmd = mm.pmd[idx]!;
  const t = pmd & PTE_TYPE_MASK;
  if (t === PMD_TYPE_MIGRATION) {
    migrationEntryWait(mm, page);
    return AGAIN;
  }
  if (t === PMD_TYPE_NONE) {
    const head = phys.allocHugePage();
    if (head < 0) return VM_FAULT_SIGBUS;
    vmaOrFlags(mm, vi, VM_HMMSIM_ANON_VMA);
    const w = PMD_TYPE_HUGE | head | (write || (vflags & VM_SHARED) !== 0 ? PTE_WRITE : 0);
    jitterPoint(POINT_FAULT);
    ptlLock(mm);
    const ok = Atomics.load(mm.pmd, idx) === PMD_TYPE_NONE;
    if (ok) Atomics.store(mm.pmd, idx, w);
    ptlUnlock(mm);
    if (!ok) {
      phys.putPage(head, FREE_EVENT_OTHER, mm.id, idx * PTRS_PER_PTE);
      return AGAIN;
    }
    return 0;
  }
  if (t !== PMD_TYPE_HUGE) return VM_FAULT_SIGBUS;
  if (!write || (pmd & PTE_WRITE) !== 0) return 0;
  const head = pmd & PTE_PAYLOAD_MASK;
  if (phys.pageRefcount(head) === 1) {
    ptlLock(mm);
    const ok = Atomics.load(mm.pmd, idx) === pmd;
    if (ok) Atomics.store(mm.pmd, idx, pmd | PTE_WRITE);
    ptlUnlock(mm);
    return ok ? 0 : AGAIN;
  }
  const dst = phys.allocHugePage();
  if (dst < 0) return VM_FAULT_SIGBUS;
  for (let i = 0; i < PTRS_PER_PTE; i++) phys.copyPageContent(dst + i, head + i);
  const start = idx * PMD_SIZE;
  const range = rangeInit(mm, MMU_NOTIFY_CLEAR, start, start + PMD_SIZE);
  invalidateRangeStart(mm, range);
  jitterPoint(POINT_FAULT);
  ptlLock(mm);
  const ok = Atomics.load(mm.pmd, idx) === pmd;
  if (ok) Atomics.store(mm.pmd, idx, PMD_TYPE_HUGE | PTE_WRITE | dst);
  ptlUnlock(mm);
  invalidateRangeEnd(mm, range);
  if (!ok) {
    phys.putPage(dst, FREE_EVENT_OTHER, mm.id, idx * PTRS_PER_PTE);
    return AGAIN;
  }
  phys.putPage(head, MMU_NOTIFY_CLEAR, mm.id, idx * PTRS_PER_PTE);
  faultStats.cow++;
  return 0;
}

/**
 * migration_entry_wait: sleep until the migration entry at `page` (PTE or PMD) is gone. Waits on
 * the mm's MM_MIGRATION_WAIT word, which the migration code bumps and notifies
 * (migrationEntryWake) whenever it removes migration entries; bounded by faultConfig.migrationWaitMs, after
 * which the caller simply retries.
 */
export function migrationEntryWait(mm: MmStruct, page: number): void {
  faultStats.migrationWaits++;
  const deadline = Date.now() + faultConfig.migrationWaitMs;
  for (;;) {
    const g = Atomics.load(mm.ctl, MM_MIGRATION_WAIT);
    const pmd = Atomics.load(mm.pmd, page >>> 9);
    const migrating =
      (pmd & PTE_TYPE_MASK) === PMD_TYPE_MIGRATION ||
      ((pmd & PTE_TYPE_MASK) === PMD_TYPE_TABLE &&
        (Atomics.load(mm.pte, page) & PTE_TYPE_MASK) === PTE_TYPE_MIGRATION);
    if (!migrating) return;
    const left = deadline - Date.now();
    if (left <= 0) return;
    Atomics.wait(mm.ctl, MM_MIGRATION_WAIT, g, Math.min(left, 50));
  }
}

/** For the migration code: wake migrationEntryWait callers after removing migration entries. */
export function migrationEntryWake(mm: MmStruct): void {
  Atomics.add(mm.ctl, MM_MIGRATION_WAIT, 1);
  Atomics.notify(mm.ctl, MM_MIGRATION_WAIT);
}

/** A fault's error bits as the negative errno a CPU access / GUP caller returns. */
export function vmFaultToErrno(r: number): number {
  if ((r & VM_FAULT_OOM) !== 0) return -12; // -ENOMEM
  if ((r & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE | VM_FAULT_SIGBUS)) !== 0) return -14; // -EFAULT
  if ((r & VM_FAULT_SIGSEGV) !== 0) return -14;
  return 0;
}
