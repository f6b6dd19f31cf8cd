import { describe, expect, it } from 'vitest';
import { cpuRead, cpuStats, cpuWrite, cpuWritePages } from '../../src/mm/cpu.js';
import { collapseHugePage } from '../../src/mm/khugepaged.js';
import {
  FR_ALLOCATED,
  FR_LAZYFREE,
  FR_POISON,
  MM_MIGRATION_WAIT,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_MIGRATION,
  PMD_TYPE_TABLE,
  PTE_PROTNONE,
  PTE_SPECIAL,
  PTE_TYPE_HWPOISON,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
  PTE_WRITE,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VMA_END,
  VMA_FLAGS,
  VMA_START,
} from '../../src/mm/layout.js';
import { MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, madvise } from '../../src/mm/madvise.js';
import { memoryFailure } from '../../src/mm/memory-failure.js';
import { registerDevPagemapOps, unregisterDevPagemapOps } from '../../src/mm/memremap.js';
import { migrateRangeToDevice, migrateToRamOnePage } from '../../src/mm/migrate-device.js';
import { createMm } from '../../src/mm/mm.js';
import { MAP_HUGETLB, MAP_SHARED, mmap, PROT_READ } from '../../src/mm/mmap.js';
import { EAGAIN, EBUSY, EFAULT, EINVAL, ENOMEM } from '../../src/mm/mmu-notifier.js';
import { changeProtNuma, migratePages } from '../../src/mm/numa.js';
import { oomReap } from '../../src/mm/oom.js';
import { pmdpGet, ptepGet } from '../../src/mm/pgtable.js';
import { reclaimStats, swapOut } from '../../src/mm/reclaim.js';
import { splitHugePage } from '../../src/mm/thp.js';
import { clearRefs, writebackFile } from '../../src/mm/writeback.js';
import { anonMap, BRecorder, bSetup, hex, pg, RW } from './b-helpers.js';

const P = PAGE_SIZE;
const A = 0x400000; // 4 MiB: 2 MiB aligned, above MMAP_MIN_ADDR
const B = 0x800000;
const pfnOf = (w: number) => w & 0xffffff;
const allocated = (phys: { frameState(p: number): number }, pfn: number) =>
  (phys.frameState(pfn) & FR_ALLOCATED) !== 0 ? 1 : 0;

