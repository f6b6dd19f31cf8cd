/**
 * The run's control block and per-thread statistics words: the one place that fixes their layout
 * (architecture.md "one owner per layout"). One SharedArrayBuffer, viewed as an Int32Array:
 *
 * ```
 *  line 0         run-wide words: STOP, PARK (odd while a quiescent audit wants devices parked),
 *                 PARKED (how many devices are parked), HUNG, MAIN_BEAT, MAIN_OP
 *  line 1..       one block of DEV_WORDS (whole lines) per device: its state, heartbeat and hot
 *                 counters, written only by that device (no false sharing between devices)
 * ```
 *
 * Devices write their own counters with Atomics (the main thread reads them for progress, for
 * the watchdog and for partial results). Times are microseconds since the run's epoch
 * (`performance.timeOrigin` of the main thread, passed in the payload), so one Int32 holds 35 min.
 */
import { POINT_COUNT } from '../checker/points.js';
import { LINE_WORDS, lineAlign, sharedInt32 } from '../shm/layout.js';

// ---- line 0 ----
export const CTL_STOP = 0;
export const CTL_PARK = 1;
export const CTL_PARKED = 2;
export const CTL_HUNG = 3;
/** the main thread's heartbeat: its clock (us) at its last progress */
export const CTL_MAIN_BEAT = 4;
/** what the main thread is doing (a MAIN_* code) */
export const CTL_MAIN_OP = 5;
/** the mutation kind index the main thread is in, -1 if none */
export const CTL_MAIN_KIND = 6;
/** the mutator's operation count */
export const CTL_MAIN_OPS = 7;
/** set when the main thread no longer needs the backstop watchdog (workers/watchdog.mjs) */
export const CTL_WATCHDOG_OFF = 8;

export const MAIN_IDLE = 0;
export const MAIN_MUTATING = 1;
export const MAIN_AUDIT = 2;
export const MAIN_PACING = 3;

// ---- per-device block ----
export const D_STATE = 0; // DEV_*
export const D_BEAT = 1; // clock (us) at the last completed operation
export const D_OP = 2; // the operation in progress (OP_*), 0 if none
export const D_ADDR = 3; // its first page
export const D_OPS = 4; // operations completed
export const D_OK = 5; // operations that returned 0
export const D_READS = 6;
export const D_WRITES = 7;
export const D_SNAPSHOTS = 8;
export const D_MIGRATES = 9;
export const D_EFAULT = 10;
export const D_EPERM = 11;
export const D_EBUSY = 12; // an operation gave up with -EBUSY (timeout)
export const D_EINVAL = 13;
export const D_ENOENT = 14;
export const D_OTHER_ERR = 15;
export const D_RF_CALLS = 16; // range-fault routine calls (direct)
export const D_RF_OK = 17;
export const D_ACCESSES = 18; // pages accessed through the mirror
export const D_PAGES_SNAPSHOTTED = 19;
export const D_ATTEMPTS = 20; // returns to mmu_interval_read_begin seen at the after-read-begin point
export const D_COLLISIONS = 21; // attempts that did not reach before-program (a retry)
// driver statistics (FileStats), copied in periodically
export const D_HMM_CALLS = 22;
export const D_HMM_BUSY = 23;
export const D_READ_RETRY = 24;
export const D_BEGIN_SLEEPS = 25;
export const D_BEGIN_SLEEP_US = 26;
export const D_TIMEOUTS = 27;
export const D_PAGES_FAULTED = 28;
export const D_FAULTS = 29; // the ioctl counter `faults`, summed
export const D_INVALIDATIONS = 30;
export const D_INV_SKIPPED = 31;
export const D_INV_FAILED = 32;
export const D_ENTRIES_ERASED = 33;
export const D_MMAP_WAITS = 34;
export const D_ERRORS = 35; // worker-side exceptions
export const D_THREAD = 36; // the worker's threadId (lock-owner words hold threadId + 1)
export const D_EFAULT_ZERO = 37; // operations that failed with -EFAULT on the zero page (v5.4 walk)
// retries by the source of the seq bump (FileStats retriesBy*; v5.10 reference device only)
export const D_RETRY_PROCESS = 38;
export const D_RETRY_OTHER_DEVICE = 39;
export const D_RETRY_OWN_FAULT = 40;
/** CPU fallbacks after -EFAULT (scenario workload.efaultFallback 'cpu'): the range read by the CPU */
export const D_EFAULT_FALLBACKS = 41;
/** collisions observed with each named point inside the colliding attempt's window */
export const D_POINT_COLLISIONS = 48;
export const DEV_WORDS = lineAlign(D_POINT_COLLISIONS + POINT_COUNT);

export const DEV_STARTING = 0;
export const DEV_RUNNING = 1;
export const DEV_PARKED = 2;
export const DEV_DONE = 3;
export const DEV_CRASHED = 4;
export const DEV_STATE_NAMES = ['starting', 'running', 'parked', 'done', 'crashed'] as const;

export const OP_NONE = 0;
export const OP_RANGE_FAULT = 1;
export const OP_READ = 2;
export const OP_WRITE = 3;
export const OP_SNAPSHOT = 4;
export const OP_MIGRATE = 5;
export const OP_PARK = 6;
/** TEST ONLY (scenario.testFaults.hangAfterOps): holding its update lock forever */
export const OP_HANG = 7;
/** reading a range from the CPU after -EFAULT (workload.efaultFallback 'cpu') */
export const OP_CPU_FALLBACK = 8;
export const OP_NAMES = [
  'none',
  'range-fault',
  'read',
  'write',
  'snapshot',
  'migrate',
  'park',
  'test-hang (holding its update lock)',
  'cpu-fallback (CPU read after -EFAULT)',
] as const;

export function devBase(dev: number): number {
  return LINE_WORDS + dev * DEV_WORDS;
}

export function controlWords(devices: number): number {
  return LINE_WORDS + devices * DEV_WORDS;
}

export function createControl(devices: number): Int32Array {
  const c = sharedInt32(controlWords(devices));
  Atomics.store(c, CTL_MAIN_KIND, -1);
  return c;
}

/** Microseconds since `epoch` (a performance.timeOrigin), on this thread's clock. */
export function clockUs(epoch: number): number {
  return Math.round((performance.timeOrigin + performance.now() - epoch) * 1000) | 0;
}

export function stopRequested(c: Int32Array): boolean {
  return Atomics.load(c, CTL_STOP) !== 0;
}

export function requestStop(c: Int32Array): void {
  Atomics.store(c, CTL_STOP, 1);
  // Wake devices parked for an audit or pacing themselves on the control word.
  Atomics.add(c, CTL_PARK, 0);
  Atomics.notify(c, CTL_PARK);
  Atomics.notify(c, CTL_STOP);
}
