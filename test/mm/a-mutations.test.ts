import { afterEach, describe, expect, it } from 'vitest';
import { configureInjection, MUTANT_FREE_BEFORE_START } from '../../src/checker/points.js';
import { cpuRead, cpuReadPages, cpuStats, cpuWrite, cpuWritePages } from '../../src/mm/cpu.js';
import { exitMmap } from '../../src/mm/exit.js';
import { FAULT_FLAG_WRITE, handleMmFault } from '../../src/mm/fault.js';
import { forkMm } from '../../src/mm/fork.js';
import {
  FR_ALLOCATED,
  MM_USERS,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_NONE,
  PMD_TYPE_TABLE,
  PTE_PROTNONE,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
  PUD_SIZE,
  VM_HUGEPAGE,
} from '../../src/mm/layout.js';
import { createMm, type MmStruct, vmaOrFlags } from '../../src/mm/mm.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  mmap,
  mprotect,
  munmap,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  remapPfnRange,
  vmInsertPage,
} from '../../src/mm/mmap.js';
import { MMU_NOTIFY_CLEAR, MMU_NOTIFY_UNMAP } from '../../src/mm/mmu-notifier.js';
import { pmdpGet, ptepGet, zapRangeNotify } from '../../src/mm/pgtable.js';
import { createPhysMem } from '../../src/mm/physmem.js';
import { hex, Recorder } from './a-helpers.js';

const RW = PROT_READ | PROT_WRITE;
const pg = (a: number) => a / PAGE_SIZE;
const pfnOf = (w: number) => w & 0xffffff;

function setup(opts: { size?: number; freeMode?: 'after-end' | 'after-clear' } = {}) {
  const phys = createPhysMem({ nframes: 8192, W: 4 });
  const mm = createMm(phys, { size: opts.size ?? 64 << 20, freeMode: opts.freeMode });
  const rec = new Recorder(mm);
  return { phys, mm, rec };
}

function anon(mm: MmStruct, len: number, addr?: number, flags = MAP_PRIVATE): number {
  const a = mmap(mm, {
    length: len,
    prot: RW,
    flags: flags | MAP_ANONYMOUS | (addr !== undefined ? MAP_FIXED : 0),
    addr,
  });
  expect(a).toBeGreaterThan(0);
  return a;
}

afterEach(() => configureInjection(0, false, 1));

describe('fork', () => {
  it('COW: PROTECTION_PAGE on the parent per COW VMA, shared refcounts, one-page CLEAR on write', () => {
    const { mm, phys, rec } = setup();
    const a = anon(mm, 8 * PAGE_SIZE);
    // never written: not copied (read-only, so it does not merge with `a`)
    const untouched = mmap(mm, {
      length: 4 * PAGE_SIZE,
      prot: PROT_READ,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
    });
    expect(cpuWritePages(mm, a, 4, (i, w) => i * 10 + w)).toBe(0);
    expect(cpuRead(mm, untouched)).toBe(0);
    const p0 = pfnOf(ptepGet(mm, pg(a)));
    rec.probe = () => [ptepGet(mm, pg(a))];
    const child = forkMm(mm);
    const crec = new Recorder(child);
    expect(rec.starts()).toEqual([`PROTECTION_PAGE ${hex(a)}-${hex(a + 8 * PAGE_SIZE)}`]);
    expect(rec.log[0]!.probe[0]).toBe(PTE_TYPE_PRESENT | PTE_WRITE | p0); // changed after start
    expect(rec.log[1]!.probe[0]).toBe(PTE_TYPE_PRESENT | p0);
    expect(ptepGet(child, pg(a))).toBe(PTE_TYPE_PRESENT | p0);
    expect(ptepGet(child, pg(untouched))).toBe(0);
    expect(phys.pageRefcount(p0)).toBe(2);
    expect(child.vmaCount).toBe(2);
    // the child writes: COW with a one-page CLEAR on the child; the parent keeps its data
    expect(cpuWrite(child, a, -1)).toBe(0);
    expect(crec.starts()).toEqual([`CLEAR ${hex(a)}-${hex(a + PAGE_SIZE)}`]);
    expect(cpuRead(mm, a)).toBe(0);
    expect(cpuRead(child, a)).toBe(-1);
    expect(phys.pageRefcount(p0)).toBe(1);
    // the parent's write now reuses its exclusively owned frame: no invalidation
    rec.clear();
    expect(cpuWrite(mm, a, 5)).toBe(0);
    expect(rec.log).toEqual([]);
    expect(ptepGet(mm, pg(a))).toBe(PTE_TYPE_PRESENT | PTE_WRITE | p0);
  });

  it('a shared anonymous mapping is not copied; both processes reach the same frames', () => {
    const { mm, rec } = setup();
    const a = anon(mm, 4 * PAGE_SIZE, undefined, MAP_SHARED);
    expect(cpuWrite(mm, a + PAGE_SIZE, 9)).toBe(0);
    const child = forkMm(mm);
    expect(rec.log).toEqual([]);
    expect(ptepGet(child, pg(a) + 1)).toBe(0);
    expect(cpuRead(child, a + PAGE_SIZE)).toBe(9);
    expect(cpuWrite(child, a + 2 * PAGE_SIZE, -7)).toBe(0);
    expect(cpuRead(mm, a + 2 * PAGE_SIZE)).toBe(-7);
    expect(pfnOf(ptepGet(child, pg(a) + 2))).toBe(pfnOf(ptepGet(mm, pg(a) + 2)));
  });
});

