/**
 * Oracle #2 (lost update) with 16-bit frame write counters (layout.ts WCOUNT_*): a counter that
 * wraps past 65,535 still balances increments + copied = live + discarded exactly, and a lost write
 * is still reported with its exact size.
 */
import { Worker } from 'node:worker_threads';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  createViolationLog,
  deviceWriteIncrements,
  type LostUpdateTerms,
  lostUpdateEquation,
  noteDeviceWrite,
  readViolations,
  resetDeviceWriteIncrements,
  V_LOST_UPDATE,
} from '../../src/checker/oracles.js';
import { cpuRead, cpuStats, cpuWrite } from '../../src/mm/cpu.js';
import { forkMm } from '../../src/mm/fork.js';
import { PAGE_SIZE, PTE_PAYLOAD_MASK, WCOUNT_MAX, WCOUNT_WRAP } from '../../src/mm/layout.js';
import { createMm } from '../../src/mm/mm.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, mmap, munmap, PROT_READ, PROT_WRITE } from '../../src/mm/mmap.js';
import { createPhysMem, type PhysMem } from '../../src/mm/physmem.js';

/** The equation's terms for `phys`, with the increments this thread made since `cpu0`. */
function terms(phys: PhysMem, cpu0: number, extra = 0): LostUpdateTerms {
  return {
    increments: cpuStats.writeIncrements - cpu0 + deviceWriteIncrements() + extra,
    copied: phys.copied,
    live: phys.liveWriteCount(),
    discarded: phys.discarded,
  };
}

function deviceWrites(phys: PhysMem, pfn: number, n: number): void {
  for (let i = 0; i < n; i++) noteDeviceWrite(phys, pfn);
}

