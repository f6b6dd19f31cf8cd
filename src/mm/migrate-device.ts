/**
 * Device migration (migrate_vma_setup / migrate_vma_pages / migrate_vma_finalize, v5.10) as the
 * reference device uses it (spec/driver.md "migrate" and "CPU fault on a device page").
 *
 * A chunk is at most 64 pages inside one VMA; the caller holds the mmap read lock. The collect
 * step runs inside one MIGRATE invalidation that names the device (and the file) as owner, so
 * that file can skip it; a THP or the huge zero page met there is split first (its own 2 MiB
 * CLEAR, nested, as migrate_vma_collect_pmd does). Collected pages have their PTE replaced by a
 * migration entry. Empty and zero-page PTEs of anonymous VMAs are collected without a page and
 * get a new zeroed device page later, inside a CLEAR over [first such address, chunk end). The
 * new entries replace the migration entries after that with no notification (adding access),
 * and the old frames are freed. Content and write counter move with each page.
 *
 * The per-page arrays use the kernel's migrate_pfn encoding: (pfn << MIGRATE_PFN_SHIFT) | flags.
 */

import { migrationEntryWake, VM_FAULT_OOM, VM_FAULT_SIGBUS } from './fault.js';
import {
  FR_DEVICE_PRIVATE,
  FR_PAGECACHE,
  frOwner,
  HUGE_ZERO_PFN,
  PAGE_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_NONE,
  PMD_TYPE_TABLE,
  PTE_DEVMAP,
  PTE_PAYLOAD_MASK,
  PTE_SPECIAL,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_MASK,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
  PTRS_PER_PTE,
  VM_DONTEXPAND,
  VM_HMMSIM_ANON_VMA,
  VM_HUGETLB,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
  VMA_END,
  VMA_FLAGS,
  ZERO_PFN,
} from './layout.js';
import { type MmStruct, vmaOrFlags } from './mm.js';
import { EINVAL, MMU_NOTIFY_CLEAR, MMU_NOTIFY_MIGRATE, type MmuNotifierRange } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { trylockPage, unlockPage } from './numa.js';
import { ptlLock, ptlUnlock, splitHugePmd } from './pgtable.js';
import { FREE_EVENT_MIGRATE_DONE } from './physmem.js';
import { vmaIsAnonymous } from './thp.js';

// ---- include/linux/migrate.h (v5.10) ----
export const MIGRATE_PFN_VALID = 1 << 0;
export const MIGRATE_PFN_MIGRATE = 1 << 1;
export const MIGRATE_PFN_LOCKED = 1 << 2;
export const MIGRATE_PFN_WRITE = 1 << 3;
export const MIGRATE_PFN_DEVICE = 1 << 4;
export const MIGRATE_PFN_SHIFT = 6;
export const MIGRATE_VMA_SELECT_SYSTEM = 1 << 0;
export const MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 1 << 1;
/** The test driver's chunk: its src/dst arrays hold 64 entries. */
export const MIGRATE_CHUNK_PAGES = 64;

