/**
 * The v5.4 `hmm_range_fault` (mm/hmm.c as of Linux v5.4, spec/legacy-v5.4.md) with the driver's
 * own encoding: a `flags[]` table (VALID, WRITE, DEVICE_PRIVATE), a `values[]` table (ERROR,
 * NONE, SPECIAL) and `pfn_shift`, so an output word is `(pfn << pfn_shift) | flags[VALID] | ...`.
 * Also the entry helpers (hmm_device_entry_to_page/_to_pfn/_from_page/_from_pfn) and
 * hmm_range_dma_map/_unmap against a device address table.
 *
 * Words are the kernel's uint64_t, stored as two Int32 slots `[lo, hi]` per page (little-endian,
 * like the v5.10 hmm_pfns); the tables are given as bigints and kept as (lo, hi) pairs.
 *
 * The walk reads PTE/PMD words with plain reads, each once into a local (READ_ONCE): one Int32
 * word is tear-free, so each copy is a value some writer stored. In v5.4 the "validation" of those
 * reads is the driver's `hmm_range_valid()` under its update lock, which is not a sound one: the
 * ABA race on `valid` (a whole invalidation between the walk and the lock) is exactly what this
 * module exists to reproduce. Nothing read here is used as an index except PFN payloads into
 * frame metadata, bounds-safe by construction.
 */
import { jitterPoint, POINT_WALK_STEP } from '../checker/points.js';
import {
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_WRITE,
  handleMmFault,
  migrationEntryWait,
  VM_FAULT_ERROR,
} from '../mm/fault.js';
import {
  MM_MMAP_LOCK,
  PAGE_SIZE,
  PMD_ORDER,
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
  PTE_TYPE_NONE,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
  PTE_WRITE,
  PTRS_PER_PTE,
  VM_HUGETLB,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
  VMA_END,
  VMA_FLAGS,
  VMA_HUGE_ORDER,
  VMA_START,
  VMA_STRIDE,
} from '../mm/layout.js';
import type { MmStruct } from '../mm/mm.js';
import { EBUSY, EFAULT, EINVAL, EPERM } from '../mm/mmu-notifier.js';
import { percpuRwsemHeldHere } from '../shm/percpu-rwsem.js';
import { type HmmRangeSlot, hmmRangeValid } from './hmm.js';

// ---------------------------------------------------------------------------------------------
// Constants (include/linux/hmm.h, v5.4)

/** enum hmm_pfn_flag_e: indices into range->flags[] */
export const HMM_PFN_VALID = 0;
export const HMM_PFN_WRITE = 1;
export const HMM_PFN_DEVICE_PRIVATE = 2;
export const HMM_PFN_FLAG_MAX = 3;
/** enum hmm_pfn_value_e: indices into range->values[] */
export const HMM_PFN_ERROR = 0;
export const HMM_PFN_NONE = 1;
export const HMM_PFN_SPECIAL = 2;
export const HMM_PFN_VALUE_MAX = 3;

/** hmm_range_fault() flags (v5.4) */
export const HMM_FAULT_ALLOW_RETRY = 1 << 0;
export const HMM_FAULT_SNAPSHOT = 1 << 1;

// ---------------------------------------------------------------------------------------------
// The range

/**
 * struct hmm_range (v5.4). `pfns` holds two Int32 slots per page (the uint64_t word as [lo, hi]);
 * `flags` and `values` hold their three entries as (lo, hi) pairs; `defaultFlags` and
 * `pfnFlagsMask` are (lo, hi) pairs too. The shared part (`hmm`, `slot`, i.e. `valid`) is set by
 * hmmRangeRegister.
 */
export interface HmmRange54 extends HmmRangeSlot {
  pfns: Int32Array;
  flags: Int32Array;
  values: Int32Array;
  defaultFlags: Int32Array;
  pfnFlagsMask: Int32Array;
  pfnShift: number;
}

