/**
 * Physical memory shared by every process: the frame pool (metadata + content), the swap area
 * and the page caches of files. Created once on the main thread (`createPhysMem`), attached in
 * workers from `phys.descriptor()` with `attachPhysMem`.
 *
 * Defaults: 65,536 frames (256 MiB of simulated RAM, PFNs 1024.. allocatable, 0 is the zero page,
 * 512..1023 the huge zero page) with W = 16 data words each (4 MiB of content); a swap area of
 * nframes / 4 slots; room for 256 files and nframes file-page slots. Conformance runs pass
 * `{ W: 1024, nframes: 8192 }` or similar (32 MiB of content).
 *
 * The allocator (the buddy allocator's role): a frame is free exactly when its state word is 0
 * (reserved and poisoned frames never are), so the allocator needs no per-frame free list beyond
 * the state word: a bounded LIFO cache of recently freed order-0 frames (reused first, which
 * helps catch stale accesses) backed by a cursor scan of the state words; order-9 blocks are
 * naturally aligned runs of 512 free frames found by a block scan. All of it under one spinlock.
 * Shared bytes per frame: state 4 + generation 4 + write counter 2 = 10 (layout.ts budget).
 *
 * Lost-update accounting (spec/checking.md #2): `copied` (content duplicated: COW, swap-in of a
 * shared slot), `discarded` (the last reference to content went away, plus WCOUNT_WRAP for every
 * wrap of a 16-bit write counter), each on its own line.
 */
import { LINE_WORDS, sharedInt32 } from '../shm/layout.js';
import { spinLock, spinUnlock } from '../shm/spinlock.js';
import {
  FIRST_FREE_PFN,
  FR_ALLOCATED,
  FR_DEVICE_PRIVATE,
  FR_HEAD,
  FR_LAZYFREE,
  FR_LOCKED,
  FR_OWNER_SHIFT,
  FR_PAGECACHE,
  FR_POISON,
  FR_REFCOUNT_MASK,
  FR_TAIL,
  type FrameArrays,
  PTRS_PER_PTE,
  sharedWcount,
  WCOUNT_MAX,
  WCOUNT_WRAP,
} from './layout.js';

// ---- free-event codes for the free log: the mmu_notifier event numbers 0..6, plus these ----
/** freed outside any notifier event (a fault path's own page, a page-cache drop, ...) */
export const FREE_EVENT_OTHER = 7;
/** the old frame of a completed migration / collapse (content moved) */
export const FREE_EVENT_MIGRATE_DONE = 8;

// ---- control words (own lines for the counters) ----
const C_LOCK = 0; // allocator spinlock (2 words)
const C_RING_TOP = 2;
const C_RING_COUNT = 3;
const C_SCAN = 4;
const C_HUGE_SCAN = 5;
const C_FREE = 6; // free (allocatable) frames
const C_COPIED = LINE_WORDS * 1;
const C_DISCARDED = LINE_WORDS * 2;
const C_WCOUNT_WRAPS = LINE_WORDS * 2 + 1; // wraps of 16-bit write counters (each WCOUNT_WRAP discarded)
const C_SWAP_DISCARD_SLOTS = LINE_WORDS * 3; // swap slots whose content was dropped
const C_SWAP_DISCARD_WRITES = LINE_WORDS * 3 + 1; // their write counters
const C_LOG_HEAD = LINE_WORDS * 4;
const C_SWAP_LOCK = LINE_WORDS * 5; // 2 words
const C_SWAP_TOP = LINE_WORDS * 5 + 2;
const C_PC_LOCK = LINE_WORDS * 6; // page-cache lock (2 words)
const C_FILE_COUNT = LINE_WORDS * 6 + 2;
const C_FILE_PAGES_USED = LINE_WORDS * 6 + 3;
const C_FREES = LINE_WORDS * 7; // frames freed (order-0 units)
const C_WORDS = LINE_WORDS * 8;

/** LIFO cache of recently freed order-0 frames. */
const RING = 4096;
/** Free-event log: the last FREE_LOG frees. */
export const FREE_LOG = 4096;
const LOG_STRIDE = 8; // pfn, new generation, event, mm id, page, order, -, -
/** Most files (page caches) one PhysMem holds. */
export const MAX_FILES = 1024;
const F_STRIDE = 8; // npages, flags, base slot, mappings (VMAs that map it), capacity (slots), -, -, -
const FILE_LIVE = 1;
const FILE_SHMEM = 2;
const FILE_UNNAMED = 4; // an unnamed shmem file (MAP_SHARED|MAP_ANONYMOUS): gone with its last mapping
const SW_WCOUNT = 0;
const SW_REF = 1;

