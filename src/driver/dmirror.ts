/**
 * The reference mirror device (spec/driver.md), modelled on lib/test_hmm.c ("dmirror", v5.10.109):
 * devices with an owner token and device-private memory, open files with a mirror, an update lock
 * and an interval subscription over the whole address space (or one per fixed-size region), the
 * invalidate op, the range-fault routine, and the test driver's ioctls (read, write, snapshot,
 * migrate, mmap) with their `cpages`/`faults` counters and error codes.
 *
 * Shared state (all of it, since the invalidate op runs in the invalidating thread):
 * - device ctl: id, flags, region size, file counter (line 0); the access-section count (line 1);
 *   zdd: per frame, the file that allocated a device frame (the kernel's zone_device_data);
 * - file ctl: the update lock (line 0), op-side statistics (line 1), invalidate-side statistics
 *   and the snapshot subscription's seq source (line 2), identity and state (line 3);
 * - subscription words: per subscription (slot, gen, seq source): the source (SRC_*) of the last
 *   seq bump, stored by the invalidating thread before mmu_interval_set_seq;
 * - the mirror: two Int32 words per page of address space (8 bytes): the entry (present, writable,
 *   PFN) and the frame generation recorded at install (oracle #1).
 *
 * Deliberate choices (driver.md): quirk (a) resolved (an own device-private page is mirrored as
 * the device frame, which holds the device's copy); quirk (b) reproduced (-EFAULT); quirk (c) fixed
 * by default (`quirkC: true` reproduces the test driver); read/write on an mm with no users give
 * -EINVAL where the test driver would loop.
 */
import { threadId } from 'node:worker_threads';
import type { AccessContext, AuditableMirror, ViolationLog } from '../checker/oracles.js';
import * as oracles from '../checker/oracles.js';
import * as points from '../checker/points.js';
import type { HmmRange } from '../hmm/hmm.js';
import * as hmm from '../hmm/hmm.js';
import * as pfn from '../hmm/pfn.js';
import * as layout from '../mm/layout.js';
import { registerDevPagemapOps } from '../mm/memremap.js';
import type { MmStruct } from '../mm/mm.js';
import type { MmuNotifierRange } from '../mm/mmu-notifier.js';
import * as errno from '../mm/mmu-notifier.js';
import type { PhysMem } from '../mm/physmem.js';
import * as notifier from '../notifier/index.js';
import { MmuIntervalNotifier } from '../notifier/index.js';
import { LINE_WORDS, sharedInt32 } from '../shm/layout.js';
import * as mutex from '../shm/mutex.js';
import { dmirrorMigrateChunk, dmirrorMigrateToRam, dmirrorMmapPages } from './dmirror-migrate.js';
import type { FileStatsLayout, MirrorRwSteps } from './mirror-common.js';
import * as common from './mirror-common.js';
import * as sched from './sched.js';
import type {
  DeviceDescriptor,
  DriverEnv,
  FileDescriptor,
  FileStats,
  MirrorDevice,
  MirrorDriver,
  MirrorFile,
  MirrorOpResult,
} from './types.js';

// Module-local copies of the imported constants and functions (as in hmm/hmm.ts). An imported
// binding is live: V8 (Node 20) reloads it from its module cell, with a TDZ check, at every use,
// in the range-fault routine's per-page loops too; a module-local const is folded into the
// optimised code like a literal, and a local function is a known call target (inlinable).
const { ACCESS_MIGRATE_READBACK, oracleSwitch } = oracles;
const {
  injection,
  MUTANT_INVALIDATE_NO_LOCK,
  MUTANT_INVALIDATE_NOOP,
  MUTANT_NO_ACCESS_DRAIN,
  MUTANT_NO_SET_SEQ,
  MUTANT_RETRY_OUTSIDE_LOCK,
  MUTANT_SEQ_NOT_ODD,
  MUTANT_SKIP_READ_RETRY,
  POINT_AFTER_READ_BEGIN,
  POINT_BEFORE_PROGRAM,
  POINT_BEFORE_USER_LOCK,
  POINT_IN_INVALIDATE,
} = points;
const { hmmRangeFault } = hmm;
const {
  HMM_PFN_ERROR_HI,
  HMM_PFN_ORDER_SHIFT_HI,
  HMM_PFN_REQ_FAULT_HI,
  HMM_PFN_REQ_WRITE_HI,
  HMM_PFN_VALID_HI,
  HMM_PFN_WRITE_HI,
} = pfn;
const { FR_DEVICE_PRIVATE, frOwner, PAGE_SIZE, ZERO_PFN } = layout;
const { EBUSY, EFAULT, EINVAL, MMU_NOTIFY_MIGRATE, mmuNotifierRangeBlockable } = errno;
const {
  mmuIntervalIsInvalidating,
  mmuIntervalNotifierAttach,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierStats,
  registerMmuIntervalOpsKind,
} = notifier;
const { mutexLock, mutexTrylock, mutexUnlock } = mutex;
const {
  dmirrorAccessDone,
  dmirrorAccessPages,
  F_INV,
  F_LOCK,
  F_META,
  F_STATS,
  F_WORDS,
  M_CLOSED,
  M_DEVICE,
  M_ID,
  M_MM,
  MIR_PFN_MASK,
  MIR_PRESENT,
  MIR_WRITE,
  mirrorCheckArgs,
  mirrorEntryAt,
  mirrorErase,
  mirrorEntryWord,
  mirrorForEachEntry,
  mirrorInstall,
  mirrorReadWrite,
  newMirrorOpResult,
  readFileStats,
} = common;
const { driverHook, driverNow, driverPoint, HOOK_AFTER_HMM_RANGE_FAULT, HOOK_AFTER_INVALIDATE } = sched;

// ---------------------------------------------------------------------------------------------
// Constants

export const DMIRROR_DRIVER_NAME = 'dmirror';
/** Ops kinds of the file subscriptions and of snapshot's temporary ones (ops.ts registry). */
export const DMIRROR_OPS_KIND = 'hmmsim.dmirror';
export const DMIRROR_SNAPSHOT_OPS_KIND = 'hmmsim.dmirror.snapshot';
/** HMM_RANGE_DEFAULT_TIMEOUT (include/linux/hmm.h), milliseconds. */
export const HMM_RANGE_DEFAULT_TIMEOUT = 1000;
/** Pages per range-fault / snapshot / migrate chunk (ARRAY_SIZE(pfns) in test_hmm.c). */
export const DMIRROR_CHUNK_PAGES = 64;

