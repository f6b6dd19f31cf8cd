/**
 * One device's long-running task: attach the world, then loop over the workload until the stop
 * flag is set: the reference device's range-fault routine over a range (for read or write), then
 * accesses through the mirror (reads, and writes that bump each page's write counter), or a
 * snapshot, or a migration to device memory. Counters go to the device's own lines of the control
 * block (Atomics, one writer); histograms stay thread-local and are encoded into the result.
 *
 * Collision accounting: the point hook sees every named point the device passes. An attempt
 * starts at `after-read-begin`; it succeeded if it reaches `before-program`; a new
 * `after-read-begin` (or an -EBUSY return) while an attempt is open means the attempt collided
 * (hmm_range_fault's -EBUSY or read_retry), and every point passed inside that attempt's window
 * is credited with the collision. Snapshots have no `before-program`: their collisions are the
 * operation's `retries`, credited to the points passed during the operation.
 */
import { threadId } from 'node:worker_threads';
import { deviceWriteIncrements, setOraclesEnabled, staleAccessCount } from '../checker/oracles.js';
import {
  configureInjection,
  injection,
  POINT_AFTER_READ_BEGIN,
  POINT_BEFORE_PROGRAM,
  POINT_COUNT,
} from '../checker/points.js';
import { dmirrorSetFaultPath } from '../driver/dmirror.js';
import { setPointHook } from '../driver/sched.js';
import type { MirrorDriver, MirrorFile, MirrorOpResult } from '../driver/types.js';
import { hmmStatsTotal } from '../hmm/hmm.js';
import { cpuRead } from '../mm/cpu.js';
import { PAGE_SIZE } from '../mm/layout.js';
import { EBUSY, EFAULT, EINVAL, ENOENT, EPERM } from '../mm/mmu-notifier.js';
import { invalidationStats } from '../mm/notify.js';
import type { MmuNotifierStats } from '../notifier/index.js';
import { mmuNotifierStats } from '../notifier/index.js';
import {
  CTL_PARK,
  CTL_PARKED,
  CTL_STOP,
  clockUs,
  D_ACCESSES,
  D_ADDR,
  D_ATTEMPTS,
  D_BEAT,
  D_BEGIN_SLEEP_US,
  D_BEGIN_SLEEPS,
  D_COLLISIONS,
  D_EBUSY,
  D_EFAULT,
  D_EFAULT_FALLBACKS,
  D_EFAULT_ZERO,
  D_EINVAL,
  D_ENOENT,
  D_ENTRIES_ERASED,
  D_EPERM,
  D_ERRORS,
  D_FAULTS,
  D_HMM_BUSY,
  D_HMM_CALLS,
  D_INV_FAILED,
  D_INV_SKIPPED,
  D_INVALIDATIONS,
  D_MIGRATES,
  D_MMAP_WAITS,
  D_OK,
  D_OP,
  D_OPS,
  D_OTHER_ERR,
  D_PAGES_FAULTED,
  D_PAGES_SNAPSHOTTED,
  D_POINT_COLLISIONS,
  D_READ_RETRY,
  D_READS,
  D_RETRY_OTHER_DEVICE,
  D_RETRY_OWN_FAULT,
  D_RETRY_PROCESS,
  D_RF_CALLS,
  D_RF_OK,
  D_SNAPSHOTS,
  D_STATE,
  D_THREAD,
  D_TIMEOUTS,
  D_WRITES,
  DEV_CRASHED,
  DEV_DONE,
  DEV_PARKED,
  DEV_RUNNING,
  DEV_WORDS,
  devBase,
  OP_CPU_FALLBACK,
  OP_HANG,
  OP_MIGRATE,
  OP_NONE,
  OP_RANGE_FAULT,
  OP_READ,
  OP_SNAPSHOT,
  OP_WRITE,
} from './control.js';
import {
  encodeHistogram,
  LATENCY_HIGHEST_US,
  newHistogram,
  RETRIES_HIGHEST,
  recordClamped,
} from './histograms.js';
import { installInstrumentation, instrumentPoint, instrumentStats } from './instrument.js';
import { configureSimJitter, simJitter } from './jitter.js';
import {
  WL_FAULT_READ,
  WL_FAULT_WRITE,
  WL_MIGRATE,
  WL_SNAPSHOT,
  Workload,
  type WorkloadParams,
} from './workload.js';
import { attachWorld, type WorldDescriptor } from './world.js';

