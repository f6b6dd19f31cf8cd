/**
 * A spinlock over one Int32 word (0 free, 1 held), for sections of a few hundred nanoseconds:
 * the kernel's page-table lock and the notifier's internal lock. It spins, then sleeps for a
 * millisecond at most (a timed Atomics.wait), because on 2 cores a preempted holder would
 * otherwise make the spinner burn its whole time slice. The holder's thread id is kept beside it.
 */
import { threadId } from 'node:worker_threads';

export const SPINLOCK_WORDS = 2;
const SPIN = 1000;

export function spinTrylock(w: Int32Array, i: number): boolean {
  if (Atomics.compareExchange(w, i, 0, 1) === 0) {
    Atomics.store(w, i + 1, threadId + 1);
    return true;
  }
  return false;
}

/** Returns true if the caller had to wait. */
export function spinLock(w: Int32Array, i: number): boolean {
  if (Atomics.compareExchange(w, i, 0, 1) === 0) {
    Atomics.store(w, i + 1, threadId + 1);
    return false;
  }
  for (;;) {
    for (let n = 0; n < SPIN; n++) {
      if (Atomics.load(w, i) === 0 && Atomics.compareExchange(w, i, 0, 1) === 0) {
        Atomics.store(w, i + 1, threadId + 1);
        return true;
      }
    }
    // The holder may be descheduled: sleep briefly (woken early by spinUnlock's notify).
    Atomics.wait(w, i, 1, 1);
  }
}

export function spinUnlock(w: Int32Array, i: number): void {
  Atomics.store(w, i + 1, 0);
  Atomics.store(w, i, 0);
  Atomics.notify(w, i, 1);
}

export function spinIsLocked(w: Int32Array, i: number): boolean {
  return Atomics.load(w, i) !== 0;
}

export function spinOwner(w: Int32Array, i: number): number {
  return Atomics.load(w, i + 1);
}