export interface PhysMemDescriptor {
  nframes: number;
  /** data words per frame (W, 1..1024) */
  W: number;
  state: SharedArrayBuffer;
  gen: SharedArrayBuffer;
  wcount: SharedArrayBuffer;
  data: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  freeLog: SharedArrayBuffer;
  nswap: number;
  swapData: SharedArrayBuffer;
  swapMeta: SharedArrayBuffer;
  swapStack: SharedArrayBuffer;
  files: SharedArrayBuffer;
  filePages: SharedArrayBuffer;
}

/** One entry of the free-event log. */
export interface FreeEvent {
  pfn: number;
  /** the generation the frame got by this free */
  gen: number;
  /** MMU_NOTIFY_* or FREE_EVENT_* */
  event: number;
  mmId: number;
  /** page number (address >> 12) that mapped it, or -1 */
  page: number;
  /** 0 or 9 */
  order: number;
}

export class PhysMem {
  readonly nframes: number;
  readonly W: number;
  readonly frames: FrameArrays;
  readonly ctl: Int32Array;
  readonly ring: Int32Array;
  readonly freeLog: Int32Array;
  readonly nswap: number;
  readonly swapData: Int32Array;
  /** per slot: write counter, refcount */
  readonly swapMeta: Int32Array;
  readonly swapStack: Int32Array;
  readonly files: Int32Array;
  /** pfn + 1 of each cached file page, 0 if none */
  readonly filePages: Int32Array;

  constructor(readonly desc: PhysMemDescriptor) {
    const d = desc;
    this.nframes = d.nframes;
    this.W = d.W;
    this.frames = {
      state: new Int32Array(d.state),
      gen: new Int32Array(d.gen),
      wcount: new Uint16Array(d.wcount),
      data: new Int32Array(d.data),
    };
    this.ctl = new Int32Array(d.ctl);
    this.ring = new Int32Array(d.ring);
    this.freeLog = new Int32Array(d.freeLog);
    this.nswap = d.nswap;
    this.swapData = new Int32Array(d.swapData);
    this.swapMeta = new Int32Array(d.swapMeta);
    this.swapStack = new Int32Array(d.swapStack);
    this.files = new Int32Array(d.files);
    this.filePages = new Int32Array(d.filePages);
  }

  descriptor(): PhysMemDescriptor {
    return this.desc;
  }

  // ------------------------------------------------------------------------------------------
  // Frame allocation (alloc_pages). Every function returns -1 when out of memory.

  /** Free allocatable frames (order-0 units). */
  get freeFrames(): number {
    return Atomics.load(this.ctl, C_FREE);
  }

  /** Frames freed since creation (order-0 units). */
  get freedFrames(): number {
    return Atomics.load(this.ctl, C_FREES);
  }

  /** alloc_page(GFP_HIGHUSER | __GFP_ZERO): a zeroed order-0 frame, refcount 1, or -1. */
  allocPage(): number {
    const pfn = this.takeFrame(FR_ALLOCATED | 1);
    if (pfn >= 0) this.zeroFrame(pfn);
    return pfn;
  }

  /** A device-private frame (ZONE_DEVICE, MEMORY_DEVICE_PRIVATE) owned by device `owner`. */
  allocDevicePage(owner: number): number {
    const pfn = this.takeFrame(FR_ALLOCATED | FR_DEVICE_PRIVATE | ((owner & 0x7f) << FR_OWNER_SHIFT) | 1);
    if (pfn >= 0) this.zeroFrame(pfn);
    return pfn;
  }

  /** alloc_pages(order 9): a zeroed, naturally aligned compound page; head PFN or -1. */
  allocHugePage(): number {
    const st = this.frames.state;
    const c = this.ctl;
    spinLock(c, C_LOCK);
    let head = -1;
    if (Atomics.load(c, C_FREE) >= PTRS_PER_PTE) {
      const first = FIRST_FREE_PFN / PTRS_PER_PTE;
      const nblocks = Math.floor(this.nframes / PTRS_PER_PTE) - first;
      let b = Atomics.load(c, C_HUGE_SCAN);
      for (let n = 0; n < nblocks && head < 0; n++, b++) {
        if (b >= nblocks) b = 0;
        const base = (first + b) * PTRS_PER_PTE;
        let i = 0;
        // Plain reads under the allocator lock: a state word goes 0 <-> nonzero only under this
        // lock (takeFrame / releaseFrames), whose Atomics acquisition orders those stores before us.
        while (i < PTRS_PER_PTE && st[base + i] === 0) i++;
        if (i === PTRS_PER_PTE) {
          head = base;
          Atomics.store(c, C_HUGE_SCAN, b + 1);
        }
      }
      if (head >= 0) {
        Atomics.store(st, head, FR_ALLOCATED | FR_HEAD | 1);
        for (let i = 1; i < PTRS_PER_PTE; i++) Atomics.store(st, head + i, FR_ALLOCATED | FR_TAIL);
        Atomics.sub(c, C_FREE, PTRS_PER_PTE);
      }
    }
    spinUnlock(c, C_LOCK);
    if (head >= 0) for (let i = 0; i < PTRS_PER_PTE; i++) this.zeroFrame(head + i);
    return head;
  }

