/**
 * SEAM: the one adapter between the simulation and the mm's mutation API (src/mm/*). The mutator
 * picks a kind and a range; each entry here turns that into the mm call(s), with the argument
 * choices (protections, which child to exit) drawn from the mutator's PRNG. A kind whose mm
 * function is not available is `null`: the mutator leaves it out of the weights and the results
 * list it under `unavailableKinds`.
 *
 * Return values: 0 (done), a negative errno (the mm refused: counted as `failed`), or 1 (nothing
 * to do there, e.g. no huge page to split: counted as `failed` too).
 */

import { cpuRead, cpuStats, cpuWrite } from '../mm/cpu.js';
import { exitMmap, mmput } from '../mm/exit.js';
import { forkMm } from '../mm/fork.js';
import { collapseHugePage } from '../mm/khugepaged.js';
import {
  HUGE_ZERO_PFN,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_HUGE,
  PTE_PAYLOAD_MASK,
  PTE_PROTNONE,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
  PTRS_PER_PTE,
  VM_WRITE,
  VMA_END,
  VMA_FLAGS,
} from '../mm/layout.js';
import { MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, madvise } from '../mm/madvise.js';
import { memoryFailure } from '../mm/memory-failure.js';
import type { MmStruct } from '../mm/mm.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  mmap,
  mprotect,
  munmap,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../mm/mmap.js';
import { changeProtNuma, migratePages } from '../mm/numa.js';
import { oomReap } from '../mm/oom.js';
import { swapOut } from '../mm/reclaim.js';
import { splitHugePage, thpSuitable } from '../mm/thp.js';
import { clearRefs, pageMkclean } from '../mm/writeback.js';
import type { Prng } from './prng.js';
import type { MutationKind } from './scenario.js';
import type { RegionPlacement } from './workload.js';

/** Files backing 'file' regions, per region index (created by mapRegion on the main thread). */
const regionFilesByPhys = new WeakMap<object, Map<number, number>>();

function protOf(p: string): number {
  return p === 'rw' ? PROT_READ | PROT_WRITE : p === 'r' ? PROT_READ : PROT_NONE;
}

/** Map [from, from + pages) of region `r` with the region's original kind and protection. */
function mapPart(mm: MmStruct, r: RegionPlacement, fromPage: number, pages: number): number {
  const addr = fromPage * PAGE_SIZE;
  const length = pages * PAGE_SIZE;
  const prot = protOf(r.prot);
  if (r.kind === 'anon')
    return mmap(mm, { addr, length, prot, flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED });
  if (r.kind === 'shmem') {
    // A fresh shmem file each time: a shared anonymous mapping's page cache dies with it.
    return mmap(mm, { addr, length, prot, flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED });
  }
  let regionFiles = regionFilesByPhys.get(mm.phys);
  if (regionFiles === undefined) {
    regionFiles = new Map();
    regionFilesByPhys.set(mm.phys, regionFiles);
  }
  let file = regionFiles.get(r.index);
  if (file === undefined) {
    file = mm.phys.createFile(r.pages);
    if (file < 0) return file;
    regionFiles.set(r.index, file);
  }
  return mmap(mm, {
    addr,
    length,
    prot,
    flags: MAP_SHARED | MAP_FIXED,
    file,
    offset: (fromPage - r.start) * PAGE_SIZE,
  });
}

/**
 * Map [from, from + pages) of region `r` as the region was set up: its kind and protection, and
 * madvise(HUGEPAGE) in a huge-page region (a range mapped again after munmap is a fresh VMA: without
 * the advice it would split the region's VMA and no THP could be faulted or collapsed there).
 */
function mapPartAdvised(mm: MmStruct, r: RegionPlacement, fromPage: number, pages: number): number {
  const ret = mapPart(mm, r, fromPage, pages);
  if (ret < 0) return ret;
  if (r.hugepage) return madvise(mm, fromPage * PAGE_SIZE, pages * PAGE_SIZE, MADV_HUGEPAGE);
  return 0;
}

