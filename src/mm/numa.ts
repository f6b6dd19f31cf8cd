/**
 * NUMA balancing from the mutator's side (spec/mm-events.md): NUMA hinting (task_numa_work ->
 * change_prot_numa: PTEs and huge PMDs become protnone under the mmap read lock, one
 * PROTECTION_VMA invalidation per VMA and 1 GiB step) and ordinary page migration (migrate_pages:
 * a one-page CLEAR brackets only the replacement of the PTE by a migration entry; the copy, the
 * repointing and the free happen after end with no notification, then migration waiters wake).
 */

import { migrationEntryWake } from './fault.js';
import {
  FR_HEAD,
  FR_LAZYFREE,
  FR_LOCKED,
  FR_PAGECACHE,
  FR_REFCOUNT_MASK,
  FR_TAIL,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_MIGRATION,
  PMD_TYPE_NONE,
  PMD_TYPE_TABLE,
  PTE_DEVMAP,
  PTE_PAYLOAD_MASK,
  PTE_PROTNONE,
  PTE_SPECIAL,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_MASK,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
  PTRS_PER_PTE,
  PUD_SIZE,
  VM_EXEC,
  VM_HUGETLB,
  VM_IO,
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
import type { MmStruct } from './mm.js';
import { MMU_NOTIFY_CLEAR, MMU_NOTIFY_PROTECTION_VMA, type MmuNotifierRange } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { isHugeZeroPmd, ptlLock, ptlUnlock, splitHugePmd } from './pgtable.js';
import { FREE_EVENT_MIGRATE_DONE, type PhysMem } from './physmem.js';

/** Pages of one PUD (1 GiB) step: change_pmd_range's invalidation never crosses one. */
const PUD_PAGES = PUD_SIZE / PAGE_SIZE;

/** This thread's NUMA counters (merged by the sim). */
export const numaStats = {
  /** PTEs made protnone (a huge PMD counts 512) */
  protnone: 0,
  /** pages migrated (a THP counts 512) */
  migrated: 0,
  /** pages migratePages left alone: shared (rmap-only) frames, file pages, locked frames */
  migrateSkipped: 0,
  /** migrations undone for want of a free frame */
  migrateFailed: 0,
};

/** trylock_page on the frame that carries the page lock. */
export function trylockPage(phys: PhysMem, pfn: number): boolean {
  return (Atomics.or(phys.frames.state, pfn, FR_LOCKED) & FR_LOCKED) === 0;
}

/** unlock_page */
export function unlockPage(phys: PhysMem, pfn: number): void {
  Atomics.and(phys.frames.state, pfn, ~FR_LOCKED);
}

/**
 * page_mapcount for hmmsim's single refcount: the references that are mappings (a page-cache
 * frame's own cache reference excluded).
 */
function mapcount(phys: PhysMem, pfn: number): number {
  const rc = phys.pageRefcount(pfn);
  return (phys.frameState(pfn) & FR_PAGECACHE) !== 0 ? rc - 1 : rc;
}

// ------------------------------------------------------------------------------------------
// NUMA hinting

/**
 * change_prot_numa as task_numa_work drives it over [start, end) (byte addresses): VMAs that
 * task_numa_work skips are skipped (hugetlb, VM_MIXEDMAP, VM_IO/VM_PFNMAP, inaccessible, read-only
 * file mappings). Takes the mmap read lock. Returns the number of pages made protnone.
 */
export function changeProtNuma(mm: MmStruct, start: number, end: number): number {
  const sp = Math.floor(start / PAGE_SIZE);
  const ep = Math.min(Math.ceil(end / PAGE_SIZE), mm.npages);
  let pages = 0;
  mm.mmapReadLock();
  try {
    for (let vi = mm.findVmaIndex(sp); vi >= 0 && vi < mm.vmaCount; vi++) {
      const vs = mm.vmaField(vi, VMA_START);
      if (vs >= ep) break;
      const f = mm.vmaField(vi, VMA_FLAGS);
      if ((f & (VM_HUGETLB | VM_MIXEDMAP | VM_IO | VM_PFNMAP)) !== 0) continue;
      if ((f & (VM_READ | VM_WRITE | VM_EXEC)) === 0) continue; // !vma_is_accessible
      if (mm.vmaField(vi, VMA_FILE) >= 0 && (f & (VM_READ | VM_WRITE)) === VM_READ) continue;
      pages += changeProtectionNuma(mm, vi, Math.max(sp, vs), Math.min(ep, mm.vmaField(vi, VMA_END)));
    }
  } finally {
    mm.mmapReadUnlock();
  }
  numaStats.protnone += pages;
  return pages;
}

/**
 * change_protection(MM_CP_PROT_NUMA) over pages [a, b) of VMA `vi`: per 1 GiB step, the
 * PROTECTION_VMA invalidation opens lazily at the first populated PMD (so an empty step issues
 * none) and covers [that address, the step's end within the range), as change_pmd_range does.
 */
function changeProtectionNuma(mm: MmStruct, vi: number, a: number, b: number): number {
  const cow = (mm.vmaField(vi, VMA_FLAGS) & VM_SHARED) === 0; // is_cow_mapping
  let pages = 0;
  for (let p = a; p < b; ) {
    const pudEnd = Math.min((Math.floor(p / PUD_PAGES) + 1) * PUD_PAGES, b);
    let range: MmuNotifierRange | null = null;
    while (p < pudEnd) {
      const idx = p >>> 9;
      const stepEnd = Math.min((idx + 1) * PTRS_PER_PTE, pudEnd);
      // Hint read: the PTL section below re-reads the PMD with Atomics before changing anything.
      const w0 = Atomics.load(mm.pmd, idx);
      const t0 = w0 & PTE_TYPE_MASK;
      if (t0 === PMD_TYPE_NONE) {
        p = stepEnd;
        continue;
      }
      if (range === null) {
        range = rangeInit(mm, MMU_NOTIFY_PROTECTION_VMA, p * PAGE_SIZE, pudEnd * PAGE_SIZE);
        invalidateRangeStart(mm, range);
      }
      const whole = p === idx * PTRS_PER_PTE && stepEnd === (idx + 1) * PTRS_PER_PTE;
      if ((t0 === PMD_TYPE_HUGE || t0 === PMD_TYPE_MIGRATION) && !whole) splitHugePmd(mm, p * PAGE_SIZE);
      ptlLock(mm);
      const w = Atomics.load(mm.pmd, idx);
      const t = w & PTE_TYPE_MASK;
      if (t === PMD_TYPE_HUGE && whole) {
        // change_huge_pmd: the huge zero page and an already protnone PMD are left alone; the
        // write bit stays as the saved write (pmd_mk_savedwrite) that the NUMA fault restores
        if (!isHugeZeroPmd(w) && (w & PTE_PROTNONE) === 0) {
          Atomics.store(mm.pmd, idx, w | PTE_PROTNONE);
          pages += PTRS_PER_PTE;
        }
      } else if (t === PMD_TYPE_MIGRATION && whole) {
        // change_huge_pmd on a PMD migration entry: "just be safe and disable write"
        if ((w & PTE_WRITE) !== 0) Atomics.store(mm.pmd, idx, w & ~PTE_WRITE);
      } else if (t === PMD_TYPE_TABLE) {
        pages += changePteRangeNuma(mm, p, stepEnd, cow);
      }
      ptlUnlock(mm);
      p = stepEnd;
    }
    if (range !== null) invalidateRangeEnd(mm, range);
  }
  return pages;
}

/**
 * change_pte_range with prot_numa, caller holds the PTL: present normal pages not yet protnone
 * and not shared COW pages (nor dirty file pages) become protnone keeping their write bit (the
 * saved write); as for every change_protection, writable migration and device-private entries
 * become read-only.
 */
function changePteRangeNuma(mm: MmStruct, a: number, b: number, cow: boolean): number {
  const phys = mm.phys;
  const pte = mm.pte;
  let pages = 0;
  for (let q = a; q < b; q++) {
    const e = Atomics.load(pte, q);
    const et = e & PTE_TYPE_MASK;
    if (et === PTE_TYPE_PRESENT) {
      // vm_normal_page is NULL for the zero page, raw PFNs and device maps
      if ((e & (PTE_PROTNONE | PTE_SPECIAL | PTE_DEVMAP)) !== 0) continue;
      const pfn = e & PTE_PAYLOAD_MASK;
      if (cow && mapcount(phys, pfn) !== 1) continue;
      if ((phys.frameState(pfn) & FR_PAGECACHE) !== 0 && (e & PTE_WRITE) !== 0) continue; // dirty file page
      Atomics.store(pte, q, e | PTE_PROTNONE);
      pages++;
    } else if ((et === PTE_TYPE_MIGRATION || et === PTE_TYPE_DEVICE_PRIVATE) && (e & PTE_WRITE) !== 0) {
      Atomics.store(pte, q, e & ~PTE_WRITE);
    }
  }
  return pages;
}

// ------------------------------------------------------------------------------------------
// Page migration

/**
 * migrate_pages for the pages mapped in [start, end) (NUMA balancing / compaction): each
 * exclusively owned private anonymous page (or THP) is unmapped into a migration entry inside a
 * one-page (2 MiB) CLEAR (try_to_unmap_one), then, after end and with no notification, copied
 * to a new frame (content and write counter move), the entry repointed (remove_migration_ptes,
 * adding access), the old frame freed and migration waiters woken. Pages reachable only through
 * rmap (shared after fork), page-cache pages and locked pages are skipped (counted). Takes the
 * mmap read lock (as the NUMA fault path; it also stands in for the rmap locks compaction takes).
 * Returns the number of pages migrated.
 */
export function migratePages(mm: MmStruct, start: number, end: number): number {
  const sp = Math.floor(start / PAGE_SIZE);
  const ep = Math.min(Math.ceil(end / PAGE_SIZE), mm.npages);
  let migrated = 0;
  mm.mmapReadLock();
  try {
    for (let vi = mm.findVmaIndex(sp); vi >= 0 && vi < mm.vmaCount; vi++) {
      const vs = mm.vmaField(vi, VMA_START);
      if (vs >= ep) break;
      if ((mm.vmaField(vi, VMA_FLAGS) & (VM_HUGETLB | VM_PFNMAP | VM_IO)) !== 0) continue;
      const a = Math.max(sp, vs);
      const b = Math.min(ep, mm.vmaField(vi, VMA_END));
      for (let p = a; p < b; ) {
        const idx = p >>> 9;
        const stepEnd = Math.min((idx + 1) * PTRS_PER_PTE, b);
        // Hint read; migrateHuge / migrateOnePage re-check under the PTL.
        const w = Atomics.load(mm.pmd, idx);
        const t = w & PTE_TYPE_MASK;
        if (t === PMD_TYPE_HUGE) {
          if (!isHugeZeroPmd(w)) migrated += migrateHuge(mm, idx, w);
        } else if (t === PMD_TYPE_TABLE) {
          for (let q = p; q < stepEnd; q++) {
            const e = Atomics.load(mm.pte, q);
            if ((e & PTE_TYPE_MASK) === PTE_TYPE_PRESENT && (e & (PTE_SPECIAL | PTE_DEVMAP)) === 0) {
              migrated += migrateOnePage(mm, q, e);
            }
          }
        }
        p = stepEnd;
      }
    }
  } finally {
    mm.mmapReadUnlock();
  }
  numaStats.migrated += migrated;
  return migrated;
}

/** unmap_and_move for one 4 KiB page mapped by PTE word `e` at `page`. Returns 1 if moved. */
function migrateOnePage(mm: MmStruct, page: number, e: number): number {
  const phys = mm.phys;
  const pfn = e & PTE_PAYLOAD_MASK;
  const st = phys.frameState(pfn);
  // page_count: an order-0 frame carries its own count (one read of its state word serves both
  // tests); a tail asks its head
  const rc = (st & FR_TAIL) === 0 ? st & FR_REFCOUNT_MASK : phys.pageRefcount(pfn);
  if ((st & FR_PAGECACHE) !== 0 || rc !== 1 || !trylockPage(phys, pfn)) {
    numaStats.migrateSkipped++;
    return 0;
  }
  const addr = page * PAGE_SIZE;
  // try_to_unmap_one(TTU_MIGRATION): the invalidation brackets only the PTE -> migration entry.
  const mig = PTE_TYPE_MIGRATION | (e & PTE_WRITE) | pfn;
  const ok = installMigrationEntry(mm, mm.pte, page, e, mig, addr, PAGE_SIZE);
  if (!ok) {
    unlockPage(phys, pfn);
    numaStats.migrateSkipped++;
    return 0;
  }
  // After end, no notification: the entry only gains access (migration entry -> new frame).
  const dst = phys.allocPage();
  const target = dst >= 0 ? dst : pfn;
  if (dst >= 0) {
    phys.moveContent(dst, pfn); // migrate_page_copy: the write counter moves with the content
    if ((phys.frameState(pfn) & FR_LAZYFREE) !== 0) phys.setFrameFlag(dst, FR_LAZYFREE);
  }
  ptlLock(mm);
  const still = Atomics.load(mm.pte, page) === mig;
  // remove_migration_pte: a fresh present PTE (protnone does not survive), write kept
  if (still) Atomics.store(mm.pte, page, PTE_TYPE_PRESENT | (e & PTE_WRITE) | target);
  ptlUnlock(mm);
  migrationEntryWake(mm);
  unlockPage(phys, pfn);
  if (dst < 0) {
    numaStats.migrateFailed++;
    if (!still) phys.putPage(pfn, FREE_EVENT_MIGRATE_DONE, mm.id, page);
    return 0;
  }
  if (!still) {
    // the entry was zapped meanwhile: the content died with the mapping, the copy goes unused
    phys.putPageMoved(dst, FREE_EVENT_MIGRATE_DONE, mm.id, page);
    phys.putPage(pfn, FREE_EVENT_MIGRATE_DONE, mm.id, page);
    return 0;
  }
  phys.putPageMoved(pfn, FREE_EVENT_MIGRATE_DONE, mm.id, page);
  return 1;
}

/** Which subpages finishSplitMigration's caller found still under migration (reused). */
const splitRemapped = new Uint8Array(PTRS_PER_PTE);

/**
 * The end of a THP migration whose PMD migration entry was split into PTE migration entries
 * (the old compound page split with it, each subpage holding the migration's reference):
 * a subpage whose entry migrateHuge repointed is freed as moved (or, with no new page, stays
 * mapped); one whose entry was zapped meanwhile died with the mapping (its content discarded)
 * and its copy goes unused. Returns the pages moved.
 */
function finishSplitMigration(mm: MmStruct, page: number, head: number, dst: number): number {
  const phys = mm.phys;
  let moved = 0;
  for (let i = 0; i < PTRS_PER_PTE; i++) {
    if (splitRemapped[i] === 1) {
      if (dst >= 0) {
        phys.putPageMoved(head + i, FREE_EVENT_MIGRATE_DONE, mm.id, page + i);
        moved++;
      }
    } else {
      if (dst >= 0) phys.putPageMoved(dst + i, FREE_EVENT_MIGRATE_DONE, mm.id, page + i);
      phys.putPage(head + i, FREE_EVENT_MIGRATE_DONE, mm.id, page + i);
    }
  }
  if (dst < 0) numaStats.migrateFailed += PTRS_PER_PTE;
  return moved;
}

/** THP migration (set_pmd_migration_entry / remove_migration_pmd). Returns 512 if moved. */

/**
 * The first half of a migration (try_to_unmap_one / set_pmd_migration_entry): under a CLEAR
 * invalidation of [start, start + size), replace entry `idx` of `table` (PTEs or PMDs) by the
 * migration entry `mig` if it still holds `expected`. Returns whether it was replaced.
 */
function installMigrationEntry(
  mm: MmStruct,
  table: Int32Array,
  idx: number,
  expected: number,
  mig: number,
  start: number,
  size: number,
): boolean {
  const range = rangeInit(mm, MMU_NOTIFY_CLEAR, start, start + size);
  invalidateRangeStart(mm, range);
  ptlLock(mm);
  const ok = Atomics.load(table, idx) === expected;
  if (ok) Atomics.store(table, idx, mig);
  ptlUnlock(mm);
  invalidateRangeEnd(mm, range);
  return ok;
}

function migrateHuge(mm: MmStruct, idx: number, w: number): number {
  const phys = mm.phys;
  const head = w & PTE_PAYLOAD_MASK;
  if (!phys.isCompound(head) || phys.pageRefcount(head) !== 1 || !trylockPage(phys, head)) {
    numaStats.migrateSkipped += PTRS_PER_PTE;
    return 0;
  }
  const start = idx * PMD_SIZE;
  // set_pmd_migration_entry: the same bracket around the huge PMD
  const mig = PMD_TYPE_MIGRATION | (w & PTE_WRITE) | head;
  const ok = installMigrationEntry(mm, mm.pmd, idx, w, mig, start, PMD_SIZE);
  if (!ok) {
    unlockPage(phys, head);
    numaStats.migrateSkipped += PTRS_PER_PTE;
    return 0;
  }
  const dst = phys.allocHugePage();
  const target = dst >= 0 ? dst : head;
  if (dst >= 0) {
    for (let i = 0; i < PTRS_PER_PTE; i++) phys.moveContent(dst + i, head + i);
    if ((phys.frameState(head) & FR_LAZYFREE) !== 0) phys.setFrameFlag(dst, FR_LAZYFREE);
  }
  const page = idx * PTRS_PER_PTE;
  ptlLock(mm);
  const still = Atomics.load(mm.pmd, idx) === mig;
  if (still) Atomics.store(mm.pmd, idx, PMD_TYPE_HUGE | (w & PTE_WRITE) | target);
  // __split_huge_pmd keeps a PMD migration entry as 512 PTE migration entries (a device's
  // collect, a partial zap or mprotect may split it meanwhile) and, in hmmsim, splits the
  // compound page with it: remove_migration_ptes then finds the entries one by one.
  const split = !still && (phys.frameState(head) & FR_HEAD) === 0;
  if (split) {
    if (dst >= 0) phys.splitCompound(dst); // hmmsim has no PTE-mapped THP: the new one splits too
    const table = (Atomics.load(mm.pmd, idx) & PTE_TYPE_MASK) === PMD_TYPE_TABLE;
    for (let i = 0; i < PTRS_PER_PTE; i++) {
      const e = table ? Atomics.load(mm.pte, page + i) : 0;
      const ours = (e & PTE_TYPE_MASK) === PTE_TYPE_MIGRATION && (e & PTE_PAYLOAD_MASK) === head + i;
      if (ours) Atomics.store(mm.pte, page + i, PTE_TYPE_PRESENT | (e & PTE_WRITE) | (target + i));
      splitRemapped[i] = ours ? 1 : 0;
    }
  }
  ptlUnlock(mm);
  migrationEntryWake(mm);
  unlockPage(phys, head);
  if (split) return finishSplitMigration(mm, page, head, dst);
  if (dst < 0) {
    numaStats.migrateFailed += PTRS_PER_PTE;
    if (!still) phys.putPage(head, FREE_EVENT_MIGRATE_DONE, mm.id, page);
    return 0;
  }
  if (!still) {
    phys.putPageMoved(dst, FREE_EVENT_MIGRATE_DONE, mm.id, page);
    phys.putPage(head, FREE_EVENT_MIGRATE_DONE, mm.id, page);
    return 0;
  }
  phys.putPageMoved(head, FREE_EVENT_MIGRATE_DONE, mm.id, page);
  return PTRS_PER_PTE;
}
