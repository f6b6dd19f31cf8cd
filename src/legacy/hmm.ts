/**
 * The v5.4 mirror API's core (mm/hmm.c and include/linux/hmm.h as of Linux v5.4,
 * spec/legacy-v5.4.md): one `struct hmm` per mm, shared by every mirror of that mm, holding the
 * mm-wide `notifiers` count, the registered ranges with their `valid` flags, the mirrors (under a
 * reader/writer semaphore), a spinlock and a wait word. It hangs off the same `mm.notifiers` chain
 * as the v5.10 interval notifier, so one mm can have v5.10 subscriptions and v5.4 mirrors at once.
 *
 * Everything the notifier side touches is in one SharedArrayBuffer, since invalidations run in
 * whichever thread invalidates. A mirror's ops are stored as a (kind, opsId) reference that every
 * thread resolves through its own registry (as the v5.10 notifier's ops registry does), so a
 * worker's mirror can be invalidated from the main thread.
 *
 * `valid` is a level ("no invalidation is running in this mm now"), not a history: the ABA race
 * of the spec is a property of this protocol, reproduced here on purpose.
 */
import { isMainThread, threadId } from 'node:worker_threads';
import { mmput } from '../mm/exit.js';
import { MM_MMAP_LOCK, PAGE_SIZE } from '../mm/layout.js';
import { type MmStruct, mmgetNotZero } from '../mm/mm.js';
import {
  EAGAIN,
  EFAULT,
  EINVAL,
  ENOMEM,
  type MmuNotifierRange,
  type MmuNotifierSubscriber,
  mmuNotifierRangeBlockable,
} from '../mm/mmu-notifier.js';
import { mmuIntervalOpsKindId } from '../notifier/ops.js';
import { LINE_WORDS, sharedInt32 } from '../shm/layout.js';
import { WAIT_SLICE_MS } from '../shm/mutex.js';
import { percpuRwsemState } from '../shm/percpu-rwsem.js';
import { downRead, downReadTrylock, downWrite, upRead, upWrite } from '../shm/rwsem.js';
import { spinLock, spinUnlock } from '../shm/spinlock.js';

// ---------------------------------------------------------------------------------------------
// Layout of struct hmm (one Int32Array per mm; this module is its only owner)

const H_LOCK = 0; // spinlock (SPINLOCK_WORDS): ranges, notifiers and every `valid` write
const H_NOTIFIERS = 2;
const H_MM_ID = 3;
const H_RANGE_CAP = 4;
const H_MIRROR_CAP = 5;
const H_TOKEN = 6; // a random identity: a SharedArrayBuffer that travelled is another object
const H_WAIT = LINE_WORDS; // the wait queue: an event count bumped (and notified) at each wake_up_all
const H_MIRRORS_SEM = 2 * LINE_WORDS; // rwsem (RWSEM_WORDS)
const H_STATS = 3 * LINE_WORDS;
const ST_STARTS = 0;
const ST_FAILED_STARTS = 1;
const ST_DRAINS = 2; // notifiers reached 0 (every range made valid, waiters woken)
const ST_SYNC_CALLS = 3;
const ST_SYNC_WARNINGS = 4; // a sync op failed in a blockable context, or with something else than -EAGAIN
const H_RANGES = 4 * LINE_WORDS;
const R_STATE = 0; // 0 free, 1 registered
const R_START = 1; // first page
const R_END = 2; // page past the end
const R_VALID = 3;
const R_STRIDE = 4;
const M_STATE = 0; // 0 free, 1 registered
const M_KIND = 1;
const M_OPS_ID = 2;
const M_GEN = 3; // bumped at each registration of the slot
const M_STRIDE = 4;

/** Default capacities of a struct hmm. */
export const HMM_DEFAULT_RANGES = 256;
export const HMM_DEFAULT_MIRRORS = 32;

// ---------------------------------------------------------------------------------------------
// Mirror ops and their registry

/** struct hmm_mirror_ops (v5.4). */
export interface HmmMirrorOps {
  /** release(): the mm goes away; stop using it. */
  release(mirror: HmmMirror): void;
  /**
   * sync_cpu_device_pagetables(): tear down (or write-protect) the device mappings in `update`
   * under the driver's update lock; 0, or -EAGAIN when the range is not blockable and the op would
   * have to sleep.
   */
  syncCpuDevicePagetables(mirror: HmmMirror, update: MmuNotifierRange): number;
}

