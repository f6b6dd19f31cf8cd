/**
 * One simulation run: build the world, start one piscina task per device, run the mutator (the
 * "CPU") on this thread, audit at quiescent points, stop, check the end-of-run oracles, and gather
 * everything into a `RunResults` (src/report/schema.ts).
 *
 * The mutator paces itself with Atomics.wait (never a spin: on 2 cores a spinning main thread
 * takes a core from the devices) and returns to the event loop every few milliseconds, so Ctrl-C,
 * the progress bar and the watchdog keep running. Devices stop when the stop flag in shared memory
 * is set; a worker is terminated only when it is hung (the watchdog's verdict).
 */
import { closeSync, openSync } from 'node:fs';
import { arch, cpus, devNull, platform, totalmem } from 'node:os';
import { threadId, Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import {
  auditMirror,
  deviceWriteIncrements,
  lostUpdateEquation,
  protocolSanity,
  readViolations,
  resetDeviceWriteIncrements,
  setOraclesEnabled,
  type Violation,
} from '../checker/oracles.js';
import { configureInjection, injection, MUTANTS, POINT_COUNT, POINT_NAMES } from '../checker/points.js';
import { DmirrorFile } from '../driver/dmirror.js';
import { setPointHook } from '../driver/sched.js';
import type { MirrorFile } from '../driver/types.js';
import { MM_MMAP_LOCK, MM_PTL } from '../mm/layout.js';
import { MMU_NOTIFY_EVENT_COUNT, MMU_NOTIFY_EVENT_NAMES } from '../mm/mmu-notifier.js';
import { resetInvalidationStats } from '../mm/notify.js';
import { resetMmuNotifierStats } from '../notifier/index.js';
import { MN_ACTIVE, MN_LOCK, MN_SEQ } from '../notifier/layout.js';
import type { DeviceCounters, EventStats, RunResults, ViolationJson } from '../report/schema.js';
import { RESULTS_SCHEMA, RESULTS_VERSION } from '../report/schema.js';
import { LINE_WORDS } from '../shm/layout.js';
import { mutexOwner } from '../shm/mutex.js';
import { PERCPU_RWSEM_SLOTS, percpuRwsemState, percpuRwsemWaitingWriters } from '../shm/percpu-rwsem.js';
import { spinOwner } from '../shm/spinlock.js';
import {
  CTL_MAIN_BEAT,
  CTL_MAIN_KIND,
  CTL_MAIN_OP,
  CTL_MAIN_OPS,
  CTL_PARK,
  CTL_PARKED,
  CTL_WATCHDOG_OFF,
  clockUs,
  createControl,
  D_ACCESSES,
  D_ADDR,
  D_ATTEMPTS,
  D_BEAT,
  D_BEGIN_SLEEP_US,
  D_BEGIN_SLEEPS,
  D_COLLISIONS,
  D_EFAULT,
  D_EFAULT_FALLBACKS,
  D_EFAULT_ZERO,
  D_EINVAL,
  D_ENOENT,
  D_ENTRIES_ERASED,
  D_EPERM,
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
  DEV_PARKED,
  DEV_RUNNING,
  DEV_STATE_NAMES,
  DEV_WORDS,
  devBase,
  MAIN_AUDIT,
  MAIN_MUTATING,
  MAIN_PACING,
  OP_NAMES,
  requestStop,
} from './control.js';
import {
  availableKinds,
  cpuWriteIncrements,
  MUTATIONS,
  type MutationContext,
  remapDue,
  resetCpuStats,
  thpMutatorStats,
} from './core.js';
import { type DeviceResult, type DeviceTask, type ThreadCoreStats, threadCoreStats } from './device-loop.js';
import { loadDrivers, resolveDevices } from './drivers.js';
import { histogramJson, LATENCY_HIGHEST_US, mergeEncoded, RETRIES_HIGHEST } from './histograms.js';
import { installInstrumentation, instrumentPoint, resetInstrumentStats } from './instrument.js';
import { configureSimJitter, simJitter } from './jitter.js';
import { deriveSeed, Prng, pickWeighted } from './prng.js';
import { MUTATION_KINDS, type MutationKind, type Scenario } from './scenario.js';
import { buildWorld, fileCtl, type World } from './world.js';

export const EXIT_OK = 0;
export const EXIT_VIOLATIONS = 1;
export const EXIT_BAD_INPUT = 2;
export const EXIT_CRASH = 3;

/** What a caller can watch while a run goes on. */
export interface RunHooks {
  /** called every ~100 ms with the progress so far */
  progress?: (p: RunProgress) => void;
  /** a one-line note (seed, start, hang dump...) */
  note?: (line: string) => void;
  /** aborting stops the run cleanly (Ctrl-C) */
  signal?: AbortSignal;
  /** package version for the results */
  version?: string;
  /**
   * Called when the main thread itself is stuck (a deadlock under a mutant or a hung device): the
   * backstop watchdog runs it *on the main thread*, interrupting the stuck wait, with the results
   * gathered so far (verdict hung, exit code 3). It should write what it must, synchronously; the
   * process then exits with code 3 (it cannot go back to the stuck wait). Without it, the
   * backstop writes its own dump to stderr and kills the process (status 137).
   */
  onWedged?: (partial: RunResults) => void;
}

/** The global the backstop watchdog calls on the main thread through the inspector. */
const WEDGED_HANDLER = '__hmmsimWedged';

export interface RunProgress {
  elapsedMs: number;
  /** 0..1 of the configured duration or ops */
  fraction: number;
  mutatorOps: number;
  deviceOps: number;
  violations: number;
}

/** How long devices may take to start (tsx compiles the modules in each worker). */
const STARTUP_MS = 60_000;
const SLICE_MS = 10;

function deviceWorkerUrl(): string {
  return new URL('../../workers/device.ts', import.meta.url).href;
}

function preloadUrl(): string {
  return new URL('../../workers/tsx-register.mjs', import.meta.url).href;
}

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function emptyCounters(): DeviceCounters {
  return {
    ops: 0,
    opsOk: 0,
    reads: 0,
    writes: 0,
    snapshots: 0,
    migrates: 0,
    rangeFaultCalls: 0,
    rangeFaultOk: 0,
    hmmRangeFaultCalls: 0,
    hmmRangeFaultOk: 0,
    hmmRangeFaultBusy: 0,
    readRetryCollisions: 0,
    retriesByProcess: 0,
    retriesByOtherDevice: 0,
    retriesByOwnFault: 0,
    readBeginSleeps: 0,
    readBeginSleepUs: 0,
    efault: 0,
    efaultZeroPage: 0,
    efaultFallbacks: 0,
    eperm: 0,
    einval: 0,
    enoent: 0,
    otherErrors: 0,
    timeouts: 0,
    pagesFaulted: 0,
    pagesSnapshotted: 0,
    deviceAccesses: 0,
    attempts: 0,
    collisions: 0,
    invalidations: 0,
    invalidationsSkipped: 0,
    invalidationsFailed: 0,
    mirrorEntriesErased: 0,
    mmapLockWaits: 0,
  };
}

function countersOf(w: ArrayLike<number>): DeviceCounters {
  const c = emptyCounters();
  c.ops = w[D_OPS]!;
  c.opsOk = w[D_OK]!;
  c.reads = w[D_READS]!;
  c.writes = w[D_WRITES]!;
  c.snapshots = w[D_SNAPSHOTS]!;
  c.migrates = w[D_MIGRATES]!;
  c.rangeFaultCalls = w[D_RF_CALLS]!;
  c.rangeFaultOk = w[D_RF_OK]!;
  c.hmmRangeFaultCalls = w[D_HMM_CALLS]!;
  c.hmmRangeFaultBusy = w[D_HMM_BUSY]!;
  c.readRetryCollisions = w[D_READ_RETRY]!;
  c.retriesByProcess = w[D_RETRY_PROCESS] ?? 0;
  c.retriesByOtherDevice = w[D_RETRY_OTHER_DEVICE] ?? 0;
  c.retriesByOwnFault = w[D_RETRY_OWN_FAULT] ?? 0;
  c.readBeginSleeps = w[D_BEGIN_SLEEPS]!;
  c.readBeginSleepUs = w[D_BEGIN_SLEEP_US]!;
  c.efault = w[D_EFAULT]!;
  c.efaultZeroPage = w[D_EFAULT_ZERO] ?? 0;
  c.efaultFallbacks = w[D_EFAULT_FALLBACKS] ?? 0;
  c.eperm = w[D_EPERM]!;
  c.einval = w[D_EINVAL]!;
  c.enoent = w[D_ENOENT]!;
  c.otherErrors = w[D_OTHER_ERR]!;
  c.timeouts = w[D_TIMEOUTS]!;
  c.pagesFaulted = w[D_PAGES_FAULTED]!;
  c.pagesSnapshotted = w[D_PAGES_SNAPSHOTTED]!;
  c.deviceAccesses = w[D_ACCESSES]!;
  c.attempts = w[D_ATTEMPTS]!;
  c.collisions = w[D_COLLISIONS]!;
  c.invalidations = w[D_INVALIDATIONS]!;
  c.invalidationsSkipped = w[D_INV_SKIPPED]!;
  c.invalidationsFailed = w[D_INV_FAILED]!;
  c.mirrorEntriesErased = w[D_ENTRIES_ERASED]!;
  c.mmapLockWaits = w[D_MMAP_WAITS]!;
  // hmm_range_fault calls that neither returned -EBUSY nor failed the operation: the driver does
  // not count errors separately, so successes = calls - busy - operation errors (a lower bound).
  c.hmmRangeFaultOk = Math.max(0, c.hmmRangeFaultCalls - c.hmmRangeFaultBusy - (c.efault + c.eperm));
  return c;
}

function mergeCounters(all: DeviceCounters[]): DeviceCounters {
  const m = emptyCounters();
  for (const c of all) for (const k of Object.keys(m) as (keyof DeviceCounters)[]) m[k] += c[k];
  return m;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** The watchdog's dump: who holds which lock, the seqs, what each thread is doing. */
export function dumpState(world: World, control: Int32Array, devices: number, epoch: number): string {
  const mm = world.mm;
  const now = clockUs(epoch);
  const lines: string[] = [];
  const st = percpuRwsemState(mm.ctl, MM_MMAP_LOCK);
  lines.push(
    `mmap lock: ${st === -1 ? 'held for write' : st > 0 ? `held for read by ${st}` : 'free'}, ` +
      `${percpuRwsemWaitingWriters(mm.ctl, MM_MMAP_LOCK)} writer(s) waiting; page-table lock owner thread ` +
      `${spinOwner(mm.ctl, MM_PTL) - 1}`,
  );
  const n = world.notifier;
  lines.push(
    `interval notifier: invalidate_seq ${n.invalidateSeq()}, lock owner thread ${n.lockOwner() - 1}`,
  );
  for (const f of world.files) {
    const subs =
      f instanceof DmirrorFile
        ? f.subs.map((s) => `slot ${s.slot} seq ${n.slotSeq(s.slot)}`).join(', ')
        : 'no interval subscription';
    // The update lock is line 0 of a built-in file's ctl (dmirror.ts, legacy-dmirror.ts headers).
    const ctl = fileCtl(f);
    const held = f.lockHeld?.();
    const lock =
      held === undefined
        ? 'unknown'
        : held
          ? `held by thread ${ctl !== null ? mutexOwner(ctl, 0) - 1 : '?'}`
          : 'free';
    lines.push(`file ${f.id} (device ${f.device.id}): update lock ${lock}; ${subs}`);
  }
  lines.push(
    `main thread ${threadId}: ${['idle', 'mutating', 'audit', 'pacing'][Atomics.load(control, CTL_MAIN_OP)] ?? '?'} ` +
      `kind ${MUTATION_KINDS[Atomics.load(control, CTL_MAIN_KIND)] ?? '-'}, ops ${Atomics.load(control, CTL_MAIN_OPS)}`,
  );
  for (let d = 0; d < devices; d++) {
    const b = devBase(d);
    const beat = Atomics.load(control, b + D_BEAT);
    lines.push(
      `device ${d} thread ${Atomics.load(control, b + D_THREAD)}: ${DEV_STATE_NAMES[Atomics.load(control, b + D_STATE)]}, ` +
        `op ${OP_NAMES[Atomics.load(control, b + D_OP)]} at ${hex(Atomics.load(control, b + D_ADDR) * 4096)}, ` +
        `${Atomics.load(control, b + D_OPS)} ops, last progress ${((now - beat) / 1000).toFixed(0)} ms ago`,
    );
  }
  return lines.join('\n');
}

function violationJson(v: Violation, mutatorOps: number, deviceOps: number): ViolationJson {
  return {
    oracle: v.kindName,
    detail: v.detailName,
    device: v.device,
    file: v.file,
    mm: v.mm,
    address: v.page >= 0 ? hex(v.page * 4096) : '-',
    pfn: v.pfn,
    generationRecorded: v.genRecorded,
    generationNow: v.genNow,
    freedBy: v.freeEventName,
    freedAt: v.freePage >= 0 ? `${hex(v.freePage * 4096)} of mm ${v.freeMm}` : '-',
    extra: v.extra,
    thread: v.thread,
    serial: v.serial,
    mutatorOps,
    deviceOps,
    text: v.text,
  };
}

/**
 * How long the main thread may go without a heartbeat before the backstop steps in. It may
 * legitimately block inside one mutation for about one device timeout (hmm_range_fault's 1 s
 * HMM_RANGE_DEFAULT_TIMEOUT, a 2 s migration-entry wait) or one park of the devices.
 */
export function backstopBoundMs(s: Scenario): number {
  return Math.max(2 * s.watchdogMs, 4000);
}

/** The backstop watchdog (workers/watchdog.mjs): reports and ends a run whose main thread hangs. */
function startBackstopWatchdog(
  world: World,
  control: Int32Array,
  s: Scenario,
  epoch: number,
  inspect: boolean,
): Worker {
  const w = new Worker(new URL('../../workers/watchdog.mjs', import.meta.url), {
    workerData: {
      control: control.buffer,
      mmCtl: world.mm.ctl.buffer,
      notifierWords: world.notifier.words.buffer,
      files: world.files.flatMap((f) => {
        const ctl = fileCtl(f);
        return ctl === null ? [] : [{ id: f.id, ctl: ctl.buffer }];
      }),
      devices: s.devices,
      epoch,
      boundMs: backstopBoundMs(s),
      // call the main thread's WEDGED_HANDLER through the inspector first; kill only if that fails
      inspect,
      handler: WEDGED_HANDLER,
      graceMs: 5000,
      kinds: MUTATION_KINDS,
      states: DEV_STATE_NAMES,
      ops: OP_NAMES,
      layout: {
        CTL_MAIN_OP,
        CTL_MAIN_KIND,
        CTL_MAIN_OPS,
        CTL_MAIN_BEAT,
        CTL_WATCHDOG_OFF,
        // other owners' words, read for the dump only: the mmap lock's writer word and reader
        // slot lines (shm/percpu-rwsem.ts), the spinlock's owner word after the lock word
        // (shm/spinlock.ts), the notifier header
        MM_MMAP_LOCK,
        LINE_WORDS,
        PERCPU_RWSEM_SLOTS,
        MM_PTL,
        MN_SEQ,
        MN_ACTIVE,
        MN_LOCK,
        devBase0: devBase(0),
        DEV_WORDS,
        D_THREAD,
        D_STATE,
        D_OP,
        D_ADDR,
        D_OPS,
      },
    },
  });
  w.unref();
  return w;
}

/**
 * Run a validated scenario. Never throws for a run outcome: crashes and hangs are results with
 * exit code 3. Throws only for an impossible world (a RangeError the caller reports as bad input).
 */
export async function runSimulation(s: Scenario, hooks: RunHooks = {}): Promise<RunResults> {
  const note = hooks.note ?? (() => {});
  const seed = s.seed ?? (Math.random() * 2 ** 32) >>> 0;
  const startedAt = new Date().toISOString();
  const epoch = performance.timeOrigin + performance.now();
  const t0 = performance.now();
  const mutants = s.mutant === null ? 0 : MUTANTS[s.mutant]!;

  // ---- this thread's configuration ----
  configureInjection(mutants, s.jitter, deriveSeed(seed, 1000));
  setOraclesEnabled(s.oracles);
  resetInvalidationStats();
  resetMmuNotifierStats();
  resetInstrumentStats();
  resetDeviceWriteIncrements();
  resetCpuStats();
  installInstrumentation();
  configureSimJitter(s.jitter, deriveSeed(seed, 1001));
  setPointHook((p) => {
    instrumentPoint(p);
    simJitter(p);
  });

  const devs = resolveDevices(s);
  const world = buildWorld(
    s,
    devs,
    await loadDrivers(
      devs.map((d) => d.module),
      devs.map((d) => d.label),
    ),
  );
  const control = createControl(s.devices);
  const pool = new Piscina({
    filename: deviceWorkerUrl(),
    minThreads: s.devices,
    maxThreads: s.devices,
    idleTimeout: 60_000,
    concurrentTasksPerWorker: 1,
    execArgv: ['--import', preloadUrl()],
  });

  const backstop = startBackstopWatchdog(world, control, s, epoch, hooks.onWedged !== undefined);
  const beat = (): void => {
    Atomics.store(control, CTL_MAIN_BEAT, clockUs(epoch));
  };
  beat();
  const results: (DeviceResult | null)[] = new Array(s.devices).fill(null);
  let crash: string | null = null;
  let hang: string | null = null;
  const tasks = Array.from({ length: s.devices }, (_, i) => {
    const task: DeviceTask = {
      world: world.descriptor,
      control: control.buffer as SharedArrayBuffer,
      index: i,
      seed: deriveSeed(seed, i),
      jitterSeed: deriveSeed(seed, 2000 + i),
      mutants,
      jitter: s.jitter,
      oracles: s.oracles,
      workload: s.workload,
      efaultFallback: s.workload.efaultFallback,
      opsPerSecond: s.workload.opsPerSecond,
      epoch,
      testFaults: s.testFaults !== undefined && s.testFaults.device === i ? s.testFaults : undefined,
    };
    return (pool.run(task) as Promise<DeviceResult>).then(
      (r) => {
        results[i] = r;
        if (r.error !== null && crash === null) crash = `device ${i} crashed: ${r.error.split('\n')[0]}`;
      },
      (e: unknown) => {
        // a worker terminated because it hung is the hang, not a crash
        if (crash === null && hang === null)
          crash = `device ${i} worker failed: ${e instanceof Error ? e.message : String(e)}`;
      },
    );
  });
  const allDone = Promise.all(tasks);

  // ---- wait for the devices to start ----
  const devState = (d: number): number => Atomics.load(control, devBase(d) + D_STATE);
  const startBy = performance.now() + STARTUP_MS;
  while (crash === null && !hooks.signal?.aborted) {
    beat();
    let running = 0;
    for (let d = 0; d < s.devices; d++) if (devState(d) !== 0) running++;
    if (running === s.devices) break;
    if (performance.now() > startBy) {
      hang = `devices did not start within ${STARTUP_MS} ms\n${dumpState(world, control, s.devices, epoch)}`;
      break;
    }
    await sleep(5);
  }
  const tRun = performance.now();
  if (hang === null && crash === null && !hooks.signal?.aborted) {
    note(`devices running (started in ${Math.round(tRun - t0)} ms)`);
  }

  // ---- the mutator ----
  const rng = new Prng(deriveSeed(seed, 999));
  const kinds = availableKinds();
  const unavailable = MUTATION_KINDS.filter((k) => !kinds.includes(k));
  const kindIndex = kinds.map((k) => MUTATION_KINDS.indexOf(k));
  const cum = new Float64Array(kinds.length);
  {
    let t = 0;
    for (let i = 0; i < kinds.length; i++) {
      t += s.mutator.weights[kinds[i]!];
      cum[i] = t;
    }
  }
  const haveWeight = kinds.length > 0 && cum[cum.length - 1]! > 0;
  // the regions mutations may hit (scenario mutator.regions; all by default)
  const allowed = (i: number): boolean => s.mutator.regions === undefined || s.mutator.regions.includes(i);
  const regionCum = new Float64Array(world.regions.length);
  {
    let t = 0;
    for (let i = 0; i < world.regions.length; i++) {
      if (allowed(i)) t += world.regions[i]!.pages;
      regionCum[i] = t;
    }
  }
  const fileRegions = world.regions.filter((x) => x.kind === 'file' && allowed(x.index)).map((x) => x.index);
  const hugeRegions = world.regions.filter((x) => x.hugepage && allowed(x.index)).map((x) => x.index);
  const mutationStats: Record<string, { ops: number; failed: number; us: number }> = {};
  for (const k of MUTATION_KINDS) mutationStats[k] = { ops: 0, failed: 0, us: 0 };
  const ctx: MutationContext = {
    mm: world.mm,
    rng,
    children: [],
    region: world.regions[0]!,
    cpu: { reads: 0, writes: 0, faults: 0 },
    remaps: [],
    ops: 0,
    cpuWriteFraction: s.mutator.cpuWriteFraction,
  };
  const mainPointCollisions = new Float64Array(POINT_COUNT);
  const passesBefore = new Float64Array(POINT_COUNT);
  const pacer = new Int32Array(new SharedArrayBuffer(4));
  const interval = s.mutator.opsPerSecond > 0 ? 1000 / s.mutator.opsPerSecond : 0;
  const durationMs = s.ops === undefined ? s.durationMs : Number.POSITIVE_INFINITY;
  const opsLimit = s.ops ?? Number.POSITIVE_INFINITY;
  let audits = 0;
  let stoppedBy = 'duration';
  let stoppedAt: number | null = null;
  let firstViolation: RunResults['outcome']['firstViolation'] = null;
  let lastProgress = 0;

  const sumCollisions = (): number => {
    let t = 0;
    for (let d = 0; d < s.devices; d++) t += Atomics.load(control, devBase(d) + D_COLLISIONS);
    return t;
  };
  const deviceOps = (): number => {
    let t = 0;
    for (let d = 0; d < s.devices; d++) t += Atomics.load(control, devBase(d) + D_OPS);
    return t;
  };
  const noteFirstViolation = (): void => {
    if (firstViolation !== null || world.log.total === 0) return;
    const v = readViolations(world.log);
    const first = v.reduce<Violation | null>((a, x) => (a === null || x.serial < a.serial ? x : a), null);
    firstViolation = {
      oracle: first?.kindName ?? 'unknown',
      mutatorOps: ctx.ops,
      deviceOps: deviceOps(),
      text: first?.text ?? '',
    };
  };

  /** Park every running device, run `fn` at the quiescent point, unpark. False on a hang. */
  const atQuiescence = async (fn: () => void): Promise<boolean> => {
    Atomics.store(control, CTL_MAIN_OP, MAIN_AUDIT);
    const pk = Atomics.add(control, CTL_PARK, 1) + 1; // odd: park
    const deadline = performance.now() + s.watchdogMs;
    let ok = true;
    for (;;) {
      let live = 0;
      for (let d = 0; d < s.devices; d++) {
        const st = devState(d);
        if (st === DEV_RUNNING || st === DEV_PARKED) live++;
      }
      const parked = Atomics.load(control, CTL_PARKED);
      if (parked >= live) break;
      if (crash !== null) {
        ok = false;
        break;
      }
      if (performance.now() > deadline) {
        hang = `a device did not reach a quiescent point within ${s.watchdogMs} ms\n${dumpState(world, control, s.devices, epoch)}`;
        ok = false;
        break;
      }
      Atomics.wait(control, CTL_PARKED, parked, 2);
      beat();
      await yieldToLoop();
    }
    if (ok) {
      fn();
      audits++;
    }
    Atomics.store(control, CTL_PARK, pk + 1); // even: resume
    Atomics.notify(control, CTL_PARK);
    Atomics.store(control, CTL_MAIN_OP, MAIN_MUTATING);
    return ok;
  };

  const auditFile = (f: MirrorFile): void => {
    const visit = f.forEachMirrorEntry;
    if (visit === undefined) return; // a driver without it is not audited (types.ts)
    auditMirror(
      { id: f.id, deviceId: f.device.id, mm: f.mm, forEachMirrorEntry: (fn) => visit.call(f, fn) },
      world.log,
    );
  };
  const audit = (final: boolean): void => {
    for (const f of world.files) auditFile(f);
    const st = world.notifier.state();
    const subSeqs: number[] = [];
    for (const f of world.files) {
      if (f instanceof DmirrorFile) for (const sub of f.subs) subSeqs.push(world.notifier.slotSeq(sub.slot));
    }
    const locksHeld: string[] = [];
    if (final) {
      if (percpuRwsemState(world.mm.ctl, MM_MMAP_LOCK) !== 0) locksHeld.push('mmap lock');
      if (spinOwner(world.mm.ctl, MM_PTL) !== 0) locksHeld.push('page-table lock');
      if (world.notifier.lockOwner() !== 0) locksHeld.push('notifier lock');
      for (const f of world.files) if (f.lockHeld?.() === true) locksHeld.push(`file ${f.id} update lock`);
    }
    protocolSanity(
      {
        mmId: world.mm.id,
        mmSeq: st.invalidateSeq,
        activeInvalidations: st.activeInvalidateRanges,
        subscriptionSeqs: subSeqs,
        locksHeld,
      },
      world.log,
    );
  };

  const watchdog = (): void => {
    if (hang !== null) return;
    const now = clockUs(epoch);
    for (let d = 0; d < s.devices; d++) {
      const b = devBase(d);
      if (Atomics.load(control, b + D_STATE) !== DEV_RUNNING) continue;
      const beat = Atomics.load(control, b + D_BEAT);
      if (now - beat > s.watchdogMs * 1000) {
        hang = `device ${d} made no progress for ${((now - beat) / 1000).toFixed(0)} ms (watchdog bound ${s.watchdogMs} ms)\n${dumpState(world, control, s.devices, epoch)}`;
        return;
      }
    }
  };

  /** Everything gathered so far as results (at the end, or from the wedged handler). */
  const gather = (lost: RunResults['counters']['lostUpdate']): RunResults => {
    const wallMs = performance.now() - t0;
    const counterWords = (d: number): number[] => {
      const r = results[d];
      if (r !== null && r !== undefined) return r.counters;
      const b = devBase(d);
      return Array.from({ length: D_POINT_COLLISIONS + POINT_COUNT }, (_, i) => Atomics.load(control, b + i));
    };
    const perDevice = Array.from({ length: s.devices }, (_, d) => countersOf(counterWords(d)));
    const merged = mergeCounters(perDevice);
    const mainCore = threadCoreStats();
    const cores: ThreadCoreStats[] = [
      mainCore,
      ...results.filter((r): r is DeviceResult => r !== null).map((r) => r.core),
    ];
    const events: EventStats[] = [];
    for (let e = 0; e < MMU_NOTIFY_EVENT_COUNT; e++) {
      let inv = 0;
      let bytes = 0;
      let failed = 0;
      let opUs = 0;
      let lockUs = 0;
      for (const c of cores) {
        inv += c.invalidationStarts[e]!;
        bytes += c.invalidationBytes[e]!;
        failed += c.invalidationFailed[e]!;
        opUs += c.invalidateOpUs[e]!;
        lockUs += c.invalidateLockWaitUs[e]!;
      }
      events.push({
        event: MMU_NOTIFY_EVENT_NAMES[e]!,
        invalidations: inv,
        pagesInvalidated: Math.round(bytes / 4096),
        failed,
        invalidateOpUs: Math.round(opUs),
        lockWaitUs: Math.round(lockUs),
      });
    }
    const points = POINT_NAMES.map((name, p) => {
      let passes = 0;
      for (const c of cores) passes += c.pointPasses[p]!;
      let coll = mainPointCollisions[p]!;
      for (let d = 0; d < s.devices; d++) coll += counterWords(d)[D_POINT_COLLISIONS + p] ?? 0;
      return { point: name, passes, collisions: coll };
    });
    const latDev = results.map((r) => r?.latencyUs ?? '');
    const retDev = results.map((r) => r?.retriesPerCall ?? '');
    const latMerged = mergeEncoded(latDev, LATENCY_HIGHEST_US);
    const retMerged = mergeEncoded(retDev, RETRIES_HIGHEST);
    const totalDeviceOps = merged.ops;
    const violations = readViolations(world.log).map((v) => violationJson(v, ctx.ops, totalDeviceOps));
    const total = world.log.total;
    const interrupted = stoppedBy === 'interrupt';
    const exitCode = hang !== null || crash !== null ? EXIT_CRASH : total > 0 ? EXIT_VIOLATIONS : EXIT_OK;
    const verdict = hang !== null ? 'hung' : crash !== null ? 'crashed' : total > 0 ? 'violations' : 'clean';
    const cpu0 = cpus()[0];
    const config: Record<string, unknown> = { ...s, seed, unavailableKinds: unavailable };
    return {
      schema: RESULTS_SCHEMA,
      version: RESULTS_VERSION,
      hmmsimVersion: hooks.version ?? '0.0.0',
      startedAt,
      seed,
      config,
      devices: devs.map((d, index) => ({ index, protocol: d.protocol, driver: d.label })),
      machine: {
        node: process.version,
        platform: platform(),
        arch: arch(),
        cpus: cpus().length,
        cpuModel: cpu0?.model ?? 'unknown',
        totalMemoryMiB: Math.round(totalmem() / 2 ** 20),
      },
      outcome: {
        verdict,
        exitCode,
        interrupted,
        stoppedBy,
        wallMs: Math.round(wallMs),
        runMs: Math.round((stoppedAt ?? performance.now()) - tRun),
        mutatorOps: ctx.ops,
        deviceOps: totalDeviceOps,
        violations: total,
        firstViolation,
        error: crash,
        hang,
      },
      counters: {
        devices: perDevice,
        merged,
        mutations: mutationStats,
        cpuAccesses: ctx.cpu,
        events,
        points,
        mmapLockWaits: {
          mutator: mainCore.mmapReadWaits + mainCore.mmapWriteWaits,
          devices: cores.slice(1).reduce((a, c) => a + c.mmapReadWaits + c.mmapWriteWaits, 0),
        },
        audits,
        lostUpdate: lost,
        thp: { ...thpMutatorStats },
      },
      histograms: {
        rangeFaultLatencyUs: {
          merged: histogramJson(latMerged, 'us'),
          devices: latDev.map((e) => histogramJson(mergeEncoded([e], LATENCY_HIGHEST_US), 'us')),
        },
        retriesPerCall: {
          merged: histogramJson(retMerged, 'retries'),
          devices: retDev.map((e) => histogramJson(mergeEncoded([e], RETRIES_HIGHEST), 'retries')),
        },
      },
      violations,
      violationsDropped: Math.max(0, total - violations.length),
    };
  };

  if (hooks.onWedged !== undefined) {
    const onWedged = hooks.onWedged;
    (globalThis as unknown as Record<string, unknown>)[WEDGED_HANDLER] = (staleMs: number): void => {
      // Runs on this thread, interrupting the stuck wait: gather, hand over, and exit with 3.
      if (hang === null) {
        hang =
          `the main thread made no progress for ${Math.round(staleMs)} ms (backstop bound ${backstopBoundMs(s)} ms)\n` +
          dumpState(world, control, s.devices, epoch);
      }
      stoppedBy = 'hang';
      Atomics.store(control, CTL_WATCHDOG_OFF, 1);
      requestStop(control);
      noteFirstViolation();
      try {
        onWedged(gather(null));
      } finally {
        // The watchdog's inspector session is still connected, and Node says "Waiting for the
        // debugger to disconnect..." on fd 2 at exit: our own output is written (stderr is
        // synchronous on Linux for files, pipes and terminals), so fd 2 goes to the null device.
        try {
          closeSync(2);
          openSync(devNull, 'w');
        } catch {}
        process.exit(EXIT_CRASH);
      }
    };
  }

  let nextAt = performance.now();
  if (hang === null && crash === null && !haveWeight)
    note('no mutation kind is available with a positive weight');
  main: while (hang === null && crash === null) {
    const sliceEnd = performance.now() + SLICE_MS;
    while (performance.now() < sliceEnd) {
      beat();
      if (ctx.ops >= opsLimit) {
        stoppedBy = 'ops';
        break main;
      }
      if (performance.now() - tRun >= durationMs) {
        stoppedBy = 'duration';
        break main;
      }
      if (!haveWeight) {
        Atomics.store(control, CTL_MAIN_OP, MAIN_PACING);
        Atomics.wait(pacer, 0, 0, Math.max(0, sliceEnd - performance.now()));
        continue;
      }
      if (interval > 0) {
        const now = performance.now();
        const wait = nextAt - now;
        if (wait > 0) {
          Atomics.store(control, CTL_MAIN_OP, MAIN_PACING);
          Atomics.wait(pacer, 0, 0, Math.min(wait, Math.max(0, sliceEnd - now)));
          continue;
        }
        nextAt = Math.max(nextAt + interval, now - 50);
      }
      // ---- one mutation ----
      const ki = pickWeighted(rng, cum);
      const kind = kinds[ki]! as MutationKind;
      // Where: a region by size (a huge-page region for THP kinds), or where a device works now.
      let r = -1;
      let page = -1;
      if (rng.chance(s.mutator.followDevices)) {
        const at = Atomics.load(control, devBase(rng.below(s.devices)) + D_ADDR);
        r = world.regions.findIndex((x) => at >= x.start && at < x.start + x.pages && allowed(x.index));
        if (r >= 0) page = at;
      }
      if (
        (kind === 'thp-split' || kind === 'thp-collapse') &&
        hugeRegions.length > 0 &&
        (r < 0 || !world.regions[r]!.hugepage)
      ) {
        r = hugeRegions[rng.below(hugeRegions.length)]!;
        page = -1;
      }
      if (kind === 'writeback' && fileRegions.length > 0 && world.regions[r]?.kind !== 'file') {
        r = fileRegions[rng.below(fileRegions.length)]!;
        page = -1;
      }
      if (r < 0) {
        r = 0;
        const u = rng.nextFloat() * regionCum[regionCum.length - 1]!;
        while (regionCum[r]! <= u) r++;
      }
      const region = world.regions[r]!;
      const n = Math.min(region.pages, rng.between(s.mutator.rangePages.min, s.mutator.rangePages.max));
      if (page < 0) page = region.start + rng.below(region.pages - n + 1);
      else page = Math.min(page, region.start + region.pages - n);
      ctx.region = region;
      Atomics.store(control, CTL_MAIN_OP, MAIN_MUTATING);
      Atomics.store(control, CTL_MAIN_KIND, kindIndex[ki]!);
      passesBefore.set(injection.passes);
      const c0 = sumCollisions();
      const m0 = performance.now();
      const ret = MUTATIONS[kind]!(ctx, page, n);
      const m1 = performance.now();
      const st = mutationStats[kind]!;
      st.ops++;
      st.us += (m1 - m0) * 1000;
      if (ret !== 0) st.failed++;
      const dc = sumCollisions() - c0;
      if (dc > 0) {
        for (let p = 0; p < POINT_COUNT; p++) {
          if (injection.passes[p]! > passesBefore[p]!) mainPointCollisions[p]! += dc;
        }
      }
      ctx.ops++;
      Atomics.store(control, CTL_MAIN_OPS, ctx.ops);
      Atomics.store(control, CTL_MAIN_KIND, -1);
      Atomics.store(control, CTL_MAIN_BEAT, clockUs(epoch));
      if (ctx.remaps.length > 0) remapDue(ctx);
      if (s.oracles && s.auditEveryOps > 0 && ctx.ops % s.auditEveryOps === 0) {
        if (!(await atQuiescence(() => audit(false)))) break main;
      }
    }
    await yieldToLoop();
    if (world.log.total > 0) {
      noteFirstViolation();
      if (s.stopOnViolation) {
        stoppedBy = 'violation';
        break;
      }
    }
    if (hooks.signal?.aborted) {
      stoppedBy = 'interrupt';
      break;
    }
    watchdog();
    const now = performance.now();
    if (hooks.progress !== undefined && now - lastProgress >= 100) {
      lastProgress = now;
      const el = now - tRun;
      hooks.progress({
        elapsedMs: el,
        fraction: Math.min(1, s.ops !== undefined ? ctx.ops / s.ops : el / s.durationMs),
        mutatorOps: ctx.ops,
        deviceOps: deviceOps(),
        violations: world.log.total,
      });
    }
  }
  if (crash !== null) stoppedBy = 'crash';
  if (hang !== null) stoppedBy = 'hang';
  stoppedAt = performance.now();

  // ---- stop ----
  requestStop(control);
  const stopBy = performance.now() + s.watchdogMs;
  let finished = false;
  void allDone.then(() => {
    finished = true;
  });
  while (!finished && performance.now() < stopBy) {
    beat();
    await sleep(5);
  }
  if (!finished && hang === null) {
    hang = `devices did not stop within ${s.watchdogMs} ms of the stop flag\n${dumpState(world, control, s.devices, epoch)}`;
    stoppedBy = 'hang';
  }
  // Hung workers: the only case where a worker is terminated rather than stopped by the flag.
  // Bounded either way: a worker that even terminate() cannot stop is left behind (the CLI exits).
  await Promise.race([pool.destroy().catch(() => {}), new Promise<void>((r) => setTimeout(r, 5000).unref())]);
  setPointHook(null);
  Atomics.store(control, CTL_WATCHDOG_OFF, 1);
  delete (globalThis as unknown as Record<string, unknown>)[WEDGED_HANDLER];
  await backstop.terminate();

  // ---- end-of-run oracles (all devices stopped: a quiescent point) ----
  let lost: RunResults['counters']['lostUpdate'] = null;
  if (hang === null && crash === null && s.oracles) {
    // Map back what munmap removed so no remap is pending, then audit.
    remapDue(ctx, true);
    audit(true);
    audits++;
    let increments = deviceWriteIncrements() + cpuWriteIncrements();
    for (const r of results) if (r !== null) increments += r.core.writeIncrements;
    const eq = lostUpdateEquation(
      {
        increments,
        copied: world.phys.copied,
        live: world.phys.liveWriteCount(),
        discarded: world.phys.discarded,
      },
      world.log,
    );
    lost = {
      increments: eq.increments,
      copied: eq.copied,
      live: eq.live,
      discarded: eq.discarded,
      difference: eq.difference,
    };
  }
  noteFirstViolation();

  return gather(lost);
}
