/**
 * Deterministic single-thread replay of a window in which the reference device mirrored a page
 * migrated to device memory as writable while the CPU entry had lost write: NUMA hinting
 * (change_prot_numa, under the mmap read lock like the migration) write-protects the migration
 * entries between collect and finalize-and-map (oracle #3, "mirror incoherent (writable)").
 */
import { afterEach, describe, expect, it } from 'vitest';
import { POINT_BEFORE_END, setJitterPointHook } from '../../src/checker/points.js';
import {
  PAGE_SIZE,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_MASK,
  PTE_TYPE_MIGRATION,
  PTE_WRITE,
} from '../../src/mm/layout.js';
import { changeProtNuma } from '../../src/mm/numa.js';
import { cpuFill, expectClean, mapAnon, setup, W } from '../conformance/helpers.js';

afterEach(() => {
  setJitterPointHook(null);
});

describe('migration to device memory races with write protection', () => {
  it('NUMA hinting on the migration entries: the new device entries are mirrored read-only', () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const p0 = a / PAGE_SIZE;
    let fired = false;
    setJitterPointHook((p) => {
      if (p !== POINT_BEFORE_END || fired) return;
      if ((Atomics.load(w.mm.pte, p0) & PTE_TYPE_MASK) !== PTE_TYPE_MIGRATION) return;
      fired = true;
      // the end of the collect's MIGRATE: every page is a writable migration entry
      expect(Atomics.load(w.mm.pte, p0) & PTE_WRITE).toBe(PTE_WRITE);
      changeProtNuma(w.mm, a, a + 4 * PAGE_SIZE);
      expect(Atomics.load(w.mm.pte, p0) & PTE_WRITE).toBe(0);
    });
    const r = w.f0.migrate(a, 4, new Int32Array(4 * W));
    setJitterPointHook(null);
    expect(fired).toBe(true);
    expect(r.ret).toBe(0);
    for (let i = 0; i < 4; i++) {
      const e = Atomics.load(w.mm.pte, p0 + i);
      expect(e & PTE_TYPE_MASK).toBe(PTE_TYPE_DEVICE_PRIVATE);
      expect(e & PTE_WRITE).toBe(0);
      const m = w.f0.mirrorEntry(p0 + i);
      expect(m).not.toBeNull();
      expect(m?.writable).toBe(false);
    }
    expectClean(w);
  });
});
