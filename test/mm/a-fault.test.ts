import { describe, expect, it } from 'vitest';
import { cpuRead, cpuWrite } from '../../src/mm/cpu.js';
import {
  FAULT_FLAG_WRITE,
  faultConfig,
  handleMmFault,
  VM_FAULT_HWPOISON,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
} from '../../src/mm/fault.js';
import {
  FR_ALLOCATED,
  FR_HEAD,
  HUGE_ZERO_PFN,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_NONE,
  PMD_TYPE_TABLE,
  PTE_PROTNONE,
  PTE_SPECIAL,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_HWPOISON,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
  PTE_WRITE,
  VM_HUGEPAGE,
  ZERO_PFN,
} from '../../src/mm/layout.js';
import { registerDevPagemapOps } from '../../src/mm/memremap.js';
import { createMm, type MmStruct, vmaOrFlags } from '../../src/mm/mm.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  mmap,
  PROT_READ,
  PROT_WRITE,
} from '../../src/mm/mmap.js';
import { MMU_NOTIFY_MIGRATE } from '../../src/mm/mmu-notifier.js';
import { pmdpGet, ptepGet, ptlLock, ptlUnlock, ZERO_PTE } from '../../src/mm/pgtable.js';
import { createPhysMem } from '../../src/mm/physmem.js';
import { Recorder } from './a-helpers.js';

const RW = PROT_READ | PROT_WRITE;
const W = FAULT_FLAG_WRITE;

function setup(opts: { nframes?: number; thp?: 'madvise' | 'always' | 'never' } = {}) {
  const phys = createPhysMem({ nframes: opts.nframes ?? 8192, W: 4 });
  const mm = createMm(phys, { size: 64 << 20, thpMode: opts.thp ?? 'madvise' });
  const rec = new Recorder(mm);
  return { phys, mm, rec };
}

function anon(mm: MmStruct, len: number, prot = RW, addr?: number): number {
  const a = mmap(mm, {
    length: len,
    prot,
    flags: MAP_PRIVATE | MAP_ANONYMOUS | (addr !== undefined ? MAP_FIXED : 0),
    addr,
  });
  expect(a).toBeGreaterThan(0);
  return a;
}

function fault(mm: MmStruct, addr: number, flags: number): number {
  mm.mmapReadLock();
  try {
    return handleMmFault(mm, addr, flags);
  } finally {
    mm.mmapReadUnlock();
  }
}

const pg = (a: number) => a / PAGE_SIZE;
const pte = (mm: MmStruct, a: number) => ptepGet(mm, pg(a));
const pfnOf = (w: number) => w & 0xffffff;

