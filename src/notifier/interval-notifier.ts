/**
 * The v5.10 mmu_interval_notifier core (mm/mmu_notifier.c, the "itree" half): per-mm sequence
 * counter, subscriptions with their own odd seqs, the deferred insert/remove list, and the
 * collision-retry read side. Specified in spec/interval-notifier.md.
 *
 * All state lives in one SharedArrayBuffer per mm (layout in ./layout.ts). Each thread has its own
 * `MmuNotifierSubscriptions` view of it, registered FIRST on that thread's `mm.notifiers` chain
 * (the kernel walks the interval tree before the classic notifier list), and its own
 * `MmuIntervalNotifier` handles. Ops run synchronously in the invalidating thread, resolved from
 * the slot's (kind, opsId) through that thread's registry (./ops.ts).
 *
 * 32-bit sequence numbers. The kernel's counters are unsigned long; ours are Int32 words wrapping
 * modulo 2^32. The parity design still holds across the wrap (subscription seqs are odd, the idle
 * mm seq is even, so read_begin never sleeps outside an invalidation), but ABA is possible: a
 * reader whose subscription goes through 2^31 invalidation periods (each advances the mm seq by 2)
 * between mmuIntervalReadBegin and mmuIntervalReadRetry would see its old seq again and pass a
 * stale snapshot. At the simulator's rates (well under 10^7 invalidations per second) that takes
 * minutes of a reader stalled inside one retry loop while invalidations hit it; the deadlines of
 * the driver pattern (1 s) bound it far below that.
 *
 * Deviations, each a choice where the kernel cannot be mirrored: the table has a fixed capacity
 * (insert fails with -ENOSPC when full); addresses are exact below 2^53 (MMU_INTERVAL_ADDR_END
 * stands for ULONG_MAX + 1, so an interval whose last byte is at or above it is -EOVERFLOW);
 * `has_itree` is not modelled (every start/end pair is counted in active_invalidate_ranges, also
 * before the first subscription exists); remove waits under the lock (the 5.10.113 fix; the old
 * racy wait is the mutant `remove-early-return`).
 */
import { isMainThread, threadId } from 'node:worker_threads';
import { injection, MUTANT_BEGIN_NO_WAIT, MUTANT_REMOVE_EARLY_RETURN } from '../checker/points.js';
import type { MmStruct } from '../mm/mm.js';
import {
  EAGAIN,
  EINVAL,
  ENOSPC,
  EOVERFLOW,
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MMU_NOTIFY_RELEASE,
  type MmuNotifierRange,
  type MmuNotifierSubscriber,
} from '../mm/mmu-notifier.js';
import { LINE_WORDS, sharedInt32 } from '../shm/layout.js';
import { WAIT_SLICE_MS } from '../shm/mutex.js';
import { spinLock, spinOwner, spinUnlock } from '../shm/spinlock.js';
import {
  addrHi,
  addrJoin,
  addrLo,
  MMU_INTERVAL_ADDR_END,
  MMU_INTERVAL_LAST_MAX,
  MN_ACTIVE,
  MN_CAPACITY,
  MN_DEFERRED_HEAD,
  MN_FREE_HEAD,
  MN_INITIAL_SEQ,
  MN_INSERT_GEN,
  MN_LOCK,
  MN_MM_ID,
  MN_NSET,
  MN_SEQ,
  MN_SEQ_WAITERS,
  MN_SLOT_DEFERRED_INSERT,
  MN_SLOT_DEFERRED_REMOVE,
  MN_SLOT_FREE,
  MN_SLOT_IN_SET,
  MN_SLOT_STATE_NAMES,
  MN_WARNINGS,
  mnSetBase,
  mnSlotBase,
  mnSlotsBase,
  mnWords,
  S_GEN,
  S_KIND,
  S_LAST_HI,
  S_LAST_LO,
  S_NEXT,
  S_OPSID,
  S_OWNER,
  S_SEQ,
  S_START_HI,
  S_START_LO,
  S_STATE,
  SET_LAST_HI,
  SET_LAST_LO,
  SET_PMAX_HI,
  SET_PMAX_LO,
  SET_SLOT,
  SET_START_HI,
  SET_START_LO,
  SET_STRIDE,
} from './layout.js';
import {
  isMmuIntervalNotifierOps,
  localOpsAcquire,
  localOpsRelease,
  MMU_INTERVAL_OPS_KIND_LOCAL,
  type MmuIntervalNotifierOps,
  type MmuIntervalOpsRef,
  mmuIntervalOpsKindId,
  opsRegistry,
} from './ops.js';
import { mmuNotifierStats } from './stats.js';

const TWO32 = 4294967296;
// Module-local copies of what the read side's hot path (read_begin, read_retry, check_retry)
// uses. An imported binding is live: V8 (Node 20) reloads it from its module cell, with a TDZ
// check, at every use; a module-local const is folded into the optimised code like a literal.
const SEQ_WORD = MN_SEQ;
const BEGIN_NO_WAIT = MUTANT_BEGIN_NO_WAIT;
const injectionState = injection;
const notifierStats = mmuNotifierStats;
// The same for the write side's hot path (invalidate start and end, once per invalidation).
const LOCK_WORD = MN_LOCK;
const ACTIVE_WORD = MN_ACTIVE;
const NSET_WORD = MN_NSET;
const DEFERRED_HEAD_WORD = MN_DEFERRED_HEAD;
const WAITERS_WORD = MN_SEQ_WAITERS;
const STRIDE = SET_STRIDE;
const START_HI = SET_START_HI;
const START_LO = SET_START_LO;
const LAST_HI = SET_LAST_HI;
const LAST_LO = SET_LAST_LO;
const PMAX_HI = SET_PMAX_HI;
const PMAX_LO = SET_PMAX_LO;
const SLOT_WORD = SET_SLOT;
const GEN_WORD = S_GEN;
const SLOT_WORDS = LINE_WORDS;
const BLOCKABLE = MMU_NOTIFIER_RANGE_BLOCKABLE;
const registry = opsRegistry;
const lock = spinLock;
const unlock = spinUnlock;
const EMPTY_WORDS = new Int32Array(0);
const SELF = threadId + 1;

