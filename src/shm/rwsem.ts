/**
 * A reader/writer semaphore with writer preference, the model of the kernel's mmap lock
 * (`mmap_read_lock`, `mmap_write_lock`, `mmap_write_downgrade`): once a writer waits, new readers
 * wait too, as in the kernel, so a device that keeps taking the read lock cannot starve munmap.
 *
 * Three words: STATE (-1 writer holds, n >= 0 readers), WAITW (writers waiting), and an event
 * count GEN that every release bumps and notifies; a waiter reads GEN before testing its condition
 * and sleeps only while GEN is unchanged, so no wake-up is lost.
 */
import { WAIT_SLICE_MS } from './mutex.js';

export const RWSEM_WORDS = 3;
const STATE = 0;
const WAITW = 1;
const GEN = 2;
const SPIN = 64;

function wake(w: Int32Array, b: number): void {
  Atomics.add(w, b + GEN, 1);
  Atomics.notify(w, b + GEN);
}

export function downReadTrylock(w: Int32Array, b: number): boolean {
  if (Atomics.load(w, b + WAITW) !== 0) return false;
  const s = Atomics.load(w, b + STATE);
  return s >= 0 && Atomics.compareExchange(w, b + STATE, s, s + 1) === s;
}

/** Take for read; returns true if the caller had to wait. */
export function downRead(w: Int32Array, b: number): boolean {
  let waited = false;
  for (let n = 0; ; n++) {
    const g = Atomics.load(w, b + GEN);
    if (Atomics.load(w, b + WAITW) === 0) {
      const s = Atomics.load(w, b + STATE);
      if (s >= 0) {
        if (Atomics.compareExchange(w, b + STATE, s, s + 1) === s) return waited;
        continue;
      }
    }
    waited = true;
    if (n >= SPIN) Atomics.wait(w, b + GEN, g, WAIT_SLICE_MS);
  }
}

export function upRead(w: Int32Array, b: number): void {
  // The last reader out wakes only if a writer waits: a reader's release can unblock nobody
  // else (readers wait only while a writer holds or waits, and a holder's up/downgrade wakes
  // them). No wake-up is lost: a writer counts itself in WAITW before it reads GEN and retries
  // its compareExchange, so if our load of WAITW (after our sub, both seq-cst) sees 0, that
  // compareExchange comes after our sub and finds the lock free.
  if (Atomics.sub(w, b + STATE, 1) === 1 && Atomics.load(w, b + WAITW) !== 0) wake(w, b);
}

export function downWriteTrylock(w: Int32Array, b: number): boolean {
  return Atomics.compareExchange(w, b + STATE, 0, -1) === 0;
}

/** Take for write; returns true if the caller had to wait. */
export function downWrite(w: Int32Array, b: number): boolean {
  if (Atomics.compareExchange(w, b + STATE, 0, -1) === 0) return false;
  Atomics.add(w, b + WAITW, 1);
  for (let n = 0; ; n++) {
    const g = Atomics.load(w, b + GEN);
    if (Atomics.compareExchange(w, b + STATE, 0, -1) === 0) {
      Atomics.sub(w, b + WAITW, 1);
      return true;
    }
    if (n >= SPIN) Atomics.wait(w, b + GEN, g, WAIT_SLICE_MS);
  }
}

export function upWrite(w: Int32Array, b: number): void {
  Atomics.store(w, b + STATE, 0);
  wake(w, b);
}

/** `mmap_write_downgrade`: become a reader without letting a writer in between. */
export function downgradeWrite(w: Int32Array, b: number): void {
  Atomics.store(w, b + STATE, 1);
  wake(w, b);
}

/** Readers holding (>0), -1 for a writer, 0 free. */
export function rwsemState(w: Int32Array, b: number): number {
  return Atomics.load(w, b + STATE);
}

export function rwsemWaitingWriters(w: Int32Array, b: number): number {
  return Atomics.load(w, b + WAITW);
}