describe('handleMmFault: anonymous memory', () => {
  it('read maps the zero page (special, read-only); write allocates a zeroed writable frame', () => {
    const { mm, phys, rec } = setup();
    const a = anon(mm, 8 * PAGE_SIZE);
    expect(a).toBe(PMD_SIZE); // nothing below 2 MiB
    expect(fault(mm, a, 0)).toBe(0);
    expect(pte(mm, a)).toBe(PTE_TYPE_PRESENT | PTE_SPECIAL | ZERO_PFN);
    expect(pte(mm, a)).toBe(ZERO_PTE);
    expect(pmdpGet(mm, a / PMD_SIZE)).toBe(PMD_TYPE_TABLE);
    expect(fault(mm, a + PAGE_SIZE, W)).toBe(0);
    const w = pte(mm, a + PAGE_SIZE);
    expect(w & ~0xffffff).toBe(PTE_TYPE_PRESENT | PTE_WRITE);
    expect(phys.frameState(pfnOf(w))).toBe(FR_ALLOCATED | 1);
    expect(rec.log).toEqual([]); // adding access: no invalidation
  });

  it('write to the zero page is a COW with a one-page CLEAR around the PTE change', () => {
    const { mm, phys, rec } = setup();
    const a = anon(mm, 8 * PAGE_SIZE);
    const target = a + 3 * PAGE_SIZE;
    expect(fault(mm, target, 0)).toBe(0);
    rec.probe = () => [pte(mm, target)];
    expect(fault(mm, target, W)).toBe(0);
    const w = pte(mm, target);
    expect(w & ~0xffffff).toBe(PTE_TYPE_PRESENT | PTE_WRITE);
    expect(phys.pageRefcount(pfnOf(w))).toBe(1);
    expect(rec.log.map((e) => [e.kind, e.event, e.start, e.end, e.probe[0]])).toEqual([
      ['start', 'CLEAR', target, target + PAGE_SIZE, ZERO_PTE],
      ['end', 'CLEAR', target, target + PAGE_SIZE, w],
    ]);
  });

  it('an exclusively owned read-only page is reused without invalidation; protnone is restored', () => {
    const { mm, phys, rec } = setup();
    const a = anon(mm, PAGE_SIZE);
    fault(mm, a, W);
    const w = pte(mm, a);
    ptlLock(mm);
    Atomics.store(mm.pte, pg(a), w & ~PTE_WRITE);
    ptlUnlock(mm);
    expect(fault(mm, a, W)).toBe(0);
    expect(pte(mm, a)).toBe(w);
    // NUMA-hinting protnone that kept the saved write bit
    ptlLock(mm);
    Atomics.store(mm.pte, pg(a), w | PTE_PROTNONE);
    ptlUnlock(mm);
    expect(fault(mm, a, 0)).toBe(0);
    expect(pte(mm, a)).toBe(w);
    expect(phys.pageRefcount(pfnOf(w))).toBe(1);
    expect(rec.log).toEqual([]);
  });

  it('SIGSEGV with no VMA or against its permissions, HWPOISON, OOM', () => {
    const { mm, phys } = setup({ nframes: 2048 });
    const a = anon(mm, 4 * PAGE_SIZE, PROT_READ);
    expect(fault(mm, 0, 0)).toBe(VM_FAULT_SIGSEGV);
    expect(fault(mm, a + 4 * PAGE_SIZE, 0)).toBe(VM_FAULT_SIGSEGV);
    expect(fault(mm, a, W)).toBe(VM_FAULT_SIGSEGV);
    const none = anon(mm, PAGE_SIZE, 0);
    expect(fault(mm, none, 0)).toBe(VM_FAULT_SIGSEGV);
    const b = anon(mm, 2048 * PAGE_SIZE);
    fault(mm, b, W);
    ptlLock(mm);
    Atomics.store(mm.pte, pg(b), PTE_TYPE_HWPOISON | 1234);
    ptlUnlock(mm);
    expect(fault(mm, b, 0)).toBe(VM_FAULT_HWPOISON);
    let n = 1;
    while (phys.freeFrames > 0) expect(fault(mm, b + n++ * PAGE_SIZE, W)).toBe(0);
    expect(fault(mm, b + n * PAGE_SIZE, W)).toBe(VM_FAULT_OOM);
    expect(pte(mm, b + n * PAGE_SIZE)).toBe(0);
    expect(fault(mm, b + n * PAGE_SIZE, 0)).toBe(0); // the zero page needs no memory
    expect(cpuWrite(mm, b + (n + 1) * PAGE_SIZE, 1)).toBe(-12);
  });
});

