/**
 * struct mm_struct: one process's address space. Its control block, VMA table and page table live
 * in SharedArrayBuffers; `MmStruct` is a thread-local view over them, built on the main thread by
 * `createMm` and attached in a worker from `mm.descriptor()` with `attachMm`.
 */
import { sharedInt32 } from '../shm/layout.js';
import {
  percpuDowngradeWrite,
  percpuDownRead,
  percpuDownWrite,
  percpuUpRead,
  percpuUpWrite,
} from '../shm/percpu-rwsem.js';
import {
  MAX_VMAS,
  MM_CTL_WORDS,
  MM_FREE_AFTER_CLEAR,
  MM_FREE_AFTER_END,
  MM_FREE_MODE,
  MM_ID,
  MM_MMAP_LOCK,
  MM_SIZE_PAGES,
  MM_THP_MODE,
  MM_USERS,
  MM_VMA_COUNT,
  MM_VMA_SERIAL,
  PAGE_SHIFT,
  PTRS_PER_PTE,
  THP_MODE_ALWAYS,
  THP_MODE_MADVISE,
  THP_MODE_NEVER,
  VMA_END,
  VMA_FILE,
  VMA_FLAGS,
  VMA_HUGE_ORDER,
  VMA_ID,
  VMA_PGOFF,
  VMA_START,
  VMA_STRIDE,
} from './layout.js';
import { MmuNotifierChain } from './mmu-notifier.js';
import type { PhysMem } from './physmem.js';

// Module-local copies for the mmap read lock, taken on every range fault: an imported binding is
// reloaded from its module cell, with a TDZ check, at every use (see hmm/hmm.ts).
const MMAP_LOCK = MM_MMAP_LOCK;
const mmapDownRead = percpuDownRead;
const mmapUpRead = percpuUpRead;

/** Everything a worker needs to attach an mm: plain data and SharedArrayBuffers only. */
export interface MmDescriptor {
  id: number;
  npages: number;
  ctl: SharedArrayBuffer;
  vmas: SharedArrayBuffer;
  pmd: SharedArrayBuffer;
  pte: SharedArrayBuffer;
}

/** Ids are unique per thread that creates mms (the main thread creates them all). */
let nextMmId = 1;

export class MmStruct {
  readonly id: number;
  /** pages of address space: addresses are [0, npages << PAGE_SHIFT) */
  readonly npages: number;
  readonly ctl: Int32Array;
  /** VMA records (layout.ts VMA_*), sorted by start, MM_VMA_COUNT of them */
  readonly vmas: Int32Array;
  /** one word per 2 MiB step */
  readonly pmd: Int32Array;
  /** one word per page (flat PTE tables: the words of a step are live only under a TABLE PMD) */
  readonly pte: Int32Array;
  readonly phys: PhysMem;
  /** this thread's view of the mmu_notifier chain (subscribers attach themselves) */
  readonly notifiers = new MmuNotifierChain();

  constructor(d: MmDescriptor, phys: PhysMem) {
    this.id = d.id;
    this.npages = d.npages;
    this.ctl = new Int32Array(d.ctl);
    this.vmas = new Int32Array(d.vmas);
    this.pmd = new Int32Array(d.pmd);
    this.pte = new Int32Array(d.pte);
    this.phys = phys;
  }

  descriptor(): MmDescriptor {
    return {
      id: this.id,
      npages: this.npages,
      ctl: this.ctl.buffer as SharedArrayBuffer,
      vmas: this.vmas.buffer as SharedArrayBuffer,
      pmd: this.pmd.buffer as SharedArrayBuffer,
      pte: this.pte.buffer as SharedArrayBuffer,
    };
  }

  /** Size of the address space in bytes. */
  get size(): number {
    return this.npages * 2 ** PAGE_SHIFT;
  }

  /** mm_users: 0 once the mm has exited (exit_mmap). */
  get users(): number {
    return Atomics.load(this.ctl, MM_USERS);
  }

