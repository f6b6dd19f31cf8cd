/**
 * Deterministic single-thread replays of two windows in which the reference device used to
 * mirror a frame that a completed migration frees (stale access, free event MIGRATE_DONE).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { HOOK_AFTER_HMM_RANGE_FAULT, HOOK_AFTER_INVALIDATE, setPointHook } from '../../src/driver/sched.js';
import { cpuRead } from '../../src/mm/cpu.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { MADV_DONTNEED, madvise } from '../../src/mm/madvise.js';
import { cpuFill, expectClean, mapAnon, setup, W } from '../conformance/helpers.js';

afterEach(() => {
  setPointHook(null);
});

describe('migration races with the mirror', () => {
  it('a CPU fault back to RAM between hmm_range_fault and the lock makes the range fault retry', () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    cpuFill(w.mm, a, 4);
    expect(w.f0.migrate(a, 4, new Int32Array(4 * W)).ret).toBe(0);
    const retries0 = w.f0.stats().readRetryCollisions;
    let fired = false;
    setPointHook((p) => {
      if (p !== HOOK_AFTER_HMM_RANGE_FAULT || fired) return;
      fired = true;
      // another thread's CPU access: migrate_to_ram frees the device page hmm_range_fault reported
      cpuRead(w.mm, a + PAGE_SIZE);
    });
    expect(w.f0.rangeFault(a, a + 4 * PAGE_SIZE, false)).toBe(0);
    setPointHook(null);
    expect(fired).toBe(true);
    expect(w.f0.stats().readRetryCollisions).toBeGreaterThan(retries0);
    expect(w.f0.read(a, 4, new Int32Array(4 * W)).ret).toBe(0);
    expectClean(w);
  });

  it('a MADV_DONTNEED that zaps migration entries: the new device pages are not mirrored', () => {
    const w = setup();
    const a = mapAnon(w.mm, 4);
    // pages 0..1 present (collected as migration entries), 2..3 empty (inserted under a CLEAR)
    cpuFill(w.mm, a, 2);
    // invalidate ops run: device 2's for the collect's MIGRATE (device 1 skips its own), then
    // device 1's and device 2's for migrate_vma_pages' CLEAR over the empty pages
    let calls = 0;
    let fired = false;
    setPointHook((p) => {
      if (p !== HOOK_AFTER_INVALIDATE || ++calls !== 2) return;
      fired = true;
      // inside migrate_vma_pages' CLEAR: pages 0..1 are migration entries, finalize not yet run
      expect(madvise(w.mm, a, 2 * PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    });
    const r = w.f0.migrate(a, 4, new Int32Array(4 * W));
    setPointHook(null);
    expect(fired).toBe(true);
    expect(w.f0.mirrorEntry(a / PAGE_SIZE)).toBeNull();
    expect(w.f0.mirrorEntry(a / PAGE_SIZE + 1)).toBeNull();
    expect(r.ret).toBe(-2); // -ENOENT: the zapped pages have no entry
    expectClean(w);
  });
});
