/**
 * THP races found by the hot-zipf stress runs, replayed deterministically on one thread:
 * a PMD migration entry split while its THP migration is in flight (the migration must still
 * complete through the PTE migration entries, or faults wait on them for ever), a device's
 * migrate_vma collect that must not split a THP another migration holds locked, the page lock
 * across a THP split, and MADV_FREE of a whole THP cancelled by a write to one subpage.
 */
import { describe, expect, it } from 'vitest';
import { noteDeviceWrite } from '../../src/checker/oracles.js';
import { cpuRead, cpuStats, cpuWrite } from '../../src/mm/cpu.js';
import {
  FR_HEAD,
  FR_LAZYFREE,
  FR_LOCKED,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_MIGRATION,
  PMD_TYPE_TABLE,
  PTE_PAYLOAD_MASK,
  PTE_TYPE_MASK,
  PTE_TYPE_MIGRATION,
  PTE_TYPE_PRESENT,
  PTRS_PER_PTE,
} from '../../src/mm/layout.js';
import { MADV_FREE, MADV_HUGEPAGE, madvise } from '../../src/mm/madvise.js';
import {
  MIGRATE_VMA_SELECT_SYSTEM,
  migrateVmaFinalize,
  migrateVmaInit,
  migrateVmaSetup,
} from '../../src/mm/migrate-device.js';
import type { MmStruct } from '../../src/mm/mm.js';
import { MMU_NOTIFY_CLEAR, type MmuNotifierRange } from '../../src/mm/mmu-notifier.js';
import { migratePages, trylockPage, unlockPage } from '../../src/mm/numa.js';
import { splitHugePmd } from '../../src/mm/pgtable.js';
import type { PhysMem } from '../../src/mm/physmem.js';
import { swapOut } from '../../src/mm/reclaim.js';
import { anonMap, bSetup } from './b-helpers.js';

const BASE = 8 * PMD_SIZE;