describe('lost-update oracle with 16-bit write counters', () => {
  beforeEach(() => resetDeviceWriteIncrements());

  it('the counter is 16 bits and wraps: each wrap is counted once, as 65,536 discarded writes', () => {
    const phys = createPhysMem({ nframes: 2048, W: 1 });
    expect(phys.frames.wcount).toBeInstanceOf(Uint16Array);
    const cpu0 = cpuStats.writeIncrements;
    const f = phys.allocPage();
    deviceWrites(phys, f, WCOUNT_MAX);
    expect(phys.frames.wcount[f]).toBe(WCOUNT_MAX);
    expect(phys.writeCounterWraps).toBe(0);
    noteDeviceWrite(phys, f);
    expect(phys.frames.wcount[f]).toBe(0);
    expect(phys.writeCounterWraps).toBe(1);
    expect(phys.discarded).toBe(WCOUNT_WRAP);
    const r = lostUpdateEquation(terms(phys, cpu0));
    expect(r).toMatchObject({
      increments: WCOUNT_WRAP,
      live: 0,
      discarded: WCOUNT_WRAP,
      difference: 0,
      ok: true,
    });
  });

  it('frames whose counters wrapped balance the equation through CPU and device writes, COW, swap and unmap', () => {
    const phys = createPhysMem({ nframes: 2048, W: 2 });
    const mm = createMm(phys, { size: 16 << 20 });
    const cpu0 = cpuStats.writeIncrements;
    const base = mmap(mm, {
      length: 4 * PAGE_SIZE,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
    });
    expect(base).toBeGreaterThan(0);
    const check = (what: string): void => {
      const r = lostUpdateEquation(terms(phys, cpu0));
      expect(r.difference, `${what}: ${JSON.stringify(r)}`).toBe(0);
    };
    // page 0: 70,000 CPU writes (one wrap, 4,464 left in the counter)
    for (let i = 0; i < 70_000; i++) expect(cpuWrite(mm, base, i)).toBe(0);
    const pfn0 = Atomics.load(mm.pte, base / PAGE_SIZE) & PTE_PAYLOAD_MASK;
    expect(phys.frames.wcount[pfn0]).toBe(70_000 - WCOUNT_WRAP);
    expect(phys.writeCounterWraps).toBe(1);
    check('after 70,000 CPU writes');
    // page 1: one CPU write (faults it in), then 2 * 65,536 + 5 device writes
    expect(cpuWrite(mm, base + PAGE_SIZE, 1)).toBe(0);
    const pfn1 = Atomics.load(mm.pte, base / PAGE_SIZE + 1) & PTE_PAYLOAD_MASK;
    deviceWrites(phys, pfn1, 2 * WCOUNT_WRAP + 5);
    expect(phys.frames.wcount[pfn1]).toBe(6);
    expect(phys.writeCounterWraps).toBe(3);
    check('after device writes');
    // fork and write in the child: COW copies the wrapped counter (its 16-bit value) as copied
    const child = forkMm(mm);
    expect(cpuWrite(child, base, 7)).toBe(0);
    expect(cpuRead(child, base)).toBe(7);
    expect(phys.copied).toBeGreaterThanOrEqual(70_000 - WCOUNT_WRAP);
    check('after a COW copy of a wrapped frame');
    // the copy wraps on its own
    const cpfn = Atomics.load(child.pte, base / PAGE_SIZE) & PTE_PAYLOAD_MASK;
    expect(cpfn).not.toBe(pfn0);
    for (let i = 0; i < WCOUNT_WRAP; i++) cpuWrite(child, base, i);
    expect(phys.writeCounterWraps).toBe(4);
    check('after the copy wrapped');
    // swap a wrapped frame's 16-bit value out and back in (moved content, not counted twice)
    const f = phys.allocPage();
    deviceWrites(phys, f, WCOUNT_WRAP + 9);
    const slot = phys.swapAlloc();
    phys.swapOutContent(slot, f);
    phys.putPageMoved(f);
    expect(phys.swapWriteCount(slot)).toBe(9);
    check('after swap-out');
    const g = phys.allocPage();
    phys.swapInContent(g, slot, false);
    phys.swapFree(slot, true);
    check('after swap-in');
    phys.putPage(g);
    // everything goes away: all of it is discarded
    expect(munmap(child, base, 4 * PAGE_SIZE)).toBe(0);
    expect(munmap(mm, base, 4 * PAGE_SIZE)).toBe(0);
    check('after unmapping everything');
  });

  it('a lost write to a wrapped frame is reported with its exact size (migration race)', () => {
    const phys = createPhysMem({ nframes: 2048, W: 1 });
    const log = createViolationLog(8);
    const cpu0 = cpuStats.writeIncrements;
    const src = phys.allocPage();
    deviceWrites(phys, src, 3 * WCOUNT_WRAP + 100);
    expect(lostUpdateEquation(terms(phys, cpu0), log).ok).toBe(true);
    // migration copies src to dst; a device write lands on src after the copy; src is freed as moved
    const dst = phys.allocPage();
    phys.moveContent(dst, src);
    noteDeviceWrite(phys, src);
    phys.putPageMoved(src);
    const r = lostUpdateEquation(terms(phys, cpu0), log);
    expect(r.ok).toBe(false);
    expect(r.difference).toBe(1);
    const v = readViolations(log);
    expect(v).toHaveLength(1);
    expect(v[0]!.kind).toBe(V_LOST_UPDATE);
    expect(v[0]!.extra).toBe(1);
    expect(v[0]!.text).toMatch(/lost update: .* by 1$/);
  });

  it('a write to a freed frame whose counter wrapped is reported when the frame is reused', () => {
    const phys = createPhysMem({ nframes: 2048, W: 1 });
    const cpu0 = cpuStats.writeIncrements;
    const f = phys.allocPage();
    deviceWrites(phys, f, 70_000);
    expect(phys.putPage(f)).toBe(true);
    expect(lostUpdateEquation(terms(phys, cpu0)).ok).toBe(true);
    noteDeviceWrite(phys, f); // stale write into the freed frame
    expect(phys.allocPage()).toBe(f); // LIFO reuse zeroes the counter: the write is gone
    expect(lostUpdateEquation(terms(phys, cpu0)).difference).toBe(1);
  });

  it('losses on several frames add up, not reduced modulo 65,536', () => {
    const phys = createPhysMem({ nframes: 2048, W: 1 });
    const cpu0 = cpuStats.writeIncrements;
    const a = phys.allocPage();
    const b = phys.allocPage();
    deviceWrites(phys, a, WCOUNT_WRAP / 2);
    deviceWrites(phys, b, WCOUNT_WRAP / 2);
    // both dropped as if moved, but nothing took their content
    phys.putPageMoved(a);
    phys.putPageMoved(b);
    const r = lostUpdateEquation(terms(phys, cpu0));
    expect(r.difference).toBe(WCOUNT_WRAP);
    expect(r.ok).toBe(false);
  });

  it('documented limit: one frame losing exactly a multiple of 65,536 writes is missed', () => {
    const phys = createPhysMem({ nframes: 2048, W: 1 });
    const cpu0 = cpuStats.writeIncrements;
    const a = phys.allocPage();
    deviceWrites(phys, a, 2 * WCOUNT_WRAP);
    phys.putPageMoved(a); // its counter reads 0: the 131,072 lost writes are not seen
    expect(lostUpdateEquation(terms(phys, cpu0)).ok).toBe(true);
    // one write more or less is seen
    const b = phys.allocPage();
    deviceWrites(phys, b, 2 * WCOUNT_WRAP - 1);
    phys.putPageMoved(b);
    expect(lostUpdateEquation(terms(phys, cpu0)).difference).toBe(2 * WCOUNT_WRAP - 1 - WCOUNT_WRAP);
  });

  it('concurrent writers to one page: every wrap is counted exactly once and the equation holds', async () => {
    const phys = createPhysMem({ nframes: 4096, W: 4 });
    const mm = createMm(phys, { size: 16 << 20 });
    const base = mmap(mm, {
      length: PAGE_SIZE,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
    });
    expect(cpuWrite(mm, base, 0)).toBe(0);
    const cpu0 = cpuStats.writeIncrements;
    const ops = 70_000;
    // tsx registers its hooks only on the main thread: the worker registers them itself
    const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
    const entry = JSON.stringify(new URL('../mm/a-worker.ts', import.meta.url).href);
    const worker = new Worker(`import(${api}).then((t) => { t.register(); return import(${entry}); })`, {
      eval: true,
      workerData: { phys: phys.descriptor(), mm: mm.descriptor(), base, npages: 1, ops, seed: 7 },
    });
    const done = new Promise<{ increments: number; errors: number }>((res, rej) => {
      worker.on('message', res);
      worker.on('error', rej);
    });
    for (let i = 0; i < ops; i++) {
      expect(cpuWrite(mm, base, i)).toBe(0);
      if (i % 4096 === 0) await new Promise((r) => setImmediate(r));
    }
    const w = await done;
    await worker.terminate();
    expect(w.errors).toBe(0);
    const total = 1 + 2 * ops; // the first write, then both threads
    const pfn = Atomics.load(mm.pte, base / PAGE_SIZE) & PTE_PAYLOAD_MASK;
    expect(phys.frames.wcount[pfn]).toBe(total % WCOUNT_WRAP);
    expect(phys.writeCounterWraps).toBe(Math.floor(total / WCOUNT_WRAP));
    const r = lostUpdateEquation(terms(phys, cpu0, w.increments + 1));
    expect(r.difference, JSON.stringify(r)).toBe(0);
  }, 60_000);
});