export interface HmmRange54Init {
  start: number;
  end: number;
  /** flags[HMM_PFN_VALID], flags[HMM_PFN_WRITE], flags[HMM_PFN_DEVICE_PRIVATE] */
  flags: readonly [bigint, bigint, bigint];
  /** values[HMM_PFN_ERROR], values[HMM_PFN_NONE], values[HMM_PFN_SPECIAL] */
  values: readonly [bigint, bigint, bigint];
  pfnShift: number;
  defaultFlags?: bigint;
  pfnFlagsMask?: bigint;
  /** the pfns array (two Int32 slots per page); allocated if absent */
  pfns?: Int32Array;
}

function pairOf(out: Int32Array, k: number, v: bigint): void {
  const u = BigInt.asUintN(64, v);
  out[2 * k] = Number(u & 0xffffffffn) | 0;
  out[2 * k + 1] = Number(u >> 32n) | 0;
}

function u64Of(a: Int32Array, k: number): bigint {
  return (BigInt(a[2 * k + 1]! >>> 0) << 32n) | BigInt(a[2 * k]! >>> 0);
}

/** Build a legacy range (not yet registered). */
export function hmmRange54Init(o: HmmRange54Init): HmmRange54 {
  if (!Number.isInteger(o.pfnShift) || o.pfnShift < 0 || o.pfnShift > 31) {
    throw new RangeError(`pfnShift must be 0..31 in hmmsim, got ${o.pfnShift}`);
  }
  const npages = Math.max(0, Math.floor((o.end - o.start) / PAGE_SIZE));
  const flags = new Int32Array(2 * HMM_PFN_FLAG_MAX);
  const values = new Int32Array(2 * HMM_PFN_VALUE_MAX);
  for (let k = 0; k < 3; k++) {
    pairOf(flags, k, o.flags[k]!);
    pairOf(values, k, o.values[k]!);
  }
  const defaultFlags = new Int32Array(2);
  const pfnFlagsMask = new Int32Array(2);
  pairOf(defaultFlags, 0, o.defaultFlags ?? 0n);
  pairOf(pfnFlagsMask, 0, o.pfnFlagsMask ?? 0n);
  return {
    hmm: null,
    slot: -1,
    start: o.start,
    end: o.end,
    pfns: o.pfns ?? new Int32Array(2 * npages),
    flags,
    values,
    defaultFlags,
    pfnFlagsMask,
    pfnShift: o.pfnShift,
  };
}

/** The uint64_t word of page i. */
export function hmmRange54Word(range: HmmRange54, i: number): bigint {
  return u64Of(range.pfns, i);
}

/** Store the uint64_t word of page i (e.g. a per-page request). */
export function hmmRange54SetWord(range: HmmRange54, i: number, w: bigint): void {
  pairOf(range.pfns, i, w);
}

/** range->values[k] as a bigint. */
export function hmmRange54Value(range: HmmRange54, k: number): bigint {
  return u64Of(range.values, k);
}

/** range->flags[k] as a bigint. */
export function hmmRange54Flag(range: HmmRange54, k: number): bigint {
  return u64Of(range.flags, k);
}

// ---------------------------------------------------------------------------------------------
// Entry helpers

/** hmm_device_entry_from_pfn (v5.4): `(pfn << pfn_shift) | flags[VALID]`. */
export function hmmDeviceEntryFromPfn(range: HmmRange54, pfn: number): bigint {
  return (BigInt(pfn) << BigInt(range.pfnShift)) | u64Of(range.flags, HMM_PFN_VALID);
}

/** hmm_device_entry_from_page (v5.4): hmmsim's page is its PFN. */
export function hmmDeviceEntryFromPage(range: HmmRange54, page: number): bigint {
  return hmmDeviceEntryFromPfn(range, page);
}

/**
 * hmm_device_entry_to_pfn (v5.4): -1 for values[NONE], values[ERROR], values[SPECIAL] or an entry
 * without flags[VALID]; else `entry >> pfn_shift`.
 */
export function hmmDeviceEntryToPfn(range: HmmRange54, entry: bigint): number {
  const e = BigInt.asUintN(64, entry);
  const v = range.values;
  for (let k = 0; k < HMM_PFN_VALUE_MAX; k++) if (e === u64Of(v, k)) return -1;
  if ((e & u64Of(range.flags, HMM_PFN_VALID)) === 0n) return -1;
  return Number(e >> BigInt(range.pfnShift));
}