/**
 * wait_event(wq, invalidate_seq != seq): sleep on the seq word while it holds `seq`, counted in
 * MN_SEQ_WAITERS so the end step notifies only when someone may sleep. The count is raised
 * before the first check: an end step that stores the new seq and then reads the count either
 * sees us counted (and notifies) or stored the new seq before our check (and we do not sleep).
 */
function seqWait(w: Int32Array, seq: number): void {
  Atomics.add(w, WAITERS_WORD, 1);
  try {
    while (Atomics.load(w, SEQ_WORD) === seq) Atomics.wait(w, SEQ_WORD, seq, WAIT_SLICE_MS);
  } finally {
    Atomics.sub(w, WAITERS_WORD, 1);
  }
}

/** Default number of subscription slots per mm. */
export const MMU_INTERVAL_DEFAULT_CAPACITY = 1024;

/**
 * lockdep's `__mmu_notifier_invalidate_range_start_map`, per thread: > 0 while this thread runs
 * invalidate ops. read_begin and remove must not be called from an op (they could sleep on the
 * invalidation the op belongs to); the kernel's lockdep annotation reports it, we throw.
 */
let invalidateDepth = 0;

function lockdepSplat(fn: string): never {
  throw new Error(`${fn} called from an interval-notifier invalidate op (would deadlock)`);
}

/** Test/debug hooks of this thread (not hot paths). */
export const mmuNotifierDebugHooks: {
  /** Called under the notifier lock for each deferred entry the final end step applies. */
  applyDeferred: ((slot: number, state: number) => void) | null;
} = { applyDeferred: null };

/** Everything a worker needs to attach an mm's interval-notifier state. */
export interface MmuNotifierSubscriptionsDescriptor {
  mmId: number;
  capacity: number;
  words: SharedArrayBuffer;
}

/** Identifies one inserted subscription across threads (slot + insert generation). */
export interface MmuIntervalNotifierDescriptor {
  mmId: number;
  slot: number;
  gen: number;
}

/**
 * struct mmu_interval_notifier: this thread's handle on one subscription. Filled by
 * `mmuIntervalNotifierInsert`, or obtained in another thread with `mmuIntervalNotifierFromSlot`
 * or `mmuIntervalNotifierAttach`. `start`/`end` are bytes, `end` exclusive.
 */
export class MmuIntervalNotifier {
  /** valid once inserted or attached */
  mm!: MmStruct;
  /** valid once inserted or attached */
  subscriptions!: MmuNotifierSubscriptions;
  start = 0;
  end = 0;
  /** the slot in the mm's table, -1 when not inserted */
  slot = -1;
  /** the insert generation the handle belongs to (a reused slot has another) */
  gen = 0;
  /** how the subscription's ops are found (kind LOCAL for an ops object passed directly) */
  opsKind = 0;
  opsId = 0;
  /** threadId + 1 of the thread that inserted it (the only one that can call LOCAL ops) */
  ownerThread = 0;
  /** the mm's shared words (hot paths index them directly) */
  words: Int32Array = EMPTY_WORDS;
  /** index of this subscription's invalidate_seq in `words` */
  seqIndex = -1;

  descriptor(): MmuIntervalNotifierDescriptor {
    return { mmId: this.subscriptions.mmId, slot: this.slot, gen: this.gen };
  }
}

export interface MmuNotifierSubscriptionsOptions {
  /** subscription slots (default MMU_INTERVAL_DEFAULT_CAPACITY) */
  capacity?: number;
  /** initial invalidate_seq (even; default 2, as the kernel); tests start near the wrap */
  initialSeq?: number;
}

/** A snapshot of the core's shared state, for tests, oracles and the watchdog's dump. */
export interface MmuNotifierSubscriptionsState {
  invalidateSeq: number;
  activeInvalidateRanges: number;
  inSet: number;
  deferred: number;
  warnings: number;
}

/**
 * struct mmu_notifier_subscriptions (its interval-tree half) as seen from one thread. Implements
 * the chain subscriber: the mm calls invalidateRangeStart/End/release on it.
 */
export class MmuNotifierSubscriptions implements MmuNotifierSubscriber {
  readonly mm: MmStruct;
  readonly mmId: number;
  readonly words: Int32Array;
  readonly capacity: number;
  private readonly setBase: number;
  private readonly slotsBase: number;
  /** this thread's handle per slot (checked against the slot's generation) */
  private readonly handles: (MmuIntervalNotifier | undefined)[];
  /** this thread's resolved ops per slot, valid while opsGen[slot] equals the slot's generation */
  private readonly ops: (MmuIntervalNotifierOps | undefined)[];
  private readonly opsGen: Int32Array;
  private cacheEpoch: number;

  constructor(mm: MmStruct, d: MmuNotifierSubscriptionsDescriptor) {
    this.mm = mm;
    this.mmId = d.mmId;
    this.words = new Int32Array(d.words);
    this.capacity = d.capacity;
    this.setBase = mnSetBase();
    this.slotsBase = mnSlotsBase(d.capacity);
    this.handles = new Array<MmuIntervalNotifier | undefined>(d.capacity);
    this.ops = new Array<MmuIntervalNotifierOps | undefined>(d.capacity);
    this.opsGen = new Int32Array(d.capacity);
    this.cacheEpoch = opsRegistry.epoch;
  }

  descriptor(): MmuNotifierSubscriptionsDescriptor {
    return { mmId: this.mmId, capacity: this.capacity, words: this.words.buffer as SharedArrayBuffer };
  }

  /** The current mm invalidate_seq (an Atomics read; for tests and oracles). */
  invalidateSeq(): number {
    return Atomics.load(this.words, MN_SEQ);
  }

