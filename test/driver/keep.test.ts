/**
 * A chunk mirrored again unchanged keeps its entries and the generations recorded with them
 * (dmirror.ts recordGenerations): no store, no generation load. These tests prove the stale-access
 * oracle loses nothing by it: a frame freed behind the driver's back (no invalidation: an mm bug)
 * is still caught at the next access, and a real invalidation makes the next fault install afresh.
 */
import { describe, expect, it } from 'vitest';
import { readViolations } from '../../src/checker/oracles.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { MADV_DONTNEED, madvise } from '../../src/mm/madvise.js';
import { cpuFill, expectClean, mapAnon, setup, W } from '../conformance/helpers.js';

const N = 8;

describe('re-mirroring an unchanged chunk', () => {
  it('keeps the entries and their recorded generations; accesses stay clean', () => {
    const w = setup();
    const a = mapAnon(w.mm, N);
    cpuFill(w.mm, a, N);
    expect(w.f0.rangeFault(a, a + N * PAGE_SIZE, true)).toBe(0);
    const p0 = a / PAGE_SIZE;
    const before = Array.from({ length: N }, (_, i) => w.f0.mirrorEntry(p0 + i));
    expect(before.every((e) => e?.writable === true)).toBe(true);
    expect(w.f0.rangeFault(a, a + N * PAGE_SIZE, true)).toBe(0);
    const after = Array.from({ length: N }, (_, i) => w.f0.mirrorEntry(p0 + i));
    expect(after).toEqual(before);
    const buf = new Int32Array(N * W);
    expect(w.f0.read(a, N, buf).ret).toBe(0);
    expectClean(w);
  });

  it('a frame freed without an invalidation (an mm bug) is still caught at the next access', () => {
    const w = setup();
    const a = mapAnon(w.mm, N);
    cpuFill(w.mm, a, N);
    expect(w.f0.rangeFault(a, a + N * PAGE_SIZE, false)).toBe(0);
    const p0 = a / PAGE_SIZE;
    const e = w.f0.mirrorEntry(p0 + 3)!;
    // The bug: the frame's generation moves (a free and reuse) while the PTE and the mirror still
    // name it, and nobody invalidates.
    Atomics.add(w.phys.frames.gen, e.pfn, 1);
    expect(w.f0.rangeFault(a, a + N * PAGE_SIZE, false)).toBe(0);
    // kept: the old generation stays recorded
    expect(w.f0.mirrorEntry(p0 + 3)).toEqual(e);
    const buf = new Int32Array(N * W);
    w.f0.read(a, N, buf);
    const v = readViolations(w.log);
    expect(v.length).toBeGreaterThan(0);
    expect(v[0]!.kindName).toBe('stale-access');
    expect(v[0]!.page).toBe(p0 + 3);
  });

  it('after a real invalidation the next fault installs the new frames with their generations', () => {
    const w = setup();
    const a = mapAnon(w.mm, N);
    cpuFill(w.mm, a, N);
    expect(w.f0.rangeFault(a, a + N * PAGE_SIZE, true)).toBe(0);
    const p0 = a / PAGE_SIZE;
    const old = w.f0.mirrorEntry(p0)!;
    expect(madvise(w.mm, a, N * PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    expect(w.f0.mirrorEntry(p0)).toBeNull(); // erased by the invalidate op
    cpuFill(w.mm, a, N, 7);
    expect(w.f0.rangeFault(a, a + N * PAGE_SIZE, true)).toBe(0);
    const fresh = w.f0.mirrorEntry(p0)!;
    expect(fresh).not.toBeNull();
    expect(fresh.gen).toBe(Atomics.load(w.phys.frames.gen, fresh.pfn));
    expect(fresh.pfn !== old.pfn || fresh.gen !== old.gen).toBe(true);
    const buf = new Int32Array(N * W);
    expect(w.f0.write(a, N, buf).ret).toBe(0);
    expectClean(w);
  });
});
