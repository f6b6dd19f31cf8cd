/**
 * The v5.4 counter leak (spec/legacy-v5.4.md, last weakness): two subscribers on one mm, a
 * non-blockable start fails in one of them, and the caller skips the end as the v5.4 core let it:
 * struct hmm keeps `notifiers` one too high for good. The v5.10 side on the same mm recovers.
 */
import { describe, expect, it } from 'vitest';
import { readViolations } from '../../src/checker/oracles.js';
import { dmirrorDriver } from '../../src/driver/dmirror.js';
import {
  type HmmRange54,
  hmmOf,
  hmmRange54Init,
  hmmRangeFault,
  hmmRangeRegister,
  hmmRangeUnregister,
  hmmRangeValid,
  hmmRangeWaitUntilValid,
} from '../../src/legacy/index.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { MADV_DONTNEED, madvise } from '../../src/mm/madvise.js';
import { EAGAIN, EBUSY, MMU_NOTIFY_UNMAP } from '../../src/mm/mmu-notifier.js';
import { invalidateRangeStart, rangeInit } from '../../src/mm/notify.js';
import { mmuNotifierSubscriptionsOf } from '../../src/notifier/index.js';
import { cpuFill, mapAnon, pattern, W } from '../conformance/helpers.js';
import { legacyWorld } from './helpers.js';

function world() {
  const lw = legacyWorld();
  const dev10 = dmirrorDriver.createDevice({ phys: lw.phys, log: lw.log });
  const f10 = dev10.open(lw.mm);
  if (typeof f10 === 'number') throw new Error(`open failed: ${f10}`);
  return { ...lw, f10 };
}

function legacyRange(start: number, npages: number): HmmRange54 {
  return hmmRange54Init({
    start,
    end: start + npages * PAGE_SIZE,
    flags: [1n, 2n, 4n],
    values: [~0n, 0n, ~1n],
    pfnShift: 12,
    defaultFlags: 1n,
  });
}

describe('the v5.4 notifiers leak', () => {
  it("v5.4 chain: the v5.10 subscriber fails, hmm's start is never ended: every range stays invalid", () => {
    const w = world();
    w.mm.notifiers.startPairing = 'v5.4';
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const hmm = hmmOf(w.mm)!;
    // the interval-notifier core is first on the chain, struct hmm after it
    expect(w.mm.notifiers.subscribers.indexOf(hmm)).toBe(1);

    w.f10.lock(); // the v5.10 device's invalidate op can only try its lock: it fails
    const r = invalidateRangeStart(w.mm, rangeInit(w.mm, MMU_NOTIFY_UNMAP, a, a + PAGE_SIZE, false));
    w.f10.unlock();
    expect(r).toBe(-EAGAIN); // the caller (e.g. the OOM reaper) skips the end
    expect(hmm.notifiers).toBe(1);
    expect(hmm.state().failedStarts).toBe(0);

    // a range registered now starts invalid and waits in vain
    const range = legacyRange(a, 2);
    expect(hmmRangeRegister(range, w.f.hmmMirror)).toBe(0);
    expect(hmmRangeValid(range)).toBe(false);
    const t0 = performance.now();
    expect(hmmRangeWaitUntilValid(range, 40)).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(39);
    // a later complete invalidation elsewhere brings the count to 2 and back to 1, never to 0
    expect(madvise(w.mm, a + 3 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    expect(hmm.notifiers).toBe(1);
    expect(hmmRangeValid(range)).toBe(false);
    w.mm.mmapReadLock();
    expect(hmmRangeFault(range, 0)).toBe(-EBUSY);
    w.mm.mmapReadUnlock();
    hmmRangeUnregister(range);
    expect(hmm.state().validRanges).toBe(0);

    // the v5.10 subscriptions on the same mm recovered: the core ended its own failed start
    const core = mmuNotifierSubscriptionsOf(w.mm)!.state();
    expect(core.activeInvalidateRanges).toBe(0);
    expect(core.invalidateSeq & 1).toBe(0);
    const rr = w.f10.read(a, 2, new Int32Array(2 * W));
    expect([rr.ret, rr.cpages, rr.faults, rr.retries]).toEqual([0, 2, 1, 0]);
    expect(readViolations(w.log).length).toBe(0);
  });

  it('v5.10 chain, same failure: struct hmm is never started, nothing leaks', () => {
    const w = world();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const hmm = hmmOf(w.mm)!;
    w.f10.lock();
    const r = invalidateRangeStart(w.mm, rangeInit(w.mm, MMU_NOTIFY_UNMAP, a, a + PAGE_SIZE, false));
    w.f10.unlock();
    expect(r).toBe(-EAGAIN);
    expect(hmm.notifiers).toBe(0);
    const range = legacyRange(a, 2);
    expect(hmmRangeRegister(range, w.f.hmmMirror)).toBe(0);
    expect(hmmRangeValid(range)).toBe(true);
    hmmRangeUnregister(range);
    const wr = w.f.write(a, 2, pattern(2, 3));
    expect([wr.ret, wr.cpages, wr.faults, wr.retries]).toEqual([0, 2, 1, 0]);
  });

  it("a non-blockable start that fails in hmm's own mirror: hmm runs the end itself, no leak", () => {
    const w = world();
    w.mm.notifiers.startPairing = 'v5.4';
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    const hmm = hmmOf(w.mm)!;
    w.f.lock();
    const r = invalidateRangeStart(w.mm, rangeInit(w.mm, MMU_NOTIFY_UNMAP, a, a + PAGE_SIZE, false));
    w.f.unlock();
    expect(r).toBe(-EAGAIN);
    expect(hmm.notifiers).toBe(0);
    const st = hmm.state();
    expect([st.failedStarts, st.drains]).toEqual([1, 1]);
    expect(w.f.stats().invalidationsFailed).toBe(1);
  });
});