/** An ops reference any thread that registered `kind` can resolve. */
export interface HmmMirrorOpsRef {
  kind: string | number;
  opsId: number;
}

export type HmmMirrorOpsResolver = (opsId: number) => HmmMirrorOps;

/** kind id of ops objects passed directly (resolvable only in the registering thread) */
const KIND_LOCAL = 0;
const resolvers = new Map<number, HmmMirrorOpsResolver>();
const localOps = new Map<number, HmmMirrorOps>();
let nextLocalId = 1;

/**
 * Register, in this thread, how to resolve mirrors of `kind`: every thread that may invalidate the
 * mm (or release it) registers the kinds of the mirrors on it. Registering the same resolver again
 * is a no-op; a different one for a kind already taken throws.
 */
export function registerHmmMirrorOpsKind(kind: string | number, resolve: HmmMirrorOpsResolver): void {
  const id = mmuIntervalOpsKindId(kind);
  const old = resolvers.get(id);
  if (old !== undefined && old !== resolve) throw new Error(`hmm mirror ops kind ${kind} already registered`);
  resolvers.set(id, resolve);
}

function resolveOps(kind: number, opsId: number): HmmMirrorOps {
  if (kind === KIND_LOCAL) {
    const o = localOps.get(opsId);
    if (o === undefined)
      throw new Error(`hmm mirror: local ops ${opsId} not resolvable in thread ${threadId}`);
    return o;
  }
  const r = resolvers.get(kind);
  if (r === undefined) throw new Error(`hmm mirror: ops kind ${kind} not registered in thread ${threadId}`);
  return r(opsId);
}

/**
 * struct hmm_mirror: create with the ops (an object for single-threaded use, or a reference any
 * thread resolves), then hmmMirrorRegister. `slot` is its place in the struct hmm.
 */
export class HmmMirror {
  hmm: Hmm | null = null;
  slot = -1;
  gen = 0;
  readonly kind: number;
  readonly opsId: number;

  /**
   * From ops (single-threaded use), a reference any thread resolves, or (internal: a thread's
   * handle of a registered slot) the stored kind id and opsId.
   */
  constructor(ops: HmmMirrorOps | HmmMirrorOpsRef | { kindId: number; opsId: number }) {
    if ('kindId' in ops) {
      this.kind = ops.kindId;
      this.opsId = ops.opsId;
    } else if ('syncCpuDevicePagetables' in ops) {
      this.kind = KIND_LOCAL;
      this.opsId = nextLocalId++;
      localOps.set(this.opsId, ops);
    } else {
      this.kind = mmuIntervalOpsKindId(ops.kind);
      this.opsId = ops.opsId | 0;
    }
  }
}

/** The shared part of a legacy range (the rest lives in the driver's thread-local HmmRange54). */
export interface HmmRangeSlot {
  hmm: Hmm | null;
  /** index in the struct hmm's range table, -1 when not registered */
  slot: number;
  start: number;
  end: number;
}

// ---------------------------------------------------------------------------------------------
// struct hmm

export interface HmmDescriptor {
  mmId: number;
  words: SharedArrayBuffer;
}

export interface HmmState {
  notifiers: number;
  ranges: number;
  validRanges: number;
  mirrors: number;
  starts: number;
  failedStarts: number;
  drains: number;
  syncCalls: number;
  syncWarnings: number;
}

/** struct hmm as one thread sees it; a subscriber of `mm.notifiers`. */
export class Hmm implements MmuNotifierSubscriber {
  readonly mm: MmStruct;
  readonly w: Int32Array;
  readonly rangeCap: number;
  readonly mirrorCap: number;
  private readonly mirBase: number;
  /** this thread's mirror handles per slot, checked against the slot's generation */
  private readonly handles: (HmmMirror | undefined)[];

  constructor(mm: MmStruct, d: HmmDescriptor) {
    this.mm = mm;
    this.w = new Int32Array(d.words);
    this.rangeCap = Atomics.load(this.w, H_RANGE_CAP);
    this.mirrorCap = Atomics.load(this.w, H_MIRROR_CAP);
    this.mirBase = H_RANGES + this.rangeCap * R_STRIDE;
    this.handles = new Array<HmmMirror | undefined>(this.mirrorCap);
    if (Atomics.load(this.w, H_MM_ID) !== mm.id)
      throw new Error(`struct hmm of mm ${d.mmId} is not mm ${mm.id}'s`);
  }

