/**
 * A device's workload: where its next range lies and what it does with it. Pure choice from a
 * seeded PRNG over the scenario's regions; allocation-free per draw (the Zipf table is built once).
 */
import { PAGE_SHIFT } from '../mm/layout.js';
import { Prng, ZipfSampler } from './prng.js';
import type { AccessPattern } from './scenario.js';

/** A region as laid out in the address space (page numbers). */
export interface RegionPlacement {
  index: number;
  start: number;
  pages: number;
  kind: string;
  prot: string;
  hugepage: boolean;
}

/**
 * Place the scenario's regions: from 2 MiB upward (the first PMD left unmapped, like NULL's page),
 * each region on a 2 MiB boundary. Checked against the address space by scenario.ts.
 */
export function placeRegions(
  regions: readonly { pages: number; kind: string; prot: string; hugepage: boolean }[],
): RegionPlacement[] {
  const out: RegionPlacement[] = [];
  let end = 512;
  for (let i = 0; i < regions.length; i++) {
    const r = regions[i]!;
    const start = Math.ceil(end / 512) * 512;
    out.push({ index: i, start, pages: r.pages, kind: r.kind, prot: r.prot, hugepage: r.hugepage });
    end = start + r.pages;
  }
  return out;
}

export const WL_FAULT_READ = 0;
export const WL_FAULT_WRITE = 1;
export const WL_SNAPSHOT = 2;
export const WL_MIGRATE = 3;

export interface WorkloadParams {
  pattern: AccessPattern;
  rangePages: { min: number; max: number };
  writeFraction: number;
  snapshotFraction: number;
  migrateFraction: number;
  hotSetFraction: number;
  hotProbability: number;
  zipfExponent: number;
  /** the regions (indices) the device works in; undefined: all (the caller filters) */
  regions?: readonly number[] | undefined;
}

/**
 * Draws (kind, address, npages). The "page space" is the concatenation of the regions' pages;
 * sequential walks it in order, uniform picks any page, hotset prefers a fixed hot slice (placed
 * at a seeded offset), zipf ranks pages by a seeded permutation of 64-page blocks.
 */
export class Workload {
  readonly rng: Prng;
  private readonly starts: Int32Array;
  private readonly sizes: Int32Array;
  private readonly cum: Int32Array;
  private readonly total: number;
  private cursor = 0;
  private readonly hotStart: number;
  private readonly hotPages: number;
  private readonly zipf: ZipfSampler | null;
  private readonly blockPerm: Int32Array;
  /** the last draw */
  kind = 0;
  addr = 0;
  npages = 0;
  page = 0;

  constructor(
    readonly params: WorkloadParams,
    regions: readonly RegionPlacement[],
    seed: number,
  ) {
    this.rng = new Prng(seed);
    this.starts = Int32Array.from(regions.map((r) => r.start));
    this.sizes = Int32Array.from(regions.map((r) => r.pages));
    this.cum = new Int32Array(regions.length);
    let t = 0;
    for (let i = 0; i < regions.length; i++) {
      t += regions[i]!.pages;
      this.cum[i] = t;
    }
    this.total = t;
    this.hotPages = Math.max(1, Math.floor(t * params.hotSetFraction));
    this.hotStart = this.rng.below(Math.max(1, t - this.hotPages + 1));
    this.cursor = this.rng.below(t);
    const blocks = Math.max(1, Math.ceil(t / 64));
    this.blockPerm = new Int32Array(blocks);
    for (let i = 0; i < blocks; i++) this.blockPerm[i] = i;
    for (let i = blocks - 1; i > 0; i--) {
      const j = this.rng.below(i + 1);
      const x = this.blockPerm[i]!;
      this.blockPerm[i] = this.blockPerm[j]!;
      this.blockPerm[j] = x;
    }
    this.zipf = params.pattern === 'zipf' ? new ZipfSampler(blocks, params.zipfExponent) : null;
  }

  private pickIndex(): number {
    const t = this.total;
    switch (this.params.pattern) {
      case 'sequential': {
        const i = this.cursor;
        return i;
      }
      case 'hotset':
        return this.rng.chance(this.params.hotProbability)
          ? this.hotStart + this.rng.below(this.hotPages)
          : this.rng.below(t);
      case 'zipf': {
        const block = this.blockPerm[this.zipf!.sample(this.rng)]!;
        return Math.min(t - 1, block * 64 + this.rng.below(64));
      }
      default:
        return this.rng.below(t);
    }
  }

  /** Draw the next operation into kind/addr/npages/page. */
  next(): void {
    const p = this.params;
    const u = this.rng.nextFloat();
    if (u < p.snapshotFraction) this.kind = WL_SNAPSHOT;
    else if (u < p.snapshotFraction + p.migrateFraction) this.kind = WL_MIGRATE;
    else this.kind = this.rng.chance(p.writeFraction) ? WL_FAULT_WRITE : WL_FAULT_READ;
    const idx = this.pickIndex();
    // Which region holds index idx.
    let r = 0;
    while (this.cum[r]! <= idx) r++;
    const off = idx - (r === 0 ? 0 : this.cum[r - 1]!);
    const n = this.rng.between(p.rangePages.min, p.rangePages.max);
    const room = this.sizes[r]! - off;
    this.npages = Math.min(n, room);
    this.page = this.starts[r]! + off;
    this.addr = this.page * 2 ** PAGE_SHIFT;
    if (p.pattern === 'sequential') {
      this.cursor += this.npages;
      if (this.cursor >= this.total) this.cursor = 0;
    }
  }
}
