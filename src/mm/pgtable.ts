/**
 * Page-table primitives every mutation shares: the page-table lock, entry stores, the THP split
 * (split_huge_pmd), the zap of a range (zap_page_range / unmap_page_range) with its gather of
 * frames to free (struct mmu_gather), and the notifier bracket around a zap.
 *
 * Entries are written with Atomics.store by a holder of the PTL (one lock per mm, the model of
 * the kernel's split PTLs collapsed into one). Readers outside the PTL (the fault path's first
 * look, hmm_range_fault's walk) read each entry once and validate later (pte_same under the PTL,
 * mmu_interval_read_retry under the driver lock).
 */
import { jitterPoint, MUTANT_FREE_BEFORE_START, mutantOn, POINT_BEFORE_FREE } from '../checker/points.js';
import { spinLock, spinUnlock } from '../shm/spinlock.js';
import {
  HUGE_ZERO_PFN,
  MM_FREE_AFTER_CLEAR,
  MM_PTL,
  MM_VMA_COUNT,
  PAGE_SHIFT,
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
  PTE_TYPE_SWAP,
  PTE_WRITE,
  PTRS_PER_PTE,
  VMA_END,
  VMA_START,
  VMA_STRIDE,
  ZERO_PFN,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { MMU_NOTIFY_CLEAR, type MmuNotifierRange } from './mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from './notify.js';

// ---- the page-table lock ----

/** pte_offset_map_lock / pmd_lock: returns true if the caller had to wait. */
export function ptlLock(mm: MmStruct): boolean {
  return spinLock(mm.ctl, MM_PTL);
}

export function ptlUnlock(mm: MmStruct): void {
  spinUnlock(mm.ctl, MM_PTL);
}

/** pmd_index over the whole space: which 2 MiB step holds `page`. */
export function pmdIndex(page: number): number {
  return page >>> 9;
}

/** set_pte_at (caller holds the PTL). */
export function setPte(mm: MmStruct, page: number, word: number): void {
  Atomics.store(mm.pte, page, word);
}

/** set_pmd_at / pmd_populate (caller holds the PTL). */
export function setPmd(mm: MmStruct, pmdIdx: number, word: number): void {
  Atomics.store(mm.pmd, pmdIdx, word);
}

/** ptep_get outside the hot path (tests, oracles, slow paths). */
export function ptepGet(mm: MmStruct, page: number): number {
  return Atomics.load(mm.pte, page);
}

/** pmdp_get outside the hot path. */
export function pmdpGet(mm: MmStruct, pmdIdx: number): number {
  return Atomics.load(mm.pmd, pmdIdx);
}

/** The PMD type bits of a PMD word. */
export function pmdType(w: number): number {
  return w & PTE_TYPE_MASK;
}

/** Is the PMD word a huge mapping of the huge zero page? */
export function isHugeZeroPmd(w: number): boolean {
  return (w & PTE_TYPE_MASK) === PMD_TYPE_HUGE && (w & PTE_PAYLOAD_MASK) === HUGE_ZERO_PFN;
}

/** The zero page's PTE (my_zero_pfn, pte_mkspecial): read-only and special, like the kernel's. */
export const ZERO_PTE = PTE_TYPE_PRESENT | PTE_SPECIAL | ZERO_PFN;

// ---- the gather of things to free (struct mmu_gather) ----

export const GATHER_PAGE = 0; // put_page of a frame (a device-private frame too)
export const GATHER_HUGE = 1; // put of a huge mapping: the head once, or each frame once split
export const GATHER_SWAP = 2; // swap_free of a slot (content discarded)

/**
 * struct mmu_gather: what a zap collected, freed by freeCollected after the invalidation's end
 * (tlb_finish_mmu), or right after the PTE clear in the 'after-clear' free mode. Reusable; grows
 * by doubling (rarely), so a steady zap loop does not allocate.
 */
export class MmuGather {
  kind: Int32Array;
  value: Int32Array;
  page: Int32Array;
  count = 0;
  /** the event and mm the frees are logged with */
  event = MMU_NOTIFY_CLEAR;
  mmId = -1;
  constructor(capacity = 1024) {
    this.kind = new Int32Array(capacity);
    this.value = new Int32Array(capacity);
    this.page = new Int32Array(capacity);
  }
  add(kind: number, value: number, page: number): void {
    if (this.count === this.kind.length) {
      const n = this.count * 2;
      const k = new Int32Array(n);
      k.set(this.kind);
      const v = new Int32Array(n);
      v.set(this.value);
      const p = new Int32Array(n);
      p.set(this.page);
      this.kind = k;
      this.value = v;
      this.page = p;
    }
    this.kind[this.count] = kind;
    this.value[this.count] = value;
    this.page[this.count] = page;
    this.count++;
  }
}

/** Frame references dropped by the last freeCollected calls on this thread (tests). */
export const gatherStats = { puts: 0, swapFrees: 0 };

/**
 * tlb_finish_mmu / tlb_flush_mmu_free: drop every collected reference (the frames whose count
 * reaches 0 are freed: generation++, discarded += their write counters) and empty the gather.
 */
export function freeCollected(mm: MmStruct, tlb: MmuGather): void {
  if (tlb.count === 0) return;
  jitterPoint(POINT_BEFORE_FREE);
  const phys = mm.phys;
  for (let i = 0; i < tlb.count; i++) {
    const v = tlb.value[i]!;
    const page = tlb.page[i]!;
    switch (tlb.kind[i]) {
      case GATHER_PAGE:
        phys.putPage(v, tlb.event, tlb.mmId, page);
        gatherStats.puts++;
        break;
      case GATHER_HUGE:
        if (phys.isCompound(v) && phys.compoundHead(v) === v) {
          phys.putPage(v, tlb.event, tlb.mmId, page);
          gatherStats.puts++;
        } else {
          // the THP was split by another mm's mapping: each subpage carries its own count
          for (let k = 0; k < PTRS_PER_PTE; k++) phys.putPage(v + k, tlb.event, tlb.mmId, page + k);
          gatherStats.puts += PTRS_PER_PTE;
        }
        break;
      case GATHER_SWAP:
        phys.swapFree(v);
        gatherStats.swapFrees++;
        break;
    }
  }
  tlb.count = 0;
}

// ---- THP split ----

/**
 * split_huge_pmd: turn the huge PMD covering `address` into a table of 512 PTEs mapping the same
 * frames with the same permissions (the huge zero page becomes 512 zero-page PTEs), as its own
 * CLEAR invalidation over the 2 MiB step (__split_huge_pmd brackets the pmdp_invalidate). The
 * compound page's refcount becomes per-frame (split_huge_page). A PMD migration entry becomes 512
 * PTE migration entries. Returns 0, or -EAGAIN if `blockable` is false and a start failed; a PMD
 * that is not huge is left alone (0). With `onlyHead` >= 0 (split_huge_page of that THP, whose
 * caller holds its page lock) only a present huge PMD mapping that head is split: a migration
 * entry, or a PMD that maps another page since the caller's look, is left alone.
 */
export function splitHugePmd(mm: MmStruct, address: number, blockable = true, onlyHead = -1): number {
  const idx = Math.floor(address / PMD_SIZE);
  const w0 = Atomics.load(mm.pmd, idx);
  const t0 = w0 & PTE_TYPE_MASK;
  if (t0 !== PMD_TYPE_HUGE && t0 !== PMD_TYPE_MIGRATION) return 0;
  if (onlyHead >= 0 && (t0 !== PMD_TYPE_HUGE || (w0 & PTE_PAYLOAD_MASK) !== onlyHead)) return 0;
  const start = idx * PMD_SIZE;
  const range = rangeInit(mm, MMU_NOTIFY_CLEAR, start, start + PMD_SIZE, blockable);
  const ret = invalidateRangeStart(mm, range);
  if (ret !== 0) return ret;
  ptlLock(mm);
  const w = Atomics.load(mm.pmd, idx);
  const t = w & PTE_TYPE_MASK;
  const match = onlyHead < 0 || (t === PMD_TYPE_HUGE && (w & PTE_PAYLOAD_MASK) === onlyHead);
  if ((t === PMD_TYPE_HUGE || t === PMD_TYPE_MIGRATION) && match) {
    const base = idx * PTRS_PER_PTE;
    const head = w & PTE_PAYLOAD_MASK;
    if (t === PMD_TYPE_HUGE && head === HUGE_ZERO_PFN) {
      for (let i = 0; i < PTRS_PER_PTE; i++) Atomics.store(mm.pte, base + i, ZERO_PTE);
    } else {
      const flags = w & (PTE_WRITE | PTE_PROTNONE | PTE_DEVMAP);
      const type = t === PMD_TYPE_HUGE ? PTE_TYPE_PRESENT : PTE_TYPE_MIGRATION;
      for (let i = 0; i < PTRS_PER_PTE; i++) Atomics.store(mm.pte, base + i, type | flags | (head + i));
      mm.phys.splitCompound(head);
    }
    Atomics.store(mm.pmd, idx, PMD_TYPE_TABLE);
  }
  ptlUnlock(mm);
  invalidateRangeEnd(mm, range);
  return 0;
}

// ---- zap ----

/**
 * zap_page_range / unmap_page_range without the notifier calls (the caller brackets them, see
 * zapRangeNotify): clear every entry in [start, end) (byte addresses) under the PTL and collect
 * what must be freed into `tlb`. A huge PMD covered only in part is split first (its own nested
 * CLEAR, as __split_huge_pmd from zap_pmd_range); one covered whole is cleared whole. PTE tables
 * stay (the PMD stays TABLE: only munmap/exit free page tables). Migration and hwpoison entries
 * are cleared with nothing to free (the migration holds its own references). In the mm's
 * 'after-clear' free mode the collected frames are freed right after each PTL section (a full
 * gather batch), otherwise the caller frees them after the end. Returns the entries cleared.
 */
export function zapPageRange(
  mm: MmStruct,
  start: number,
  end: number,
  range: MmuNotifierRange,
  tlb: MmuGather,
): number {
  tlb.event = range.event;
  tlb.mmId = mm.id;
  const afterClear = mm.freeMode === MM_FREE_AFTER_CLEAR;
  const first = Math.floor(start / PAGE_SIZE);
  const last = Math.ceil(end / PAGE_SIZE);
  let cleared = 0;
  for (let p = first; p < last; ) {
    const idx = p >>> 9;
    const stepEnd = Math.min((idx + 1) * PTRS_PER_PTE, last);
    // Plain read: a hint only; the PTL section below re-reads it with Atomics.
    const w0 = mm.pmd[idx]!;
    const t0 = w0 & PTE_TYPE_MASK;
    if (t0 === PMD_TYPE_NONE) {
      p = stepEnd;
      continue;
    }
    const whole = p === idx * PTRS_PER_PTE && stepEnd === (idx + 1) * PTRS_PER_PTE;
    if ((t0 === PMD_TYPE_HUGE || t0 === PMD_TYPE_MIGRATION) && !whole) {
      splitHugePmd(mm, p * PAGE_SIZE, (range.flags & 1) !== 0);
    }
    ptlLock(mm);
    const w = Atomics.load(mm.pmd, idx);
    const t = w & PTE_TYPE_MASK;
    if (t === PMD_TYPE_HUGE || t === PMD_TYPE_MIGRATION) {
      if (whole) {
        Atomics.store(mm.pmd, idx, PMD_TYPE_NONE);
        const head = w & PTE_PAYLOAD_MASK;
        if (t === PMD_TYPE_HUGE && head !== HUGE_ZERO_PFN) tlb.add(GATHER_HUGE, head, p);
        cleared++;
      }
      // (partial and still huge: a non-blockable split failed; leave it, like the OOM reaper)
    } else if (t === PMD_TYPE_TABLE) {
      const pte = mm.pte;
      for (let q = p; q < stepEnd; q++) {
        const e = Atomics.load(pte, q);
        if (e === 0) continue;
        Atomics.store(pte, q, 0);
        cleared++;
        const et = e & PTE_TYPE_MASK;
        if (et === PTE_TYPE_PRESENT) {
          if ((e & PTE_SPECIAL) === 0) tlb.add(GATHER_PAGE, e & PTE_PAYLOAD_MASK, q);
        } else if (et === PTE_TYPE_SWAP) {
          tlb.add(GATHER_SWAP, e & PTE_PAYLOAD_MASK, q);
        } else if (et === PTE_TYPE_DEVICE_PRIVATE) {
          tlb.add(GATHER_PAGE, e & PTE_PAYLOAD_MASK, q);
        }
      }
    }
    ptlUnlock(mm);
    if (afterClear) freeCollected(mm, tlb);
    p = stepEnd;
  }
  return cleared;
}

/**
 * free_pgtables: after a munmap/exit, a PTE table whose 2 MiB step no VMA overlaps any more goes
 * (its PMD back to none; all its PTEs are already clear). Caller holds the mmap lock.
 */
export function freePgtables(mm: MmStruct, start: number, end: number): void {
  const firstIdx = Math.floor(start / PMD_SIZE);
  const lastIdx = Math.ceil(end / PMD_SIZE);
  const n = Atomics.load(mm.ctl, MM_VMA_COUNT);
  for (let idx = firstIdx; idx < lastIdx; idx++) {
    const s = idx * PTRS_PER_PTE;
    const e = s + PTRS_PER_PTE;
    let used = false;
    // plain reads of the VMA table: the caller holds the mmap lock (an Atomics RMW acquisition)
    for (let i = mm.findVmaIndex(s); i >= 0 && i < n; i++) {
      if (mm.vmas[i * VMA_STRIDE + VMA_START]! >= e) break;
      if (mm.vmas[i * VMA_STRIDE + VMA_END]! > s) {
        used = true;
        break;
      }
    }
    if (used) continue;
    ptlLock(mm);
    if ((Atomics.load(mm.pmd, idx) & PTE_TYPE_MASK) === PMD_TYPE_TABLE)
      Atomics.store(mm.pmd, idx, PMD_TYPE_NONE);
    ptlUnlock(mm);
  }
}

export interface ZapOptions {
  /** false for the OOM reaper's non-blockable UNMAP */
  blockable?: boolean;
  /** a gather to reuse */
  tlb?: MmuGather;
  /** MIGRATE owner, if any */
  owner?: number;
  /** run between the zap and the end (e.g. munmap's free_pgtables) */
  beforeEnd?: () => void;
}

/**
 * The bracket every zapping mutation uses (unmap_vmas, zap_page_range, the OOM reaper):
 * invalidate_range_start, clear the entries, invalidate_range_end, free the frames (after end by
 * default). With the mutant `free-before-start` (read once here) the entries are cleared and the
 * frames freed before the start callbacks run. Returns 0, or -EAGAIN when a non-blockable start
 * failed (nothing was changed, no end called).
 */
export function zapRangeNotify(
  mm: MmStruct,
  start: number,
  end: number,
  event: number,
  opts: ZapOptions = NO_ZAP_OPTIONS,
): number {
  // This thread's spare gather when it is free (a zap inside a zap gets a fresh one): a zap
  // loop then allocates nothing. freeCollected leaves it empty; an exception leaves it taken.
  let tlb = opts.tlb;
  let spare = false;
  if (tlb === undefined) {
    if (spareGatherFree) {
      spareGatherFree = false;
      spare = true;
      tlb = spareGather;
      tlb.count = 0;
    } else tlb = new MmuGather(64);
  }
  const range = rangeInit(mm, event, start, end, opts.blockable ?? true, opts.owner ?? -1);
  if (mutantOn(MUTANT_FREE_BEFORE_START)) {
    zapPageRange(mm, start, end, range, tlb);
    freeCollected(mm, tlb);
    const r = invalidateRangeStart(mm, range);
    if (spare) spareGatherFree = true;
    if (r !== 0) return r;
    opts.beforeEnd?.();
    invalidateRangeEnd(mm, range);
    return 0;
  }
  const r = invalidateRangeStart(mm, range);
  if (r !== 0) {
    if (spare) spareGatherFree = true;
    return r;
  }
  zapPageRange(mm, start, end, range, tlb);
  opts.beforeEnd?.();
  invalidateRangeEnd(mm, range);
  freeCollected(mm, tlb);
  if (spare) spareGatherFree = true;
  return 0;
}

const NO_ZAP_OPTIONS: ZapOptions = Object.freeze({});
const spareGather = new MmuGather(64);
let spareGatherFree = true;

/** Byte address of a page number (for readability at call sites). */
export function pageAddr(page: number): number {
  return page * 2 ** PAGE_SHIFT;
}
