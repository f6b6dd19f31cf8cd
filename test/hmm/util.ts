/**
 * Test utilities for the hmm walk: build page tables, VMAs and frame states by writing the shared
 * words directly (layout.ts + mm.ts only), and read hmm_pfns back as exact kernel words.
 */

import { hmmPfnFromU64, hmmPfnToU64 } from '../../src/hmm/pfn.js';
import {
  FR_ALLOCATED,
  FR_DEVICE_PRIVATE,
  FR_OWNER_SHIFT,
  MM_VMA_COUNT,
  mkPte,
  PAGE_SIZE,
  PMD_SIZE,
  PMD_TYPE_TABLE,
  PTE_TYPE_PRESENT,
  PTRS_PER_PTE,
  VMA_END,
  VMA_FILE,
  VMA_FLAGS,
  VMA_HUGE_ORDER,
  VMA_ID,
  VMA_PGOFF,
  VMA_START,
  VMA_STRIDE,
} from '../../src/mm/layout.js';
import { createMm, type MmStruct } from '../../src/mm/mm.js';
import { createPhysMem, type PhysMem } from '../../src/mm/physmem.js';

export const MiB = 1 << 20;
export const GiB = 1 << 30;
export const P = PAGE_SIZE;
/** pages per PMD step */
export const SP = PTRS_PER_PTE;

/** A small physical pool (W = 1) and an mm of `size` bytes (default 8 MiB). */
export function makeMm(size = 8 * MiB, nframes = 8192): { mm: MmStruct; phys: PhysMem } {
  const phys = createPhysMem({ nframes, W: 1 });
  const mm = createMm(phys, { size });
  return { mm, phys };
}

/** Insert a VMA record over pages [start, end) in sorted position (caller: no overlap). */
export function addVma(mm: MmStruct, start: number, end: number, flags: number, hugeOrder = 0): void {
  const v = mm.vmas;
  const n = Atomics.load(mm.ctl, MM_VMA_COUNT);
  let i = 0;
  while (i < n && v[i * VMA_STRIDE + VMA_START]! < start) i++;
  for (let k = n; k > i; k--) {
    for (let f = 0; f < VMA_STRIDE; f++) Atomics.store(v, k * VMA_STRIDE + f, v[(k - 1) * VMA_STRIDE + f]!);
  }
  const b = i * VMA_STRIDE;
  Atomics.store(v, b + VMA_START, start);
  Atomics.store(v, b + VMA_END, end);
  Atomics.store(v, b + VMA_FLAGS, flags);
  Atomics.store(v, b + VMA_FILE, -1);
  Atomics.store(v, b + VMA_PGOFF, 0);
  Atomics.store(v, b + VMA_HUGE_ORDER, hugeOrder);
  Atomics.store(v, b + VMA_ID, n + 1);
  Atomics.store(mm.ctl, MM_VMA_COUNT, n + 1);
}

/** Write the PMD word of the step containing `page`. */
export function setPmd(mm: MmStruct, page: number, word: number): void {
  Atomics.store(mm.pmd, Math.floor(page / SP), word);
}

/** Write a PTE word; makes the step's PMD a TABLE first if it is none. */
export function setPte(mm: MmStruct, page: number, word: number): void {
  const idx = Math.floor(page / SP);
  if (Atomics.load(mm.pmd, idx) === 0) Atomics.store(mm.pmd, idx, PMD_TYPE_TABLE);
  Atomics.store(mm.pte, page, word);
}

/** A present PTE for `pfn` with extra flags (PTE_WRITE, PTE_SPECIAL, ...). */
export function present(pfn: number, flags = 0): number {
  return mkPte(PTE_TYPE_PRESENT, pfn, flags);
}

/** Mark frame `pfn` allocated, device-private of `owner`. */
export function setDevicePrivate(phys: PhysMem, pfn: number, owner: number): void {
  Atomics.store(phys.frames.state, pfn, FR_ALLOCATED | FR_DEVICE_PRIVATE | (owner << FR_OWNER_SHIFT) | 1);
}

/** An hmm_pfns array of `n` pages, each input word = `fill` (a kernel word). */
export function pfnsOf(n: number, fill = 0n): Int32Array {
  const a = new Int32Array(2 * n);
  if (fill !== 0n) for (let i = 0; i < n; i++) hmmPfnFromU64(a, i, fill);
  return a;
}

/** The kernel words of an hmm_pfns array. */
export function words(pfns: Int32Array): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < pfns.length / 2; i++) out.push(hmmPfnToU64(pfns, i));
  return out;
}

/** `n` copies of `w`. */
export function rep(w: bigint, n: number): bigint[] {
  return new Array<bigint>(n).fill(w);
}

/** Kernel words for consecutive pfns pfn0.. with flags. */
export function seqWords(pfn0: number, n: number, flags: bigint): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) out.push(BigInt(pfn0 + i) | flags);
  return out;
}

export { PMD_SIZE };
