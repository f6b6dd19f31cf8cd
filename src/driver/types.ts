/**
 * The driver interface: the seam between the mirroring protocol and everything above it
 * (workloads, oracles, statistics). The v5.10 reference device (`dmirror.ts`, modelled on
 * lib/test_hmm.c), the later v5.4 reference device (spec/legacy-v5.4.md) and a user's driver loaded
 * from a file all implement it; nothing above this file knows which protocol a device speaks.
 *
 * Two levels, as in the kernel's test driver:
 * - a **device**: an owner token (`dev_private_owner`, and the owner of its device-private frames)
 *   and its device-private memory;
 * - an **open file** on a device, bound to one mm: its mirror (the device page table), its update
 *   lock and its subscription(s) to the mm's invalidations.
 *
 * Both are created on the main thread from shared memory and *attached* in a worker from a plain
 * descriptor (SharedArrayBuffers, numbers and strings only: it travels in a task payload). The
 * invalidate op runs in whichever thread invalidates, so every thread that can invalidate the mm
 * (the mutator, and device workers, whose faults and migrations invalidate too) must attach every
 * file of that mm before it runs.
 *
 * What a user's driver must implement: a `MirrorDriver` (create / attach a device), and for its
 * devices and files the members below that are not marked optional. Every operation returns 0 or a
 * negative errno (kernel style), never throws for a protocol outcome; counters are reported only
 * on success, like the test driver's ioctls. Addresses are byte addresses, page aligned.
 */
import type { MmStruct } from '../mm/mm.js';
import type { MmuNotifierRange } from '../mm/mmu-notifier.js';
import type { PhysMem } from '../mm/physmem.js';

/** A descriptor field: what a structured clone carries as shared or plain data. */
export type DescriptorValue = SharedArrayBuffer | number | string | boolean;

/** Plain data that attaches a device in another thread. */
export interface DeviceDescriptor {
  /** the `MirrorDriver.name` that made it */
  readonly driver: string;
  readonly id: number;
  readonly [field: string]: DescriptorValue;
}

/** Plain data that attaches an open file in another thread (the mm is attached separately). */
export interface FileDescriptor {
  readonly driver: string;
  readonly id: number;
  readonly deviceId: number;
  readonly mmId: number;
  readonly [field: string]: DescriptorValue;
}

/** What every driver gets from its surroundings in a thread. */
export interface DriverEnv {
  phys: PhysMem;
}

/** Result of one device operation. `cpages`/`faults` are meaningful only when `ret === 0`. */
export interface MirrorOpResult {
  ret: number;
  /** pages copied / reported / migrated back */
  cpages: number;
  /** how many times the operation ran the range-fault routine */
  faults: number;
  /** returns to `mmu_interval_read_begin` inside the operation (hmm_range_fault -EBUSY or read_retry) */
  retries: number;
}

/**
 * Per-file statistics, cumulative since open. A plain object of numbers (cheap to post from a
 * worker); a driver may keep them in shared words and copy them out here.
 */
