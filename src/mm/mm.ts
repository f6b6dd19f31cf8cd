/**
 * struct mm_struct: one process's address space. Its control block, VMA table and page table live
 * in SharedArrayBuffers; `MmStruct` is a thread-local view over them, built on the main thread by
 * `createMm` and attached in a worker from `mm.descriptor()` with `attachMm`.
 */
import { sharedInt32 } from '../shm/layout.js';
import { downRead, downWrite, upRead, upWrite } from '../shm/rwsem.js';
import {
  MAX_VMAS,
  MM_CTL_WORDS,
  MM_ID,
  MM_MMAP_LOCK,
  MM_USERS,
  MM_VMA_COUNT,
  PAGE_SHIFT,
  PTRS_PER_PTE,
  VMA_END,
  VMA_START,
  VMA_STRIDE,
} from './layout.js';
import { MmuNotifierChain } from './mmu-notifier.js';
import type { PhysMem } from './physmem.js';

/** Everything a worker needs to attach an mm: plain data and SharedArrayBuffers only. */
export interface MmDescriptor {
  id: number;
  npages: number;
  ctl: SharedArrayBuffer;
  vmas: SharedArrayBuffer;
  pmd: SharedArrayBuffer;
  pte: SharedArrayBuffer;
}

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
    return downRead(this.ctl, MM_MMAP_LOCK);
  }
  mmapReadUnlock(): void {
    upRead(this.ctl, MM_MMAP_LOCK);
  }
  mmapWriteLock(): boolean {
    return downWrite(this.ctl, MM_MMAP_LOCK);
  }
  mmapWriteUnlock(): void {
    upWrite(this.ctl, MM_MMAP_LOCK);
  }

  // ---- VMA table (callers hold the mmap lock: read to look, write to change) ----
  get vmaCount(): number {
    return Atomics.load(this.ctl, MM_VMA_COUNT);
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
}

export interface CreateMmOptions {
  /** bytes of address space (default 1 GiB); a multiple of 2 MiB */
  size?: number;
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