/** Map a whole region at set-up; 0 or a negative errno. */
export function mapRegion(mm: MmStruct, r: RegionPlacement): number {
  return mapPartAdvised(mm, r, r.start, r.pages);
}

/** Is the PMD of 2 MiB step `idx` a THP (a huge PMD that is not the huge zero page)? Hint read. */
function isThp(mm: MmStruct, idx: number): boolean {
  const w = Atomics.load(mm.pmd, idx);
  return (w & PTE_TYPE_MASK) === PMD_TYPE_HUGE && (w & PTE_PAYLOAD_MASK) !== HUGE_ZERO_PFN;
}

/** The 2 MiB steps lying wholly inside region `r`. */
function regionSteps(r: RegionPlacement): { first: number; count: number } {
  const first = Math.ceil(r.start / PTRS_PER_PTE);
  const end = Math.floor((r.start + r.pages) / PTRS_PER_PTE);
  return { first, count: Math.max(0, end - first) };
}

/** THP statistics of the mutator (results: counters.thp). */
export const thpMutatorStats = {
  /** whole 2 MiB steps unmapped (their page table freed: the next fault there may map a THP) */
  stepUnmaps: 0,
  /** collapse targets populated by CPU writes first, and populations that failed */
  populated: 0,
  populateFailed: 0,
};

/** What a mutation sees. */
export interface MutationContext {
  mm: MmStruct;
  rng: Prng;
  /** forked children still alive (oldest first) */
  children: MmStruct[];
  /** the region the range lies in */
  region: RegionPlacement;
  /** CPU access statistics */
  cpu: { reads: number; writes: number; faults: number };
  /** ranges unmapped by munmap, to map again a few operations later */
  remaps: { region: RegionPlacement; page: number; pages: number; due: number }[];
  ops: number;
  cpuWriteFraction: number;
}

/** This thread's CPU write-counter increments (the CPU term of the lost-update equation). */
export function cpuWriteIncrements(): number {
  return cpuStats.writeIncrements;
}

export function resetCpuStats(): void {
  thpMutatorStats.stepUnmaps = 0;
  thpMutatorStats.populated = 0;
  thpMutatorStats.populateFailed = 0;
  cpuStats.reads = 0;
  cpuStats.writes = 0;
  cpuStats.writeIncrements = 0;
  cpuStats.faults = 0;
}

/** A count-returning mm call: errors stay, counts become 0. */
function nonNegative(r: number): number {
  return Math.min(r, 0);
}

export type MutationFn = (ctx: MutationContext, page: number, pages: number) => number;

const MAX_CHILDREN = 2;

function fork(ctx: MutationContext): MmStruct {
  const child = forkMm(ctx.mm);
  ctx.children.push(child);
  while (ctx.children.length > MAX_CHILDREN) mmput(ctx.children.shift()!);
  return child;
}

