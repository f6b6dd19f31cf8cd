/**
 * The results file of `hmmsim run --out FILE` (schema version 1). Documented field by field here;
 * the README points to this file. Additive changes keep the version; anything else bumps it.
 *
 * Units: times in microseconds unless a name ends in Ms; counts are plain integers.
 */
import type { HistogramJson } from '../sim/histograms.js';

export const RESULTS_SCHEMA = 'hmmsim-results';
export const RESULTS_VERSION = 1;

/** The counters of one device (or merged over all devices). */
export interface DeviceCounters {
  /** device operations completed (range-fault + access, snapshot, migrate) */
  ops: number;
  /** operations that returned 0 */
  opsOk: number;
  reads: number;
  writes: number;
  snapshots: number;
  migrates: number;
  /** range-fault routine calls made directly by the workload, and those that returned 0 */
  rangeFaultCalls: number;
  rangeFaultOk: number;
  /** hmm_range_fault calls (inside the routine, the device accesses and snapshots) */
  hmmRangeFaultCalls: number;
  /** hmm_range_fault successes (calls - -EBUSY - errors, as the driver counted) */
  hmmRangeFaultOk: number;
  /** hmm_range_fault returned -EBUSY (the walk saw the subscription's seq change) */
  hmmRangeFaultBusy: number;
  /** mmu_interval_read_retry was true under the update lock */
  readRetryCollisions: number;
  /**
   * hmm_range_fault -EBUSY and read_retry collisions by the source of the subscription's last seq
   * bump (the last one wins when several hit one attempt): the process side (mutations, CPU
   * accesses), another device's fault path, the file's own fault path (e.g. a write fault breaking
   * COW on a zero page it mapped). They sum to the two counts above. v5.10 reference devices only;
   * 0 for others (added in v1; absent in older files)
   */
  retriesByProcess: number;
  retriesByOtherDevice: number;
  retriesByOwnFault: number;
  /** mmu_interval_read_begin slept on an open invalidation, and for how long in total */
  readBeginSleeps: number;
  readBeginSleepUs: number;
  /** operations that failed with each error */
  efault: number;
  /**
   * of `efault`: operations that failed on the shared zero page, which v5.4's hmm_range_fault
   * refuses (a special PTE); v5.10 devices never count here (added in v1)
   */
  efaultZeroPage: number;
  /**
   * CPU fallbacks made after -EFAULT (scenario workload.efaultFallback 'cpu': the program read the
   * failed range from the CPU, migrating other devices' private pages back); 0 with 'none'
   * (added in v1; absent in older files)
   */
  efaultFallbacks: number;
  eperm: number;
  einval: number;
  enoent: number;
  otherErrors: number;
  /** chunks (or operations) that gave up at HMM_RANGE_DEFAULT_TIMEOUT (-EBUSY) */
  timeouts: number;
  /** pages installed in mirrors by the range-fault routine */
  pagesFaulted: number;
  /** pages reported by snapshots */
  pagesSnapshotted: number;
  /** pages read or written through a mirror */
  deviceAccesses: number;
  /** returns to mmu_interval_read_begin seen (attempts) and those that were retries */
  attempts: number;
  collisions: number;
  /** the device's invalidate ops: called, skipped (own MIGRATE), failed (non-blockable), entries erased */
  invalidations: number;
  invalidationsSkipped: number;
  invalidationsFailed: number;
  mirrorEntriesErased: number;
  /** mmap read-lock acquisitions that had to wait */
  mmapLockWaits: number;
}

export interface EventStats {
  /** MMU_NOTIFY_* name */
  event: string;
  /** invalidate_range_start calls issued with this event (all threads) */
  invalidations: number;
  /** pages those invalidations covered */
  pagesInvalidated: number;
  /** starts that failed with -EAGAIN (non-blockable) */
  failed: number;
  /** time spent inside invalidate ops of device files, and waiting for their update locks (us) */
  invalidateOpUs: number;
  lockWaitUs: number;
}

export interface ViolationJson {
  /** stale-access | lost-update | mirror-incoherent | protocol */
  oracle: string;
  detail: string;
  device: number;
  file: number;
  mm: number;
  /** byte address, hex */
  address: string;
  pfn: number;
  generationRecorded: number;
  generationNow: number;
  /** the event that freed the frame, "unknown" if the free log had moved on */
  freedBy: string;
  freedAt: string;
  extra: number;
  thread: number;
  serial: number;
  /** the mutator's operation count when the violation was collected */
  mutatorOps: number;
  /** device operations completed (all devices) when it was collected */
  deviceOps: number;
  text: string;
}

/** What device i of a run is (added in v1; absent in older files: all v5.10 reference devices). */
export interface DeviceInfo {
  index: number;
  /** v5.10 | v5.4 */
  protocol: string;
  /** "dmirror", "legacy-dmirror", or the path of a user's driver module as given */
  driver: string;
}

export interface RunResults {
  schema: typeof RESULTS_SCHEMA;
  version: typeof RESULTS_VERSION;
  hmmsimVersion: string;
  startedAt: string;
  /** the seed of every workload choice; thread timing is not reproducible from it */
  seed: number;
  config: unknown;
  machine: {
    node: string;
    platform: string;
    arch: string;
    cpus: number;
    cpuModel: string;
    totalMemoryMiB: number;
  };
  outcome: {
    /** clean | violations | crashed | hung | interrupted */
    verdict: string;
    exitCode: number;
    interrupted: boolean;
    /** why the run stopped: ops, duration, violation, interrupt, crash, hang */
    stoppedBy: string;
    wallMs: number;
    /** from the moment every device ran to the stop flag (added in v1): throughput's denominator */
    runMs?: number;
    mutatorOps: number;
    deviceOps: number;
    violations: number;
    /** the first oracle that fired and the operation counts at that moment, or null */
    firstViolation: { oracle: string; mutatorOps: number; deviceOps: number; text: string } | null;
    error: string | null;
    /** the watchdog's dump when a thread was stuck */
    hang: string | null;
  };
  /** device i's protocol and driver (added in v1) */
  devices?: DeviceInfo[];
  counters: {
    devices: DeviceCounters[];
    merged: DeviceCounters;
    /** per mutation kind: operations attempted, and those the mm refused or that did nothing */
    mutations: Record<string, { ops: number; failed: number; us: number }>;
    cpuAccesses: { reads: number; writes: number; faults: number };
    events: EventStats[];
    /** per named point: passes (with jitter on) and collisions observed in its window */
    points: { point: string; passes: number; collisions: number }[];
    /** mmap lock: waits of the mutator (write and read) and of devices */
    mmapLockWaits: { mutator: number; devices: number };
    audits: number;
    lostUpdate: {
      increments: number;
      copied: number;
      live: number;
      discarded: number;
      difference: number;
    } | null;
    /**
     * the mutator's THP work (added in v1, absent in older files): whole 2 MiB steps unmapped
     * (their page tables freed, so a later fault may map a THP), and collapse targets populated
     * by CPU writes first (and populations that failed)
     */
    thp?: { stepUnmaps: number; populated: number; populateFailed: number };
  };
  histograms: {
    /** the range-fault routine's latency (us) per device and merged */
    rangeFaultLatencyUs: { merged: HistogramJson; devices: HistogramJson[] };
    /** retries (returns to read_begin) per range-fault call */
    retriesPerCall: { merged: HistogramJson; devices: HistogramJson[] };
  };
  violations: ViolationJson[];
  /** violations beyond those kept in the log */
  violationsDropped: number;
}
