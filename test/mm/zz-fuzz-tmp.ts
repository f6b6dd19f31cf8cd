import { cpuWrite, cpuStats } from '../../src/mm/cpu.js';
import { PAGE_SIZE, PMD_SIZE, PTRS_PER_PTE, PTE_TYPE_MASK, PTE_TYPE_PRESENT, PTE_WRITE, PTE_PROTNONE, PTE_SPECIAL, PMD_TYPE_HUGE } from '../../src/mm/layout.js';
import { createMm } from '../../src/mm/mm.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, mmap, munmap, mprotect, PROT_READ, PROT_WRITE, PROT_NONE } from '../../src/mm/mmap.js';
import { madvise, MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE } from '../../src/mm/madvise.js';
import { swapOut } from '../../src/mm/reclaim.js';
import { changeProtNuma, migratePages } from '../../src/mm/numa.js';
import { splitHugePage } from '../../src/mm/thp.js';
import { collapseHugePage } from '../../src/mm/khugepaged.js';
import { memoryFailure } from '../../src/mm/memory-failure.js';
import { clearRefs } from '../../src/mm/writeback.js';
import { createPhysMem } from '../../src/mm/physmem.js';

const seed0 = Number(process.argv[2] ?? 1);
const nops = Number(process.argv[3] ?? 5000);
const useMf = process.argv[4] !== 'nomf';
let seed = seed0 >>> 0 || 1;
const rnd = (n: number) => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n; };
const phys = createPhysMem({ nframes: 32768, W: 4 });
const mm = createMm(phys, { size: 64 << 20, freeMode: 'after-clear', thpMode: 'madvise' });
const NP = 2048;
const a = mmap(mm, { length: NP * PAGE_SIZE, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, addr: 4 * PMD_SIZE });
madvise(mm, a, NP * PAGE_SIZE, MADV_HUGEPAGE);
cpuStats.writeIncrements = 0;
const log: string[] = [];
for (let op = 0; op < nops; op++) {
  const r = rnd(14);
  const n = 1 + rnd(32);
  const page = rnd(NP - n);
  const addr = a + page * PAGE_SIZE;
  let d = '';
  switch (r) {
    case 0: case 1: case 2: { for (let i = 0; i < n; i++) cpuWrite(mm, addr + i * PAGE_SIZE, op); d = `write ${page} ${n}`; break; }
    case 3: d = `dontneed ${page} ${n} ${madvise(mm, addr, n * PAGE_SIZE, MADV_DONTNEED)}`; break;
    case 4: d = `free ${page} ${n} ${madvise(mm, addr, n * PAGE_SIZE, MADV_FREE)}`; break;
    case 5: d = `swapout ${page} ${n} ${swapOut(mm, addr, addr + n * PAGE_SIZE)}`; break;
    case 6: d = `migrate ${page} ${n} ${migratePages(mm, addr, addr + n * PAGE_SIZE)}`; break;
    case 7: d = `numa ${page} ${n} ${changeProtNuma(mm, addr, addr + n * PAGE_SIZE)}`; break;
    case 8: { const idx = (a / PMD_SIZE) + rnd(NP / 512); d = `split ${idx} ${splitHugePage(mm, idx * PMD_SIZE)}`; break; }
    case 9: {
      const idx = (a / PMD_SIZE) + rnd(NP / 512);
      madvise(mm, idx * PMD_SIZE, PMD_SIZE, MADV_HUGEPAGE);
      mprotect(mm, idx * PMD_SIZE, PMD_SIZE, PROT_READ | PROT_WRITE);
      for (let i = 0; i < 512; i++) {
        const pte = Atomics.load(mm.pte, idx * 512 + i);
        if ((pte & PTE_TYPE_MASK) === PTE_TYPE_PRESENT && (pte & (PTE_WRITE | PTE_PROTNONE | PTE_SPECIAL)) === PTE_WRITE) continue;
        cpuWrite(mm, idx * PMD_SIZE + i * PAGE_SIZE, op);
      }
      d = `collapse ${idx} ${collapseHugePage(mm, idx * PMD_SIZE)}`; break;
    }
    case 10: { const u = rnd(3); d = `mprotect ${page} ${n} ${u} ${mprotect(mm, addr, n * PAGE_SIZE, u === 0 ? PROT_READ | PROT_WRITE : u === 1 ? PROT_READ : PROT_NONE)}`; break; }
    case 11: {
      if (munmap(mm, addr, n * PAGE_SIZE) === 0) mmap(mm, { addr, length: n * PAGE_SIZE, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED });
      d = `munmap ${page} ${n}`; break;
    }
    case 12: d = useMf && rnd(10) === 0 ? `mf ${page} ${memoryFailure(mm, addr)}` : `clearrefs ${clearRefs(mm)}`; break;
    case 13: d = `hp ${page} ${n} ${madvise(mm, addr, n * PAGE_SIZE, rnd(2) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)}`; break;
  }
  log.push(d);
  const diff = cpuStats.writeIncrements + phys.copied - (phys.liveWriteCount() + phys.discarded);
  if (diff !== 0) {
    console.log(`seed ${seed0} op ${op}: diff ${diff}`);
    console.log(log.slice(-8).join('\n'));
    process.exit(1);
  }
}
console.log(`seed ${seed0} ok`);
