/**
 * hmm_range_fault() and its page walk (mm/hmm.c, Linux v5.10.109; v5.10.0 behind a switch).
 *
 * The walk fills `range.hmmPfns` (two Int32 slots per page, see pfn.ts) from the CPU page table of
 * `range.notifier.mm`, faulting pages in where the request demands it, and returns 0 or a negative
 * errno. It reads PTE and PMD words with PLAIN reads, each entry once into a local (the kernel's
 * READ_ONCE), and decodes the kind byte through 256-entry tables. Nothing here allocates: the
 * walk's state lives in module-level variables (thread-local: every worker has its own module
 * instance). The walk is therefore not reentrant; handle_mm_fault never calls back into it.
 *
 * Why plain reads are safe (the happens-before argument, spec README "Representation rules"):
 * every entry is ONE Int32 word, and plain Int32Array accesses are tear-free, so each local is a
 * value some writer really stored. The value may be stale. The caller got `notifierSeq` from
 * mmu_interval_read_begin before the walk; any writer that changes a mapping in the range calls
 * invalidate_range_start first, whose op takes the driver's update lock and sets the
 * subscription's seq. After the walk the caller takes that same lock (an Atomics read-modify-
 * write, a synchronising operation) and calls mmu_interval_read_retry: if the seq is unchanged, no
 * invalidation's start ran between read_begin and the lock, so every PTE the walk read was the
 * current value (a writer's Atomics.store before its start is ordered before the invalidate op's
 * lock release, which is ordered before our acquire); if it changed, the caller throws the output
 * away. Until then no value read here is trusted for anything but the output words (a PFN
 * payload is used as an index only into frame metadata, bounds-safe by construction).
 */
import * as points from '../checker/points.js';
import {
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_WRITE,
  handleMmFault,
  migrationEntryWait,
  VM_FAULT_ERROR,
} from '../mm/fault.js';
import * as layout from '../mm/layout.js';
import type { MmStruct } from '../mm/mm.js';
import * as errno from '../mm/mmu-notifier.js';
import type { MmuIntervalNotifier } from '../notifier/interval-notifier.js';
import * as notifier from '../notifier/interval-notifier.js';
import * as percpuRwsem from '../shm/percpu-rwsem.js';
import * as pfn from './pfn.js';

// Module-local copies of the imported constants and hot-path functions. An imported binding is
// live: V8 (Node 20) reloads it from its module cell, with a TDZ check, at every use, even inside
// the PTE loop (measured: ~0.5 ns per page and ~15 ns per call). A module-local const is folded
// into the optimised code like a literal.
const { injection, jitterPoint, POINT_WALK_STEP } = points;
const {
  FR_DEVICE_PRIVATE,
  FR_OWNER_MASK,
  FR_OWNER_SHIFT,
  MM_MMAP_LOCK,
  MM_VMA_COUNT,
  PAGE_SIZE,
  PMD_ORDER,
  PMD_TYPE_HUGE,
  PMD_TYPE_MIGRATION,
  PMD_TYPE_NONE,
  PMD_TYPE_TABLE,
  PTE_DEVMAP,
  PTE_KIND_SHIFT,
  PTE_PAYLOAD_MASK,
  PTE_PROTNONE,
  PTE_SPECIAL,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_HWPOISON,
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
  ZERO_PFN,
} = layout;
const { EBUSY, EFAULT, EINVAL, EPERM } = errno;
const { mmuIntervalCheckRetry } = notifier;
const mmapLockHeldHere = percpuRwsem.percpuRwsemHeldHere;
const {
  HMM_PFN_ERROR_HI,
  HMM_PFN_REQ_FAULT_HI,
  HMM_PFN_REQ_WRITE_HI,
  HMM_PFN_VALID_HI,
  HMM_PFN_WRITE_HI,
  hmmPfnFlagsOrderHi,
} = pfn;

// ---------------------------------------------------------------------------------------------
// The range and the switches

/**
 * struct hmm_range. `start`/`end` are byte addresses (page aligned, `end` exclusive); `hmmPfns`
 * holds two Int32 slots per page (pfn.ts): on entry each page's request, on return its output.
 * `defaultFlags` and `pfnFlagsMask` are hi-word masks (HMM_PFN_REQ_FAULT_HI, HMM_PFN_REQ_WRITE_HI).
 * `devPrivateOwner` is the owner token (a device id) whose private pages are reported, -1 none.
 */
export interface HmmRange {
  notifier: MmuIntervalNotifier;
  notifierSeq: number;
  start: number;
  end: number;
  hmmPfns: Int32Array;
  defaultFlags: number;
  pfnFlagsMask: number;
  devPrivateOwner: number;
}

/** Which kernel's walk to model: the reference v5.10.109, or v5.10.0's two older tests. */
export type HmmKernel = '5.10.109' | '5.10.0';

/** This thread's default kernel for hmmRangeFault (a worker sets it from its task payload). */
export const hmmConfig: { kernel: HmmKernel } = { kernel: '5.10.109' };

export function setHmmKernel(kernel: HmmKernel): void {
  hmmConfig.kernel = kernel;
}

/** Counters of one hmmRangeFault call (thread-local, reset at each call's entry). */
export interface HmmRangeFaultStats {
  /** walks started (each after a passed check) */
  walks: number;
  /** 1 when the call ended with -EBUSY from mmu_interval_check_retry, else 0 */
  busyFromCheck: number;
  /** pages passed to handleMmFault */
  faults: number;
  /** migration entries waited for (PTE or PMD) */
  migrationWaits: number;
}