/** A 2 MiB THP at B, written by the CPU (VM_HUGEPAGE, PMD none before the write). */
function thpAt(mm: Parameters<typeof cpuWrite>[0], addr = B): number {
  anonMap(mm, PMD_SIZE, addr);
  expect(madvise(mm, addr, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  expect(cpuWrite(mm, addr, 77)).toBe(0);
  const w = pmdpGet(mm, addr / PMD_SIZE);
  expect(w & 0x07000000).toBe(PMD_TYPE_HUGE);
  return pfnOf(w);
}

describe('MADV_DONTNEED', () => {
  it('one CLEAR per VMA part, PTE unchanged at start and clear at end, frames freed after end', () => {
    const { mm, phys, rec } = bSetup();
    const a = anonMap(mm, 8 * P, A);
    expect(cpuWritePages(mm, a, 4, (i, w) => i * 10 + w + 1)).toBe(0);
    const pfn = [0, 1, 2, 3].map((i) => pfnOf(ptepGet(mm, pg(a) + i)));
    const gen1 = phys.generation(pfn[1]!);
    rec.probe = () => [ptepGet(mm, pg(a) + 1), allocated(phys, pfn[1]!)];
    const disc0 = phys.discarded;
    expect(madvise(mm, a + P, 2 * P, MADV_DONTNEED)).toBe(0);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(a + P)}-${hex(a + 3 * P)}`,
      `end CLEAR ${hex(a + P)}-${hex(a + 3 * P)}`,
    ]);
    expect(rec.log[0]!.blockable).toBe(true);
    expect(rec.log[0]!.owner).toBe(-1);
    expect(rec.log[0]!.probe).toEqual([PTE_TYPE_PRESENT | PTE_WRITE | pfn[1]!, 1]);
    expect(rec.log[1]!.probe).toEqual([0, 1]); // cleared, still allocated at end ('after-end')
    expect(ptepGet(mm, pg(a))).toBe(PTE_TYPE_PRESENT | PTE_WRITE | pfn[0]!);
    expect(ptepGet(mm, pg(a) + 1)).toBe(0);
    expect(ptepGet(mm, pg(a) + 2)).toBe(0);
    expect(ptepGet(mm, pg(a) + 3)).toBe(PTE_TYPE_PRESENT | PTE_WRITE | pfn[3]!);
    expect(allocated(phys, pfn[1]!)).toBe(0);
    expect(phys.generation(pfn[1]!)).toBe(gen1 + 1);
    expect(phys.discarded - disc0).toBe(2);
    expect(cpuRead(mm, a + P, 1)).toBe(0); // a fresh zero page
  });

  it("'after-clear' mode frees the frame before end", () => {
    const { mm, phys, rec } = bSetup({ freeMode: 'after-clear' });
    const a = anonMap(mm, 2 * P, A);
    expect(cpuWrite(mm, a, 5)).toBe(0);
    const p0 = pfnOf(ptepGet(mm, pg(a)));
    rec.probe = () => [ptepGet(mm, pg(a)), allocated(phys, p0)];
    expect(madvise(mm, a, 2 * P, MADV_DONTNEED)).toBe(0);
    expect(rec.log.map((e) => e.probe)).toEqual([
      [PTE_TYPE_PRESENT | PTE_WRITE | p0, 1],
      [0, 0],
    ]);
  });

  it('-EINVAL on hugetlb (no event); -ENOMEM over a hole after advising both VMAs', () => {
    const { mm, rec } = bSetup();
    const h = mmap(mm, { addr: B, length: PMD_SIZE, prot: RW, flags: MAP_HUGETLB | 0x22 | 0x10 });
    expect(h).toBe(B);
    expect(madvise(mm, h, PMD_SIZE, MADV_DONTNEED)).toBe(-EINVAL);
    expect(madvise(mm, h, PMD_SIZE, MADV_FREE)).toBe(-EINVAL);
    expect(rec.log).toEqual([]);
    const a = anonMap(mm, 2 * P, A);
    const c = anonMap(mm, 2 * P, A + 3 * P);
    expect(madvise(mm, a, 5 * P, MADV_DONTNEED)).toBe(-ENOMEM);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(a)}-${hex(a + 2 * P)}`,
      `end CLEAR ${hex(a)}-${hex(a + 2 * P)}`,
      `start CLEAR ${hex(c)}-${hex(c + 2 * P)}`,
      `end CLEAR ${hex(c)}-${hex(c + 2 * P)}`,
    ]);
    expect(madvise(mm, a + 1, P, MADV_DONTNEED)).toBe(-EINVAL);
    expect(madvise(mm, a, P, 99)).toBe(-EINVAL);
  });
});

