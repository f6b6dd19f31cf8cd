/**
 * The mmap lock's reader/writer semaphore with per-thread reader counts, after the kernel's
 * percpu_rw_semaphore (kernel/locking/percpu-rwsem.c): a reader bumps the counter on its own cache
 * line and checks the writer word; a writer sets the writer word, then waits until the readers
 * already inside have left. Same exclusion and writer preference as the kernel's rwsem
 * (`mmap_read_lock`, `mmap_write_lock`, `mmap_write_downgrade`), but device threads taking the read
 * lock side by side never write a shared cache line: one shared count (src/shm/rwsem.ts) costs a
 * line transfer per acquire and per release, ~140 ns per 64-page fault with two devices here,
 * which hmmsim does not set out to reproduce.
 *
 * Layout (PERCPU_RWSEM_WORDS words from `b`): line 0 holds WRITER (bit 0: a writer holds it or is
 * waiting for readers to leave; bits 1..: 2 per writer waiting for another writer, so any nonzero
 * value keeps new readers out) and GEN, an event count every release a waiter may need bumps and
 * notifies (a waiter reads GEN before testing its condition and sleeps only while it is unchanged:
 * no wake-up is lost). Lines 1..NSLOTS: reader counts, slot `threadId % NSLOTS` (threads sharing a
 * slot share a counter; only the sum matters, so a release from another thread is fine too).
 *
 * Every reader/writer handshake is a Dekker pair of seq-cst Atomics: the reader adds to its slot
 * then loads WRITER; the writer sets WRITER then loads the slots. At least one sees the other.
 */
import { threadId } from 'node:worker_threads';
import { LINE_WORDS } from './layout.js';
import { WAIT_SLICE_MS } from './mutex.js';

/** Reader slots (cache lines after the header line). */
export const PERCPU_RWSEM_SLOTS = 16;
export const PERCPU_RWSEM_WORDS = LINE_WORDS * (1 + PERCPU_RWSEM_SLOTS);
const WRITER = 0;
const GEN = 1;
const HELD = 1;
const WAITER = 2;
const SPIN = 64;
/** This thread's reader slot (a word offset from the semaphore's base). */
const MY_SLOT = LINE_WORDS * (1 + (threadId % PERCPU_RWSEM_SLOTS));

function wake(w: Int32Array, b: number): void {
  Atomics.add(w, b + GEN, 1);
  Atomics.notify(w, b + GEN);
}

/** Readers inside (the sum of the slots). */
function readers(w: Int32Array, b: number): number {
  let n = 0;
  for (let i = 1; i <= PERCPU_RWSEM_SLOTS; i++) n += Atomics.load(w, b + i * LINE_WORDS);
  return n;
}

/** A reader that met a writer takes its count back and wakes the writer it may hold up. */
function undoRead(w: Int32Array, b: number): void {
  Atomics.sub(w, b + MY_SLOT, 1);
  wake(w, b);
}

export function percpuDownReadTrylock(w: Int32Array, b: number): boolean {
  Atomics.add(w, b + MY_SLOT, 1);
  if (Atomics.load(w, b + WRITER) === 0) return true;
  undoRead(w, b);
  return false;
}

/** Take for read; returns true if the caller had to wait. */
export function percpuDownRead(w: Int32Array, b: number): boolean {
  // Fast path (percpu_down_read): one add on this thread's line, one load of the writer word.
  Atomics.add(w, b + MY_SLOT, 1);
  if (Atomics.load(w, b + WRITER) === 0) return false;
  undoRead(w, b);
  for (let n = 0; ; n++) {
    const g = Atomics.load(w, b + GEN);
    if (Atomics.load(w, b + WRITER) === 0) {
      Atomics.add(w, b + MY_SLOT, 1);
      if (Atomics.load(w, b + WRITER) === 0) return true;
      undoRead(w, b);
      continue;
    }
    if (n >= SPIN) Atomics.wait(w, b + GEN, g, WAIT_SLICE_MS);
  }
}

export function percpuUpRead(w: Int32Array, b: number): void {
  Atomics.sub(w, b + MY_SLOT, 1);
  // A writer inside is waiting for the readers to leave: we may be the last.
  if (Atomics.load(w, b + WRITER) !== 0) wake(w, b);
}

/** Take for write; returns true if the caller had to wait (for a writer or for readers). */
export function percpuDownWrite(w: Int32Array, b: number): boolean {
  let waited = false;
  if (Atomics.compareExchange(w, b + WRITER, 0, HELD) !== 0) {
    // Another writer: wait counted in WRITER (which keeps new readers out: writer preference).
    waited = true;
    Atomics.add(w, b + WRITER, WAITER);
    for (let n = 0; ; n++) {
      const g = Atomics.load(w, b + GEN);
      const s = Atomics.load(w, b + WRITER);
      if ((s & HELD) === 0) {
        if (Atomics.compareExchange(w, b + WRITER, s, (s - WAITER) | HELD) === s) break;
        continue;
      }
      if (n >= SPIN) Atomics.wait(w, b + GEN, g, WAIT_SLICE_MS);
    }
  }
  // New readers now back off; wait for those inside (percpu_down_write's readers_active_check).
  for (let n = 0; ; n++) {
    const g = Atomics.load(w, b + GEN);
    if (readers(w, b) === 0) return waited;
    waited = true;
    if (n >= SPIN) Atomics.wait(w, b + GEN, g, WAIT_SLICE_MS);
  }
}

export function percpuDownWriteTrylock(w: Int32Array, b: number): boolean {
  if (Atomics.compareExchange(w, b + WRITER, 0, HELD) !== 0) return false;
  if (readers(w, b) === 0) return true;
  Atomics.and(w, b + WRITER, ~HELD);
  wake(w, b);
  return false;
}

export function percpuUpWrite(w: Int32Array, b: number): void {
  Atomics.and(w, b + WRITER, ~HELD);
  wake(w, b);
}

/** mmap_write_downgrade: the writer becomes a reader with no window in between. */
export function percpuDowngradeWrite(w: Int32Array, b: number): void {
  Atomics.add(w, b + MY_SLOT, 1);
  Atomics.and(w, b + WRITER, ~HELD);
  wake(w, b);
}

/** -1 while a writer holds it (readers drained), else the number of readers inside. */
export function percpuRwsemState(w: Int32Array, b: number): number {
  const r = readers(w, b);
  return (Atomics.load(w, b + WRITER) & HELD) !== 0 && r === 0 ? -1 : r;
}

/** Writers waiting for another writer (plus one draining readers, if any reader is inside). */
export function percpuRwsemWaitingWriters(w: Int32Array, b: number): number {
  const s = Atomics.load(w, b + WRITER);
  return (s >>> 1) + ((s & HELD) !== 0 && readers(w, b) !== 0 ? 1 : 0);
}

/**
 * lockdep-style check for the hot path: is the lock held for read by this thread, or for write?
 * Plain reads of this thread's slot and the writer word. It can say "held" wrongly (never "not
 * held" to a holder): when another thread shares the slot, after a release made by another
 * thread, or while a writer waits for readers to leave; the check is an assertion, never a
 * synchronisation.
 */
export function percpuRwsemHeldHere(w: Int32Array, b: number): boolean {
  return w[b + MY_SLOT]! > 0 || (w[b + WRITER]! & HELD) !== 0;
}