  /** A consistent snapshot, taken under the notifier lock. */
  state(): MmuNotifierSubscriptionsState {
    const w = this.words;
    spinLock(w, MN_LOCK);
    let deferred = 0;
    for (let s = Atomics.load(w, MN_DEFERRED_HEAD); s !== -1; s = Atomics.load(w, this.slotIdx(s) + S_NEXT)) {
      deferred++;
    }
    const st: MmuNotifierSubscriptionsState = {
      invalidateSeq: Atomics.load(w, MN_SEQ),
      activeInvalidateRanges: Atomics.load(w, MN_ACTIVE),
      inSet: Atomics.load(w, MN_NSET),
      deferred,
      warnings: Atomics.load(w, MN_WARNINGS),
    };
    spinUnlock(w, MN_LOCK);
    return st;
  }

  /** Holder of the notifier lock (threadId + 1, 0 if free): for the watchdog, lock-free. */
  lockOwner(): number {
    return spinOwner(this.words, MN_LOCK);
  }

  /** A slot's state (MN_SLOT_*), read without the lock: a debug/oracle read. */
  slotState(slot: number): number {
    return Atomics.load(this.words, this.slotIdx(slot) + S_STATE);
  }

  /** A slot's invalidate_seq (Atomics read). */
  slotSeq(slot: number): number {
    return Atomics.load(this.words, this.slotIdx(slot) + S_SEQ);
  }

  /** Slots in the set, in scan order (under the lock; not a hot path). */
  setSlots(): number[] {
    const w = this.words;
    spinLock(w, MN_LOCK);
    const n = Atomics.load(w, MN_NSET);
    const out: number[] = [];
    for (let k = 0; k < n; k++) out.push(Atomics.load(w, this.setBase + k * SET_STRIDE + SET_SLOT));
    spinUnlock(w, MN_LOCK);
    return out;
  }

  private slotIdx(slot: number): number {
    return this.slotsBase + slot * LINE_WORDS;
  }

  // ---------------------------------------------------------------------------------------------
  // Write side

  /**
   * mn_itree_invalidate with mn_itree_inv_start_range: count the range as open, make the seq odd
   * if any subscription overlaps (inclusive ends), then call each overlapping subscription's op,
   * in this thread, with the whole range and the same odd cur_seq. On a non-blockable range an op
   * returning false stops the loop; the end step runs here and -EAGAIN is returned (the caller must
   * not call invalidateRangeEnd). On a blockable range it is a counted warning and the loop goes on.
   */
  invalidateRangeStart(range: MmuNotifierRange): number {
    const w = this.words;
    const rs = range.start;
    const rl = range.end - 1;
    const setBase = this.setBase;
    const stats = notifierStats;
    stats.invalidateStarts++;

    lock(w, LOCK_WORD);
    // Plain reads of the words only the lock holder writes (active count, set size, seq and the
    // set array): every writer of them holds the lock, and our spinLock (an Atomics
    // compareExchange) orders us after the last writer's spinUnlock. The stores stay Atomics:
    // the seq is read without the lock (read_begin), the rest by the watchdog's dump.
    Atomics.store(w, ACTIVE_WORD, w[ACTIVE_WORD]! + 1);
    const n = w[NSET_WORD]!;
    // interval_tree_iter_first: the first entry whose prefix-max `last` reaches the range start
    // is the first entry that can overlap; it does iff it starts before the range ends.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const b = setBase + mid * STRIDE;
      if (w[b + PMAX_HI]! * TWO32 + (w[b + PMAX_LO]! >>> 0) < rs) lo = mid + 1;
      else hi = mid;
    }
    let first = -1;
    if (lo < n) {
      const b = setBase + lo * STRIDE;
      if (w[b + START_HI]! * TWO32 + (w[b + START_LO]! >>> 0) <= rl) first = lo;
    }
    let curSeq = 0;
    if (first >= 0) {
      curSeq = w[SEQ_WORD]! | 1;
      Atomics.store(w, SEQ_WORD, curSeq);
    }
    unlock(w, LOCK_WORD);
    if (first < 0) return 0;

