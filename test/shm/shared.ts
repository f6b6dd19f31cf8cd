/** Types, word slots and the seeded PRNG shared by the shm tests and their worker. */

/** Word slots. Control words, and the hot data words of each test, sit on separate cache lines. */
export const S = {
  // in `ctl`
  READY: 0,
  GO: 16,
  DONE: 32,
  // in `data`
  COUNTER: 0,
  INSIDE: 16,
  SEQ: 32,
  READERS: 48,
  WRITERS: 64,
  /** Bumped when threads are seen to meet (a wait, an overlap, an accepted concurrent read). */
  EVIDENCE: 80,
  PAYLOAD: 96,
} as const;
export const CTL_WORDS = 48;
export const DATA_WORDS = 96 + 64;

export type LockKind = 'mutex' | 'spin' | 'mutex-try' | 'spin-try' | 'rwsem' | 'percpu-rwsem' | 'none';
export type Role = 'counter' | 'seq-writer' | 'seq-reader' | 'rw-writer' | 'rw-reader' | 'actor';

export type ActorOp =
  | 'mutexLock'
  | 'mutexTrylock'
  | 'mutexUnlock'
  | 'spinLock'
  | 'spinTrylock'
  | 'spinUnlock'
  | 'downRead'
  | 'downReadTrylock'
  | 'upRead'
  | 'downWrite'
  | 'downWriteTrylock'
  | 'upWrite'
  | 'downgradeWrite'
  // the percpu rwsem (src/shm/percpu-rwsem.ts)
  | 'percpuDownRead'
  | 'percpuDownReadTrylock'
  | 'percpuUpRead'
  | 'percpuDownWrite'
  | 'percpuDownWriteTrylock'
  | 'percpuUpWrite'
  | 'percpuDowngradeWrite'
  | 'percpuHeldHere';

export interface WorkerInput {
  role: Role;
  lock: LockKind;
  /** Holds the lock words at offset 0. */
  lockBuf: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  data: SharedArrayBuffer;
  seed: number;
  iterations: number;
  /** Upper bound of the random busy-wait (loop iterations) inside and between sections. */
  maxDelay: number;
  /** Payload words the seqlock writer keeps equal. */
  words: number;
  /**
   * Loops run `iterations` operations, then go on while the threads have not yet met, for at most
   * this many ms after the gate opens.
   */
  maxMs: number;
  /**
   * rw loops on the percpu rwsem only: besides the blocking calls, also take the lock with trylocks
   * (falling back to the blocking call) and have writers downgrade to read now and then.
   */
  mixed?: boolean;
}

export interface LoopResult {
  /** Operations done (the seqlock writer's iterations, a reader's reads). */
  ops: number;
  /** Acquisitions that had to wait. */
  contended: number;
  /** Broken invariants seen by this worker; every test requires 0. */
  violations: number;
  /** Seqlock reads that passed the retry check. */
  accepted: number;
  /** Seqlock reads that the retry check rejected. */
  retried: number;
  /** Rejected reads that were in fact torn (shows the test can see tearing at all). */
  tornSeen: number;
  /** Most rwsem readers this worker saw inside at once (itself included). */
  maxConcurrent: number;
  /** Time from the gate opening to the end of the loop, for diagnostics. */
  elapsedMs?: number;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same delays. */
export function mulberry32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
