/**
 * Deterministic single-thread replays of the range-fault routine's retries, each attributed to the
 * source of the subscription's last seq bump: the file's own fault (a write fault breaking COW on
 * the zero page its read fault mapped), another device's fault path (a COW or a migration run
 * inside the window), or the process (a MADV_DONTNEED inside the window).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { POINT_AFTER_READ_BEGIN } from '../../src/checker/points.js';
import type { DmirrorFile } from '../../src/driver/dmirror.js';
import { HOOK_AFTER_HMM_RANGE_FAULT, setPointHook } from '../../src/driver/sched.js';
import type { FileStats } from '../../src/driver/types.js';
import { cpuRead } from '../../src/mm/cpu.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { MADV_DONTNEED, madvise } from '../../src/mm/madvise.js';
import { cpuFill, expectClean, mapAnon, setup, W } from '../conformance/helpers.js';

afterEach(() => {
  setPointHook(null);
});

/** The three causes, as [process, other device, own fault]. */
function causes(f: DmirrorFile): [number, number, number] {
  const s = f.stats();
  return [s.retriesByProcess!, s.retriesByOtherDevice!, s.retriesByOwnFault!];
}

/** Every retry has exactly one cause. */
function expectSumHolds(s: FileStats): void {
  expect(s.retriesByProcess! + s.retriesByOtherDevice! + s.retriesByOwnFault!).toBe(
    s.hmmBusy + s.readRetryCollisions,
  );
}

/** Run `inside` once, at the first `point` the thread passes from now on. */
function once(point: number, inside: () => void): () => boolean {
  let fired = false;
  setPointHook((p) => {
    if (p !== point || fired) return;
    fired = true;
    inside();
  });
  return () => fired;
}

