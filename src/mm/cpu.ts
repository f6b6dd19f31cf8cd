/**
 * CPU accesses to a process's memory (a user thread's loads and stores). Each access takes the
 * mmap lock for read, looks the address up under the page-table lock and, if the entry does not
 * allow the access, faults (handleMmFault) and looks again. The data access itself happens under
 * the PTL: that is the model of the TLB, since an invalidation's PTE change (under the PTL) and the
 * TLB flush that follows it can then never overlap an access through the old entry.
 *
 * Every write adds 1 to the frame's 16-bit write counter (`PhysMem.countWrite`, which accounts
 * its wraps; spec/checking.md #2) and to this thread's `cpuStats.writeIncrements`, and cancels
 * MADV_FREE's lazy-free state.
 */

import { FAULT_FLAG_WRITE, handleMmFault, VM_FAULT_ERROR, vmFaultToErrno } from './fault.js';
import {
  HUGE_ZERO_PFN,
  PAGE_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_TABLE,
  PTE_PAYLOAD_MASK,
  PTE_PROTNONE,
  PTE_TYPE_MASK,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
} from './layout.js';
import type { MmStruct } from './mm.js';
import { EFAULT, EINVAL } from './mmu-notifier.js';
import { ptlLock, ptlUnlock } from './pgtable.js';

/** This thread's CPU access counters; `writeIncrements` enters the lost-update equation. */
export const cpuStats = { reads: 0, writes: 0, writeIncrements: 0, faults: 0 };

/** Most fault-and-look-again rounds for one access. */
const MAX_ROUNDS = 64;

/**
 * The frame `page` maps with the access allowed, or -1 (fault needed). Caller holds the PTL, so
 * the entry cannot change before the access completes. A raw (special) PFN outside the frame pool
 * gives -2 (reads 0, writes are dropped).
 */
function lookupLocked(mm: MmStruct, page: number, write: boolean): number {
  const pmd = Atomics.load(mm.pmd, page >>> 9);
  const pt = pmd & PTE_TYPE_MASK;
  let w: number;
  let pfn: number;
  if (pt === PMD_TYPE_HUGE) {
    w = pmd;
    pfn = (pmd & PTE_PAYLOAD_MASK) + (page & 511);
  } else if (pt === PMD_TYPE_TABLE) {
    w = Atomics.load(mm.pte, page);
    if ((w & PTE_TYPE_MASK) !== PTE_TYPE_PRESENT) return -1;
    pfn = w & PTE_PAYLOAD_MASK;
  } else {
    return -1;
  }
  if ((w & PTE_PROTNONE) !== 0) return -1;
  if (write && (w & PTE_WRITE) === 0) return -1;
  if (write && pfn >= HUGE_ZERO_PFN && pfn < HUGE_ZERO_PFN + 512) return -1;
  return pfn < mm.phys.nframes ? pfn : -2;
}

/**
 * Resolve `page` for the access, faulting as needed; returns with the PTL HELD and the PFN (or
 * -2 for an out-of-pool raw PFN), or a negative errno (< -2) with the PTL not held.
 * Caller holds the mmap lock for read.
 */
function resolve(mm: MmStruct, page: number, write: boolean): number {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    ptlLock(mm);
    const pfn = lookupLocked(mm, page, write);
    if (pfn !== -1) return pfn;
    ptlUnlock(mm);
    cpuStats.faults++;
    const r = handleMmFault(mm, page * PAGE_SIZE, write ? FAULT_FLAG_WRITE : 0);
    if ((r & VM_FAULT_ERROR) !== 0) return vmFaultToErrno(r) || -EFAULT;
  }
  return -EFAULT;
}

/**
 * Read data word `word` of the page at byte `address`. Returns the word, or a negative errno if
 * the access faults fatally (-EFAULT, -ENOMEM). Data is any int32: a caller that stores negative
 * values must tell them from errors by other means (e.g. cpuReadPages).
 */
export function cpuRead(mm: MmStruct, address: number, word = 0): number {
  const page = Math.floor(address / PAGE_SIZE);
  if (word < 0 || word >= mm.phys.W) return -EINVAL;
  mm.mmapReadLock();
  const pfn = resolve(mm, page, false);
  let v: number;
  if (pfn >= 0) {
    v = Atomics.load(mm.phys.frames.data, pfn * mm.phys.W + word);
    ptlUnlock(mm);
    cpuStats.reads++;
  } else if (pfn === -2) {
    v = 0;
    ptlUnlock(mm);
  } else {
    v = pfn;
  }
  mm.mmapReadUnlock();
  return v;
}

/** Store `value` in data word `word` of the page at `address`. Returns 0 or a negative errno. */
export function cpuWrite(mm: MmStruct, address: number, value: number, word = 0): number {
  const page = Math.floor(address / PAGE_SIZE);
  if (word < 0 || word >= mm.phys.W) return -EINVAL;
  mm.mmapReadLock();
  const pfn = resolve(mm, page, true);
  let r = 0;
  if (pfn >= 0) {
    const phys = mm.phys;
    Atomics.store(phys.frames.data, pfn * phys.W + word, value);
    phys.countWrite(pfn);
    phys.clearLazyFree(pfn);
    ptlUnlock(mm);
    cpuStats.writes++;
    cpuStats.writeIncrements++;
  } else if (pfn === -2) {
    ptlUnlock(mm);
  } else {
    r = pfn;
  }
  mm.mmapReadUnlock();
  return r;
}

/**
 * Write `npages` pages from `address`: word w of page i gets fn(i, w); one write (one write-counter
 * increment) per page. Returns 0 or the first negative errno (pages before it are written).
 */
export function cpuWritePages(
  mm: MmStruct,
  address: number,
  npages: number,
  fn: (pageIndex: number, wordIndex: number) => number,
): number {
  const phys = mm.phys;
  const W = phys.W;
  const first = Math.floor(address / PAGE_SIZE);
  mm.mmapReadLock();
  let r = 0;
  for (let i = 0; i < npages; i++) {
    const pfn = resolve(mm, first + i, true);
    if (pfn < -2) {
      r = pfn;
      break;
    }
    if (pfn >= 0) {
      const base = pfn * W;
      for (let k = 0; k < W; k++) Atomics.store(phys.frames.data, base + k, fn(i, k));
      phys.countWrite(pfn);
      phys.clearLazyFree(pfn);
      cpuStats.writes++;
      cpuStats.writeIncrements++;
    }
    ptlUnlock(mm);
  }
  mm.mmapReadUnlock();
  return r;
}

/** Read `npages` pages from `address` (W words each), or a negative errno. */
export function cpuReadPages(mm: MmStruct, address: number, npages: number): Int32Array | number {
  const phys = mm.phys;
  const W = phys.W;
  const out = new Int32Array(npages * W);
  const first = Math.floor(address / PAGE_SIZE);
  mm.mmapReadLock();
  let r = 0;
  for (let i = 0; i < npages; i++) {
    const pfn = resolve(mm, first + i, false);
    if (pfn < -2) {
      r = pfn;
      break;
    }
    if (pfn >= 0) {
      const base = pfn * W;
      for (let k = 0; k < W; k++) out[i * W + k] = Atomics.load(phys.frames.data, base + k);
      cpuStats.reads++;
    }
    ptlUnlock(mm);
  }
  mm.mmapReadUnlock();
  return r < 0 ? r : out;
}