describe('MADV_FREE and swap-out', () => {
  it('FREE drops swap entries, keeps present PTEs lazy-free; swap-out discards lazy frames, swaps written ones', () => {
    const { mm, phys, rec } = bSetup();
    const a = anonMap(mm, 4 * P, A);
    expect(cpuWritePages(mm, a, 3, (i) => 100 + i)).toBe(0); // pages 0..2, page 3 untouched
    const p = [0, 1, 2].map((i) => pfnOf(ptepGet(mm, pg(a) + i)));
    // swap page 2 out first: CLEAR, PTE -> swap entry inside it, frame freed after end
    rec.probe = () => [ptepGet(mm, pg(a) + 2), allocated(phys, p[2]!)];
    expect(swapOut(mm, a + 2 * P, a + 3 * P)).toBe(1);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(a + 2 * P)}-${hex(a + 3 * P)}`,
      `end CLEAR ${hex(a + 2 * P)}-${hex(a + 3 * P)}`,
    ]);
    const swp = ptepGet(mm, pg(a) + 2);
    expect(swp & 0x07000000).toBe(PTE_TYPE_SWAP);
    const slot = swp & 0xffffff;
    expect(rec.log[0]!.probe).toEqual([PTE_TYPE_PRESENT | PTE_WRITE | p[2]!, 1]);
    expect(rec.log[1]!.probe).toEqual([PTE_TYPE_SWAP | slot, 1]);
    expect(allocated(phys, p[2]!)).toBe(0);
    expect(phys.swapReadWord(slot, 0)).toBe(102);
    expect(phys.swapWriteCount(slot)).toBe(1);

    rec.clear();
    rec.probe = () => [ptepGet(mm, pg(a)), ptepGet(mm, pg(a) + 2)];
    const disc0 = phys.discarded;
    expect(madvise(mm, a, 4 * P, MADV_FREE)).toBe(0);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(a)}-${hex(a + 4 * P)}`,
      `end CLEAR ${hex(a)}-${hex(a + 4 * P)}`,
    ]);
    expect(rec.log[0]!.probe).toEqual([PTE_TYPE_PRESENT | PTE_WRITE | p[0]!, PTE_TYPE_SWAP | slot]);
    expect(rec.log[1]!.probe).toEqual([PTE_TYPE_PRESENT | PTE_WRITE | p[0]!, 0]); // same PTE; swap dropped
    expect(phys.discarded - disc0).toBe(1); // the swap slot's content
    expect(phys.swapCount(slot)).toBe(0);
    expect(phys.frameState(p[0]!) & FR_LAZYFREE).toBe(FR_LAZYFREE);
    expect(phys.frameState(p[1]!) & FR_LAZYFREE).toBe(FR_LAZYFREE);

    // a CPU write cancels lazy-free on page 1
    expect(cpuWrite(mm, a + P, 7, 1)).toBe(0);
    expect(phys.frameState(p[1]!) & FR_LAZYFREE).toBe(0);
    rec.clear();
    rec.probe = () => [ptepGet(mm, pg(a)), ptepGet(mm, pg(a) + 1)];
    const lazy0 = reclaimStats.lazyDiscarded;
    expect(swapOut(mm, a, a + 4 * P)).toBe(2);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(a)}-${hex(a + P)}`,
      `end CLEAR ${hex(a)}-${hex(a + P)}`,
      `start CLEAR ${hex(a + P)}-${hex(a + 2 * P)}`,
      `end CLEAR ${hex(a + P)}-${hex(a + 2 * P)}`,
    ]);
    expect(reclaimStats.lazyDiscarded - lazy0).toBe(1);
    expect(ptepGet(mm, pg(a))).toBe(0); // discarded, left none
    expect(phys.discarded - disc0).toBe(2); // + page 0's counter
    const swp1 = ptepGet(mm, pg(a) + 1);
    expect(swp1 & 0x07000000).toBe(PTE_TYPE_SWAP);
    expect(phys.swapWriteCount(swp1 & 0xffffff)).toBe(2);
    // swap-in by a read: content back, read-only
    expect(cpuRead(mm, a + P, 1)).toBe(7);
    expect(cpuRead(mm, a + P, 0)).toBe(101);
    expect(ptepGet(mm, pg(a) + 1) & (0x07000000 | PTE_WRITE)).toBe(PTE_TYPE_PRESENT);
    expect(cpuRead(mm, a, 0)).toBe(0); // the discarded page reads as fresh zeroes
  });

  it('swap-out of a THP splits it first (2 MiB CLEAR), then one CLEAR per page', () => {
    const { mm, rec } = bSetup();
    const head = thpAt(mm);
    rec.clear();
    expect(swapOut(mm, B, B + 2 * P)).toBe(2);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `end CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `start CLEAR ${hex(B)}-${hex(B + P)}`,
      `end CLEAR ${hex(B)}-${hex(B + P)}`,
      `start CLEAR ${hex(B + P)}-${hex(B + 2 * P)}`,
      `end CLEAR ${hex(B + P)}-${hex(B + 2 * P)}`,
    ]);
    expect(ptepGet(mm, pg(B) + 2)).toBe(PTE_TYPE_PRESENT | PTE_WRITE | (head + 2));
    expect(cpuRead(mm, B)).toBe(77);
  });
});

describe('MADV_FREE on a THP', () => {
  it('a partly covered THP is split inside the FREE (nested CLEAR); a whole one is marked as a unit', () => {
    const { mm, phys, rec } = bSetup();
    const head = thpAt(mm);
    rec.clear();
    expect(madvise(mm, B, 2 * P, MADV_FREE)).toBe(0);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(B)}-${hex(B + 2 * P)}`,
      `start CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `end CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `end CLEAR ${hex(B)}-${hex(B + 2 * P)}`,
    ]);
    expect(ptepGet(mm, pg(B))).toBe(PTE_TYPE_PRESENT | PTE_WRITE | head);
    expect(phys.frameState(head) & FR_LAZYFREE).toBe(FR_LAZYFREE);
    expect(phys.frameState(head + 2) & FR_LAZYFREE).toBe(0);

    const C = B + PMD_SIZE;
    const head2 = thpAt(mm, C);
    rec.clear();
    const disc0 = phys.discarded;
    expect(madvise(mm, C, PMD_SIZE, MADV_FREE)).toBe(0);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(C)}-${hex(C + PMD_SIZE)}`,
      `end CLEAR ${hex(C)}-${hex(C + PMD_SIZE)}`,
    ]);
    expect(pmdpGet(mm, C / PMD_SIZE)).toBe(PMD_TYPE_HUGE | PTE_WRITE | head2);
    expect(phys.frameState(head2) & FR_LAZYFREE).toBe(FR_LAZYFREE);
    // reclaim: split, then every still lazy-free subpage is discarded and its PTE left none
    expect(swapOut(mm, C, C + 2 * P)).toBe(2);
    expect(ptepGet(mm, pg(C))).toBe(0);
    expect(ptepGet(mm, pg(C) + 1)).toBe(0);
    expect(ptepGet(mm, pg(C) + 2)).toBe(PTE_TYPE_PRESENT | PTE_WRITE | (head2 + 2));
    expect(phys.discarded - disc0).toBe(1); // the one write to subpage 0
  });
});