export const MUTATIONS: Record<MutationKind, MutationFn | null> = {
  munmap: (ctx, page, pages) => {
    // In a huge-page region, now and then the whole 2 MiB step: free_pgtables then frees its
    // page table, so the first fault after the remap finds a none PMD and may map a THP.
    const steps = regionSteps(ctx.region);
    if (ctx.region.hugepage && steps.count > 0 && ctx.rng.chance(0.25)) {
      const idx = Math.min(
        steps.first + steps.count - 1,
        Math.max(steps.first, Math.floor(page / PTRS_PER_PTE)),
      );
      page = idx * PTRS_PER_PTE;
      pages = PTRS_PER_PTE;
    }
    const ret = munmap(ctx.mm, page * PAGE_SIZE, pages * PAGE_SIZE);
    if (ret === 0) {
      if (pages === PTRS_PER_PTE && page % PTRS_PER_PTE === 0) thpMutatorStats.stepUnmaps++;
      ctx.remaps.push({ region: ctx.region, page, pages, due: ctx.ops + 8 });
    }
    return ret;
  },
  mprotect: (ctx, page, pages) => {
    const u = ctx.rng.nextFloat();
    const prot = u < 0.5 ? PROT_READ | PROT_WRITE : u < 0.8 ? PROT_READ : PROT_NONE;
    return mprotect(ctx.mm, page * PAGE_SIZE, pages * PAGE_SIZE, prot);
  },
  'madvise-dontneed': (ctx, page, pages) =>
    madvise(ctx.mm, page * PAGE_SIZE, pages * PAGE_SIZE, MADV_DONTNEED),
  'madvise-free': (ctx, page, pages) => madvise(ctx.mm, page * PAGE_SIZE, pages * PAGE_SIZE, MADV_FREE),
  'madvise-hugepage': (ctx, page, pages) =>
    madvise(
      ctx.mm,
      page * PAGE_SIZE,
      pages * PAGE_SIZE,
      ctx.rng.chance(0.5) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE,
    ),
  'numa-hinting': (ctx, page, pages) =>
    nonNegative(changeProtNuma(ctx.mm, page * PAGE_SIZE, (page + pages) * PAGE_SIZE)),
  'page-migration': (ctx, page, pages) =>
    nonNegative(migratePages(ctx.mm, page * PAGE_SIZE, (page + pages) * PAGE_SIZE)),
  'swap-out': (ctx, page, pages) =>
    nonNegative(swapOut(ctx.mm, page * PAGE_SIZE, (page + pages) * PAGE_SIZE)),
  fork: (ctx) => {
    fork(ctx);
    return 0;
  },
  writeback: (ctx, page, pages) => {
    // Writeback of the file pages under the range (the mutator routes this kind to file regions).
    const r = ctx.region;
    const file = r.kind === 'file' ? regionFilesByPhys.get(ctx.mm.phys)?.get(r.index) : undefined;
    if (file === undefined) return 1;
    const mms = [ctx.mm, ...ctx.children];
    for (let p = page; p < page + pages; p++) {
      const ret = pageMkclean(mms, file, p - r.start);
      if (ret < 0) return ret;
    }
    return 0;
  },
  'clear-refs': (ctx) => nonNegative(clearRefs(ctx.mm)),
  'thp-split': (ctx, page) => {
    // As reclaim and the deferred split do: pick a THP that exists (the first at or after the
    // step of `page`, wrapping in the region), not a random step.
    const { first, count } = regionSteps(ctx.region);
    if (count === 0) return 1;
    const from = Math.min(Math.max(Math.floor(page / PTRS_PER_PTE) - first, 0), count - 1);
    for (let k = 0; k < count; k++) {
      const idx = first + ((from + k) % count);
      if (isThp(ctx.mm, idx)) return splitHugePage(ctx.mm, idx * PMD_SIZE) === 0 ? 0 : 1;
    }
    return 1;
  },
  'thp-collapse': (ctx, page) => {
    // khugepaged collapses a step the program has populated: advise it, restore its protection,
    // write every page of it (faults, COW breaks, swap-ins, migrations back from the device),
    // then collapse. A device may still change the step in between: that collapse fails (-EAGAIN).
    const { first, count } = regionSteps(ctx.region);
    if (count === 0 || !ctx.region.hugepage) return 1;
    const idx = Math.min(Math.max(Math.floor(page / PTRS_PER_PTE), first), first + count - 1);
    const addr = idx * PMD_SIZE;
    if (Atomics.load(ctx.mm.pmd, idx) === 0 || isThp(ctx.mm, idx)) {
      // nothing to collapse there; a none PMD is left for a fault to map a THP
      return 1;
    }
    // (VMA reads without the mmap lock: this thread is the only one that changes VMAs)
    const vi = ctx.mm.vmaAt(idx * PTRS_PER_PTE);
    if (vi < 0 || !thpSuitable(ctx.mm, vi, idx)) {
      if (madvise(ctx.mm, addr, PMD_SIZE, MADV_HUGEPAGE) < 0) return 1;
    }
    const vj = ctx.mm.vmaAt(idx * PTRS_PER_PTE);
    if (
      ctx.region.prot === 'rw' &&
      (vj < 0 ||
        (ctx.mm.vmaField(vj, VMA_FLAGS) & VM_WRITE) === 0 ||
        ctx.mm.vmaField(vj, VMA_END) < (idx + 1) * PTRS_PER_PTE) &&
      mprotect(ctx.mm, addr, PMD_SIZE, PROT_READ | PROT_WRITE) < 0
    ) {
      return 1;
    }
    for (let i = 0; i < PTRS_PER_PTE; i++) {
      // a hint read: a present, writable, accessible PTE needs no fault (collapse re-checks all)
      const pte = Atomics.load(ctx.mm.pte, idx * PTRS_PER_PTE + i);
      if (
        (pte & PTE_TYPE_MASK) === PTE_TYPE_PRESENT &&
        (pte & (PTE_WRITE | PTE_PROTNONE | PTE_SPECIAL)) === PTE_WRITE
      ) {
        continue;
      }
      if (cpuWrite(ctx.mm, addr + i * PAGE_SIZE, ctx.ops | 0) < 0) {
        thpMutatorStats.populateFailed++;
        return 1;
      }
    }
    thpMutatorStats.populated++;
    return collapseHugePage(ctx.mm, addr) === 0 ? 0 : 1;
  },
  'memory-failure': (ctx, page) => memoryFailure(ctx.mm, page * PAGE_SIZE),
  exit: (ctx) => {
    // The process's own mm lives for the whole run; exit tears down a forked child.
    const child = ctx.children.shift() ?? forkMm(ctx.mm);
    exitMmap(child);
    return 0;
  },
  'oom-reap': (ctx) => {
    // The OOM victim is a forked child (the process itself lives for the whole run): reap it
    // (non-blockable UNMAP per VMA, retried like the reaper), then it exits.
    const victim = ctx.children.shift() ?? forkMm(ctx.mm);
    let ret = -1;
    for (let i = 0; i < 10 && ret !== 0; i++) ret = oomReap(victim).ret;
    exitMmap(victim);
    return ret === 0 ? 0 : 1;
  },
  'cpu-access': (ctx, page, pages) => {
    // A CPU thread touches each page of the range once: a load, or a store of a fresh value.
    const write = ctx.rng.nextFloat() < ctx.cpuWriteFraction;
    let ret = 0;
    for (let p = page; p < page + pages && ret >= 0; p++) {
      if (write) ret = cpuWrite(ctx.mm, p * PAGE_SIZE, ctx.ops | 0);
      else {
        const v = cpuRead(ctx.mm, p * PAGE_SIZE);
        // data is any int32; only -EFAULT/-ENOMEM/-EINVAL values count as errors here
        ret = v === -14 || v === -12 || v === -22 ? v : 0;
      }
    }
    ctx.cpu.reads = cpuStats.reads;
    ctx.cpu.writes = cpuStats.writes;
    ctx.cpu.faults = cpuStats.faults;
    return Math.min(ret, 0);
  },
};

/** Map again what munmap removed, once due (not a mutation kind of its own: mmap invalidates nothing). */
export function remapDue(ctx: MutationContext, force = false): void {
  const q = ctx.remaps;
  for (let i = 0; i < q.length; ) {
    const r = q[i]!;
    if (force || r.due <= ctx.ops) {
      mapPartAdvised(ctx.mm, r.region, r.page, r.pages);
      q.splice(i, 1);
    } else i++;
  }
}

/** Kinds with an mm function wired in. */
export function availableKinds(): MutationKind[] {
  return (Object.keys(MUTATIONS) as MutationKind[]).filter((k) => MUTATIONS[k] !== null);
}