  /** Take one free frame and give it state `init` (under the allocator lock). */
  private takeFrame(init: number): number {
    const st = this.frames.state;
    const c = this.ctl;
    spinLock(c, C_LOCK);
    let pfn = -1;
    if (Atomics.load(c, C_FREE) > 0) {
      // LIFO cache first. An entry may be stale (taken since by a huge allocation or a scan):
      // state 0 says it is still free (plain read valid under the lock, see allocHugePage).
      // plain reads of the ring words: only the allocator lock's holder writes them
      let top = c[C_RING_TOP]!;
      let count = c[C_RING_COUNT]!;
      while (count > 0 && pfn < 0) {
        top = (top + RING - 1) % RING;
        count--;
        const f = this.ring[top]!;
        if (st[f] === 0) pfn = f;
      }
      Atomics.store(c, C_RING_TOP, top);
      Atomics.store(c, C_RING_COUNT, count);
      if (pfn < 0) {
        const n = this.nframes - FIRST_FREE_PFN;
        let i = Atomics.load(c, C_SCAN);
        for (let k = 0; k < n; k++, i++) {
          if (i >= this.nframes || i < FIRST_FREE_PFN) i = FIRST_FREE_PFN;
          if (st[i] === 0) {
            pfn = i;
            break;
          }
        }
        Atomics.store(c, C_SCAN, pfn + 1);
      }
      if (pfn >= 0) {
        Atomics.store(st, pfn, init);
        Atomics.sub(c, C_FREE, 1);
      }
    }
    spinUnlock(c, C_LOCK);
    return pfn;
  }

  private zeroFrame(pfn: number): void {
    const d = this.frames.data;
    const W = this.W;
    const base = pfn * W;
    // one bulk store: no mapping reaches a frame being allocated, and the PTE (an Atomics store)
    // that later publishes it orders these stores before any reader that finds it there
    d.fill(0, base, base + W);
    Atomics.store(this.frames.wcount, pfn, 0);
  }

  /** compound_head: the frame that carries the refcount. */
  compoundHead(pfn: number): number {
    return (Atomics.load(this.frames.state, pfn) & FR_TAIL) !== 0 ? pfn & ~(PTRS_PER_PTE - 1) : pfn;
  }

  /** get_page: one more reference (on the head of a compound page). Reserved frames: no-op. */
  getPage(pfn: number): void {
    if (pfn < FIRST_FREE_PFN) return;
    const h = this.compoundHead(pfn);
    const old = Atomics.add(this.frames.state, h, 1);
    if ((old & FR_REFCOUNT_MASK) === FR_REFCOUNT_MASK || (old & FR_ALLOCATED) === 0) {
      throw new Error(`getPage(${pfn}): frame state ${old.toString(16)} (free or refcount overflow)`);
    }
  }

  /** page_count */
  pageRefcount(pfn: number): number {
    return Atomics.load(this.frames.state, this.compoundHead(pfn)) & FR_REFCOUNT_MASK;
  }

  /**
   * put_page: drop one reference; at 0 free the frame (all 512 of a compound page): generation++,
   * content counted as discarded unless `moved` (the caller moved it elsewhere), logged with
   * `event` / `mmId` / `page` so an oracle can name what freed it. True if freed.
   */
  putPage(pfn: number, event = FREE_EVENT_OTHER, mmId = -1, page = -1, moved = false): boolean {
    if (pfn < FIRST_FREE_PFN) return false;
    const st = this.frames.state;
    const h = this.compoundHead(pfn);
    const old = Atomics.sub(st, h, 1);
    const rc = old & FR_REFCOUNT_MASK;
    if (rc === 0) {
      Atomics.add(st, h, 1);
      throw new Error(`putPage(${pfn}): refcount underflow (state ${old.toString(16)})`);
    }
    if (rc !== 1) return false;
    const n = (old & FR_HEAD) !== 0 ? PTRS_PER_PTE : 1;
    this.releaseFrames(h, n, old, event, mmId, page, moved);
    return true;
  }

  /** Variant of putPage for a frame whose content the caller moved (migration, swap-out). */
  putPageMoved(pfn: number, event = FREE_EVENT_MIGRATE_DONE, mmId = -1, page = -1): boolean {
    return this.putPage(pfn, event, mmId, page, true);
  }

