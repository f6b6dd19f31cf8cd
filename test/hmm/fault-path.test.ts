/**
 * hmmRangeFault through the real handle_mm_fault (src/mm/fault.ts): faults that map the zero page,
 * allocate frames and THPs, break COW (a self-inflicted -EBUSY), fail on poison, and migrate
 * device-private pages back inside a fault run.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hmmStats } from '../../src/hmm/hmm.js';
import { HMM_PFN_VALID, HMM_PFN_WRITE } from '../../src/hmm/pfn.js';
import {
  FIRST_FREE_PFN,
  HUGE_ZERO_PFN,
  mkPte,
  PTE_PROTNONE,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_HWPOISON,
  PTE_WRITE,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_READ,
  VM_WRITE,
} from '../../src/mm/layout.js';
import { registerDevPagemapOps, unregisterDevPagemapOps } from '../../src/mm/memremap.js';
import type { MmStruct } from '../../src/mm/mm.js';
import { EBUSY, EFAULT, EPERM } from '../../src/mm/mmu-notifier.js';
import type { MmuIntervalNotifier } from '../../src/notifier/interval-notifier.js';
import { RF, RW, run, subscribe } from './harness.js';
import { addVma, makeMm, P, present, rep, seqWords, setDevicePrivate, setPte } from './util.js';

const V = HMM_PFN_VALID;
const W = HMM_PFN_WRITE;
const O9 = 9n << 56n;
const RWX = VM_READ | VM_WRITE;

let mm: MmStruct;
let sub: MmuIntervalNotifier;

beforeEach(() => {
  ({ mm } = makeMm(8 << 20, 16384));
  sub = subscribe(mm);
});

describe('anonymous memory', () => {
  beforeEach(() => addVma(mm, 0, 512, RWX));

  it('a read fault maps the zero page: VALID, PFN 0, no WRITE', () => {
    const r = run(mm, sub, 10, 3, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(r.w).toEqual(rep(V, 3));
    expect(hmmStats).toEqual({ walks: 2, busyFromCheck: 0, faults: 3, migrationWaits: 0 });
  });

  it('a write fault allocates writable frames', () => {
    const r = run(mm, sub, 10, 3, { dflt: RF | RW });
    expect(r.ret).toBe(0);
    const pfns = r.w.map((w) => Number(w & 0xffffffn));
    expect(new Set(pfns).size).toBe(3);
    for (let i = 0; i < 3; i++) {
      expect(pfns[i]!).toBeGreaterThanOrEqual(FIRST_FREE_PFN);
      expect(r.w[i]).toBe(BigInt(pfns[i]!) | V | W);
    }
  });

  it('write after read breaks COW of the zero page: the fault invalidates, the call returns -EBUSY', () => {
    expect(run(mm, sub, 10, 1, { dflt: RF }).w).toEqual([V]);
    const r = run(mm, sub, 10, 1, { dflt: RF | RW });
    expect(r.ret).toBe(-EBUSY);
    expect(hmmStats).toEqual({ walks: 1, busyFromCheck: 1, faults: 1, migrationWaits: 0 });
    // the caller starts again from read_begin and now finds the page writable
    const r2 = run(mm, sub, 10, 1, { dflt: RF | RW });
    expect(r2.ret).toBe(0);
    expect(hmmStats.faults).toBe(0);
    expect(r2.w[0]! & (V | W)).toBe(V | W);
    expect(Number(r2.w[0]! & 0xffffffn)).toBeGreaterThanOrEqual(FIRST_FREE_PFN);
  });

  it('a protnone PTE is restored by the fault', () => {
    setPte(mm, 20, present(FIRST_FREE_PFN + 100, PTE_PROTNONE | PTE_WRITE));
    expect(run(mm, sub, 20, 1).w).toEqual([BigInt(FIRST_FREE_PFN + 100)]);
    const r = run(mm, sub, 20, 1, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([BigInt(FIRST_FREE_PFN + 100) | V | W]);
  });

  it('a hwpoison entry inside a run started earlier makes the fault fail: -EFAULT', () => {
    setPte(mm, 21, mkPte(PTE_TYPE_HWPOISON, FIRST_FREE_PFN + 7));
    const r = run(mm, sub, 20, 3, { dflt: RF });
    expect(r.ret).toBe(-EFAULT);
    expect(hmmStats.faults).toBe(2); // page 20 (zero page), then 21 fails
  });

  it('-EPERM: write required in a read-only VMA', () => {
    const { mm: m2 } = makeMm();
    const s2 = subscribe(m2);
    addVma(m2, 0, 512, VM_READ);
    expect(run(m2, s2, 0, 2, { dflt: RF | RW }).ret).toBe(-EPERM);
    expect(hmmStats.faults).toBe(0);
    expect(run(m2, s2, 0, 2, { dflt: RF }).w).toEqual([V, V]);
  });
});

describe('THP', () => {
  beforeEach(() => addVma(mm, 512, 1024, RWX | VM_HUGEPAGE));

  it('a read fault maps the huge zero page (order 9, no WRITE)', () => {
    const r = run(mm, sub, 600, 4, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(r.w).toEqual(seqWords(HUGE_ZERO_PFN + 88, 4, V | O9));
  });

  it('a write fault allocates a THP: (head + offset) | VALID | WRITE | order 9', () => {
    const r = run(mm, sub, 1020, 4, { dflt: RF | RW });
    expect(r.ret).toBe(0);
    const head = Number(r.w[0]! & 0xffffffn) - 508;
    expect(head % 512).toBe(0);
    expect(r.w).toEqual(seqWords(head + 508, 4, V | W | O9));
  });

  it('a write to the huge zero page splits it (2 MiB CLEAR): -EBUSY, then a 4 KiB page', () => {
    run(mm, sub, 600, 1, { dflt: RF });
    const r = run(mm, sub, 600, 1, { dflt: RF | RW });
    expect(r.ret).toBe(-EBUSY);
    expect(hmmStats.busyFromCheck).toBe(1);
    // the split left 4 KiB zero-page PTEs and the fault COWed page 600
    expect(run(mm, sub, 601, 1).w).toEqual([V]);
    const r2 = run(mm, sub, 600, 1, { dflt: RF | RW });
    expect(r2.ret).toBe(0);
    expect(r2.w[0]! & (V | W | O9)).toBe(V | W); // order 0 now
  });
});

describe('hugetlb', () => {
  it('a fault populates the huge page; every page reports the order', () => {
    addVma(mm, 512, 1024, RWX | VM_HUGETLB, 9);
    expect(run(mm, sub, 700, 2).w).toEqual(seqWords(188, 2, O9));
    const r = run(mm, sub, 700, 2, { dflt: RF | RW });
    expect(r.ret).toBe(0);
    // the step is the huge page clipped to the range: one call per 4 KiB address of it
    expect(hmmStats.faults).toBe(2);
    const head = Number(r.w[0]! & 0xffffffn) - 188;
    expect(head % 512).toBe(0);
    expect(r.w).toEqual(seqWords(head + 188, 2, V | W | O9));
  });
});

describe('device-private pages inside a fault run', () => {
  const migrated: number[] = [];
  beforeEach(() => {
    addVma(mm, 0, 512, RWX);
    migrated.length = 0;
    for (const owner of [5, 6]) {
      registerDevPagemapOps(owner, {
        migrateToRam(m, address, _pfn) {
          migrated.push(address / P);
          const pfn = m.phys.allocPage();
          Atomics.store(m.pte, address / P, present(pfn, PTE_WRITE));
          return 0;
        },
      });
    }
  });
  afterEach(() => {
    unregisterDevPagemapOps(5);
    unregisterDevPagemapOps(6);
  });

  it('pages of any owner, the caller own included, are migrated back when a run covers them', () => {
    setDevicePrivate(mm.phys, 9000, 5);
    setDevicePrivate(mm.phys, 9001, 6);
    // page 30 is none: its read fault starts the run, which covers 31 and 32
    setPte(mm, 31, mkPte(PTE_TYPE_DEVICE_PRIVATE, 9000, PTE_WRITE));
    setPte(mm, 32, mkPte(PTE_TYPE_DEVICE_PRIVATE, 9001, PTE_WRITE));
    const r = run(mm, sub, 30, 3, { dflt: RF, owner: 5 });
    expect(migrated).toEqual([31, 32]);
    expect(r.ret).toBe(0);
    expect(r.w[0]).toBe(V); // the zero page
    for (const w of r.w.slice(1)) expect(w & (V | W)).toBe(V | W);
  });

  it('the caller own page reached by the walk is reported, never migrated', () => {
    setDevicePrivate(mm.phys, 9000, 5);
    setPte(mm, 31, mkPte(PTE_TYPE_DEVICE_PRIVATE, 9000));
    const r = run(mm, sub, 31, 1, { dflt: RF | RW, owner: 5 });
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([9000n | V]);
    expect(migrated).toEqual([]);
  });
});
