/** Unit tests of the dmirror invalidate op and the range-fault routine's retry counting. */
import { afterEach, describe, expect, it } from 'vitest';
import { readViolations, V_MIRROR_INCOHERENT, V_STALE_ACCESS } from '../../src/checker/oracles.js';
import { POINT_BEFORE_USER_LOCK } from '../../src/checker/points.js';
import { dmirrorAuditQuiescent } from '../../src/driver/audit.js';
import { setDriverClock, setPointHook } from '../../src/driver/sched.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { MADV_DONTNEED, madvise } from '../../src/mm/madvise.js';
import { mprotect, PROT_READ } from '../../src/mm/mmap.js';
import { EAGAIN, EBUSY, EFAULT, MMU_NOTIFY_UNMAP } from '../../src/mm/mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from '../../src/mm/notify.js';
import { cpuFill, expectClean, mapAnon, open, setup, W } from '../conformance/helpers.js';

afterEach(() => {
  setPointHook(null);
  setDriverClock(null);
});

function present(f: { mirrorEntry(p: number): unknown }, first: number, n: number): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) out.push(f.mirrorEntry(first + i) !== null);
  return out;
}

describe('dmirror invalidate op', () => {
  it('erases start..end inclusive: the page after the range goes too', () => {
    const w = setup();
    const a = mapAnon(w.mm, 8);
    cpuFill(w.mm, a, 8);
    expect(w.f0.read(a, 8, new Int32Array(8 * W)).ret).toBe(0);
    const p0 = a / PAGE_SIZE;
    expect(madvise(w.mm, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    expect(present(w.f0, p0, 8)).toEqual([true, true, false, false, false, true, true, true]);
    expect(w.f0.stats().entriesErased).toBe(3);
    expectClean(w);
  });

  it("skips its own MIGRATE; another device's files honour it", () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    expect(w.f1.read(a, 4, new Int32Array(4 * W)).ret).toBe(0);
    const s0 = w.f0.stats();
    const r = w.f0.migrate(a, 4, new Int32Array(4 * W));
    expect([r.ret, r.cpages]).toEqual([0, 4]);
    expect(w.f0.stats().invalidationsSkipped - s0.invalidationsSkipped).toBe(1);
    expect(present(w.f1, a / PAGE_SIZE, 4)).toEqual([false, false, false, false]);
    expectClean(w);
  });

  it('quirk (c) fixed: a second file of the same device honours the MIGRATE', () => {
    const w = setup();
    const g = open(w.dev0, w.mm);
    w.files.push(g);
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    expect(g.read(a, 4, new Int32Array(4 * W)).ret).toBe(0);
    expect(w.f0.migrate(a, 4, new Int32Array(4 * W)).ret).toBe(0);
    expect(present(g, a / PAGE_SIZE, 4)).toEqual([false, false, false, false]);
    expect(g.read(a, 4, new Int32Array(4 * W)).ret).toBe(0);
    expectClean(w);
  });

  it("quirk (c) reproduced (test driver's behaviour): the other file keeps stale entries, the oracles say so", () => {
    const w = setup({ quirkC: true });
    const g = open(w.dev0, w.mm);
    w.files.push(g);
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    expect(g.read(a, 4, new Int32Array(4 * W)).ret).toBe(0);
    expect(w.f0.migrate(a, 4, new Int32Array(4 * W)).ret).toBe(0);
    expect(present(g, a / PAGE_SIZE, 4)).toEqual([true, true, true, true]);
    expect(dmirrorAuditQuiescent(w.mm, w.files, w.log)).toBe(4);
    g.read(a, 4, new Int32Array(4 * W));
    const kinds = readViolations(w.log).map((v) => v.kind);
    expect(kinds.filter((k) => k === V_MIRROR_INCOHERENT).length).toBe(4);
    expect(kinds.filter((k) => k === V_STALE_ACCESS).length).toBe(4);
    const stale = readViolations(w.log).find((v) => v.kind === V_STALE_ACCESS)!;
    expect(stale.freeEventName).not.toBe('unknown');
    expect(stale.text).toContain('stale access (read)');
  });

  it('non-blockable range: only tries the lock; failure gives -EAGAIN and changes nothing', () => {
    const w = setup();
    const a = mapAnon(w.mm, 2);
    cpuFill(w.mm, a, 2);
    expect(w.f0.read(a, 2, new Int32Array(2 * W)).ret).toBe(0);
    w.f0.lock();
    const r = invalidateRangeStart(w.mm, rangeInit(w.mm, MMU_NOTIFY_UNMAP, a, a + PAGE_SIZE, false));
    w.f0.unlock();
    expect(r).toBe(-EAGAIN);
    expect(w.f0.stats().invalidationsFailed).toBe(1);
    expect(present(w.f0, a / PAGE_SIZE, 2)).toEqual([true, true]);
    // with the lock free the same range succeeds (the caller then ends it itself)
    const range = rangeInit(w.mm, MMU_NOTIFY_UNMAP, a, a + PAGE_SIZE, false);
    expect(invalidateRangeStart(w.mm, range)).toBe(0);
    expect(present(w.f0, a / PAGE_SIZE, 2)).toEqual([false, false]);
    invalidateRangeEnd(w.mm, range);
    expectClean(w);
  });
});

describe('dmirror range-fault routine', () => {
  it('counts one retry for a read_retry collision (an invalidation between walk and lock)', () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    let fired = false;
    setPointHook((p) => {
      if (p !== POINT_BEFORE_USER_LOCK || fired) return;
      fired = true;
      // an unrelated page: the whole-space subscription still sees it
      expect(madvise(w.mm, a + 3 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    });
    const before = w.f0.stats();
    const r = w.f0.read(a, 2, new Int32Array(2 * W));
    expect([r.ret, r.cpages, r.faults, r.retries]).toEqual([0, 2, 1, 1]);
    const s = w.f0.stats();
    expect(s.readRetryCollisions - before.readRetryCollisions).toBe(1);
    expect(s.hmmCalls - before.hmmCalls).toBe(2);
    expectClean(w);
  });

  it('per-region subscriptions: an invalidation elsewhere forces no retry', () => {
    const w = setup({ regionPages: 512 });
    const a = mapAnon(w.mm, 1024, undefined, undefined, 2 * 1024 * 1024);
    cpuFill(w.mm, a, 1024);
    let fired = false;
    setPointHook((p) => {
      if (p !== POINT_BEFORE_USER_LOCK || fired) return;
      fired = true;
      expect(madvise(w.mm, a + 600 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    });
    const r = w.f0.read(a, 2, new Int32Array(2 * W));
    expect([r.ret, r.cpages, r.faults, r.retries]).toEqual([0, 2, 1, 0]);
    expect(w.f0.subs.length).toBe((1 << 28) / PAGE_SIZE / 512);
    expectClean(w);
  });

  it('gives up with -EBUSY at HMM_RANGE_DEFAULT_TIMEOUT on the virtual clock', () => {
    const w = setup();
    const a = mapAnon(w.mm, 2);
    cpuFill(w.mm, a, 2);
    let now = 0;
    setDriverClock(() => now);
    setPointHook((p) => {
      if (p !== POINT_BEFORE_USER_LOCK) return;
      now += 400; // every attempt collides and takes 400 ms
      expect(madvise(w.mm, a + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    });
    const r = w.f0.read(a, 1, new Int32Array(W));
    expect(r.ret).toBe(-EBUSY);
    expect(r.retries).toBe(2);
    expect(w.f0.stats().timeouts).toBe(1);
  });
});

describe('dmirror quirks', () => {
  it("(b) a write to the device's own read-only private page: -EFAULT (not -EPERM), no fault", () => {
    const w = setup();
    const a = mapAnon(w.mm, 1);
    cpuFill(w.mm, a, 1);
    expect(w.f0.migrate(a, 1, new Int32Array(W)).ret).toBe(0);
    expect(mprotect(w.mm, a, PAGE_SIZE, PROT_READ)).toBe(0);
    const s0 = w.f0.stats();
    const r = w.f0.write(a, 1, new Int32Array(W));
    expect(r.ret).toBe(-EFAULT);
    expect(w.f0.stats().hmmCalls - s0.hmmCalls).toBe(1);
    expectClean(w);
  });
});