/** HMM_DMIRROR_PROT_* (lib/test_hmm_uapi.h): snapshot bytes. */
export const HMM_DMIRROR_PROT_ERROR = 0xff;
export const HMM_DMIRROR_PROT_NONE = 0x00;
export const HMM_DMIRROR_PROT_READ = 0x01;
export const HMM_DMIRROR_PROT_WRITE = 0x02;
export const HMM_DMIRROR_PROT_PMD = 0x04;
export const HMM_DMIRROR_PROT_PUD = 0x08;
export const HMM_DMIRROR_PROT_ZERO = 0x10;
export const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20;
export const HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30;

// ---- device ctl words ----
const D_ID = 0;
const D_FLAGS = 1;
const D_REGION_PAGES = 2;
const D_NEXT_FILE = 3;
const D_SECTION = LINE_WORDS; // access-section count (its own line: every accessor bumps it)
const D_WORDS = 2 * LINE_WORDS;
const DF_QUIRK_C = 1;
const DF_ACCESS_SECTION = 2;

// ---- file ctl words (mirror-common.ts: the update lock (dmirror->mutex), then op-side stats,
// invalidate-side stats and meta lines) ----
const ST_HMM_CALLS = 0;
const ST_HMM_BUSY = 1;
const ST_READ_RETRY = 2;
const ST_BEGIN_SLEEPS = 3;
const ST_FAULTS = 4;
const ST_PAGES_FAULTED = 5;
const ST_SNAPSHOTS = 6;
const ST_ACCESSES = 7;
const ST_TIMEOUTS = 8;
// retries by the source of the seq bump (ST_RETRY_BY + SRC_*)
const ST_RETRY_BY = 9;
const ST_RETRY_PROCESS = ST_RETRY_BY + 0;
const ST_RETRY_OTHER_DEVICE = ST_RETRY_BY + 1;
const ST_RETRY_OWN_FAULT = ST_RETRY_BY + 2;
const IV_CALLS = 0;
const IV_SKIPPED = 1;
const IV_FAILED = 2;
const IV_ERASED = 3;
const IV_SNAP_SOURCE = 4; // SRC_* of the last seq bump of the running snapshot's subscription
const M_NSUBS = 4;
const M_REGION_PAGES = 5;

const STATS_LAYOUT: FileStatsLayout = {
  hmmCalls: F_STATS + ST_HMM_CALLS,
  hmmBusy: F_STATS + ST_HMM_BUSY,
  readRetryCollisions: F_STATS + ST_READ_RETRY,
  readBeginSleeps: F_STATS + ST_BEGIN_SLEEPS,
  faults: F_STATS + ST_FAULTS,
  pagesFaulted: F_STATS + ST_PAGES_FAULTED,
  snapshots: F_STATS + ST_SNAPSHOTS,
  accesses: F_STATS + ST_ACCESSES,
  timeouts: F_STATS + ST_TIMEOUTS,
  invalidations: F_INV + IV_CALLS,
  invalidationsSkipped: F_INV + IV_SKIPPED,
  invalidationsFailed: F_INV + IV_FAILED,
  entriesErased: F_INV + IV_ERASED,
  retriesByProcess: F_STATS + ST_RETRY_PROCESS,
  retriesByOtherDevice: F_STATS + ST_RETRY_OTHER_DEVICE,
  retriesByOwnFault: F_STATS + ST_RETRY_OWN_FAULT,
};

// ---- subscription words: SUB_STRIDE per subscription ----
const SUB_STRIDE = 3;
const SUB_SLOT = 0;
const SUB_GEN = 1;
const SUB_SOURCE = 2;
/**
 * Sources of a seq bump (a subscription's last one; retries are counted by it): no device fault
 * path running in the invalidating thread (the mutator, CPU accesses), another file's fault path,
 * the subscribed file's own.
 */
export const SRC_PROCESS = 0;
export const SRC_OTHER_DEVICE = 1;
export const SRC_OWN_FAULT = 2;

// ---- mirror entry word (mirror-common.ts) ----
/**
 * The mirror layout, for other devices that reuse it (the v5.4 reference device): two Int32 words
 * per page of address space, the entry (present, writable, PFN) then the frame generation recorded
 * when the entry was built (oracle #1).
 */
export const DMIRROR_MIR_PRESENT = MIR_PRESENT;
export const DMIRROR_MIR_WRITE = MIR_WRITE;
export const DMIRROR_MIR_PFN_MASK = MIR_PFN_MASK;

// ---------------------------------------------------------------------------------------------
// Options

export interface DmirrorDeviceOptions {
  /** reproduce test_hmm's quirk (c): every file of the device skips its MIGRATE events */
  quirkC?: boolean;
  /** device accesses outside the update lock, in a read-side section the invalidate op drains */
  accessSection?: boolean;
  /** 0: one subscription per file over the whole space; else one per region of this many pages */
  regionPages?: number;
}

export interface DmirrorEnv extends DriverEnv {
  /** where this thread's oracles record violations (null: counted only) */
  log?: ViolationLog | null;
}

// ---------------------------------------------------------------------------------------------
// Thread-local registries

const devicesById = new Map<number, DmirrorDevice>();
const filesById = new Map<number, DmirrorFile>();
let nextDeviceId = 1;
let kindsRegistered = false;

/**
 * The file whose device fault path (range fault, snapshot, migrate) runs in this thread, by id: 0
 * if none, -1 for another driver's device thread. Invalidations issued meanwhile (a COW in
 * handle_mm_fault, migrate_to_ram of another device's page, the migration's own events) are
 * attributed to it (SRC_*).
 */
let faultingFileId = 0;

/**
 * Mark this thread's running device fault path (a file id, or -1: a device thread of a driver
 * that does not mark its own); returns the previous mark, to restore.
 */
export function dmirrorSetFaultPath(id: number): number {
  const prev = faultingFileId;
  faultingFileId = id;
  return prev;
}

function registerKinds(): void {
  if (kindsRegistered) return;
  kindsRegistered = true;
  registerMmuIntervalOpsKind(DMIRROR_OPS_KIND, resolveFileOps);
  registerMmuIntervalOpsKind(DMIRROR_SNAPSHOT_OPS_KIND, resolveSnapshotOps);
}

function fileOrThrow(id: number): DmirrorFile {
  const f = filesById.get(id);
  if (f === undefined) {
    throw new Error(`dmirror file ${id} is not attached in thread ${threadId} (attachFile it first)`);
  }
  return f;
}

function resolveFileOps(opsId: number) {
  return fileOrThrow(opsId).ops;
}

function resolveSnapshotOps(opsId: number) {
  return fileOrThrow(opsId).snapshotOps;
}

/** This thread's view of a dmirror file by id, if attached here. */
export function dmirrorFileById(id: number): DmirrorFile | undefined {
  return filesById.get(id);
}

