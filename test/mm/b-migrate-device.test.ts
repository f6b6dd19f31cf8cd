import { afterEach, describe, expect, it } from 'vitest';
import { cpuRead, cpuStats, cpuWrite, cpuWritePages } from '../../src/mm/cpu.js';
import { forkMm } from '../../src/mm/fork.js';
import {
  FR_ALLOCATED,
  FR_DEVICE_PRIVATE,
  frOwner,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_TABLE,
  PTE_SPECIAL,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
} from '../../src/mm/layout.js';
import { MADV_HUGEPAGE, madvise } from '../../src/mm/madvise.js';
import { registerDevPagemapOps, unregisterDevPagemapOps } from '../../src/mm/memremap.js';
import {
  MIGRATE_PFN_LOCKED,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  migratePfn,
  migratePfnToPfn,
  migrateRangeToDevice,
  migrateToRamOnePage,
  migrateVmaInit,
  migrateVmaNextChunk,
  migrateVmaToDevice,
} from '../../src/mm/migrate-device.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_SHARED,
  mmap,
  mprotect,
  PROT_NONE,
  PROT_READ,
} from '../../src/mm/mmap.js';
import { EINVAL } from '../../src/mm/mmu-notifier.js';
import { pmdpGet, ptepGet } from '../../src/mm/pgtable.js';
import { anonMap, bSetup, hex, pg, RW } from './b-helpers.js';

const P = PAGE_SIZE;
const A = 0x400000;
const B = 0x800000;
const OWNER = 3;
const FILE = 7;
const pfnOf = (w: number) => w & 0xffffff;

afterEach(() => unregisterDevPagemapOps(OWNER));