  descriptor(): HmmDescriptor {
    return { mmId: this.mm.id, words: this.w.buffer as SharedArrayBuffer };
  }

  /** The mm-wide count of invalidations in flight (an Atomics read). */
  get notifiers(): number {
    return Atomics.load(this.w, H_NOTIFIERS);
  }

  state(): HmmState {
    const w = this.w;
    spinLock(w, H_LOCK);
    let ranges = 0;
    let valid = 0;
    for (let s = 0; s < this.rangeCap; s++) {
      const b = H_RANGES + s * R_STRIDE;
      if (Atomics.load(w, b + R_STATE) !== 0) {
        ranges++;
        if (Atomics.load(w, b + R_VALID) !== 0) valid++;
      }
    }
    const notifiers = Atomics.load(w, H_NOTIFIERS);
    spinUnlock(w, H_LOCK);
    let mirrors = 0;
    for (let s = 0; s < this.mirrorCap; s++)
      if (Atomics.load(w, this.mirBase + s * M_STRIDE) !== 0) mirrors++;
    const st = (i: number): number => Atomics.load(w, H_STATS + i);
    return {
      notifiers,
      ranges,
      validRanges: valid,
      mirrors,
      starts: st(ST_STARTS),
      failedStarts: st(ST_FAILED_STARTS),
      drains: st(ST_DRAINS),
      syncCalls: st(ST_SYNC_CALLS),
      syncWarnings: st(ST_SYNC_WARNINGS),
    };
  }

  // ---- ranges (called with the spinlock held where noted) ----

  /** The shared `valid` word of a registered range slot (an Atomics read). */
  rangeValid(slot: number): boolean {
    return Atomics.load(this.w, H_RANGES + slot * R_STRIDE + R_VALID) !== 0;
  }

  /** Allocate a range slot and set `valid = (notifiers == 0)`, under the spinlock. -1 if full. */
  addRange(startPage: number, endPage: number): number {
    const w = this.w;
    spinLock(w, H_LOCK);
    let slot = -1;
    for (let s = 0; s < this.rangeCap; s++) {
      if (Atomics.load(w, H_RANGES + s * R_STRIDE + R_STATE) === 0) {
        slot = s;
        break;
      }
    }
    if (slot >= 0) {
      const b = H_RANGES + slot * R_STRIDE;
      Atomics.store(w, b + R_START, startPage);
      Atomics.store(w, b + R_END, endPage);
      Atomics.store(w, b + R_VALID, Atomics.load(w, H_NOTIFIERS) === 0 ? 1 : 0);
      Atomics.store(w, b + R_STATE, 1);
    }
    spinUnlock(w, H_LOCK);
    return slot;
  }

  /** Remove a range slot, `valid = false`, under the spinlock. */
  delRange(slot: number): void {
    const w = this.w;
    const b = H_RANGES + slot * R_STRIDE;
    spinLock(w, H_LOCK);
    Atomics.store(w, b + R_VALID, 0);
    Atomics.store(w, b + R_STATE, 0);
    spinUnlock(w, H_LOCK);
  }

  // ---- mirrors ----

  /** add a mirror under the mirrors semaphore held for write; -1 if the table is full */
  addMirror(m: HmmMirror): number {
    const w = this.w;
    downWrite(w, H_MIRRORS_SEM);
    let slot = -1;
    for (let s = 0; s < this.mirrorCap; s++) {
      const b = this.mirBase + s * M_STRIDE;
      if (Atomics.load(w, b + M_STATE) === 0) {
        slot = s;
        Atomics.store(w, b + M_KIND, m.kind);
        Atomics.store(w, b + M_OPS_ID, m.opsId);
        m.gen = Atomics.add(w, b + M_GEN, 1) + 1;
        Atomics.store(w, b + M_STATE, 1);
        break;
      }
    }
    upWrite(w, H_MIRRORS_SEM);
    if (slot >= 0) {
      m.slot = slot;
      m.hmm = this;
      this.handles[slot] = m;
    }
    return slot;
  }