  // ---- mmap lock (mmap_read_lock & co); each returns true if it had to wait ----
  mmapReadLock(): boolean {
    return mmapDownRead(this.ctl, MMAP_LOCK);
  }
  mmapReadUnlock(): void {
    mmapUpRead(this.ctl, MMAP_LOCK);
  }
  mmapWriteLock(): boolean {
    return percpuDownWrite(this.ctl, MM_MMAP_LOCK);
  }
  mmapWriteUnlock(): void {
    percpuUpWrite(this.ctl, MM_MMAP_LOCK);
  }
  /** mmap_write_downgrade */
  mmapWriteDowngrade(): void {
    percpuDowngradeWrite(this.ctl, MM_MMAP_LOCK);
  }

  // ---- per-mm options (written before the mm is shared; plain reads are of constants) ----
  /** MM_FREE_AFTER_END (default) or MM_FREE_AFTER_CLEAR */
  get freeMode(): number {
    return this.ctl[MM_FREE_MODE]!;
  }
  /** THP_MODE_MADVISE (default), THP_MODE_ALWAYS or THP_MODE_NEVER */
  get thpMode(): number {
    return this.ctl[MM_THP_MODE]!;
  }

  // ---- VMA table (callers hold the mmap lock: read to look, write to change) ----
  /**
   * A plain read: callers hold the mmap lock, whose acquisition (an Atomics read-modify-write)
   * orders it after the writer's Atomics.store and release; it is on every walk's path.
   */
  get vmaCount(): number {
    return this.ctl[MM_VMA_COUNT]!;
  }

  /**
   * find_vma: index of the first VMA whose end is above `page`, or -1. The VMA may start above
   * `page` (a hole before it). Plain reads: the caller holds the mmap lock, whose acquisition (an
   * Atomics read-modify-write) orders them after the last writer's release.
   */
  findVmaIndex(page: number): number {
    const v = this.vmas;
    let lo = 0;
    let hi = this.vmaCount;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v[mid * VMA_STRIDE + VMA_END]! <= page) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.vmaCount ? lo : -1;
  }

  /** Index of the VMA containing `page`, or -1. */
  vmaAt(page: number): number {
    const i = this.findVmaIndex(page);
    if (i < 0) return -1;
    return this.vmas[i * VMA_STRIDE + VMA_START]! <= page ? i : -1;
  }

  /** Read field `f` (layout.ts VMA_*) of VMA `i`. */
  vmaField(i: number, f: number): number {
    return this.vmas[i * VMA_STRIDE + f]!;
  }

  /** Start of VMA `i` as a byte address. */
  vmaStartAddr(i: number): number {
    return this.vmas[i * VMA_STRIDE + VMA_START]! * 2 ** PAGE_SHIFT;
  }
  /** End (exclusive) of VMA `i` as a byte address. */
  vmaEndAddr(i: number): number {
    return this.vmas[i * VMA_STRIDE + VMA_END]! * 2 ** PAGE_SHIFT;
  }
}

/** A VMA record's contents (vm_area_struct), page numbers. */
export interface VmaRecord {
  start: number;
  end: number;
  flags: number;
  /** file id, or -1 for anonymous */
  file: number;
  pgoff: number;
  hugeOrder: number;
}

/** The record of VMA `i` (callers hold the mmap lock). */
export function vmaRecord(mm: MmStruct, i: number): VmaRecord {
  return {
    start: mm.vmaField(i, VMA_START),
    end: mm.vmaField(i, VMA_END),
    flags: mm.vmaField(i, VMA_FLAGS),
    file: mm.vmaField(i, VMA_FILE),
    pgoff: mm.vmaField(i, VMA_PGOFF),
    hugeOrder: mm.vmaField(i, VMA_HUGE_ORDER),
  };
}