export interface DeviceTask {
  world: WorldDescriptor;
  control: SharedArrayBuffer;
  /** index of this device in world.files */
  index: number;
  /** this thread's workload seed (derived from the run seed) and jitter seed */
  seed: number;
  jitterSeed: number;
  mutants: number;
  /** the scenario's `oracles` switch (absent: on) */
  oracles?: boolean;
  jitter: boolean;
  workload: WorkloadParams;
  /**
   * after a read/write/migrate operation fails with -EFAULT: 'cpu' reads the range from the CPU
   * (scenario workload.efaultFallback); absent or 'none': nothing
   */
  efaultFallback?: 'none' | 'cpu' | undefined;
  opsPerSecond: number;
  /** the main thread's performance.timeOrigin + its now() at the run's start */
  epoch: number;
  /** TEST ONLY (scenario.testFaults): fail on purpose after this many operations */
  testFaults?: { crashAfterOps?: number | undefined; hangAfterOps?: number | undefined } | undefined;
}

/** A file whose update lock the test faults can take (the built-in devices). */
function lockable(f: MirrorFile): f is MirrorFile & { lock(): void } {
  return typeof (f as MirrorFile & { lock?: unknown }).lock === 'function';
}

/** TEST ONLY: the failure scenario.testFaults asked for, after `ops` operations. */
function testFault(task: DeviceTask, ops: number, file: MirrorFile, c: Int32Array, b: number): void {
  const f = task.testFaults;
  if (f === undefined) return;
  if (f.crashAfterOps !== undefined && ops >= f.crashAfterOps) {
    throw new Error(`test fault: device ${task.index} crashes after ${ops} operations`);
  }
  if (f.hangAfterOps !== undefined && ops >= f.hangAfterOps) {
    // Take the update lock and never give it back, and never look at the stop flag again: a hung
    // driver. Only terminating the worker (or the process) ends this.
    if (lockable(file)) file.lock();
    Atomics.store(c, b + D_OP, OP_HANG);
    const never = new Int32Array(new SharedArrayBuffer(4));
    for (;;) Atomics.wait(never, 0, 0, 1000);
  }
}

/** Thread-local statistics of the core, as the task returns them. */
export interface ThreadCoreStats {
  notifier: MmuNotifierStats;
  hmm: { calls: number; walks: number; busyFromCheck: number; faults: number; migrationWaits: number };
  invalidationStarts: number[];
  invalidationFailed: number[];
  invalidationBytes: number[];
  invalidateOpUs: number[];
  invalidateLockWaitUs: number[];
  mmapReadWaits: number;
  mmapWriteWaits: number;
  /** write-counter increments this thread's device accesses made (oracle #2) */
  writeIncrements: number;
  staleAccesses: number;
  pointPasses: number[];
}

export interface DeviceResult {
  index: number;
  /** this device's words of the control block, as they were at the end */
  counters: number[];
  latencyUs: string;
  retriesPerCall: string;
  core: ThreadCoreStats;
  error: string | null;
}

export function threadCoreStats(): ThreadCoreStats {
  return {
    notifier: { ...mmuNotifierStats },
    hmm: { ...hmmStatsTotal },
    invalidationStarts: Array.from(invalidationStats.starts),
    invalidationFailed: Array.from(invalidationStats.failed),
    invalidationBytes: Array.from(invalidationStats.bytes),
    invalidateOpUs: Array.from(instrumentStats.opUs),
    invalidateLockWaitUs: Array.from(instrumentStats.lockWaitUs),
    mmapReadWaits: instrumentStats.mmapReadWaits,
    mmapWriteWaits: instrumentStats.mmapWriteWaits,
    writeIncrements: deviceWriteIncrements(),
    staleAccesses: staleAccessCount(),
    pointPasses: Array.from(injection.passes),
  };
}