  private releaseFrames(
    h: number,
    n: number,
    old: number,
    event: number,
    mmId: number,
    page: number,
    moved: boolean,
  ): void {
    const { state: st, gen, wcount } = this.frames;
    let disc = 0;
    let g = 0;
    for (let i = 0; i < n; i++) {
      disc += Atomics.load(wcount, h + i);
      // generation first: any holder of the old generation sees the mismatch before reuse
      g = Atomics.add(gen, h + i, 1) + 1;
    }
    if (!moved && disc !== 0) Atomics.add(this.ctl, C_DISCARDED, disc);
    this.logFree(h, g, event, mmId, page, n === 1 ? 0 : 9);
    const poisoned = (old & FR_POISON) !== 0;
    const c = this.ctl;
    spinLock(c, C_LOCK);
    for (let i = 0; i < n; i++) Atomics.store(st, h + i, poisoned ? FR_POISON : 0);
    if (!poisoned) {
      Atomics.add(c, C_FREE, n);
      if (n === 1) {
        // the ring and its words are read and written only under the allocator lock
        const top = c[C_RING_TOP]!;
        this.ring[top] = h;
        Atomics.store(c, C_RING_TOP, (top + 1) % RING);
        const cnt = c[C_RING_COUNT]!;
        if (cnt < RING) Atomics.store(c, C_RING_COUNT, cnt + 1);
      }
    }
    spinUnlock(c, C_LOCK);
    Atomics.add(c, C_FREES, n);
  }

  /**
   * split_huge_page: a compound page becomes 512 order-0 frames, each with the head's refcount
   * (every mapping of the THP now maps each subpage). No-op if `head` is not a compound head.
   * The tails get the head's flags except the page lock: __split_huge_page unlocks every subpage
   * but the one its caller locked (the head here), so a holder of the THP's lock (a migration,
   * split_huge_page's caller) still holds exactly one lock, the head's, and releases it.
   */
  splitCompound(head: number): void {
    const st = this.frames.state;
    const s = Atomics.load(st, head);
    if ((s & FR_HEAD) === 0) return;
    const rc = s & FR_REFCOUNT_MASK;
    const flags = s & ~FR_REFCOUNT_MASK & ~FR_HEAD;
    const tail = (flags & ~FR_LOCKED) | rc;
    // tails first: a concurrent compoundHead() of a tail still finds the head's count until then
    for (let i = 1; i < PTRS_PER_PTE; i++) Atomics.store(st, head + i, tail);
    Atomics.and(st, head, ~FR_HEAD);
  }

  // ------------------------------------------------------------------------------------------
  // Frame flags and content

  frameState(pfn: number): number {
    return Atomics.load(this.frames.state, pfn);
  }
  generation(pfn: number): number {
    return Atomics.load(this.frames.gen, pfn);
  }
  isCompound(pfn: number): boolean {
    return (Atomics.load(this.frames.state, pfn) & (FR_HEAD | FR_TAIL)) !== 0;
  }
  setFrameFlag(pfn: number, flag: number): void {
    Atomics.or(this.frames.state, pfn, flag);
  }
  clearFrameFlag(pfn: number, flag: number): void {
    Atomics.and(this.frames.state, pfn, ~flag);
  }
  /**
   * ClearPageLazyFree on write (MADV_FREE is cancelled by a write; spec: also a device write).
   * A THP is lazy-free as a unit (the flag sits on its head, as MADV_FREE of a whole THP sets it):
   * a write to any subpage dirties the huge PMD, which keeps the whole THP, so the head's flag goes.
   */
  clearLazyFree(pfn: number): void {
    const st = this.frames.state;
    if ((Atomics.load(st, pfn) & FR_LAZYFREE) !== 0) Atomics.and(st, pfn, ~FR_LAZYFREE);
    const h = this.compoundHead(pfn);
    if (h !== pfn && (Atomics.load(st, h) & FR_LAZYFREE) !== 0) Atomics.and(st, h, ~FR_LAZYFREE);
  }

  /**
   * A write to frame `pfn`'s content (CPU store, device write): its 16-bit write counter + 1. The
   * one add that wraps it (old value WCOUNT_MAX) counts the wrap: WCOUNT_WRAP writes leave the
   * counter, accounted in `discarded`, so increments + copied = live + discarded stays exact.
   */
  countWrite(pfn: number): void {
    if (Atomics.add(this.frames.wcount, pfn, 1) === WCOUNT_MAX) Atomics.add(this.ctl, C_WCOUNT_WRAPS, 1);
  }

  /** COW copy (copy_user_highpage): content and write counter; the copy counts as `copied`. */
  copyPageContent(dst: number, src: number): void {
    this.copyData(dst, src);
    const w = Atomics.load(this.frames.wcount, src);
    Atomics.store(this.frames.wcount, dst, w);
    if (w !== 0) Atomics.add(this.ctl, C_COPIED, w);
  }