/** hmm_device_entry_to_page (v5.4): the page (hmmsim: the PFN), or null (the same rules). */
export function hmmDeviceEntryToPage(range: HmmRange54, entry: bigint): number | null {
  const pfn = hmmDeviceEntryToPfn(range, entry);
  return pfn < 0 ? null : pfn;
}

/** hmmDeviceEntryToPfn of page i's word, without BigInt (the hot-path form). */
export function hmmDeviceEntryToPfnAt(range: HmmRange54, i: number): number {
  const lo = range.pfns[2 * i]!;
  const hi = range.pfns[2 * i + 1]!;
  const v = range.values;
  for (let k = 0; k < HMM_PFN_VALUE_MAX; k++) if (lo === v[2 * k] && hi === v[2 * k + 1]) return -1;
  const f = range.flags;
  if (((lo & f[0]!) | (hi & f[1]!)) === 0) return -1;
  const s = range.pfnShift;
  return s === 0 ? lo >>> 0 : (hi >>> 0) * 2 ** (32 - s) + (lo >>> s);
}

/** True if page i's word carries flags[k] (any of its bits). */
export function hmmRange54HasFlag(range: HmmRange54, i: number, k: number): boolean {
  const f = range.flags;
  return ((range.pfns[2 * i]! & f[2 * k]!) | (range.pfns[2 * i + 1]! & f[2 * k + 1]!)) !== 0;
}

// ---------------------------------------------------------------------------------------------
// The walk's state (struct hmm_vma_walk + the range, hoisted into module locals: not reentrant)

const EMPTY = new Int32Array(0);
let wMm: MmStruct | null = null;
let wRange: HmmRange54 | null = null;
let wPfns: Int32Array = EMPTY;
let wStartPage = 0;
let wShift = 0;
let wSnapshot = false;
// flags[] and values[] pairs
let fVLo = 0;
let fVHi = 0;
let fWLo = 0;
let fWHi = 0;
let fDLo = 0;
let fDHi = 0;
let mLo = 0;
let mHi = 0;
let dLo = 0;
let dHi = 0;
/** hmm_vma_walk.last (a page number) */
let wLast = 0;

const NEED_FAULT = 1;
const NEED_WRITE = 2;

/**
 * Counters of the last call on this thread. `specialPte`: the call failed with -EFAULT on a
 * special PTE (on x86 the shared zero page), the v5.4 behaviour a caller may want to count apart.
 */
export const hmm54Stats = { walks: 0, faults: 0, migrationWaits: 0, specialPte: 0 };

function setValue(page: number, k: number): void {
  const i = 2 * (page - wStartPage);
  const v = wRange!.values;
  wPfns[i] = v[2 * k]!;
  wPfns[i + 1] = v[2 * k + 1]!;
}

function fillValue(page: number, end: number, k: number): void {
  for (; page < end; page++) setValue(page, k);
}

/** `(pfn << pfn_shift) | flags[VALID] | cpu` into page's word */
function setEntry(page: number, pfn: number, cLo: number, cHi: number): void {
  const i = 2 * (page - wStartPage);
  const s = wShift;
  wPfns[i] = (pfn << s) | fVLo | cLo;
  wPfns[i + 1] = (s === 0 ? 0 : pfn >>> (32 - s)) | fVHi | cHi;
}

/**
 * hmm_pte_need_fault (v5.4) for page's input word (`orig`) against CPU flags (cLo, cHi): nothing
 * in snapshot mode; the request is `(orig & pfn_flags_mask) | default_flags`; a device-private
 * page is faulted only if the request carries flags[DEVICE_PRIVATE].
 */
