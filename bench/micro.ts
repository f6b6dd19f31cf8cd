/**
 * The micro-benchmarks of issue 8. Every figure is a ratio against a baseline task run in the same
 * Bench (same process, same repetition, interleaved), on the same seeded workload.
 *
 * The floor of a page walk: a plain-read loop over the same PTE words, writing the walk's output
 * format (two Int32 words per page: the payload, and the kind byte as the hi word).
 *
 * Page tables for the walk figures are written directly into the mm's shared PTE/PMD words (one
 * anonymous VMA made by mmap over the whole 1 GiB space, every PMD a table); faults, invalidations
 * and the mirror routine run the real mm paths (handleMmFault through hmmRangeFault, madvise).
 */
import { type DmirrorFile, dmirrorDriver } from '../src/driver/dmirror.js';
import { type HmmRange, hmmRangeFault, hmmRangeFaultAtomicsLoadReference } from '../src/hmm/hmm.js';
import { HMM_PFN_REQ_FAULT_HI, HMM_PFN_REQ_WRITE_HI } from '../src/hmm/pfn.js';
import { cpuWritePages } from '../src/mm/cpu.js';
import {
  mkPte,
  PAGE_SIZE,
  PMD_TYPE_HUGE,
  PMD_TYPE_TABLE,
  PTE_TYPE_PRESENT,
  PTE_TYPE_SWAP,
  PTE_WRITE,
  PTRS_PER_PTE,
} from '../src/mm/layout.js';
import { MADV_DONTNEED, madvise } from '../src/mm/madvise.js';
import { createMm, type MmStruct } from '../src/mm/mm.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, mmap, PROT_READ, PROT_WRITE } from '../src/mm/mmap.js';
import { createPhysMem, type PhysMem } from '../src/mm/physmem.js';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
} from '../src/notifier/interval-notifier.js';
import { MUTEX_WORDS, mutexInit, mutexLock, mutexUnlock } from '../src/shm/mutex.js';
import { PERCPU_RWSEM_WORDS, percpuDownRead, percpuUpRead } from '../src/shm/percpu-rwsem.js';
import { downRead, RWSEM_WORDS, upRead } from '../src/shm/rwsem.js';
import { type BenchTask, type Figure, figure, prng, type RunConfig, runGroup } from './lib.js';

const SEED = 0x8badf00d;
const GiB = 1 << 30;
/** pages walked per task call (so a call is long against the timer; figures are per page) */
const PAGES_PER_CALL = 16384;

/** A sink the optimiser cannot see through. */
export const sink = { v: 0 };

// ---------------------------------------------------------------------------------------------
// Worlds

interface WalkWorld {
  phys: PhysMem;
  mm: MmStruct;
  sub: MmuIntervalNotifier;
  /** first and past-last page of the one VMA */
  first: number;
  last: number;
}

/** A 1 GiB mm with one anonymous VMA over all of it but the first 2 MiB, and a seq-only subscription. */
function walkWorld(nframes = 1 << 16): WalkWorld {
  const phys = createPhysMem({ nframes, W: 1 });
  const mm = createMm(phys, { size: GiB });
  const addr = mmap(mm, {
    length: GiB - 2 * PTRS_PER_PTE * PAGE_SIZE,
    prot: PROT_READ | PROT_WRITE,
    flags: MAP_PRIVATE | MAP_ANONYMOUS,
  });
  if (addr < 0) throw new Error(`mmap: ${addr}`);
  const sub = new MmuIntervalNotifier();
  const r = mmuIntervalNotifierInsert(sub, mm, 0, mm.size, {
    invalidate(s, _range, curSeq) {
      mmuIntervalSetSeq(s, curSeq);
      return true;
    },
  });
  if (r !== 0) throw new Error(`insert: ${r}`);
  const first = addr / PAGE_SIZE;
  return { phys, mm, sub, first, last: first + (GiB - 2 * PTRS_PER_PTE * PAGE_SIZE) / PAGE_SIZE };
}

export type Layout = 'present' | 'runs16' | 'random';
export const LAYOUTS: readonly Layout[] = ['present', 'runs16', 'random'];