describe('MADV_HUGEPAGE / MADV_NOHUGEPAGE', () => {
  it('splits the VMA record at the edges, sets the flag, merges equal neighbours back; no event', () => {
    const { mm, rec } = bSetup();
    const a = anonMap(mm, 8 * P, A);
    const f0 = mm.vmaField(0, VMA_FLAGS);
    expect(madvise(mm, a + 2 * P, 2 * P, MADV_HUGEPAGE)).toBe(0);
    expect(mm.vmaCount).toBe(3);
    const rows = () =>
      [0, 1, 2]
        .slice(0, mm.vmaCount)
        .map((i) => [mm.vmaField(i, VMA_START), mm.vmaField(i, VMA_END), mm.vmaField(i, VMA_FLAGS)]);
    expect(rows()).toEqual([
      [pg(a), pg(a) + 2, f0],
      [pg(a) + 2, pg(a) + 4, f0 | VM_HUGEPAGE],
      [pg(a) + 4, pg(a) + 8, f0],
    ]);
    expect(madvise(mm, a + 2 * P, 2 * P, MADV_NOHUGEPAGE)).toBe(0);
    expect(rows()[1]![2]).toBe(f0 | VM_NOHUGEPAGE);
    expect(madvise(mm, a, 8 * P, MADV_HUGEPAGE)).toBe(0);
    expect(rows()).toEqual([[pg(a), pg(a) + 8, f0 | VM_HUGEPAGE]]);
    expect(rec.log).toEqual([]);
  });
});