  /** migrate_page_copy: content and write counter move; free `src` with putPageMoved. */
  moveContent(dst: number, src: number): void {
    this.copyData(dst, src);
    Atomics.store(this.frames.wcount, dst, Atomics.load(this.frames.wcount, src));
  }

  private copyData(dst: number, src: number): void {
    const d = this.frames.data;
    const W = this.W;
    const s = src * W;
    const t = dst * W;
    // one bulk copy (the kernel's copy_page): the source is stable (write-protected or under a
    // migration entry), the destination not yet published (see zeroFrame)
    d.copyWithin(t, s, s + W);
  }

  // ------------------------------------------------------------------------------------------
  // Accounting (checking.md #2)

  get copied(): number {
    return Atomics.load(this.ctl, C_COPIED);
  }
  /** Counters of content dropped, plus WCOUNT_WRAP per write-counter wrap (mod 2^32, as an int32). */
  get discarded(): number {
    return (Atomics.load(this.ctl, C_DISCARDED) + Atomics.load(this.ctl, C_WCOUNT_WRAPS) * WCOUNT_WRAP) | 0;
  }
  /** Wraps of 16-bit frame write counters (each counted as WCOUNT_WRAP in `discarded`). */
  get writeCounterWraps(): number {
    return Atomics.load(this.ctl, C_WCOUNT_WRAPS);
  }
  get swapDiscardedSlots(): number {
    return Atomics.load(this.ctl, C_SWAP_DISCARD_SLOTS);
  }
  get swapDiscardedWrites(): number {
    return Atomics.load(this.ctl, C_SWAP_DISCARD_WRITES);
  }
  /** Add to `copied` directly (a caller that duplicated content itself). */
  addCopied(n: number): void {
    if (n !== 0) Atomics.add(this.ctl, C_COPIED, n);
  }
  /** Add to `discarded` directly (content dropped without a free, e.g. a lazy-free discard). */
  addDiscarded(n: number): void {
    if (n !== 0) Atomics.add(this.ctl, C_DISCARDED, n);
  }

  /** Sum of the write counters of all live content: allocated frames and live swap slots. */
  liveWriteCount(): number {
    const { state: st, wcount } = this.frames;
    let sum = 0;
    for (let i = 0; i < this.nframes; i++) {
      if ((Atomics.load(st, i) & FR_ALLOCATED) !== 0) sum += Atomics.load(wcount, i);
    }
    const m = this.swapMeta;
    for (let s = 0; s < this.nswap; s++) {
      if (Atomics.load(m, s * 2 + SW_REF) > 0) sum += Atomics.load(m, s * 2 + SW_WCOUNT);
    }
    return sum | 0;
  }

  // ------------------------------------------------------------------------------------------
  // Free-event log

  private logFree(pfn: number, g: number, event: number, mmId: number, page: number, order: number): void {
    const i = (Atomics.add(this.ctl, C_LOG_HEAD, 1) & (FREE_LOG - 1)) * LOG_STRIDE;
    const l = this.freeLog;
    // plain stores of the fields, then the pfn with an Atomics store: a reader that finds the
    // pfn with an Atomics load (lastFreeEvent) sees the fields written with it
    l[i + 1] = g;
    l[i + 2] = event;
    l[i + 3] = mmId;
    l[i + 4] = page;
    l[i + 5] = order;
    Atomics.store(l, i, pfn);
  }

  /**
   * The most recent logged free of `pfn` (a tail of a freed compound page included), optionally
   * the one that produced generation `gen`; null if it has left the log.
   */
  lastFreeEvent(pfn: number, gen?: number): FreeEvent | null {
    const head = Atomics.load(this.ctl, C_LOG_HEAD);
    const l = this.freeLog;
    const n = Math.min(head, FREE_LOG);
    for (let k = 1; k <= n; k++) {
      const i = ((head - k) & (FREE_LOG - 1)) * LOG_STRIDE;
      const p = Atomics.load(l, i);
      const order = Atomics.load(l, i + 5);
      if (pfn < p || pfn >= p + (1 << order)) continue;
      const g = Atomics.load(l, i + 1);
      if (gen !== undefined && g !== gen) continue;
      return {
        pfn: p,
        gen: g,
        event: Atomics.load(l, i + 2),
        mmId: Atomics.load(l, i + 3),
        page: Atomics.load(l, i + 4),
        order,
      };
    }
    return null;
  }

  // ------------------------------------------------------------------------------------------
  // Swap area (swap_map): slots of W data words, a write counter and a refcount.