    stats.invalidationsHit++;
    if (this.cacheEpoch !== registry.epoch) this.dropOpsCache();
    const blockable = (range.flags & BLOCKABLE) !== 0;
    const slotsBase = this.slotsBase;
    const opsGen = this.opsGen;
    const ops = this.ops;
    const handles = this.handles;
    let failed = false;
    invalidateDepth++;
    try {
      // Plain reads of the set array and of the slots' fixed words, now outside the lock. Safe
      // without validation: from the moment we made the seq odd until our own end step, the set
      // cannot change (insert and remove defer while the seq is odd, and the deferred list is
      // applied only when active_invalidate_ranges, which counts us, drops to 0), and every
      // earlier write to it happened before our spinLock above.
      for (let k = first; k < n; k++) {
        const b = setBase + k * STRIDE;
        if (w[b + START_HI]! * TWO32 + (w[b + START_LO]! >>> 0) > rl) break;
        if (w[b + LAST_HI]! * TWO32 + (w[b + LAST_LO]! >>> 0) < rs) continue;
        const slot = w[b + SLOT_WORD]!;
        const gen = w[slotsBase + slot * SLOT_WORDS + GEN_WORD]!;
        if (opsGen[slot] !== gen) this.resolveOps(slot, gen);
        stats.opsCalled++;
        if (!ops[slot]!.invalidate(handles[slot]!, range, curSeq)) {
          stats.opsFalse++;
          if (blockable) {
            // WARN_ON(mmu_notifier_range_blockable(range)): a blockable op may not fail.
            stats.blockableWarnings++;
            Atomics.add(w, MN_WARNINGS, 1);
            continue;
          }
          failed = true;
          break;
        }
      }
    } catch (e) {
      // An op (or the resolution of one) threw: the caller will not call the end, so close our
      // start here and leave the shared state consistent before the error propagates.
      invalidateDepth--;
      this.invEnd();
      throw e;
    }
    invalidateDepth--;
    if (failed) {
      // out_would_block: the ops already called keep their new seq; the core ends the range.
      stats.eagain++;
      this.invEnd();
      return -EAGAIN;
    }
    return 0;
  }

  /** __mmu_notifier_invalidate_range_end's interval half: mn_itree_inv_end. */
  invalidateRangeEnd(_range: MmuNotifierRange): void {
    this.invEnd();
  }

  /**
   * mn_itree_release: at mm teardown every subscription's op is called once with a RELEASE event
   * over the whole address space (start 0, end MMU_INTERVAL_ADDR_END, the kernel's ULONG_MAX;
   * drivers clamp it), blockable; a false return is a warning. Then the end step.
   */
  release(range: MmuNotifierRange): void {
    const r: MmuNotifierRange = {
      mmId: range.mmId,
      start: 0,
      end: MMU_INTERVAL_ADDR_END,
      event: MMU_NOTIFY_RELEASE,
      flags: MMU_NOTIFIER_RANGE_BLOCKABLE,
      owner: -1,
      ownerFile: -1,
    };
    if (this.invalidateRangeStart(r) === 0) this.invEnd();
  }

  /**
   * mn_itree_inv_end: close one range; the last one to close an odd period makes the seq even,
   * applies the deferred inserts and removes (still under the lock, so a remover that observes
   * the seq under the lock sees the list applied), and wakes every sleeper.
   */
  private invEnd(): void {
    const w = this.words;
    lock(w, LOCK_WORD);
    // Plain reads under the lock (see invalidateRangeStart).
    const active = w[ACTIVE_WORD]! - 1;
    if (active < 0) {
      unlock(w, LOCK_WORD);
      throw new Error('invalidate_range_end without a matching invalidate_range_start');
    }
    Atomics.store(w, ACTIVE_WORD, active);
    const seq = w[SEQ_WORD]!;
    if (active !== 0 || (seq & 1) === 0) {
      unlock(w, LOCK_WORD);
      return;
    }
    Atomics.store(w, SEQ_WORD, (seq + 1) | 0);
    if (w[DEFERRED_HEAD_WORD]! !== -1) this.applyDeferredLocked();
    unlock(w, LOCK_WORD);
    // wake_up_all(&subscriptions->wq): read_begin and remove sleep on the seq word itself, and
    // count themselves in MN_SEQ_WAITERS first (see seqWait): with nobody counted, nobody can be
    // asleep on the old seq, since a waiter that counts itself after our seq store above sees
    // the new seq before it would sleep.
    if (Atomics.load(w, WAITERS_WORD) !== 0) Atomics.notify(w, SEQ_WORD);
  }

  /** The deferred-list walk of mn_itree_inv_end (lock held). */
  private applyDeferredLocked(): void {
    const w = this.words;
    let s = Atomics.load(w, MN_DEFERRED_HEAD);
    Atomics.store(w, MN_DEFERRED_HEAD, -1);
    const hook = mmuNotifierDebugHooks.applyDeferred;
    while (s !== -1) {
      const base = this.slotIdx(s);
      const next = Atomics.load(w, base + S_NEXT);
      const state = Atomics.load(w, base + S_STATE);
      if (hook) hook(s, state);
      Atomics.store(w, base + S_NEXT, -1);
      if (state === MN_SLOT_DEFERRED_INSERT) {
        this.setInsertLocked(s);
        Atomics.store(w, base + S_STATE, MN_SLOT_IN_SET);
      } else if (state === MN_SLOT_DEFERRED_REMOVE) {
        this.setRemoveLocked(s);
        this.freeSlotLocked(s);
      }
      s = next;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The set ("interval tree"): a sorted array, changed only under the lock.

  /** interval_tree_insert (lock held). */
  private setInsertLocked(slot: number): void {
    const w = this.words;
    const base = this.slotIdx(slot);
    const sh = Atomics.load(w, base + S_START_HI);
    const sl = Atomics.load(w, base + S_START_LO);
    const start = addrJoin(sh, sl);
    const n = Atomics.load(w, MN_NSET);
    if (n >= this.capacity) throw new Error('interval-notifier set overflow (corrupt table)');
    // Find the position (first entry with a larger (start, slot)); shift the tail up one entry.
    // Plain reads: we hold the lock and every writer of the set holds it.
    let k = n;
    while (k > 0) {
      const b = this.setBase + (k - 1) * SET_STRIDE;
      const s = addrJoin(w[b + SET_START_HI]!, w[b + SET_START_LO]!);
      if (s < start || (s === start && w[b + SET_SLOT]! < slot)) break;
      for (let j = 0; j < SET_STRIDE; j++) Atomics.store(w, b + SET_STRIDE + j, w[b + j]!);
      k--;
    }
    const b = this.setBase + k * SET_STRIDE;
    Atomics.store(w, b + SET_START_HI, sh);
    Atomics.store(w, b + SET_START_LO, sl);
    Atomics.store(w, b + SET_LAST_HI, Atomics.load(w, base + S_LAST_HI));
    Atomics.store(w, b + SET_LAST_LO, Atomics.load(w, base + S_LAST_LO));
    Atomics.store(w, b + SET_SLOT, slot);
    Atomics.store(w, MN_NSET, n + 1);
    this.setPrefixMaxLocked(k, n + 1);
  }

  /** Recompute the prefix maxima of entries [from, n) (lock held; plain reads as above). */
  private setPrefixMaxLocked(from: number, n: number): void {
    const w = this.words;
    let max = -1;
    if (from > 0) {
      const p = this.setBase + (from - 1) * SET_STRIDE;
      max = addrJoin(w[p + SET_PMAX_HI]!, w[p + SET_PMAX_LO]!);
    }
    for (let k = from; k < n; k++) {
      const b = this.setBase + k * SET_STRIDE;
      const last = addrJoin(w[b + SET_LAST_HI]!, w[b + SET_LAST_LO]!);
      if (last > max) max = last;
      Atomics.store(w, b + SET_PMAX_HI, addrHi(max));
      Atomics.store(w, b + SET_PMAX_LO, addrLo(max));
    }
  }

  /** interval_tree_remove (lock held). */
  private setRemoveLocked(slot: number): void {
    const w = this.words;
    const n = Atomics.load(w, MN_NSET);
    let k = 0;
    // Plain reads: lock held (see setInsertLocked).
    while (k < n && w[this.setBase + k * SET_STRIDE + SET_SLOT] !== slot) k++;
    if (k === n) throw new Error(`interval-notifier slot ${slot} is not in the set (corrupt table)`);
    const from = k;
    for (; k < n - 1; k++) {
      const b = this.setBase + k * SET_STRIDE;
      for (let j = 0; j < SET_STRIDE; j++) Atomics.store(w, b + j, w[b + SET_STRIDE + j]!);
    }
    Atomics.store(w, MN_NSET, n - 1);
    this.setPrefixMaxLocked(from, n - 1);
  }

  private freeSlotLocked(slot: number): void {
    const w = this.words;
    const base = this.slotIdx(slot);
    Atomics.store(w, base + S_STATE, MN_SLOT_FREE);
    Atomics.store(w, base + S_NEXT, Atomics.load(w, MN_FREE_HEAD));
    Atomics.store(w, MN_FREE_HEAD, slot);
  }

  /** hlist_del of a deferred entry (lock held). */
  private unlinkDeferredLocked(slot: number): void {
    const w = this.words;
    let prev = -1;
    let s = Atomics.load(w, MN_DEFERRED_HEAD);
    while (s !== -1 && s !== slot) {
      prev = s;
      s = Atomics.load(w, this.slotIdx(s) + S_NEXT);
    }
    if (s === -1)
      throw new Error(`interval-notifier slot ${slot} is not on the deferred list (corrupt table)`);
    const next = Atomics.load(w, this.slotIdx(slot) + S_NEXT);
    if (prev === -1) Atomics.store(w, MN_DEFERRED_HEAD, next);
    else Atomics.store(w, this.slotIdx(prev) + S_NEXT, next);
    Atomics.store(w, this.slotIdx(slot) + S_NEXT, -1);
  }

  private pushDeferredLocked(slot: number): void {
    const w = this.words;
    Atomics.store(w, this.slotIdx(slot) + S_NEXT, Atomics.load(w, MN_DEFERRED_HEAD));
    Atomics.store(w, MN_DEFERRED_HEAD, slot);
  }

  // ---------------------------------------------------------------------------------------------
  // Insert and remove

  /** __mmu_interval_notifier_insert, after the argument checks. */
  insert(
    sub: MmuIntervalNotifier,
    start: number,
    last: number,
    ops: MmuIntervalNotifierOps | MmuIntervalOpsRef,
  ): number {
    let kind: number;
    let opsId: number;
    let local: MmuIntervalNotifierOps | undefined;
    if (isMmuIntervalNotifierOps(ops)) {
      kind = MMU_INTERVAL_OPS_KIND_LOCAL;
      local = ops;
      opsId = localOpsAcquire(ops);
    } else {
      kind = mmuIntervalOpsKindId(ops.kind);
      opsId = ops.opsId | 0;
    }
    const w = this.words;
    spinLock(w, MN_LOCK);
    const slot = Atomics.load(w, MN_FREE_HEAD);
    if (slot === -1) {
      spinUnlock(w, MN_LOCK);
      if (local) localOpsRelease(opsId);
      return -ENOSPC;
    }
    const base = this.slotIdx(slot);
    Atomics.store(w, MN_FREE_HEAD, Atomics.load(w, base + S_NEXT));
    let gen = (Atomics.load(w, MN_INSERT_GEN) + 1) | 0;
    if (gen === 0) gen = 1;
    Atomics.store(w, MN_INSERT_GEN, gen);
    Atomics.store(w, base + S_GEN, gen);
    Atomics.store(w, base + S_KIND, kind);
    Atomics.store(w, base + S_OPSID, opsId);
    Atomics.store(w, base + S_OWNER, SELF);
    Atomics.store(w, base + S_NEXT, -1);
    Atomics.store(w, base + S_START_HI, addrHi(start));
    Atomics.store(w, base + S_START_LO, addrLo(start));
    Atomics.store(w, base + S_LAST_HI, addrHi(last));
    Atomics.store(w, base + S_LAST_LO, addrLo(last));

    let seq = Atomics.load(w, MN_SEQ);
    let subSeq: number;
    if (Atomics.load(w, MN_ACTIVE) !== 0) {
      if (seq & 1) {
        // An invalidation that hit subscriptions is open: the set must not change under its op
        // loop, so queue the insert; the final end puts it in the set.
        this.pushDeferredLocked(slot);
        Atomics.store(w, base + S_STATE, MN_SLOT_DEFERRED_INSERT);
      } else {
        // Open invalidations hit nothing, but their ranges are unknown here: treat the new
        // subscription as hit (seq odd, its readers wait for the end) and insert it now.
        seq |= 1;
        Atomics.store(w, MN_SEQ, seq);
        this.setInsertLocked(slot);
        Atomics.store(w, base + S_STATE, MN_SLOT_IN_SET);
      }
      subSeq = seq;
    } else {
      // Idle: an odd seq that is not the current one, so read_begin does not sleep.
      subSeq = (seq - 1) | 0;
      this.setInsertLocked(slot);
      Atomics.store(w, base + S_STATE, MN_SLOT_IN_SET);
    }
    Atomics.store(w, base + S_SEQ, subSeq);
    spinUnlock(w, MN_LOCK);

    this.fillHandle(sub, slot, gen, start, last, kind, opsId, SELF);
    this.handles[slot] = sub;
    if (local) {
      this.ops[slot] = local;
      this.opsGen[slot] = gen;
    }
    return 0;
  }

  /** mmu_interval_notifier_remove, the three cases of spec/interval-notifier.md. */
  remove(sub: MmuIntervalNotifier): void {
    const slot = sub.slot;
    if (slot < 0) throw new Error('mmu_interval_notifier_remove of a subscription that is not inserted');
    const w = this.words;
    const base = this.slotIdx(slot);
    let waitSeq = 0;
    let wait = false;
    spinLock(w, MN_LOCK);
    const state = Atomics.load(w, base + S_STATE);
    if (
      Atomics.load(w, base + S_GEN) !== sub.gen ||
      state === MN_SLOT_FREE ||
      state === MN_SLOT_DEFERRED_REMOVE
    ) {
      spinUnlock(w, MN_LOCK);
      throw new Error(`mmu_interval_notifier_remove: slot ${slot} was already removed`);
    }
    const seq = Atomics.load(w, MN_SEQ);
    if (seq & 1) {
      if (state === MN_SLOT_DEFERRED_INSERT) {
        // (b) inserted during this odd period and never entered the set: just take it off the list.
        this.unlinkDeferredLocked(slot);
        this.freeSlotLocked(slot);
      } else {
        // (c) in the set while invalidations are open: an op loop may be walking it. Queue the
        // removal for the final end and wait for that end to have applied it.
        this.pushDeferredLocked(slot);
        Atomics.store(w, base + S_STATE, MN_SLOT_DEFERRED_REMOVE);
        waitSeq = seq;
        wait = true;
      }
    } else {
      // (a) no invalidation hits subscriptions: out of the set at once.
      this.setRemoveLocked(slot);
      this.freeSlotLocked(slot);
    }
    spinUnlock(w, MN_LOCK);

    if (wait) {
      const t0 = performance.now();
      if ((injection.mutants & MUTANT_REMOVE_EARLY_RETURN) !== 0) {
        // v5.10.0 .. 5.10.112: the seq read without the lock; returns as soon as the end step
        // has bumped it, possibly while that step is still walking the deferred list.
        seqWait(w, waitSeq);
      } else {
        // 5.10.113 (mmu_interval_seq_released): observe the seq under the lock the end step holds
        // while it applies the deferred list, so we return only after it has finished.
        Atomics.add(w, WAITERS_WORD, 1);
        try {
          for (;;) {
            spinLock(w, MN_LOCK);
            const cur = Atomics.load(w, MN_SEQ);
            spinUnlock(w, MN_LOCK);
            if (cur !== waitSeq) break;
            Atomics.wait(w, MN_SEQ, waitSeq, WAIT_SLICE_MS);
          }
        } finally {
          Atomics.sub(w, WAITERS_WORD, 1);
        }
      }
      mmuNotifierStats.removeWaits++;
      mmuNotifierStats.removeWaitMs += performance.now() - t0;
    }
    if (sub.opsKind === MMU_INTERVAL_OPS_KIND_LOCAL && this.ops[slot] !== undefined)
      localOpsRelease(sub.opsId);
    if (this.handles[slot] === sub) this.handles[slot] = undefined;
    sub.slot = -1;
  }

  // ---------------------------------------------------------------------------------------------
  // Handles and ops resolution (thread-local caches)

  private fillHandle(
    h: MmuIntervalNotifier,
    slot: number,
    gen: number,
    start: number,
    last: number,
    kind: number,
    opsId: number,
    owner: number,
  ): void {
    h.mm = this.mm;
    h.subscriptions = this;
    h.start = start;
    h.end = last + 1;
    h.slot = slot;
    h.gen = gen;
    h.opsKind = kind;
    h.opsId = opsId;
    h.ownerThread = owner;
    h.words = this.words;
    h.seqIndex = this.slotIdx(slot) + S_SEQ;
  }

  /**
   * This thread's handle for the subscription in `slot`, or null if the slot is free or (with
   * `gen`) holds another subscription. Reads the slot under the lock: not for hot paths (the
   * invalidate loop uses its cache).
   */
  handleForSlot(slot: number, gen?: number): MmuIntervalNotifier | null {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.capacity) {
      throw new RangeError(`interval-notifier slot ${slot} out of range`);
    }
    const w = this.words;
    const base = this.slotIdx(slot);
    spinLock(w, MN_LOCK);
    const g = Atomics.load(w, base + S_GEN);
    const state = Atomics.load(w, base + S_STATE);
    const start = addrJoin(Atomics.load(w, base + S_START_HI), Atomics.load(w, base + S_START_LO));
    const last = addrJoin(Atomics.load(w, base + S_LAST_HI), Atomics.load(w, base + S_LAST_LO));
    const kind = Atomics.load(w, base + S_KIND);
    const opsId = Atomics.load(w, base + S_OPSID);
    const owner = Atomics.load(w, base + S_OWNER);
    spinUnlock(w, MN_LOCK);
    if (state === MN_SLOT_FREE || (gen !== undefined && gen !== g)) return null;
    const cached = this.handles[slot];
    if (cached !== undefined && cached.gen === g && cached.slot === slot) return cached;
    const h = new MmuIntervalNotifier();
    this.fillHandle(h, slot, g, start, last, kind, opsId, owner);
    this.handles[slot] = h;
    return h;
  }

  /** First use of a subscription in this thread (or after its slot was reused): resolve its ops. */
  private resolveOps(slot: number, gen: number): void {
    const w = this.words;
    const base = this.slotIdx(slot);
    // Plain reads: written under the lock before the slot entered the set; the caller's spinLock
    // in invalidateRangeStart ordered us after that, and they cannot change until our end.
    const kind = w[base + S_KIND]!;
    const opsId = w[base + S_OPSID]!;
    const owner = w[base + S_OWNER]!;
    let ops: MmuIntervalNotifierOps;
    if (kind === MMU_INTERVAL_OPS_KIND_LOCAL) {
      const e = owner === SELF ? opsRegistry.local.get(opsId) : undefined;
      if (e === undefined) {
        throw new Error(
          `interval-notifier slot ${slot} was inserted with an ops object in thread ${owner - 1}; ` +
            `thread ${threadId} cannot call it: insert with a registered ops kind instead`,
        );
      }
      ops = e.ops;
    } else {
      const resolve = opsRegistry.kinds.get(kind);
      if (resolve === undefined) {
        throw new Error(
          `interval-notifier slot ${slot}: ops kind ${kind} is not registered in thread ${threadId} ` +
            '(registerMmuIntervalOpsKind)',
        );
      }
      ops = resolve(opsId);
    }
    let h = this.handles[slot];
    if (h === undefined || h.gen !== gen || h.slot !== slot) {
      h = new MmuIntervalNotifier();
      const start = addrJoin(w[base + S_START_HI]!, w[base + S_START_LO]!);
      const last = addrJoin(w[base + S_LAST_HI]!, w[base + S_LAST_LO]!);
      this.fillHandle(h, slot, gen, start, last, kind, opsId, owner);
      this.handles[slot] = h;
    }
    this.ops[slot] = ops;
    this.opsGen[slot] = gen;
  }

  private dropOpsCache(): void {
    this.opsGen.fill(0);
    this.ops.fill(undefined);
    this.cacheEpoch = opsRegistry.epoch;
  }
}