/** The last call's counters on this thread. */
export const hmmStats: HmmRangeFaultStats = { walks: 0, busyFromCheck: 0, faults: 0, migrationWaits: 0 };
/** The sum over every call on this thread since the last `hmmStatsReset()`. */
export const hmmStatsTotal: HmmRangeFaultStats & { calls: number } = {
  calls: 0,
  walks: 0,
  busyFromCheck: 0,
  faults: 0,
  migrationWaits: 0,
};

// Module-local aliases of this module's own exports (an export is a module cell too).
const stats = hmmStats;
const statsTotal = hmmStatsTotal;
const config = hmmConfig;

export function hmmStatsReset(): void {
  hmmStatsTotal.calls = 0;
  hmmStatsTotal.walks = 0;
  hmmStatsTotal.busyFromCheck = 0;
  hmmStatsTotal.faults = 0;
  hmmStatsTotal.migrationWaits = 0;
}

// ---------------------------------------------------------------------------------------------
// Table-driven decode of the kind byte (bits 24..31 of an entry word).
// A table word holds an action code in bits 0..3 and the entry's CPU flags at their hi-word
// positions (VALID bit 31, WRITE bit 30, order bits 24..28), so `k & CPU_MASK` is `cpu_flags`.

const ACTION_MASK = 0xf;
const CPU_MASK = HMM_PFN_VALID_HI | HMM_PFN_WRITE_HI | (0x1f << 24);
/** PTE table: the output's low word is the entry's payload (else 0) when nothing is required */
const PTE_OUT_PFN_SHIFT = 4;
const PTE_OUT_PFN = 1 << PTE_OUT_PFN_SHIFT;
/** PTE table: the kind needs more than the table (owner or zero-PFN test): take hmmVmaHandlePte */
const PTE_SLOW = 1 << 5;
/** the CPU flags a request can demand: VALID (REQ_FAULT) and WRITE (REQ_WRITE) */
const NEED_BITS_HI = HMM_PFN_VALID_HI | HMM_PFN_WRITE_HI;

// PTE actions
const PTE_A_NONE = 0; // pte_none
const PTE_A_PRESENT = 1; // a normal present page (or protnone: cpu flags 0)
const PTE_A_RAWCHK = 2; // present, may not be a normal page: raw PFN unless the zero page
const PTE_A_SWAP = 3; // a real swap entry
const PTE_A_MIGRATION = 4;
const PTE_A_DEVICE_PRIVATE = 5;
const PTE_A_OTHER = 6; // hwpoison, and any other non-present entry

// PMD actions
const PMD_A_NONE = 0;
const PMD_A_TABLE = 1;
const PMD_A_HUGE = 2;
const PMD_A_MIGRATION = 3;
const PMD_A_BAD = 4; // any other non-present PMD, or a bad one

/** pte_to_hmm_pfn_flags() from a kind byte: VALID (+WRITE), or 0 when protnone. */
function pteKindCpuFlags(kind: number): number {
  const w = kind << PTE_KIND_SHIFT;
  if ((w & PTE_PROTNONE) !== 0) return 0;
  return (w & PTE_WRITE) !== 0 ? HMM_PFN_VALID_HI | HMM_PFN_WRITE_HI : HMM_PFN_VALID_HI;
}

/**
 * Build the PTE table. Every special present PTE is SLOW: the raw-PFN test needs the PFN (the zero
 * page is special too) and is where the two kernels differ (see hmmVmaHandlePte). One table for
 * both kernels keeps it a module constant the compiler can see through.
 */
function buildPteTable(): Int32Array {
  const t = new Int32Array(256);
  for (let kind = 0; kind < 256; kind++) {
    const w = kind << PTE_KIND_SHIFT;
    let e: number;
    switch (w & PTE_TYPE_MASK) {
      case PTE_TYPE_NONE:
        e = PTE_A_NONE;
        break;
      case PTE_TYPE_PRESENT: {
        const special = (w & PTE_SPECIAL) !== 0;
        e = (special ? PTE_A_RAWCHK | PTE_SLOW : PTE_A_PRESENT) | PTE_OUT_PFN | pteKindCpuFlags(kind);
        break;
      }
      case PTE_TYPE_SWAP:
        e = PTE_A_SWAP;
        break;
      case PTE_TYPE_MIGRATION:
        e = PTE_A_MIGRATION;
        break;
      case PTE_TYPE_DEVICE_PRIVATE:
        // cpu flags as reported for the caller's own page: VALID (+WRITE if the entry is writable)
        e =
          PTE_A_DEVICE_PRIVATE |
          PTE_SLOW |
          PTE_OUT_PFN |
          HMM_PFN_VALID_HI |
          ((w & PTE_WRITE) !== 0 ? HMM_PFN_WRITE_HI : 0);
        break;
      case PTE_TYPE_HWPOISON:
        e = PTE_A_OTHER;
        break;
      default:
        e = PTE_A_OTHER;
    }
    t[kind] = e;
  }
  return t;
}

