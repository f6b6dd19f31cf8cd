/**
 * A spinlock over one Int32 word, for sections of a few hundred nanoseconds: the kernel's
 * page-table lock and the notifier's internal lock. States: 0 free, 1 held, 2 held with a
 * sleeper. It spins first, then sleeps (a timed Atomics.wait), because on 2 cores a preempted
 * holder would otherwise make the spinner burn its whole time slice; the unlocker pays for
 * Atomics.notify only when someone marked the word as slept on. The holder's thread id is kept in
 * the next word, for the watchdog's dump.
 */
import { threadId } from 'node:worker_threads';

export const SPINLOCK_WORDS = 2;
const SPIN = 1000;
const FREE = 0;
const HELD = 1;
const SLEPT_ON = 2;
/** The holder word's value for this thread (an imported binding is reloaded at every use). */
const SELF = threadId + 1;

export function spinTrylock(w: Int32Array, i: number): boolean {
  if (Atomics.compareExchange(w, i, FREE, HELD) === FREE) {
    Atomics.store(w, i + 1, SELF);
    return true;
  }
  return false;
}

/** Returns true if the caller had to wait. */
export function spinLock(w: Int32Array, i: number): boolean {
  if (Atomics.compareExchange(w, i, FREE, HELD) === FREE) {
    Atomics.store(w, i + 1, SELF);
    return false;
  }
  for (let n = 0; n < SPIN; n++) {
    if (Atomics.load(w, i) === FREE && Atomics.compareExchange(w, i, FREE, HELD) === FREE) {
      Atomics.store(w, i + 1, SELF);
      return true;
    }
  }
  // The holder may be descheduled: mark the lock slept-on and sleep until the unlocker wakes us.
  // Having slept, we take it as SLEPT_ON, since other sleepers may remain.
  let c = Atomics.exchange(w, i, SLEPT_ON);
  while (c !== FREE) {
    Atomics.wait(w, i, SLEPT_ON, 1);
    c = Atomics.exchange(w, i, SLEPT_ON);
  }
  Atomics.store(w, i + 1, SELF);
  return true;
}

export function spinUnlock(w: Int32Array, i: number): void {
  Atomics.store(w, i + 1, 0);
  if (Atomics.exchange(w, i, FREE) === SLEPT_ON) Atomics.notify(w, i, 1);
}

export function spinIsLocked(w: Int32Array, i: number): boolean {
  return Atomics.load(w, i) !== FREE;
}

export function spinOwner(w: Int32Array, i: number): number {
  return Atomics.load(w, i + 1);
}