describe('migrate to device (migrate_vma_setup / pages / finalize)', () => {
  it('MIGRATE with the device as owner, then a CLEAR over [first empty page, end); exact PTE words', () => {
    const { mm, phys, rec } = bSetup();
    const a = anonMap(mm, 8 * P, A);
    expect(cpuWritePages(mm, a, 4, (i, w) => 100 * i + w)).toBe(0); // pages 0..3
    expect(cpuRead(mm, a + 4 * P)).toBe(0); // page 4: the zero page; 5..7 empty
    const old = [0, 1, 2, 3].map((i) => pfnOf(ptepGet(mm, pg(a) + i)));
    rec.clear();
    rec.probe = () => [ptepGet(mm, pg(a)), ptepGet(mm, pg(a) + 4), ptepGet(mm, pg(a) + 5)];
    const m = migrateVmaInit(a, a + 8 * P, OWNER, FILE, 0);
    let atMap: number[] = [];
    mm.mmapReadLock();
    const r = migrateVmaToDevice(mm, m, () => phys.allocDevicePage(OWNER), {
      finalizeAndMap: () => {
        atMap = [ptepGet(mm, pg(a)), ptepGet(mm, pg(a) + 5)];
      },
    });
    mm.mmapReadUnlock();
    expect(r).toBe(0);
    expect(m.npages).toBe(8);
    expect(m.cpages).toBe(8);
    expect(rec.calls()).toEqual([
      `start MIGRATE ${hex(a)}-${hex(a + 8 * P)}`,
      `end MIGRATE ${hex(a)}-${hex(a + 8 * P)}`,
      `start CLEAR ${hex(a + 4 * P)}-${hex(a + 8 * P)}`,
      `end CLEAR ${hex(a + 4 * P)}-${hex(a + 8 * P)}`,
    ]);
    expect(rec.log.map((e) => [e.owner, e.ownerFile, e.blockable])).toEqual([
      [OWNER, FILE, true],
      [OWNER, FILE, true],
      [-1, -1, true],
      [-1, -1, true],
    ]);
    const d = Array.from({ length: 8 }, (_, i) => migratePfnToPfn(m.dst[i]!));
    const zeroPte = PTE_TYPE_PRESENT | PTE_SPECIAL;
    expect(rec.log[0]!.probe).toEqual([PTE_TYPE_PRESENT | PTE_WRITE | old[0]!, zeroPte, 0]);
    expect(rec.log[1]!.probe).toEqual([PTE_TYPE_MIGRATION | PTE_WRITE | old[0]!, zeroPte, 0]); // zero page stays
    expect(rec.log[3]!.probe).toEqual([
      PTE_TYPE_MIGRATION | PTE_WRITE | old[0]!,
      PTE_TYPE_DEVICE_PRIVATE | PTE_WRITE | d[4]!,
      PTE_TYPE_DEVICE_PRIVATE | PTE_WRITE | d[5]!,
    ]);
    expect(atMap).toEqual([
      PTE_TYPE_MIGRATION | PTE_WRITE | old[0]!,
      PTE_TYPE_DEVICE_PRIVATE | PTE_WRITE | d[5]!,
    ]);
    for (let i = 0; i < 8; i++) {
      expect(ptepGet(mm, pg(a) + i)).toBe(PTE_TYPE_DEVICE_PRIVATE | PTE_WRITE | d[i]!);
      expect(phys.frameState(d[i]!)).toBe(FR_ALLOCATED | FR_DEVICE_PRIVATE | (OWNER << 24) | 1);
      expect(frOwner(phys.frameState(d[i]!))).toBe(OWNER);
    }
    // src/dst words in the kernel's encoding
    expect(m.src[0]).toBe(migratePfn(old[0]!) | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_LOCKED | MIGRATE_PFN_WRITE);
    expect(m.src[5]).toBe(MIGRATE_PFN_MIGRATE);
    expect(m.dst[0]).toBe(migratePfn(d[0]!) | MIGRATE_PFN_LOCKED | MIGRATE_PFN_WRITE);
    expect(m.dst[5]).toBe((d[5]! << 6) | MIGRATE_PFN_VALID | MIGRATE_PFN_LOCKED);
    // content and write counter moved; old frames freed
    for (let i = 0; i < 4; i++) {
      expect(phys.readWord(d[i]!, 2)).toBe(100 * i + 2);
      expect(phys.frames.wcount[d[i]!]).toBe(1);
      expect(phys.frameState(old[i]!) & FR_ALLOCATED).toBe(0);
    }
    expect(phys.frames.wcount[d[6]!]).toBe(0);
  });

  it('a THP is split inside the MIGRATE (nested 2 MiB CLEAR); a read-only VMA gives read-only entries', () => {
    const { mm, phys, rec } = bSetup();
    anonMap(mm, PMD_SIZE, B);
    expect(madvise(mm, B, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(cpuWrite(mm, B, 5)).toBe(0);
    const head = pfnOf(pmdpGet(mm, B / PMD_SIZE));
    rec.clear();
    const res = migrateRangeToDevice(mm, B, B + 64 * P, OWNER, FILE, () => phys.allocDevicePage(OWNER));
    expect(res).toEqual({ ret: 0, chunks: 1, cpages: 64, migrated: 64 });
    expect(rec.calls()).toEqual([
      `start MIGRATE ${hex(B)}-${hex(B + 64 * P)}`,
      `start CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `end CLEAR ${hex(B)}-${hex(B + PMD_SIZE)}`,
      `end MIGRATE ${hex(B)}-${hex(B + 64 * P)}`,
    ]);
    expect(pmdpGet(mm, B / PMD_SIZE)).toBe(PMD_TYPE_TABLE);
    expect(ptepGet(mm, pg(B) + 63) & 0x07000000).toBe(PTE_TYPE_DEVICE_PRIVATE);
    expect(ptepGet(mm, pg(B) + 64)).toBe(PTE_TYPE_PRESENT | PTE_WRITE | (head + 64));

    // read-only private VMA: a zero page and an empty page become read-only device entries
    const a = anonMap(mm, 2 * P, A, PROT_READ);
    expect(cpuRead(mm, a)).toBe(0);
    rec.clear();
    const r2 = migrateRangeToDevice(mm, a, a + 2 * P, OWNER, FILE, () => phys.allocDevicePage(OWNER));
    expect(r2).toEqual({ ret: 0, chunks: 1, cpages: 2, migrated: 2 });
    expect(rec.calls()).toEqual([
      `start MIGRATE ${hex(a)}-${hex(a + 2 * P)}`,
      `end MIGRATE ${hex(a)}-${hex(a + 2 * P)}`,
      `start CLEAR ${hex(a)}-${hex(a + 2 * P)}`,
      `end CLEAR ${hex(a)}-${hex(a + 2 * P)}`,
    ]);
    expect(ptepGet(mm, pg(a)) & ~0xffffff).toBe(PTE_TYPE_DEVICE_PRIVATE);
    expect(ptepGet(mm, pg(a) + 1) & ~0xffffff).toBe(PTE_TYPE_DEVICE_PRIVATE);
  });

  it('shared pages are collected but refused (PTE restored, device page freed); chunks and -EINVAL', () => {
    const { mm, phys, rec } = bSetup();
    const s = mmap(mm, { addr: A, length: 4 * P, prot: RW, flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED });
    expect(s).toBe(A);
    expect(cpuWrite(mm, s, 9)).toBe(0);
    const sp = pfnOf(ptepGet(mm, pg(s)));
    rec.clear();
    const before = phys.freeFrames;
    const r = migrateRangeToDevice(mm, s, s + 4 * P, OWNER, FILE, () => phys.allocDevicePage(OWNER));
    expect(r).toEqual({ ret: 0, chunks: 1, cpages: 1, migrated: 0 });
    expect(rec.calls()).toEqual([
      `start MIGRATE ${hex(s)}-${hex(s + 4 * P)}`,
      `end MIGRATE ${hex(s)}-${hex(s + 4 * P)}`,
    ]);
    expect(ptepGet(mm, pg(s))).toBe(PTE_TYPE_PRESENT | PTE_WRITE | sp);
    expect(ptepGet(mm, pg(s) + 1)).toBe(0);
    expect(phys.freeFrames).toBe(before);

    // a private page shared with a forked child: refused too (rmap-only)
    const a = anonMap(mm, 2 * P, B);
    expect(cpuWrite(mm, a, 1)).toBe(0);
    const child = forkMm(mm);
    const r2 = migrateRangeToDevice(mm, a, a + P, OWNER, FILE, () => phys.allocDevicePage(OWNER));
    expect(r2).toEqual({ ret: 0, chunks: 1, cpages: 1, migrated: 0 });
    expect(ptepGet(mm, pg(a)) & 0x07000000).toBe(PTE_TYPE_PRESENT);
    expect(cpuRead(child, a)).toBe(1);

    // chunks: at most 64 pages, never across a VMA end; a PROT_NONE VMA or a hole: -EINVAL
    const c = anonMap(mm, 100 * P, 0xc00000);
    const c2 = anonMap(mm, 4 * P, 0xc00000 + 100 * P, PROT_READ); // flags differ: no merge
    expect(mprotect(mm, c2 + 2 * P, 2 * P, PROT_NONE)).toBe(0);
    mm.mmapReadLock();
    expect(migrateVmaNextChunk(mm, c, c + 200 * P)).toBe(c + 64 * P);
    expect(migrateVmaNextChunk(mm, c + 64 * P, c + 200 * P)).toBe(c + 100 * P);
    expect(migrateVmaNextChunk(mm, c2 + 2 * P, c2 + 4 * P)).toBe(-EINVAL);
    expect(migrateVmaNextChunk(mm, 0x1000000, 0x1001000)).toBe(-EINVAL);
    mm.mmapReadUnlock();
    const r3 = migrateRangeToDevice(mm, c, c2 + 4 * P, OWNER, FILE, () => phys.allocDevicePage(OWNER));
    expect(r3).toEqual({ ret: -EINVAL, chunks: 3, cpages: 102, migrated: 102 });
    expect(ptepGet(mm, pg(c2) + 1) & 0x07000000).toBe(PTE_TYPE_DEVICE_PRIVATE);
  });
});

describe('migrate back to RAM (CPU fault on a device page)', () => {
  it('MIGRATE over the one page with the device as owner; new frame, content back, write kept', () => {
    const { mm, phys, rec } = bSetup();
    const w0 = cpuStats.writeIncrements;
    const a = anonMap(mm, 4 * P, A);
    expect(cpuWritePages(mm, a, 4, (i, w) => 10 * i + w)).toBe(0);
    const r = migrateRangeToDevice(mm, a, a + 4 * P, OWNER, FILE, () => phys.allocDevicePage(OWNER));
    expect(r.migrated).toBe(4);
    const d1 = pfnOf(ptepGet(mm, pg(a) + 1));
    const erased: number[] = [];
    registerDevPagemapOps(OWNER, {
      migrateToRam: (m2, address, pfn) =>
        migrateToRamOnePage(m2, address, pfn, OWNER, FILE, { erase: (x) => erased.push(x) }),
    });
    rec.clear();
    rec.probe = () => [ptepGet(mm, pg(a) + 1)];
    expect(cpuRead(mm, a + P, 3)).toBe(13);
    expect(rec.calls()).toEqual([
      `start MIGRATE ${hex(a + P)}-${hex(a + 2 * P)}`,
      `end MIGRATE ${hex(a + P)}-${hex(a + 2 * P)}`,
    ]);
    expect(rec.log.map((e) => [e.owner, e.ownerFile])).toEqual([
      [OWNER, FILE],
      [OWNER, FILE],
    ]);
    expect(rec.log[0]!.probe[0]).toBe(PTE_TYPE_DEVICE_PRIVATE | PTE_WRITE | d1);
    expect(rec.log[1]!.probe[0]).toBe(PTE_TYPE_MIGRATION | PTE_WRITE | d1);
    expect(erased).toEqual([a + P]);
    const n1 = pfnOf(ptepGet(mm, pg(a) + 1));
    expect(ptepGet(mm, pg(a) + 1)).toBe(PTE_TYPE_PRESENT | PTE_WRITE | n1);
    expect(phys.frameState(n1) & FR_DEVICE_PRIVATE).toBe(0);
    expect(phys.frameState(d1)).toBe(0); // the device page is free again
    expect(phys.frames.wcount[n1]).toBe(1);

    // a read-only device entry comes back read-only
    const ro = anonMap(mm, P, B, PROT_READ);
    expect(
      migrateRangeToDevice(mm, ro, ro + P, OWNER, FILE, () => phys.allocDevicePage(OWNER)).migrated,
    ).toBe(1);
    const dro = ptepGet(mm, pg(ro));
    expect(dro & ~0xffffff).toBe(PTE_TYPE_DEVICE_PRIVATE);
    mm.mmapReadLock();
    expect(migrateToRamOnePage(mm, ro, pfnOf(dro), OWNER, FILE)).toBe(0);
    mm.mmapReadUnlock();
    expect(ptepGet(mm, pg(ro)) & ~0xffffff).toBe(PTE_TYPE_PRESENT);
    // another owner's call does not touch it
    const d2 = pfnOf(ptepGet(mm, pg(a) + 2));
    rec.clear();
    mm.mmapReadLock();
    expect(migrateToRamOnePage(mm, a + 2 * P, d2, OWNER + 1, FILE)).toBe(0);
    mm.mmapReadUnlock();
    expect(ptepGet(mm, pg(a) + 2)).toBe(PTE_TYPE_DEVICE_PRIVATE | PTE_WRITE | d2);
    // the lost-update equation holds across both directions
    expect(cpuWrite(mm, a + 2 * P, 1)).toBe(0);
    expect(cpuStats.writeIncrements - w0 + phys.copied).toBe(phys.liveWriteCount() + phys.discarded);
  });
});
