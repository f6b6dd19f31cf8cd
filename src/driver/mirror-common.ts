/**
 * What the two reference devices share (the v5.10 `dmirror`, after lib/test_hmm.c, and the v5.4
 * `legacy-dmirror`): the mirror's layout and its entry accessors, the file ctl's common lines,
 * the test driver's ioctl argument checks, the per-file statistics plumbing and the read/write
 * loop (dmirror_read / dmirror_write) with the protocol-specific range-fault step as a parameter.
 * The protocols themselves (read_begin / read_retry, or register / wait_until_valid / valid) stay
 * in each driver.
 */
import {
  ACCESS_READ,
  ACCESS_WRITE,
  type AccessContext,
  noteDeviceWrite,
  oracleSwitch,
  reportStaleAccess,
} from '../checker/oracles.js';
import { POINT_DEVICE_ACCESS } from '../checker/points.js';
import { PAGE_SIZE } from '../mm/layout.js';
import type { MmStruct } from '../mm/mm.js';
import { EFAULT, EINVAL, ENOENT } from '../mm/mmu-notifier.js';
import type { PhysMem } from '../mm/physmem.js';
import { LINE_WORDS } from '../shm/layout.js';
import { driverPoint } from './sched.js';
import type { FileStats, MirrorOpResult } from './types.js';

// ---- mirror entry word ----
/**
 * The mirror layout: two Int32 words per page of address space, the entry (present, writable,
 * PFN) then the frame generation recorded when the entry was built (oracle #1).
 */
export const MIR_PRESENT = 1 << 30;
export const MIR_WRITE = 1 << 29;
export const MIR_PFN_MASK = 0x00ffffff;

/** The entry word of a present entry: present, writable iff `writable`, the PFN. */
export function mirrorEntryWord(pfn: number, writable: boolean): number {
  return MIR_PRESENT | (writable ? MIR_WRITE : 0) | (pfn & MIR_PFN_MASK);
}

/**
 * Install the entry of `page`: the generation first, then the entry word (present, writable iff
 * `writable`, the PFN). The caller holds the update lock.
 */
export function mirrorInstall(
  m: Int32Array,
  page: number,
  pfn: number,
  writable: boolean,
  gen: number,
): void {
  Atomics.store(m, 2 * page + 1, gen);
  Atomics.store(m, 2 * page, mirrorEntryWord(pfn, writable));
}

/** Erase the entries of pages [first, end); the count erased. The caller holds the update lock. */
export function mirrorErase(m: Int32Array, first: number, end: number): number {
  let erased = 0;
  for (let p = first; p < end; p++) {
    // Plain read under the update lock: every writer of mirror entries holds it (the Atomics
    // acquisition orders their stores before this read); the erase itself is an Atomics store.
    if (m[2 * p] !== 0) {
      Atomics.store(m, 2 * p, 0);
      erased++;
    }
  }
  return erased;
}

/** Visit every present entry of the first `npages` pages (oracle #3). */
export function mirrorForEachEntry(
  m: Int32Array,
  npages: number,
  visit: (page: number, pfn: number, writable: boolean) => void,
): void {
  for (let p = 0; p < npages; p++) {
    const e = Atomics.load(m, 2 * p);
    if (e !== 0) visit(p, e & MIR_PFN_MASK, (e & MIR_WRITE) !== 0);
  }
}

/** The entry of `page`, or null. For tests. */
export function mirrorEntryAt(
  m: Int32Array,
  page: number,
): { pfn: number; writable: boolean; gen: number } | null {
  const e = Atomics.load(m, 2 * page);
  if (e === 0) return null;
  return {
    pfn: e & MIR_PFN_MASK,
    writable: (e & MIR_WRITE) !== 0,
    gen: Atomics.load(m, 2 * page + 1),
  };
}