function hmmPteNeedFault(oLo: number, oHi: number, cLo: number, cHi: number): number {
  if (wSnapshot) return 0;
  const rLo = (oLo & mLo) | dLo;
  const rHi = (oHi & mHi) | dHi;
  if (((rLo & fVLo) | (rHi & fVHi)) === 0) return 0;
  const wantW = ((rLo & fWLo) | (rHi & fWHi)) !== 0;
  if (((cLo & fDLo) | (cHi & fDHi)) !== 0) {
    if (((rLo & fDLo) | (rHi & fDHi)) !== 0) return NEED_FAULT | (wantW ? NEED_WRITE : 0);
    return 0;
  }
  let r = ((cLo & fVLo) | (cHi & fVHi)) === 0 ? NEED_FAULT : 0;
  if (wantW && ((cLo & fWLo) | (cHi & fWHi)) === 0) r = NEED_FAULT | NEED_WRITE;
  return r;
}

/** hmm_range_need_fault (v5.4): OR over pages [page, end) of their input words. */
function hmmRangeNeedFault(page: number, end: number, cLo: number, cHi: number): number {
  if (wSnapshot) return 0;
  let r = 0;
  for (let i = 2 * (page - wStartPage); page < end; page++, i += 2) {
    r |= hmmPteNeedFault(wPfns[i]!, wPfns[i + 1]!, cLo, cHi);
    if (r === (NEED_FAULT | NEED_WRITE)) break;
  }
  return r;
}

/**
 * hmm_vma_walk_hole_ + hmm_vma_do_fault (v5.4): each page gets values[NONE]; if a fault is
 * required, each page is faulted in turn (one handle_mm_fault per page); without a VMA, or when a
 * fault fails, the page gets values[ERROR] and the result is -EFAULT. A write fault in a VMA
 * without VM_WRITE is -EPERM. After faulting: -EBUSY (walk again from `last`).
 */
function hmmVmaWalkHoleFault(page: number, end: number, need: number, vmaFlags: number): number {
  wLast = page;
  if ((need & NEED_WRITE) !== 0 && vmaFlags >= 0 && (vmaFlags & VM_WRITE) === 0) return -EPERM;
  const faultFlags = FAULT_FLAG_REMOTE | ((need & NEED_WRITE) !== 0 ? FAULT_FLAG_WRITE : 0);
  for (; page < end; page++) {
    setValue(page, HMM_PFN_NONE);
    if (need !== 0) {
      if (vmaFlags < 0) {
        setValue(page, HMM_PFN_ERROR);
        return -EFAULT;
      }
      hmm54Stats.faults++;
      if ((handleMmFault(wMm!, page * PAGE_SIZE, faultFlags) & VM_FAULT_ERROR) !== 0) {
        setValue(page, HMM_PFN_ERROR);
        return -EFAULT;
      }
    }
  }
  return need !== 0 ? -EBUSY : 0;
}

/** hmm_vma_walk_hole (v5.4): `last` = the hole's start; fault it if any page requires it. */
function hmmVmaWalkHole(page: number, end: number, vmaFlags: number): number {
  wLast = page;
  return hmmVmaWalkHoleFault(page, end, hmmRangeNeedFault(page, end, 0, 0), vmaFlags);
}

/** pte_to_hmm_pfn_flags (v5.4) into (cpuLo, cpuHi) */
let cpuLo = 0;
let cpuHi = 0;

/**
 * hmm_vma_handle_pte (v5.4) for one page; `end` is the PMD step's end (a fault runs from here to
 * it). 0 to go on, else the walk's result.
 */
