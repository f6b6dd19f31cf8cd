/**
 * The throughput benchmark's control block (one SharedArrayBuffer, Int32 words): the window
 * header on line 0, the global-lock baseline's mutex on line 1, and two cache lines per device
 * for its counters (one writer each, published with Atomics.store in batches; the main thread reads
 * them at window edges). Every counter wraps at 2^31: readers take differences with `| 0`.
 */
import { LINE_WORDS } from '../../src/shm/layout.js';

/** What the devices do now (MODE word). */
export const MODE_IDLE = 0;
export const MODE_SEQLOCK = 1;
export const MODE_GLOBAL = 2;
export const MODE_MESSAGE = 3;
export const MODE_STOP = 4;
export const MODE_NAMES = ['idle', 'seqlock', 'global-lock', 'message-passing', 'stop'] as const;

// ---- header (line 0) ----
export const T_MODE = 0;
/** window number: a device reseeds its workload PRNG when it changes */
export const T_EPOCH = 1;
/** the window's workload seed (same for every variant of one repetition) */
export const T_SEED = 2;
/** the global lock's spin count for this window */
export const T_SPIN = 3;
/** which world the window runs in (index into ThroughputTask.worlds) */
export const T_WORLD = 4;
/** 1: after each successful fault the device reads or writes the chunk through its mirror; 0: mirror only */
export const T_ACCESS = 5;
/** the global-lock baseline's mutex (MUTEX_WORDS), on its own line */
export const T_GLOBAL = LINE_WORDS;

// ---- per device (two lines each) ----
export const TD_OPS = 0;
/** successful 64-page range faults */
export const TD_CHUNKS = 1;
/** pages installed by them */
export const TD_PAGES = 2;
/** pages the device read or wrote through its mirror */
export const TD_ACCESSES = 3;
/** range faults or accesses that failed (any error code) */
export const TD_ERRORS = 4;
/** faults the read/write path made itself (an entry was invalidated between fault and access) */
export const TD_REFAULTS = 5;
/** the epoch this device last saw while idle (the main thread waits for all to reach idle) */
export const TD_IDLE_EPOCH = 6;
/** 1 once attached and looping */
export const TD_READY = 7;
export const TD_CRASHED = 8;
/** sampled microseconds spent in the fault (global lock: including waiting for the mutex), wraps (diff with | 0) */
export const TD_FAULT_US = 9;
/** microseconds spent in the access through the mirror (read or write, refaults included) */
export const TD_ACCESS_US = 10;
/** microseconds spent waiting for the global mutex (global-lock variant only) */
export const TD_LOCK_US = 11;
/** operations whose times were sampled (the *_US words sum over those only) */
export const TD_SAMPLES = 12;
export const TD_WORDS = 2 * LINE_WORDS;

export function tdBase(device: number): number {
  return 2 * LINE_WORDS + device * TD_WORDS;
}

export function controlWords(devices: number): number {
  return tdBase(devices);
}

/** Pages per chunk (the test driver's ARRAY_SIZE(pfns)): every fault is one aligned chunk. */
export const CHUNK_PAGES = 64;

/** One device task's payload (the port is transferred for the message-passing baseline). */
export interface ThroughputTask {
  /** the same world built twice: [0] device accesses under the update lock, [1] the seqlock's world */
  worlds: import('../../src/sim/world.js').WorldDescriptor[];
  control: SharedArrayBuffer;
  index: number;
  /** first page and number of chunks of the benchmark region */
  regionStart: number;
  chunks: number;
  writeFraction: number;
  port: import('node:worker_threads').MessagePort;
}

export interface ThroughputTaskResult {
  index: number;
  error: string | null;
}
