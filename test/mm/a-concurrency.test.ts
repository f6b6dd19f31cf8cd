import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { cpuStats, cpuWrite } from '../../src/mm/cpu.js';
import { FR_ALLOCATED, PAGE_SIZE } from '../../src/mm/layout.js';
import { createMm } from '../../src/mm/mm.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  mmap,
  munmap,
  PROT_READ,
  PROT_WRITE,
} from '../../src/mm/mmap.js';
import { MMU_NOTIFY_CLEAR } from '../../src/mm/mmu-notifier.js';
import { zapRangeNotify } from '../../src/mm/pgtable.js';
import { createPhysMem } from '../../src/mm/physmem.js';

describe('concurrency (seeded, bounded)', () => {
  it('worker CPU writes vs main-thread munmap/zap: allocator consistent, lost-update equation holds', async () => {
    const SEED = 0x1234567;
    const phys = createPhysMem({ nframes: 4096, W: 4 });
    const mm = createMm(phys, { size: 16 << 20, freeMode: 'after-clear' });
    const npages = 64;
    const base = mmap(mm, {
      length: npages * PAGE_SIZE,
      prot: PROT_READ | PROT_WRITE,
      flags: MAP_PRIVATE | MAP_ANONYMOUS,
    });
    // tsx 4.23 on Node 20 registers its hooks only on the main thread: the worker registers them
    // itself before importing the TypeScript entry.
    const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
    const entry = JSON.stringify(new URL('./a-worker.ts', import.meta.url).href);
    const worker = new Worker(`import(${api}).then((t) => { t.register(); return import(${entry}); })`, {
      eval: true,
      workerData: { phys: phys.descriptor(), mm: mm.descriptor(), base, npages, ops: 3000, seed: SEED },
    });
    const done = new Promise<{ increments: number; errors: number }>((res, rej) => {
      worker.on('message', res);
      worker.on('error', rej);
    });
    let finished = false;
    void done.then(() => {
      finished = true;
    });
    cpuStats.writeIncrements = 0;
    let x = SEED;
    const deadline = Date.now() + 20_000;
    for (let op = 0; op < 3000 && !finished && Date.now() < deadline; op++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const p = (x >>> 0) % npages;
      const kind = (x >>> 8) % 3;
      if (kind === 0) {
        mm.mmapReadLock();
        zapRangeNotify(
          mm,
          base + p * PAGE_SIZE,
          base + Math.min(npages, p + 4) * PAGE_SIZE,
          MMU_NOTIFY_CLEAR,
        );
        mm.mmapReadUnlock();
      } else if (kind === 1) {
        expect(munmap(mm, base + p * PAGE_SIZE, PAGE_SIZE), `seed ${SEED}`).toBe(0);
        const a = mmap(mm, {
          addr: base + p * PAGE_SIZE,
          length: PAGE_SIZE,
          prot: PROT_READ | PROT_WRITE,
          flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        });
        expect(a, `seed ${SEED}`).toBe(base + p * PAGE_SIZE);
      } else {
        cpuWrite(mm, base + p * PAGE_SIZE, op, 1);
      }
      if (op % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    const w = await done;
    // a write may hit the page between munmap and the new mmap (-EFAULT): legitimate, counted
    expect(w.errors, `seed ${SEED}`).toBeLessThan(3000);
    const inc = w.increments + cpuStats.writeIncrements;
    expect(inc + phys.copied, `seed ${SEED}`).toBe(phys.liveWriteCount() + phys.discarded);
    // allocator: free count matches the state words
    let allocated = 0;
    for (let i = 1024; i < phys.nframes; i++) if ((phys.frameState(i) & FR_ALLOCATED) !== 0) allocated++;
    expect(allocated + phys.freeFrames, `seed ${SEED}`).toBe(phys.nframes - 1024);
    await worker.terminate();
  }, 30_000);
});