describe('munmap', () => {
  it('UNMAP over the range; PTE cleared after start; frames freed after end (after-end mode)', () => {
    const { mm, phys, rec } = setup();
    const a = anon(mm, 8 * PAGE_SIZE);
    cpuWritePages(mm, a, 8, () => 1);
    const pfn = pfnOf(ptepGet(mm, pg(a) + 2));
    const gen0 = phys.generation(pfn);
    rec.probe = () => [ptepGet(mm, pg(a) + 2), phys.frameState(pfn), phys.generation(pfn)];
    expect(munmap(mm, a + 2 * PAGE_SIZE, 3 * PAGE_SIZE)).toBe(0);
    expect(rec.starts()).toEqual([`UNMAP ${hex(a + 2 * PAGE_SIZE)}-${hex(a + 5 * PAGE_SIZE)}`]);
    const [start, end] = rec.log;
    expect(start!.probe).toEqual([PTE_TYPE_PRESENT | PTE_WRITE | pfn, FR_ALLOCATED | 1, gen0]);
    expect(end!.probe).toEqual([0, FR_ALLOCATED | 1, gen0]); // still allocated at end
    expect(phys.frameState(pfn)).toBe(0);
    expect(phys.generation(pfn)).toBe(gen0 + 1);
    expect(phys.lastFreeEvent(pfn)).toMatchObject({ event: MMU_NOTIFY_UNMAP, mmId: mm.id, page: pg(a) + 2 });
    expect(mm.vmaCount).toBe(2);
    expect(cpuRead(mm, a + 2 * PAGE_SIZE)).toBe(-14);
    expect(cpuRead(mm, a + 5 * PAGE_SIZE)).toBe(1);
    expect(munmap(mm, a + 100 * PAGE_SIZE, PAGE_SIZE)).toBe(0); // nothing mapped: no event
    expect(rec.log.length).toBe(2);
    expect(munmap(mm, a + 1, PAGE_SIZE)).toBe(-22);
  });

  it("'after-clear' mode frees between the clear and end", () => {
    const { mm, phys, rec } = setup({ freeMode: 'after-clear' });
    const a = anon(mm, PAGE_SIZE);
    cpuWrite(mm, a, 1);
    const pfn = pfnOf(ptepGet(mm, pg(a)));
    rec.probe = () => [phys.frameState(pfn)];
    munmap(mm, a, PAGE_SIZE);
    expect(rec.log.map((e) => e.probe[0])).toEqual([FR_ALLOCATED | 1, 0]);
  });

  it('mutant free-before-start: the PTE is clear and the frame freed before start', () => {
    const { mm, phys, rec } = setup();
    const a = anon(mm, PAGE_SIZE);
    cpuWrite(mm, a, 1);
    const pfn = pfnOf(ptepGet(mm, pg(a)));
    rec.probe = () => [ptepGet(mm, pg(a)), phys.generation(pfn)];
    configureInjection(MUTANT_FREE_BEFORE_START, false, 1);
    munmap(mm, a, PAGE_SIZE);
    expect(rec.log.map((e) => e.probe)).toEqual([
      [0, 1],
      [0, 1],
    ]);
  });

  it('a VMA split inside a THP splits it first (2 MiB CLEAR before the UNMAP)', () => {
    const { mm, phys, rec } = setup();
    const a = anon(mm, PMD_SIZE, 4 * PMD_SIZE);
    mm.mmapWriteLock();
    vmaOrFlags(mm, mm.vmaAt(pg(a)), VM_HUGEPAGE);
    mm.mmapWriteUnlock();
    expect(cpuWrite(mm, a, 3)).toBe(0);
    const head = pfnOf(pmdpGet(mm, a / PMD_SIZE));
    expect(pmdpGet(mm, a / PMD_SIZE)).toBe(PMD_TYPE_HUGE | PTE_WRITE | head);
    expect(munmap(mm, a + 256 * PAGE_SIZE, 256 * PAGE_SIZE)).toBe(0);
    expect(rec.starts()).toEqual([
      `CLEAR ${hex(a)}-${hex(a + PMD_SIZE)}`,
      `UNMAP ${hex(a + 256 * PAGE_SIZE)}-${hex(a + PMD_SIZE)}`,
    ]);
    expect(pmdpGet(mm, a / PMD_SIZE)).toBe(PMD_TYPE_TABLE);
    expect(ptepGet(mm, pg(a) + 1)).toBe(PTE_TYPE_PRESENT | PTE_WRITE | (head + 1));
    expect(phys.pageRefcount(head + 1)).toBe(1);
    expect(phys.frameState(head + 300)).toBe(0);
    expect(cpuRead(mm, a)).toBe(3);
    // munmap of the whole rest drops the table
    expect(munmap(mm, a, PMD_SIZE)).toBe(0);
    expect(pmdpGet(mm, a / PMD_SIZE)).toBe(PMD_TYPE_NONE);
    expect(phys.frameState(head)).toBe(0);
  });
});

