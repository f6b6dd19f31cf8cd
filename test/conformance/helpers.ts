/** Shared set-up of the conformance scenarios (spec/conformance.md): W = 1024, two devices. */
import { expect } from 'vitest';
import {
  createViolationLog,
  deviceWriteIncrements,
  lostUpdateEquation,
  readViolations,
  type ViolationLog,
} from '../../src/checker/oracles.js';
import { dmirrorAuditQuiescent } from '../../src/driver/audit.js';
import {
  type DmirrorDevice,
  type DmirrorDeviceOptions,
  type DmirrorFile,
  dmirrorDriver,
} from '../../src/driver/dmirror.js';
import { cpuReadPages, cpuStats, cpuWritePages } from '../../src/mm/cpu.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { createMm, type MmStruct } from '../../src/mm/mm.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, mmap, PROT_READ, PROT_WRITE } from '../../src/mm/mmap.js';
import { createPhysMem, type PhysMem } from '../../src/mm/physmem.js';

export const W = 1024;
export const NPAGES = 1024;

export interface World {
  phys: PhysMem;
  mm: MmStruct;
  log: ViolationLog;
  dev0: DmirrorDevice;
  dev1: DmirrorDevice;
  f0: DmirrorFile;
  f1: DmirrorFile;
  /** every file opened, for the audits */
  files: DmirrorFile[];
  /** write increments made by this thread before the world existed */
  base: number;
}

export function setup(opts: DmirrorDeviceOptions = {}, nframes = 16384): World {
  const phys = createPhysMem({ W, nframes });
  const mm = createMm(phys, { size: 1 << 28 });
  const log = createViolationLog(64);
  const env = { phys, log };
  const dev0 = dmirrorDriver.createDevice(env, opts);
  const dev1 = dmirrorDriver.createDevice(env, opts);
  const f0 = open(dev0, mm);
  const f1 = open(dev1, mm);
  return {
    phys,
    mm,
    log,
    dev0,
    dev1,
    f0,
    f1,
    files: [f0, f1],
    base: cpuStats.writeIncrements + deviceWriteIncrements(),
  };
}

export function open(dev: DmirrorDevice, mm: MmStruct): DmirrorFile {
  const f = dev.open(mm);
  if (typeof f === 'number') throw new Error(`open failed: ${f}`);
  return f;
}

/** mmap anonymous memory; returns the address (asserts success). */
export function mapAnon(
  mm: MmStruct,
  npages: number,
  prot = PROT_READ | PROT_WRITE,
  flags = MAP_PRIVATE,
  align?: number,
): number {
  const a = mmap(mm, { length: npages * PAGE_SIZE, prot, flags: flags | MAP_ANONYMOUS, align });
  expect(a).toBeGreaterThan(0);
  return a;
}

/** "Pattern i" (+c): word k of the buffer holds k + c; sign -1 gives "-i". */
export function pattern(npages: number, c = 0, sign = 1): Int32Array {
  const b = new Int32Array(npages * W);
  for (let k = 0; k < b.length; k++) b[k] = (sign * k + c) | 0;
  return b;
}

/** The CPU writes the pattern into [addr, +npages) (word k of the buffer starting at `fromPage`). */
export function cpuFill(mm: MmStruct, addr: number, npages: number, c = 0, sign = 1, fromPage = 0): void {
  const r = cpuWritePages(
    mm,
    addr + fromPage * PAGE_SIZE,
    npages - fromPage,
    (i, w) => (sign * ((i + fromPage) * W + w) + c) | 0,
  );
  expect(r).toBe(0);
}

/** What the CPU reads in [addr, +npages). */
export function cpuReadAll(mm: MmStruct, addr: number, npages: number): Int32Array {
  const r = cpuReadPages(mm, addr, npages);
  if (typeof r === 'number') throw new Error(`cpuReadPages failed: ${r}`);
  return r;
}

/** First differing word, for short failure messages; -1 if equal. */
export function firstDiff(a: Int32Array, b: Int32Array): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

export function expectSame(a: Int32Array, b: Int32Array): void {
  const d = firstDiff(a, b);
  expect(d, d >= 0 ? `word ${d}: ${a[d]} vs ${b[d]}` : 'length').toBe(-1);
}

/**
 * The oracles at the end of a scenario: no violation logged, mirror coherence and protocol sanity
 * at this quiescent point, and the lost-update equation (single-threaded scenarios: this thread's
 * increments are everyone's; `extraIncrements` adds another thread's).
 */
export function expectClean(w: World, mms: MmStruct[] = [w.mm], extraIncrements = 0): void {
  for (const mm of mms) dmirrorAuditQuiescent(mm, w.files, w.log);
  const v = readViolations(w.log);
  expect(v.map((x) => x.text)).toEqual([]);
  const incs = cpuStats.writeIncrements + deviceWriteIncrements() - w.base + extraIncrements;
  const lu = lostUpdateEquation({
    increments: incs,
    copied: w.phys.copied,
    live: w.phys.liveWriteCount(),
    discarded: w.phys.discarded,
  });
  expect(lu.difference).toBe(0);
}
