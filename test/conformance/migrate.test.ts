/** Conformance scenarios 12-16, 19 and 24 (spec/conformance.md): device migration both ways. */
import { describe, expect, it } from 'vitest';
import { cpuRead, cpuWrite } from '../../src/mm/cpu.js';
import { PAGE_SIZE, PTE_TYPE_MASK, PTE_TYPE_PRESENT } from '../../src/mm/layout.js';
import { MAP_SHARED, mprotect, munmap, PROT_NONE, PROT_READ, PROT_WRITE } from '../../src/mm/mmap.js';
import { EFAULT, EINVAL, ENOENT } from '../../src/mm/mmu-notifier.js';
import {
  cpuFill,
  cpuReadAll,
  expectClean,
  expectSame,
  mapAnon,
  NPAGES,
  pattern,
  setup,
  W,
} from './helpers.js';

describe('conformance: migration', () => {
  it('12 migrate, then a read needs no fault', () => {
    const w = setup();
    const a = mapAnon(w.mm, NPAGES);
    cpuFill(w.mm, a, NPAGES);
    const out = new Int32Array(NPAGES * W);
    let r = w.f0.migrate(a, NPAGES, out);
    expect([r.ret, r.cpages]).toEqual([0, NPAGES]);
    expectSame(out, pattern(NPAGES));
    out.fill(0);
    r = w.f0.read(a, NPAGES, out);
    expect([r.ret, r.cpages, r.faults]).toEqual([0, NPAGES, 0]);
    expectSame(out, pattern(NPAGES));
    expectClean(w);
  });

  it('13 migrate, CPU faults the first half back, migrate again', () => {
    const w = setup();
    const a = mapAnon(w.mm, NPAGES);
    cpuFill(w.mm, a, NPAGES);
    const out = new Int32Array(NPAGES * W);
    let r = w.f0.migrate(a, NPAGES, out);
    expect([r.ret, r.cpages]).toEqual([0, NPAGES]);
    expectSame(out, pattern(NPAGES));
    const half = cpuReadAll(w.mm, a, NPAGES / 2);
    expectSame(half, pattern(NPAGES / 2));
    expect(Atomics.load(w.mm.pte, a / PAGE_SIZE) & PTE_TYPE_MASK).toBe(PTE_TYPE_PRESENT);
    out.fill(0);
    r = w.f0.migrate(a, NPAGES, out);
    expect([r.ret, r.cpages]).toEqual([0, NPAGES]);
    expectSame(out, pattern(NPAGES));
    expectClean(w);
  });

  it('14 migrate a shared anonymous mapping: -ENOENT', () => {
    const w = setup();
    const a = mapAnon(w.mm, NPAGES, PROT_READ | PROT_WRITE, MAP_SHARED);
    const r = w.f0.migrate(a, NPAGES, new Int32Array(NPAGES * W));
    expect(r.ret).toBe(-ENOENT);
    expectClean(w);
  });

  it('15 migrate, mixed: -EINVAL, -EINVAL, ok (cpages 4), -ENOENT', () => {
    const w = setup();
    const a = mapAnon(w.mm, 6, PROT_NONE);
    const P = (i: number) => a + i * PAGE_SIZE;
    const buf = new Int32Array(6 * W);
    expect(w.f1.migrate(a, 6, buf).ret).toBe(-EINVAL);
    expect(munmap(w.mm, P(1), PAGE_SIZE)).toBe(0);
    expect(w.f1.migrate(a, 3, buf).ret).toBe(-EINVAL);
    expect(mprotect(w.mm, P(2), PAGE_SIZE, PROT_READ)).toBe(0);
    expect(cpuRead(w.mm, P(2))).toBe(0);
    expect(mprotect(w.mm, P(3), PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    expect(cpuWrite(w.mm, P(3), 3)).toBe(0);
    expect(mprotect(w.mm, P(3), PAGE_SIZE, PROT_READ)).toBe(0);
    expect(mprotect(w.mm, P(4), 2 * PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    expect(cpuWrite(w.mm, P(4), 3)).toBe(0);
    expect(cpuWrite(w.mm, P(5), 3)).toBe(0);
    const r = w.f1.migrate(P(2), 4, buf);
    expect([r.ret, r.cpages]).toEqual([0, 4]);
    expect([buf[0], buf[W], buf[2 * W], buf[3 * W]]).toEqual([0, 3, 3, 3]);
    expect(w.f0.migrate(P(5), 1, buf).ret).toBe(-ENOENT);
    expectClean(w);
  });

  it('16 migrate, many times', () => {
    const w = setup();
    const out = new Int32Array(NPAGES * W);
    for (let round = 0; round < 10; round++) {
      const a = mapAnon(w.mm, NPAGES);
      cpuFill(w.mm, a, NPAGES);
      const r = w.f0.migrate(a, NPAGES, out);
      expect([r.ret, r.cpages]).toEqual([0, NPAGES]);
      expectSame(out, pattern(NPAGES));
      expectSame(cpuReadAll(w.mm, a, NPAGES), pattern(NPAGES));
      expect(munmap(w.mm, a, NPAGES * PAGE_SIZE)).toBe(0);
    }
    expectClean(w);
  });

  it('19 snapshot: 0xFF 0xFF 0x11 0x01 0x02 0x22 0x00', () => {
    const w = setup();
    const a = mapAnon(w.mm, 7, PROT_NONE);
    const P = (i: number) => a + i * PAGE_SIZE;
    expect(munmap(w.mm, P(1), PAGE_SIZE)).toBe(0);
    expect(mprotect(w.mm, P(2), PAGE_SIZE, PROT_READ)).toBe(0);
    expect(cpuRead(w.mm, P(2))).toBe(0);
    expect(mprotect(w.mm, P(3), PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    expect(cpuWrite(w.mm, P(3), 3)).toBe(0);
    expect(mprotect(w.mm, P(3), PAGE_SIZE, PROT_READ)).toBe(0);
    expect(mprotect(w.mm, P(4), 3 * PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    expect(cpuWrite(w.mm, P(4), 4)).toBe(0);
    const buf = new Int32Array(W);
    let r = w.f0.migrate(P(5), 1, buf);
    expect([r.ret, r.cpages]).toEqual([0, 1]);
    r = w.f1.migrate(P(6), 1, buf);
    expect([r.ret, r.cpages]).toEqual([0, 1]);
    const snap = new Uint8Array(7);
    r = w.f0.snapshot(a, 7, snap);
    expect([r.ret, r.cpages]).toEqual([0, 7]);
    expect([...snap]).toEqual([0xff, 0xff, 0x11, 0x01, 0x02, 0x22, 0x00]);
    expectClean(w);
  });

  for (const part of ['b', 'c'] as const) {
    it(`24 read of a page on another device: (a) -EFAULT, then (${part})`, () => {
      const w = setup();
      const a = mapAnon(w.mm, 2);
      const p1 = a / PAGE_SIZE + 1;
      expect(cpuWrite(w.mm, a + PAGE_SIZE, 77)).toBe(0);
      const buf = new Int32Array(2 * W);
      let r = w.f1.migrate(a + PAGE_SIZE, 1, buf);
      expect([r.ret, r.cpages, buf[0]]).toEqual([0, 1, 77]);
      // (a)
      r = w.f0.read(a + PAGE_SIZE, 1, buf);
      expect(r.ret).toBe(-EFAULT);
      if (part === 'b') {
        const before = w.f0.stats();
        r = w.f0.read(a, 2, buf);
        expect([r.ret, r.cpages, r.faults, r.retries]).toEqual([0, 2, 1, 1]);
        expect(w.f0.stats().hmmBusy - before.hmmBusy).toBe(1);
        expect([buf[0], buf[W]]).toEqual([0, 77]);
        expect(Atomics.load(w.mm.pte, p1) & PTE_TYPE_MASK).toBe(PTE_TYPE_PRESENT);
        expect(w.f1.mirrorEntry(p1)).toBeNull();
      } else {
        expect(cpuRead(w.mm, a + PAGE_SIZE)).toBe(77);
        expect(w.f1.mirrorEntry(p1)).toBeNull();
        r = w.f0.read(a + PAGE_SIZE, 1, buf);
        expect([r.ret, r.cpages, r.faults, buf[0]]).toEqual([0, 1, 1, 77]);
      }
      expectClean(w);
    });
  }
});