describe('NUMA hinting and page migration', () => {
  it('PROTECTION_VMA per VMA from the first populated PMD; PTEs and huge PMDs protnone; a fault restores them', () => {
    const { mm, rec } = bSetup();
    const a = anonMap(mm, 4 * P, A);
    expect(cpuWrite(mm, a, 1)).toBe(0);
    expect(cpuRead(mm, a + P)).toBe(0); // zero page
    const p0 = pfnOf(ptepGet(mm, pg(a)));
    const head = thpAt(mm);
    anonMap(mm, 4 * P, 0x600000); // never touched: no PMD, no event
    rec.clear();
    rec.probe = (r) => (r.start === a ? [ptepGet(mm, pg(a))] : [pmdpGet(mm, B / PMD_SIZE)]);
    expect(changeProtNuma(mm, 0, 0xa00000)).toBe(1 + 512);
    expect(rec.calls()).toEqual([
      `start PROTECTION_VMA ${hex(a)}-${hex(a + 4 * P)}`,
      `end PROTECTION_VMA ${hex(a)}-${hex(a + 4 * P)}`,
      `start PROTECTION_VMA ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `end PROTECTION_VMA ${hex(B)}-${hex(B + PMD_SIZE)}`,
    ]);
    expect(rec.log.map((e) => e.probe[0])).toEqual([
      PTE_TYPE_PRESENT | PTE_WRITE | p0,
      PTE_TYPE_PRESENT | PTE_WRITE | PTE_PROTNONE | p0,
      PMD_TYPE_HUGE | PTE_WRITE | head,
      PMD_TYPE_HUGE | PTE_WRITE | PTE_PROTNONE | head,
    ]);
    expect(ptepGet(mm, pg(a) + 1)).toBe(PTE_TYPE_PRESENT | PTE_SPECIAL); // the zero page is skipped
    rec.clear();
    expect(cpuRead(mm, a)).toBe(1);
    expect(ptepGet(mm, pg(a))).toBe(PTE_TYPE_PRESENT | PTE_WRITE | p0); // saved write restored
    expect(cpuWrite(mm, B + 3 * P, 9)).toBe(0);
    expect(pmdpGet(mm, B / PMD_SIZE)).toBe(PMD_TYPE_HUGE | PTE_WRITE | head);
    expect(rec.log).toEqual([]); // restoring adds access: no invalidation
  });

  it('migration: CLEAR brackets only PTE -> migration entry; then new frame, content and counter moved', () => {
    const { mm, phys, rec } = bSetup();
    const a = anonMap(mm, 2 * P, A);
    expect(cpuWritePages(mm, a, 2, (i, w) => 1000 * i + w)).toBe(0);
    const old = [0, 1].map((i) => pfnOf(ptepGet(mm, pg(a) + i)));
    const g0 = phys.generation(old[0]!);
    const wait0 = Atomics.load(mm.ctl, MM_MIGRATION_WAIT);
    rec.probe = () => [ptepGet(mm, pg(a)), allocated(phys, old[0]!)];
    expect(migratePages(mm, a, a + 2 * P)).toBe(2);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(a)}-${hex(a + P)}`,
      `end CLEAR ${hex(a)}-${hex(a + P)}`,
      `start CLEAR ${hex(a + P)}-${hex(a + 2 * P)}`,
      `end CLEAR ${hex(a + P)}-${hex(a + 2 * P)}`,
    ]);
    expect(rec.log[0]!.probe).toEqual([PTE_TYPE_PRESENT | PTE_WRITE | old[0]!, 1]);
    expect(rec.log[1]!.probe).toEqual([PTE_TYPE_MIGRATION | PTE_WRITE | old[0]!, 1]);
    const n0 = pfnOf(ptepGet(mm, pg(a)));
    expect(n0).not.toBe(old[0]);
    expect(ptepGet(mm, pg(a))).toBe(PTE_TYPE_PRESENT | PTE_WRITE | n0);
    expect(rec.log[2]!.probe[0]).toBe(PTE_TYPE_PRESENT | PTE_WRITE | n0); // repointed with no event
    expect(phys.generation(old[0]!)).toBe(g0 + 1); // freed (and reused by page 1's copy: LIFO)
    expect(pfnOf(ptepGet(mm, pg(a) + 1))).toBe(old[0]);
    expect(allocated(phys, old[1]!)).toBe(0);
    expect(phys.frames.wcount[n0]).toBe(1);
    expect(Atomics.load(mm.ctl, MM_MIGRATION_WAIT) - wait0).toBe(2);
    expect(cpuRead(mm, a + P, 3)).toBe(1003);
  });

  it('a THP becomes a PMD migration entry inside a 2 MiB CLEAR, then a new THP', () => {
    const { mm, phys, rec } = bSetup();
    const head = thpAt(mm);
    rec.clear();
    rec.probe = () => [pmdpGet(mm, B / PMD_SIZE)];
    expect(migratePages(mm, B, B + P)).toBe(512);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `end CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
    ]);
    expect(rec.log[1]!.probe[0]).toBe(PMD_TYPE_MIGRATION | PTE_WRITE | head);
    const w = pmdpGet(mm, B / PMD_SIZE);
    expect(w & ~0xffffff).toBe(PMD_TYPE_HUGE | PTE_WRITE);
    expect(pfnOf(w)).not.toBe(head);
    expect(allocated(phys, head)).toBe(0);
    expect(cpuRead(mm, B)).toBe(77);
  });
});

describe('writeback and clear_refs', () => {
  it('page_mkclean: one PROTECTION_PAGE per shared mapping of a dirty page, PTE loses write', () => {
    const { mm, phys, rec } = bSetup();
    const mm2 = createMm(phys, { size: 64 << 20 });
    const rec2 = new BRecorder(mm2);
    const file = phys.createFile(4);
    const fa = mmap(mm, { addr: A, length: 4 * P, prot: RW, flags: MAP_SHARED | 0x10, file });
    const fb = mmap(mm2, { addr: 0x600000, length: 4 * P, prot: RW, flags: MAP_SHARED | 0x10, file });
    const fp = mmap(mm, { addr: B, length: 4 * P, prot: PROT_READ, flags: 0x02 | 0x10, file }); // private
    expect([fa, fb, fp]).toEqual([A, 0x600000, B]);
    expect(cpuWrite(mm, fa, 42)).toBe(0);
    expect(cpuRead(mm2, fb)).toBe(42);
    expect(cpuRead(mm, fp)).toBe(42);
    const pfn = pfnOf(ptepGet(mm, pg(fa)));
    rec.clear();
    rec.probe = () => [ptepGet(mm, pg(fa))];
    expect(writebackFile(file, [mm, mm2])).toBe(1);
    expect(rec.calls()).toEqual([
      `start PROTECTION_PAGE ${hex(fa)}-${hex(fa + P)}`,
      `end PROTECTION_PAGE ${hex(fa)}-${hex(fa + P)}`,
    ]);
    expect(rec2.calls()).toEqual([
      `start PROTECTION_PAGE ${hex(fb)}-${hex(fb + P)}`,
      `end PROTECTION_PAGE ${hex(fb)}-${hex(fb + P)}`,
    ]);
    expect(rec.log.map((e) => e.probe[0])).toEqual([
      PTE_TYPE_PRESENT | PTE_WRITE | pfn,
      PTE_TYPE_PRESENT | pfn,
    ]);
    expect(ptepGet(mm2, pg(fb))).toBe(PTE_TYPE_PRESENT | pfn);
    expect(ptepGet(mm, pg(fp))).toBe(PTE_TYPE_PRESENT | pfn);
    rec.clear();
    rec2.clear();
    expect(writebackFile(file, [mm, mm2])).toBe(0); // clean now: no event
    expect(rec.log.length + rec2.log.length).toBe(0);
  });

  it('clear_refs: one SOFT_DIRTY over the whole space; present PTEs and huge PMDs lose write', () => {
    const { mm, rec } = bSetup();
    const a = anonMap(mm, 4 * P, A);
    expect(cpuWritePages(mm, a, 2, () => 3)).toBe(0);
    expect(cpuRead(mm, a + 2 * P)).toBe(0);
    const head = thpAt(mm);
    const p0 = pfnOf(ptepGet(mm, pg(a)));
    rec.clear();
    rec.probe = () => [ptepGet(mm, pg(a))];
    expect(clearRefs(mm)).toBe(3);
    expect(rec.calls()).toEqual([
      `start SOFT_DIRTY 0x0-${hex(64 << 20)}`,
      `end SOFT_DIRTY 0x0-${hex(64 << 20)}`,
    ]);
    expect(rec.log.map((e) => e.probe[0])).toEqual([
      PTE_TYPE_PRESENT | PTE_WRITE | p0,
      PTE_TYPE_PRESENT | p0,
    ]);
    expect(pmdpGet(mm, B / PMD_SIZE)).toBe(PMD_TYPE_HUGE | head);
    expect(ptepGet(mm, pg(a) + 2)).toBe(PTE_TYPE_PRESENT | PTE_SPECIAL);
    expect(cpuWrite(mm, a, 4)).toBe(0); // exclusive: reused, writable again
    expect(ptepGet(mm, pg(a))).toBe(PTE_TYPE_PRESENT | PTE_WRITE | p0);
  });
});

describe('khugepaged, THP split, memory failure', () => {
  it('collapse: the 2 MiB CLEAR brackets only the PMD clear; then copy, huge PMD, old frames freed', () => {
    const { mm, phys, rec } = bSetup();
    anonMap(mm, PMD_SIZE, B);
    expect(cpuWritePages(mm, B, 512, (i, w) => i * 4 + w)).toBe(0);
    expect(pmdpGet(mm, B / PMD_SIZE)).toBe(PMD_TYPE_TABLE);
    const old5 = pfnOf(ptepGet(mm, pg(B) + 5));
    expect(collapseHugePage(mm, B)).toBe(-EINVAL); // VM_HUGEPAGE not set (mode "madvise")
    expect(madvise(mm, B, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    rec.clear();
    rec.probe = () => [pmdpGet(mm, B / PMD_SIZE), allocated(phys, old5)];
    expect(collapseHugePage(mm, B)).toBe(0);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `end CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
    ]);
    expect(rec.log.map((e) => e.probe)).toEqual([
      [PMD_TYPE_TABLE, 1],
      [0, 1],
    ]);
    const w = pmdpGet(mm, B / PMD_SIZE);
    const head = pfnOf(w);
    expect(w).toBe(PMD_TYPE_HUGE | PTE_WRITE | head);
    expect(head % 512).toBe(0);
    expect(ptepGet(mm, pg(B) + 5)).toBe(0);
    expect(allocated(phys, old5)).toBe(0);
    expect(phys.frames.wcount[head + 5]).toBe(1);
    expect(cpuRead(mm, B + 5 * P, 2)).toBe(22);
  });

  it('collapse refuses a step with a missing page (-EAGAIN, no event)', () => {
    const { mm, rec } = bSetup({ thpMode: 'never' });
    anonMap(mm, PMD_SIZE, B);
    expect(cpuWritePages(mm, B, 511, () => 1)).toBe(0);
    rec.clear();
    expect(collapseHugePage(mm, B)).toBe(-EINVAL); // THP never
    const { mm: mm2, rec: rec2 } = bSetup({ thpMode: 'always' });
    anonMap(mm2, PMD_SIZE, B);
    expect(cpuWrite(mm2, B + P, 1)).toBe(0); // a THP
    expect(splitHugePage(mm2, B)).toBe(0);
    expect(madvise(mm2, B, P, MADV_DONTNEED)).toBe(0);
    rec2.clear();
    expect(collapseHugePage(mm2, B)).toBe(-EAGAIN);
    expect(rec.log.length + rec2.log.length).toBe(0);
  });

  it('THP split: a 2 MiB CLEAR, 512 PTEs mapping the same frames', () => {
    const { mm, rec } = bSetup();
    const head = thpAt(mm);
    rec.clear();
    rec.probe = () => [pmdpGet(mm, B / PMD_SIZE)];
    expect(splitHugePage(mm, B + 7 * P)).toBe(0);
    expect(rec.calls()).toEqual([
      `start CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `end CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
    ]);
    expect(rec.log.map((e) => e.probe[0])).toEqual([PMD_TYPE_HUGE | PTE_WRITE | head, PMD_TYPE_TABLE]);
    expect(ptepGet(mm, pg(B) + 7)).toBe(PTE_TYPE_PRESENT | PTE_WRITE | (head + 7));
    expect(splitHugePage(mm, B)).toBe(-EINVAL);
  });

  it('memory failure: CLEAR, hwpoison entry, frame poisoned for good, content discarded', () => {
    const { mm, phys, rec } = bSetup();
    const a = anonMap(mm, 2 * P, A);
    expect(cpuWrite(mm, a, 1)).toBe(0);
    expect(cpuWrite(mm, a, 2)).toBe(0);
    expect(cpuRead(mm, a + P)).toBe(0);
    const p0 = pfnOf(ptepGet(mm, pg(a)));
    const disc0 = phys.discarded;
    rec.probe = () => [ptepGet(mm, pg(a)), allocated(phys, p0)];
    expect(memoryFailure(mm, a)).toBe(0);
    expect(rec.calls()).toEqual([`start CLEAR ${hex(a)}-${hex(a + P)}`, `end CLEAR ${hex(a)}-${hex(a + P)}`]);
    expect(rec.log.map((e) => e.probe)).toEqual([
      [PTE_TYPE_PRESENT | PTE_WRITE | p0, 1],
      [PTE_TYPE_HWPOISON | p0, 1],
    ]);
    expect(phys.frameState(p0)).toBe(FR_POISON);
    expect(phys.discarded - disc0).toBe(2);
    expect(cpuRead(mm, a)).toBe(-EFAULT);
    for (let i = 0; i < 64; i++) expect(phys.allocPage()).not.toBe(p0);
    expect(memoryFailure(mm, a + P)).toBe(-EBUSY); // the zero page
    expect(memoryFailure(mm, a + 9 * P)).toBe(-EFAULT);
  });
});