function hmmVmaHandlePte(page: number, end: number, vmaFlags: number): number {
  const i = 2 * (page - wStartPage);
  const oLo = wPfns[i]!;
  const oHi = wPfns[i + 1]!;
  setValue(page, HMM_PFN_NONE);
  // READ_ONCE(*ptep): one plain read of one Int32 word (tear-free), decoded only from this copy.
  const w = wMm!.pte[page]!;
  const type = w & PTE_TYPE_MASK;
  let need: number;
  if (type === PTE_TYPE_NONE) {
    need = hmmPteNeedFault(oLo, oHi, 0, 0);
    return need !== 0 ? hmmVmaWalkHoleFault(page, end, need, vmaFlags) : 0;
  }
  if (type !== PTE_TYPE_PRESENT) {
    if (type === PTE_TYPE_SWAP) {
      need = hmmPteNeedFault(oLo, oHi, 0, 0);
      return need !== 0 ? hmmVmaWalkHoleFault(page, end, need, vmaFlags) : 0;
    }
    if (type === PTE_TYPE_DEVICE_PRIVATE) {
      // any device's private page (v5.4 has no owner filter): VALID | DEVICE_PRIVATE (+ WRITE)
      const wr = (w & PTE_WRITE) !== 0;
      cpuLo = fVLo | fDLo | (wr ? fWLo : 0);
      cpuHi = fVHi | fDHi | (wr ? fWHi : 0);
      need = hmmPteNeedFault(oLo, oHi, cpuLo, cpuHi);
      if (need !== 0) return hmmVmaWalkHoleFault(page, end, need, vmaFlags);
      setEntry(page, w & PTE_PAYLOAD_MASK, cpuLo, cpuHi);
      return 0;
    }
    if (type === PTE_TYPE_MIGRATION) {
      if (hmmPteNeedFault(oLo, oHi, 0, 0) !== 0) {
        wLast = page;
        hmm54Stats.migrationWaits++;
        migrationEntryWait(wMm!, page);
        return -EBUSY;
      }
      return 0;
    }
    // hwpoison and anything else: report an error
    setValue(page, HMM_PFN_ERROR);
    return -EFAULT;
  }
  if ((w & PTE_PROTNONE) !== 0) {
    cpuLo = 0;
    cpuHi = 0;
  } else {
    const wr = (w & PTE_WRITE) !== 0;
    cpuLo = fVLo | (wr ? fWLo : 0);
    cpuHi = fVHi | (wr ? fWHi : 0);
  }
  need = hmmPteNeedFault(oLo, oHi, cpuLo, cpuHi);
  if (need !== 0) return hmmVmaWalkHoleFault(page, end, need, vmaFlags);
  if ((w & PTE_DEVMAP) === 0 && (w & PTE_SPECIAL) !== 0) {
    // v5.4: any special PTE, the shared zero page included, is -EFAULT (snapshot mode too)
    setValue(page, HMM_PFN_SPECIAL);
    hmm54Stats.specialPte++;
    return -EFAULT;
  }
  setEntry(page, w & PTE_PAYLOAD_MASK, cpuLo, cpuHi);
  return 0;
}

/** hmm_vma_walk_pmd (v5.4): one PMD step [page, end) of a VMA. */
function hmmVmaWalkPmd(page: number, end: number, vmaFlags: number): number {
  const idx = Math.floor(page / PTRS_PER_PTE);
  // READ_ONCE(*pmdp): one plain read (same argument as the PTEs)
  const pmd = wMm!.pmd[idx]!;
  const t = pmd & PTE_TYPE_MASK;
  if (t === PMD_TYPE_NONE) return hmmVmaWalkHole(page, end, vmaFlags);
  if (t === PMD_TYPE_MIGRATION) {
    if (hmmRangeNeedFault(page, end, 0, 0) !== 0) {
      wLast = page;
      hmm54Stats.migrationWaits++;
      migrationEntryWait(wMm!, page);
      return -EBUSY;
    }
    return 0; // v5.4 leaves these words as they are
  }
  if (t === PMD_TYPE_HUGE) {
    // hmm_vma_handle_pmd
    let cLo = 0;
    let cHi = 0;
    const protnone = (pmd & PTE_PROTNONE) !== 0;
    if (!protnone) {
      const wr = (pmd & PTE_WRITE) !== 0;
      cLo = fVLo | (wr ? fWLo : 0);
      cHi = fVHi | (wr ? fWHi : 0);
    }
    const need = hmmRangeNeedFault(page, end, cLo, cHi);
    if (protnone || need !== 0) return hmmVmaWalkHoleFault(page, end, need, vmaFlags);
    let pfn = (pmd & PTE_PAYLOAD_MASK) + (page & (PTRS_PER_PTE - 1));
    for (let p = page; p < end; p++, pfn++) setEntry(p, pfn, cLo, cHi);
    wLast = end;
    return 0;
  }
  if (t === PMD_TYPE_TABLE) {
    for (let p = page; p < end; p++) {
      const r = hmmVmaHandlePte(p, end, vmaFlags);
      if (r !== 0) {
        wLast = p;
        return r;
      }
    }
    wLast = end;
    return 0;
  }
  // hmm_pfns_bad: a bad or other non-present PMD; the walk goes on
  fillValue(page, end, HMM_PFN_ERROR);
  return 0;
}

