/**
 * Reclaim racing a device fault on the new swap entry, replayed deterministically on one thread
 * (found by the swap-out-only bisection of the hot-zipf lost-update violations).
 *
 * The window: try_to_unmap_one has made the PTE a swap entry (PTL dropped, invalidate_range_end
 * not yet called) when a device's hmm_range_fault, begun before the start callbacks, faults on it
 * (handle_mm_fault -> do_swap_page). The kernel's fault finds the page in the swap cache; hmmsim
 * has no swap cache, so the fault reads the slot, which must already hold the page's content and
 * write counter. When the content was written to the slot only after the PTE change, the fault
 * read the slot's previous (stale) content and counter and freed the slot; the later pageout went
 * into a free slot, so the page's writes vanished from the lost-update equation and the stale
 * counter was counted instead.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { POINT_BEFORE_END, setJitterPointHook } from '../../src/checker/points.js';
import { cpuRead, cpuStats, cpuWrite } from '../../src/mm/cpu.js';
import { FAULT_FLAG_WRITE, handleMmFault } from '../../src/mm/fault.js';
import {
  PAGE_SIZE,
  PTE_PAYLOAD_MASK,
  PTE_TYPE_MASK,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
} from '../../src/mm/layout.js';
import { ptepGet } from '../../src/mm/pgtable.js';
import type { PhysMem } from '../../src/mm/physmem.js';
import { swapOut } from '../../src/mm/reclaim.js';
import { anonMap, bSetup, pg } from './b-helpers.js';

const P = PAGE_SIZE;
const A = 0x400000;

afterEach(() => {
  setJitterPointHook(null);
});

function equationHolds(phys: PhysMem, w0: number): void {
  expect(cpuStats.writeIncrements - w0 + phys.copied).toBe(phys.liveWriteCount() + phys.discarded);
}

describe.each(['after-end', 'after-clear'] as const)(
  'swap-out vs a fault on the new swap entry (free %s)',
  (freeMode) => {
    it('the fault reads the page content and counter from the slot, not the slot’s previous ones', () => {
      const { mm, phys } = bSetup({ freeMode });
      const w0 = cpuStats.writeIncrements;
      const a = anonMap(mm, 2 * P, A);
      // Give the slot reclaim will take a stale past: page 1 (one write, 11) out and back in.
      expect(cpuWrite(mm, a + P, 11)).toBe(0);
      expect(swapOut(mm, a + P, a + 2 * P)).toBe(1);
      const stale = ptepGet(mm, pg(a) + 1) & PTE_PAYLOAD_MASK;
      expect(cpuRead(mm, a + P)).toBe(11); // swapped in: the slot is free again, its content stays
      expect(phys.swapCount(stale)).toBe(0);
      // Page 0: three writes, the last one 55.
      for (const v of [53, 54, 55]) expect(cpuWrite(mm, a, v)).toBe(0);
      equationHolds(phys, w0);

      // A device's write fault on page 0 right after the PTE became a swap entry.
      let fired = 0;
      let slot = -1;
      setJitterPointHook((p) => {
        if (p !== POINT_BEFORE_END || fired !== 0) return;
        const e = ptepGet(mm, pg(a));
        if ((e & PTE_TYPE_MASK) !== PTE_TYPE_SWAP) return;
        fired++;
        slot = e & PTE_PAYLOAD_MASK;
        expect(handleMmFault(mm, a, FAULT_FLAG_WRITE)).toBe(0);
      });
      expect(swapOut(mm, a, a + P)).toBe(1);
      setJitterPointHook(null);
      expect(fired).toBe(1);
      expect(slot).toBe(stale); // the LIFO swap stack handed out the same slot

      // The fault mapped the page's own content and counter, and the slot went with it.
      const e = ptepGet(mm, pg(a));
      expect(e & PTE_TYPE_MASK).toBe(PTE_TYPE_PRESENT);
      const pfn = e & PTE_PAYLOAD_MASK;
      expect(cpuRead(mm, a)).toBe(55);
      expect(Atomics.load(phys.frames.wcount, pfn)).toBe(3);
      expect(phys.swapCount(slot)).toBe(0);
      equationHolds(phys, w0);
    });
  },
);