  delMirror(m: HmmMirror): void {
    const w = this.w;
    downWrite(w, H_MIRRORS_SEM);
    Atomics.store(w, this.mirBase + m.slot * M_STRIDE + M_STATE, 0);
    upWrite(w, H_MIRRORS_SEM);
    this.handles[m.slot] = undefined;
  }

  /** This thread's handle of mirror slot `s` (resolving its ops reference). Mirrors sem held. */
  private mirrorAt(s: number): { m: HmmMirror; ops: HmmMirrorOps } {
    const b = this.mirBase + s * M_STRIDE;
    const gen = Atomics.load(this.w, b + M_GEN);
    let m = this.handles[s];
    if (m === undefined || m.gen !== gen) {
      const kind = Atomics.load(this.w, b + M_KIND);
      const opsId = Atomics.load(this.w, b + M_OPS_ID);
      m = new HmmMirror({ kindId: kind, opsId });
      m.hmm = this;
      m.slot = s;
      m.gen = gen;
      this.handles[s] = m;
    }
    return { m, ops: resolveOps(m.kind, m.opsId) };
  }

  // ---- the notifier side ----

  /**
   * notifiers_decrement (v5.4): under the spinlock `notifiers--`; when it reaches 0, every
   * registered range becomes valid (not only the overlapping ones) and every waiter wakes.
   */
  private notifiersDecrement(): void {
    const w = this.w;
    spinLock(w, H_LOCK);
    const n = Atomics.load(w, H_NOTIFIERS) - 1;
    Atomics.store(w, H_NOTIFIERS, n);
    if (n === 0) {
      for (let s = 0; s < this.rangeCap; s++) {
        const b = H_RANGES + s * R_STRIDE;
        if (Atomics.load(w, b + R_STATE) !== 0) Atomics.store(w, b + R_VALID, 1);
      }
      Atomics.add(w, H_STATS + ST_DRAINS, 1);
      spinUnlock(w, H_LOCK);
      this.wakeUpAll();
      return;
    }
    spinUnlock(w, H_LOCK);
  }

  /** wake_up_all(&hmm->wq) */
  private wakeUpAll(): void {
    Atomics.add(this.w, H_WAIT, 1);
    Atomics.notify(this.w, H_WAIT);
  }

  /**
   * hmm_invalidate_range_start (v5.4): count the invalidation and invalidate the overlapping
   * ranges under the spinlock; take the mirrors semaphore (only try it if not blockable); call
   * EVERY mirror's sync op, unfiltered. A non-blockable -EAGAIN stops the loop and fails the start,
   * other failures are warnings. On failure the end step runs here (the caller will not call end).
   */
  invalidateRangeStart(range: MmuNotifierRange): number {
    const w = this.w;
    const rs = range.start / PAGE_SIZE;
    const re = range.end / PAGE_SIZE;
    Atomics.add(w, H_STATS + ST_STARTS, 1);
    spinLock(w, H_LOCK);
    Atomics.store(w, H_NOTIFIERS, Atomics.load(w, H_NOTIFIERS) + 1);
    for (let s = 0; s < this.rangeCap; s++) {
      const b = H_RANGES + s * R_STRIDE;
      if (Atomics.load(w, b + R_STATE) === 0) continue;
      // v5.4's test: `update->end < range->start || update->start >= range->end` skips; an
      // invalidation ending exactly at the range's start counts as overlapping (conservative).
      if (re < Atomics.load(w, b + R_START) || rs >= Atomics.load(w, b + R_END)) continue;
      Atomics.store(w, b + R_VALID, 0);
    }
    spinUnlock(w, H_LOCK);

    const blockable = mmuNotifierRangeBlockable(range);
    let ret = 0;
    if (blockable) downRead(w, H_MIRRORS_SEM);
    else if (!downReadTrylock(w, H_MIRRORS_SEM)) ret = -EAGAIN;
    if (ret === 0) {
      try {
        for (let s = 0; s < this.mirrorCap; s++) {
          if (Atomics.load(w, this.mirBase + s * M_STRIDE + M_STATE) === 0) continue;
          const { m, ops } = this.mirrorAt(s);
          Atomics.add(w, H_STATS + ST_SYNC_CALLS, 1);
          const rc = ops.syncCpuDevicePagetables(m, range);
          if (rc !== 0) {
            // WARN_ON(blockable || rc != -EAGAIN): warn and call the next mirror
            if (blockable || rc !== -EAGAIN) {
              Atomics.add(w, H_STATS + ST_SYNC_WARNINGS, 1);
              continue;
            }
            ret = -EAGAIN;
            break;
          }
        }
      } catch (e) {
        // A sync op threw: the caller will not call the end, so close our start before the
        // error propagates (the count must not leak for a reason the kernel does not have).
        upRead(w, H_MIRRORS_SEM);
        this.notifiersDecrement();
        throw e;
      }
      upRead(w, H_MIRRORS_SEM);
    }
    if (ret !== 0) {
      Atomics.add(w, H_STATS + ST_FAILED_STARTS, 1);
      this.notifiersDecrement();
    }
    return ret;
  }