/** The four PTE kinds of the mixed layouts: present writable, present read-only, none, swap. */
function kindWord(kind: number, page: number, nframes: number): number {
  const pfn = 1024 + (page % (nframes - 1024));
  switch (kind) {
    case 0:
      return mkPte(PTE_TYPE_PRESENT, pfn, PTE_WRITE);
    case 1:
      return mkPte(PTE_TYPE_PRESENT, pfn);
    case 2:
      return 0;
    default:
      return mkPte(PTE_TYPE_SWAP, page & 0xffff);
  }
}

/** Fill the VMA's page table: every PMD a table, PTE kinds by layout (seeded). */
function fillLayout(w: WalkWorld, layout: Layout, seed: number): void {
  const rnd = prng(seed);
  const nframes = w.phys.nframes;
  for (let s = Math.floor(w.first / PTRS_PER_PTE); s < w.last / PTRS_PER_PTE; s++) {
    Atomics.store(w.mm.pmd, s, PMD_TYPE_TABLE);
  }
  let kind = 0;
  let left = 0;
  for (let p = w.first; p < w.last; p++) {
    if (layout === 'present') kind = 0;
    else if (layout === 'random') kind = Math.floor(rnd() * 4);
    else if (left-- <= 0) {
      // runs of ~16 pages of one kind: geometric lengths with mean 16
      kind = Math.floor(rnd() * 4);
      left = Math.floor(-Math.log(1 - rnd()) * 16);
    }
    Atomics.store(w.mm.pte, p, kindWord(kind, p, nframes));
  }
}

/** `count` random range starts of `n` pages inside [first, last), seeded. */
function offsets(first: number, last: number, n: number, count: number, seed: number): Int32Array {
  const rnd = prng(seed);
  const o = new Int32Array(count);
  for (let i = 0; i < count; i++) o[i] = first + Math.floor(rnd() * (last - first - n));
  return o;
}

function makeRange(sub: MmuIntervalNotifier, npages: number, dflt = 0): HmmRange {
  return {
    notifier: sub,
    notifierSeq: mmuIntervalReadBegin(sub),
    start: 0,
    end: 0,
    hmmPfns: new Int32Array(2 * npages),
    defaultFlags: dflt,
    pfnFlagsMask: 0,
    devPrivateOwner: -1,
  };
}

/** The floor: plain reads of the PTE words, two output words per page. */
function floorTask(name: string, pte: Int32Array, offs: Int32Array, n: number): BenchTask {
  const out = new Int32Array(2 * n);
  return {
    name,
    ops: offs.length * n,
    fn: () => {
      for (let r = 0; r < offs.length; r++) {
        const s = offs[r]!;
        for (let p = s, i = 0; p < s + n; p++, i += 2) {
          const w = pte[p]!;
          out[i] = w & 0x00ffffff;
          out[i + 1] = w & -16777216;
        }
      }
      sink.v ^= out[2 * n - 1]!;
    },
  };
}

/**
 * One walk from page `first`, checked: 'thp' must give VALID|WRITE with order 9 on every page (the
 * PMD branch), 'holes' must give 0 on every page (no page table reached). Throws otherwise.
 */
function checkWalkOutput(range: HmmRange, first: number, n: number, kind: 'thp' | 'holes'): void {
  range.start = first * PAGE_SIZE;
  range.end = range.start + n * PAGE_SIZE;
  const ret = hmmRangeFault(range);
  if (ret !== 0) throw new Error(`${kind} walk returned ${ret}`);
  for (let i = 0; i < n; i++) {
    const hi = range.hmmPfns[2 * i + 1]!;
    const ok = kind === 'holes' ? hi === 0 && range.hmmPfns[2 * i] === 0 : hi >>> 24 === 0xc9;
    if (!ok) throw new Error(`${kind} walk: page ${i} output hi word ${(hi >>> 0).toString(16)}`);
  }
}