/** hmm_vma_walk_hugetlb_entry (v5.4), one huge page step; the first page's request decides. */
function hmmWalkHugetlb(page: number, end: number, vmaFlags: number, order: number): number {
  const hpages = 2 ** order;
  while (page < end) {
    const head = page - (page % hpages);
    const next = Math.min(end, head + hpages);
    jitterPoint(POINT_WALK_STEP);
    const entry = wMm!.pmd[Math.floor(head / PTRS_PER_PTE)]!; // huge_ptep_get: one plain read
    const i = 2 * (page - wStartPage);
    const oLo = wPfns[i]!;
    const oHi = wPfns[i + 1]!;
    setValue(page, HMM_PFN_NONE);
    let cLo = 0;
    let cHi = 0;
    const huge = (entry & PTE_TYPE_MASK) === PMD_TYPE_HUGE;
    if (huge && (entry & PTE_PROTNONE) === 0) {
      const wr = (entry & PTE_WRITE) !== 0;
      cLo = fVLo | (wr ? fWLo : 0);
      cHi = fVHi | (wr ? fWHi : 0);
    }
    const need = hmmPteNeedFault(oLo, oHi, cLo, cHi);
    if (need !== 0) return hmmVmaWalkHoleFault(page, next, need, vmaFlags);
    let pfn = (huge ? entry & PTE_PAYLOAD_MASK : 0) + (page & (hpages - 1));
    for (let p = page; p < next; p++, pfn++) setEntry(p, pfn, cLo, cHi);
    wLast = next;
    page = next;
  }
  return 0;
}

/**
 * walk_page_range over [page, end) with VMA `vi` (the first VMA ending above `page`): a gap
 * before it is a hole without a VMA, then the VMA's PMD steps (or huge pages).
 */
function hmmWalk(page: number, end: number, vi: number): number {
  const vmas = wMm!.vmas;
  const o = vi * VMA_STRIDE;
  // Plain reads of the VMA table: the caller holds the mmap lock (an Atomics RMW acquisition).
  const vs = vmas[o + VMA_START]!;
  const flags = vmas[o + VMA_FLAGS]!;
  hmm54Stats.walks++;
  if (page < vs) {
    const r = hmmVmaWalkHole(page, Math.min(end, vs), -1);
    if (r !== 0) return r;
    page = Math.min(end, vs);
  }
  if ((flags & VM_HUGETLB) !== 0)
    return hmmWalkHugetlb(page, end, flags, vmas[o + VMA_HUGE_ORDER]! || PMD_ORDER);
  while (page < end) {
    const next = Math.min(end, (page | (PTRS_PER_PTE - 1)) + 1);
    jitterPoint(POINT_WALK_STEP);
    const r = hmmVmaWalkPmd(page, next, flags);
    if (r !== 0) return r;
    page = next;
  }
  return 0;
}

/**
 * hmm_range_fault (v5.4): fill `range.pfns` for [start, end) of a registered range, with the mmap
 * lock held for read. Per VMA: -EBUSY if `valid` is false; -EFAULT if no VMA or a VM_IO/VM_PFNMAP/
 * VM_MIXEDMAP one (words left as they are); -EPERM with every word values[NONE] if no VM_READ;
 * else walk, repeating from the fault point while `valid` stays true. On any later error every
 * word from the failing page to the end becomes values[NONE]. On success: the page count up to
 * `last` (the end of the last step walked, or the start of a trailing unfaulted hole).
 *
 * HMM_FAULT_ALLOW_RETRY is rejected with -EINVAL: it let handle_mm_fault drop the mmap lock and
 * return -EAGAIN, had no user in v5.4, and hmmsim's handleMmFault never drops the lock.
 */