// -----------------------------------------------------------------------------------------------
// Per-thread registry of cores, creation and attachment

const cores = new WeakMap<MmStruct, MmuNotifierSubscriptions>();
/** Main thread: the shared state created per mm id, so a second view of the same mm shares it. */
const createdById = new Map<number, MmuNotifierSubscriptionsDescriptor>();

function registerFirst(mm: MmStruct, core: MmuNotifierSubscriptions): void {
  // The kernel calls the interval tree before the classic subscription list: be first.
  const subs = mm.notifiers.subscribers;
  const i = subs.indexOf(core);
  if (i === 0) return;
  if (i > 0) subs.splice(i, 1);
  subs.unshift(core);
}

/**
 * mmu_notifier_get_locked / __mmu_notifier_register for the interval half: this thread's core
 * of `mm`, creating the shared state on first use (main thread only; a worker must attach it
 * with attachMmuNotifierSubscriptions first). Options apply only at creation.
 */
export function mmuNotifierSubscriptionsGet(
  mm: MmStruct,
  opts: MmuNotifierSubscriptionsOptions = {},
): MmuNotifierSubscriptions {
  const have = cores.get(mm);
  if (have) return have;
  const known = createdById.get(mm.id);
  if (known) return attachMmuNotifierSubscriptions(mm, known);
  if (!isMainThread) {
    throw new Error(
      `mm ${mm.id}: interval-notifier state not attached in this worker (attachMmuNotifierSubscriptions)`,
    );
  }
  const capacity = opts.capacity ?? MMU_INTERVAL_DEFAULT_CAPACITY;
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 20) {
    throw new RangeError(`interval-notifier capacity must be 1..2^20, got ${capacity}`);
  }
  const seq0 = opts.initialSeq ?? MN_INITIAL_SEQ;
  if (!Number.isInteger(seq0) || (seq0 & 1) !== 0) {
    throw new RangeError(`initial invalidate_seq must be an even integer, got ${seq0}`);
  }
  const w = sharedInt32(mnWords(capacity));
  Atomics.store(w, MN_SEQ, seq0 | 0);
  Atomics.store(w, MN_CAPACITY, capacity);
  Atomics.store(w, MN_DEFERRED_HEAD, -1);
  Atomics.store(w, MN_MM_ID, mm.id);
  for (let s = 0; s < capacity; s++) {
    const base = mnSlotBase(capacity, s);
    Atomics.store(w, base + S_STATE, MN_SLOT_FREE);
    Atomics.store(w, base + S_NEXT, s + 1 < capacity ? s + 1 : -1);
  }
  Atomics.store(w, MN_FREE_HEAD, 0);
  const d: MmuNotifierSubscriptionsDescriptor = {
    mmId: mm.id,
    capacity,
    words: w.buffer as SharedArrayBuffer,
  };
  createdById.set(mm.id, d);
  return attachMmuNotifierSubscriptions(mm, d);
}