// ---- file ctl words (the lines both devices lay out alike) ----
export const F_LOCK = 0; // the update lock (dmirror->mutex), MUTEX_WORDS
export const F_STATS = LINE_WORDS; // op side, written by the thread driving the file
export const F_INV = 2 * LINE_WORDS; // invalidate side, written by invalidating threads
// (dmirror.ts: op-side words 9..11 count retries by cause; invalidate-side word 4 is the snapshot
// subscription's seq source; its subscription words are (slot, gen, seq source) triples)
export const F_META = 3 * LINE_WORDS;
export const M_ID = 0;
export const M_DEVICE = 1;
export const M_MM = 2;
export const M_CLOSED = 3;
export const F_WORDS = 4 * LINE_WORDS;

/** A fresh result of one device operation. */
export function newMirrorOpResult(): MirrorOpResult {
  return { ret: 0, cpages: 0, faults: 0, retries: 0 };
}

/**
 * Where each FileStats field lives in a file ctl: a word index, or -1 for a field the device
 * does not count (reported as 0). The optional fields are reported only when the layout has them.
 */
export type FileStatsLayout = { readonly [K in keyof FileStats]: number };

/** FileStats from a file ctl, by `layout`. */
export function readFileStats(ctl: Int32Array, layout: FileStatsLayout): FileStats {
  const w = (i: number): number => (i < 0 ? 0 : Atomics.load(ctl, i));
  const s: FileStats = {
    hmmCalls: w(layout.hmmCalls),
    hmmBusy: w(layout.hmmBusy),
    readRetryCollisions: w(layout.readRetryCollisions),
    readBeginSleeps: w(layout.readBeginSleeps),
    faults: w(layout.faults),
    pagesFaulted: w(layout.pagesFaulted),
    snapshots: w(layout.snapshots),
    accesses: w(layout.accesses),
    timeouts: w(layout.timeouts),
    invalidations: w(layout.invalidations),
    invalidationsSkipped: w(layout.invalidationsSkipped),
    invalidationsFailed: w(layout.invalidationsFailed),
    entriesErased: w(layout.entriesErased),
  };
  if (layout.waitUs !== undefined) s.waitUs = w(layout.waitUs);
  if (layout.zeroPageEfaults !== undefined) s.zeroPageEfaults = w(layout.zeroPageEfaults);
  if (layout.retriesByProcess !== undefined) s.retriesByProcess = w(layout.retriesByProcess);
  if (layout.retriesByOtherDevice !== undefined) s.retriesByOtherDevice = w(layout.retriesByOtherDevice);
  if (layout.retriesByOwnFault !== undefined) s.retriesByOwnFault = w(layout.retriesByOwnFault);
  return s;
}

/** Common ioctl argument checks: aligned, npages > 0, no overflow. 0 or -EINVAL. */
export function mirrorCheckArgs(addr: number, npages: number): number {
  if (!Number.isSafeInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) return -EINVAL;
  if (!Number.isSafeInteger(npages) || npages <= 0) return -EINVAL;
  if (addr + npages * PAGE_SIZE > 2 ** 53) return -EINVAL;
  return 0;
}

/** The driver-specific steps of the read/write loop (one object per file, made once). */
export interface MirrorRwSteps {
  /** false when the file cannot serve an operation (mm without users, ...): -EINVAL */
  usable(): boolean;
  /** this thread's bounce buffer for reads, at least npages * W words */
  bounceFor(npages: number): Int32Array;
  /** one access pass from page `first` (adds the pages done to the running op's cpages) */
  accessPass(first: number, end: number, buf: Int32Array, bufPage0: number, what: number): number;
  /** the protocol-specific range-fault routine over [start, end) (byte addresses) */
  fault(start: number, end: number, write: boolean): number;
  /** a fault run succeeded (the `faults` statistic) */
  faulted(): void;
}

/**
 * dmirror_read / dmirror_write: access through the mirror, faulting missing pages, into `res`
 * (the running op's result). A read copies into a bounce buffer first: data reaches the caller
 * only on success.
 */