function storeVma(mm: MmStruct, i: number, r: VmaRecord, id: number): void {
  const v = mm.vmas;
  const b = i * VMA_STRIDE;
  Atomics.store(v, b + VMA_START, r.start);
  Atomics.store(v, b + VMA_END, r.end);
  Atomics.store(v, b + VMA_FLAGS, r.flags);
  Atomics.store(v, b + VMA_FILE, r.file);
  Atomics.store(v, b + VMA_PGOFF, r.pgoff);
  Atomics.store(v, b + VMA_HUGE_ORDER, r.hugeOrder);
  Atomics.store(v, b + VMA_ID, id);
}

/**
 * vma_link: insert a record (pages [start, end), not overlapping any VMA) in sorted position.
 * Caller holds the mmap lock for write. Returns its index, or -ENOMEM (-12) if the table is full.
 */
export function vmaInsert(mm: MmStruct, r: VmaRecord): number {
  const n = mm.vmaCount;
  if (n >= MAX_VMAS) return -12;
  let i = mm.findVmaIndex(r.start);
  if (i < 0) i = n;
  const v = mm.vmas;
  for (let k = n; k > i; k--) {
    for (let f = 0; f < VMA_STRIDE; f++) Atomics.store(v, k * VMA_STRIDE + f, v[(k - 1) * VMA_STRIDE + f]!);
  }
  storeVma(mm, i, r, Atomics.add(mm.ctl, MM_VMA_SERIAL, 1) + 1);
  Atomics.store(mm.ctl, MM_VMA_COUNT, n + 1);
  return i;
}

/**
 * __split_vma: split VMA `i` at page `page` (strictly inside it) into [start, page) and
 * [page, end); the upper half gets a new id. Caller holds the mmap lock for write.
 * Returns the index of the upper half, or -ENOMEM.
 */
export function vmaSplit(mm: MmStruct, i: number, page: number): number {
  const r = vmaRecord(mm, i);
  if (page <= r.start || page >= r.end) return i;
  if (mm.vmaCount >= MAX_VMAS) return -12;
  Atomics.store(mm.vmas, i * VMA_STRIDE + VMA_END, page);
  const hi: VmaRecord = { ...r, start: page, pgoff: r.pgoff + (page - r.start) };
  return vmaInsert(mm, hi);
}

/**
 * vma_merge (the part hmmsim needs): merge VMA `i` with VMA `i + 1` if they touch and are
 * compatible (same flags apart from the anon bit, same file with contiguous offsets, same hugetlb
 * order). Returns the file id whose mapping count the caller must drop (filePut) when two records
 * of one file became one, -1 otherwise, or -2 if nothing was merged. Caller holds the write lock.
 */
export function vmaMergeNext(mm: MmStruct, i: number, anonBit: number): number {
  if (i < 0 || i + 1 >= mm.vmaCount) return -2;
  const a = vmaRecord(mm, i);
  const b = vmaRecord(mm, i + 1);
  if (a.end !== b.start || (a.flags | anonBit) !== (b.flags | anonBit) || a.file !== b.file) return -2;
  if (a.hugeOrder !== b.hugeOrder || (a.file >= 0 && a.pgoff + (a.end - a.start) !== b.pgoff)) return -2;
  Atomics.store(mm.vmas, i * VMA_STRIDE + VMA_END, b.end);
  Atomics.store(mm.vmas, i * VMA_STRIDE + VMA_FLAGS, a.flags | b.flags);
  vmaRemove(mm, i + 1);
  return a.file >= 0 ? a.file : -1;
}

/** Remove VMA `i` from the table (detach_vmas_to_be_unmapped). Caller holds the write lock. */
export function vmaRemove(mm: MmStruct, i: number): void {
  const n = mm.vmaCount;
  const v = mm.vmas;
  for (let k = i; k < n - 1; k++) {
    for (let f = 0; f < VMA_STRIDE; f++) Atomics.store(v, k * VMA_STRIDE + f, v[(k + 1) * VMA_STRIDE + f]!);
  }
  for (let f = 0; f < VMA_STRIDE; f++) Atomics.store(v, (n - 1) * VMA_STRIDE + f, 0);
  Atomics.store(mm.ctl, MM_VMA_COUNT, n - 1);
}

