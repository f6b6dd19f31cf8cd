/**
 * The race v5.10 closed (spec/legacy-v5.4.md, "an ABA on `valid`"), built deterministically in one
 * thread through the driver's named points; the same schedule against the v5.10 device; and the
 * spec's three safe controls.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readViolations, V_STALE_ACCESS } from '../../src/checker/oracles.js';
import { POINT_AFTER_READ_BEGIN, POINT_BEFORE_USER_LOCK } from '../../src/checker/points.js';
import { setDriverClock, setPointHook } from '../../src/driver/sched.js';
import { hmmOf } from '../../src/legacy/index.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { MADV_DONTNEED, madvise } from '../../src/mm/madvise.js';
import { MMU_NOTIFY_CLEAR, type MmuNotifierRange } from '../../src/mm/mmu-notifier.js';
import { invalidateRangeEnd, invalidateRangeStart, rangeInit } from '../../src/mm/notify.js';
import { cpuFill, mapAnon, pattern, setup, W } from '../conformance/helpers.js';
import { legacyWorld, pfnAt } from './helpers.js';

afterEach(() => {
  setPointHook(null);
  setDriverClock(null);
});

describe('the v5.4 race (ABA on valid)', () => {
  it('v5.4 device: walk, a whole MADV_DONTNEED with the free, lock, valid is true: stale access', () => {
    const w = legacyWorld();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const P = pfnAt(w.mm, a);
    const g0 = w.phys.generation(P);
    const hmm = hmmOf(w.mm)!;
    let fired = 0;
    let notifiersAfter = -1;
    setPointHook((p) => {
      // between the walk (pfns name P) and the update lock
      if (p !== POINT_BEFORE_USER_LOCK || fired++ > 0) return;
      expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
      notifiersAfter = hmm.notifiers;
    });
    const r = w.f.read(a, 1, new Int32Array(W));
    expect(fired).toBe(1);
    // the invalidation drained: notifiers back to 0, so `valid` was true again under the lock
    expect(notifiersAfter).toBe(0);
    expect([r.ret, r.cpages, r.faults, r.retries]).toEqual([0, 1, 1, 0]);
    expect(w.f.stats().readRetryCollisions).toBe(0);
    // the device now maps the freed frame
    expect(w.f.mirrorEntry(a / PAGE_SIZE)).toEqual({ pfn: P, writable: true, gen: g0 });
    const g1 = w.phys.generation(P);
    expect(g1).not.toBe(g0);
    const v = readViolations(w.log);
    expect(v.length).toBe(1);
    expect([v[0]!.kind, v[0]!.pfn, v[0]!.page, v[0]!.genRecorded, v[0]!.genNow]).toEqual([
      V_STALE_ACCESS,
      P,
      a / PAGE_SIZE,
      g0,
      g1,
    ]);
    expect(v[0]!.detailName).toBe('read');
    expect(v[0]!.file).toBe(w.f.id);
  });

  it('v5.10 device, same schedule: mmu_interval_read_retry is true, the device retries, no violation', () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const P = pfnAt(w.mm, a);
    let fired = 0;
    setPointHook((p) => {
      if (p !== POINT_BEFORE_USER_LOCK || fired++ > 0) return;
      expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    });
    const r = w.f0.read(a, 1, new Int32Array(W));
    expect(fired).toBe(2); // the hook ran again on the retry (doing nothing)
    expect([r.ret, r.cpages, r.faults, r.retries]).toEqual([0, 1, 1, 1]);
    expect(w.f0.stats().readRetryCollisions).toBe(1);
    expect(w.f0.mirrorEntry(a / PAGE_SIZE)!.pfn).not.toBe(P);
    expect(readViolations(w.log).length).toBe(0);
  });
});

describe('the three safe controls (v5.4 device)', () => {
  it('the invalidation starts only after the device holds its lock (serialised after it): entry erased, refault', () => {
    const w = legacyWorld();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    // One thread cannot block on the lock; the invalidation's sync op would wait for the device's
    // critical section, so it runs after it: the device programs, then the invalidation erases.
    expect(w.f.rangeFault(a, a + PAGE_SIZE, true)).toBe(0);
    expect(w.f.mirrorEntry(a / PAGE_SIZE)!.pfn).toBe(pfnAt(w.mm, a));
    expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    expect(w.f.mirrorEntry(a / PAGE_SIZE)).toBe(null);
    const r = w.f.write(a, 1, pattern(1, 5));
    expect([r.ret, r.cpages, r.faults, r.retries]).toEqual([0, 1, 1, 0]);
    expect(readViolations(w.log).length).toBe(0);
  });

  it('another invalidation in the mm is still running when the device checks: valid is false, retry', () => {
    const w = legacyWorld();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const b = a + 3 * PAGE_SIZE; // an unrelated page
    let x: MmuNotifierRange | null = null;
    let state = 0;
    setPointHook((p) => {
      if (p === POINT_BEFORE_USER_LOCK && state === 0) {
        state = 1;
        x = rangeInit(w.mm, MMU_NOTIFY_CLEAR, b, b + PAGE_SIZE);
        expect(invalidateRangeStart(w.mm, x)).toBe(0);
        expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
      } else if (p === POINT_AFTER_READ_BEGIN && state === 1) {
        state = 2;
        invalidateRangeEnd(w.mm, x!); // the retry: let the mm drain
      }
    });
    const r = w.f.write(a, 1, pattern(1, 7));
    expect(state).toBe(2);
    expect([r.ret, r.cpages, r.faults, r.retries]).toEqual([0, 1, 1, 1]);
    expect(w.f.stats().readRetryCollisions).toBe(1);
    expect(w.f.mirrorEntry(a / PAGE_SIZE)!.pfn).toBe(pfnAt(w.mm, a));
    expect(readViolations(w.log).length).toBe(0);
  });

  it('the walk reads the PTE after it was cleared: it faults a new page, no violation', () => {
    const w = legacyWorld();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    let fired = 0;
    setPointHook((p) => {
      if (p !== POINT_AFTER_READ_BEGIN || fired++ > 0) return;
      expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    });
    const r = w.f.write(a, 1, pattern(1, 9));
    expect([r.ret, r.cpages, r.faults, r.retries]).toEqual([0, 1, 1, 0]);
    expect(w.f.mirrorEntry(a / PAGE_SIZE)!.pfn).toBe(pfnAt(w.mm, a));
    expect(readViolations(w.log).length).toBe(0);
  });
});
