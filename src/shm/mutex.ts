/**
 * A futex-style mutex over one Int32 word of a SharedArrayBuffer (Drepper's three-state futex:
 * 0 unlocked, 1 locked, 2 locked with waiters). Models the kernel's `struct mutex` as a driver's
 * update lock uses it: a short optimistic spin, then sleep, because a spinning waiter on a 2-core
 * machine steals the CPU the holder needs.
 *
 * The word after the lock word records the holder's thread id (for the watchdog's dump only).
 */
import { threadId } from 'node:worker_threads';

/** How long one Atomics.wait may sleep before re-checking (ms): a lost wake-up can only delay. */
export const WAIT_SLICE_MS = 50;
/** Spin iterations before sleeping. */
export const MUTEX_SPIN = 100;

export const MUTEX_WORDS = 2;
const UNLOCKED = 0;
const LOCKED = 1;
const CONTENDED = 2;
/** The holder word's value for this thread (an imported binding is reloaded at every use). */
const SELF = threadId + 1;

/** Initialise a mutex at `i` (the buffer starts zeroed, so this is only needed for reuse). */
export function mutexInit(w: Int32Array, i: number): void {
  Atomics.store(w, i, UNLOCKED);
  Atomics.store(w, i + 1, 0);
}

/** Try once; true if taken. */
export function mutexTrylock(w: Int32Array, i: number): boolean {
  if (Atomics.compareExchange(w, i, UNLOCKED, LOCKED) === UNLOCKED) {
    Atomics.store(w, i + 1, SELF);
    return true;
  }
  return false;
}

/**
 * Take the mutex; returns true if the caller had to wait (for contention statistics).
 * `spin` lets a baseline tune its spin count; the default suits a lock held for microseconds.
 */
export function mutexLock(w: Int32Array, i: number, spin = MUTEX_SPIN): boolean {
  let c = Atomics.compareExchange(w, i, UNLOCKED, LOCKED);
  if (c === UNLOCKED) {
    Atomics.store(w, i + 1, SELF);
    return false;
  }
  for (let n = 0; n < spin; n++) {
    if (Atomics.load(w, i) === UNLOCKED) {
      c = Atomics.compareExchange(w, i, UNLOCKED, LOCKED);
      if (c === UNLOCKED) {
        Atomics.store(w, i + 1, SELF);
        return true;
      }
    }
  }
  // Mark contended so the unlocker knows to wake us, then sleep while it stays contended.
  if (c !== CONTENDED) c = Atomics.exchange(w, i, CONTENDED);
  while (c !== UNLOCKED) {
    Atomics.wait(w, i, CONTENDED, WAIT_SLICE_MS);
    c = Atomics.exchange(w, i, CONTENDED);
  }
  Atomics.store(w, i + 1, SELF);
  return true;
}

export function mutexUnlock(w: Int32Array, i: number): void {
  Atomics.store(w, i + 1, 0);
  if (Atomics.exchange(w, i, UNLOCKED) === CONTENDED) Atomics.notify(w, i, 1);
}

export function mutexIsLocked(w: Int32Array, i: number): boolean {
  return Atomics.load(w, i) !== UNLOCKED;
}

/** Thread id (+1) of the holder, 0 if none; for dumps. */
export function mutexOwner(w: Int32Array, i: number): number {
  return Atomics.load(w, i + 1);
}