export function hmmRangeFault(range: HmmRange54, flags: number): number {
  if ((flags & HMM_FAULT_ALLOW_RETRY) !== 0) return -EINVAL;
  const hmm = range.hmm;
  if (hmm === null || range.slot < 0) return -EINVAL;
  const mm = hmm.mm;
  if (!percpuRwsemHeldHere(mm.ctl, MM_MMAP_LOCK))
    throw new Error('hmmRangeFault (v5.4): the mmap lock must be held');
  const startPage = range.start / PAGE_SIZE;
  const endPage = range.end / PAGE_SIZE;
  if (range.pfns.length < 2 * (endPage - startPage)) {
    throw new RangeError('hmmRangeFault (v5.4): pfns holds fewer than 2 slots per page of the range');
  }
  hmm54Stats.walks = 0;
  hmm54Stats.faults = 0;
  hmm54Stats.migrationWaits = 0;
  hmm54Stats.specialPte = 0;
  wMm = mm;
  wRange = range;
  wPfns = range.pfns;
  wStartPage = startPage;
  wShift = range.pfnShift;
  wSnapshot = (flags & HMM_FAULT_SNAPSHOT) !== 0;
  const f = range.flags;
  fVLo = f[0]!;
  fVHi = f[1]!;
  fWLo = f[2]!;
  fWHi = f[3]!;
  fDLo = f[4]!;
  fDHi = f[5]!;
  mLo = range.pfnFlagsMask[0]!;
  mHi = range.pfnFlagsMask[1]!;
  dLo = range.defaultFlags[0]!;
  dHi = range.defaultFlags[1]!;
  wLast = startPage;
  try {
    return hmmRangeFaultLoop(range, mm, startPage, endPage);
  } finally {
    wMm = null;
    wRange = null;
    wPfns = EMPTY;
  }
}

function hmmRangeFaultLoop(range: HmmRange54, mm: MmStruct, startPage: number, endPage: number): number {
  let start = startPage;
  do {
    // If the range is no longer valid, force a retry.
    if (!hmmRangeValid(range)) return -EBUSY;
    const vi = mm.findVmaIndex(start); // find_vma: the first VMA ending above `start`
    if (vi < 0) return -EFAULT;
    const vflags = mm.vmas[vi * VMA_STRIDE + VMA_FLAGS]!;
    if ((vflags & (VM_IO | VM_PFNMAP | VM_MIXEDMAP)) !== 0) return -EFAULT;
    if ((vflags & VM_READ) === 0) {
      // hmm_pfns_clear over the whole range: no read means no write either
      fillValue(startPage, endPage, HMM_PFN_NONE);
      return -EPERM;
    }
    wLast = start;
    const end = Math.min(endPage, mm.vmas[vi * VMA_STRIDE + VMA_END]!);
    // (v5.4 walks each VMA twice and discards the first result; hmmsim models one walk.)
    let ret: number;
    do {
      ret = hmmWalk(start, end, vi);
      start = wLast;
      // Keep trying while the range is valid.
    } while (ret === -EBUSY && hmmRangeValid(range));
    if (ret !== 0) {
      fillValue(wLast, endPage, HMM_PFN_NONE);
      return ret;
    }
    start = end;
  } while (start < endPage);
  return wLast - startPage;
}

// ---------------------------------------------------------------------------------------------
// DMA mapping against a device address table

/** dma_data_direction */
export const DMA_BIDIRECTIONAL = 0;
export const DMA_TO_DEVICE = 1;
/** DMA_MAPPING_ERROR */
export const DMA_MAPPING_ERROR = -1;

/**
 * A device's DMA address table (the IOMMU's view, thread-local): `capacity` page slots; a DMA
 * address is `(slot + 1) * PAGE_SIZE`, so 0 never names a mapping (the kernel's "unmapped").
 */
export class HmmDmaDevice {
  readonly capacity: number;
  /** per slot: PFN + 1 (0 free), then the direction */
  readonly table: Int32Array;
  mapped = 0;
  /** set_page_dirty() calls made by hmmRangeDmaUnmap(dirty) */
  pagesDirtied = 0;

  constructor(capacity = 4096) {
    this.capacity = capacity;
    this.table = new Int32Array(2 * capacity);
  }