/** This thread's core of `mm` if it has one, else null (never creates). */
export function mmuNotifierSubscriptionsOf(mm: MmStruct): MmuNotifierSubscriptions | null {
  return cores.get(mm) ?? null;
}

/**
 * Attach an mm's interval-notifier state created elsewhere (a worker, from the descriptor the
 * main thread passed in its task payload) and register this thread's core first on mm.notifiers.
 */
export function attachMmuNotifierSubscriptions(
  mm: MmStruct,
  d: MmuNotifierSubscriptionsDescriptor,
): MmuNotifierSubscriptions {
  const have = cores.get(mm);
  if (have) {
    if (have.words.buffer !== d.words)
      throw new Error(`mm ${mm.id}: another interval-notifier state is attached`);
    return have;
  }
  const w = new Int32Array(d.words);
  if (
    d.mmId !== mm.id ||
    Atomics.load(w, MN_MM_ID) !== mm.id ||
    Atomics.load(w, MN_CAPACITY) !== d.capacity
  ) {
    throw new Error(`interval-notifier descriptor of mm ${d.mmId} does not belong to mm ${mm.id}`);
  }
  const core = new MmuNotifierSubscriptions(mm, d);
  cores.set(mm, core);
  registerFirst(mm, core);
  return core;
}

// -----------------------------------------------------------------------------------------------
// The kernel API