  /** get_swap_page: a free slot with refcount 1, or -1. */
  swapAlloc(): number {
    const c = this.ctl;
    spinLock(c, C_SWAP_LOCK);
    const top = Atomics.load(c, C_SWAP_TOP);
    let slot = -1;
    if (top > 0) {
      slot = Atomics.load(this.swapStack, top - 1);
      Atomics.store(c, C_SWAP_TOP, top - 1);
      Atomics.store(this.swapMeta, slot * 2 + SW_REF, 1);
    }
    spinUnlock(c, C_SWAP_LOCK);
    return slot;
  }

  /** swap_duplicate (fork): one more reference. */
  swapDup(slot: number): void {
    Atomics.add(this.swapMeta, slot * 2 + SW_REF, 1);
  }

  swapCount(slot: number): number {
    return Atomics.load(this.swapMeta, slot * 2 + SW_REF);
  }

  swapWriteCount(slot: number): number {
    return Atomics.load(this.swapMeta, slot * 2 + SW_WCOUNT);
  }

  /**
   * swap_free: drop one reference; at 0 the slot is free again and, unless its content was
   * `moved` into a frame, that content is discarded (counted). True if the slot was freed.
   */
  swapFree(slot: number, moved = false): boolean {
    const m = this.swapMeta;
    const old = Atomics.sub(m, slot * 2 + SW_REF, 1);
    if (old <= 0) {
      Atomics.add(m, slot * 2 + SW_REF, 1);
      throw new Error(`swapFree(${slot}): refcount underflow`);
    }
    if (old !== 1) return false;
    const w = Atomics.load(m, slot * 2 + SW_WCOUNT);
    if (!moved) {
      Atomics.add(this.ctl, C_SWAP_DISCARD_SLOTS, 1);
      if (w !== 0) {
        Atomics.add(this.ctl, C_SWAP_DISCARD_WRITES, w);
        Atomics.add(this.ctl, C_DISCARDED, w);
      }
    }
    const c = this.ctl;
    spinLock(c, C_SWAP_LOCK);
    const top = Atomics.load(c, C_SWAP_TOP);
    Atomics.store(this.swapStack, top, slot);
    Atomics.store(c, C_SWAP_TOP, top + 1);
    spinUnlock(c, C_SWAP_LOCK);
    return true;
  }

  /** swap_writepage: the frame's content and write counter move into the slot. */
  swapOutContent(slot: number, pfn: number): void {
    const d = this.frames.data;
    const s = this.swapData;
    const W = this.W;
    for (let i = 0; i < W; i++) Atomics.store(s, slot * W + i, Atomics.load(d, pfn * W + i));
    Atomics.store(this.swapMeta, slot * 2 + SW_WCOUNT, Atomics.load(this.frames.wcount, pfn));
  }

  /**
   * swap_readpage: the slot's content into a frame. `duplicate` (the slot stays referenced by
   * others) counts the copy as `copied`; otherwise the caller frees the slot with moved = true.
   */
  swapInContent(pfn: number, slot: number, duplicate: boolean): void {
    const d = this.frames.data;
    const s = this.swapData;
    const W = this.W;
    for (let i = 0; i < W; i++) Atomics.store(d, pfn * W + i, Atomics.load(s, slot * W + i));
    const w = Atomics.load(this.swapMeta, slot * 2 + SW_WCOUNT);
    Atomics.store(this.frames.wcount, pfn, w);
    if (duplicate && w !== 0) Atomics.add(this.ctl, C_COPIED, w);
  }

  /** Read data word `word` of a swap slot (tests). */
  swapReadWord(slot: number, word = 0): number {
    return Atomics.load(this.swapData, slot * this.W + word);
  }

  // ------------------------------------------------------------------------------------------
  // Files and their page caches (address_space). A MAP_SHARED|MAP_ANONYMOUS mapping is an
  // unnamed shmem file. A page-cache frame holds one reference for the cache, FR_PAGECACHE set.