describe('mprotect', () => {
  it('PROTECTION_VMA per 1 GiB step with a populated PMD, from that PMD; PTEs lose write / become protnone', () => {
    const { mm, rec } = setup({ size: 4 * PUD_SIZE });
    const base = PUD_SIZE - 4 * PMD_SIZE;
    const a = mmap(mm, {
      addr: base,
      length: 3 * PUD_SIZE,
      prot: RW,
      flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
    });
    expect(a).toBe(base);
    expect(cpuWrite(mm, base + 2 * PMD_SIZE + 5 * PAGE_SIZE, 1)).toBe(0); // step 0
    expect(cpuWrite(mm, 2 * PUD_SIZE + 7 * PMD_SIZE, 1)).toBe(0); // step 2
    expect(mprotect(mm, base + PAGE_SIZE, 3 * PUD_SIZE - 2 * PAGE_SIZE, PROT_READ)).toBe(0);
    expect(rec.starts()).toEqual([
      `PROTECTION_VMA ${hex(base + 2 * PMD_SIZE)}-${hex(PUD_SIZE)}`,
      `PROTECTION_VMA ${hex(2 * PUD_SIZE + 7 * PMD_SIZE)}-${hex(3 * PUD_SIZE)}`,
    ]);
    expect(mm.vmaCount).toBe(3);
    const w = ptepGet(mm, pg(base + 2 * PMD_SIZE) + 5);
    expect(w & PTE_WRITE).toBe(0);
    rec.clear();
    expect(mprotect(mm, base + PAGE_SIZE, PAGE_SIZE, PROT_NONE)).toBe(0); // nothing populated there
    expect(rec.log).toEqual([]);
    expect(mprotect(mm, base + 2 * PMD_SIZE, PMD_SIZE, PROT_NONE)).toBe(0);
    expect(ptepGet(mm, pg(base + 2 * PMD_SIZE) + 5)).toBe(w | PTE_PROTNONE);
    expect(cpuRead(mm, base + 2 * PMD_SIZE + 5 * PAGE_SIZE)).toBe(-14);
    expect(mprotect(mm, base + 2 * PMD_SIZE, PMD_SIZE, RW)).toBe(0);
    expect(ptepGet(mm, pg(base + 2 * PMD_SIZE) + 5)).toBe(w); // readable, not yet writable
    expect(cpuRead(mm, base + 2 * PMD_SIZE + 5 * PAGE_SIZE)).toBe(1);
    expect(mprotect(mm, 4 * PUD_SIZE - 2 * PMD_SIZE, PAGE_SIZE, RW)).toBe(-12); // hole
  });
});