/** Copy the driver's cumulative per-file statistics into the device's words. */
function publishFileStats(c: Int32Array, b: number, file: MirrorFile): void {
  const s = file.stats();
  Atomics.store(c, b + D_HMM_CALLS, s.hmmCalls);
  Atomics.store(c, b + D_HMM_BUSY, s.hmmBusy);
  Atomics.store(c, b + D_READ_RETRY, s.readRetryCollisions);
  Atomics.store(c, b + D_BEGIN_SLEEPS, s.readBeginSleeps);
  // v5.4 drivers report their wait_until_valid time; the v5.10 wait is read_begin's sleep
  Atomics.store(
    c,
    b + D_BEGIN_SLEEP_US,
    s.waitUs ?? Math.round(mmuNotifierStats.readBeginSleepMs * 1000) | 0,
  );
  Atomics.store(c, b + D_EFAULT_ZERO, s.zeroPageEfaults ?? 0);
  Atomics.store(c, b + D_RETRY_PROCESS, s.retriesByProcess ?? 0);
  Atomics.store(c, b + D_RETRY_OTHER_DEVICE, s.retriesByOtherDevice ?? 0);
  Atomics.store(c, b + D_RETRY_OWN_FAULT, s.retriesByOwnFault ?? 0);
  Atomics.store(c, b + D_TIMEOUTS, s.timeouts);
  Atomics.store(c, b + D_PAGES_FAULTED, s.pagesFaulted);
  Atomics.store(c, b + D_FAULTS, s.faults);
  Atomics.store(c, b + D_INVALIDATIONS, s.invalidations);
  Atomics.store(c, b + D_INV_SKIPPED, s.invalidationsSkipped);
  Atomics.store(c, b + D_INV_FAILED, s.invalidationsFailed);
  Atomics.store(c, b + D_ENTRIES_ERASED, s.entriesErased);
  Atomics.store(c, b + D_MMAP_WAITS, instrumentStats.mmapReadWaits);
}