/** pmd_to_hmm_pfn_flags() + the kind of PMD, for every kind byte. */
function buildPmdTable(): Int32Array {
  const t = new Int32Array(256);
  for (let kind = 0; kind < 256; kind++) {
    const w = kind << PTE_KIND_SHIFT;
    let e: number;
    switch (w & PTE_TYPE_MASK) {
      case PMD_TYPE_NONE:
        e = PMD_A_NONE;
        break;
      case PMD_TYPE_TABLE:
        e = PMD_A_TABLE;
        break;
      case PMD_TYPE_HUGE:
        // a protnone huge PMD reports no flags and no order; otherwise VALID (+WRITE) | order 9
        e =
          PMD_A_HUGE | ((w & PTE_PROTNONE) !== 0 ? 0 : pteKindCpuFlags(kind) | hmmPfnFlagsOrderHi(PMD_ORDER));
        break;
      case PMD_TYPE_MIGRATION:
        e = PMD_A_MIGRATION;
        break;
      default:
        e = PMD_A_BAD; // PMD_TYPE_BAD, PMD_TYPE_SWAP and undefined types
    }
    t[kind] = e;
  }
  return t;
}

const PTE_KIND = buildPteTable();
const PMD_KIND = buildPmdTable();

// hmm_pte_need_fault() results
const HMM_NEED_FAULT = 1;
const HMM_NEED_WRITE_FAULT = 2;
const HMM_NEED_ALL_BITS = HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT;

const PMD_PAGE_MASK = PTRS_PER_PTE - 1;
const PUD_PAGES = 1 << 18; // 1 GiB in pages: holes outside VMAs are split here

// ---------------------------------------------------------------------------------------------
// The walk's state (struct hmm_vma_walk + the range's fields, hoisted into locals of the module)
//
// Two kinds, for the per-call cost. The scalars (small integers and booleans: no allocation, no
// write barrier) are set at every call's entry. The object references (the mm, its arrays and the
// output array) are loaded only when the walk leaves its fast path (hmmWalkStateLoad) and dropped
// at the call's end: a snapshot over PTE tables, the common case, passes them as arguments and
// never stores an object into module state (each such store costs a write barrier, and a slow one
// when the range's array is young).

const EMPTY = new Int32Array(0);
let wMm: MmStruct | null = null;
let wPmd: Int32Array = EMPTY;
let wFrameState: Int32Array = EMPTY;
let wPfns: Int32Array = EMPTY;
let wStartPage = 0;
let wDefault = 0;
let wMask = 0;
let wOwner = -1;
let wFaultPossible = false;
let wV5100 = false;
/** hmm_vma_walk.last: where the next walk starts (a page number) */
let wLast = 0;
/** benchmark only: use the Atomics.load copy of the PTE loop */
let wAtomicsReference = false;

/**
 * Load the object half of the walk state before any function that reads it (every function
 * below that takes no `mm`/`pfns` arguments). Idempotent within a call.
 */
function hmmWalkStateLoad(mm: MmStruct, pfns: Int32Array): void {
  if (wMm === mm && wPfns === pfns) return;
  wMm = mm;
  wPmd = mm.pmd;
  wFrameState = mm.phys.frames.state;
  wPfns = pfns;
}

/** Drop the object half at a call's end (the thread must not keep the mm or the array alive). */
function hmmWalkStateDrop(): void {
  wMm = null;
  wPmd = EMPTY;
  wFrameState = EMPTY;
  wPfns = EMPTY;
}

// ---------------------------------------------------------------------------------------------
// Requirements

/**
 * hmm_pte_need_fault(): what one page requires given its input word's hi slot and the CPU flags.
 * The request is (input & pfn_flags_mask) | default_flags: a driver can fault a whole range with
 * default_flags alone, or per page through the mask.
 */
function hmmPteNeedFault(inHi: number, cpuHi: number): number {
  const req = (inHi & wMask) | wDefault;
  if ((req & HMM_PFN_REQ_FAULT_HI) === 0) return 0; // a snapshot of this page
  if ((req & HMM_PFN_REQ_WRITE_HI) !== 0 && (cpuHi & HMM_PFN_WRITE_HI) === 0) {
    return HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT;
  }
  if ((cpuHi & HMM_PFN_VALID_HI) === 0) return HMM_NEED_FAULT;
  return 0;
}

/**
 * hmm_range_need_fault(): the OR of the requirements of pages [page, end) against one CPU state.
 * Shortcut: if neither default_flags nor the mask can carry REQ_FAULT, nothing is ever required.
 */
function hmmRangeNeedFault(page: number, end: number, cpuHi: number): number {
  if (!wFaultPossible) return 0;
  const pfns = wPfns;
  let required = 0;
  for (let i = 2 * (page - wStartPage) + 1; page < end; page++, i += 2) {
    required |= hmmPteNeedFault(pfns[i]!, cpuHi);
    if (required === HMM_NEED_ALL_BITS) return required;
  }
  return required;
}

/** hmm_pfns_fill(): pages [page, end) get the whole word `hi:0` (flags only, PFN 0). */
function hmmPfnsFill(page: number, end: number, hi: number): void {
  const pfns = wPfns;
  for (let i = 2 * (page - wStartPage); page < end; page++, i += 2) {
    pfns[i] = 0;
    pfns[i + 1] = hi;
  }
}

// ---------------------------------------------------------------------------------------------
// Faulting

/**
 * hmm_vma_fault(): fault every page of the run [page, end) through handle_mm_fault (a remote
 * fault, write if required), including pages whose own request was nothing, then ask for a new
 * walk from `last` with -EBUSY. A write requirement on a VMA without VM_WRITE is -EPERM; any
 * fault error (SIGSEGV, SIGBUS, OOM) stops the run with -EFAULT.
 */
