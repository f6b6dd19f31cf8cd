/**
 * Memory figures: shared bytes per simulated page, by layout (read from the buffers' byteLength,
 * nothing assumed), and the peak RSS of a 1 GiB address space with 8 devices, measured in a child
 * process against that child's own RSS before it built anything (the baseline of the same run).
 *
 * Run as a script with `--child` it builds the world and prints one JSON line; run as a script
 * without it (`npx tsx bench/memory.ts`) it runs that child and prints the figures per part.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dmirrorDriver } from '../src/driver/dmirror.js';
import { cpuWritePages } from '../src/mm/cpu.js';
import { PAGE_SIZE, PTRS_PER_PTE } from '../src/mm/layout.js';
import { createMm } from '../src/mm/mm.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, mmap, PROT_READ, PROT_WRITE } from '../src/mm/mmap.js';
import { createPhysMem } from '../src/mm/physmem.js';

const GiB = 1 << 30;
const NDEV = 8;

export interface LayoutPart {
  name: string;
  bytes: number;
  perPage: number;
}

export interface MemoryResult {
  npages: number;
  nframes: number;
  W: number;
  /** mm: page table (PTE + PMD words) and frame metadata (state, gen, 16-bit wcount) */
  mmLayout: LayoutPart[];
  mmBytesPerPage: number;
  mmTarget: number;
  mmMet: boolean;
  /** one device file's mirror */
  mirrorLayout: LayoutPart[];
  mirrorBytesPerPage: number;
  mirrorTarget: number;
  mirrorMet: boolean;
  /** per device, not per file: zone-device data (one word per physical frame) */
  deviceLayout: LayoutPart[];
  /** outside the budget, listed for completeness */
  otherLayout: LayoutPart[];
  rssBaselineBytes: number;
  rssPeakBytes: number;
  rssRatio: number;
  populatedPages: number;
  includes: string;
}

function part(name: string, bytes: number, npages: number): LayoutPart {
  return { name, bytes, perPage: bytes / npages };
}

function child(): MemoryResult {
  const rssBaselineBytes = process.memoryUsage().rss;
  const npages = GiB / PAGE_SIZE;
  const nframes = npages; // one frame per page of address space: the worst case the budget covers
  const W = 1;
  const phys = createPhysMem({ nframes, W });
  const mm = createMm(phys, { size: GiB });
  const len = GiB - 2 * PTRS_PER_PTE * PAGE_SIZE;
  const addr = mmap(mm, { length: len, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS });
  if (addr < 0) throw new Error(`mmap ${addr}`);
  const files = [];
  const devs = [];
  for (let i = 0; i < NDEV; i++) {
    const dev = dmirrorDriver.createDevice({ phys, log: null });
    devs.push(dev);
    const f = dev.open(mm);
    if (typeof f === 'number') throw new Error(`open ${f}`);
    files.push(f);
  }
  // populate half of the space on the CPU and mirror it on every device
  const populated = Math.floor(len / PAGE_SIZE / 2);
  for (let p = 0; p < populated; p += 512) {
    const a = addr + p * PAGE_SIZE;
    if (cpuWritePages(mm, a, 512, () => 1) !== 0) throw new Error('populate');
    for (const f of files) if (f.rangeFault(a, a + 512 * PAGE_SIZE, false) !== 0) throw new Error('mirror');
  }
  const rssPeakBytes = process.resourceUsage().maxRSS * 1024;
  const fr = phys.frames;
  const mmLayout = [
    part('PTE words', mm.pte.byteLength, npages),
    part('PMD words', mm.pmd.byteLength, npages),
    part('frame state', fr.state.byteLength, npages),
    part('frame generation', fr.gen.byteLength, npages),
    part('frame write counter (16-bit)', fr.wcount.byteLength, npages),
  ];
  const mmBytes = mmLayout.reduce((s, x) => s + x.bytes, 0);
  const f0 = files[0]!;
  const mirrorLayout = [part('mirror (entry + generation)', f0.mirror.byteLength, npages)];
  const mirrorBytes = mirrorLayout.reduce((s, x) => s + x.bytes, 0);
  const d0 = devs[0]!;
  const deviceLayout = [part('device zdd (per frame)', d0.zdd.byteLength, npages)];
  const otherLayout = [
    part('VMA table', mm.vmas.byteLength, npages),
    part('mm control block', mm.ctl.byteLength, npages),
    part('file control + subscription words', f0.ctl.byteLength + f0.subWords.byteLength, npages),
    part(`frame content (W=${W} data words, data not metadata)`, fr.data.byteLength, npages),
  ];
  return {
    npages,
    nframes,
    W,
    mmLayout,
    mmBytesPerPage: mmBytes / npages,
    mmTarget: 16,
    mmMet: mmBytes / npages <= 16,
    mirrorLayout,
    mirrorBytesPerPage: mirrorBytes / npages,
    mirrorTarget: 8,
    mirrorMet: mirrorBytes / npages <= 8,
    deviceLayout,
    otherLayout,
    rssBaselineBytes,
    rssPeakBytes,
    rssRatio: rssPeakBytes / rssBaselineBytes,
    populatedPages: populated,
    includes: `1 GiB mm (${npages} pages), ${nframes} frames of W=${W}, ${NDEV} dmirror devices each with one file; half the space populated on the CPU and mirrored on every device. Peak RSS is the child's maxRSS; the baseline is the same child's RSS before building anything (Node + tsx + modules).`,
  };
}

/** Run the child and return its figures. */
export function memoryFigures(): MemoryResult {
  const self = fileURLToPath(import.meta.url);
  const out = execFileSync(process.execPath, ['--import', import.meta.resolve('tsx'), self, '--child'], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  const line = out.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as MemoryResult;
}

function printFigures(m: MemoryResult): void {
  const parts = (l: LayoutPart[]): string => l.map((x) => `${x.name} ${x.perPage.toFixed(4)}`).join(' + ');
  const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  process.stdout.write(
    `mm shared bytes per simulated page: ${m.mmBytesPerPage.toFixed(4)} (target <= ${m.mmTarget}: ${met(m.mmMet)})\n` +
      `  ${parts(m.mmLayout)}\n` +
      `device mirror shared bytes per page: ${m.mirrorBytesPerPage.toFixed(4)} (target <= ${m.mirrorTarget}: ${met(m.mirrorMet)})\n` +
      `  ${parts(m.mirrorLayout)}; per device: ${parts(m.deviceLayout)}\n` +
      `peak RSS ${(m.rssPeakBytes / 2 ** 20).toFixed(0)} MiB (baseline ${(m.rssBaselineBytes / 2 ** 20).toFixed(0)} MiB)\n` +
      `${m.includes}\n`,
  );
}

if (process.argv.includes('--child')) {
  process.stdout.write(`${JSON.stringify(child())}\n`);
} else if (process.argv[1] !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) {
  printFigures(memoryFigures());
}
