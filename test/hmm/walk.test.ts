/**
 * hmmRangeFault unit tests: every branch of the walk (spec/hmm-range-fault.md) and every row of
 * "Outputs at a glance", asserting exact kernel words and return codes. handle_mm_fault and the
 * migration wait are replaced by a recording stand-in (a minimal CPU fault model), so each test
 * sees exactly which pages were faulted and with which flags; the interval notifier is the real one.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { MmStruct } from '../../src/mm/mm.js';

const hooks = vi.hoisted(() => ({
  /** [page, write] per handleMmFault call */
  calls: [] as Array<[number, boolean]>,
  /** page numbers passed to migrationEntryWait */
  waits: [] as number[],
  onFault: null as ((mm: MmStruct, addr: number, flags: number) => number) | null,
  onWait: null as ((mm: MmStruct, page: number) => void) | null,
}));

vi.mock('../../src/mm/fault.js', () => ({
  FAULT_FLAG_WRITE: 0x1,
  FAULT_FLAG_REMOTE: 0x80,
  VM_FAULT_ERROR: 0x0c73,
  handleMmFault(mm: MmStruct, addr: number, flags: number): number {
    hooks.calls.push([addr / 4096, (flags & 1) !== 0]);
    return hooks.onFault ? hooks.onFault(mm, addr, flags) : 0;
  },
  migrationEntryWait(mm: MmStruct, page: number): void {
    hooks.waits.push(page);
    hooks.onWait?.(mm, page);
  },
}));

import {
  type HmmRange,
  hmmConfig,
  hmmRangeFault,
  hmmRangeFaultAtomicsLoadReference,
  hmmStats,
  setHmmKernel,
} from '../../src/hmm/hmm.js';
import { HMM_PFN_ERROR, HMM_PFN_VALID, HMM_PFN_WRITE } from '../../src/hmm/pfn.js';
import {
  HUGE_ZERO_PFN,
  mkPte,
  PMD_TYPE_BAD,
  PMD_TYPE_HUGE,
  PMD_TYPE_MIGRATION,
  PMD_TYPE_NONE,
  PMD_TYPE_SWAP,
  PMD_TYPE_TABLE,
  PTE_DEVMAP,
  PTE_PROTNONE,
  PTE_SPECIAL,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_HWPOISON,
  PTE_TYPE_MASK,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
  PTE_WRITE,
  VM_HUGETLB,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
  VMA_FLAGS,
  VMA_STRIDE,
} from '../../src/mm/layout.js';
import { EBUSY, EFAULT, EINVAL, EPERM } from '../../src/mm/mmu-notifier.js';
import type { MmuIntervalNotifier } from '../../src/notifier/interval-notifier.js';
import { invalidate, RF, RW, run, subscribe } from './harness.js';
import {
  addVma,
  GiB,
  makeMm,
  P,
  present,
  rep,
  SP,
  seqWords,
  setDevicePrivate,
  setPmd,
  setPte,
} from './util.js';

const V = HMM_PFN_VALID;
const W = HMM_PFN_WRITE;
const E = HMM_PFN_ERROR;
const O9 = 9n << 56n;
const RWX = VM_READ | VM_WRITE;

let mm: MmStruct;
let sub: MmuIntervalNotifier;
let nextPfn = 3000;

/** A minimal CPU fault model for the stand-in handle_mm_fault. */
function simpleFault(m: MmStruct, addr: number, flags: number): number {
  const page = addr / P;
  const write = (flags & 1) !== 0;
  const idx = Math.floor(page / SP);
  const pmd = Atomics.load(m.pmd, idx);
  const vi = m.vmaAt(page);
  const hugetlb = vi >= 0 && (m.vmas[vi * VMA_STRIDE + VMA_FLAGS]! & VM_HUGETLB) !== 0;
  if ((pmd & PTE_TYPE_MASK) === PMD_TYPE_HUGE) {
    Atomics.store(m.pmd, idx, (pmd & ~PTE_PROTNONE) | (write ? PTE_WRITE : 0));
    return 0;
  }
  if (hugetlb) {
    Atomics.store(m.pmd, idx, mkPte(PMD_TYPE_HUGE, 6144, write ? PTE_WRITE : 0));
    return 0;
  }
  if (pmd === PMD_TYPE_NONE) Atomics.store(m.pmd, idx, PMD_TYPE_TABLE);
  const w = Atomics.load(m.pte, page);
  if ((w & PTE_TYPE_MASK) === PTE_TYPE_PRESENT) {
    Atomics.store(m.pte, page, (w & ~PTE_PROTNONE) | (write ? PTE_WRITE : 0));
  } else {
    Atomics.store(m.pte, page, present(nextPfn++, write ? PTE_WRITE : 0));
  }
  return 0;
}

