import { describe, expect, it } from 'vitest';
import {
  FIRST_FREE_PFN,
  FR_ALLOCATED,
  FR_DEVICE_PRIVATE,
  FR_HEAD,
  FR_TAIL,
  MM_FREE_MODE,
  PAGE_SIZE,
  PTRS_PER_PTE,
} from '../../src/mm/layout.js';
import { attachMm, createMm } from '../../src/mm/mm.js';
import { MMU_NOTIFY_UNMAP } from '../../src/mm/mmu-notifier.js';
import { attachPhysMem, createPhysMem, FREE_EVENT_OTHER, PhysMem } from '../../src/mm/physmem.js';

describe('PhysMem frames', () => {
  it('allocates zeroed frames with refcount 1 and frees them with generation++ (LIFO reuse)', () => {
    const phys = createPhysMem({ nframes: 4096, W: 4 });
    const free0 = phys.freeFrames;
    expect(free0).toBe(4096 - FIRST_FREE_PFN);
    const a = phys.allocPage();
    expect(a).toBe(FIRST_FREE_PFN);
    expect(phys.frameState(a)).toBe(FR_ALLOCATED | 1);
    Atomics.store(phys.frames.data, a * 4 + 2, 77);
    Atomics.add(phys.frames.wcount, a, 3);
    phys.getPage(a);
    expect(phys.pageRefcount(a)).toBe(2);
    expect(phys.putPage(a, MMU_NOTIFY_UNMAP, 5, 123)).toBe(false);
    expect(phys.generation(a)).toBe(0);
    expect(phys.putPage(a, MMU_NOTIFY_UNMAP, 5, 123)).toBe(true);
    expect(phys.generation(a)).toBe(1);
    expect(phys.frameState(a)).toBe(0);
    expect(phys.discarded).toBe(3);
    expect(phys.lastFreeEvent(a)).toEqual({
      pfn: a,
      gen: 1,
      event: MMU_NOTIFY_UNMAP,
      mmId: 5,
      page: 123,
      order: 0,
    });
    const b = phys.allocPage(); // LIFO: the frame just freed comes back, zeroed
    expect(b).toBe(a);
    expect(phys.readWord(b, 2)).toBe(0);
    expect(Atomics.load(phys.frames.wcount, b)).toBe(0);
    expect(phys.freeFrames).toBe(free0 - 1);
    expect(() => {
      phys.putPage(b);
      phys.putPage(b);
    }).toThrow(/underflow/);
  });

  it('runs out: -1 when no frame is left, and order-9 blocks are naturally aligned', () => {
    const phys = createPhysMem({ nframes: 2048, W: 1 });
    const h = phys.allocHugePage();
    expect(h).toBe(1024);
    expect(phys.frameState(h)).toBe(FR_ALLOCATED | FR_HEAD | 1);
    expect(phys.frameState(h + 511)).toBe(FR_ALLOCATED | FR_TAIL);
    phys.getPage(h + 7); // a tail's reference goes to the head
    expect(phys.pageRefcount(h)).toBe(2);
    expect(phys.allocHugePage()).toBe(1536);
    expect(phys.allocPage()).toBe(-1);
    expect(phys.allocHugePage()).toBe(-1);
    phys.putPage(h + 3);
    expect(phys.putPage(h, 1, 1, 0)).toBe(true);
    expect(phys.generation(h + 300)).toBe(1);
    expect(phys.lastFreeEvent(h + 300)?.pfn).toBe(h);
    expect(phys.freeFrames).toBe(512);
    const p = phys.allocPage(); // fragments the block: no huge page any more
    expect(p).toBeGreaterThanOrEqual(1024);
    expect(phys.allocHugePage()).toBe(-1);
  });

  it('device-private frames carry their owner', () => {
    const phys = createPhysMem({ nframes: 2048, W: 1 });
    const d = phys.allocDevicePage(3);
    expect(phys.frameState(d)).toBe(FR_ALLOCATED | FR_DEVICE_PRIVATE | (3 << 24) | 1);
  });

  it('swap slots move content and count discards', () => {
    const phys = createPhysMem({ nframes: 2048, W: 2 });
    const f = phys.allocPage();
    Atomics.store(phys.frames.data, f * 2 + 1, 9);
    Atomics.store(phys.frames.wcount, f, 4);
    const s = phys.swapAlloc();
    phys.swapOutContent(s, f);
    phys.putPageMoved(f);
    expect(phys.discarded).toBe(0);
    expect(phys.swapReadWord(s, 1)).toBe(9);
    expect(phys.liveWriteCount()).toBe(4);
    phys.swapDup(s);
    const g = phys.allocPage();
    phys.swapInContent(g, s, true);
    expect(phys.copied).toBe(4);
    expect(phys.swapFree(s)).toBe(false);
    expect(phys.swapFree(s)).toBe(true);
    expect(phys.swapDiscardedSlots).toBe(1);
    expect(phys.discarded).toBe(4);
    // equation: 4 increments + 4 copied = 4 live (g) + 4 discarded
    expect(phys.liveWriteCount()).toBe(4);
  });

  it('page cache: find-or-create, lookup, unnamed shmem dropped with its last mapping', () => {
    const phys = createPhysMem({ nframes: 2048, W: 2 });
    const file = phys.createFile(8);
    expect(phys.findGetPage(file, 3)).toBe(-1);
    expect(phys.fileWriteWord(file, 3, 1, 42)).toBe(0);
    const p = phys.findGetPage(file, 3);
    expect(phys.pageRefcount(p)).toBe(2);
    expect(phys.fileReadWord(file, 3, 1)).toBe(42);
    phys.putPage(p);
    expect(phys.findOrCreatePage(file, 8)).toBe(-1);
    const sh = phys.createFile(2, { unnamed: true });
    const q = phys.findOrCreatePage(sh, 0);
    phys.putPage(q);
    phys.fileGet(sh);
    phys.filePut(sh);
    expect(phys.frameState(q)).toBe(0);
    expect(phys.frameState(p)).not.toBe(0);
    // a dead file's id and page slots are reused (first fit), empty
    expect(phys.createFile(1, { unnamed: true })).toBe(sh);
    expect(phys.pageCached(sh, 0)).toBe(false);
    expect(phys.createFile(3)).toBe(sh + 1);
  });

  it('attaches from a descriptor and sees the same words', () => {
    const phys = createPhysMem({ nframes: 2048, W: 1 });
    const other = attachPhysMem(phys.descriptor());
    const a = other.allocPage();
    expect(phys.pageRefcount(a)).toBe(1);
    const mm = createMm(phys, { size: 4 << 20, freeMode: 'after-clear', thpMode: 'always' });
    const mm2 = attachMm(mm.descriptor(), other);
    expect(mm2.freeMode).toBe(1);
    expect(mm2.thpMode).toBe(1);
    expect(mm2.ctl[MM_FREE_MODE]).toBe(1);
    expect(FREE_EVENT_OTHER).toBe(7);
  });

  it('shared memory per page of a 1 GiB address space: page table + frame metadata <= 16 bytes', () => {
    const npages = (1 << 30) / PAGE_SIZE;
    for (const nframes of [1 << 16, npages]) {
      const phys = createPhysMem({ nframes, W: 1, nswap: 64, filePages: 64 });
      const mm = createMm(phys, { size: 1 << 30 });
      const f = phys.frames;
      const pageTable = mm.pte.byteLength + mm.pmd.byteLength;
      const frameMeta = f.state.byteLength + f.gen.byteLength + f.wcount.byteLength;
      const perPage = (pageTable + frameMeta) / npages;
      // printed for the report
      console.log(`nframes=${nframes}: ${perPage.toFixed(4)} bytes/page`);
      expect(f.wcount.BYTES_PER_ELEMENT).toBe(2); // 16-bit write counters
      expect(perPage).toBe(4 + 4 / PTRS_PER_PTE + (10 * nframes) / npages);
      // default pool (65,536 frames): 6.5078; one frame per page of address space (the budget's
      // worst case): 4 PTE + 0.0078 PMD + 4 state + 4 generation + 2 write counter = 14.0078
      expect(perPage).toBeLessThanOrEqual(16);
      expect(PhysMem.METADATA_BYTES_PER_FRAME).toBe(10);
      expect(frameMeta).toBe(PhysMem.METADATA_BYTES_PER_FRAME * nframes);
    }
  });
});