describe('vma_merge', () => {
  it('mprotect splits and merges back; MAP_FIXED churn keeps one VMA', () => {
    const { mm } = setup();
    const a = anon(mm, 8 * PAGE_SIZE);
    expect(mprotect(mm, a + 3 * PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(mm.vmaCount).toBe(3);
    expect(mprotect(mm, a + 3 * PAGE_SIZE, PAGE_SIZE, RW)).toBe(0);
    expect(mm.vmaCount).toBe(1);
    for (let i = 0; i < 20; i++) {
      expect(munmap(mm, a + (i % 8) * PAGE_SIZE, PAGE_SIZE)).toBe(0);
      expect(anon(mm, PAGE_SIZE, a + (i % 8) * PAGE_SIZE)).toBe(a + (i % 8) * PAGE_SIZE);
    }
    expect(mm.vmaCount).toBe(1);
    expect(mm.vmaEndAddr(0) - mm.vmaStartAddr(0)).toBe(8 * PAGE_SIZE);
  });
});

describe('remap_pfn_range, vm_insert_page, exit', () => {
  it('maps raw PFNs special and inserted frames as normal pages', () => {
    const { mm, phys } = setup();
    const a = mmap(mm, { length: 2 * PAGE_SIZE, prot: RW, flags: MAP_SHARED | MAP_ANONYMOUS });
    expect(remapPfnRange(mm, a, 0xabcde, 1)).toBe(0);
    expect(ptepGet(mm, pg(a))).toBe(PTE_TYPE_PRESENT | 0x10000000 | PTE_WRITE | 0xabcde);
    const b = mmap(mm, { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_PRIVATE | MAP_ANONYMOUS });
    const f = phys.allocPage();
    expect(vmInsertPage(mm, b, f)).toBe(0);
    expect(ptepGet(mm, pg(b))).toBe(PTE_TYPE_PRESENT | f);
    expect(phys.pageRefcount(f)).toBe(2);
    expect(vmInsertPage(mm, b, f)).toBe(-16);
  });

  it('exit: RELEASE, then UNMAP over everything; every frame freed; mm_users 0', () => {
    const { mm, phys, rec } = setup();
    const free0 = phys.freeFrames;
    const a = anon(mm, 16 * PAGE_SIZE);
    cpuWritePages(mm, a, 16, () => 2);
    const s = anon(mm, 2 * PAGE_SIZE, undefined, MAP_SHARED);
    cpuWrite(mm, s, 1);
    exitMmap(mm);
    expect(rec.log.map((e) => `${e.kind} ${e.event}`)).toEqual([
      'release RELEASE',
      'start UNMAP',
      'end UNMAP',
    ]);
    expect(rec.log[1]!.end).toBe(mm.size);
    expect(phys.freeFrames).toBe(free0);
    expect(Atomics.load(mm.ctl, MM_USERS)).toBe(0);
    expect(mm.vmaCount).toBe(0);
  });
});

describe('lost-update accounting', () => {
  it('increments + copied = live + discarded after a mix of operations', () => {
    const { mm, phys } = setup();
    cpuStats.writeIncrements = 0;
    const a = anon(mm, 64 * PAGE_SIZE);
    const s = anon(mm, 8 * PAGE_SIZE, undefined, MAP_SHARED);
    expect(cpuWritePages(mm, a, 64, (i) => i)).toBe(0);
    const SEED = 0x2545f491;
    let seed = SEED;
    const rnd = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    let child: MmStruct | null = null;
    for (let op = 0; op < 400; op++) {
      const r = rnd(10);
      const page = rnd(64);
      if (r < 5) cpuWrite(child && rnd(2) ? child : mm, a + page * PAGE_SIZE, op);
      else if (r === 5) cpuWrite(mm, s + rnd(8) * PAGE_SIZE, op);
      else if (r === 6)
        munmap(mm, a + page * PAGE_SIZE, PAGE_SIZE) === 0 &&
          mmap(mm, {
            addr: a + page * PAGE_SIZE,
            length: PAGE_SIZE,
            prot: RW,
            flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
          });
      else if (r === 7 && !child && op > 100) child = forkMm(mm);
      else if (r === 8) {
        mm.mmapReadLock();
        zapRangeNotify(mm, a + page * PAGE_SIZE, a + (page + 2) * PAGE_SIZE, MMU_NOTIFY_CLEAR);
        mm.mmapReadUnlock();
      } else if (r === 9) {
        mm.mmapReadLock();
        handleMmFault(mm, a + page * PAGE_SIZE, FAULT_FLAG_WRITE);
        mm.mmapReadUnlock();
      }
    }
    const lhs = cpuStats.writeIncrements + phys.copied;
    expect(lhs, `seed ${SEED}`).toBe(phys.liveWriteCount() + phys.discarded);
    expect(phys.copied).toBeGreaterThan(0);
    expect(phys.discarded).toBeGreaterThan(0);
    if (child) exitMmap(child);
    exitMmap(mm);
    expect(cpuStats.writeIncrements + phys.copied).toBe(phys.discarded);
    expect(cpuReadPages(mm, a, 1)).toBe(-14);
  });
});