/**
 * mmu_interval_notifier_insert: subscribe `sub` to [start, start + length) of `mm` (bytes).
 * `ops` is a reference `{ kind, opsId }` resolvable in every thread that registered the kind, or
 * an ops object, usable only from this thread. Returns 0, -EOVERFLOW (zero length, or the last
 * byte at or above 2^53), -EINVAL (the mm has no users), or -ENOSPC (the table is full).
 */
export function mmuIntervalNotifierInsert(
  sub: MmuIntervalNotifier,
  mm: MmStruct,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps | MmuIntervalOpsRef,
): number {
  // check_add_overflow(start, length - 1) in a 2^53 address space; non-integers cannot be
  // addresses either.
  if (!Number.isSafeInteger(start) || start < 0 || !Number.isInteger(length) || length <= 0)
    return -EOVERFLOW;
  if (length - 1 > MMU_INTERVAL_LAST_MAX - start) return -EOVERFLOW;
  if (mm.users <= 0) return -EINVAL;
  if (sub.slot >= 0) throw new Error('mmu_interval_notifier_insert of a subscription already inserted');
  return mmuNotifierSubscriptionsGet(mm).insert(sub, start, start + length - 1, ops);
}

/**
 * mmu_interval_notifier_insert_locked: the kernel's variant for callers holding the mmap write
 * lock. The simulator's insert never takes the mmap lock, so it is the same operation.
 */