beforeEach(() => {
  ({ mm } = makeMm());
  sub = subscribe(mm);
  hooks.calls = [];
  hooks.waits = [];
  hooks.onFault = simpleFault;
  hooks.onWait = null;
  nextPfn = 3000;
  setHmmKernel('5.10.109');
});

function faultedPages(): number[] {
  return hooks.calls.map((c) => c[0]);
}

// ---------------------------------------------------------------------------------------------
describe('present PTEs', () => {
  beforeEach(() => addVma(mm, 0, 2048, RWX));

  it('snapshot: read-only, writable and none PTEs', () => {
    setPte(mm, 10, present(100));
    setPte(mm, 11, present(101, PTE_WRITE));
    const r = run(mm, sub, 10, 3);
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([100n | V, 101n | V | W, 0n]);
    expect(hooks.calls).toEqual([]);
    expect(hmmStats).toEqual({ walks: 1, busyFromCheck: 0, faults: 0, migrationWaits: 0 });
  });

  it('a satisfied request faults nothing', () => {
    setPte(mm, 10, present(100, PTE_WRITE));
    setPte(mm, 11, present(101));
    const r = run(mm, sub, 10, 2, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([100n | V | W, 101n | V]);
    expect(hooks.calls).toEqual([]);
  });

  it('protnone PTE: the PFN with no flags when nothing is required; faulted when required', () => {
    setPte(mm, 10, present(100, PTE_PROTNONE | PTE_WRITE));
    expect(run(mm, sub, 10, 1).w).toEqual([100n]);
    const r = run(mm, sub, 10, 1, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(faultedPages()).toEqual([10]);
    expect(r.w).toEqual([100n | V | W]);
    expect(hmmStats.walks).toBe(2);
    expect(hmmStats.faults).toBe(1);
  });

  it('the zero page (PFN 0, special) is VALID without WRITE; a write request write-faults it', () => {
    setPte(mm, 10, present(0, PTE_SPECIAL));
    expect(run(mm, sub, 10, 1, { dflt: RF }).w).toEqual([V]);
    expect(hooks.calls).toEqual([]);
    const r = run(mm, sub, 10, 1, { dflt: RF | RW });
    expect(hooks.calls).toEqual([[10, true]]);
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([0n | V | W]);
  });

  it('raw PFN: ERROR without REQ_FAULT, -EFAULT with it even when the PTE satisfies it', () => {
    setPte(mm, 10, present(5000, PTE_SPECIAL | PTE_WRITE));
    setPte(mm, 11, present(101, PTE_WRITE));
    expect(run(mm, sub, 10, 2).w).toEqual([E, 101n | V | W]);
    // per-page: the raw page asks nothing, its neighbour asks REQ_FAULT
    expect(run(mm, sub, 10, 2, { mask: RF, input: [0n, RF] }).w).toEqual([E, 101n | V | W]);
    const r = run(mm, sub, 10, 2, { dflt: RF | RW, input: 0x77n });
    expect(r.ret).toBe(-EFAULT);
    expect(hooks.calls).toEqual([]);
    // the failing word and those after it keep their input
    expect(r.w).toEqual([0x77n, 0x77n]);
  });

  it('devmap PTE (special | devmap) is reported like a normal page', () => {
    setPte(mm, 10, present(5000, PTE_SPECIAL | PTE_DEVMAP | PTE_WRITE));
    const r = run(mm, sub, 10, 1, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([5000n | V | W]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('non-present PTEs', () => {
  beforeEach(() => addVma(mm, 0, 2048, RWX));

  it('swap entry: 0 in a snapshot, swapped in when required', () => {
    setPte(mm, 20, mkPte(PTE_TYPE_SWAP, 7));
    expect(run(mm, sub, 20, 1).w).toEqual([0n]);
    const r = run(mm, sub, 20, 1, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(hooks.calls).toEqual([[20, false]]);
    expect(r.w).toEqual([3000n | V]);
  });

  it('migration entry: 0 in a snapshot; waited for, then walked again, when required', () => {
    setPte(mm, 19, present(99));
    setPte(mm, 20, mkPte(PTE_TYPE_MIGRATION, 55, PTE_WRITE));
    hooks.onWait = (m, page) => {
      // the migration ends: the PTE points at the new frame; the earlier PTE changes too, which a
      // restart from `last` (page 20) must not see
      Atomics.store(m.pte, page, present(77, PTE_WRITE));
      Atomics.store(m.pte, 19, present(98));
    };
    expect(run(mm, sub, 19, 2).w).toEqual([99n | V, 0n]);
    expect(hooks.waits).toEqual([]);
    const r = run(mm, sub, 19, 2, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(hooks.waits).toEqual([20]);
    expect(hooks.calls).toEqual([]);
    expect(r.w).toEqual([99n | V, 77n | V | W]);
    expect(hmmStats).toEqual({ walks: 2, busyFromCheck: 0, faults: 0, migrationWaits: 1 });
  });

  it('hwpoison entry: 0 in a snapshot, -EFAULT when required', () => {
    setPte(mm, 20, mkPte(PTE_TYPE_HWPOISON, 55));
    expect(run(mm, sub, 20, 1).w).toEqual([0n]);
    setPte(mm, 19, present(99));
    const r = run(mm, sub, 19, 2, { dflt: RF, input: 5n });
    expect(r.ret).toBe(-EFAULT);
    expect(r.w).toEqual([99n | V, 5n]);
    expect(hooks.calls).toEqual([]);
  });

  it('device-private, own: reported whatever the request, never faulted', () => {
    setDevicePrivate(mm.phys, 4000, 3);
    setDevicePrivate(mm.phys, 4001, 3);
    setPte(mm, 20, mkPte(PTE_TYPE_DEVICE_PRIVATE, 4000, PTE_WRITE));
    setPte(mm, 21, mkPte(PTE_TYPE_DEVICE_PRIVATE, 4001));
    for (const o of [{}, { dflt: RF }, { dflt: RF | RW }]) {
      const r = run(mm, sub, 20, 2, { ...o, owner: 3 });
      expect(r.ret).toBe(0);
      // a read-only own page stays without WRITE even when REQ_WRITE was asked
      expect(r.w).toEqual([4000n | V | W, 4001n | V]);
    }
    expect(hooks.calls).toEqual([]);
  });

  it('device-private, other owner: 0 in a snapshot, -EFAULT when reached by the walk', () => {
    setDevicePrivate(mm.phys, 4000, 3);
    setPte(mm, 20, mkPte(PTE_TYPE_DEVICE_PRIVATE, 4000, PTE_WRITE));
    expect(run(mm, sub, 20, 1, { owner: 4 }).w).toEqual([0n]);
    expect(run(mm, sub, 20, 1).w).toEqual([0n]); // no owner at all
    const r = run(mm, sub, 20, 1, { dflt: RF, owner: 4 });
    expect(r.ret).toBe(-EFAULT);
    expect(hooks.calls).toEqual([]);
  });

  it('device-private pages of any owner inside a run started earlier in the step are faulted', () => {
    setDevicePrivate(mm.phys, 4000, 3);
    setDevicePrivate(mm.phys, 4001, 4);
    setPte(mm, 20, present(100)); // needs a write fault: starts the run
    setPte(mm, 21, mkPte(PTE_TYPE_DEVICE_PRIVATE, 4000, PTE_WRITE)); // own
    setPte(mm, 22, mkPte(PTE_TYPE_DEVICE_PRIVATE, 4001, PTE_WRITE)); // other
    const r = run(mm, sub, 20, 3, { dflt: RF, mask: RW, input: [RW, 0n, 0n], owner: 3 });
    expect(faultedPages()).toEqual([20, 21, 22]);
    expect(hooks.calls.every((c) => c[1])).toBe(true);
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([100n | V | W, 3000n | V | W, 3001n | V | W]);
  });

  it('other non-present kinds (undefined swap types) are -EFAULT when required', () => {
    setPte(mm, 20, 7 << 24);
    expect(run(mm, sub, 20, 1).w).toEqual([0n]);
    expect(run(mm, sub, 20, 1, { dflt: RF }).ret).toBe(-EFAULT);
  });
});

// ---------------------------------------------------------------------------------------------
describe('faulting', () => {
  beforeEach(() => addVma(mm, 0, 2048, RWX));

  it('a PTE run extends to the end of its PMD step with that PTE requirement', () => {
    // step 1 is pages 512..1023; all present read-only; page 600 asks for write
    for (let p = 512; p < 1024; p++) setPte(mm, p, present(1000 + p));
    const input = rep(0n, 512);
    input[600 - 512] = RW;
    const r = run(mm, sub, 512, 512, { dflt: RF, mask: RW, input });
    expect(r.ret).toBe(0);
    expect(faultedPages()).toEqual(Array.from({ length: 424 }, (_, i) => 600 + i));
    expect(hooks.calls.every((c) => c[1])).toBe(true);
    expect(hmmStats.faults).toBe(424);
    expect(hmmStats.walks).toBe(2);
    expect(r.w.slice(0, 88)).toEqual(seqWords(1512, 88, V));
    expect(r.w.slice(88)).toEqual(seqWords(1600, 424, V | W));
  });

  it('a PTE run stops at the range end', () => {
    for (let p = 512; p < 800; p++) setPte(mm, p, present(1000 + p));
    const r = run(mm, sub, 600, 50, { dflt: RF | RW });
    expect(r.ret).toBe(0);
    expect(faultedPages()).toEqual(Array.from({ length: 50 }, (_, i) => 600 + i));
    expect(r.w).toEqual(seqWords(1600, 50, V | W));
  });

  it('a PTE run stops at the VMA end', () => {
    const { mm: m2 } = makeMm();
    const s2 = subscribe(m2);
    addVma(m2, 0, 100, RWX);
    addVma(m2, 100, 200, VM_READ);
    for (let p = 0; p < 200; p++) setPte(m2, p, present(1000 + p));
    const r = run(m2, s2, 90, 20, { dflt: RF, mask: RW, input: [RW, ...rep(0n, 19)] });
    expect(r.ret).toBe(0);
    expect(faultedPages()).toEqual(Array.from({ length: 10 }, (_, i) => 90 + i));
    expect(r.w).toEqual([...seqWords(1090, 10, V | W), ...seqWords(1100, 10, V)]);
  });

  it('-EPERM when write is required on a VMA without VM_WRITE (the run starts but faults nothing)', () => {
    const { mm: m2 } = makeMm();
    const s2 = subscribe(m2);
    addVma(m2, 0, 2048, VM_READ);
    setPte(m2, 10, present(100));
    const r = run(m2, s2, 10, 1, { dflt: RF | RW, input: 9n });
    expect(r.ret).toBe(-EPERM);
    expect(hooks.calls).toEqual([]);
    expect(r.w).toEqual([9n]);
    // a hole in the same VMA: -EPERM too
    expect(run(m2, s2, 20, 1, { dflt: RF | RW }).ret).toBe(-EPERM);
    // read is fine
    expect(run(m2, s2, 10, 1, { dflt: RF }).w).toEqual([100n | V]);
  });

  it('a fault error stops the run with -EFAULT', () => {
    hooks.onFault = (m, addr, flags) => (addr / P === 12 ? 0x0002 : simpleFault(m, addr, flags));
    const r = run(mm, sub, 10, 5, { dflt: RF });
    expect(r.ret).toBe(-EFAULT);
    expect(faultedPages()).toEqual([10, 11, 12]);
  });

  it('a fault that invalidates the subscription makes the call return -EBUSY (self-inflicted)', () => {
    hooks.onFault = (m, addr, flags) => {
      invalidate(m, addr / P, addr / P + 1);
      return simpleFault(m, addr, flags);
    };
    const r = run(mm, sub, 10, 2, { dflt: RF, input: 3n });
    expect(r.ret).toBe(-EBUSY);
    expect(hmmStats).toEqual({ walks: 1, busyFromCheck: 1, faults: 2, migrationWaits: 0 });
  });

  it('a fault that leaves the page short of its request is faulted again on the next walk', () => {
    let n = 0;
    hooks.onFault = (m, addr, flags) => {
      // the first call maps read-only although write was asked (e.g. a swap-in)
      n++;
      return simpleFault(m, addr, n === 1 ? 0 : flags);
    };
    const r = run(mm, sub, 10, 1, { dflt: RF | RW });
    expect(r.ret).toBe(0);
    expect(hooks.calls).toEqual([
      [10, true],
      [10, true],
    ]);
    expect(hmmStats.walks).toBe(3);
    expect(r.w).toEqual([3000n | V | W]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('request flags', () => {
  beforeEach(() => {
    addVma(mm, 0, 2048, RWX);
    for (let p = 10; p < 14; p++) setPte(mm, p, present(100 + p));
    setPte(mm, 14, present(114, PTE_WRITE));
  });
  // pages 10..13 present read-only, 14 writable, 15 none

  it('default_flags = REQ_FAULT | REQ_WRITE, mask 0: every page write-faulted from the first', () => {
    const r = run(mm, sub, 10, 6, { dflt: RF | RW, input: 0n });
    expect(r.ret).toBe(0);
    // the run from page 10 covers the rest of the PMD step inside the range: 10..15
    expect(faultedPages()).toEqual([10, 11, 12, 13, 14, 15]);
    expect(r.w).toEqual([...seqWords(110, 5, V | W), 3000n | V | W]);
  });

  it('mask = REQ_FAULT | REQ_WRITE, default 0: per-page requests', () => {
    const r = run(mm, sub, 10, 6, { mask: RF | RW, input: [0n, 0n, 0n, 0n, 0n, RF] });
    expect(r.ret).toBe(0);
    expect(faultedPages()).toEqual([15]);
    expect(r.w).toEqual([...seqWords(110, 4, V), 114n | V | W, 3000n | V]);
  });

  it('default REQ_FAULT, mask REQ_WRITE: readable everywhere, writable where asked', () => {
    const r = run(mm, sub, 10, 6, { dflt: RF, mask: RW, input: [0n, 0n, 0n, 0n, RW, 0n] });
    expect(r.ret).toBe(0);
    // page 14 is writable already; page 15 (none) needs a read fault
    expect(hooks.calls).toEqual([[15, false]]);
    expect(r.w).toEqual([...seqWords(110, 4, V), 114n | V | W, 3000n | V]);
  });

  it('REQ_WRITE without REQ_FAULT requires nothing', () => {
    const r = run(mm, sub, 10, 6, { mask: RF | RW, input: RW });
    expect(r.ret).toBe(0);
    expect(hooks.calls).toEqual([]);
    expect(r.w).toEqual([...seqWords(110, 4, V), 114n | V | W, 0n]);
  });

  it('shortcut: input request bits are ignored when neither default nor mask has REQ_FAULT', () => {
    for (const mask of [0n, RW]) {
      const r = run(mm, sub, 10, 6, { mask, input: RF | RW });
      expect(r.ret).toBe(0);
      expect(r.w).toEqual([...seqWords(110, 4, V), 114n | V | W, 0n]);
    }
    // with mask 0 the input bits are dropped even if default has REQ_FAULT only
    const r = run(mm, sub, 10, 6, { dflt: RF, input: RW });
    expect(hooks.calls).toEqual([[15, false]]);
    expect(r.w[4]).toBe(114n | V | W);
  });

  it('input words other than the request bits do not matter', () => {
    const r = run(mm, sub, 10, 6, { mask: RF | RW, input: 0x00ff_ffff_1234_5678n });
    expect(r.ret).toBe(0);
    expect(hooks.calls).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('holes and VMAs', () => {
  it('a hole inside a VMA: 0, or the whole hole (one PMD step, clipped) faulted', () => {
    addVma(mm, 0, 2048, RWX);
    expect(run(mm, sub, 500, 30).w).toEqual(rep(0n, 30));
    // pages 500..529 cross the step boundary at 512: two holes, two runs
    const r = run(mm, sub, 500, 30, { mask: RF, input: [...rep(0n, 29), RF] });
    expect(r.ret).toBe(0);
    // the second hole [512, 530) is faulted as a whole; the first needs nothing
    expect(faultedPages()).toEqual(Array.from({ length: 18 }, (_, i) => 512 + i));
    expect(r.w.slice(0, 12)).toEqual(rep(0n, 12));
    expect(r.w.slice(12)).toEqual(seqWords(3000, 18, V));
  });

  it('a hole run is the whole hole with the OR-ed requirement (write if any page asks write)', () => {
    addVma(mm, 0, 2048, RWX);
    const r = run(mm, sub, 0, 4, { mask: RF | RW, input: [RF, 0n, RF | RW, 0n] });
    expect(r.ret).toBe(0);
    expect(hooks.calls).toEqual([
      [0, true],
      [1, true],
      [2, true],
      [3, true],
    ]);
  });

  it('a hole run stops at the VMA end', () => {
    addVma(mm, 0, 100, RWX);
    addVma(mm, 100, 200, RWX);
    const r = run(mm, sub, 90, 20, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(faultedPages()).toEqual([
      ...Array.from({ length: 10 }, (_, i) => 90 + i),
      ...Array.from({ length: 10 }, (_, i) => 100 + i),
    ]);
    expect(hmmStats.walks).toBe(3);
  });

  it('outside any VMA: ERROR, or -EFAULT when a fault is required', () => {
    addVma(mm, 100, 200, RWX);
    setPte(mm, 100, present(7));
    const r = run(mm, sub, 98, 4);
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([E, E, 7n | V, 0n]);
    const r2 = run(mm, sub, 98, 4, { mask: RF, input: [0n, RF, 0n, 0n] });
    expect(r2.ret).toBe(-EFAULT);
    expect(r2.w).toEqual([0n, RF, 0n, 0n]); // no word of that hole written
    // past the last VMA
    expect(run(mm, sub, 199, 3).w).toEqual([0n, E, E]);
    expect(run(mm, sub, 199, 3, { dflt: RF }).ret).toBe(-EFAULT);
  });

  it('a hole outside VMAs is split at 1 GiB boundaries', () => {
    const { mm: m3 } = makeMm(3 * GiB);
    const s3 = subscribe(m3);
    const G = GiB / P;
    // no VMA at all: [G - 2, 2G + 2) is three holes: [G-2, G), [G, 2G), [2G, 2G+2)
    const n = G + 4;
    const input = rep(0n, n);
    input[2 + 5] = RF; // a page in the second hole asks for a fault
    const r = run(m3, s3, G - 2, n, { mask: RF, input });
    expect(r.ret).toBe(-EFAULT);
    expect(r.w.slice(0, 2)).toEqual([E, E]); // the first hole was filled
    expect(r.w[2]).toBe(0n); // the second hole untouched (still its input)
    expect(r.w[7]).toBe(RF);
    expect(r.w.slice(n - 2)).toEqual([0n, 0n]);
  });

  it('refused VMAs (no VM_READ, VM_IO, VM_PFNMAP): ERROR, or -EFAULT', () => {
    addVma(mm, 0, 10, 0); // PROT_NONE
    addVma(mm, 10, 20, VM_READ | VM_IO);
    addVma(mm, 20, 30, RWX | VM_PFNMAP);
    addVma(mm, 30, 40, RWX);
    setPte(mm, 5, present(5));
    setPte(mm, 25, present(25));
    const r = run(mm, sub, 0, 31);
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([...rep(E, 30), 0n]);
    for (const s of [0, 10, 20]) {
      const input = rep(0n, 31);
      input[s + 5] = RF;
      const rr = run(mm, sub, 0, 31, { mask: RF, input });
      expect(rr.ret).toBe(-EFAULT);
      expect(rr.w.slice(0, s)).toEqual(rep(E, s));
      expect(rr.w.slice(s, 31)).toEqual(input.slice(s));
    }
    expect(hooks.calls).toEqual([]);
  });

  it('VM_MIXEDMAP is walked in 5.10.109 and refused in [v5.10.0]', () => {
    addVma(mm, 0, 10, VM_READ | VM_MIXEDMAP);
    setPte(mm, 0, present(100));
    expect(run(mm, sub, 0, 2, { dflt: RF }).w).toEqual([100n | V, 3000n | V]);
    hooks.calls = [];
    expect(run(mm, sub, 0, 2, { kernel: '5.10.0' }).w).toEqual([E, E]);
    expect(run(mm, sub, 0, 2, { dflt: RF, kernel: '5.10.0' }).ret).toBe(-EFAULT);
    expect(hooks.calls).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('PMD level', () => {
  beforeEach(() => addVma(mm, 0, 2048, RWX | VM_READ));

  it('THP: order 9 words, pfn = head + offset, for a range starting inside the huge page', () => {
    setPmd(mm, 512, mkPte(PMD_TYPE_HUGE, 2048, PTE_WRITE));
    setPmd(mm, 1024, mkPte(PMD_TYPE_HUGE, 2560));
    const r = run(mm, sub, 1020, 8);
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([...seqWords(2048 + 508, 4, V | W | O9), ...seqWords(2560, 4, V | O9)]);
    // satisfied request: no fault
    expect(run(mm, sub, 1020, 8, { dflt: RF }).ret).toBe(0);
    expect(hooks.calls).toEqual([]);
  });

  it('THP: a write request faults the part of the huge page inside the range (OR-ed)', () => {
    setPmd(mm, 512, mkPte(PMD_TYPE_HUGE, 2048));
    const r = run(mm, sub, 1000, 4, { dflt: RF, mask: RW, input: [0n, 0n, RW, 0n] });
    expect(r.ret).toBe(0);
    expect(faultedPages()).toEqual([1000, 1001, 1002, 1003]);
    expect(hooks.calls.every((c) => c[1])).toBe(true);
    expect(r.w).toEqual(seqWords(2048 + 488, 4, V | W | O9));
  });

  it('the huge zero page reports VALID | order 9, no WRITE', () => {
    setPmd(mm, 0, mkPte(PMD_TYPE_HUGE, HUGE_ZERO_PFN));
    expect(run(mm, sub, 3, 2, { dflt: RF }).w).toEqual(seqWords(HUGE_ZERO_PFN + 3, 2, V | O9));
  });

  it('devmap PMD reports like a THP', () => {
    setPmd(mm, 0, mkPte(PMD_TYPE_HUGE, 2048, PTE_DEVMAP | PTE_WRITE));
    expect(run(mm, sub, 0, 2).w).toEqual(seqWords(2048, 2, V | W | O9));
  });

  it('protnone THP: pfn + offset with no flags and no order; faulted when required', () => {
    setPmd(mm, 512, mkPte(PMD_TYPE_HUGE, 2048, PTE_PROTNONE | PTE_WRITE));
    expect(run(mm, sub, 513, 2).w).toEqual([2049n, 2050n]);
    const r = run(mm, sub, 513, 2, { dflt: RF });
    expect(r.ret).toBe(0);
    expect(faultedPages()).toEqual([513, 514]);
    expect(r.w).toEqual(seqWords(2049, 2, V | W | O9));
  });

  it('THP migration entry: 0 in a snapshot; wait and walk again when required', () => {
    setPmd(mm, 512, mkPte(PMD_TYPE_MIGRATION, 2048));
    expect(run(mm, sub, 600, 2).w).toEqual([0n, 0n]);
    hooks.onWait = (m) => setPmd(m, 512, mkPte(PMD_TYPE_HUGE, 2560, PTE_WRITE));
    const r = run(mm, sub, 600, 2, { mask: RF, input: [0n, RF] });
    expect(r.ret).toBe(0);
    expect(hooks.waits).toEqual([600]);
    expect(r.w).toEqual(seqWords(2560 + 88, 2, V | W | O9));
    expect(hmmStats.migrationWaits).toBe(1);
  });

  it('other non-present or bad PMDs: ERROR, or -EFAULT', () => {
    setPmd(mm, 0, PMD_TYPE_BAD);
    setPmd(mm, 512, mkPte(PMD_TYPE_SWAP, 3));
    setPmd(mm, 1024, 7 << 24);
    for (const s of [0, 512, 1024]) {
      expect(run(mm, sub, s + 1, 2).w).toEqual([E, E]);
      expect(run(mm, sub, s + 1, 2, { dflt: RF, input: 4n }).w).toEqual([4n, 4n]);
      expect(run(mm, sub, s + 1, 2, { dflt: RF }).ret).toBe(-EFAULT);
    }
    expect(hooks.calls).toEqual([]);
  });

  it('a THP that was split reports order 0 per page', () => {
    for (let p = 0; p < 512; p++) setPte(mm, p, present(2048 + p, PTE_WRITE));
    expect(run(mm, sub, 510, 2).w).toEqual(seqWords(2558, 2, V | W));
  });
});

// ---------------------------------------------------------------------------------------------
describe('hugetlb', () => {
  const HT = VM_READ | VM_WRITE | VM_HUGETLB;
  beforeEach(() => addVma(mm, 512, 1536, HT, 9));

  it('a none entry reports offset | order (no VALID)', () => {
    const r = run(mm, sub, 1020, 8);
    expect(r.ret).toBe(0);
    expect(r.w).toEqual([...seqWords(508, 4, O9), ...seqWords(0, 4, O9)]);
  });

  it('protnone: pfn + offset | order, no VALID', () => {
    setPmd(mm, 512, mkPte(PMD_TYPE_HUGE, 2048, PTE_PROTNONE | PTE_WRITE));
    expect(run(mm, sub, 514, 2).w).toEqual(seqWords(2050, 2, O9));
  });

  it('present: (pfn + offset) | VALID [| WRITE] | order', () => {
    setPmd(mm, 512, mkPte(PMD_TYPE_HUGE, 2048, PTE_WRITE));
    setPmd(mm, 1024, mkPte(PMD_TYPE_HUGE, 2560));
    const r = run(mm, sub, 1022, 4, { dflt: RF });
    expect(r.w).toEqual([...seqWords(2558, 2, V | W | O9), ...seqWords(2560, 2, V | O9)]);
    expect(hooks.calls).toEqual([]);
  });

  it('the requirement is that of the first page of the step in the range (not OR-ed)', () => {
    // page 600 asks nothing, 601 asks a fault: nothing is faulted
    const r = run(mm, sub, 600, 2, { mask: RF, input: [0n, RF] });
    expect(r.ret).toBe(0);
    expect(hooks.calls).toEqual([]);
    expect(r.w).toEqual(seqWords(88, 2, O9));
    // the other way round: the whole step inside the range is faulted, page per page
    const r2 = run(mm, sub, 1020, 6, { mask: RF, input: [RF, 0n, 0n, 0n, 0n, 0n] });
    expect(r2.ret).toBe(0);
    expect(faultedPages()).toEqual([1020, 1021, 1022, 1023]);
    expect(r2.w).toEqual([...seqWords(6144 + 508, 4, V | O9), ...seqWords(0, 2, O9)]);
  });

  it('a write requirement on a hugetlb VMA without VM_WRITE is -EPERM', () => {
    const { mm: m2 } = makeMm();
    const s2 = subscribe(m2);
    addVma(m2, 0, 512, VM_READ | VM_HUGETLB, 9);
    expect(run(m2, s2, 0, 1, { dflt: RF | RW }).ret).toBe(-EPERM);
  });
});

// ---------------------------------------------------------------------------------------------
describe('the loop', () => {
  beforeEach(() => addVma(mm, 0, 2048, RWX));

  it('-EINVAL for an empty range after a passing check, -EBUSY with a stale seq', () => {
    const seq = hmmCurrentSeq();
    expect(run(mm, sub, 10, 0, { seq }).ret).toBe(-EINVAL);
    expect(hmmStats.walks).toBe(1);
    invalidate(mm, 0, 1);
    expect(run(mm, sub, 10, 0, { seq }).ret).toBe(-EBUSY);
    expect(hmmStats).toEqual({ walks: 0, busyFromCheck: 1, faults: 0, migrationWaits: 0 });
    // start > end is empty too
    const r = run(mm, sub, 10, 1);
    const range: HmmRange = { ...r.range, start: 20 * P, end: 10 * P, notifierSeq: hmmCurrentSeq() };
    mm.mmapReadLock();
    expect(hmmRangeFault(range)).toBe(-EINVAL);
    mm.mmapReadUnlock();
  });

  it('a stale seq returns -EBUSY before the first walk, writing nothing', () => {
    setPte(mm, 10, present(100));
    const seq = hmmCurrentSeq();
    invalidate(mm, 500, 501);
    const r = run(mm, sub, 10, 1, { seq, input: 0x55n });
    expect(r.ret).toBe(-EBUSY);
    expect(r.w).toEqual([0x55n]);
  });

  it('requires the mmap lock', () => {
    const r = run(mm, sub, 10, 1);
    expect(() => hmmRangeFault(r.range)).toThrow(/mmap lock/);
  });

  it('the [v5.10.0] switch as a module-level setting', () => {
    setPte(mm, 10, present(5000, PTE_SPECIAL | PTE_DEVMAP | PTE_WRITE));
    expect(run(mm, sub, 10, 1).w).toEqual([5000n | V | W]);
    setHmmKernel('5.10.0');
    expect(hmmConfig.kernel).toBe('5.10.0');
    // [v5.10.0]: the test is "special and not the zero page": a special devmap PTE is refused
    expect(run(mm, sub, 10, 1).w).toEqual([E]);
    expect(run(mm, sub, 10, 1, { dflt: RF }).ret).toBe(-EFAULT);
    // the zero page stays a normal page in both
    setPte(mm, 11, present(0, PTE_SPECIAL));
    expect(run(mm, sub, 11, 1, { dflt: RF }).w).toEqual([V]);
    // and the parameter wins over the setting
    expect(run(mm, sub, 10, 1, { kernel: '5.10.109' }).w).toEqual([5000n | V | W]);
  });

  it('the Atomics.load reference walk gives identical words', () => {
    setDevicePrivate(mm.phys, 4000, 3);
    for (let p = 0; p < 1024; p++) {
      const k = p % 7;
      const w =
        k === 0
          ? present(100 + p)
          : k === 1
            ? present(100 + p, PTE_WRITE)
            : k === 2
              ? 0
              : k === 3
                ? mkPte(PTE_TYPE_SWAP, p)
                : k === 4
                  ? present(100 + p, PTE_PROTNONE)
                  : k === 5
                    ? mkPte(PTE_TYPE_DEVICE_PRIVATE, 4000)
                    : present(0, PTE_SPECIAL);
      setPte(mm, p, w);
    }
    const a = run(mm, sub, 0, 1024, { owner: 3 });
    const r = run(mm, sub, 0, 1024, { owner: 3 });
    r.pfns.fill(0);
    r.range.notifierSeq = hmmCurrentSeq();
    mm.mmapReadLock();
    expect(hmmRangeFaultAtomicsLoadReference(r.range)).toBe(0);
    mm.mmapReadUnlock();
    expect(Array.from(r.pfns)).toEqual(Array.from(a.pfns));
  });
});

function hmmCurrentSeq(): number {
  return run(mm, sub, 0, 0).range.notifierSeq;
}
