/**
 * khugepaged's collapse (collapse_huge_page): 512 small pages of a 2 MiB step become one THP.
 * Under the mmap write lock, a 2 MiB CLEAR brackets only the clearing of the PMD
 * (pmdp_collapse_flush); then, with no notification (nothing maps the step any more, and the
 * write lock keeps faults and device walks out), the content is copied into a new THP, the huge
 * PMD is installed and the old frames are freed.
 */
import {
  FR_DEVICE_PRIVATE,
  FR_HEAD,
  FR_LAZYFREE,
  FR_PAGECACHE,
  FR_POISON,
  FR_TAIL,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_TABLE,
  PTE_DEVMAP,
  PTE_PAYLOAD_MASK,
  PTE_PROTNONE,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
  PTRS_PER_PTE,
  VM_WRITE,
  VMA_FLAGS,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { EAGAIN, EINVAL, ENOMEM, MMU_NOTIFY_CLEAR } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';
import { ptlLock, ptlUnlock } from './pgtable.js';
import { FREE_EVENT_MIGRATE_DONE } from './physmem.js';
import { thpSuitable } from './thp.js';

/** This thread's counters (merged by the sim). */
export const khugepagedStats = { collapsed: 0, refused: 0 };

/**
 * __collapse_huge_page_isolate's checks, hmmsim's stricter form (spec): every PTE present,
 * accessible, not special, mapping an exclusively owned order-0 anonymous frame. Caller holds
 * the PTL or the write lock that keeps the PTEs still.
 */
function collapsible(mm: MmStruct, base: number): boolean {
  const phys = mm.phys;
  for (let i = 0; i < PTRS_PER_PTE; i++) {
    const e = Atomics.load(mm.pte, base + i);
    if ((e & PTE_TYPE_MASK) !== PTE_TYPE_PRESENT) return false;
    if ((e & (PTE_SPECIAL | PTE_DEVMAP | PTE_PROTNONE)) !== 0) return false;
    const pfn = e & PTE_PAYLOAD_MASK;
    const st = phys.frameState(pfn);
    if ((st & (FR_PAGECACHE | FR_DEVICE_PRIVATE | FR_POISON | FR_HEAD | FR_TAIL)) !== 0) return false;
    if (phys.pageRefcount(pfn) !== 1) return false;
  }
  return true;
}

/**
 * collapse_huge_page for the 2 MiB step containing byte `address`. Returns 0 when collapsed;
 * -EINVAL when the step cannot hold a THP (no VMA, not private anonymous, not covering the whole
 * step, THP not enabled for it: hugepage_vma_revalidate) or is not a PTE table; -EAGAIN when a
 * PTE does not qualify (none, zero page, swap, shared, ...); -ENOMEM when no order-9 block is free.
 * Takes the mmap write lock.
 */
export function collapseHugePage(mm: MmStruct, address: number): number {
  const page = Math.floor(address / PAGE_SIZE);
  if (page < 0 || page >= mm.npages) return -EINVAL;
  const idx = page >>> 9;
  const base = idx * PTRS_PER_PTE;
  const phys = mm.phys;
  mm.mmapWriteLock();
  try {
    const vi = mm.vmaAt(page);
    if (vi < 0 || !thpSuitable(mm, vi, idx)) return -EINVAL;
    if (Atomics.load(mm.pmd, idx) !== PMD_TYPE_TABLE) return -EINVAL;
    if (!collapsible(mm, base)) {
      khugepagedStats.refused++;
      return -EAGAIN;
    }
    // khugepaged_alloc_page happens before the invalidation, as in the kernel
    const head = phys.allocHugePage();
    if (head < 0) return -ENOMEM;
    const start = idx * PMD_SIZE;
    const range = rangeInit(mm, MMU_NOTIFY_CLEAR, start, start + PMD_SIZE);
    invalidateRangeStart(mm, range);
    ptlLock(mm);
    const pmd = Atomics.load(mm.pmd, idx);
    Atomics.store(mm.pmd, idx, 0); // pmdp_collapse_flush: the PTE table is detached
    ptlUnlock(mm);
    invalidateRangeEnd(mm, range);
    // __collapse_huge_page_isolate + _copy, with no notification: the detached PTEs are
    // reachable by no walker (the write lock keeps faults and hmm_range_fault out).
    ptlLock(mm);
    if (!collapsible(mm, base)) {
      Atomics.store(mm.pmd, idx, pmd); // pmd_populate back: nothing changed
      ptlUnlock(mm);
      phys.putPage(head);
      khugepagedStats.refused++;
      return -EAGAIN;
    }
    const old = new Int32Array(PTRS_PER_PTE);
    for (let i = 0; i < PTRS_PER_PTE; i++) {
      const pfn = Atomics.load(mm.pte, base + i) & PTE_PAYLOAD_MASK;
      old[i] = pfn;
      phys.moveContent(head + i, pfn); // the write counter moves with the content
      phys.clearFrameFlag(pfn, FR_LAZYFREE);
      Atomics.store(mm.pte, base + i, 0); // the old PTE table goes
    }
    const write = (mm.vmaField(vi, VMA_FLAGS) & VM_WRITE) !== 0 ? PTE_WRITE : 0;
    Atomics.store(mm.pmd, idx, PMD_TYPE_HUGE | write | head); // set_pmd_at(maybe_pmd_mkwrite)
    ptlUnlock(mm);
    for (let i = 0; i < PTRS_PER_PTE; i++)
      phys.putPageMoved(old[i]!, FREE_EVENT_MIGRATE_DONE, mm.id, base + i);
    khugepagedStats.collapsed++;
    return 0;
  } finally {
    mm.mmapWriteUnlock();
  }
}