describe('handleMmFault: THP (madvise mode)', () => {
  it('a read maps the huge zero page, a write a new THP; only with VM_HUGEPAGE', () => {
    const { mm, phys, rec } = setup();
    const a = anon(mm, 2 * PMD_SIZE, RW, 4 * PMD_SIZE);
    // madvise mode without VM_HUGEPAGE: 4 KiB pages
    expect(fault(mm, a, W)).toBe(0);
    expect(pmdpGet(mm, a / PMD_SIZE)).toBe(PMD_TYPE_TABLE);
    mm.mmapWriteLock();
    vmaOrFlags(mm, mm.vmaAt(pg(a)), VM_HUGEPAGE); // madvise(HUGEPAGE) is mm-B's; set the flag directly
    mm.mmapWriteUnlock();
    expect(fault(mm, a + 5 * PAGE_SIZE, W)).toBe(0); // a PTE table exists: still 4 KiB
    expect(pmdpGet(mm, a / PMD_SIZE)).toBe(PMD_TYPE_TABLE);
    const b = a + PMD_SIZE;
    expect(fault(mm, b + 7 * PAGE_SIZE, 0)).toBe(0);
    expect(pmdpGet(mm, b / PMD_SIZE)).toBe(PMD_TYPE_HUGE | HUGE_ZERO_PFN);
    expect(cpuRead(mm, b + 9 * PAGE_SIZE)).toBe(0);
    // a write on the huge zero page: split (2 MiB CLEAR), then the 4 KiB COW (one-page CLEAR)
    rec.probe = () => [pmdpGet(mm, b / PMD_SIZE)];
    expect(fault(mm, b + 7 * PAGE_SIZE, W)).toBe(0);
    expect(rec.starts()).toEqual([
      `CLEAR 0x${b.toString(16)}-0x${(b + PMD_SIZE).toString(16)}`,
      `CLEAR 0x${(b + 7 * PAGE_SIZE).toString(16)}-0x${(b + 8 * PAGE_SIZE).toString(16)}`,
    ]);
    expect(rec.log[0]!.probe[0]).toBe(PMD_TYPE_HUGE | HUGE_ZERO_PFN);
    expect(pmdpGet(mm, b / PMD_SIZE)).toBe(PMD_TYPE_TABLE);
    expect(pte(mm, b)).toBe(ZERO_PTE);
    expect(pte(mm, b + 7 * PAGE_SIZE) & PTE_WRITE).toBe(PTE_WRITE);
    // a fresh aligned span: a write maps a new THP
    const c = anon(mm, PMD_SIZE, RW, 8 * PMD_SIZE);
    mm.mmapWriteLock();
    vmaOrFlags(mm, mm.vmaAt(pg(c)), VM_HUGEPAGE);
    mm.mmapWriteUnlock();
    expect(fault(mm, c + 100 * PAGE_SIZE, W)).toBe(0);
    const pmd = pmdpGet(mm, c / PMD_SIZE);
    const head = pmd & 0xffffff;
    expect(pmd).toBe(PMD_TYPE_HUGE | PTE_WRITE | head);
    expect(head % 512).toBe(0);
    expect(phys.frameState(head)).toBe(FR_ALLOCATED | FR_HEAD | 1);
    expect(cpuWrite(mm, c + 3 * PAGE_SIZE, 55)).toBe(0);
    expect(phys.readWord(head + 3)).toBe(55);
  });

  it('always mode: eligible without madvise; a VMA not covering the span gets 4 KiB pages', () => {
    const { mm } = setup({ thp: 'always' });
    const a = anon(mm, PMD_SIZE + PAGE_SIZE, RW, 2 * PMD_SIZE);
    expect(fault(mm, a, W)).toBe(0);
    expect(pmdpGet(mm, a / PMD_SIZE) & 0xff000000).toBe(PMD_TYPE_HUGE | PTE_WRITE);
    expect(fault(mm, a + PMD_SIZE, W)).toBe(0);
    expect(pmdpGet(mm, a / PMD_SIZE + 1)).toBe(PMD_TYPE_TABLE);
    const never = setup({ thp: 'never' });
    const b = anon(never.mm, PMD_SIZE, RW, 2 * PMD_SIZE);
    expect(fault(never.mm, b, W)).toBe(0);
    expect(pmdpGet(never.mm, b / PMD_SIZE)).toBe(PMD_TYPE_TABLE);
  });

  it('hugetlb: read maps a read-only huge page, write makes it writable in place', () => {
    const { mm, phys, rec } = setup();
    const a = mmap(mm, { length: PMD_SIZE, prot: RW, flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB });
    expect(a % PMD_SIZE).toBe(0);
    expect(fault(mm, a + 5 * PAGE_SIZE, 0)).toBe(0);
    const pmd = pmdpGet(mm, a / PMD_SIZE);
    expect(pmd & 0xff000000).toBe(PMD_TYPE_HUGE);
    expect(fault(mm, a, W)).toBe(0);
    expect(pmdpGet(mm, a / PMD_SIZE)).toBe(pmd | PTE_WRITE);
    expect(phys.pageRefcount(pmd & 0xffffff)).toBe(1);
    expect(rec.log).toEqual([]);
  });
});