  /** dma_map_page: a DMA address, or DMA_MAPPING_ERROR when the table is full. */
  dmaMapPage(pfn: number, dir: number): number {
    for (let s = 0; s < this.capacity; s++) {
      if (this.table[2 * s] === 0) {
        this.table[2 * s] = pfn + 1;
        this.table[2 * s + 1] = dir;
        this.mapped++;
        return (s + 1) * PAGE_SIZE;
      }
    }
    return DMA_MAPPING_ERROR;
  }

  dmaUnmapPage(daddr: number): void {
    const s = daddr / PAGE_SIZE - 1;
    if (Number.isInteger(s) && s >= 0 && s < this.capacity && this.table[2 * s] !== 0) {
      this.table[2 * s] = 0;
      this.mapped--;
    }
  }

  /** The PFN a DMA address maps, -1 if none. */
  pfnOf(daddr: number): number {
    const s = daddr / PAGE_SIZE - 1;
    if (!Number.isInteger(s) || s < 0 || s >= this.capacity) return -1;
    return this.table[2 * s]! - 1;
  }
}

/**
 * hmm_range_dma_map (v5.4): hmm_range_fault (0 pages counts as -EBUSY), then map every page with
 * a valid entry (bidirectional if flags[WRITE]); -EBUSY (everything mapped so far unmapped) if the
 * range became invalid meanwhile, -EFAULT on a mapping error. Returns the pages mapped.
 */
export function hmmRangeDmaMap(
  range: HmmRange54,
  dev: HmmDmaDevice,
  daddrs: Float64Array,
  flags: number,
): number {
  const ret = hmmRangeFault(range, flags);
  if (ret <= 0) return ret !== 0 ? ret : -EBUSY;
  const npages = (range.end - range.start) / PAGE_SIZE;
  let mapped = 0;
  let err = 0;
  let i = 0;
  for (; i < npages; i++) {
    daddrs[i] = 0;
    const pfn = hmmDeviceEntryToPfnAt(range, i);
    if (pfn < 0) continue;
    // Check if range is being invalidated
    if (!hmmRangeValid(range)) {
      err = -EBUSY;
      break;
    }
    const dir = hmmRange54HasFlag(range, i, HMM_PFN_WRITE) ? DMA_BIDIRECTIONAL : DMA_TO_DEVICE;
    daddrs[i] = dev.dmaMapPage(pfn, dir);
    if (daddrs[i] === DMA_MAPPING_ERROR) {
      err = -EFAULT;
      break;
    }
    mapped++;
  }
  if (err === 0) return mapped;
  for (let j = 0; j < i && mapped > 0; j++) {
    if (hmmDeviceEntryToPfnAt(range, j) < 0 || daddrs[j] === DMA_MAPPING_ERROR || daddrs[j] === 0) continue;
    dev.dmaUnmapPage(daddrs[j]!);
    mapped--;
  }
  return err;
}

/**
 * hmm_range_dma_unmap (v5.4): unmap every page with a valid entry, marking pages mapped WRITE
 * dirty when asked, resetting its word to values[NONE] and its DMA address to 0. Returns the
 * pages unmapped (-EINVAL for an empty range).
 */
export function hmmRangeDmaUnmap(
  range: HmmRange54,
  dev: HmmDmaDevice,
  daddrs: Float64Array,
  dirty: boolean,
): number {
  if (range.end <= range.start) return -EINVAL;
  const npages = (range.end - range.start) / PAGE_SIZE;
  const v = range.values;
  let cpages = 0;
  for (let i = 0; i < npages; i++) {
    if (hmmDeviceEntryToPfnAt(range, i) < 0) continue;
    if (hmmRange54HasFlag(range, i, HMM_PFN_WRITE) && dirty) dev.pagesDirtied++; // set_page_dirty
    dev.dmaUnmapPage(daddrs[i]!);
    range.pfns[2 * i] = v[2 * HMM_PFN_NONE]!;
    range.pfns[2 * i + 1] = v[2 * HMM_PFN_NONE + 1]!;
    daddrs[i] = 0;
    cpages++;
  }
  return cpages;
}