/** migrate_pfn: a PFN (below 2^24) as a valid entry. */
export function migratePfn(pfn: number): number {
  return (pfn << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID;
}

/** migrate_pfn_to_page: the PFN of an entry, or -1 if it names no page. */
export function migratePfnToPfn(m: number): number {
  return (m & MIGRATE_PFN_VALID) !== 0 ? m >>> MIGRATE_PFN_SHIFT : -1;
}

/** struct migrate_vma: one chunk. Addresses are bytes, `end` exclusive. */
export interface MigrateVma {
  start: number;
  end: number;
  /** per page: the source page and MIGRATE_PFN_* flags (collect fills it) */
  src: Int32Array;
  /** per page: the destination page (the driver's copy step fills it) */
  dst: Int32Array;
  /** pages walked */
  npages: number;
  /** pages collected (kernel's cpages: empty pages included) */
  cpages: number;
  /** pgmap_owner: the device whose pages are selected and whose MIGRATE events these are */
  owner: number;
  /** hmmsim: the open file that started the migration (driver.md quirk (c)) */
  ownerFile: number;
  /** MIGRATE_VMA_SELECT_* */
  flags: number;
}

/** A reusable chunk descriptor (arrays of MIGRATE_CHUNK_PAGES unless told). */
export function migrateVmaInit(
  start: number,
  end: number,
  owner: number,
  ownerFile: number,
  flags: number,
  capacity = MIGRATE_CHUNK_PAGES,
): MigrateVma {
  return {
    start,
    end,
    src: new Int32Array(capacity),
    dst: new Int32Array(capacity),
    npages: 0,
    cpages: 0,
    owner,
    ownerFile,
    flags,
  };
}

/** This thread's device-migration counters (merged by the sim). */
export const migrateDeviceStats = {
  /** pages moved to device memory (empty pages included) */
  toDevice: 0,
  /** pages moved back to system memory */
  toRam: 0,
  /** collected pages refused (shared or page-cache) or not moved (no destination) */
  refused: 0,
  /** CPU faults on a device page shared with another mm: copied back rather than moved */
  sharedCopies: 0,
};

// ------------------------------------------------------------------------------------------
// The three kernel steps

/**
 * migrate_vma_setup: check the chunk (inside one VMA that is not hugetlb, VM_IO, VM_PFNMAP,
 * VM_MIXEDMAP or VM_DONTEXPAND: else -EINVAL), then collect. Caller holds the mmap read lock.
 */
export function migrateVmaSetup(mm: MmStruct, m: MigrateVma): number {
  const { start, end } = m;
  if (start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0 || !(start < end)) return -EINVAL;
  const sp = start / PAGE_SIZE;
  const ep = end / PAGE_SIZE;
  if (ep > mm.npages || ep - sp > m.src.length || ep - sp > m.dst.length) return -EINVAL;
  const vi = mm.vmaAt(sp);
  if (vi < 0 || mm.vmaField(vi, VMA_END) < ep) return -EINVAL;
  if ((mm.vmaField(vi, VMA_FLAGS) & (VM_HUGETLB | VM_IO | VM_PFNMAP | VM_MIXEDMAP | VM_DONTEXPAND)) !== 0) {
    return -EINVAL;
  }
  m.src.fill(0, 0, ep - sp);
  m.dst.fill(0, 0, ep - sp);
  m.npages = 0;
  m.cpages = 0;
  migrateVmaCollect(mm, m, vmaIsAnonymous(mm, vi));
  return 0;
}

/**
 * migrate_vma_collect: the MIGRATE invalidation with the device as owner; inside it each
 * selected page's PTE becomes a migration entry (the mapping's reference passes to the
 * migration), empty and zero-page PTEs of an anonymous VMA are collected without a page.
 */
function migrateVmaCollect(mm: MmStruct, m: MigrateVma, anon: boolean): void {
  const sp = m.start / PAGE_SIZE;
  const ep = m.end / PAGE_SIZE;
  const range = rangeInit(mm, MMU_NOTIFY_MIGRATE, m.start, m.end, true, m.owner, m.ownerFile);
  invalidateRangeStart(mm, range);
  for (let p = sp; p < ep; ) {
    const idx = p >>> 9;
    const stepEnd = Math.min((idx + 1) * PTRS_PER_PTE, ep);
    // Hint read; the PTL section re-reads the PMD before acting on the PTEs.
    const w = Atomics.load(mm.pmd, idx);
    if ((w & PTE_TYPE_MASK) === PMD_TYPE_HUGE) {
      const head = w & PTE_PAYLOAD_MASK;
      if (head === HUGE_ZERO_PFN) {
        splitHugePmd(mm, p * PAGE_SIZE); // split_huge_pmd of the huge zero page
      } else if (trylockPage(mm.phys, head)) {
        // trylock_page + split_huge_page: only the THP this look saw, never a PMD migration entry
        // (a THP being migrated holds its page lock: the trylock fails and the step is skipped)
        splitHugePmd(mm, p * PAGE_SIZE, true, head);
        unlockPage(mm.phys, head);
      }
      // (a failed trylock: the PTL section finds the PMD still huge, migrate_vma_collect_skip)
    }
    ptlLock(mm);
    const t = Atomics.load(mm.pmd, idx) & PTE_TYPE_MASK;
    for (let q = p; q < stepEnd; q++) {
      let mpfn = 0;
      if (t === PMD_TYPE_NONE) {
        // migrate_vma_collect_hole
        if (anon) mpfn = MIGRATE_PFN_MIGRATE;
      } else if (t === PMD_TYPE_TABLE) {
        mpfn = collectPteLocked(mm, m, q, anon);
      }
      // (a PMD migration entry or a split that did not happen: migrate_vma_collect_skip)
      if ((mpfn & MIGRATE_PFN_MIGRATE) !== 0) m.cpages++;
      m.src[q - sp] = mpfn;
    }
    ptlUnlock(mm);
    p = stepEnd;
  }
  m.npages = ep - sp;
  invalidateRangeEnd(mm, range);
}

/** migrate_vma_collect_pmd's per-PTE step (caller holds the PTL). Returns the src entry. */
function collectPteLocked(mm: MmStruct, m: MigrateVma, q: number, anon: boolean): number {
  const e = Atomics.load(mm.pte, q);
  if (e === 0) return anon ? MIGRATE_PFN_MIGRATE : 0;
  const t = e & PTE_TYPE_MASK;
  const pfn = e & PTE_PAYLOAD_MASK;
  const phys = mm.phys;
  const w = (e & PTE_WRITE) !== 0 ? MIGRATE_PFN_WRITE : 0;
  let mpfn: number;
  if (t === PTE_TYPE_PRESENT) {
    if ((m.flags & MIGRATE_VMA_SELECT_SYSTEM) === 0) return 0;
    if ((e & PTE_SPECIAL) !== 0 && pfn === ZERO_PFN) return anon ? MIGRATE_PFN_MIGRATE : 0;
    if ((e & (PTE_SPECIAL | PTE_DEVMAP)) !== 0) return 0; // vm_normal_page() == NULL
    mpfn = migratePfn(pfn) | MIGRATE_PFN_MIGRATE | w;
  } else if (t === PTE_TYPE_DEVICE_PRIVATE) {
    if ((m.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) === 0) return 0;
    if (frOwner(phys.frameState(pfn)) !== m.owner) return 0;
    mpfn = migratePfn(pfn) | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_DEVICE | w;
  } else {
    return 0; // swap, migration, hwpoison entries: skipped
  }
  // hmmsim always gets the page lock here or skips the page (the kernel would retry the lock in
  // migrate_vma_prepare and unmap with try_to_unmap's CLEAR)
  if (!trylockPage(phys, pfn)) return 0;
  Atomics.store(mm.pte, q, PTE_TYPE_MIGRATION | (e & PTE_WRITE) | pfn);
  return mpfn | MIGRATE_PFN_LOCKED;
}

/**
 * migrate_vma_pages: pages without a destination are dropped from the migration; collected
 * pages without a source get their new page inserted (migrate_vma_insert_page) inside one CLEAR
 * over [first such address, end); a page-cache page, or a frame shared with another mm, is
 * refused when the destination is device-private (hmmsim: shared frames are rmap-only).
 */
export function migrateVmaPages(mm: MmStruct, m: MigrateVma): void {
  const phys = mm.phys;
  const sp = m.start / PAGE_SIZE;
  let range: MmuNotifierRange | null = null;
  for (let i = 0; i < m.npages; i++) {
    const newpfn = migratePfnToPfn(m.dst[i]!);
    const oldpfn = migratePfnToPfn(m.src[i]!);
    if (newpfn < 0) {
      if ((m.src[i]! & MIGRATE_PFN_MIGRATE) !== 0) migrateDeviceStats.refused++;
      m.src[i] = m.src[i]! & ~MIGRATE_PFN_MIGRATE;
      continue;
    }
    if (oldpfn < 0) {
      if ((m.src[i]! & MIGRATE_PFN_MIGRATE) === 0) continue;
      if (range === null) {
        range = rangeInit(mm, MMU_NOTIFY_CLEAR, (sp + i) * PAGE_SIZE, m.end);
        invalidateRangeStart(mm, range);
      }
      if (!migrateVmaInsertPage(mm, sp + i, newpfn)) m.src[i] = m.src[i]! & ~MIGRATE_PFN_MIGRATE;
      continue;
    }
    if ((m.src[i]! & MIGRATE_PFN_MIGRATE) === 0) continue;
    if ((phys.frameState(newpfn) & FR_DEVICE_PRIVATE) !== 0) {
      const st = phys.frameState(oldpfn);
      if ((st & FR_PAGECACHE) !== 0 || phys.pageRefcount(oldpfn) !== 1) {
        m.src[i] = m.src[i]! & ~MIGRATE_PFN_MIGRATE;
        migrateDeviceStats.refused++;
      }
    }
  }
  if (range !== null) invalidateRangeEnd(mm, range);
}

/**
 * migrate_vma_insert_page: where the PTE is still none (populating the PTE table) or the zero
 * page, install the new page, writable iff the VMA has VM_WRITE. False if the VMA is not
 * anonymous or the entry changed since collect.
 */
function migrateVmaInsertPage(mm: MmStruct, page: number, newpfn: number): boolean {
  const vi = mm.vmaAt(page);
  if (vi < 0 || !vmaIsAnonymous(mm, vi)) return false;
  vmaOrFlags(mm, vi, VM_HMMSIM_ANON_VMA); // anon_vma_prepare
  const phys = mm.phys;
  const write = (mm.vmaField(vi, VMA_FLAGS) & VM_WRITE) !== 0 ? PTE_WRITE : 0;
  const device = (phys.frameState(newpfn) & FR_DEVICE_PRIVATE) !== 0;
  const entry = (device ? PTE_TYPE_DEVICE_PRIVATE : PTE_TYPE_PRESENT) | write | newpfn;
  const idx = page >>> 9;
  ptlLock(mm);
  let ok = false;
  const pmd = Atomics.load(mm.pmd, idx);
  if (pmd === PMD_TYPE_NONE) Atomics.store(mm.pmd, idx, PMD_TYPE_TABLE); // __pte_alloc
  if (pmd === PMD_TYPE_NONE || pmd === PMD_TYPE_TABLE) {
    const e = Atomics.load(mm.pte, page);
    if (e === 0 || e === (PTE_TYPE_PRESENT | PTE_SPECIAL | ZERO_PFN)) {
      Atomics.store(mm.pte, page, entry);
      phys.getPage(newpfn); // the mapping's reference; finalize drops the allocation's
      ok = true;
    }
  }
  ptlUnlock(mm);
  return ok;
}

/**
 * migrate_vma_finalize: each migration entry becomes the new page (device-private entry or
 * present PTE, writable iff the migration entry was) or, for a page that did not move, the old
 * page again; then the old frames (content moved) and the unused new ones are freed and
 * migration waiters woken. No invalidation: every change here adds access.
 */
export function migrateVmaFinalize(mm: MmStruct, m: MigrateVma): void {
  const phys = mm.phys;
  const sp = m.start / PAGE_SIZE;
  let woke = false;
  for (let i = 0; i < m.npages; i++) {
    const page = sp + i;
    let newpfn = migratePfnToPfn(m.dst[i]!);
    const oldpfn = migratePfnToPfn(m.src[i]!);
    if (oldpfn < 0) {
      // an inserted page keeps the mapping's reference; an unused one is freed here
      if (newpfn >= 0) {
        if ((m.src[i]! & MIGRATE_PFN_MIGRATE) !== 0) countMoved(phys.frameState(newpfn));
        phys.putPageMoved(newpfn, FREE_EVENT_MIGRATE_DONE, mm.id, page);
      }
      continue;
    }
    if ((m.src[i]! & MIGRATE_PFN_MIGRATE) === 0 || newpfn < 0) {
      // the copy (if any) was a duplicate that is dropped: no discard to count
      if (newpfn >= 0) phys.putPageMoved(newpfn, FREE_EVENT_MIGRATE_DONE, mm.id, page);
      newpfn = oldpfn;
    }
    const found = removeMigrationPte(mm, page, oldpfn, newpfn);
    woke = true;
    unlockPage(phys, oldpfn);
    if (newpfn !== oldpfn) {
      if (found) {
        phys.putPageMoved(oldpfn, FREE_EVENT_MIGRATE_DONE, mm.id, page);
        countMoved(phys.frameState(newpfn));
      } else {
        // zapped meanwhile (MADV_DONTNEED under the read lock): the content died with it
        phys.putPageMoved(newpfn, FREE_EVENT_MIGRATE_DONE, mm.id, page);
        phys.putPage(oldpfn, MMU_NOTIFY_CLEAR, mm.id, page);
      }
    } else if (!found) {
      phys.putPage(oldpfn, MMU_NOTIFY_CLEAR, mm.id, page);
    }
  }
  if (woke) migrationEntryWake(mm);
}

function countMoved(newState: number): void {
  if ((newState & FR_DEVICE_PRIVATE) !== 0) migrateDeviceStats.toDevice++;
  else migrateDeviceStats.toRam++;
}

/** remove_migration_pte for one page: true if the entry was still there. */
function removeMigrationPte(mm: MmStruct, page: number, oldpfn: number, newpfn: number): boolean {
  const device = (mm.phys.frameState(newpfn) & FR_DEVICE_PRIVATE) !== 0;
  ptlLock(mm);
  const e = Atomics.load(mm.pte, page);
  const found = (e & PTE_TYPE_MASK) === PTE_TYPE_MIGRATION && (e & PTE_PAYLOAD_MASK) === oldpfn;
  if (found) {
    const type = device ? PTE_TYPE_DEVICE_PRIVATE : PTE_TYPE_PRESENT;
    Atomics.store(mm.pte, page, type | (e & PTE_WRITE) | newpfn);
  }
  ptlUnlock(mm);
  return found;
}

/**
 * Between migrate_vma_pages and migrate_vma_finalize: true if page i of the chunk still has the
 * CPU entry this migration left there (the migration entry of its source page, or for a page that
 * had none, the inserted destination page). False if it was zapped meanwhile (MADV_DONTNEED under
 * the mmap read lock clears migration entries): finalize then frees the destination page, so a
 * device must not mirror it. A plain check of the entry word: the caller (a driver under its
 * update lock, with no invalidation of its subscription open) relies on every zap being
 * announced by an invalidation it honours.
 */
export function migrateVmaStillMapped(mm: MmStruct, m: MigrateVma, i: number): boolean {
  const page = m.start / PAGE_SIZE + i;
  const e = Atomics.load(mm.pte, page);
  const oldpfn = migratePfnToPfn(m.src[i]!);
  if (oldpfn >= 0) return (e & PTE_TYPE_MASK) === PTE_TYPE_MIGRATION && (e & PTE_PAYLOAD_MASK) === oldpfn;
  const newpfn = migratePfnToPfn(m.dst[i]!);
  return (e & PTE_TYPE_MASK) === PTE_TYPE_DEVICE_PRIVATE && (e & PTE_PAYLOAD_MASK) === newpfn;
}

/**
 * Between migrate_vma_pages and migrate_vma_finalize, for a page migrateVmaStillMapped accepts:
 * true if its CPU entry is still writable. The collect-time MIGRATE_PFN_WRITE can be stale: a
 * change_protection under the mmap read lock (NUMA hinting's change_prot_numa) makes writable
 * migration and device-private entries read-only meanwhile, and remove_migration_pte then
 * installs the new page read-only. A driver installing the new page (under its update lock,
 * with no invalidation of its subscription open) must not map it more permissively than this.
 */
export function migrateVmaEntryWritable(mm: MmStruct, m: MigrateVma, i: number): boolean {
  return (Atomics.load(mm.pte, m.start / PAGE_SIZE + i) & PTE_WRITE) !== 0;
}

// ------------------------------------------------------------------------------------------
// The reference device's two directions

export interface MigrateToDeviceOps {
  /**
   * Copy one page's content into the new device frame (dmirror's copy_highpage). Default: the
   * content and its write counter move (PhysMem.moveContent).
   */
  copy?: (dstPfn: number, srcPfn: number) => void;
  /**
   * dmirror_migrate_finalize_and_map: install the mirror entries for the pages whose src still
   * has MIGRATE_PFN_MIGRATE, from dst (MIGRATE_PFN_WRITE: writable, unless the CPU entry lost
   * write since the collect: migrateVmaEntryWritable). Called after
   * migrateVmaPages and before migrateVmaFinalize, while the CPU PTEs are still migration
   * entries: a CPU fault that would migrate a page back waits for finalize, so it cannot erase
   * the entry before it is installed. A page zapped meanwhile (migrateVmaStillMapped false) or
   * one an open invalidation may still zap must not be installed: finalize frees its destination.
   */
  finalizeAndMap?: (m: MigrateVma) => void;
}

/**
 * One chunk of the reference device's migrate (dmirror_migrate's loop body): setup (collect),
 * alloc-and-copy (a new device page from `allocDevicePage` for every collected page, -1 meaning
 * none left: that page stays; empty pages get the zeroed page as it comes), pages,
 * finalize-and-map, finalize. `m` names the chunk (start, end inside one VMA, at most
 * m.src.length pages), the owner and file, and gets the results. Caller holds the mmap read lock.
 * Returns 0 or -EINVAL from setup.
 */
export function migrateVmaToDevice(
  mm: MmStruct,
  m: MigrateVma,
  allocDevicePage: () => number,
  ops: MigrateToDeviceOps = {},
): number {
  m.flags = MIGRATE_VMA_SELECT_SYSTEM;
  const r = migrateVmaSetup(mm, m);
  if (r !== 0) return r;
  const phys = mm.phys;
  for (let i = 0; i < m.npages; i++) {
    const s = m.src[i]!;
    if ((s & MIGRATE_PFN_MIGRATE) === 0) continue;
    const dpage = allocDevicePage();
    if (dpage < 0) continue;
    const spage = migratePfnToPfn(s);
    if (spage >= 0) {
      if (ops.copy !== undefined) ops.copy(dpage, spage);
      else phys.moveContent(dpage, spage);
    }
    m.dst[i] = migratePfn(dpage) | MIGRATE_PFN_LOCKED | (s & MIGRATE_PFN_WRITE);
  }
  migrateVmaPages(mm, m);
  ops.finalizeAndMap?.(m);
  migrateVmaFinalize(mm, m);
  return 0;
}

/**
 * The reference device's chunking and VMA checks (dmirror_migrate): the chunk that starts at
 * byte `addr` of a migrate over [addr, end) ends at the first of addr + 64 pages, `end`, and the
 * VMA's end. -EINVAL when no VMA contains `addr` or it lacks VM_READ (migrate_vma_setup adds the
 * hugetlb / VM_SPECIAL checks). Caller holds the mmap lock.
 */
export function migrateVmaNextChunk(mm: MmStruct, addr: number, end: number): number {
  const p = Math.floor(addr / PAGE_SIZE);
  if (p < 0 || p >= mm.npages) return -EINVAL;
  const vi = mm.vmaAt(p);
  if (vi < 0 || (mm.vmaField(vi, VMA_FLAGS) & VM_READ) === 0) return -EINVAL;
  return Math.min(end, addr + MIGRATE_CHUNK_PAGES * PAGE_SIZE, mm.vmaField(vi, VMA_END) * PAGE_SIZE);
}

export interface MigrateRangeResult {
  /** 0, or the first chunk's error (earlier chunks stay migrated) */
  ret: number;
  /** chunks run */
  chunks: number;
  /** pages collected, summed over the chunks */
  cpages: number;
  /** pages now in device memory that this call moved */
  migrated: number;
}

/**
 * The whole of dmirror_migrate's loop over [start, end): takes the mmap read lock, runs
 * migrateVmaToDevice chunk by chunk (one reusable descriptor), stops at the first error.
 */
export function migrateRangeToDevice(
  mm: MmStruct,
  start: number,
  end: number,
  owner: number,
  ownerFile: number,
  allocDevicePage: () => number,
  ops: MigrateToDeviceOps = {},
): MigrateRangeResult {
  const res: MigrateRangeResult = { ret: 0, chunks: 0, cpages: 0, migrated: 0 };
  const m = migrateVmaInit(start, start, owner, ownerFile, MIGRATE_VMA_SELECT_SYSTEM);
  mm.mmapReadLock();
  try {
    for (let addr = start; addr < end; ) {
      const next = migrateVmaNextChunk(mm, addr, end);
      if (next < 0) {
        res.ret = next;
        break;
      }
      m.start = addr;
      m.end = next;
      const r = migrateVmaToDevice(mm, m, allocDevicePage, ops);
      if (r !== 0) {
        res.ret = r;
        break;
      }
      res.chunks++;
      res.cpages += m.cpages;
      for (let i = 0; i < m.npages; i++) if ((m.src[i]! & MIGRATE_PFN_MIGRATE) !== 0) res.migrated++;
      addr = next;
    }
  } finally {
    mm.mmapReadUnlock();
  }
  return res;
}

export interface MigrateToRamOps {
  /**
   * Called once the CPU PTE is a migration entry, before the copy: the file that migrated the
   * page erases its mirror entry (dmirror_devmem_fault_alloc_and_copy's xa_erase).
   */
  erase?: (address: number) => void;
}

const toRam = migrateVmaInit(0, 0, -1, -1, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, 1);

/**
 * dev_pagemap_ops.migrate_to_ram of the reference device (dmirror_devmem_fault): move the one
 * device page `pfn` mapped at byte `address` back into a new system frame, inside a MIGRATE
 * invalidation over that page naming `owner` / `ownerFile`. The new PTE is writable iff the
 * device entry was. Caller holds the mmap read lock (the fault path). Returns 0 (also when the
 * entry changed meanwhile: the fault is retried), VM_FAULT_SIGBUS if setup fails, VM_FAULT_OOM
 * if no frame is free (hmmsim's choice: the test driver would leave the page and let the fault
 * loop). A device page shared with another mm (fork) is copied rather than moved (hmmsim has no
 * rmap walk to move every mapping): the content counts as copied, the other mm keeps the page.
 */
export function migrateToRamOnePage(
  mm: MmStruct,
  address: number,
  pfn: number,
  owner: number,
  ownerFile: number,
  ops: MigrateToRamOps = {},
): number {
  const m = toRam;
  const a = Math.floor(address / PAGE_SIZE) * PAGE_SIZE;
  m.start = a;
  m.end = a + PAGE_SIZE;
  m.owner = owner;
  m.ownerFile = ownerFile;
  m.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
  if (migrateVmaSetup(mm, m) !== 0) return VM_FAULT_SIGBUS;
  const s = m.src[0]!;
  if ((s & MIGRATE_PFN_MIGRATE) === 0 || migratePfnToPfn(s) !== pfn) {
    // not this device's page any more (or not the page the fault saw): undo and retry
    migrateVmaFinalize(mm, m);
    return 0;
  }
  ops.erase?.(a);
  const phys = mm.phys;
  const shared = phys.pageRefcount(pfn) > 1;
  const dpage = phys.allocPage();
  if (dpage < 0) {
    migrateVmaFinalize(mm, m);
    return VM_FAULT_OOM;
  }
  if (shared) phys.copyPageContent(dpage, pfn);
  else phys.moveContent(dpage, pfn);
  m.dst[0] = migratePfn(dpage) | MIGRATE_PFN_LOCKED | (s & MIGRATE_PFN_WRITE);
  migrateVmaPages(mm, m);
  if (shared) {
    // the copy replaces this mapping only: the other mms keep the device page
    const found = removeMigrationPte(mm, a / PAGE_SIZE, pfn, dpage);
    unlockPage(phys, pfn);
    if (found) {
      phys.putPage(pfn, MMU_NOTIFY_MIGRATE, mm.id, a / PAGE_SIZE);
      migrateDeviceStats.sharedCopies++;
    } else {
      phys.putPage(dpage, FREE_EVENT_MIGRATE_DONE, mm.id, a / PAGE_SIZE);
      phys.putPage(pfn, MMU_NOTIFY_MIGRATE, mm.id, a / PAGE_SIZE);
    }
    migrationEntryWake(mm);
    return 0;
  }
  migrateVmaFinalize(mm, m);
  return 0;
}