  /** A file of `npages` pages with an empty page cache; its id, or -ENOSPC style -1 if full. */
  createFile(npages: number, opts: { shmem?: boolean; unnamed?: boolean } = {}): number {
    const c = this.ctl;
    if (!(npages > 0)) return -1;
    spinLock(c, C_PC_LOCK);
    const count = Atomics.load(c, C_FILE_COUNT);
    // reuse a dead file's id and page slots (first fit), else take fresh ones
    let id = -1;
    let base = -1;
    for (let k = 0; k < count; k++) {
      const f = k * F_STRIDE;
      if (Atomics.load(this.files, f + 1) === 0 && Atomics.load(this.files, f + 4) >= npages) {
        id = k;
        base = Atomics.load(this.files, f + 2);
        break;
      }
    }
    let ret = -1;
    if (id >= 0) {
      const f = id * F_STRIDE;
      Atomics.store(this.files, f, npages);
      const fl =
        FILE_LIVE | (opts.shmem || opts.unnamed ? FILE_SHMEM : 0) | (opts.unnamed ? FILE_UNNAMED : 0);
      Atomics.store(this.files, f + 3, 0);
      Atomics.store(this.files, f + 1, fl);
      ret = id;
    } else if (count < MAX_FILES && Atomics.load(c, C_FILE_PAGES_USED) + npages <= this.filePages.length) {
      id = count;
      base = Atomics.load(c, C_FILE_PAGES_USED);
      const f = id * F_STRIDE;
      Atomics.store(this.files, f + 4, npages);
      Atomics.store(this.files, f, npages);
      const fl =
        FILE_LIVE | (opts.shmem || opts.unnamed ? FILE_SHMEM : 0) | (opts.unnamed ? FILE_UNNAMED : 0);
      Atomics.store(this.files, f + 1, fl);
      Atomics.store(this.files, f + 3, 0);
      Atomics.store(this.files, f + 2, base);
      Atomics.store(c, C_FILE_COUNT, id + 1);
      Atomics.store(c, C_FILE_PAGES_USED, base + npages);
      ret = id;
    }
    spinUnlock(c, C_PC_LOCK);
    return ret;
  }

  /** A new VMA maps the file (mmap, VMA split, fork). */
  fileGet(file: number): void {
    Atomics.add(this.files, file * F_STRIDE + 3, 1);
  }

  /**
   * A VMA mapping the file went away; the last one of an unnamed shmem file drops its page cache
   * (the kernel's final fput of the shmem file). Callers have zapped their PTEs first.
   */
  filePut(file: number, event = FREE_EVENT_OTHER): void {
    const left = Atomics.sub(this.files, file * F_STRIDE + 3, 1) - 1;
    if (left === 0 && (Atomics.load(this.files, file * F_STRIDE + 1) & FILE_UNNAMED) !== 0) {
      const n = this.fileNpages(file);
      for (let i = 0; i < n; i++) this.pageCacheDelete(file, i, event);
      Atomics.store(this.files, file * F_STRIDE + 1, 0);
    }
  }

  fileNpages(file: number): number {
    return Atomics.load(this.files, file * F_STRIDE);
  }

  fileIsShmem(file: number): boolean {
    return (Atomics.load(this.files, file * F_STRIDE + 1) & FILE_SHMEM) !== 0;
  }

  /** find_get_page: the cached frame of file page `index` with a reference for the caller, or -1. */
  findGetPage(file: number, index: number): number {
    const c = this.ctl;
    const slot = Atomics.load(this.files, file * F_STRIDE + 2) + index;
    spinLock(c, C_PC_LOCK);
    const pfn = Atomics.load(this.filePages, slot) - 1;
    if (pfn >= 0) this.getPage(pfn);
    spinUnlock(c, C_PC_LOCK);
    return pfn;
  }

  /** True if file page `index` is in the page cache (a hint: no reference is taken). */
  pageCached(file: number, index: number): boolean {
    return Atomics.load(this.filePages, Atomics.load(this.files, file * F_STRIDE + 2) + index) !== 0;
  }

  /**
   * find_or_create_page / shmem_getpage: the cached frame of file page `index` with a reference
   * for the caller, inserting a zeroed frame (the cache holds its own reference) if absent; -1 if
   * out of memory or beyond the file.
   */
  findOrCreatePage(file: number, index: number): number {
    if (index < 0 || index >= this.fileNpages(file)) return -1;
    const got = this.findGetPage(file, index);
    if (got >= 0) return got;
    const pfn = this.allocPage();
    if (pfn < 0) return -1;
    Atomics.store(this.frames.state, pfn, FR_ALLOCATED | FR_PAGECACHE | 2);
    const c = this.ctl;
    const slot = Atomics.load(this.files, file * F_STRIDE + 2) + index;
    spinLock(c, C_PC_LOCK);
    const cur = Atomics.load(this.filePages, slot) - 1;
    if (cur < 0) Atomics.store(this.filePages, slot, pfn + 1);
    else this.getPage(cur);
    spinUnlock(c, C_PC_LOCK);
    if (cur >= 0) {
      // lost the race (add_to_page_cache_lru -EEXIST): drop ours, use theirs
      Atomics.store(this.frames.state, pfn, FR_ALLOCATED | 1);
      this.putPage(pfn);
      return cur;
    }
    return pfn;
  }

  /**
   * delete_from_page_cache: drop file page `index` from the cache (its reference goes; the frame
   * lives on while mapped). True if a page was there.
   */
  pageCacheDelete(file: number, index: number, event = FREE_EVENT_OTHER): boolean {
    const c = this.ctl;
    const slot = Atomics.load(this.files, file * F_STRIDE + 2) + index;
    spinLock(c, C_PC_LOCK);
    const pfn = Atomics.load(this.filePages, slot) - 1;
    if (pfn >= 0) Atomics.store(this.filePages, slot, 0);
    spinUnlock(c, C_PC_LOCK);
    if (pfn < 0) return false;
    Atomics.and(this.frames.state, pfn, ~FR_PAGECACHE);
    this.putPage(pfn, event, -1, index);
    return true;
  }