describe('handleMmFault: files, swap, device-private, migration', () => {
  function fileSetup(shmem: boolean) {
    const s = setup();
    const file = s.phys.createFile(64, { shmem });
    for (let i = 0; i < 64; i++) if (i !== 5) s.phys.fileWriteWord(file, i, 0, 1000 + i);
    return { ...s, file };
  }

  it('shared regular file: read maps read-only (write-notify) with fault-around; write makes it writable', () => {
    const { mm, phys, rec, file } = fileSetup(false);
    const a = mmap(mm, { length: 32 * PAGE_SIZE, prot: RW, flags: MAP_SHARED, file, offset: 8 * PAGE_SIZE });
    expect(fault(mm, a + 3 * PAGE_SIZE, 0)).toBe(0);
    const p3 = phys.findGetPage(file, 11);
    phys.putPage(p3);
    expect(pte(mm, a + 3 * PAGE_SIZE)).toBe(PTE_TYPE_PRESENT | p3);
    expect(phys.pageRefcount(p3)).toBe(2); // page cache + mapping
    // fault-around: the 16-page window [a, a + 16 pages) maps every cached neighbour
    for (let i = 0; i < 16; i++) expect(pte(mm, a + i * PAGE_SIZE) !== 0).toBe(true);
    expect(pte(mm, a + 16 * PAGE_SIZE)).toBe(0);
    expect(cpuRead(mm, a + 7 * PAGE_SIZE)).toBe(1015);
    expect(fault(mm, a + 3 * PAGE_SIZE, W)).toBe(0);
    expect(pte(mm, a + 3 * PAGE_SIZE)).toBe(PTE_TYPE_PRESENT | PTE_WRITE | p3);
    expect(cpuWrite(mm, a + 3 * PAGE_SIZE, 7)).toBe(0);
    expect(phys.fileReadWord(file, 11, 0)).toBe(7);
    expect(rec.log).toEqual([]);
  });

  it('fault-around skips pages not in the cache; shared shmem maps writable on read', () => {
    const { mm, phys, file } = fileSetup(true);
    const a = mmap(mm, { length: 16 * PAGE_SIZE, prot: RW, flags: MAP_SHARED, file });
    expect(fault(mm, a, 0)).toBe(0);
    expect(pte(mm, a) & PTE_WRITE).toBe(PTE_WRITE);
    expect(pte(mm, a + 4 * PAGE_SIZE) & PTE_WRITE).toBe(PTE_WRITE);
    expect(pte(mm, a + 5 * PAGE_SIZE)).toBe(0); // page 5 was never cached
    expect(phys.pageCached(file, 5)).toBe(false);
  });

  it('private file mapping: read maps the cache page read-only, write copies it (counted)', () => {
    const { mm, phys, rec, file } = fileSetup(false);
    const a = mmap(mm, { length: 4 * PAGE_SIZE, prot: RW, flags: MAP_PRIVATE, file });
    const cached = phys.findGetPage(file, 0);
    phys.putPage(cached);
    Atomics.store(phys.frames.wcount, cached, 3);
    expect(fault(mm, a, 0)).toBe(0);
    expect(pte(mm, a)).toBe(PTE_TYPE_PRESENT | cached);
    expect(fault(mm, a, W)).toBe(0); // the cache holds a reference: copy, one-page CLEAR
    const w = pte(mm, a);
    expect(pfnOf(w)).not.toBe(cached);
    expect(w & PTE_WRITE).toBe(PTE_WRITE);
    expect(phys.readWord(pfnOf(w))).toBe(1000);
    expect(phys.copied).toBe(3);
    expect(rec.starts()).toEqual([`CLEAR 0x${a.toString(16)}-0x${(a + PAGE_SIZE).toString(16)}`]);
    expect(phys.pageRefcount(cached)).toBe(1);
    // fault-around mapped page 1 read-only too
    expect(pte(mm, a + PAGE_SIZE) & ~0xffffff).toBe(PTE_TYPE_PRESENT);
    // a write fault on a none PTE copies without invalidation (do_cow_fault)
    rec.clear();
    const b = mmap(mm, { length: PAGE_SIZE, prot: RW, flags: MAP_PRIVATE, file, offset: 20 * PAGE_SIZE });
    expect(fault(mm, b, W)).toBe(0);
    expect(phys.readWord(pfnOf(pte(mm, b)))).toBe(1020);
    expect(pte(mm, b) & PTE_WRITE).toBe(PTE_WRITE);
    expect(rec.log).toEqual([]);
  });

  it('swap-in: read maps read-only, write of an exclusive slot writable, shared slot COWs', () => {
    const { mm, phys, rec } = setup();
    const a = anon(mm, 4 * PAGE_SIZE);
    const slots: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = phys.swapAlloc();
      const f = phys.allocPage();
      Atomics.store(phys.frames.data, f * 4, 500 + i);
      Atomics.store(phys.frames.wcount, f, 1);
      phys.swapOutContent(s, f);
      phys.putPageMoved(f);
      slots.push(s);
      ptlLock(mm);
      Atomics.store(mm.pmd, a / PMD_SIZE, PMD_TYPE_TABLE);
      Atomics.store(mm.pte, pg(a) + i, PTE_TYPE_SWAP | s);
      ptlUnlock(mm);
    }
    phys.swapDup(slots[2]!); // as if shared with a forked child
    expect(fault(mm, a, 0)).toBe(0);
    expect(pte(mm, a) & ~0xffffff).toBe(PTE_TYPE_PRESENT);
    expect(phys.readWord(pfnOf(pte(mm, a)))).toBe(500);
    expect(phys.swapCount(slots[0]!)).toBe(0);
    expect(fault(mm, a + PAGE_SIZE, W)).toBe(0);
    expect(pte(mm, a + PAGE_SIZE) & ~0xffffff).toBe(PTE_TYPE_PRESENT | PTE_WRITE);
    expect(rec.log).toEqual([]);
    expect(fault(mm, a + 2 * PAGE_SIZE, W)).toBe(0);
    expect(rec.starts()).toEqual([
      `CLEAR 0x${(a + 2 * PAGE_SIZE).toString(16)}-0x${(a + 3 * PAGE_SIZE).toString(16)}`,
    ]);
    expect(phys.readWord(pfnOf(pte(mm, a + 2 * PAGE_SIZE)))).toBe(502);
    expect(phys.swapCount(slots[2]!)).toBe(1);
  });

  it('device-private: the owner migrate_to_ram runs; hwpoison and unknown owners fail', () => {
    const { mm, phys } = setup();
    const a = anon(mm, 2 * PAGE_SIZE);
    const dev = phys.allocDevicePage(5);
    Atomics.store(phys.frames.data, dev * 4, 31);
    ptlLock(mm);
    Atomics.store(mm.pmd, a / PMD_SIZE, PMD_TYPE_TABLE);
    Atomics.store(mm.pte, pg(a), PTE_TYPE_DEVICE_PRIVATE | PTE_WRITE | dev);
    ptlUnlock(mm);
    const calls: number[] = [];
    registerDevPagemapOps(5, {
      migrateToRam(m, address, pfn) {
        calls.push(address, pfn);
        const f = m.phys.allocPage();
        m.phys.moveContent(f, pfn);
        ptlLock(m);
        Atomics.store(m.pte, pg(address), PTE_TYPE_PRESENT | PTE_WRITE | f);
        ptlUnlock(m);
        m.phys.putPageMoved(pfn, MMU_NOTIFY_MIGRATE);
        return 0;
      },
    });
    expect(cpuRead(mm, a)).toBe(31);
    expect(calls).toEqual([a, dev]);
    const dev2 = phys.allocDevicePage(6);
    ptlLock(mm);
    Atomics.store(mm.pte, pg(a) + 1, PTE_TYPE_DEVICE_PRIVATE | dev2);
    ptlUnlock(mm);
    expect(fault(mm, a + PAGE_SIZE, 0)).toBe(VM_FAULT_SIGBUS);
  });

  it('migration entry: the fault waits (bounded) and retries', () => {
    const { mm } = setup();
    const a = anon(mm, PAGE_SIZE);
    ptlLock(mm);
    Atomics.store(mm.pmd, a / PMD_SIZE, PMD_TYPE_TABLE);
    Atomics.store(mm.pte, pg(a), PTE_TYPE_MIGRATION | 2000);
    ptlUnlock(mm);
    const saved = faultConfig.migrationWaitMs;
    faultConfig.migrationWaitMs = 2;
    const t0 = Date.now();
    expect(fault(mm, a, 0)).toBe(VM_FAULT_RETRY);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(64 * 2 - 1);
    faultConfig.migrationWaitMs = saved;
    expect(pmdpGet(mm, 0)).toBe(PMD_TYPE_NONE);
  });
});