function hmmVmaFault(page: number, end: number, required: number, vmaFlags: number): number {
  wLast = page;
  let faultFlags = FAULT_FLAG_REMOTE;
  if ((required & HMM_NEED_WRITE_FAULT) !== 0) {
    if ((vmaFlags & VM_WRITE) === 0) return -EPERM;
    faultFlags |= FAULT_FLAG_WRITE;
  }
  const mm = wMm!;
  for (; page < end; page++) {
    stats.faults++;
    if ((handleMmFault(mm, page * PAGE_SIZE, faultFlags) & VM_FAULT_ERROR) !== 0) return -EFAULT;
  }
  return -EBUSY;
}

// ---------------------------------------------------------------------------------------------
// Holes

/**
 * hmm_vma_walk_hole() inside a VMA: a missing PMD (hmmsim has no upper levels, so at most one PMD
 * step). If any page requires a fault, fault the whole hole with the OR-ed requirement; otherwise
 * the pages get 0 (not mapped, not an error).
 */
function hmmVmaWalkHole(page: number, end: number, vmaFlags: number): number {
  const required = hmmRangeNeedFault(page, end, 0);
  if (required !== 0) return hmmVmaFault(page, end, required, vmaFlags);
  hmmPfnsFill(page, end, 0);
  return 0;
}

/**
 * hmm_vma_walk_hole() with no VMA: the kernel walks a gap one PUD step (1 GiB) at a time without
 * looking further down. Per step: a required fault is -EFAULT (that step's words untouched),
 * otherwise every page gets exactly HMM_PFN_ERROR.
 */