describe('OOM reaper', () => {
  it('non-blockable UNMAP per VMA; a VMA whose start fails with -EAGAIN is skipped, then retried', () => {
    const { mm, phys, rec } = bSetup();
    const a = anonMap(mm, 4 * P, A);
    const c = anonMap(mm, 4 * P, 0x600000);
    expect(cpuWritePages(mm, a, 4, () => 1)).toBe(0);
    expect(cpuWritePages(mm, c, 4, () => 2)).toBe(0);
    const pc = pfnOf(ptepGet(mm, pg(c)));
    let refuse = true;
    rec.refuseNonBlockable = (r) => refuse && r.start === c;
    rec.clear();
    const disc0 = phys.discarded;
    expect(oomReap(mm)).toEqual({ ret: -EAGAIN, reaped: 1, skipped: 1 });
    expect(rec.calls()).toEqual([
      `start UNMAP ${hex(a)}-${hex(a + 4 * P)}`,
      `end UNMAP ${hex(a)}-${hex(a + 4 * P)}`,
      `start UNMAP ${hex(c)}-${hex(c + 4 * P)}`,
    ]);
    expect(rec.log.map((e) => e.blockable)).toEqual([false, false, false]);
    expect(rec.log[2]!.probe).toEqual([-EAGAIN]);
    expect(ptepGet(mm, pg(a))).toBe(0);
    expect(ptepGet(mm, pg(c))).toBe(PTE_TYPE_PRESENT | PTE_WRITE | pc);
    expect(phys.discarded - disc0).toBe(4);
    // the victim holds the mmap lock: the reaper only try-locks
    mm.mmapWriteLock();
    expect(oomReap(mm)).toEqual({ ret: -EAGAIN, reaped: 0, skipped: 0 });
    mm.mmapWriteUnlock();
    refuse = false;
    rec.clear();
    expect(oomReap(mm)).toEqual({ ret: 0, reaped: 2, skipped: 0 });
    expect(rec.calls()).toEqual([
      `start UNMAP ${hex(a)}-${hex(a + 4 * P)}`,
      `end UNMAP ${hex(a)}-${hex(a + 4 * P)}`,
      `start UNMAP ${hex(c)}-${hex(c + 4 * P)}`,
      `end UNMAP ${hex(c)}-${hex(c + 4 * P)}`,
    ]);
    expect(ptepGet(mm, pg(c))).toBe(0);
    expect(allocated(phys, pc)).toBe(0);
    expect(phys.discarded - disc0).toBe(8);
  });
});