export const mmuIntervalNotifierInsertLocked = mmuIntervalNotifierInsert;

/**
 * mmu_interval_notifier_remove: (a) seq even: out at once; (b) seq odd and still on the deferred
 * list: taken off it; (c) seq odd and in the set: queued, then sleeps until the final end has
 * applied the deferred list. Must not be called from an invalidate op nor under the user lock.
 */
export function mmuIntervalNotifierRemove(sub: MmuIntervalNotifier): void {
  if (invalidateDepth !== 0) lockdepSplat('mmu_interval_notifier_remove');
  if (sub.slot < 0) throw new Error('mmu_interval_notifier_remove of a subscription that is not inserted');
  sub.subscriptions.remove(sub);
}

/**
 * mmu_interval_read_begin: the subscription's seq, read under the notifier lock; if it equals
 * the mm's seq an invalidation of this subscription is open, so first sleep until the mm seq
 * changes. Does not loop: the caller's read_retry catches anything later. Sets
 * mmuNotifierStats.lastReadBeginSlept / lastReadBeginSleepMs. Never call it under the user lock.
 */
export function mmuIntervalReadBegin(sub: MmuIntervalNotifier): number {
  if (invalidateDepth !== 0) lockdepSplat('mmu_interval_read_begin');
  const w = sub.words;
  // The kernel reads both seqs under the notifier lock. Two sequentially consistent loads give
  // the same outcomes without it: the mm seq only leaves an odd value X by the final end, and the
  // sub seq only becomes X inside an op of that same period, so seeing sub == mm means the period
  // is still open (sleep), and any other pair is one a locked read could also have produced (an op
  // that has not run yet, or a period already ended); read_retry under the user lock catches the
  // rest. This keeps read_begin at two loads on the hot path instead of a lock round trip.
  const seq = Atomics.load(w, sub.seqIndex);
  const isInvalidating = seq === Atomics.load(w, SEQ_WORD);
  const st = notifierStats;
  st.readBegins++;
  st.lastReadBeginSlept = false;
  st.lastReadBeginSleepMs = 0;
  if (isInvalidating && (injectionState.mutants & BEGIN_NO_WAIT) === 0) {
    // wait_event(wq, invalidate_seq != seq): a futex wait on the mm seq word itself, so a change
    // between our check and the sleep is never missed (Atomics.wait compares atomically).
    const t0 = performance.now();
    seqWait(w, seq);
    const dt = performance.now() - t0;
    st.readBeginSleeps++;
    st.readBeginSleepMs += dt;
    st.lastReadBeginSlept = true;
    st.lastReadBeginSleepMs = dt;
  }
  return seq;
}

/**
 * mmu_interval_read_retry: true if an invalidate op ran since `seq` was read. The caller holds
 * the user lock the ops take, which makes this the authoritative check.
 */
export function mmuIntervalReadRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  return Atomics.load(sub.words, sub.seqIndex) !== seq;
}

/**
 * mmu_interval_check_retry: the same test without the user lock, to stop early (e.g. inside
 * hmm_range_fault). A plain read (the kernel's READ_ONCE): a stale answer only delays the stop,
 * because the caller must still pass mmuIntervalReadRetry under the user lock, whose acquisition
 * (an Atomics read-modify-write) orders the authoritative Atomics.load after every set_seq made
 * under that lock.
 */
export function mmuIntervalCheckRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  return sub.words[sub.seqIndex] !== seq;
}

/**
 * hmmsim: read_begin's test without its sleep: true while an invalidation of `sub` is open (its
 * op ran in the mm's current invalidation period, which has not ended), so the CPU page-table
 * change that invalidation announced may still be ahead. A driver that must publish entries
 * without a read_begin / read_retry pair (it holds page locks or migration entries an invalidator
 * may wait on) calls it under its user lock and publishes nothing while it is true: any
 * invalidation not open now either ended (its PTE change is visible) or has yet to run its op,
 * which then waits for the user lock and erases what was published.
 */
export function mmuIntervalIsInvalidating(sub: MmuIntervalNotifier): boolean {
  const w = sub.words;
  spinLock(w, MN_LOCK);
  const open = Atomics.load(w, sub.seqIndex) === Atomics.load(w, MN_SEQ);
  spinUnlock(w, MN_LOCK);
  return open;
}

/** mmu_interval_set_seq: only from the invalidate op, under the user lock, with its cur_seq. */
export function mmuIntervalSetSeq(sub: MmuIntervalNotifier, curSeq: number): void {
  Atomics.store(sub.words, sub.seqIndex, curSeq);
}

/**
 * A handle, in this thread, on the subscription now in `slot` of `mm` (attached in this thread).
 * Throws if the slot is free.
 */
export function mmuIntervalNotifierFromSlot(mm: MmStruct, slot: number): MmuIntervalNotifier {
  const h = requireCore(mm).handleForSlot(slot);
  if (h === null) throw new Error(`mm ${mm.id}: interval-notifier slot ${slot} is free`);
  return h;
}

/** A handle on the subscription `d` names (from `sub.descriptor()` in another thread), or null if it was removed. */
export function mmuIntervalNotifierAttach(
  mm: MmStruct,
  d: MmuIntervalNotifierDescriptor,
): MmuIntervalNotifier | null {
  if (d.mmId !== mm.id) throw new Error(`interval-notifier descriptor of mm ${d.mmId} used with mm ${mm.id}`);
  return requireCore(mm).handleForSlot(d.slot, d.gen);
}

function requireCore(mm: MmStruct): MmuNotifierSubscriptions {
  const core = cores.get(mm);
  if (core) return core;
  if (createdById.has(mm.id)) return mmuNotifierSubscriptionsGet(mm);
  throw new Error(`mm ${mm.id}: interval-notifier state not attached in this thread`);
}

/** The name of a slot state, for messages. */
export function mmuIntervalSlotStateName(state: number): string {
  return MN_SLOT_STATE_NAMES[state] ?? `state ${state}`;
}
