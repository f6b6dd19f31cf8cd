/** Unit tests of the v5.4 API: hmm_range_fault's rules, registration, waiting, helpers, DMA. */
import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL,
  HMM_FAULT_ALLOW_RETRY,
  HMM_FAULT_SNAPSHOT,
  HMM_PFN_ERROR,
  HMM_PFN_NONE,
  HMM_PFN_SPECIAL,
  HmmDmaDevice,
  HmmMirror,
  type HmmRange54,
  hmmDeviceEntryFromPage,
  hmmDeviceEntryFromPfn,
  hmmDeviceEntryToPage,
  hmmDeviceEntryToPfn,
  hmmDeviceEntryToPfnAt,
  hmmMirrorRegister,
  hmmOf,
  hmmRange54Init,
  hmmRange54SetWord,
  hmmRange54Value,
  hmmRange54Word,
  hmmRangeDmaMap,
  hmmRangeDmaUnmap,
  hmmRangeFault,
  hmmRangeRegister,
  hmmRangeUnregister,
  hmmRangeValid,
  hmmRangeWaitUntilValid,
} from '../../src/legacy/index.js';
import { cpuRead, cpuWrite } from '../../src/mm/cpu.js';
import { PAGE_SIZE, PMD_SIZE } from '../../src/mm/layout.js';
import { createMm, type MmStruct } from '../../src/mm/mm.js';
import { MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from '../../src/mm/mmap.js';
import { EBUSY, EFAULT, EINVAL, EPERM, MMU_NOTIFY_CLEAR } from '../../src/mm/mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from '../../src/mm/notify.js';
import { createPhysMem } from '../../src/mm/physmem.js';
import { cpuFill, mapAnon } from '../conformance/helpers.js';
import { pfnAt } from './helpers.js';

const VALID = 1n;
const WRITE = 2n;
const DEVP = 4n;
const ERROR = 0xffffffffffffffffn;
const NONE = 0x8000000000000000n;
const SPECIAL = 0xfffffffffffffffen;
const SENTINEL = 0x1234n;

function env(): { mm: MmStruct; mirror: HmmMirror } {
  const phys = createPhysMem({ W: 16, nframes: 4096 });
  const mm = createMm(phys, { size: 1 << 26 });
  const mirror = new HmmMirror({ syncCpuDevicePagetables: () => 0, release: () => {} });
  mm.mmapWriteLock();
  expect(hmmMirrorRegister(mirror, mm)).toBe(0);
  mm.mmapWriteUnlock();
  return { mm, mirror };
}

function range(start: number, npages: number, defaultFlags = 0n): HmmRange54 {
  const r = hmmRange54Init({
    start,
    end: start + npages * PAGE_SIZE,
    flags: [VALID, WRITE, DEVP],
    values: [ERROR, NONE, SPECIAL],
    pfnShift: 12,
    defaultFlags,
  });
  for (let i = 0; i < npages; i++) hmmRange54SetWord(r, i, SENTINEL);
  return r;
}

function fault(mm: MmStruct, r: HmmRange54, flags: number): number {
  mm.mmapReadLock();
  try {
    return hmmRangeFault(r, flags);
  } finally {
    mm.mmapReadUnlock();
  }
}

function words(r: HmmRange54): bigint[] {
  const n = (r.end - r.start) / PAGE_SIZE;
  return Array.from({ length: n }, (_, i) => hmmRange54Word(r, i));
}

const entry = (pfn: number, flags: bigint): bigint => (BigInt(pfn) << 12n) | flags;

describe('v5.4 hmm_range_fault rules', () => {
  it('the zero page is -EFAULT, in snapshot mode too; words from the failing page on reset to values[NONE]', () => {
    const { mm, mirror } = env();
    const a = mapAnon(mm, 4);
    cpuFill(mm, a, 2); // pages 0, 1 written
    expect(cpuRead(mm, a + 2 * PAGE_SIZE)).toBe(0); // page 2: the shared zero page
    expect(cpuWrite(mm, a + 3 * PAGE_SIZE, 7)).toBe(0);
    const p0 = pfnAt(mm, a);
    const p1 = pfnAt(mm, a + PAGE_SIZE);
    for (const [flags, dflt] of [
      [HMM_FAULT_SNAPSHOT, 0n],
      [0, VALID],
    ] as const) {
      const r = range(a, 4, dflt);
      expect(hmmRangeRegister(r, mirror)).toBe(0);
      expect(fault(mm, r, flags)).toBe(-EFAULT);
      expect(words(r)).toEqual([entry(p0, VALID | WRITE), entry(p1, VALID | WRITE), NONE, NONE]);
      hmmRangeUnregister(r);
    }
  });

  it('returns the page count up to `last`: smaller than the range in snapshot mode, even 0', () => {
    const { mm, mirror } = env();
    const a = mapAnon(mm, 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE, PMD_SIZE);
    expect(cpuWrite(mm, a, 1)).toBe(0); // only the first PMD step has a page table
    const r = range(a, 1024);
    expect(hmmRangeRegister(r, mirror)).toBe(0);
    expect(fault(mm, r, HMM_FAULT_SNAPSHOT)).toBe(512);
    expect(hmmRange54Word(r, 0)).toBe(entry(pfnAt(mm, a), VALID | WRITE));
    expect(hmmRange54Word(r, 1)).toBe(NONE);
    expect(hmmRange54Word(r, 600)).toBe(NONE);
    hmmRangeUnregister(r);
    const b = mapAnon(mm, 512, PROT_READ | PROT_WRITE, MAP_PRIVATE, PMD_SIZE);
    const rb = range(b, 512);
    expect(hmmRangeRegister(rb, mirror)).toBe(0);
    expect(fault(mm, rb, HMM_FAULT_SNAPSHOT)).toBe(0);
    hmmRangeUnregister(rb);
    // faulting for write: the whole range
    const rw = range(a, 1024, VALID | WRITE);
    expect(hmmRangeRegister(rw, mirror)).toBe(0);
    expect(fault(mm, rw, 0)).toBe(1024);
    expect(hmmDeviceEntryToPfnAt(rw, 1023)).toBe(pfnAt(mm, a + 1023 * PAGE_SIZE));
    hmmRangeUnregister(rw);
  });

  it('no VM_READ: -EPERM with every word values[NONE]', () => {
    const { mm, mirror } = env();
    const a = mapAnon(mm, 4, PROT_NONE);
    const r = range(a, 4, VALID);
    expect(hmmRangeRegister(r, mirror)).toBe(0);
    expect(fault(mm, r, 0)).toBe(-EPERM);
    expect(words(r)).toEqual([NONE, NONE, NONE, NONE]);
  });

  it('write fault in a read-only VMA: -EPERM; no VMA: -EFAULT with the words left as they are', () => {
    const { mm, mirror } = env();
    const a = mapAnon(mm, 2, PROT_READ);
    const r = range(a, 2, VALID | WRITE);
    expect(hmmRangeRegister(r, mirror)).toBe(0);
    expect(fault(mm, r, 0)).toBe(-EPERM);
    expect(words(r)).toEqual([NONE, NONE]);
    const end = mm.size - 4 * PAGE_SIZE; // after the last VMA
    const rh = range(end, 2, VALID);
    expect(hmmRangeRegister(rh, mirror)).toBe(0);
    expect(fault(mm, rh, 0)).toBe(-EFAULT);
    expect(words(rh)).toEqual([SENTINEL, SENTINEL]);
  });

  it('HMM_FAULT_ALLOW_RETRY is rejected with -EINVAL; an invalid range is -EBUSY', () => {
    const { mm, mirror } = env();
    const a = mapAnon(mm, 2);
    const r = range(a, 2, VALID);
    expect(hmmRangeRegister(r, mirror)).toBe(0);
    expect(fault(mm, r, HMM_FAULT_ALLOW_RETRY)).toBe(-EINVAL);
    const x = rangeInit(mm, MMU_NOTIFY_CLEAR, a, a + PAGE_SIZE);
    expect(invalidateRangeStart(mm, x)).toBe(0);
    expect(fault(mm, r, 0)).toBe(-EBUSY);
    expect(words(r)).toEqual([SENTINEL, SENTINEL]);
    invalidateRangeEnd(mm, x);
    // valid again: the read fault maps the shared zero page, which v5.4 then refuses
    expect(fault(mm, r, 0)).toBe(-EFAULT);
    expect(words(r)).toEqual([NONE, NONE]);
    r.defaultFlags[0] = Number(VALID | WRITE); // a write fault maps real pages
    expect(fault(mm, r, 0)).toBe(2);
  });
});

describe('v5.4 ranges and waiting', () => {
  it('register: -EINVAL unaligned or empty; valid = (notifiers == 0); woken only when the mm drains', () => {
    const { mm, mirror } = env();
    const a = mapAnon(mm, 8);
    const bad = range(a, 1);
    bad.end = a + 100;
    expect(hmmRangeRegister(bad, mirror)).toBe(-EINVAL);
    const empty = range(a, 1);
    empty.end = a;
    expect(hmmRangeRegister(empty, mirror)).toBe(-EINVAL);

    const x = rangeInit(mm, MMU_NOTIFY_CLEAR, a + 4 * PAGE_SIZE, a + 5 * PAGE_SIZE);
    const y = rangeInit(mm, MMU_NOTIFY_CLEAR, a + 6 * PAGE_SIZE, a + 7 * PAGE_SIZE);
    expect(invalidateRangeStart(mm, x)).toBe(0);
    // registered during an unrelated invalidation: starts invalid
    const r = range(a, 2);
    expect(hmmRangeRegister(r, mirror)).toBe(0);
    expect(hmmRangeValid(r)).toBe(false);
    expect(invalidateRangeStart(mm, y)).toBe(0);
    invalidateRangeEnd(mm, x);
    expect(hmmRangeValid(r)).toBe(false); // y is still running, elsewhere
    expect(hmmRangeWaitUntilValid(r, 5)).toBe(false);
    invalidateRangeEnd(mm, y);
    expect(hmmRangeValid(r)).toBe(true);
    expect(hmmRangeWaitUntilValid(r, 5)).toBe(true);
    // an invalidation ending exactly at the range start counts as overlapping (v5.4's test)
    const r2 = range(a + 2 * PAGE_SIZE, 1);
    expect(hmmRangeRegister(r2, mirror)).toBe(0);
    const z = rangeInit(mm, MMU_NOTIFY_CLEAR, a, a + 2 * PAGE_SIZE);
    expect(invalidateRangeStart(mm, z)).toBe(0);
    expect([hmmRangeValid(r), hmmRangeValid(r2)]).toEqual([false, false]);
    invalidateRangeEnd(mm, z);
    expect(hmmOf(mm)!.state()).toMatchObject({ notifiers: 0, ranges: 2, validRanges: 2 });
    hmmRangeUnregister(r);
    expect(hmmRangeValid(r)).toBe(false);
    hmmRangeUnregister(r2);
  });
});

describe('v5.4 helpers and DMA', () => {
  it('hmm_device_entry_to_/from_pfn/page', () => {
    const r = range(0, 1);
    expect(hmmDeviceEntryFromPfn(r, 5)).toBe((5n << 12n) | VALID);
    expect(hmmDeviceEntryFromPage(r, 5)).toBe((5n << 12n) | VALID);
    expect(hmmDeviceEntryToPfn(r, (5n << 12n) | VALID | WRITE)).toBe(5);
    expect(hmmDeviceEntryToPage(r, (5n << 12n) | VALID)).toBe(5);
    expect(hmmDeviceEntryToPfn(r, 5n << 12n)).toBe(-1); // no VALID
    for (const k of [HMM_PFN_ERROR, HMM_PFN_NONE, HMM_PFN_SPECIAL]) {
      expect(hmmDeviceEntryToPfn(r, hmmRange54Value(r, k))).toBe(-1);
      expect(hmmDeviceEntryToPage(r, hmmRange54Value(r, k))).toBe(null);
    }
    // a PFN that crosses into the high word
    const big = 0x123456;
    hmmRange54SetWord(r, 0, hmmDeviceEntryFromPfn(r, big) | WRITE);
    expect(hmmRange54Word(r, 0)).toBe((BigInt(big) << 12n) | 3n);
    expect(hmmDeviceEntryToPfnAt(r, 0)).toBe(big);
    hmmRange54SetWord(r, 0, SPECIAL);
    expect(hmmDeviceEntryToPfnAt(r, 0)).toBe(-1);
  });

  it('hmm_range_dma_map / _unmap against a device address table', () => {
    const { mm, mirror } = env();
    const a = mapAnon(mm, 4);
    cpuFill(mm, a, 4);
    const r = range(a, 4, VALID);
    expect(hmmRangeRegister(r, mirror)).toBe(0);
    const dev = new HmmDmaDevice(16);
    const daddrs = new Float64Array(4);
    mm.mmapReadLock();
    expect(hmmRangeDmaMap(r, dev, daddrs, 0)).toBe(4);
    mm.mmapReadUnlock();
    expect(dev.mapped).toBe(4);
    for (let i = 0; i < 4; i++) {
      expect(daddrs[i]).toBe((i + 1) * PAGE_SIZE);
      expect(dev.pfnOf(daddrs[i]!)).toBe(pfnAt(mm, a + i * PAGE_SIZE));
      expect(dev.table[2 * i + 1]).toBe(DMA_BIDIRECTIONAL);
    }
    expect(hmmRangeDmaUnmap(r, dev, daddrs, true)).toBe(4);
    expect([dev.mapped, dev.pagesDirtied]).toEqual([0, 4]);
    expect(words(r)).toEqual([NONE, NONE, NONE, NONE]);
    expect(Array.from(daddrs)).toEqual([0, 0, 0, 0]);
    // a full table: -EFAULT, and what was mapped is unmapped again
    const small = new HmmDmaDevice(2);
    mm.mmapReadLock();
    expect(hmmRangeDmaMap(r, small, daddrs, 0)).toBe(-EFAULT);
    mm.mmapReadUnlock();
    expect(small.mapped).toBe(0);
    hmmRangeUnregister(r);
  });
});