/** This thread's view of a dmirror device by id, if attached here. */
export function dmirrorDeviceById(id: number): DmirrorDevice | undefined {
  return devicesById.get(id);
}

// ---------------------------------------------------------------------------------------------
// The device

export class DmirrorDevice implements MirrorDevice {
  readonly id: number;
  readonly owner: number;
  readonly driver: MirrorDriver;
  readonly phys: PhysMem;
  readonly ctl: Int32Array;
  /** per frame: id of the file that allocated this device frame (zone_device_data), 0 if none */
  readonly zdd: Int32Array;
  log: ViolationLog | null;
  readonly quirkC: boolean;
  readonly accessSection: boolean;
  readonly regionPages: number;

  constructor(driver: MirrorDriver, env: DmirrorEnv, ctl: Int32Array, zdd: Int32Array) {
    this.driver = driver;
    this.phys = env.phys;
    this.log = env.log ?? null;
    this.ctl = ctl;
    this.zdd = zdd;
    this.id = Atomics.load(ctl, D_ID);
    this.owner = this.id;
    const flags = Atomics.load(ctl, D_FLAGS);
    this.quirkC = (flags & DF_QUIRK_C) !== 0;
    this.accessSection = (flags & DF_ACCESS_SECTION) !== 0;
    this.regionPages = Atomics.load(ctl, D_REGION_PAGES);
    registerKinds();
    devicesById.set(this.id, this);
    // dev_pagemap_ops.migrate_to_ram for this device's private pages, in this thread.
    registerDevPagemapOps(this.owner, {
      migrateToRam: (mm, address, pfn) => dmirrorDevmemFault(this, mm, address, pfn),
    });
  }

  descriptor(): DeviceDescriptor {
    return {
      driver: DMIRROR_DRIVER_NAME,
      id: this.id,
      ctl: this.ctl.buffer as SharedArrayBuffer,
      zdd: this.zdd.buffer as SharedArrayBuffer,
    };
  }

  /** dmirror_fops_open: a new file on this device bound to `mm`, subscribed. */
  open(mm: MmStruct): DmirrorFile | number {
    if (mm.users <= 0) return -EINVAL;
    const n = Atomics.add(this.ctl, D_NEXT_FILE, 1) + 1;
    const id = (this.id << 16) | n;
    const regionPages = this.regionPages > 0 ? this.regionPages : mm.npages;
    const nsubs = Math.ceil(mm.npages / regionPages);
    const ctl = sharedInt32(F_WORDS);
    Atomics.store(ctl, F_META + M_ID, id);
    Atomics.store(ctl, F_META + M_DEVICE, this.id);
    Atomics.store(ctl, F_META + M_MM, mm.id);
    Atomics.store(ctl, F_META + M_NSUBS, nsubs);
    Atomics.store(ctl, F_META + M_REGION_PAGES, regionPages);
    const mirror = sharedInt32(2 * mm.npages);
    const subWords = sharedInt32(SUB_STRIDE * nsubs);
    const f = new DmirrorFile(this, mm, ctl, mirror, subWords, []);
    // mmu_interval_notifier_insert over the whole space (or each region)
    for (let r = 0; r < nsubs; r++) {
      const sub = new MmuIntervalNotifier();
      const start = r * regionPages * PAGE_SIZE;
      const len = Math.min(regionPages, mm.npages - r * regionPages) * PAGE_SIZE;
      const ret = mmuIntervalNotifierInsert(sub, mm, start, len, { kind: DMIRROR_OPS_KIND, opsId: id });
      if (ret !== 0) {
        for (const s of f.subs) mmuIntervalNotifierRemove(s);
        filesById.delete(id);
        return ret;
      }
      Atomics.store(subWords, SUB_STRIDE * r + SUB_SLOT, sub.slot);
      Atomics.store(subWords, SUB_STRIDE * r + SUB_GEN, sub.gen);
      f.subs.push(sub);
    }
    return f;
  }

  attachFile(d: FileDescriptor, mm: MmStruct): DmirrorFile {
    const have = filesById.get(d.id);
    if (have !== undefined) return have;
    if (d.mmId !== mm.id) throw new Error(`dmirror file ${d.id} belongs to mm ${d.mmId}, not ${mm.id}`);
    const subWords = new Int32Array(d.subs as SharedArrayBuffer);
    const subs: MmuIntervalNotifier[] = [];
    for (let r = 0; r < subWords.length / SUB_STRIDE; r++) {
      const h = mmuIntervalNotifierAttach(mm, {
        mmId: mm.id,
        slot: Atomics.load(subWords, SUB_STRIDE * r + SUB_SLOT),
        gen: Atomics.load(subWords, SUB_STRIDE * r + SUB_GEN),
      });
      if (h !== null) subs.push(h);
    }
    return new DmirrorFile(
      this,
      mm,
      new Int32Array(d.ctl as SharedArrayBuffer),
      new Int32Array(d.mirror as SharedArrayBuffer),
      subWords,
      subs,
    );
  }

  /** Accessors entering the device's read-side access section (section model only). */
  accessEnter(): void {
    Atomics.add(this.ctl, D_SECTION, 1);
  }

  accessExit(): void {
    if (Atomics.sub(this.ctl, D_SECTION, 1) === 1) Atomics.notify(this.ctl, D_SECTION);
  }

