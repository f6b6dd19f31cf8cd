/** Worker for a-concurrency.test.ts: CPU writes to random pages of an attached mm (seeded). */
import { parentPort, workerData } from 'node:worker_threads';
import { cpuStats, cpuWrite } from '../../src/mm/cpu.js';
import { attachMm } from '../../src/mm/mm.js';
import { attachPhysMem } from '../../src/mm/physmem.js';

const { phys: pd, mm: md, base, npages, ops, seed } = workerData;
const phys = attachPhysMem(pd);
const mm = attachMm(md, phys);
let x = seed | 0 || 1;
let errors = 0;
for (let i = 0; i < ops; i++) {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  const r = cpuWrite(mm, base + ((x >>> 0) % npages) * 4096, i);
  if (r !== 0) errors++;
  // also churn the allocator directly
  const f = phys.allocPage();
  if (f >= 0) phys.putPage(f);
}
parentPort!.postMessage({ increments: cpuStats.writeIncrements, errors });
