/**
 * A reader/writer semaphore with writer preference, the model of the kernel's mmap lock
 * (`mmap_read_lock`, `mmap_write_lock`, `mmap_write_downgrade`): once a writer waits, new readers
 * wait too, as in the kernel, so a device that keeps taking the read lock cannot starve munmap.
 *
 * Three words. STATE packs, like the kernel's `rw_semaphore.count`, the reader count (bits 0..23),
 * WRITER (a writer holds it) and WAITING (a writer waits: new readers must not enter), so the
 * read fast path is one atomic add and the release one atomic sub (kernel/locking/rwsem.c: a
 * reader adds its bias and looks at the flags in the value it got back). A reader that finds a
 * flag takes its bias back and waits. WAITW counts waiting writers; GEN is an event count that
 * every release a waiter may need bumps and notifies: a waiter reads GEN before testing its
 * condition and sleeps only while GEN is unchanged, so no wake-up is lost.
 */
import { WAIT_SLICE_MS } from './mutex.js';

export const RWSEM_WORDS = 3;
const STATE = 0;
const WAITW = 1;
const GEN = 2;
const SPIN = 64;
const COUNT = 0x00ffffff;
const WRITER = 1 << 24;
const WAITING = 1 << 25;
/** a reader may not enter while either is set */
const BLOCK_READ = WRITER | WAITING;

function wake(w: Int32Array, b: number): void {
  Atomics.add(w, b + GEN, 1);
  Atomics.notify(w, b + GEN);
}

/** Take a reader's bias back (it found WRITER or WAITING); wake a writer it may have held off. */
function undoRead(w: Int32Array, b: number): void {
  const s = Atomics.sub(w, b + STATE, 1) - 1;
  if ((s & COUNT) === 0 && (s & WAITING) !== 0) wake(w, b);
}

export function downReadTrylock(w: Int32Array, b: number): boolean {
  const s = Atomics.load(w, b + STATE);
  return (s & BLOCK_READ) === 0 && Atomics.compareExchange(w, b + STATE, s, s + 1) === s;
}

/** Take for read; returns true if the caller had to wait. */
export function downRead(w: Int32Array, b: number): boolean {
  // Fast path (rwsem_read_trylock): one add, then the flags of the value it returned.
  if ((Atomics.add(w, b + STATE, 1) & BLOCK_READ) === 0) return false;
  undoRead(w, b);
  for (let n = 0; ; n++) {
    const g = Atomics.load(w, b + GEN);
    const s = Atomics.load(w, b + STATE);
    if ((s & BLOCK_READ) === 0) {
      if (Atomics.compareExchange(w, b + STATE, s, s + 1) === s) return true;
      continue;
    }
    if (n >= SPIN) Atomics.wait(w, b + GEN, g, WAIT_SLICE_MS);
  }
}

export function upRead(w: Int32Array, b: number): void {
  // The last reader out wakes only if a writer waits: readers wait only while a writer holds or
  // waits, and the holder's release wakes them. The WAITING flag is in the word the sub returns,
  // so the test sees any writer that flagged itself before our release.
  const s = Atomics.sub(w, b + STATE, 1) - 1;
  if ((s & COUNT) === 0 && (s & WAITING) !== 0) wake(w, b);
}

export function downWriteTrylock(w: Int32Array, b: number): boolean {
  const s = Atomics.load(w, b + STATE);
  return (s & (COUNT | WRITER)) === 0 && Atomics.compareExchange(w, b + STATE, s, s | WRITER) === s;
}

/** Take for write; returns true if the caller had to wait. */
export function downWrite(w: Int32Array, b: number): boolean {
  if (Atomics.compareExchange(w, b + STATE, 0, WRITER) === 0) return false;
  Atomics.add(w, b + WAITW, 1);
  for (let n = 0; ; n++) {
    const g = Atomics.load(w, b + GEN);
    const s = Atomics.load(w, b + STATE);
    if ((s & (COUNT | WRITER)) === 0) {
      // Free: take it, leaving WAITING set while other writers wait (one that counted itself
      // after this load sets the flag again in its own loop).
      const others = Atomics.load(w, b + WAITW) > 1;
      if (Atomics.compareExchange(w, b + STATE, s, WRITER | (others ? WAITING : 0)) === s) {
        Atomics.sub(w, b + WAITW, 1);
        return true;
      }
      continue;
    }
    // Announce: from now on readers stay out (writer preference).
    if ((s & WAITING) === 0) {
      Atomics.or(w, b + STATE, WAITING);
      continue;
    }
    if (n >= SPIN) Atomics.wait(w, b + GEN, g, WAIT_SLICE_MS);
  }
}

export function upWrite(w: Int32Array, b: number): void {
  // Clear WRITER only: WAITING and any reader's transient bias stay.
  Atomics.and(w, b + STATE, ~WRITER);
  wake(w, b);
}

export function downgradeWrite(w: Int32Array, b: number): void {
  // mmap_write_downgrade: the writer becomes a reader without a window (WAITING stays).
  Atomics.add(w, b + STATE, 1 - WRITER);
  wake(w, b);
}

/** -1 while a writer holds it, else the number of readers. */
export function rwsemState(w: Int32Array, b: number): number {
  const s = Atomics.load(w, b + STATE);
  return (s & WRITER) !== 0 ? -1 : s & COUNT;
}

export function rwsemWaitingWriters(w: Int32Array, b: number): number {
  return Atomics.load(w, b + WAITW);
}