/** A 2 MiB THP at BASE, every page written once (page i holds 1000 + i). */
function thpSetup(): { mm: MmStruct; phys: PhysMem; idx: number; head: number; w0: number } {
  const { mm, phys } = bSetup({ freeMode: 'after-clear' });
  anonMap(mm, PMD_SIZE, BASE);
  expect(madvise(mm, BASE, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  const w0 = cpuStats.writeIncrements;
  for (let i = 0; i < PTRS_PER_PTE; i++) expect(cpuWrite(mm, BASE + i * PAGE_SIZE, 1000 + i)).toBe(0);
  const idx = BASE / PMD_SIZE;
  const pmd = Atomics.load(mm.pmd, idx);
  expect(pmd & PTE_TYPE_MASK).toBe(PMD_TYPE_HUGE);
  return { mm, phys, idx, head: pmd & PTE_PAYLOAD_MASK, w0 };
}

function equationHolds(phys: PhysMem, w0: number): void {
  expect(cpuStats.writeIncrements - w0 + phys.copied).toBe(phys.liveWriteCount() + phys.discarded);
}

describe('THP migration whose PMD migration entry is split meanwhile', () => {
  it('completes through the 512 PTE migration entries: no entry left, old frames freed, content kept', () => {
    const { mm, phys, idx, head, w0 } = thpSetup();
    // Right after migrateHuge's CLEAR (the PMD is a migration entry, the copy not yet done),
    // another thread splits the PMD (__split_huge_pmd keeps migration entries, as PTEs).
    let splits = 0;
    mm.notifiers.register({
      invalidateRangeStart: () => 0,
      invalidateRangeEnd: (r: MmuNotifierRange) => {
        if (
          splits === 0 &&
          r.event === MMU_NOTIFY_CLEAR &&
          r.start === BASE &&
          r.end === BASE + PMD_SIZE &&
          (Atomics.load(mm.pmd, idx) & PTE_TYPE_MASK) === PMD_TYPE_MIGRATION
        ) {
          splits++;
          expect(splitHugePmd(mm, BASE)).toBe(0);
        }
      },
      release: () => {},
    });
    const moved = migratePages(mm, BASE, BASE + PMD_SIZE);
    expect(splits).toBe(1);
    expect(moved).toBe(PTRS_PER_PTE);
    expect(Atomics.load(mm.pmd, idx)).toBe(PMD_TYPE_TABLE);
    for (let i = 0; i < PTRS_PER_PTE; i++) {
      const e = Atomics.load(mm.pte, idx * PTRS_PER_PTE + i);
      expect(e & PTE_TYPE_MASK, `page ${i}`).toBe(PTE_TYPE_PRESENT);
      const pfn = e & PTE_PAYLOAD_MASK;
      expect(pfn - i === head, `page ${i} still maps the old frame`).toBe(false);
      expect(phys.frameState(pfn) & FR_LOCKED).toBe(0);
      expect(phys.pageRefcount(pfn)).toBe(1);
      expect(phys.frameState(head + i), `old frame ${i} freed`).toBe(0);
    }
    for (let i = 0; i < PTRS_PER_PTE; i++) expect(cpuRead(mm, BASE + i * PAGE_SIZE)).toBe(1000 + i);
    equationHolds(phys, w0);
  });

  it('the subpages whose entries were zapped meanwhile are discarded, the rest moved', () => {
    const { mm, phys, idx, head, w0 } = thpSetup();
    mm.notifiers.register({
      invalidateRangeStart: () => 0,
      invalidateRangeEnd: (r: MmuNotifierRange) => {
        if (r.start === BASE && (Atomics.load(mm.pmd, idx) & PTE_TYPE_MASK) === PMD_TYPE_MIGRATION) {
          splitHugePmd(mm, BASE);
          // a partial zap clears migration entries without freeing (the migration holds them)
          for (let i = 0; i < 8; i++) Atomics.store(mm.pte, idx * PTRS_PER_PTE + i, 0);
        }
      },
      release: () => {},
    });
    expect(migratePages(mm, BASE, BASE + PMD_SIZE)).toBe(PTRS_PER_PTE - 8);
    for (let i = 0; i < PTRS_PER_PTE; i++) {
      expect(phys.frameState(head + i), `old frame ${i}`).toBe(0);
      const e = Atomics.load(mm.pte, idx * PTRS_PER_PTE + i);
      expect(e & PTE_TYPE_MASK).toBe(i < 8 ? 0 : PTE_TYPE_PRESENT);
    }
    equationHolds(phys, w0);
  });
});

describe('migrate_vma collect and split_huge_page', () => {
  it('skips a THP whose page lock another migration holds, and never splits its PMD', () => {
    const { mm, phys, idx, head } = thpSetup();
    expect(trylockPage(phys, head)).toBe(true); // a THP migration in flight holds it
    const m = migrateVmaInit(BASE, BASE + 16 * PAGE_SIZE, 1, 1, MIGRATE_VMA_SELECT_SYSTEM);
    mm.mmapReadLock();
    expect(migrateVmaSetup(mm, m)).toBe(0);
    mm.mmapReadUnlock();
    expect(m.cpages).toBe(0);
    expect(Atomics.load(mm.pmd, idx) & PTE_TYPE_MASK).toBe(PMD_TYPE_HUGE);
    expect(phys.frameState(head) & FR_HEAD).not.toBe(0);
    unlockPage(phys, head);
  });

  it('splits an unlocked THP under its page lock and leaves no subpage locked', () => {
    const { mm, phys, idx, head } = thpSetup();
    const m = migrateVmaInit(BASE, BASE + 16 * PAGE_SIZE, 1, 1, MIGRATE_VMA_SELECT_SYSTEM);
    mm.mmapReadLock();
    expect(migrateVmaSetup(mm, m)).toBe(0);
    expect(m.cpages).toBe(16);
    migrateVmaFinalize(mm, m); // nothing moved: every page mapped again
    mm.mmapReadUnlock();
    expect(Atomics.load(mm.pmd, idx)).toBe(PMD_TYPE_TABLE);
    for (let i = 0; i < PTRS_PER_PTE; i++) {
      expect(phys.frameState(head + i) & FR_LOCKED, `subpage ${i}`).toBe(0);
      expect(Atomics.load(mm.pte, idx * PTRS_PER_PTE + i) & PTE_TYPE_MASK).not.toBe(PTE_TYPE_MIGRATION);
    }
  });

  it('a split keeps the head locked for its holder and unlocks the tails (__split_huge_page)', () => {
    const { mm, phys, head } = thpSetup();
    expect(trylockPage(phys, head)).toBe(true);
    expect(splitHugePmd(mm, BASE)).toBe(0);
    expect(phys.frameState(head) & FR_LOCKED).not.toBe(0);
    for (let i = 1; i < PTRS_PER_PTE; i++) expect(phys.frameState(head + i) & FR_LOCKED).toBe(0);
    unlockPage(phys, head);
    for (let i = 0; i < PTRS_PER_PTE; i++) expect(phys.pageRefcount(head + i)).toBe(1);
  });
});

describe('MADV_FREE of a whole THP', () => {
  it('a CPU write to one subpage keeps the whole THP: reclaim swaps it out, nothing discarded', () => {
    const { mm, phys, head, w0 } = thpSetup();
    expect(madvise(mm, BASE, PMD_SIZE, MADV_FREE)).toBe(0);
    expect(phys.frameState(head) & FR_LAZYFREE).not.toBe(0);
    expect(cpuWrite(mm, BASE + 77 * PAGE_SIZE, 4242)).toBe(0);
    expect(phys.frameState(head) & FR_LAZYFREE).toBe(0);
    const d0 = phys.discarded;
    swapOut(mm, BASE, BASE + PMD_SIZE);
    expect(phys.discarded).toBe(d0);
    expect(cpuRead(mm, BASE + 77 * PAGE_SIZE)).toBe(4242);
    expect(cpuRead(mm, BASE + 5 * PAGE_SIZE)).toBe(1005);
    equationHolds(phys, w0);
  });

  it('a device write to a tail cancels the lazy-free state of the THP too', () => {
    const { mm, phys, head } = thpSetup();
    expect(madvise(mm, BASE, PMD_SIZE, MADV_FREE)).toBe(0);
    noteDeviceWrite(phys, head + 300);
    expect(phys.frameState(head) & FR_LAZYFREE).toBe(0);
  });
});