  /** hmm_invalidate_range_end (v5.4): notifiers_decrement. */
  invalidateRangeEnd(_range: MmuNotifierRange): void {
    this.notifiersDecrement();
  }

  /**
   * hmm_release (v5.4): every range becomes invalid, waiters wake (and keep waiting: valid is
   * false), then every mirror's release op is called under the mirrors semaphore.
   */
  release(_range: MmuNotifierRange): void {
    const w = this.w;
    spinLock(w, H_LOCK);
    for (let s = 0; s < this.rangeCap; s++) {
      const b = H_RANGES + s * R_STRIDE;
      if (Atomics.load(w, b + R_STATE) !== 0) Atomics.store(w, b + R_VALID, 0);
    }
    spinUnlock(w, H_LOCK);
    this.wakeUpAll();
    downRead(w, H_MIRRORS_SEM);
    try {
      for (let s = 0; s < this.mirrorCap; s++) {
        if (Atomics.load(w, this.mirBase + s * M_STRIDE + M_STATE) === 0) continue;
        const { m, ops } = this.mirrorAt(s);
        ops.release(m);
      }
    } finally {
      upRead(w, H_MIRRORS_SEM);
    }
  }

  /**
   * Sleep until `valid(slot)` or `deadline` (performance.now() ms). Woken only by wake_up_all,
   * i.e. when the whole mm is quiet (or at release). Returns the final `valid`.
   */
  waitValid(slot: number, deadline: number): boolean {
    const w = this.w;
    for (;;) {
      const g = Atomics.load(w, H_WAIT);
      if (this.rangeValid(slot)) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(w, H_WAIT, g, Math.min(left, WAIT_SLICE_MS));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Per-thread registry: one struct hmm per mm

const hmms = new WeakMap<MmStruct, Hmm>();
const createdById = new Map<number, HmmDescriptor>();

export interface HmmCreateOptions {
  ranges?: number;
  mirrors?: number;
}

/**
 * hmm_get_or_create (v5.4): this thread's struct hmm of `mm`, creating the shared state on first
 * use (main thread only: a worker attaches it with attachHmm), and subscribing it to mm.notifiers
 * after any subscriber already there (the kernel's hlist order: interval tree first).
 */
export function hmmGetOrCreate(mm: MmStruct, opts: HmmCreateOptions = {}): Hmm {
  const have = hmms.get(mm);
  if (have !== undefined) return have;
  const known = createdById.get(mm.id);
  if (known !== undefined) return attachHmm(mm, known);
  if (!isMainThread) throw new Error(`mm ${mm.id}: struct hmm not attached in this worker (attachHmm)`);
  const rangeCap = opts.ranges ?? HMM_DEFAULT_RANGES;
  const mirrorCap = opts.mirrors ?? HMM_DEFAULT_MIRRORS;
  const w = sharedInt32(H_RANGES + rangeCap * R_STRIDE + mirrorCap * M_STRIDE);
  Atomics.store(w, H_MM_ID, mm.id);
  Atomics.store(w, H_RANGE_CAP, rangeCap);
  Atomics.store(w, H_MIRROR_CAP, mirrorCap);
  Atomics.store(w, H_TOKEN, ((Math.random() * 0x7fffffff) | 0) + 1);
  const d: HmmDescriptor = { mmId: mm.id, words: w.buffer as SharedArrayBuffer };
  createdById.set(mm.id, d);
  return attachHmm(mm, d);
}

/** This thread's struct hmm of `mm`, or null. */
export function hmmOf(mm: MmStruct): Hmm | null {
  return hmms.get(mm) ?? null;
}

/** Attach a struct hmm created elsewhere, and subscribe this thread's view to mm.notifiers. */
export function attachHmm(mm: MmStruct, d: HmmDescriptor): Hmm {
  const have = hmms.get(mm);
  if (have !== undefined) {
    const same =
      have.w.buffer === d.words ||
      Atomics.load(have.w, H_TOKEN) === Atomics.load(new Int32Array(d.words), H_TOKEN);
    if (!same) throw new Error(`mm ${mm.id}: another struct hmm is attached`);
    return have;
  }
  if (d.mmId !== mm.id) throw new Error(`struct hmm of mm ${d.mmId} does not belong to mm ${mm.id}`);
  const h = new Hmm(mm, d);
  hmms.set(mm, h);
  mm.notifiers.register(h);
  return h;
}

// ---------------------------------------------------------------------------------------------
// The mirror API

/**
 * hmm_mirror_register (v5.4): the caller holds the mmap lock for write. 0, or -ENOMEM when the
 * mirror table is full (-EINVAL if the mirror is registered already).
 */
export function hmmMirrorRegister(mirror: HmmMirror, mm: MmStruct): number {
  // lockdep_assert_held_write(&mm->mmap_sem)
  if (percpuRwsemState(mm.ctl, MM_MMAP_LOCK) !== -1) {
    throw new Error('hmmMirrorRegister: the mmap lock must be held for write');
  }
  if (mirror.hmm !== null) return -EINVAL;
  const hmm = hmmGetOrCreate(mm);
  return hmm.addMirror(mirror) < 0 ? -ENOMEM : 0;
}

/** hmm_mirror_unregister (v5.4): the mirror must have no registered ranges left. */
export function hmmMirrorUnregister(mirror: HmmMirror): void {
  const hmm = mirror.hmm;
  if (hmm === null) return;
  hmm.delMirror(mirror);
  mirror.hmm = null;
  mirror.slot = -1;
}

/**
 * hmm_range_register (v5.4): -EINVAL if not page aligned or empty; -EFAULT if the mm has no users
 * left (`valid` stays false); else the range is added with `valid = (notifiers == 0)`. Holds an
 * mm reference until hmmRangeUnregister (mmget_not_zero / mmput).
 */
export function hmmRangeRegister(range: HmmRangeSlot, mirror: HmmMirror): number {
  const hmm = mirror.hmm;
  if (hmm === null) return -EINVAL;
  if (range.start % PAGE_SIZE !== 0 || range.end % PAGE_SIZE !== 0) return -EINVAL;
  if (!(range.start < range.end)) return -EINVAL;
  if (range.slot >= 0) return -EINVAL;
  if (!mmgetNotZero(hmm.mm)) return -EFAULT;
  const slot = hmm.addRange(range.start / PAGE_SIZE, range.end / PAGE_SIZE);
  if (slot < 0) {
    mmput(hmm.mm);
    return -ENOMEM; // hmmsim's table is full
  }
  range.hmm = hmm;
  range.slot = slot;
  return 0;
}

/** hmm_range_unregister (v5.4): remove the range, `valid = false`, drop the mm reference. */
export function hmmRangeUnregister(range: HmmRangeSlot): void {
  const hmm = range.hmm;
  if (hmm === null || range.slot < 0) return;
  hmm.delRange(range.slot);
  range.slot = -1;
  range.hmm = null;
  mmput(hmm.mm);
}

/** hmm_range_valid (v5.4): a read of `valid` (false when not registered). */
export function hmmRangeValid(range: HmmRangeSlot): boolean {
  return range.hmm !== null && range.slot >= 0 && range.hmm.rangeValid(range.slot);
}

/**
 * hmm_range_wait_until_valid (v5.4): sleep until the range is valid or `timeoutMs` passed; true
 * if valid. Waiters are woken only when the mm-wide count drains to 0, so this waits out
 * invalidations that never touch the range too.
 */
export function hmmRangeWaitUntilValid(range: HmmRangeSlot, timeoutMs: number): boolean {
  const hmm = range.hmm;
  if (hmm === null || range.slot < 0) return false;
  return hmm.waitValid(range.slot, performance.now() + timeoutMs);
}