export function mirrorReadWrite(
  steps: MirrorRwSteps,
  mm: MmStruct,
  W: number,
  res: MirrorOpResult,
  addr: number,
  npages: number,
  buf: Int32Array,
  write: boolean,
): MirrorOpResult {
  res.ret = mirrorCheckArgs(addr, npages);
  if (res.ret !== 0) return res;
  if (buf.length < npages * W) throw new RangeError('buffer shorter than npages * W words');
  if (!steps.usable()) {
    res.ret = -EINVAL;
    return res;
  }
  // Pages of the request beyond the simulated space: no VMA, -EFAULT.
  if (addr / PAGE_SIZE + npages > mm.npages) {
    res.ret = -EFAULT;
    return res;
  }
  const page0 = addr / PAGE_SIZE;
  const end = page0 + npages;
  const what = write ? ACCESS_WRITE : ACCESS_READ;
  const user = buf;
  if (!write) buf = steps.bounceFor(npages);
  for (;;) {
    const ret = steps.accessPass(page0 + res.cpages, end, buf, page0, what);
    if (ret !== -ENOENT) {
      res.ret = ret;
      break;
    }
    const start = (page0 + res.cpages) * PAGE_SIZE;
    const fr = steps.fault(start, end * PAGE_SIZE, write);
    if (fr !== 0) {
      res.ret = fr;
      break;
    }
    res.faults++;
    steps.faulted();
  }
  if (!write && res.ret === 0) user.set(buf.subarray(0, npages * W));
  return res;
}

// ---------------------------------------------------------------------------------------------
// Device accesses through a mirror (dmirror_do_read / dmirror_do_write)

/** Pages the last dmirrorAccessPages call on this thread completed. */
export const dmirrorAccessDone = { pages: 0 };

/**
 * dmirror_do_read / dmirror_do_write over a mirror in dmirror's layout, from page `first`: copy
 * pages until `end` or the first page with no usable entry (-ENOENT; for a write a read-only
 * entry counts as missing), checking each entry's recorded generation before and after the copy
 * (oracle #1). `dmirrorAccessDone.pages` gets the pages done. The caller holds the mirror's update
 * lock, or (`section`) is inside an access section the invalidate op drains.
 */
export function dmirrorAccessPages(
  m: Int32Array,
  phys: PhysMem,
  actx: AccessContext,
  section: boolean,
  first: number,
  end: number,
  buf: Int32Array,
  bufPage0: number,
  what: number,
): number {
  const W = phys.W;
  const data = phys.frames.data;
  const gen = phys.frames.gen;
  const write = what === ACCESS_WRITE;
  const need = write ? MIR_PRESENT | MIR_WRITE : MIR_PRESENT;
  const check = oracleSwitch.enabled; // read once per operation
  let done = 0;
  let ret = 0;
  for (let p = first; p < end; p++) {
    // Under the lock: plain reads, ordered after every writer by the lock acquisition. In the
    // section model the entry is read with Atomics (its writers do not exclude us), entry last
    // written, so the generation read after it belongs to this entry or a newer one.
    const e = section ? Atomics.load(m, 2 * p) : m[2 * p]!;
    if ((e & need) !== need) {
      ret = -ENOENT;
      break;
    }
    const g = section ? Atomics.load(m, 2 * p + 1) : m[2 * p + 1]!;
    const pfn = e & MIR_PFN_MASK;
    const g0 = check ? Atomics.load(gen, pfn) : g;
    if (g0 !== g) reportStaleAccess(actx, what, p, pfn, g, g0);
    driverPoint(POINT_DEVICE_ACCESS);
    const fb = pfn * W;
    const bb = (p - bufPage0) * W;
    if (write) {
      for (let i = 0; i < W; i++) Atomics.store(data, fb + i, buf[bb + i]!);
      noteDeviceWrite(phys, pfn);
    } else {
      // Plain reads of frame content: tear-free Int32 words; the frame cannot be freed while
      // its entry is mirrored and we hold the lock (or the section the op drains), and the
      // generation check below catches a protocol bug that freed it during the copy.
      for (let i = 0; i < W; i++) buf[bb + i] = data[fb + i]!;
    }
    if (check && g0 === g) {
      const g1 = Atomics.load(gen, pfn);
      if (g1 !== g) reportStaleAccess(actx, what, p, pfn, g, g1);
    }
    done++;
  }
  dmirrorAccessDone.pages = done;
  return ret;
}