/** Set VMA `i`'s flags word (write lock held; or an atomic OR of a bit under the read lock). */
export function vmaSetFlags(mm: MmStruct, i: number, flags: number): void {
  Atomics.store(mm.vmas, i * VMA_STRIDE + VMA_FLAGS, flags);
}

/** Atomically OR bits into VMA `i`'s flags (anon_vma_prepare under the read lock). */
export function vmaOrFlags(mm: MmStruct, i: number, bits: number): void {
  if ((mm.vmas[i * VMA_STRIDE + VMA_FLAGS]! & bits) !== bits)
    Atomics.or(mm.vmas, i * VMA_STRIDE + VMA_FLAGS, bits);
}

/** mmget_not_zero: take a user reference unless the mm has exited. */
export function mmgetNotZero(mm: MmStruct): boolean {
  for (;;) {
    const u = Atomics.load(mm.ctl, MM_USERS);
    if (u <= 0) return false;
    if (Atomics.compareExchange(mm.ctl, MM_USERS, u, u + 1) === u) return true;
  }
}

/** mmget */
export function mmget(mm: MmStruct): void {
  Atomics.add(mm.ctl, MM_USERS, 1);
}

/**
 * Drop a user reference; true if it was the last one, in which case the caller must run
 * exitMmap (mm/exit.ts; mmput calls it there, this module cannot import upward).
 */
export function mmputDrop(mm: MmStruct): boolean {
  return Atomics.sub(mm.ctl, MM_USERS, 1) === 1;
}

export type FreeMode = 'after-end' | 'after-clear';
export type ThpMode = 'madvise' | 'always' | 'never';

export interface CreateMmOptions {
  /** bytes of address space (default 1 GiB); a multiple of 2 MiB */
  size?: number;
  /** when zapped frames are freed: after invalidate_range_end (default) or right after the clear */
  freeMode?: FreeMode;
  /** transparent_hugepage/enabled: 'madvise' (hmmsim's default), 'always', 'never' */
  thpMode?: ThpMode;
}

/** mm_alloc: a fresh, empty address space with one user. */
export function createMm(phys: PhysMem, opts: CreateMmOptions = {}): MmStruct {
  const size = opts.size ?? 1 << 30;
  const npages = Math.floor(size / 2 ** PAGE_SHIFT);
  if (npages <= 0 || npages % PTRS_PER_PTE !== 0) {
    throw new RangeError(`address-space size must be a positive multiple of 2 MiB, got ${size}`);
  }
  const ctl = sharedInt32(MM_CTL_WORDS);
  const id = nextMmId++;
  Atomics.store(ctl, MM_USERS, 1);
  Atomics.store(ctl, MM_ID, id);
  Atomics.store(ctl, MM_SIZE_PAGES, npages);
  Atomics.store(ctl, MM_FREE_MODE, opts.freeMode === 'after-clear' ? MM_FREE_AFTER_CLEAR : MM_FREE_AFTER_END);
  Atomics.store(
    ctl,
    MM_THP_MODE,
    opts.thpMode === 'always'
      ? THP_MODE_ALWAYS
      : opts.thpMode === 'never'
        ? THP_MODE_NEVER
        : THP_MODE_MADVISE,
  );
  return new MmStruct(
    {
      id,
      npages,
      ctl: ctl.buffer as SharedArrayBuffer,
      vmas: sharedInt32(MAX_VMAS * VMA_STRIDE).buffer as SharedArrayBuffer,
      pmd: sharedInt32(npages / PTRS_PER_PTE).buffer as SharedArrayBuffer,
      pte: sharedInt32(npages).buffer as SharedArrayBuffer,
    },
    phys,
  );
}

/** Attach an mm created elsewhere (e.g. in a device worker). */
export function attachMm(d: MmDescriptor, phys: PhysMem): MmStruct {
  return new MmStruct(d, phys);
}