export interface FileStats {
  /** hmm_range_fault calls */
  hmmCalls: number;
  /** hmm_range_fault returned -EBUSY */
  hmmBusy: number;
  /** mmu_interval_read_retry was true under the update lock */
  readRetryCollisions: number;
  /** mmu_interval_read_begin found an invalidation of the subscription open (it slept) */
  readBeginSleeps: number;
  /** range-fault routine runs (the ioctl counter `faults`, summed) */
  faults: number;
  /** pages installed by the range-fault routine */
  pagesFaulted: number;
  snapshots: number;
  /** pages the device read or wrote through the mirror */
  accesses: number;
  /** chunks that gave up at HMM_RANGE_DEFAULT_TIMEOUT */
  timeouts: number;
  /** invalidate-op calls */
  invalidations: number;
  /** invalidations skipped as the device's own MIGRATE */
  invalidationsSkipped: number;
  /** non-blockable invalidations that failed to take the update lock */
  invalidationsFailed: number;
  /** mirror entries erased by invalidations */
  entriesErased: number;
  /**
   * Optional: time (us) spent waiting for the range to become valid (v5.4 wait_until_valid), for
   * drivers whose waits the v5.10 read_begin statistics do not see.
   */
  waitUs?: number;
  /** Optional: operations that failed with -EFAULT on the shared zero page (v5.4 hmm_range_fault) */
  zeroPageEfaults?: number;
  /**
   * Optional (the v5.10 reference device): retries of the range-fault routine (and snapshot),
   * hmm_range_fault -EBUSY or read_retry, by the source of the subscription's last seq bump
   * before the retry was seen; they sum to hmmBusy + readRetryCollisions. Retries caused by the
   * process side: the mutator's mutations and CPU accesses.
   */
  retriesByProcess?: number;
  /** Optional: retries caused by another device's fault path (its hmm_range_fault or migration) */
  retriesByOtherDevice?: number;
  /** Optional: retries caused by the file's own fault path (e.g. its write fault breaking COW) */
  retriesByOwnFault?: number;
}

export interface MirrorFile {
  readonly id: number;
  readonly device: MirrorDevice;
  readonly mm: MmStruct;
  descriptor(): FileDescriptor;

  /**
   * The range-fault routine: fault [start, end) into the mirror with the documented pattern
   * (read_begin, hmm_range_fault under the mmap read lock, update lock, read_retry, program).
   */
  rangeFault(start: number, end: number, write: boolean): number;
  /**
   * The invalidate op (mmu_interval_notifier_ops.invalidate), called in the invalidating thread
   * with the whole invalidation range and the odd `curSeq`. False only for a non-blockable range
   * whose lock could not be taken.
   */
  invalidate(range: MmuNotifierRange, curSeq: number): boolean;

  /** Device read through the mirror into `out` (npages * W words); faults missing pages. */
  read(addr: number, npages: number, out: Int32Array): MirrorOpResult;
  /** Device write of `src` (npages * W words) through the mirror; faults for write. */
  write(addr: number, npages: number, src: Int32Array): MirrorOpResult;
  /** Optional: the CPU's view of [addr, +npages) without faulting, one HMM_DMIRROR_PROT_* byte per page. */
  snapshot?(addr: number, npages: number, out: Uint8Array): MirrorOpResult;
  /** Optional: migrate to device memory, then read the range back into `out` through the mirror. */
  migrate?(addr: number, npages: number, out: Int32Array): MirrorOpResult;
  /** Optional: map npages of the device file into the mm; returns the address or a negative errno. */
  mmap?(npages: number): number;

  stats(): FileStats;
  /**
   * Optional, for oracle #3 (mirror coherence): visit every present mirror entry (page number,
   * PFN, writable). A driver without it is not audited.
   */
  forEachMirrorEntry?(visit: (page: number, pfn: number, writable: boolean) => void): void;
  /** Optional, for oracle #4 and the watchdog: is the update lock held right now? */
  lockHeld?(): boolean;
  /** Teardown: remove the subscription(s); the mirror is dropped. 0 or -errno. */
  close(): number;
}

export interface MirrorDevice {
  readonly id: number;
  /** the `dev_private_owner` token; also the owner id of its device-private frames */
  readonly owner: number;
  readonly driver: MirrorDriver;
  descriptor(): DeviceDescriptor;
  /** Open a file on this device for `mm` (subscribes); a negative errno on failure. */
  open(mm: MmStruct): MirrorFile | number;
  /** Attach a file opened elsewhere, in this thread (registers its ops here). */
  attachFile(d: FileDescriptor, mm: MmStruct): MirrorFile;
}

export interface MirrorDriver {
  /** the name descriptors carry, e.g. "dmirror" */
  readonly name: string;
  createDevice(env: DriverEnv): MirrorDevice;
  attachDevice(env: DriverEnv, d: DeviceDescriptor): MirrorDevice;
}