function walkTask(
  name: string,
  range: HmmRange,
  offs: Int32Array,
  n: number,
  walk: (r: HmmRange) => number,
): BenchTask {
  return {
    name,
    ops: offs.length * n,
    fn: () => {
      let bad = 0;
      for (let r = 0; r < offs.length; r++) {
        range.start = offs[r]! * PAGE_SIZE;
        range.end = range.start + n * PAGE_SIZE;
        bad |= walk(range);
      }
      if (bad !== 0) throw new Error(`walk returned ${bad}`);
      sink.v ^= range.hmmPfns[2 * n - 1]!;
    },
  };
}

const WALK_INCLUDES =
  'hmmRangeFault snapshot call (range set-up, its mmu_interval_check_retry, VMA lookup, PMD and PTE walk, output words)';
const WALK_EXCLUDES = 'mmap lock (held across the task), mmu_interval_read_begin/read_retry, driver lock';
const FLOOR_EXCLUDES = 'baseline: plain-read loop over the same PTE words writing 2 Int32 per page';

// ---------------------------------------------------------------------------------------------
// Groups

export async function microFigures(cfg: RunConfig, log: (s: string) => void): Promise<Figure[]> {
  const figs: Figure[] = [];

  // -- 1. walk vs floor on three layouts, 64 and 512 pages; Atomics.load walk as a reference
  const w = walkWorld();
  w.mm.mmapReadLock();
  for (const layout of LAYOUTS) {
    fillLayout(w, layout, SEED);
    const tasks: BenchTask[] = [];
    for (const n of [64, 512]) {
      const offs = offsets(w.first, w.last, n, PAGES_PER_CALL / n, SEED + n);
      const range = makeRange(w.sub, n);
      tasks.push(floorTask(`floor-${n}`, w.mm.pte, offs, n));
      tasks.push(walkTask(`hmm-${n}`, range, offs, n, (r) => hmmRangeFault(r)));
      tasks.push(walkTask(`atomics-${n}`, range, offs, n, (r) => hmmRangeFaultAtomicsLoadReference(r)));
    }
    log(`walk ${layout}`);
    const m = await runGroup(tasks, cfg);
    for (const n of [64, 512]) {
      figs.push(
        figure(m, {
          id: `walk-${layout}-${n}`,
          group: 'walk',
          label: `hmmRangeFault snapshot, ${layout}, ${n} pages`,
          variant: `hmm-${n}`,
          baseline: `floor-${n}`,
          baselineLabel: 'floor (plain-read loop)',
          unit: 'page',
          target: { max: 1.6 },
          includes: WALK_INCLUDES,
          excludes: `${WALK_EXCLUDES}; ${FLOOR_EXCLUDES}`,
        }),
        figure(m, {
          id: `walk-atomics-${layout}-${n}`,
          group: 'walk',
          label: `reference: Atomics.load walk, ${layout}, ${n} pages`,
          variant: `atomics-${n}`,
          baseline: `floor-${n}`,
          baselineLabel: 'floor (plain-read loop)',
          unit: 'page',
          includes: 'hmmRangeFaultAtomicsLoadReference: the same walk, each PTE read with Atomics.load',
          excludes: WALK_EXCLUDES,
        }),
      );
    }
  }

  // -- 2. the sequence check around a 64-page walk (layout: runs of 16)
  fillLayout(w, 'runs16', SEED);
  {
    const n = 64;
    const offs = offsets(w.first, w.last, n, PAGES_PER_CALL / n, SEED + 1);
    const range = makeRange(w.sub, n);
    const sub = w.sub;
    const with_: BenchTask = {
      name: 'seq',
      ops: offs.length * n,
      fn: () => {
        let bad = 0;
        for (let r = 0; r < offs.length; r++) {
          range.notifierSeq = mmuIntervalReadBegin(sub);
          range.start = offs[r]! * PAGE_SIZE;
          range.end = range.start + n * PAGE_SIZE;
          bad |= hmmRangeFault(range);
          if (mmuIntervalReadRetry(sub, range.notifierSeq)) bad |= 1;
        }
        if (bad !== 0) throw new Error('seq walk failed');
        sink.v ^= range.hmmPfns[1]!;
      },
    };
    log('sequence check');
    range.notifierSeq = mmuIntervalReadBegin(sub);
    const m = await runGroup([walkTask('noseq', range, offs, n, (r) => hmmRangeFault(r)), with_], cfg);
    figs.push(
      figure(m, {
        id: 'seqcheck-64',
        group: 'seqcheck',
        label: 'read_begin + walk + read_retry, 64 pages (runs16)',
        variant: 'seq',
        baseline: 'noseq',
        baselineLabel: 'the same walk with a seq read once outside the loop',
        unit: 'page',
        target: { max: 1.15 },
        includes: 'mmuIntervalReadBegin and mmuIntervalReadRetry per range, on top of the walk',
        excludes: 'mmap lock and driver lock (held/not taken); hmmRangeFault always runs its own check_retry',
      }),
    );
  }
  w.mm.mmapReadUnlock();

  // -- 3. THP, holes, faults, per page, against the floor
  {
    const n = 64;
    const t = walkWorld();
    // THP: every PMD of the VMA huge (order 9, writable), head PFNs naturally aligned
    for (let s = Math.floor(t.first / PTRS_PER_PTE); s < t.last / PTRS_PER_PTE; s++) {
      const head = 1024 + ((s * PTRS_PER_PTE) % (t.phys.nframes - 1024));
      Atomics.store(t.mm.pmd, s, PMD_TYPE_HUGE | PTE_WRITE | head);
    }
    const h = walkWorld(); // holes: the VMA exists, no PMD is populated
    const offs = offsets(t.first, t.last, n, PAGES_PER_CALL / n, SEED + 3);
    t.mm.mmapReadLock();
    h.mm.mmapReadLock();
    // The two walks write similar-looking output at similar cost; prove they take different paths.
    checkWalkOutput(makeRange(t.sub, n), offs[0]!, n, 'thp');
    checkWalkOutput(makeRange(h.sub, n), offs[0]!, n, 'holes');
    log('thp / holes');
    const m = await runGroup(
      [
        floorTask('floor', t.mm.pte, offs, n),
        walkTask('thp', makeRange(t.sub, n), offs, n, (r) => hmmRangeFault(r)),
        walkTask('holes', makeRange(h.sub, n), offs, n, (r) => hmmRangeFault(r)),
      ],
      cfg,
    );
    t.mm.mmapReadUnlock();
    h.mm.mmapReadUnlock();
    for (const [id, what] of [
      ['thp', 'THP range (PMD order 9)'],
      ['holes', 'holes (VMA with no page table)'],
    ] as const) {
      figs.push(
        figure(m, {
          id: `walk-${id}-64`,
          group: 'walk-kinds',
          label: `hmmRangeFault snapshot over ${what}, 64 pages`,
          variant: id,
          baseline: 'floor',
          baselineLabel: 'floor (plain-read loop)',
          unit: 'page',
          includes: WALK_INCLUDES,
          excludes: WALK_EXCLUDES,
        }),
      );
    }

    // faults: absent pages made present (write faults allocating frames), 16 ranges per call
    const fw = walkWorld(1 << 16);
    const fOffs = offsets(fw.first, fw.last, n, 16, SEED + 4);
    const range = makeRange(fw.sub, n, HMM_PFN_REQ_FAULT_HI | HMM_PFN_REQ_WRITE_HI);
    const zap = () => {
      for (let r = 0; r < fOffs.length; r++)
        madvise(fw.mm, fOffs[r]! * PAGE_SIZE, n * PAGE_SIZE, MADV_DONTNEED);
    };
    const faults: BenchTask = {
      name: 'faults',
      ops: fOffs.length * n,
      fn: () => {
        let bad = 0;
        for (let r = 0; r < fOffs.length; r++) {
          range.notifierSeq = mmuIntervalReadBegin(fw.sub);
          range.start = fOffs[r]! * PAGE_SIZE;
          range.end = range.start + n * PAGE_SIZE;
          fw.mm.mmapReadLock();
          bad |= hmmRangeFault(range);
          fw.mm.mmapReadUnlock();
        }
        if (bad !== 0) throw new Error(`fault walk returned ${bad}`);
      },
      afterEach: zap,
    };
    log('faults');
    const mf = await runGroup([floorTask('floor', fw.mm.pte, fOffs, n), faults], cfg);
    figs.push(
      figure(mf, {
        id: 'walk-faults-64',
        group: 'walk-kinds',
        label: 'hmmRangeFault with faults (absent pages made present, write), 64 pages',
        variant: 'faults',
        baseline: 'floor',
        baselineLabel: 'floor (plain-read loop)',
        unit: 'page',
        includes:
          'read_begin, mmap read lock, hmmRangeFault with REQ_FAULT|REQ_WRITE: handleMmFault per page (frame allocation, zeroing W=1 word), re-walk',
        excludes: 'the MADV_DONTNEED that makes the pages absent again (afterEach, untimed)',
      }),
    );
  }

  // -- 4. locks against one Atomics.compareExchange; invalidation against a plain 64-page loop
  {
    const K = 1024;
    const words = new Int32Array(new SharedArrayBuffer(64 * 4));
    const mmapLock = new Int32Array(new SharedArrayBuffer(PERCPU_RWSEM_WORDS * 4));
    const MU = 0;
    const RW = 16;
    const CAS = 32;
    mutexInit(words, MU);
    void MUTEX_WORDS;
    void RWSEM_WORDS;
    log('locks');
    const m = await runGroup(
      [
        {
          name: 'cas',
          ops: K,
          fn: () => {
            for (let i = 0; i < K; i++) Atomics.compareExchange(words, CAS, i, i + 1);
            Atomics.store(words, CAS, 0);
          },
        },
        {
          name: 'mutex',
          ops: K,
          fn: () => {
            for (let i = 0; i < K; i++) {
              mutexLock(words, MU);
              mutexUnlock(words, MU);
            }
          },
        },
        {
          name: 'rwsem',
          ops: K,
          fn: () => {
            for (let i = 0; i < K; i++) {
              downRead(words, RW);
              upRead(words, RW);
            }
          },
        },
        {
          name: 'percpu',
          ops: K,
          fn: () => {
            for (let i = 0; i < K; i++) {
              percpuDownRead(mmapLock, 0);
              percpuUpRead(mmapLock, 0);
            }
          },
        },
      ],
      cfg,
    );
    for (const [id, what] of [
      ['mutex', 'uncontended mutex lock + unlock'],
      ['rwsem', 'uncontended rwsem down_read + up_read (one shared count)'],
      ['percpu', 'uncontended mmap lock down_read + up_read (percpu rwsem)'],
    ] as const) {
      figs.push(
        figure(m, {
          id: `lock-${id}`,
          group: 'locks',
          label: what,
          variant: id,
          baseline: 'cas',
          baselineLabel: 'one Atomics.compareExchange',
          unit: 'pair',
          includes: 'one acquire and one release, single thread',
          excludes: 'contention, waiting',
        }),
      );
    }
  }

  // -- 5. one invalidation (MADV_DONTNEED of 64 pages) with 1, 2, 8 devices
  {
    const n = 64;
    const R = 8;
    const tasks: BenchTask[] = [];
    let floorPte: Int32Array | null = null;
    let floorOffs: Int32Array | null = null;
    for (const ndev of [1, 2, 8]) {
      const iw = invWorld(ndev);
      const offs = offsets(iw.first, iw.last, n, R, SEED + 5);
      floorPte ??= iw.mm.pte;
      floorOffs ??= offs;
      tasks.push({
        name: `inv-${ndev}`,
        ops: R,
        beforeEach: () => {
          for (let r = 0; r < R; r++) {
            const a = offs[r]! * PAGE_SIZE;
            if (cpuWritePages(iw.mm, a, n, () => 1) !== 0) throw new Error('populate');
            for (const f of iw.files)
              if (f.rangeFault(a, a + n * PAGE_SIZE, false) !== 0) throw new Error('mirror');
          }
        },
        fn: () => {
          for (let r = 0; r < R; r++) {
            if (madvise(iw.mm, offs[r]! * PAGE_SIZE, n * PAGE_SIZE, MADV_DONTNEED) !== 0)
              throw new Error('madvise');
          }
        },
      });
    }
    const fl = floorTask('floor', floorPte!, floorOffs!, n);
    tasks.push({ ...fl, ops: R });
    log('invalidation');
    const m = await runGroup(tasks, cfg);
    for (const ndev of [1, 2, 8]) {
      figs.push(
        figure(m, {
          id: `invalidate-${ndev}dev`,
          group: 'invalidate',
          label: `MADV_DONTNEED of 64 present, mirrored pages, ${ndev} device${ndev > 1 ? 's' : ''}`,
          variant: `inv-${ndev}`,
          baseline: 'floor',
          baselineLabel: 'one plain 64-page loop (the floor)',
          unit: 'invalidation',
          includes:
            'madvise: mmap lock, invalidate_range_start (each device: lock, set seq, clear mirror), PTE zap, range_end, frame frees',
          excludes: 'populating the pages and the mirrors again (beforeEach, untimed)',
        }),
      );
    }
  }

  // -- 6. the mirror device's range-fault routine, 64 pages, present and absent
  {
    const n = 64;
    const R = 16;
    const iw = invWorld(1);
    const f = iw.files[0]!;
    const offs = offsets(iw.first, iw.last, n, R, SEED + 6);
    for (let r = 0; r < R; r++) {
      if (cpuWritePages(iw.mm, offs[r]! * PAGE_SIZE, n, () => 1) !== 0) throw new Error('populate');
    }
    const aw = invWorld(1);
    const af = aw.files[0]!;
    const routine = (file: DmirrorFile, o: Int32Array): (() => void) => {
      return () => {
        for (let r = 0; r < R; r++) {
          const a = o[r]! * PAGE_SIZE;
          if (file.rangeFault(a, a + n * PAGE_SIZE, true) !== 0) throw new Error('rangeFault');
        }
      };
    };
    log('mirror range fault');
    const m = await runGroup(
      [
        floorTask('floor', iw.mm.pte, offs, n),
        { name: 'present', ops: R * n, fn: routine(f, offs) },
        {
          name: 'absent',
          ops: R * n,
          fn: routine(af, offs),
          afterEach: () => {
            for (let r = 0; r < R; r++) madvise(aw.mm, offs[r]! * PAGE_SIZE, n * PAGE_SIZE, MADV_DONTNEED);
          },
        },
      ],
      cfg,
    );
    for (const id of ['present', 'absent'] as const) {
      figs.push(
        figure(m, {
          id: `mirror-fault-${id}`,
          group: 'mirror',
          label: `dmirror range-fault routine (write), 64 ${id} pages`,
          variant: id,
          baseline: 'floor',
          baselineLabel: 'floor (plain-read loop)',
          unit: 'page',
          includes:
            'DmirrorFile.rangeFault: mmget, read_begin, mmap read lock, hmmRangeFault (faults when absent), update lock, read_retry, programming the mirror',
          excludes:
            id === 'absent'
              ? 'the MADV_DONTNEED that makes the pages absent again (afterEach, untimed)'
              : 'nothing else',
        }),
      );
    }
  }
  return figs;
}

interface InvWorld {
  mm: MmStruct;
  files: DmirrorFile[];
  first: number;
  last: number;
}

/** A 1 GiB mm with one anonymous VMA and `ndev` dmirror devices, each with one open file. */
function invWorld(ndev: number): InvWorld {
  const phys = createPhysMem({ nframes: 1 << 15, W: 1 });
  const mm = createMm(phys, { size: GiB });
  const len = GiB - 2 * PTRS_PER_PTE * PAGE_SIZE;
  const addr = mmap(mm, { length: len, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS });
  if (addr < 0) throw new Error(`mmap: ${addr}`);
  const files: DmirrorFile[] = [];
  for (let i = 0; i < ndev; i++) {
    const dev = dmirrorDriver.createDevice({ phys, log: null });
    const f = dev.open(mm);
    if (typeof f === 'number') throw new Error(`open: ${f}`);
    files.push(f);
  }
  const first = addr / PAGE_SIZE;
  return { mm, files, first, last: first + len / PAGE_SIZE };
}