/** Run one device until the stop flag is set, with the drivers loaded in this thread (drivers.ts). */
export function runDevice(task: DeviceTask, drivers: Map<string, MirrorDriver>): DeviceResult {
  const c = new Int32Array(task.control);
  const b = devBase(task.index);
  const latency = newHistogram(LATENCY_HIGHEST_US);
  const retries = newHistogram(RETRIES_HIGHEST);
  let error: string | null = null;
  // Every invalidation this thread issues comes from a device: one that is not in a dmirror fault
  // path (which names its file) counts as another device's for the dmirror files it hits.
  const prevFaultPath = dmirrorSetFaultPath(-1);
  try {
    configureInjection(task.mutants, task.jitter, task.jitterSeed);
    setOraclesEnabled(task.oracles !== false);
    installInstrumentation();
    const world = attachWorld(task.world, drivers);
    const file = world.files[task.index]!;
    const W = world.phys.W;
    const wlRegions =
      task.workload.regions === undefined
        ? world.regions
        : world.regions.filter((r) => task.workload.regions!.includes(r.index));
    const wl = new Workload(task.workload, wlRegions, task.seed);
    const maxPages = task.workload.rangePages.max;
    const buf = new Int32Array(maxPages * W);
    const bytes = new Uint8Array(maxPages);
    const pace = task.opsPerSecond > 0 ? 1000 / task.opsPerSecond : 0;
    const mm = world.mm;
    const fallbackToCpu = task.efaultFallback === 'cpu';
    /**
     * The program's CPU fallback after -EFAULT: read each page of the range once, as the mutator's
     * cpu-access does (cpuRead takes the mmap lock for read and the PTL; a fault on a device-private
     * page runs migrate_to_ram). Run as the process, not as this device's fault path, so its
     * invalidations count as the process's. A page whose access faults fatally is skipped. Reads
     * add no write-counter increments (the lost-update equation is unchanged).
     */
    const cpuFallback = (addr: number, npages: number): void => {
      Atomics.store(c, b + D_OP, OP_CPU_FALLBACK);
      const prev = dmirrorSetFaultPath(0);
      try {
        for (let p = 0; p < npages; p++) cpuRead(mm, addr + p * PAGE_SIZE);
      } finally {
        dmirrorSetFaultPath(prev);
      }
      Atomics.add(c, b + D_EFAULT_FALLBACKS, 1);
    };

    // ---- collision accounting (see the header) ----
    let attemptOpen = false;
    let windowMask = 0;
    let opMask = 0;
    let callCollisions = 0;
    const collided = (): void => {
      callCollisions++;
      Atomics.add(c, b + D_COLLISIONS, 1);
      for (let p = 0; p < POINT_COUNT; p++) {
        if ((windowMask & (1 << p)) !== 0) Atomics.add(c, b + D_POINT_COLLISIONS + p, 1);
      }
    };
    let precise = true;
    configureSimJitter(task.jitter, task.jitterSeed);
    setPointHook((p) => {
      instrumentPoint(p);
      simJitter(p);
      if (p >= POINT_COUNT) return;
      opMask |= 1 << p;
      if (p === POINT_AFTER_READ_BEGIN) {
        Atomics.add(c, b + D_ATTEMPTS, 1);
        if (attemptOpen && precise) collided();
        attemptOpen = true;
        windowMask = 1 << p;
      } else if (p === POINT_BEFORE_PROGRAM) {
        attemptOpen = false;
      } else {
        windowMask |= 1 << p;
      }
    });

    const countRet = (ret: number): void => {
      if (ret === 0) Atomics.add(c, b + D_OK, 1);
      else if (ret === -EFAULT) Atomics.add(c, b + D_EFAULT, 1);
      else if (ret === -EPERM) Atomics.add(c, b + D_EPERM, 1);
      else if (ret === -EBUSY) Atomics.add(c, b + D_EBUSY, 1);
      else if (ret === -EINVAL) Atomics.add(c, b + D_EINVAL, 1);
      else if (ret === -ENOENT) Atomics.add(c, b + D_ENOENT, 1);
      else Atomics.add(c, b + D_OTHER_ERR, 1);
    };

    Atomics.store(c, b + D_THREAD, threadId);
    Atomics.store(c, b + D_STATE, DEV_RUNNING);
    Atomics.store(c, b + D_BEAT, clockUs(task.epoch));
    let ops = 0;
    let fill = (task.index + 1) << 24;
    while (Atomics.load(c, CTL_STOP) === 0) {
      // A quiescent audit wants every device parked between operations.
      const pk = Atomics.load(c, CTL_PARK);
      if ((pk & 1) !== 0) {
        publishFileStats(c, b, file);
        Atomics.store(c, b + D_STATE, DEV_PARKED);
        Atomics.add(c, CTL_PARKED, 1);
        Atomics.notify(c, CTL_PARKED);
        while (Atomics.load(c, CTL_PARK) === pk && Atomics.load(c, CTL_STOP) === 0) {
          Atomics.wait(c, CTL_PARK, pk, 50);
        }
        Atomics.sub(c, CTL_PARKED, 1);
        Atomics.store(c, b + D_STATE, DEV_RUNNING);
        Atomics.store(c, b + D_BEAT, clockUs(task.epoch));
        continue;
      }
      wl.next();
      const n = wl.npages;
      Atomics.store(c, b + D_ADDR, wl.page);
      attemptOpen = false;
      opMask = 0;
      let res: MirrorOpResult | null = null;
      // A driver without snapshot or migrate (optional ops: the v5.4 device has neither) gets a
      // range fault for read instead.
      let kind = wl.kind;
      if (
        (kind === WL_SNAPSHOT && file.snapshot === undefined) ||
        (kind === WL_MIGRATE && file.migrate === undefined)
      ) {
        kind = WL_FAULT_READ;
      }
      if (kind === WL_SNAPSHOT && file.snapshot !== undefined) {
        Atomics.store(c, b + D_OP, OP_SNAPSHOT);
        precise = false;
        res = file.snapshot(wl.addr, n, bytes);
        precise = true;
        Atomics.add(c, b + D_SNAPSHOTS, 1);
        if (res.ret === 0) Atomics.add(c, b + D_PAGES_SNAPSHOTTED, res.cpages);
        if (res.retries > 0) {
          windowMask = opMask;
          for (let i = 0; i < res.retries; i++) collided();
        }
        countRet(res.ret);
      } else if (kind === WL_MIGRATE && file.migrate !== undefined) {
        Atomics.store(c, b + D_OP, OP_MIGRATE);
        res = file.migrate(wl.addr, n, buf);
        Atomics.add(c, b + D_MIGRATES, 1);
        if (res.ret === 0) Atomics.add(c, b + D_ACCESSES, res.cpages);
        countRet(res.ret);
        if (res.ret === -EFAULT && fallbackToCpu) cpuFallback(wl.addr, n);
      } else {
        const write = kind === WL_FAULT_WRITE;
        Atomics.store(c, b + D_OP, OP_RANGE_FAULT);
        callCollisions = 0;
        const t0 = performance.now();
        const ret = file.rangeFault(wl.addr, wl.addr + n * 4096, write);
        const t1 = performance.now();
        if (ret === -EBUSY && attemptOpen) collided();
        attemptOpen = false;
        recordClamped(latency, (t1 - t0) * 1000, LATENCY_HIGHEST_US);
        recordClamped(retries, callCollisions, RETRIES_HIGHEST);
        Atomics.add(c, b + D_RF_CALLS, 1);
        if (ret === 0) {
          Atomics.add(c, b + D_RF_OK, 1);
          // Access what was mirrored: read it, or write a fresh pattern (each page's write
          // counter goes up by one inside the driver).
          if (write) {
            Atomics.store(c, b + D_OP, OP_WRITE);
            fill = (fill + 1) | 0;
            buf.fill(fill, 0, n * W);
            res = file.write(wl.addr, n, buf);
            Atomics.add(c, b + D_WRITES, 1);
          } else {
            Atomics.store(c, b + D_OP, OP_READ);
            res = file.read(wl.addr, n, buf);
            Atomics.add(c, b + D_READS, 1);
          }
          if (res.ret === -EBUSY && attemptOpen) collided();
          attemptOpen = false;
          if (res.ret === 0) Atomics.add(c, b + D_ACCESSES, res.cpages);
          countRet(res.ret);
          if (res.ret === -EFAULT && fallbackToCpu) cpuFallback(wl.addr, n);
        } else {
          countRet(ret);
          if (ret === -EFAULT && fallbackToCpu) cpuFallback(wl.addr, n);
        }
      }
      Atomics.store(c, b + D_OP, OP_NONE);
      Atomics.add(c, b + D_OPS, 1);
      Atomics.store(c, b + D_BEAT, clockUs(task.epoch));
      ops++;
      if ((ops & 127) === 0) publishFileStats(c, b, file);
      if (task.testFaults !== undefined) testFault(task, ops, file, c, b);
      if (pace > 0) Atomics.wait(c, CTL_STOP, 0, pace);
    }
    publishFileStats(c, b, file);
    Atomics.store(c, b + D_STATE, DEV_DONE);
  } catch (e) {
    error = e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e);
    Atomics.add(c, b + D_ERRORS, 1);
    Atomics.store(c, b + D_STATE, DEV_CRASHED);
  } finally {
    setPointHook(null);
    dmirrorSetFaultPath(prevFaultPath);
  }
  const counters: number[] = [];
  for (let i = 0; i < DEV_WORDS; i++) counters.push(Atomics.load(c, b + i));
  return {
    index: task.index,
    counters,
    latencyUs: encodeHistogram(latency),
    retriesPerCall: encodeHistogram(retries),
    core: threadCoreStats(),
    error,
  };
}