describe('lost-update accounting', () => {
  it('CPU write increments + copied == live write counters + discarded after every mutation', () => {
    const { mm, phys } = bSetup();
    const w0 = cpuStats.writeIncrements;
    const a = anonMap(mm, 16 * P, A);
    const write = (addr: number, n: number) => expect(cpuWritePages(mm, addr, n, (i) => i + 1)).toBe(0);
    write(a, 16);
    expect(madvise(mm, a, 2 * P, MADV_DONTNEED)).toBe(0);
    expect(swapOut(mm, a + 2 * P, a + 4 * P)).toBe(2);
    expect(madvise(mm, a + 3 * P, 3 * P, MADV_FREE)).toBe(0);
    write(a + 4 * P, 1); // cancels lazy-free on page 4
    expect(swapOut(mm, a + 4 * P, a + 6 * P)).toBe(2); // page 4 swapped, page 5 discarded
    write(a + 2 * P, 3); // swap-in (exclusive) of pages 2 and 4, page 3 fresh
    expect(changeProtNuma(mm, a, a + 16 * P)).toBeGreaterThan(0);
    write(a + 6 * P, 2);
    expect(migratePages(mm, a, a + 16 * P)).toBeGreaterThan(0);
    expect(clearRefs(mm)).toBeGreaterThan(0);
    write(a + 8 * P, 2);
    expect(memoryFailure(mm, a + 10 * P)).toBe(0);
    const head = thpAt(mm);
    expect(head).toBeGreaterThan(0);
    expect(splitHugePage(mm, B)).toBe(0);
    write(B + 4 * P, 4);
    expect(collapseHugePage(mm, B)).toBe(0);
    expect(migratePages(mm, B, B + P)).toBe(512);
    const file = phys.createFile(2);
    expect(mmap(mm, { addr: 0x600000, length: 2 * P, prot: RW, flags: MAP_SHARED | 0x10, file })).toBe(
      0x600000,
    );
    write(0x600000, 2);
    expect(writebackFile(file, [mm])).toBe(2);
    write(0x600000, 1);
    // device migration both ways (the CPU fault brings one page back through migrate_to_ram)
    registerDevPagemapOps(5, {
      migrateToRam: (m2, address, pfn) => migrateToRamOnePage(m2, address, pfn, 5, 0),
    });
    const dev = migrateRangeToDevice(mm, a + 12 * P, a + 16 * P, 5, 0, () => phys.allocDevicePage(5));
    expect(dev.migrated).toBe(4);
    write(a + 13 * P, 1);
    unregisterDevPagemapOps(5);
    expect(oomReap(mm).ret).toBe(0);
    const inc = cpuStats.writeIncrements - w0;
    expect(inc).toBeGreaterThan(30);
    expect(inc + phys.copied).toBe(phys.liveWriteCount() + phys.discarded);
    expect(reclaimStats.swappedOut).toBeGreaterThan(0);
  });
});