  /** The invalidate op's drain: wait until no access section is open on this device. */
  accessDrain(): void {
    for (;;) {
      const c = Atomics.load(this.ctl, D_SECTION);
      if (c === 0) return;
      Atomics.wait(this.ctl, D_SECTION, c, 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The file

export class DmirrorFile implements MirrorFile, AuditableMirror {
  readonly id: number;
  readonly device: DmirrorDevice;
  readonly deviceId: number;
  readonly mm: MmStruct;
  readonly phys: PhysMem;
  readonly ctl: Int32Array;
  readonly mirror: Int32Array;
  readonly subWords: Int32Array;
  readonly subs: MmuIntervalNotifier[];
  readonly regionPages: number;
  /** mmu_interval_notifier_ops of the file's subscription(s) */
  readonly ops: { invalidate: (sub: MmuIntervalNotifier, r: MmuNotifierRange, cur: number) => boolean };
  /** ops of snapshot's temporary subscriptions (dmirror_snapshot_invalidate) */
  readonly snapshotOps: {
    invalidate: (sub: MmuIntervalNotifier, r: MmuNotifierRange, cur: number) => boolean;
  };
  /** this thread's scratch: one chunk's hmm_pfns, generations after the walk, and the range */
  private readonly pfns = new Int32Array(2 * DMIRROR_CHUNK_PAGES);
  private readonly gens = new Int32Array(DMIRROR_CHUNK_PAGES);
  /** per page of the chunk: 1 when the mirror already held the entry the install would store */
  private readonly keep = new Uint8Array(DMIRROR_CHUNK_PAGES);
  /** every page of the chunk kept, none failing dmirror_do_fault's checks: nothing to install */
  private allKept = false;
  private readonly range: HmmRange;
  private readonly actx: AccessContext;
  /** progress of the running operation (one per thread at a time) */
  private cur: MirrorOpResult = newMirrorOpResult();
  /** `cur` of a bare rangeFault call, reused: nobody reads it, so no allocation per call */
  private readonly faultScratch: MirrorOpResult = newMirrorOpResult();
  private bounce = new Int32Array(0);
  /** the read/write loop's steps (mirror-common.ts) */
  private readonly rw: MirrorRwSteps;

  constructor(
    device: DmirrorDevice,
    mm: MmStruct,
    ctl: Int32Array,
    mirror: Int32Array,
    subWords: Int32Array,
    subs: MmuIntervalNotifier[],
  ) {
    this.device = device;
    this.deviceId = device.id;
    this.mm = mm;
    this.phys = device.phys;
    this.ctl = ctl;
    this.mirror = mirror;
    this.subWords = subWords;
    this.subs = subs;
    this.id = Atomics.load(ctl, F_META + M_ID);
    this.regionPages = Atomics.load(ctl, F_META + M_REGION_PAGES);
    this.ops = { invalidate: (sub, r, cur) => this.invalidateSub(sub, r, cur) };
    this.snapshotOps = { invalidate: (sub, r, cur) => this.snapshotInvalidate(sub, r, cur) };
    this.range = {
      notifier: subs[0] ?? new MmuIntervalNotifier(),
      notifierSeq: 0,
      start: 0,
      end: 0,
      hmmPfns: this.pfns,
      defaultFlags: 0,
      pfnFlagsMask: 0,
      devPrivateOwner: device.owner,
    };
    this.actx = { log: device.log, phys: device.phys, device: device.id, file: this.id, mm: mm.id };
    this.rw = {
      usable: () => this.mm.users > 0,
      bounceFor: (npages) => this.bounceFor(npages),
      accessPass: (first, end, buf, bufPage0, what) => this.accessPass(first, end, buf, bufPage0, what),
      fault: (start, end, write) => this.dmirrorFault(start, end, write),
      faulted: () => this.stat(ST_FAULTS),
    };
    filesById.set(this.id, this);
  }

  descriptor(): FileDescriptor {
    return {
      driver: DMIRROR_DRIVER_NAME,
      id: this.id,
      deviceId: this.deviceId,
      mmId: this.mm.id,
      ctl: this.ctl.buffer as SharedArrayBuffer,
      mirror: this.mirror.buffer as SharedArrayBuffer,
      subs: this.subWords.buffer as SharedArrayBuffer,
    };
  }

  get closed(): boolean {
    return Atomics.load(this.ctl, F_META + M_CLOSED) !== 0;
  }

  private stat(i: number, n = 1): void {
    Atomics.add(this.ctl, F_STATS + i, n);
  }

  stats(): FileStats {
    return readFileStats(this.ctl, STATS_LAYOUT);
  }

  /** The subscription covering `page` (the only one, or its region's). */
  private subFor(page: number): MmuIntervalNotifier {
    return this.subs.length === 1 ? this.subs[0]! : this.subs[Math.floor(page / this.regionPages)]!;
  }

  /** The word holding `sub`'s seq source (subscriptions are laid out by region). */
  private sourceWord(sub: MmuIntervalNotifier): number {
    return SUB_STRIDE * Math.floor(sub.start / (this.regionPages * PAGE_SIZE)) + SUB_SOURCE;
  }

  /** The source (SRC_*) of a seq bump of this file's subscription made now, in this thread. */
  private seqSource(): number {
    const f = faultingFileId;
    return f === 0 ? SRC_PROCESS : f === this.id ? SRC_OWN_FAULT : SRC_OTHER_DEVICE;
  }

  /**
   * Count a retry by the source of the last seq bump of `sub`. Approximate when several
   * invalidations hit one attempt's window: the last bump before the read wins.
   */
  private countRetryCause(sub: MmuIntervalNotifier): void {
    this.stat(ST_RETRY_BY + Atomics.load(this.subWords, this.sourceWord(sub)));
  }

  /**
   * True while an invalidation of a subscription covering pages [first, end) is open (see
   * mmuIntervalIsInvalidating). The migrate path asks it under the update lock before it
   * installs entries for its new device pages.
   */
  invalidationOpen(first: number, end: number): boolean {
    if (this.subs.length === 1) return mmuIntervalIsInvalidating(this.subs[0]!);
    for (let p = first; p < end; p = (Math.floor(p / this.regionPages) + 1) * this.regionPages) {
      if (mmuIntervalIsInvalidating(this.subFor(p))) return true;
    }
    return false;
  }

  lock(): void {
    mutexLock(this.ctl, F_LOCK);
  }
  unlock(): void {
    mutexUnlock(this.ctl, F_LOCK);
  }
  /** For oracle #4 and the watchdog. */
  lockHeld(): boolean {
    return Atomics.load(this.ctl, F_LOCK) !== 0;
  }

  // ------------------------------------------------------------------------------------------
  // The invalidate op

  invalidate(range: MmuNotifierRange, curSeq: number): boolean {
    let ok = true;
    for (const s of this.subs) {
      if (s.start < range.end && range.start < s.end) ok = this.invalidateSub(s, range, curSeq) && ok;
    }
    return ok;
  }

  /**
   * dmirror_interval_invalidate: (1) skip the device's own MIGRATE (by default only the file
   * that started it: quirk (c) fixed); (2) take the update lock, or only try it on a
   * non-blockable range; (3) set the subscription's seq; (4) erase the mirror entries of pages
   * start..end INCLUSIVE (the test driver's index: the page after the range goes too); (5) unlock.
   * In the access-section model the op then waits out accesses that may use erased entries.
   */
  invalidateSub(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): boolean {
    const mutants = injection.mutants; // read once per operation
    const c = this.ctl;
    Atomics.add(c, F_INV + IV_CALLS, 1);
    const dev = this.device;
    if (
      range.event === MMU_NOTIFY_MIGRATE &&
      range.owner === dev.owner &&
      (dev.quirkC || range.ownerFile === this.id)
    ) {
      Atomics.add(c, F_INV + IV_SKIPPED, 1);
      // hmmsim (quirk (c) fixed): the migration erases this file's entries itself, but the CPU
      // side still changes, so the seq moves (under the lock, nothing erased). Otherwise a range
      // fault of this file that got the device page from hmm_range_fault just before a CPU fault
      // moved it back (migrate_to_ram, from any thread) passes read_retry and mirrors the freed
      // device frame. The test driver (quirkC) returns at once.
      if (!dev.quirkC && mmuNotifierRangeBlockable(range)) {
        mutexLock(c, F_LOCK);
        Atomics.store(this.subWords, this.sourceWord(sub), this.seqSource());
        mmuIntervalSetSeq(sub, curSeq);
        mutexUnlock(c, F_LOCK);
      }
      return true;
    }
    const locked = (mutants & MUTANT_INVALIDATE_NO_LOCK) === 0;
    if (locked) {
      if (mmuNotifierRangeBlockable(range)) mutexLock(c, F_LOCK);
      else if (!mutexTrylock(c, F_LOCK)) {
        Atomics.add(c, F_INV + IV_FAILED, 1);
        return false;
      }
    }
    if ((mutants & MUTANT_NO_SET_SEQ) === 0) {
      Atomics.store(this.subWords, this.sourceWord(sub), this.seqSource());
      mmuIntervalSetSeq(sub, (mutants & MUTANT_SEQ_NOT_ODD) !== 0 ? (curSeq - 1) | 0 : curSeq);
    }
    driverPoint(POINT_IN_INVALIDATE);
    if ((mutants & MUTANT_INVALIDATE_NOOP) === 0) this.dmirrorDoUpdate(range.start, range.end);
    if (locked) mutexUnlock(c, F_LOCK);
    if (dev.accessSection && (mutants & MUTANT_NO_ACCESS_DRAIN) === 0) dev.accessDrain();
    driverHook(HOOK_AFTER_INVALIDATE);
    return true;
  }

  /** dmirror_do_update: erase pages start>>12 .. end>>12 inclusive (clipped to the space). */
  private dmirrorDoUpdate(start: number, end: number): void {
    const first = Math.floor(start / PAGE_SIZE);
    const last = Math.min(Math.floor(end / PAGE_SIZE), this.mm.npages - 1);
    const erased = mirrorErase(this.mirror, first, last + 1);
    if (erased !== 0) Atomics.add(this.ctl, F_INV + IV_ERASED, erased);
  }

  /** dmirror_snapshot_invalidate: the temporary subscription's op only sets its seq. */
  private snapshotInvalidate(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): boolean {
    const c = this.ctl;
    if (mmuNotifierRangeBlockable(range)) mutexLock(c, F_LOCK);
    else if (!mutexTrylock(c, F_LOCK)) return false;
    Atomics.store(c, F_INV + IV_SNAP_SOURCE, this.seqSource());
    mmuIntervalSetSeq(sub, curSeq);
    mutexUnlock(c, F_LOCK);
    return true;
  }

  // ------------------------------------------------------------------------------------------
  // The range-fault routine

  rangeFault(start: number, end: number, write: boolean): number {
    // A fresh progress record, as each operation gets; read/write/snapshot/migrate return theirs,
    // this one is never handed out, so one reused object (reset) serves every call.
    const res = this.faultScratch;
    res.ret = 0;
    res.cpages = 0;
    res.faults = 0;
    res.retries = 0;
    this.cur = res;
    return this.dmirrorFault(start, end, write);
  }

  /**
   * dmirror_fault: from `start` to `end` in chunks of at most 64 pages (from `start`, not
   * aligned; never across a region's subscription), each through dmirrorRangeFault; stops at the
   * first chunk error.
   */
  private dmirrorFault(start: number, end: number, write: boolean): number {
    // test_hmm returns 0 here when mmget_not_zero fails (and its callers loop); hmmsim: -EINVAL.
    if (this.mm.users <= 0) return -EINVAL;
    const range = this.range;
    range.defaultFlags = HMM_PFN_REQ_FAULT_HI | (write ? HMM_PFN_REQ_WRITE_HI : 0);
    range.pfnFlagsMask = 0;
    for (let addr = start; addr < end; ) {
      let next = Math.min(end, addr + DMIRROR_CHUNK_PAGES * PAGE_SIZE);
      if (this.subs.length > 1) {
        const regionEnd =
          (Math.floor(addr / PAGE_SIZE / this.regionPages) + 1) * this.regionPages * PAGE_SIZE;
        if (next > regionEnd) next = regionEnd;
      }
      range.notifier = this.subFor(addr / PAGE_SIZE);
      range.start = addr;
      range.end = next;
      const ret = this.dmirrorRangeFault(range, write);
      if (ret !== 0) return ret;
      addr = next;
    }
    return 0;
  }

  /**
   * dmirror_range_fault: the documented pattern (Documentation/vm/hmm.rst) under a deadline of
   * HMM_RANGE_DEFAULT_TIMEOUT from the chunk's start, checked at the top of each attempt.
   * Every return to read_begin counts as a retry, and as a retry by the source (SRC_*) of the
   * subscription's last seq bump: the process, another device's fault path or this file's own
   * (a write fault that COWs a zero page it read-faulted earlier collides with itself).
   */
  private dmirrorRangeFault(range: HmmRange, write: boolean): number {
    const mutants = injection.mutants; // read once per operation
    const skipRetry = (mutants & (MUTANT_SKIP_READ_RETRY | MUTANT_RETRY_OUTSIDE_LOCK)) !== 0;
    const mm = this.mm;
    const sub = range.notifier;
    const c = this.ctl;
    const deadline = driverNow() + HMM_RANGE_DEFAULT_TIMEOUT;
    for (let attempt = 0; ; attempt++) {
      // time_after(jiffies, timeout). The first attempt takes the clock reading that set the
      // deadline (the kernel's two jiffies reads, back to back, are as good as one): it cannot
      // have passed, so the clock is read once per attempt.
      if (attempt > 0) {
        if (driverNow() > deadline) {
          this.stat(ST_TIMEOUTS);
          return -EBUSY;
        }
        this.cur.retries++;
      }
      range.notifierSeq = mmuIntervalReadBegin(sub);
      if (mmuNotifierStats.lastReadBeginSlept) this.stat(ST_BEGIN_SLEEPS);
      driverPoint(POINT_AFTER_READ_BEGIN);
      mm.mmapReadLock();
      // Invalidations this call issues (handle_mm_fault: a COW, migrate_to_ram) are ours.
      const prevFault = faultingFileId;
      faultingFileId = this.id;
      let ret: number;
      try {
        ret = hmmRangeFault(range);
      } finally {
        faultingFileId = prevFault;
      }
      mm.mmapReadUnlock();
      this.stat(ST_HMM_CALLS);
      if (ret !== 0) {
        if (ret === -EBUSY) {
          this.stat(ST_HMM_BUSY);
          this.countRetryCause(sub);
          continue;
        }
        return ret;
      }
      this.recordGenerations(range, mutants, write);
      driverHook(HOOK_AFTER_HMM_RANGE_FAULT);
      // MUTANT retry-outside-lock: the authoritative check made before the lock, so an
      // invalidation between it and the lock goes unseen.
      if ((mutants & MUTANT_RETRY_OUTSIDE_LOCK) !== 0 && mmuIntervalReadRetry(sub, range.notifierSeq)) {
        this.stat(ST_READ_RETRY);
        this.countRetryCause(sub);
        continue;
      }
      driverPoint(POINT_BEFORE_USER_LOCK);
      mutexLock(c, F_LOCK);
      if (!skipRetry && mmuIntervalReadRetry(sub, range.notifierSeq)) {
        mutexUnlock(c, F_LOCK);
        this.stat(ST_READ_RETRY);
        this.countRetryCause(sub);
        continue;
      }
      break;
    }
    driverPoint(POINT_BEFORE_PROGRAM);
    const ret = this.dmirrorDoFault(range, write);
    mutexUnlock(c, F_LOCK);
    return ret;
  }

  /**
   * The generation of each page's frame right after the walk, recorded in the mirror with the
   * entry (oracle #1): a frame freed after the walk and before the install is then caught at the
   * first access, which recording at install time would miss.
   */
  private recordGenerations(range: HmmRange, mutants: number, write: boolean): void {
    const n = (range.end - range.start) / PAGE_SIZE;
    const pfns = this.pfns;
    const gen = this.phys.frames.gen;
    const g = this.gens;
    const keep = this.keep;
    const m = this.mirror;
    const first = range.start / PAGE_SIZE;
    const check = oracleSwitch.enabled; // oracles off (scenario `oracles: false`): nothing reads them
    // A page whose mirror entry already holds the entry this walk would install (mirrored again,
    // unchanged) keeps the entry and the generation recorded with it. Its frame cannot have been
    // freed since: the free's invalidation would have erased the entry, and an erase after this
    // plain read fails read_retry (the seq moves first). The older generation also makes the
    // oracle check a longer stretch. With a mutant on (an invalidate op may skip the erase or the
    // lock) nothing is kept.
    const keepSame = mutants === 0;
    // dmirror_do_fault's -EFAULT test, also made here: a chunk with every page kept and none
    // failing it needs no install pass under the lock.
    const mask = HMM_PFN_VALID_HI | HMM_PFN_ERROR_HI | (write ? HMM_PFN_WRITE_HI : 0);
    const want = HMM_PFN_VALID_HI | (write ? HMM_PFN_WRITE_HI : 0);
    let kept = 0;
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const hi = pfns[2 * i + 1]!;
      const pfn = pfns[2 * i]!;
      const valid = (hi & HMM_PFN_VALID_HI) !== 0;
      if ((hi & mask) !== want) bad = 1;
      const k =
        keepSame && valid && m[2 * (first + i)] === mirrorEntryWord(pfn, (hi & HMM_PFN_WRITE_HI) !== 0);
      if (k) {
        keep[i] = 1;
        kept++;
      } else {
        keep[i] = 0;
        if (check) g[i] = valid ? Atomics.load(gen, pfn) : 0;
      }
    }
    this.allKept = kept === n && bad === 0;
  }

  /**
   * dmirror_do_fault, under the update lock: install each page's frame, writable iff the output
   * has WRITE. Quirk (b): a write request that got VALID without WRITE (the device's own
   * read-only private page) fails with -EFAULT, entries stored before it stay.
   */
  private dmirrorDoFault(range: HmmRange, write: boolean): number {
    const n = (range.end - range.start) / PAGE_SIZE;
    if (this.allKept) {
      // Every entry already as the walk found it (recordGenerations; an erase since would have
      // failed read_retry): nothing to store.
      this.stat(ST_PAGES_FAULTED, n);
      return 0;
    }
    const m = this.mirror;
    const pfns = this.pfns;
    const g = this.gens;
    const keep = this.keep;
    const gen = this.phys.frames.gen;
    const check = oracleSwitch.enabled;
    const first = range.start / PAGE_SIZE;
    // One test per page for both -EFAULTs: VALID and not ERROR (the WARN_ON), and for a write
    // also WRITE.
    const mask = HMM_PFN_VALID_HI | HMM_PFN_ERROR_HI | (write ? HMM_PFN_WRITE_HI : 0);
    const want = HMM_PFN_VALID_HI | (write ? HMM_PFN_WRITE_HI : 0);
    for (let i = 0; i < n; i++) {
      const hi = pfns[2 * i + 1]!;
      if ((hi & mask) !== want) return -EFAULT;
      const page = first + i;
      const pfn = pfns[2 * i]!;
      const wr = (hi & HMM_PFN_WRITE_HI) !== 0;
      // Kept (see recordGenerations): the two Atomics stores (~10 ns each) would change nothing
      // any thread can see. Plain reads suffice under the update lock, which every writer of
      // mirror entries holds (see mirrorErase).
      if (keep[i] === 1) {
        if (m[2 * page] === mirrorEntryWord(pfn, wr)) continue;
        // changed since the walk (cannot happen with a correct invalidate op): record now
        g[i] = check ? Atomics.load(gen, pfn) : 0;
      }
      mirrorInstall(m, page, pfn, wr, g[i]!);
    }
    this.stat(ST_PAGES_FAULTED, n);
    return 0;
  }

  // ------------------------------------------------------------------------------------------
  // Device accesses through the mirror

  /**
   * dmirror_do_read / dmirror_do_write from page `first`: copy pages until `end` or the first
   * page with no usable entry (-ENOENT; for a write a read-only entry counts as missing).
   * `this.cur.cpages` counts pages done. Runs under the update lock, or (section model) inside
   * the device's access section.
   */
  private doAccess(first: number, end: number, buf: Int32Array, bufPage0: number, what: number): number {
    const ret = dmirrorAccessPages(
      this.mirror,
      this.phys,
      this.actx,
      this.device.accessSection,
      first,
      end,
      buf,
      bufPage0,
      what,
    );
    const done = dmirrorAccessDone.pages;
    this.cur.cpages += done;
    if (done !== 0) this.stat(ST_ACCESSES, done);
    return ret;
  }

  /** One access pass under the update lock (or the access section). */
  private accessPass(first: number, end: number, buf: Int32Array, bufPage0: number, what: number): number {
    const dev = this.device;
    if (dev.accessSection) {
      dev.accessEnter();
      try {
        return this.doAccess(first, end, buf, bufPage0, what);
      } finally {
        dev.accessExit();
      }
    }
    mutexLock(this.ctl, F_LOCK);
    try {
      return this.doAccess(first, end, buf, bufPage0, what);
    } finally {
      mutexUnlock(this.ctl, F_LOCK);
    }
  }

  /** dmirror_read / dmirror_write: access through the mirror, faulting missing pages. */
  private readWrite(addr: number, npages: number, buf: Int32Array, write: boolean): MirrorOpResult {
    const res = newMirrorOpResult();
    this.cur = res;
    return mirrorReadWrite(this.rw, this.mm, this.phys.W, res, addr, npages, buf, write);
  }

  /** This thread's bounce buffer for reads (dmirror_bounce_init), grown on demand. */
  private bounceFor(npages: number): Int32Array {
    const n = npages * this.phys.W;
    if (this.bounce.length < n) this.bounce = new Int32Array(n);
    return this.bounce;
  }

  read(addr: number, npages: number, out: Int32Array): MirrorOpResult {
    return this.readWrite(addr, npages, out, false);
  }

  write(addr: number, npages: number, src: Int32Array): MirrorOpResult {
    return this.readWrite(addr, npages, src, true);
  }

  // ------------------------------------------------------------------------------------------
  // Snapshot

  /**
   * dmirror_snapshot: in chunks of 64 pages, each with a temporary subscription over exactly the
   * chunk, the retry loop without faulting, bytes built under the lock, the subscription removed.
   * Each finished chunk's bytes are in `out` at once.
   */
  snapshot(addr: number, npages: number, out: Uint8Array): MirrorOpResult {
    const res = newMirrorOpResult();
    this.cur = res;
    res.ret = mirrorCheckArgs(addr, npages);
    if (res.ret !== 0) return res;
    if (out.length < npages) throw new RangeError('snapshot buffer shorter than npages');
    if (this.mm.users <= 0) {
      res.ret = -EINVAL;
      return res;
    }
    const end = addr + npages * PAGE_SIZE;
    for (let a = addr; a < end; ) {
      const next = Math.min(a + DMIRROR_CHUNK_PAGES * PAGE_SIZE, end);
      const ret = this.dmirrorRangeSnapshot(a, next, out, (a - addr) / PAGE_SIZE);
      if (ret !== 0) {
        res.ret = ret;
        return res;
      }
      res.cpages += (next - a) / PAGE_SIZE;
      a = next;
    }
    this.stat(ST_SNAPSHOTS);
    return res;
  }

  /** dmirror_range_snapshot */
  private dmirrorRangeSnapshot(start: number, end: number, out: Uint8Array, outBase: number): number {
    const sub = new MmuIntervalNotifier();
    const ins = mmuIntervalNotifierInsert(sub, this.mm, start, end - start, {
      kind: DMIRROR_SNAPSHOT_OPS_KIND,
      opsId: this.id,
    });
    if (ins !== 0) return ins;
    const range = this.range;
    range.notifier = sub;
    range.start = start;
    range.end = end;
    range.defaultFlags = 0;
    range.pfnFlagsMask = 0;
    const c = this.ctl;
    const mm = this.mm;
    const deadline = driverNow() + HMM_RANGE_DEFAULT_TIMEOUT;
    let ret = 0;
    for (let attempt = 0; ; attempt++) {
      if (driverNow() > deadline) {
        this.stat(ST_TIMEOUTS);
        ret = -EBUSY;
        break;
      }
      if (attempt > 0) this.cur.retries++;
      range.notifierSeq = mmuIntervalReadBegin(sub);
      if (mmuNotifierStats.lastReadBeginSlept) this.stat(ST_BEGIN_SLEEPS);
      driverPoint(POINT_AFTER_READ_BEGIN);
      mm.mmapReadLock();
      const prevFault = faultingFileId;
      faultingFileId = this.id;
      try {
        ret = hmmRangeFault(range);
      } finally {
        faultingFileId = prevFault;
      }
      mm.mmapReadUnlock();
      this.stat(ST_HMM_CALLS);
      if (ret !== 0) {
        if (ret === -EBUSY) {
          this.stat(ST_HMM_BUSY);
          this.stat(ST_RETRY_BY + Atomics.load(c, F_INV + IV_SNAP_SOURCE));
          continue;
        }
        break;
      }
      driverPoint(POINT_BEFORE_USER_LOCK);
      mutexLock(c, F_LOCK);
      if (mmuIntervalReadRetry(sub, range.notifierSeq)) {
        mutexUnlock(c, F_LOCK);
        this.stat(ST_READ_RETRY);
        this.stat(ST_RETRY_BY + Atomics.load(c, F_INV + IV_SNAP_SOURCE));
        continue;
      }
      const n = (end - start) / PAGE_SIZE;
      for (let i = 0; i < n; i++) out[outBase + i] = this.dmirrorMkentry(i);
      mutexUnlock(c, F_LOCK);
      break;
    }
    mmuIntervalNotifierRemove(sub);
    return ret;
  }

  /** dmirror_mkentry: one HMM_DMIRROR_PROT_* byte from page i of the chunk's words. */
  private dmirrorMkentry(i: number): number {
    const hi = this.pfns[2 * i + 1]!;
    if ((hi & HMM_PFN_ERROR_HI) !== 0) return HMM_DMIRROR_PROT_ERROR;
    if ((hi & HMM_PFN_VALID_HI) === 0) return HMM_DMIRROR_PROT_NONE;
    const pfn = this.pfns[2 * i]!;
    const order = (hi >>> HMM_PFN_ORDER_SHIFT_HI) & 0x1f;
    const st = this.phys.frameState(pfn);
    let perm: number;
    if ((st & FR_DEVICE_PRIVATE) !== 0) {
      perm =
        frOwner(st) === this.device.owner
          ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL
          : HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
    } else if (pfn === ZERO_PFN && order === 0) perm = HMM_DMIRROR_PROT_ZERO;
    else perm = HMM_DMIRROR_PROT_NONE;
    perm |= (hi & HMM_PFN_WRITE_HI) !== 0 ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ;
    if (order === 9) perm |= HMM_DMIRROR_PROT_PMD;
    else if (order === 18) perm |= HMM_DMIRROR_PROT_PUD;
    return perm;
  }

  // ------------------------------------------------------------------------------------------
  // Migrate

  /**
   * dmirror_migrate: under the mmap read lock, chunks of at most 64 pages that never cross a VMA
   * end, each migrated to device memory and installed in the mirror; then the whole range read
   * back through the mirror (-ENOENT if any page has no entry). `faults` stays 0.
   */
  migrate(addr: number, npages: number, out: Int32Array): MirrorOpResult {
    const res = newMirrorOpResult();
    this.cur = res;
    res.ret = mirrorCheckArgs(addr, npages);
    if (res.ret !== 0) return res;
    if (out.length < npages * this.phys.W) throw new RangeError('buffer shorter than npages * W words');
    if (this.mm.users <= 0) {
      res.ret = -EINVAL;
      return res;
    }
    const end = addr + npages * PAGE_SIZE;
    const mm = this.mm;
    mm.mmapReadLock();
    // The migration's invalidations (collect, CLEARs, migrate_to_ram it causes) are ours.
    const prevFault = faultingFileId;
    faultingFileId = this.id;
    let ret = 0;
    try {
      for (let a = addr; a < end; ) {
        const next = dmirrorMigrateChunk(this, a, end);
        if (next < 0) {
          ret = next;
          break;
        }
        a = next;
      }
    } finally {
      faultingFileId = prevFault;
      mm.mmapReadUnlock();
    }
    if (ret !== 0) {
      res.ret = ret;
      return res;
    }
    // Return the migrated data for verification (dmirror_do_read under the lock).
    const page0 = addr / PAGE_SIZE;
    const b = this.bounceFor(npages);
    res.ret = this.accessPass(page0, page0 + npages, b, page0, ACCESS_MIGRATE_READBACK);
    if (res.ret === 0) out.set(b.subarray(0, npages * this.phys.W));
    return res;
  }

  /**
   * dmirror_migrate_finalize_and_map, for one page: install the new device frame, writable if
   * the migration made the CPU entry writable. Called by the migration helper with the lock held.
   */
  installMigrated(page: number, pfn: number, writable: boolean): void {
    mirrorInstall(this.mirror, page, pfn, writable, Atomics.load(this.phys.frames.gen, pfn));
  }

  /** Erase one entry (migrate_to_ram: the file that migrated the page). Caller holds the lock. */
  eraseEntry(page: number): void {
    if (Atomics.load(this.mirror, 2 * page) !== 0) Atomics.store(this.mirror, 2 * page, 0);
  }

  /** dmirror_fops_mmap (5.10.109): map npages of zeroed normal frames; the address or -errno. */
  mmap(npages: number): number {
    if (!Number.isSafeInteger(npages) || npages <= 0) return -EINVAL;
    return dmirrorMmapPages(this, npages);
  }

  // ------------------------------------------------------------------------------------------
  // Oracle #3 and teardown

  forEachMirrorEntry(visit: (page: number, pfn: number, writable: boolean) => void): void {
    mirrorForEachEntry(this.mirror, this.mm.npages, visit);
  }

  /** The entry of `page`: -1 if absent, else the PFN (bit 30 of the result: writable). For tests. */
  mirrorEntry(page: number): { pfn: number; writable: boolean; gen: number } | null {
    return mirrorEntryAt(this.mirror, page);
  }

  /** dmirror_fops_release: remove the subscription(s); the mirror is dropped. */
  close(): number {
    if (Atomics.exchange(this.ctl, F_META + M_CLOSED, 1) !== 0) return -EINVAL;
    for (const s of this.subs) if (s.slot >= 0) mmuIntervalNotifierRemove(s);
    filesById.delete(this.id);
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Device accesses through a mirror (mirror-common.ts, shared with the v5.4 reference device)

export { dmirrorAccessDone, dmirrorAccessPages };

// ---------------------------------------------------------------------------------------------
// CPU fault on a device page

/** dmirror_devmem_fault: dev_pagemap_ops.migrate_to_ram of `dev` (see dmirror-migrate.ts). */
function dmirrorDevmemFault(dev: DmirrorDevice, mm: MmStruct, address: number, pfn: number): number {
  const fileId = Atomics.load(dev.zdd, pfn);
  return dmirrorMigrateToRam(dev, fileId, fileId !== 0 ? filesById.get(fileId) : undefined, mm, address, pfn);
}

// ---------------------------------------------------------------------------------------------
// The driver object

function createDeviceCtl(opts: DmirrorDeviceOptions, nframes: number): { ctl: Int32Array; zdd: Int32Array } {
  // Owner ids are 7 bits (the frame state's owner field): ids cycle through 1..127, so at most
  // 127 devices may be alive at once. Devices are created on the main thread only.
  const id = nextDeviceId;
  nextDeviceId = nextDeviceId === 127 ? 1 : nextDeviceId + 1;
  const ctl = sharedInt32(D_WORDS);
  Atomics.store(ctl, D_ID, id);
  Atomics.store(ctl, D_FLAGS, (opts.quirkC ? DF_QUIRK_C : 0) | (opts.accessSection ? DF_ACCESS_SECTION : 0));
  Atomics.store(ctl, D_REGION_PAGES, opts.regionPages ?? 0);
  return { ctl, zdd: sharedInt32(nframes) };
}

/** The v5.10 reference driver. `createDevice` takes DmirrorDeviceOptions. */
export interface DmirrorDriver extends MirrorDriver {
  createDevice(env: DmirrorEnv, opts?: DmirrorDeviceOptions): DmirrorDevice;
  attachDevice(env: DmirrorEnv, d: DeviceDescriptor): DmirrorDevice;
}

export const dmirrorDriver: DmirrorDriver = {
  name: DMIRROR_DRIVER_NAME,
  createDevice(env: DmirrorEnv, opts: DmirrorDeviceOptions = {}): DmirrorDevice {
    const { ctl, zdd } = createDeviceCtl(opts, env.phys.nframes);
    return new DmirrorDevice(dmirrorDriver, env, ctl, zdd);
  },
  attachDevice(env: DmirrorEnv, d: DeviceDescriptor): DmirrorDevice {
    const have = devicesById.get(d.id);
    if (have !== undefined && have.ctl.buffer === d.ctl) return have;
    return new DmirrorDevice(
      dmirrorDriver,
      env,
      new Int32Array(d.ctl as SharedArrayBuffer),
      new Int32Array(d.zdd as SharedArrayBuffer),
    );
  },
};

/** Convenience: the test driver's module init makes two devices. */
export function dmirrorCreateDevices(
  env: DmirrorEnv,
  n = 2,
  opts: DmirrorDeviceOptions = {},
): DmirrorDevice[] {
  const out: DmirrorDevice[] = [];
  for (let i = 0; i < n; i++) out.push(dmirrorDriver.createDevice(env, opts));
  return out;
}