function hmmVmaWalkHoleNoVma(page: number, end: number): number {
  while (page < end) {
    const next = Math.min(end, (Math.floor(page / PUD_PAGES) + 1) * PUD_PAGES);
    jitterPoint(POINT_WALK_STEP);
    if (hmmRangeNeedFault(page, next, 0) !== 0) return -EFAULT;
    hmmPfnsFill(page, next, HMM_PFN_ERROR_HI);
    page = next;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// PTE level

/**
 * hmm_vma_handle_pte(), the full per-PTE logic; hmmVmaWalkPtesLoop calls it only for a
 * page that needs a fault or for a SLOW kind (device-private: the owner test; special: the
 * zero-PFN test). `w` is the PTE as read once, `k` its table word, `i` its hmm_pfns slot.
 * Returns 0 to go on with the next PTE, or the walk's return value.
 */
function hmmVmaHandlePte(
  page: number,
  end: number,
  w: number,
  k: number,
  i: number,
  vmaFlags: number,
): number {
  const pfns = wPfns;
  const inHi = pfns[i + 1]!;
  let required: number;
  switch (k & ACTION_MASK) {
    case PTE_A_NONE:
      required = hmmPteNeedFault(inHi, 0);
      if (required !== 0) return hmmVmaFault(page, end, required, vmaFlags);
      pfns[i] = 0;
      pfns[i + 1] = 0;
      return 0;

    case PTE_A_PRESENT:
    case PTE_A_RAWCHK: {
      const cpuHi = k & CPU_MASK;
      required = hmmPteNeedFault(inHi, cpuHi);
      if (required !== 0) return hmmVmaFault(page, end, required, vmaFlags);
      const pfn = w & PTE_PAYLOAD_MASK;
      // The raw-PFN test: a PTE that does not map a normal page (vm_normal_page: a special PTE,
      // VM_PFNMAP/VM_MIXEDMAP style) and is neither a device map nor the zero page cannot be
      // handed to a device ([v5.10.0]: "special and not the zero page", so a special devmap PTE
      // was refused too). Since the request was satisfied above, only "REQ_FAULT at all" turns it
      // into -EFAULT.
      if ((k & ACTION_MASK) === PTE_A_RAWCHK && pfn !== ZERO_PFN && (wV5100 || (w & PTE_DEVMAP) === 0)) {
        if (hmmPteNeedFault(inHi, 0) !== 0) return -EFAULT;
        pfns[i] = 0;
        pfns[i + 1] = HMM_PFN_ERROR_HI;
        return 0;
      }
      pfns[i] = pfn;
      pfns[i + 1] = cpuHi;
      return 0;
    }

    case PTE_A_DEVICE_PRIVATE: {
      // hmm_is_device_private_entry(): the owner lives in the device frame's state word. A plain
      // read: it is meaningful only while the PTE is, and the PTE is validated by read_retry.
      const pfn = w & PTE_PAYLOAD_MASK;
      const st = wFrameState[pfn];
      if (
        st !== undefined &&
        (st & FR_DEVICE_PRIVATE) !== 0 &&
        (st & FR_OWNER_MASK) >>> FR_OWNER_SHIFT === wOwner
      ) {
        // Never fault the caller's own device page in: report it whatever the request.
        pfns[i] = pfn;
        pfns[i + 1] = k & CPU_MASK;
        return 0;
      }
      break;
    }
  }

  // A non-present (swap-type) entry that is not the caller's device page.
  required = hmmPteNeedFault(inHi, 0);
  if (required === 0) {
    pfns[i] = 0;
    pfns[i + 1] = 0;
    return 0;
  }
  switch (k & ACTION_MASK) {
    case PTE_A_SWAP:
      return hmmVmaFault(page, end, required, vmaFlags); // swap-in
    case PTE_A_MIGRATION:
      wLast = page;
      stats.migrationWaits++;
      migrationEntryWait(wMm!, page);
      return -EBUSY;
    default:
      // hwpoison, another owner's device-private page, anything else
      return -EFAULT;
  }
}

// The PTE loop of hmm_vma_walk_pmd() is split in two: a tight scan that handles every page whose
// output follows from the table alone and stops at the first page that needs more (a fault, or a
// SLOW kind), and hmmVmaWalkPtesLoop, which hands that page to hmmVmaHandlePte and resumes the
// scan. Keeping the call out of the scan's loop body keeps the loop small for the compiler.

/** The scans: each fills pages from `page` on and returns the page it stopped at (or `end`). */
const SCAN_SNAPSHOT = 0;
const SCAN_FAULT = 1;
const SCAN_SNAPSHOT_ATOMICS_REFERENCE = 2;
const SCAN_FAULT_ATOMICS_REFERENCE = 3;

/**
 * The scan when nothing can be required (the shortcut: neither default_flags nor the mask carries
 * REQ_FAULT, a snapshot). Table-driven: for every kind but the SLOW ones the output is a pure
 * function of the kind byte and the payload (present: pfn | cpu flags; protnone: pfn; none and
 * every non-present kind but the caller's device page: 0), written without branching on the kind.
 */
function hmmPteScanSnapshot(pte: Int32Array, pfns: Int32Array, page: number, end: number, i: number): number {
  for (; page < end; page++, i += 2) {
    // READ_ONCE(*ptep): one plain read of one Int32 (tear-free), decoded only from this copy;
    // validated by the caller's mmu_interval_read_retry under its lock (see the file header).
    const w = pte[page]!;
    const k = PTE_KIND[w >>> PTE_KIND_SHIFT]!;
    if ((k & PTE_SLOW) !== 0) return page;
    pfns[i] = w & PTE_PAYLOAD_MASK & -((k >>> PTE_OUT_PFN_SHIFT) & 1);
    pfns[i + 1] = k & CPU_MASK;
  }
  return end;
}

/**
 * The scan when pages may require faults. hmm_pte_need_fault() is computed without branches:
 * REQ_FAULT is the sign bit, and REQ_WRITE/REQ_FAULT sit at the bit positions of WRITE/VALID, so
 * a page needs a fault iff its request has REQ_FAULT and asks for a VALID or WRITE the CPU lacks.
 */
function hmmPteScanFault(
  pte: Int32Array,
  pfns: Int32Array,
  page: number,
  end: number,
  i: number,
  mask: number,
  dflt: number,
): number {
  for (; page < end; page++, i += 2) {
    // READ_ONCE(*ptep): as in hmmPteScanSnapshot
    const w = pte[page]!;
    const k = PTE_KIND[w >>> PTE_KIND_SHIFT]!;
    const cpuHi = k & CPU_MASK;
    const req = (pfns[i + 1]! & mask) | dflt;
    if (((k & PTE_SLOW) | ((req >> 31) & req & ~cpuHi & NEED_BITS_HI)) !== 0) return page;
    pfns[i] = w & PTE_PAYLOAD_MASK & -((k >>> PTE_OUT_PFN_SHIFT) & 1);
    pfns[i + 1] = cpuHi;
  }
  return end;
}

/**
 * BENCHMARK REFERENCE ONLY: hmmPteScanSnapshot reading each PTE with Atomics.load, to measure
 * what the plain-read rule saves. Reached only through hmmRangeFaultAtomicsLoadReference.
 */
function hmmPteScanSnapshotAtomicsLoadReference(
  pte: Int32Array,
  pfns: Int32Array,
  page: number,
  end: number,
  i: number,
): number {
  for (; page < end; page++, i += 2) {
    const w = Atomics.load(pte, page);
    const k = PTE_KIND[w >>> PTE_KIND_SHIFT]!;
    if ((k & PTE_SLOW) !== 0) return page;
    pfns[i] = w & PTE_PAYLOAD_MASK & -((k >>> PTE_OUT_PFN_SHIFT) & 1);
    pfns[i + 1] = k & CPU_MASK;
  }
  return end;
}

/** BENCHMARK REFERENCE ONLY: hmmPteScanFault reading each PTE with Atomics.load. */
function hmmPteScanFaultAtomicsLoadReference(
  pte: Int32Array,
  pfns: Int32Array,
  page: number,
  end: number,
  i: number,
  mask: number,
  dflt: number,
): number {
  for (; page < end; page++, i += 2) {
    const w = Atomics.load(pte, page);
    const k = PTE_KIND[w >>> PTE_KIND_SHIFT]!;
    const cpuHi = k & CPU_MASK;
    const req = (pfns[i + 1]! & mask) | dflt;
    if (((k & PTE_SLOW) | ((req >> 31) & req & ~cpuHi & NEED_BITS_HI)) !== 0) return page;
    pfns[i] = w & PTE_PAYLOAD_MASK & -((k >>> PTE_OUT_PFN_SHIFT) & 1);
    pfns[i + 1] = cpuHi;
  }
  return end;
}

/**
 * The PTE loop of hmm_vma_walk_pmd() over one PTE table, pages [page, end): scan, and give each
 * page the scan stopped at to hmmVmaHandlePte (a fault run from that PTE to the end of the PMD
 * step with that PTE's requirement, or a SLOW kind).
 */
function hmmVmaWalkPtesLoop(
  mm: MmStruct,
  pfns: Int32Array,
  page: number,
  end: number,
  vmaFlags: number,
  scan: number,
): number {
  const pte = mm.pte;
  const mask = wMask;
  const dflt = wDefault;
  const base = wStartPage;
  while (page < end) {
    const i0 = 2 * (page - base);
    switch (scan) {
      case SCAN_SNAPSHOT:
        page = hmmPteScanSnapshot(pte, pfns, page, end, i0);
        break;
      case SCAN_FAULT:
        page = hmmPteScanFault(pte, pfns, page, end, i0, mask, dflt);
        break;
      case SCAN_SNAPSHOT_ATOMICS_REFERENCE:
        page = hmmPteScanSnapshotAtomicsLoadReference(pte, pfns, page, end, i0);
        break;
      case SCAN_FAULT_ATOMICS_REFERENCE:
        page = hmmPteScanFaultAtomicsLoadReference(pte, pfns, page, end, i0, mask, dflt);
        break;
      default:
        throw new Error('hmmVmaWalkPtesLoop: unknown scan');
    }
    if (page >= end) return 0;
    hmmWalkStateLoad(mm, pfns);
    // READ_ONCE(*ptep) again: the scan stopped here without acting on its copy, so this one
    // copy alone decides what happens to the page (hmmVmaHandlePte handles every kind).
    const w = scan >= SCAN_SNAPSHOT_ATOMICS_REFERENCE ? Atomics.load(pte, page) : pte[page]!;
    const r = hmmVmaHandlePte(page, end, w, PTE_KIND[w >>> PTE_KIND_SHIFT]!, 2 * (page - base), vmaFlags);
    if (r !== 0) return r;
    page++;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// PMD level

/**
 * hmm_vma_handle_pmd(): a huge PMD (THP, huge zero page, devmap) over [page, end). Fault the part
 * inside the range if required (OR-ed); else each page gets (head pfn + offset) | cpu flags, where
 * the flags carry order 9, or nothing at all for a protnone PMD.
 */
function hmmVmaHandlePmd(page: number, end: number, pmd: number, cpuHi: number, vmaFlags: number): number {
  const required = hmmRangeNeedFault(page, end, cpuHi);
  if (required !== 0) return hmmVmaFault(page, end, required, vmaFlags);
  const pfns = wPfns;
  let pfn = (pmd & PTE_PAYLOAD_MASK) + (page & PMD_PAGE_MASK);
  for (let i = 2 * (page - wStartPage); page < end; page++, i += 2, pfn++) {
    pfns[i] = pfn;
    pfns[i + 1] = cpuHi;
  }
  return 0;
}

/**
 * hmm_vma_walk_pmd(): one PMD step [page, end) of a walked VMA whose PMD `pmd` the caller read once
 * (READ_ONCE; same validation as the PTEs). The walk state must be loaded.
 */
function hmmVmaWalkPmd(page: number, end: number, vmaFlags: number, pmd: number): number {
  const pmdIdx = Math.floor(page / PTRS_PER_PTE);
  for (;;) {
    const k = PMD_KIND[pmd >>> PTE_KIND_SHIFT]!;
    switch (k & ACTION_MASK) {
      case PMD_A_NONE:
        return hmmVmaWalkHole(page, end, vmaFlags);

      case PMD_A_MIGRATION:
        // A THP under migration: wait only if a fault is needed, then walk again from here.
        if (hmmRangeNeedFault(page, end, 0) !== 0) {
          wLast = page;
          stats.migrationWaits++;
          migrationEntryWait(wMm!, page);
          return -EBUSY;
        }
        hmmPfnsFill(page, end, 0);
        return 0;

      case PMD_A_HUGE: {
        // No page-table lock: a concurrent split is reported by the notifier. Read the PMD once
        // more and make sure it is still huge (pmd_read_atomic + re-check); if not, start over
        // from that new value (the kernel's `goto again`).
        const again = wPmd[pmdIdx]!;
        const k2 = PMD_KIND[again >>> PTE_KIND_SHIFT]!;
        if ((k2 & ACTION_MASK) !== PMD_A_HUGE) {
          pmd = again;
          continue;
        }
        return hmmVmaHandlePmd(page, end, again, k2 & CPU_MASK, vmaFlags);
      }

      case PMD_A_TABLE:
        return hmmVmaWalkPtesLoop(
          wMm!,
          wPfns,
          page,
          end,
          vmaFlags,
          (wFaultPossible ? SCAN_FAULT : SCAN_SNAPSHOT) +
            (wAtomicsReference ? SCAN_SNAPSHOT_ATOMICS_REFERENCE : 0),
        );

      default:
        // any other non-present PMD, or a bad one: cannot be faulted in
        if (hmmRangeNeedFault(page, end, 0) !== 0) return -EFAULT;
        hmmPfnsFill(page, end, HMM_PFN_ERROR_HI);
        return 0;
    }
  }
}

/**
 * walk_pmd_range(): the PMD steps of [page, end) inside one walked, non-hugetlb VMA. A PTE table
 * goes straight to the PTE loop (the fast path, with `mm` and `pfns` as arguments); every other
 * PMD kind loads the walk state and takes hmmVmaWalkPmd with the same one copy of the entry.
 */
function hmmWalkPmdRange(
  mm: MmStruct,
  pfns: Int32Array,
  page: number,
  end: number,
  vmaFlags: number,
  scan: number,
): number {
  const pmds = mm.pmd;
  while (page < end) {
    const next = Math.min(end, (page | PMD_PAGE_MASK) + 1);
    if (injection.jitter) jitterPoint(POINT_WALK_STEP); // the test inlined: a hot call site
    // READ_ONCE(*pmdp): one plain read of one Int32 (tear-free), decoded only from this copy and
    // validated like the PTEs by the caller's read_retry under its lock (see the file header).
    const pmd = pmds[Math.floor(page / PTRS_PER_PTE)]!;
    let r: number;
    if ((PMD_KIND[pmd >>> PTE_KIND_SHIFT]! & ACTION_MASK) === PMD_A_TABLE) {
      r = hmmVmaWalkPtesLoop(mm, pfns, page, next, vmaFlags, scan);
    } else {
      hmmWalkStateLoad(mm, pfns);
      r = hmmVmaWalkPmd(page, next, vmaFlags, pmd);
    }
    if (r !== 0) return r;
    page = next;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Hugetlb

/**
 * hmm_vma_walk_hugetlb_entry(): one huge page clipped to [page, end). The requirement is that of
 * the first page of the step (not OR-ed); the order bits are set even when the entry is none or
 * protnone; the PFN is the entry's (0 for a none entry) plus the offset in the huge page.
 */
function hmmVmaWalkHugetlbEntry(
  page: number,
  end: number,
  entry: number,
  order: number,
  vmaFlags: number,
): number {
  const pfns = wPfns;
  let i = 2 * (page - wStartPage);
  const k = PMD_KIND[entry >>> PTE_KIND_SHIFT]!;
  // pte_to_hmm_pfn_flags() on the huge entry (present and not protnone), plus the hstate order
  const cpuHi =
    ((k & ACTION_MASK) === PMD_A_HUGE ? k & (HMM_PFN_VALID_HI | HMM_PFN_WRITE_HI) : 0) |
    hmmPfnFlagsOrderHi(order);
  const required = hmmPteNeedFault(pfns[i + 1]!, cpuHi);
  if (required !== 0) return hmmVmaFault(page, end, required, vmaFlags);
  const base = (entry & PTE_TYPE_MASK) === PMD_TYPE_NONE ? 0 : entry & PTE_PAYLOAD_MASK;
  let pfn = base + (page & ((1 << order) - 1));
  for (; page < end; page++, i += 2, pfn++) {
    pfns[i] = pfn;
    pfns[i + 1] = cpuHi;
  }
  return 0;
}

/**
 * walk_hugetlb_range(): one step per huge page. The entry of a huge page is the PMD word of its
 * first 2 MiB (hmmsim always has that slot, so an unpopulated huge page is a none entry, never a
 * hole).
 */
function hmmWalkHugetlbRange(page: number, end: number, vmaFlags: number, order: number): number {
  const hpages = 2 ** order;
  while (page < end) {
    const head = page - (page % hpages);
    const next = Math.min(end, head + hpages);
    jitterPoint(POINT_WALK_STEP);
    // huge_ptep_get(): one plain read, validated like every other entry
    const entry = wPmd[Math.floor(head / PTRS_PER_PTE)]!;
    const r = hmmVmaWalkHugetlbEntry(page, next, entry, order, vmaFlags);
    if (r !== 0) return r;
    page = next;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// VMAs

/** hmm_vma_walk_test()'s test alone: VM_READ and neither VM_IO nor VM_PFNMAP ([v5.10.0]: VM_MIXEDMAP). */
function hmmVmaWalkable(vmaFlags: number): boolean {
  const refused = wV5100 ? VM_IO | VM_PFNMAP | VM_MIXEDMAP : VM_IO | VM_PFNMAP;
  return (vmaFlags & refused) === 0 && (vmaFlags & VM_READ) !== 0;
}

/**
 * hmm_vma_walk_test(): a VMA is walked if it has VM_READ and neither VM_IO nor VM_PFNMAP
 * ([v5.10.0]: nor VM_MIXEDMAP). Otherwise it cannot be mirrored: if a page of it in the range
 * requires a fault (against "nothing" on the CPU) that is -EFAULT; else its pages get
 * HMM_PFN_ERROR and the walk skips it (1).
 */
function hmmVmaWalkTest(page: number, end: number, vmaFlags: number): number {
  if (hmmVmaWalkable(vmaFlags)) return 0;
  if (hmmRangeNeedFault(page, end, 0) !== 0) return -EFAULT;
  hmmPfnsFill(page, end, HMM_PFN_ERROR_HI);
  return 1;
}

/**
 * find_vma(): mm.findVmaIndex on a count the caller read, with this module's folded constants.
 * The index of the first VMA whose end is above `page` (it may start above `page`: a gap before
 * it), or `count` if there is none.
 */
function hmmFindVma(vmas: Int32Array, count: number, page: number): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (vmas[mid * VMA_STRIDE + VMA_END]! <= page) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * walk_page_range() with hmm's ops, pages [start, end): one VMA (or gap) at a time. An empty range
 * is -EINVAL here, i.e. only after hmm_range_fault's first sequence check. `scan` is the PTE scan
 * the call uses (hmmVmaWalkPtesLoop).
 */
function hmmVmaWalk(mm: MmStruct, pfns: Int32Array, start: number, end: number, scan: number): number {
  if (start >= end) return -EINVAL;
  const vmas = mm.vmas;
  // Plain reads of the VMA table and its count (mm.vmaCount): the caller holds the mmap lock,
  // whose acquisition (an Atomics read-modify-write) orders them after the last writer's release.
  const count = mm.ctl[MM_VMA_COUNT]!;
  let vi = hmmFindVma(vmas, count, start);
  let page = start;
  do {
    let next: number;
    let r: number;
    if (vi >= count) {
      next = end; // after the last VMA
      hmmWalkStateLoad(mm, pfns);
      r = hmmVmaWalkHoleNoVma(page, next);
    } else {
      const o = vi * VMA_STRIDE;
      const vs = vmas[o + VMA_START]!;
      if (page < vs) {
        next = Math.min(end, vs); // a gap before this VMA
        hmmWalkStateLoad(mm, pfns);
        r = hmmVmaWalkHoleNoVma(page, next);
      } else {
        next = Math.min(end, vmas[o + VMA_END]!);
        const flags = vmas[o + VMA_FLAGS]!;
        vi++;
        if (injection.jitter) jitterPoint(POINT_WALK_STEP); // the test inlined: a hot call site
        if ((flags & VM_HUGETLB) === 0 && hmmVmaWalkable(flags)) {
          // the common case: hmmVmaWalkTest would return 0 without touching the walk state
          r = hmmWalkPmdRange(mm, pfns, page, next, flags, scan);
        } else {
          hmmWalkStateLoad(mm, pfns);
          r = hmmVmaWalkTest(page, next, flags);
          if (r > 0) {
            r = 0; // skipped: its words were filled with HMM_PFN_ERROR
          } else if (r === 0) {
            if ((flags & VM_HUGETLB) !== 0) {
              r = hmmWalkHugetlbRange(page, next, flags, vmas[o + VMA_HUGE_ORDER]! || PMD_ORDER);
            } else {
              r = hmmWalkPmdRange(mm, pfns, page, next, flags, scan);
            }
          }
        }
      }
    }
    if (r !== 0) return r;
    page = next;
  } while (page < end);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// hmm_range_fault

function hmmRangeFaultInner(range: HmmRange, kernel: HmmKernel, atomicsReference: boolean): number {
  stats.walks = 0;
  stats.busyFromCheck = 0;
  stats.faults = 0;
  stats.migrationWaits = 0;

  const sub = range.notifier;
  const mm = sub.mm;
  // mmap_assert_locked(): the caller holds the mmap lock (read or write)
  // (plain reads of this thread's reader slot and the writer word: a holder sees its own
  // acquisition; for a caller that forgot the lock the check is as good as lockdep's warning)
  if (!mmapLockHeldHere(mm.ctl, MM_MMAP_LOCK)) {
    throw new Error('hmmRangeFault: the mmap lock must be held');
  }
  const startPage = Math.floor(range.start / PAGE_SIZE);
  const endPage = Math.floor(range.end / PAGE_SIZE);
  const pfns = range.hmmPfns;
  if (endPage > startPage && pfns.length < 2 * (endPage - startPage)) {
    throw new RangeError('hmmRangeFault: hmmPfns holds fewer than 2 slots per page of the range');
  }

  // The scalar half of the walk state; the object half is loaded only off the fast path.
  wStartPage = startPage;
  wDefault = range.defaultFlags | 0;
  wMask = range.pfnFlagsMask | 0;
  wOwner = range.devPrivateOwner;
  wFaultPossible = ((wDefault | wMask) & HMM_PFN_REQ_FAULT_HI) !== 0;
  wV5100 = kernel === '5.10.0';
  wAtomicsReference = atomicsReference;
  wLast = startPage;
  const scan =
    (wFaultPossible ? SCAN_FAULT : SCAN_SNAPSHOT) + (atomicsReference ? SCAN_SNAPSHOT_ATOMICS_REFERENCE : 0);

  let ret: number;
  for (;;) {
    // If the range is no longer valid, force a retry: checked before every walk, the first
    // included, and never in the middle of one.
    if (mmuIntervalCheckRetry(sub, range.notifierSeq)) {
      stats.busyFromCheck = 1;
      ret = -EBUSY;
      break;
    }
    stats.walks++;
    ret = hmmVmaWalk(mm, pfns, wLast, endPage, scan);
    // On -EBUSY, `last` is where the restart begins: every word below it holds its output, every
    // word from it on still holds its input (several -EFAULT paths fail without moving it).
    if (ret !== -EBUSY) break;
  }

  if (wMm !== null) hmmWalkStateDrop();
  const total = statsTotal;
  total.calls++;
  total.walks += stats.walks;
  total.busyFromCheck += stats.busyFromCheck;
  total.faults += stats.faults;
  total.migrationWaits += stats.migrationWaits;
  return ret;
}

/**
 * hmm_range_fault(): fill `range.hmmPfns` for [start, end), faulting pages in as requested. The
 * caller holds the mmap lock of `range.notifier.mm` (read or write). Returns 0; -EBUSY when the
 * subscription's sequence moved (restart from mmuIntervalReadBegin); -EFAULT when a page that must
 * be valid cannot be; -EPERM when write is required on a VMA without VM_WRITE; -EINVAL for an
 * empty range (after the first sequence check). `kernel` selects the v5.10.0 walk.
 */
export function hmmRangeFault(range: HmmRange, kernel: HmmKernel = config.kernel): number {
  return hmmRangeFaultInner(range, kernel, false);
}

/**
 * BENCHMARK REFERENCE ONLY: hmmRangeFault with the PTE loop reading through Atomics.load
 * (everything else identical). Not used by the simulator.
 */
export function hmmRangeFaultAtomicsLoadReference(
  range: HmmRange,
  kernel: HmmKernel = config.kernel,
): number {
  return hmmRangeFaultInner(range, kernel, true);
}
