/**
 * Conformance scenarios 1-11, 17, 20-23 and 25 (spec/conformance.md): the kernel selftest's
 * hmm-tests.c cases on the reference device, single-threaded, W = 1024, each ending with the
 * oracles clean.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { dmirrorDriver, HMM_DMIRROR_PROT_ERROR } from '../../src/driver/dmirror.js';
import { hmmRangeFault, setHmmKernel } from '../../src/hmm/hmm.js';
import { HMM_PFN_VALID_HI, hmmPfnsAlloc, hmmPfnToMapOrder, hmmPfnToPage } from '../../src/hmm/pfn.js';
import { cpuRead } from '../../src/mm/cpu.js';
import { forkMm } from '../../src/mm/fork.js';
import { PAGE_SIZE, PMD_SIZE, PMD_TYPE_HUGE, PTE_PAYLOAD_MASK } from '../../src/mm/layout.js';
import { MADV_HUGEPAGE, madvise } from '../../src/mm/madvise.js';
import { createMm } from '../../src/mm/mm.js';
import {
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  mmap,
  mprotect,
  munmap,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../../src/mm/mmap.js';
import { EFAULT, EPERM } from '../../src/mm/mmu-notifier.js';
import { createPhysMem } from '../../src/mm/physmem.js';
import { splitHugePage } from '../../src/mm/thp.js';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuNotifierSubscriptionsOf,
} from '../../src/notifier/index.js';
import {
  cpuFill,
  cpuReadAll,
  expectClean,
  expectSame,
  mapAnon,
  NPAGES,
  open,
  pattern,
  setup,
  W,
} from './helpers.js';

afterEach(() => setHmmKernel('5.10.109'));

describe('conformance (hmm-tests.c)', () => {
  it('1 open/close: the mm has no subscription left', () => {
    const phys = createPhysMem({ W, nframes: 4096 });
    const mm = createMm(phys, { size: 1 << 24 });
    const dev = dmirrorDriver.createDevice({ phys });
    const f = open(dev, mm);
    expect(mmuNotifierSubscriptionsOf(mm)!.state().inSet).toBe(1);
    expect(f.close()).toBe(0);
    expect(mmuNotifierSubscriptionsOf(mm)!.state().inSet).toBe(0);
  });

  it('2 anon read', () => {
    const w = setup();
    const a = mapAnon(w.mm, NPAGES);
    cpuFill(w.mm, a, NPAGES, 0, 1, 2);
    expect(mprotect(w.mm, a, NPAGES * PAGE_SIZE, PROT_READ)).toBe(0);
    expect(cpuRead(w.mm, a + PAGE_SIZE)).toBe(0);
    const out = new Int32Array(NPAGES * W);
    const r = w.f0.read(a, NPAGES, out);
    expect([r.ret, r.cpages, r.faults]).toEqual([0, NPAGES, 1]);
    const want = pattern(NPAGES);
    want.fill(0, 0, 2 * W);
    expectSame(out, want);
    expectClean(w);
  });

  it('3 anon read of PROT_NONE: -EFAULT, buffer untouched', () => {
    const w = setup();
    const a = mapAnon(w.mm, NPAGES);
    cpuFill(w.mm, a, NPAGES);
    const out = pattern(NPAGES, 0, -1);
    expect(mprotect(w.mm, a, NPAGES * PAGE_SIZE, PROT_NONE)).toBe(0);
    const r = w.f0.read(a, NPAGES, out);
    expect(r.ret).toBe(-EFAULT);
    expectSame(out, pattern(NPAGES, 0, -1));
    expect(mprotect(w.mm, a, NPAGES * PAGE_SIZE, PROT_READ)).toBe(0);
    expectSame(cpuReadAll(w.mm, a, NPAGES), pattern(NPAGES));
    expectClean(w);
  });

  it('4 anon write', () => {
    const w = setup();
    const a = mapAnon(w.mm, NPAGES);
    const r = w.f0.write(a, NPAGES, pattern(NPAGES));
    expect([r.ret, r.cpages, r.faults]).toEqual([0, NPAGES, 1]);
    expectSame(cpuReadAll(w.mm, a, NPAGES), pattern(NPAGES));
    expectClean(w);
  });

  it('5 anon write to read-only: -EPERM, then ok after mprotect', () => {
    const w = setup();
    const a = mapAnon(w.mm, NPAGES, PROT_READ);
    const one = new Int32Array(W);
    let r = w.f0.read(a, 1, one);
    expect([r.ret, r.cpages, r.faults]).toEqual([0, 1, 1]);
    r = w.f0.write(a, NPAGES, pattern(NPAGES));
    expect(r.ret).toBe(-EPERM);
    expectSame(cpuReadAll(w.mm, a, NPAGES), new Int32Array(NPAGES * W));
    expect(mprotect(w.mm, a, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    r = w.f0.write(a, NPAGES, pattern(NPAGES));
    expect([r.ret, r.cpages, r.faults]).toEqual([0, NPAGES, 1]);
    expectSame(cpuReadAll(w.mm, a, NPAGES), pattern(NPAGES));
    expectClean(w);
  });

  for (const shared of [false, true]) {
    it(`${shared ? 7 : 6} anon write from a forked child (${shared ? 'MAP_SHARED' : 'private'})`, () => {
      const w = setup();
      const a = mapAnon(w.mm, NPAGES, PROT_READ | PROT_WRITE, shared ? MAP_SHARED : MAP_PRIVATE);
      cpuFill(w.mm, a, NPAGES);
      const child = forkMm(w.mm);
      const cf = open(w.dev0, child);
      w.files.push(cf);
      const r = cf.write(a, NPAGES, pattern(NPAGES, 0, -1));
      expect([r.ret, r.cpages, r.faults]).toEqual([0, NPAGES, 1]);
      expectSame(cpuReadAll(child, a, NPAGES), pattern(NPAGES, 0, -1));
      expectSame(cpuReadAll(w.mm, a, NPAGES), shared ? pattern(NPAGES, 0, -1) : pattern(NPAGES));
      expectClean(w, [w.mm, child]);
    });
  }

  it('8 anon write, THP', () => {
    const w = setup();
    const a = mmap(w.mm, {
      length: PMD_SIZE,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
      align: PMD_SIZE,
    });
    expect(a % PMD_SIZE).toBe(0);
    expect(madvise(w.mm, a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    const r = w.f0.write(a, 512, pattern(512));
    expect([r.ret, r.cpages, r.faults]).toEqual([0, 512, 1]);
    expect(Atomics.load(w.mm.pmd, a / PMD_SIZE) & 0x07000000).toBe(PMD_TYPE_HUGE);
    expectSame(cpuReadAll(w.mm, a, 512), pattern(512));
    expectClean(w);
  });

  it('9 write, hugetlb', () => {
    const w = setup();
    const a = mmap(w.mm, {
      length: PMD_SIZE,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
    });
    expect(a).toBeGreaterThan(0);
    const r = w.f0.write(a, 512, pattern(512));
    expect([r.ret, r.cpages, r.faults]).toEqual([0, 512, 1]);
    expectSame(cpuReadAll(w.mm, a, 512), pattern(512));
    expectClean(w);
  });

  it('10 file read', () => {
    const w = setup();
    const file = w.phys.createFile(NPAGES);
    const wa = mmap(w.mm, {
      length: NPAGES * PAGE_SIZE,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_SHARED,
      file,
    });
    cpuFill(w.mm, wa, NPAGES);
    expect(munmap(w.mm, wa, NPAGES * PAGE_SIZE)).toBe(0);
    const a = mmap(w.mm, { length: NPAGES * PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED, file });
    expect(a).toBeGreaterThan(0);
    const out = new Int32Array(NPAGES * W);
    const r = w.f0.read(a, NPAGES, out);
    expect([r.ret, r.cpages, r.faults]).toEqual([0, NPAGES, 1]);
    expectSame(out, pattern(NPAGES));
    expectClean(w);
  });

  it('11 file write: the mapping and the file hold the data', () => {
    const w = setup();
    const file = w.phys.createFile(NPAGES);
    const a = mmap(w.mm, {
      length: NPAGES * PAGE_SIZE,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_SHARED,
      file,
    });
    const r = w.f0.write(a, NPAGES, pattern(NPAGES));
    expect([r.ret, r.cpages, r.faults]).toEqual([0, NPAGES, 1]);
    expectSame(cpuReadAll(w.mm, a, NPAGES), pattern(NPAGES));
    for (const p of [0, 1, 511, 1023]) expect(w.phys.fileReadWord(file, p, 7)).toBe(p * W + 7);
    expectClean(w);
  });

  it('17 read, many times (fresh buffers: faults 1; one buffer reused: faults 0)', () => {
    const w = setup();
    const out = new Int32Array(NPAGES * W);
    for (let c = 0; c < 10; c++) {
      const a = mapAnon(w.mm, NPAGES);
      cpuFill(w.mm, a, NPAGES, c);
      const r = w.f0.read(a, NPAGES, out);
      expect([r.ret, r.cpages, r.faults]).toEqual([0, NPAGES, 1]);
      expectSame(out, pattern(NPAGES, c));
      expect(munmap(w.mm, a, NPAGES * PAGE_SIZE)).toBe(0);
    }
    const a = mapAnon(w.mm, NPAGES);
    for (let c = 0; c < 3; c++) {
      cpuFill(w.mm, a, NPAGES, c);
      const r = w.f0.read(a, NPAGES, out);
      expect([r.ret, r.cpages, r.faults]).toEqual([0, NPAGES, c === 0 ? 1 : 0]);
      expectSame(out, pattern(NPAGES, c));
    }
    expectClean(w);
  });

  it('20 compound (hugetlb) snapshot: 0x06, then 0x05 after mprotect READ', () => {
    const w = setup();
    const a = mmap(w.mm, {
      length: PMD_SIZE,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
    });
    cpuFill(w.mm, a, 512);
    const snap = new Uint8Array(512);
    let r = w.f0.snapshot(a, 512, snap);
    expect([r.ret, r.cpages]).toEqual([0, 512]);
    expect([...new Set(snap)]).toEqual([0x06]);
    expect(mprotect(w.mm, a, PMD_SIZE, PROT_READ)).toBe(0);
    r = w.f0.snapshot(a, 512, snap);
    expect([r.ret, r.cpages]).toEqual([0, 512]);
    expect([...new Set(snap)]).toEqual([0x05]);
    expectClean(w);
  });

  it('21 double map: munmap of page 1 erases pages 1 and 2 in both mirrors', () => {
    const w = setup();
    const a = mapAnon(w.mm, 6);
    cpuFill(w.mm, a, 6);
    expect(mprotect(w.mm, a, 6 * PAGE_SIZE, PROT_READ)).toBe(0);
    for (const f of [w.f0, w.f1]) {
      const out = new Int32Array(6 * W);
      const r = f.read(a, 6, out);
      expect([r.ret, r.cpages, r.faults]).toEqual([0, 6, 1]);
      expectSame(out, pattern(6));
    }
    expect(munmap(w.mm, a + PAGE_SIZE, PAGE_SIZE)).toBe(0);
    const p0 = a / PAGE_SIZE;
    for (const f of [w.f0, w.f1]) {
      expect([0, 1, 2, 3, 4, 5].map((i) => f.mirrorEntry(p0 + i) !== null)).toEqual([
        true,
        false,
        false,
        true,
        true,
        true,
      ]);
    }
    expectClean(w);
  });

  it('22 mixed map: 0x01 (v5.10.0: 0xFF)', () => {
    for (const kernel of ['5.10.109', '5.10.0'] as const) {
      setHmmKernel(kernel);
      const w = setup();
      const a = w.f0.mmap(1);
      expect(a).toBeGreaterThan(0);
      const snap = new Uint8Array(1);
      const r = w.f0.snapshot(a, 1, snap);
      expect([r.ret, r.cpages]).toEqual([0, 1]);
      expect(snap[0]).toBe(kernel === '5.10.109' ? 0x01 : HMM_DMIRROR_PROT_ERROR);
      expectClean(w);
    }
  });
});

describe("conformance (hmmsim's extensions)", () => {
  it('23 anon THP snapshot: order 9, pfn = head + offset, 0x06; after a split 0x02', () => {
    const w = setup();
    const a = mmap(w.mm, {
      length: PMD_SIZE,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
      align: PMD_SIZE,
    });
    expect(madvise(w.mm, a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    cpuFill(w.mm, a, 512);
    const pmd = Atomics.load(w.mm.pmd, a / PMD_SIZE);
    expect(pmd & 0x07000000).toBe(PMD_TYPE_HUGE);
    const head = pmd & PTE_PAYLOAD_MASK;
    // the words themselves, through a one-off subscription
    const sub = new MmuIntervalNotifier();
    expect(mmuIntervalNotifierInsert(sub, w.mm, a, PMD_SIZE, { invalidate: () => true })).toBe(0);
    const pfns = hmmPfnsAlloc(512);
    const range = {
      notifier: sub,
      notifierSeq: mmuIntervalReadBegin(sub),
      start: a,
      end: a + PMD_SIZE,
      hmmPfns: pfns,
      defaultFlags: 0,
      pfnFlagsMask: 0,
      devPrivateOwner: -1,
    };
    w.mm.mmapReadLock();
    expect(hmmRangeFault(range)).toBe(0);
    w.mm.mmapReadUnlock();
    mmuIntervalNotifierRemove(sub);
    for (let i = 0; i < 512; i++) {
      expect(pfns[2 * i + 1]! & HMM_PFN_VALID_HI).not.toBe(0);
      expect(hmmPfnToMapOrder(pfns, i)).toBe(9);
      expect(hmmPfnToPage(pfns, i)).toBe(head + i);
    }
    const snap = new Uint8Array(512);
    let r = w.f0.snapshot(a, 512, snap);
    expect([r.ret, r.cpages]).toEqual([0, 512]);
    expect([...new Set(snap)]).toEqual([0x06]);
    expect(splitHugePage(w.mm, a)).toBe(0);
    r = w.f0.snapshot(a, 512, snap);
    expect([r.ret, r.cpages]).toEqual([0, 512]);
    expect([...new Set(snap)]).toEqual([0x02]);
    expectClean(w);
  });

  it('25 write to a COW-shared page: one self-inflicted -EBUSY, retries 1', () => {
    const w = setup();
    const a = mapAnon(w.mm, 1);
    expect(cpuRead(w.mm, a)).toBe(0);
    cpuFill(w.mm, a, 1, 5);
    const child = forkMm(w.mm);
    const before = w.f0.stats();
    const r = w.f0.write(a, 1, pattern(1, 0, -1));
    expect([r.ret, r.cpages, r.faults, r.retries]).toEqual([0, 1, 1, 1]);
    const after = w.f0.stats();
    expect(after.hmmCalls - before.hmmCalls).toBe(2);
    expect(after.hmmBusy - before.hmmBusy).toBe(1);
    expectSame(cpuReadAll(child, a, 1), pattern(1, 5));
    expectSame(cpuReadAll(w.mm, a, 1), pattern(1, 0, -1));
    expectClean(w, [w.mm, child]);
  });
});
