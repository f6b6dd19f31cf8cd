/**
 * The one place that fixes the word layout of an mm's interval-notifier state (the kernel's
 * `struct mmu_notifier_subscriptions` as far as interval notifiers use it, plus the subscriptions'
 * own words). Everything lives in one SharedArrayBuffer viewed as an Int32Array:
 *
 * ```
 *  line 0      MN_SEQ: invalidate_seq (the futex word read_begin and remove sleep on), and the
 *              count of its sleepers (MN_SEQ_WAITERS)
 *  line 1      the notifier lock (a spinlock) and the words only its holder touches:
 *              active_invalidate_ranges, set size, deferred-list head, free-list head, ...
 *  set array   capacity entries of SET_STRIDE words, sorted by (start, slot): the subscriptions
 *              "in the interval tree", copied out of their slots so an overlap scan reads a few
 *              contiguous lines instead of one line per subscription, each with the prefix
 *              maximum of `last` so the first overlapping entry is found by binary search
 *  slots       capacity slots of one 64-byte line each: the subscription's own invalidate_seq
 *              (odd), its state, its ops reference (kind, opsId), its interval, a list link
 * ```
 *
 * Addresses are **bytes** (like `MmuNotifierRange`), kept exact up to 2^53: each is split into a
 * high word (bits 32..52) and a low word (bits 0..31). The interval is stored as `start` and
 * `last` (inclusive), the kernel's interval-tree form; handles expose `end = last + 1`.
 */
import { LINE_WORDS, lineAlign } from '../shm/layout.js';
import { SPINLOCK_WORDS } from '../shm/spinlock.js';

// ---- header ---------------------------------------------------------------------------------
/** invalidate_seq: even when idle, odd while an invalidation that hit a subscription is open. */
export const MN_SEQ = 0;
/**
 * Threads sleeping (or about to sleep) on MN_SEQ (Atomics.add/sub by the waiters): the end step
 * that changes the seq wakes them only when it is not 0. On MN_SEQ's line, written only by
 * sleepers.
 */
export const MN_SEQ_WAITERS = 1;
/** The notifier lock (subscriptions->lock), SPINLOCK_WORDS words. */
export const MN_LOCK = LINE_WORDS;
/** active_invalidate_ranges (under the lock). */
export const MN_ACTIVE = MN_LOCK + SPINLOCK_WORDS;
/** Entries in the set array (under the lock). */
export const MN_NSET = MN_ACTIVE + 1;
/** First slot of the deferred list (deferred_list), -1 if empty (under the lock). */
export const MN_DEFERRED_HEAD = MN_NSET + 1;
/** First free slot, -1 if the table is full (under the lock). */
export const MN_FREE_HEAD = MN_DEFERRED_HEAD + 1;
/** Number of slots (fixed at creation). */
export const MN_CAPACITY = MN_FREE_HEAD + 1;
/** Kernel WARN_ONs counted here: an op returned false on a blockable range (Atomics.add). */
export const MN_WARNINGS = MN_CAPACITY + 1;
/** Insert generation counter (under the lock): each insert stamps its slot with a fresh value. */
export const MN_INSERT_GEN = MN_WARNINGS + 1;
/** The mm's id, to check that a descriptor is attached to the right mm. */
export const MN_MM_ID = MN_INSERT_GEN + 1;
export const MN_HEADER_WORDS = 2 * LINE_WORDS;

/** The kernel starts invalidate_seq at 2. */
export const MN_INITIAL_SEQ = 2;

// ---- set array --------------------------------------------------------------------------------
export const SET_START_HI = 0;
export const SET_START_LO = 1;
export const SET_LAST_HI = 2;
export const SET_LAST_LO = 3;
export const SET_SLOT = 4;
/**
 * The largest `last` of this entry and every entry before it (the prefix maximum; the array is
 * sorted by start, so this is monotonic and the first entry that can reach an address is found by
 * binary search, as an augmented interval tree finds it by descending).
 */
export const SET_PMAX_HI = 5;
export const SET_PMAX_LO = 6;
export const SET_STRIDE = 7;

// ---- slots (one cache line each: the seq of each subscription on its own line) ---------------
/** The subscription's invalidate_seq: always odd. */
export const S_SEQ = 0;
/** MN_SLOT_* */
export const S_STATE = 1;
/** ops kind (MMU_INTERVAL_OPS_KIND_LOCAL for an ops object passed directly) */
export const S_KIND = 2;
export const S_OPSID = 3;
/** threadId + 1 of the inserting thread (the only one that can resolve LOCAL ops) */
export const S_OWNER = 4;
/** the insert generation (MN_INSERT_GEN) of the subscription occupying the slot; never 0 */
export const S_GEN = 5;
/** link of the free list or of the deferred list (a slot is on at most one), -1 at the end */
export const S_NEXT = 6;
export const S_START_HI = 7;
export const S_START_LO = 8;
export const S_LAST_HI = 9;
export const S_LAST_LO = 10;

export const MN_SLOT_FREE = 0;
/** in the set ("in the interval tree") */
export const MN_SLOT_IN_SET = 1;
/** on the deferred list, waiting to enter the set at the final invalidate_range_end */
export const MN_SLOT_DEFERRED_INSERT = 2;
/** still in the set and on the deferred list, leaving the set at the final invalidate_range_end */
export const MN_SLOT_DEFERRED_REMOVE = 3;
export const MN_SLOT_STATE_NAMES = ['free', 'in-set', 'deferred-insert', 'deferred-remove'] as const;

/** Addresses are exact below 2^53: the simulator's ULONG_MAX + 1. */
export const MMU_INTERVAL_ADDR_END = 2 ** 53;
/** The largest inclusive `last` an interval may have. */
export const MMU_INTERVAL_LAST_MAX = MMU_INTERVAL_ADDR_END - 1;
const TWO32 = 4294967296;

/** Word index of the set array. */
export function mnSetBase(): number {
  return MN_HEADER_WORDS;
}

/** Word index of slot 0. */
export function mnSlotsBase(capacity: number): number {
  return MN_HEADER_WORDS + lineAlign(capacity * SET_STRIDE);
}

/** Word index of `slot`. */
export function mnSlotBase(capacity: number, slot: number): number {
  return mnSlotsBase(capacity) + slot * LINE_WORDS;
}

/** Total words for a table of `capacity` slots. */
export function mnWords(capacity: number): number {
  return mnSlotsBase(capacity) + capacity * LINE_WORDS;
}

/** High word of a byte address below 2^53. */
export function addrHi(a: number): number {
  return Math.floor(a / TWO32) | 0;
}

/** Low word of a byte address below 2^53 (as an Int32). */
export function addrLo(a: number): number {
  return (a % TWO32) | 0;
}

/** Rebuild a byte address from its two words. */
export function addrJoin(hi: number, lo: number): number {
  return hi * TWO32 + (lo >>> 0);
}