  /** Drop a file's whole page cache (the last close of an unlinked file, or a test's cleanup). */
  deleteFile(file: number): void {
    const n = this.fileNpages(file);
    for (let i = 0; i < n; i++) this.pageCacheDelete(file, i);
    Atomics.store(this.files, file * F_STRIDE + 1, 0);
  }

  /** Test helper: set data word `word` of file page `index` (initial content; wcount untouched). */
  fileWriteWord(file: number, index: number, word: number, value: number): number {
    const pfn = this.findOrCreatePage(file, index);
    if (pfn < 0) return -1;
    Atomics.store(this.frames.data, pfn * this.W + word, value);
    this.putPage(pfn);
    return 0;
  }

  /** Test helper: data word `word` of file page `index`, or 0 if not cached. */
  fileReadWord(file: number, index: number, word: number): number {
    const pfn = this.findGetPage(file, index);
    if (pfn < 0) return 0;
    const v = Atomics.load(this.frames.data, pfn * this.W + word);
    this.putPage(pfn);
    return v;
  }

  // ------------------------------------------------------------------------------------------

  /** Read data word `word` of a frame (tests, oracles). */
  readWord(pfn: number, word = 0): number {
    return Atomics.load(this.frames.data, pfn * this.W + word);
  }

  /** Shared bytes of frame metadata (state 4, generation 4, write counter 2) per frame. */
  static readonly METADATA_BYTES_PER_FRAME = 10;
}

export interface CreatePhysMemOptions {
  /** frames in the pool, a multiple of 512, at least 2048 (default 65,536) */
  nframes?: number;
  /** data words per frame, 1..1024 (default 16) */
  W?: number;
  /** swap slots (default nframes / 4) */
  nswap?: number;
  /** file-page slots over all files (default nframes) */
  filePages?: number;
}

export function createPhysMem(opts: CreatePhysMemOptions = {}): PhysMem {
  const nframes = opts.nframes ?? 1 << 16;
  const W = opts.W ?? 16;
  if (nframes % PTRS_PER_PTE !== 0 || nframes < 2 * FIRST_FREE_PFN || nframes > 1 << 24) {
    throw new RangeError(`nframes must be a multiple of 512 in [2048, 2^24], got ${nframes}`);
  }
  if (!(W >= 1 && W <= 1024)) throw new RangeError(`W must be in 1..1024, got ${W}`);
  const nswap = opts.nswap ?? nframes >> 2;
  const state = sharedInt32(nframes);
  // the zero page and the huge zero page: allocated, pinned forever (refcount 1, never put)
  Atomics.store(state, 0, FR_ALLOCATED | 1);
  Atomics.store(state, 512, FR_ALLOCATED | FR_HEAD | 1);
  for (let i = 513; i < 1024; i++) Atomics.store(state, i, FR_ALLOCATED | FR_TAIL);
  for (let i = 1; i < 512; i++) Atomics.store(state, i, FR_ALLOCATED | 1); // reserved, unused
  const ctl = sharedInt32(C_WORDS);
  Atomics.store(ctl, C_FREE, nframes - FIRST_FREE_PFN);
  Atomics.store(ctl, C_SCAN, FIRST_FREE_PFN);
  const swapStack = sharedInt32(nswap);
  for (let i = 0; i < nswap; i++) Atomics.store(swapStack, i, nswap - 1 - i);
  Atomics.store(ctl, C_SWAP_TOP, nswap);
  const buf = (a: Int32Array) => a.buffer as SharedArrayBuffer;
  return new PhysMem({
    nframes,
    W,
    state: buf(state),
    gen: buf(sharedInt32(nframes)),
    wcount: sharedWcount(nframes).buffer as SharedArrayBuffer,
    data: buf(sharedInt32(nframes * W)),
    ctl: buf(ctl),
    ring: buf(sharedInt32(RING)),
    freeLog: buf(sharedInt32(FREE_LOG * LOG_STRIDE)),
    nswap,
    swapData: buf(sharedInt32(nswap * W)),
    swapMeta: buf(sharedInt32(nswap * 2)),
    swapStack: buf(swapStack),
    files: buf(sharedInt32(MAX_FILES * F_STRIDE)),
    filePages: buf(sharedInt32(opts.filePages ?? nframes)),
  });
}

/** Attach a PhysMem created elsewhere (a device worker). */
export function attachPhysMem(d: PhysMemDescriptor): PhysMem {
  return new PhysMem(d);
}