describe('retries by cause (v5.10 reference device)', () => {
  it('the stats carry the three fields, all 0 on a fresh file', () => {
    const w = setup();
    expect(causes(w.f0)).toEqual([0, 0, 0]);
    expectSumHolds(w.f0.stats());
  });

  it('own fault: a write fault on a zero page its read fault mapped breaks COW and retries', () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    expect(w.f0.rangeFault(a, a + 4 * PAGE_SIZE, false)).toBe(0); // maps the zero page
    expect(causes(w.f0)).toEqual([0, 0, 0]);
    const busy0 = w.f0.stats().hmmBusy;
    expect(w.f0.rangeFault(a, a + 4 * PAGE_SIZE, true)).toBe(0); // COW: CLEAR on its own subscription
    const s = w.f0.stats();
    expect(s.hmmBusy).toBeGreaterThan(busy0);
    expect(s.retriesByOwnFault).toBeGreaterThan(0);
    expect(s.retriesByProcess).toBe(0);
    expect(s.retriesByOtherDevice).toBe(0);
    expectSumHolds(s);
    expectSumHolds(w.f1.stats());
    expectClean(w);
  });

  it("other device: A's write fault COWs a page inside B's window, B retries", () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    expect(w.f0.rangeFault(a, a + 4 * PAGE_SIZE, false)).toBe(0); // zero pages
    const fired = once(POINT_AFTER_READ_BEGIN, () => {
      // device 0's write fault inside device 1's attempt (after read_begin, before the walk)
      expect(w.f0.rangeFault(a, a + 4 * PAGE_SIZE, true)).toBe(0);
    });
    expect(w.f1.rangeFault(a, a + 4 * PAGE_SIZE, false)).toBe(0);
    setPointHook(null);
    expect(fired()).toBe(true);
    expect(causes(w.f1)).toEqual([0, 1, 0]);
    // device 0 collided with itself in its own fault
    expect(w.f0.stats().retriesByOwnFault).toBeGreaterThan(0);
    expect(w.f0.stats().retriesByOtherDevice).toBe(0);
    for (const f of w.files) expectSumHolds(f.stats());
    expectClean(w);
  });

  it("other device: A's migration inside B's window (under the lock check), B retries", () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const fired = once(HOOK_AFTER_HMM_RANGE_FAULT, () => {
      // pages 2..3 go to device 0 (device 1 faulting them would get -EFAULT: not its owner)
      expect(w.f0.migrate(a + 2 * PAGE_SIZE, 2, new Int32Array(2 * W)).ret).toBe(0);
    });
    const retry0 = w.f1.stats().readRetryCollisions;
    expect(w.f1.rangeFault(a, a + 2 * PAGE_SIZE, false)).toBe(0);
    setPointHook(null);
    expect(fired()).toBe(true);
    expect(w.f1.stats().readRetryCollisions).toBe(retry0 + 1);
    const [proc, other] = causes(w.f1);
    expect(proc).toBe(0);
    expect(other).toBe(1);
    for (const f of w.files) expectSumHolds(f.stats());
    expectClean(w);
  });

  it("process: a CPU fault on the file's device page in its window (its own MIGRATE branch)", () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    expect(w.f0.migrate(a, 4, new Int32Array(4 * W)).ret).toBe(0);
    const before = causes(w.f0);
    const fired = once(HOOK_AFTER_HMM_RANGE_FAULT, () => {
      cpuRead(w.mm, a + PAGE_SIZE); // migrate_to_ram: MIGRATE naming device 0 and its file
    });
    expect(w.f0.rangeFault(a, a + 4 * PAGE_SIZE, false)).toBe(0);
    setPointHook(null);
    expect(fired()).toBe(true);
    const after = causes(w.f0);
    expect(after[0]).toBe(before[0] + 1);
    expect(after[1]).toBe(before[1]);
    expect(after[2]).toBe(before[2]);
    for (const f of w.files) expectSumHolds(f.stats());
    expectClean(w);
  });

  it('process: a MADV_DONTNEED inside the window before the walk (hmm_range_fault -EBUSY)', () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const busy0 = w.f1.stats().hmmBusy;
    const fired = once(POINT_AFTER_READ_BEGIN, () => {
      expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    });
    expect(w.f1.rangeFault(a, a + 4 * PAGE_SIZE, false)).toBe(0);
    setPointHook(null);
    expect(fired()).toBe(true);
    expect(w.f1.stats().hmmBusy).toBe(busy0 + 1);
    expect(causes(w.f1)).toEqual([1, 0, 0]);
    for (const f of w.files) expectSumHolds(f.stats());
    expectClean(w);
  });

  it('process: a MADV_DONTNEED between hmm_range_fault and the lock (read_retry)', () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const fired = once(HOOK_AFTER_HMM_RANGE_FAULT, () => {
      expect(madvise(w.mm, a + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    });
    expect(w.f1.rangeFault(a, a + 4 * PAGE_SIZE, false)).toBe(0);
    setPointHook(null);
    expect(fired()).toBe(true);
    const s = w.f1.stats();
    expect(s.readRetryCollisions).toBe(1);
    expect(causes(w.f1)).toEqual([1, 0, 0]);
    expectSumHolds(s);
    expectClean(w);
  });

  it("snapshot: A's COW inside B's snapshot window counts as another device's", () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    expect(w.f0.rangeFault(a, a + 4 * PAGE_SIZE, false)).toBe(0);
    const fired = once(POINT_AFTER_READ_BEGIN, () => {
      expect(w.f0.rangeFault(a, a + 4 * PAGE_SIZE, true)).toBe(0);
    });
    const r = w.f1.snapshot(a, 4, new Uint8Array(4));
    setPointHook(null);
    expect(r.ret).toBe(0);
    expect(fired()).toBe(true);
    expect(r.retries).toBe(1);
    expect(causes(w.f1)).toEqual([0, 1, 0]);
    for (const f of w.files) expectSumHolds(f.stats());
    expectClean(w);
  });

  it('regions: each subscription keeps its own source', () => {
    const w = setup({ regionPages: 4096 });
    const R = 4096 * PAGE_SIZE;
    const a = mapAnon(w.mm, 8192, undefined, undefined, R);
    expect(w.f0.subs.length).toBeGreaterThan(1);
    expect(w.f1.rangeFault(a, a + 4 * PAGE_SIZE, false)).toBe(0); // region 0: zero pages
    cpuFill(w.mm, a + R, 64); // region 1: present
    const fired = once(POINT_AFTER_READ_BEGIN, () => {
      // inside device 0's attempt on region 1: the process zaps a page of region 1, then device
      // 1's COW bumps device 0's region-0 subscription last (a single word would say "other")
      expect(madvise(w.mm, a + R, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
      expect(w.f1.rangeFault(a, a + 4 * PAGE_SIZE, true)).toBe(0);
    });
    expect(w.f0.rangeFault(a + R, a + R + 64 * PAGE_SIZE, false)).toBe(0);
    setPointHook(null);
    expect(fired()).toBe(true);
    expect(causes(w.f0)).toEqual([1, 0, 0]);
    for (const f of w.files) expectSumHolds(f.stats());
    expectClean(w);
  });
});
