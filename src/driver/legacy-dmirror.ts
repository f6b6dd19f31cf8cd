/**
 * The v5.4 reference mirror device (spec/legacy-v5.4.md, "the documented driver pattern"): a
 * driver of the same interface as the v5.10 `dmirror` (types.ts), built on the legacy API of
 * src/legacy: one `hmm_mirror` per open file, whose `sync_cpu_device_pagetables` op tears the
 * file's mirror down under the file's update lock, and a range-fault routine that runs
 *
 *   register the range; wait_until_valid (result ignored)
 *   again: mmap read lock; hmm_range_fault; on -EBUSY: unlock, wait_until_valid, goto again
 *          take the update lock; if !hmm_range_valid: unlock both, goto again
 *          program the mirror from pfns; unregister the range; unlock both
 *
 * The mirror has dmirror's layout and device accesses go through dmirror's access loop (the same
 * oracle calls): only the protocol differs. The generation of each page's frame is recorded right
 * after the walk, as dmirror does, so the ABA race on `valid` shows up as a stale access.
 *
 * Choices: the range's encoding is driver-defined as in v5.4; this device uses flags VALID = bit 0,
 * WRITE = bit 1, DEVICE_PRIVATE = bit 2, values ERROR = ~0, NONE = 0, SPECIAL = ~1, pfn_shift 12
 * (PAGE_SHIFT, like amdgpu and nouveau), and requests DEVICE_PRIVATE so another device's private
 * pages are faulted back to RAM (it has no device memory of its own: no migrate, no mmap). It
 * chunks like dmirror (64 pages) and bounds each chunk by HMM_RANGE_DEFAULT_TIMEOUT on the
 * driver clock (-EBUSY). Its sync op erases [start, end) exactly (not dmirror's inclusive end).
 */
import { threadId } from 'node:worker_threads';
import type { AccessContext, ViolationLog } from '../checker/oracles.js';
import {
  POINT_AFTER_READ_BEGIN,
  POINT_BEFORE_PROGRAM,
  POINT_BEFORE_USER_LOCK,
  POINT_IN_INVALIDATE,
} from '../checker/points.js';
import {
  attachHmm,
  HMM_PFN_WRITE,
  type HmmMirror,
  HmmMirror as HmmMirrorClass,
  type HmmMirrorOps,
  type HmmRange54,
  hmm54Stats,
  hmmDeviceEntryToPfnAt,
  hmmMirrorRegister,
  hmmMirrorUnregister,
  hmmRange54HasFlag,
  hmmRange54Init,
  hmmRangeFault,
  hmmRangeRegister,
  hmmRangeUnregister,
  hmmRangeValid,
  hmmRangeWaitUntilValid,
  registerHmmMirrorOpsKind,
} from '../legacy/index.js';
import { PAGE_SIZE } from '../mm/layout.js';
import type { MmStruct } from '../mm/mm.js';
import {
  EAGAIN,
  EBUSY,
  EFAULT,
  EINVAL,
  type MmuNotifierRange,
  mmuNotifierRangeBlockable,
} from '../mm/mmu-notifier.js';
import type { PhysMem } from '../mm/physmem.js';
import { LINE_WORDS, sharedInt32 } from '../shm/layout.js';
import { mutexLock, mutexTrylock, mutexUnlock } from '../shm/mutex.js';
import { DMIRROR_CHUNK_PAGES, HMM_RANGE_DEFAULT_TIMEOUT } from './dmirror.js';
import {
  dmirrorAccessDone,
  dmirrorAccessPages,
  F_INV,
  F_LOCK,
  F_META,
  F_STATS,
  F_WORDS,
  type FileStatsLayout,
  M_CLOSED,
  M_DEVICE,
  M_ID,
  M_MM,
  type MirrorRwSteps,
  mirrorEntryAt,
  mirrorErase,
  mirrorForEachEntry,
  mirrorInstall,
  mirrorReadWrite,
  newMirrorOpResult,
  readFileStats,
} from './mirror-common.js';
import {
  driverHook,
  driverNow,
  driverPoint,
  HOOK_AFTER_HMM_RANGE_FAULT,
  HOOK_AFTER_INVALIDATE,
} from './sched.js';
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

export const LEGACY_DMIRROR_DRIVER_NAME = 'legacy-dmirror';
/** The kind of the files' hmm_mirror ops (resolvable in every thread that attached the file). */
export const LEGACY_DMIRROR_OPS_KIND = 'hmmsim.legacy-dmirror';

/** The device's range encoding (see the file header). */
export const LEGACY_DMIRROR_FLAGS = [1n << 0n, 1n << 1n, 1n << 2n] as const;
export const LEGACY_DMIRROR_VALUES = [0xffffffffffffffffn, 0n, 0xfffffffffffffffen] as const;
export const LEGACY_DMIRROR_PFN_SHIFT = 12;
/** default_flags (low word): VALID | DEVICE_PRIVATE, + WRITE for a write */
const DEFAULT_FLAGS_READ = Number(LEGACY_DMIRROR_FLAGS[0] | LEGACY_DMIRROR_FLAGS[2]);
const DEFAULT_FLAGS_WRITE = Number(
  LEGACY_DMIRROR_FLAGS[0] | LEGACY_DMIRROR_FLAGS[1] | LEGACY_DMIRROR_FLAGS[2],
);

// ---- device ctl ----
const D_ID = 0;
const D_NEXT_FILE = 1;
const D_WORDS = LINE_WORDS;

// ---- file ctl (mirror-common.ts: the update lock, then stats, invalidate side, meta lines) ----
const ST_HMM_CALLS = 0;
const ST_HMM_BUSY = 1;
const ST_INVALID_UNDER_LOCK = 2;
const ST_WAITS_INVALID = 3;
const ST_FAULTS = 4;
const ST_PAGES_FAULTED = 5;
const ST_ACCESSES = 6;
const ST_TIMEOUTS = 7;
const ST_WAIT_US = 8;
const ST_ZERO_EFAULT = 9;
const IV_CALLS = 0;
const IV_FAILED = 1;
const IV_ERASED = 2;
const IV_RELEASED = 3;
const M_MIRROR_SLOT = 4;

const STATS_LAYOUT: FileStatsLayout = {
  hmmCalls: F_STATS + ST_HMM_CALLS,
  hmmBusy: F_STATS + ST_HMM_BUSY,
  // v5.4 has no read_retry: the collision is `!hmm_range_valid` under the update lock
  readRetryCollisions: F_STATS + ST_INVALID_UNDER_LOCK,
  // and no read_begin: waits that found the range invalid
  readBeginSleeps: F_STATS + ST_WAITS_INVALID,
  faults: F_STATS + ST_FAULTS,
  pagesFaulted: F_STATS + ST_PAGES_FAULTED,
  snapshots: -1,
  accesses: F_STATS + ST_ACCESSES,
  timeouts: F_STATS + ST_TIMEOUTS,
  invalidations: F_INV + IV_CALLS,
  invalidationsSkipped: -1,
  invalidationsFailed: F_INV + IV_FAILED,
  entriesErased: F_INV + IV_ERASED,
  waitUs: F_STATS + ST_WAIT_US,
  zeroPageEfaults: F_STATS + ST_ZERO_EFAULT,
};

export interface LegacyDmirrorEnv extends DriverEnv {
  log?: ViolationLog | null;
}

// ---- thread-local registries ----
const devicesById = new Map<number, LegacyDmirrorDevice>();
const filesById = new Map<number, LegacyDmirrorFile>();
let nextDeviceId = 1001;
let kindRegistered = false;

function resolveFileOps(opsId: number): HmmMirrorOps {
  const f = filesById.get(opsId);
  if (f === undefined) {
    throw new Error(
      `legacy-dmirror file ${opsId} is not attached in thread ${threadId} (attachFile it first)`,
    );
  }
  return f.ops;
}

function registerKind(): void {
  if (kindRegistered) return;
  kindRegistered = true;
  registerHmmMirrorOpsKind(LEGACY_DMIRROR_OPS_KIND, resolveFileOps);
}

export class LegacyDmirrorDevice implements MirrorDevice {
  readonly id: number;
  readonly owner: number;
  readonly driver: MirrorDriver;
  readonly phys: PhysMem;
  readonly ctl: Int32Array;
  log: ViolationLog | null;

  constructor(driver: MirrorDriver, env: LegacyDmirrorEnv, ctl: Int32Array) {
    this.driver = driver;
    this.phys = env.phys;
    this.log = env.log ?? null;
    this.ctl = ctl;
    this.id = Atomics.load(ctl, D_ID);
    this.owner = this.id;
    registerKind();
    devicesById.set(this.id, this);
  }

  descriptor(): DeviceDescriptor {
    return { driver: LEGACY_DMIRROR_DRIVER_NAME, id: this.id, ctl: this.ctl.buffer as SharedArrayBuffer };
  }

  /** Open a file: a new mirror registered on the mm's struct hmm (mmap lock held for write). */
  open(mm: MmStruct): LegacyDmirrorFile | number {
    if (mm.users <= 0) return -EINVAL;
    const n = Atomics.add(this.ctl, D_NEXT_FILE, 1) + 1;
    // ids of the two drivers must not collide in reports: the legacy ones have bit 30 set
    const id = (1 << 30) | (this.id << 16) | n;
    const ctl = sharedInt32(F_WORDS);
    Atomics.store(ctl, F_META + M_ID, id);
    Atomics.store(ctl, F_META + M_DEVICE, this.id);
    Atomics.store(ctl, F_META + M_MM, mm.id);
    const mirror = new HmmMirrorClass({ kind: LEGACY_DMIRROR_OPS_KIND, opsId: id });
    const f = new LegacyDmirrorFile(this, mm, ctl, sharedInt32(2 * mm.npages), mirror);
    mm.mmapWriteLock();
    let ret: number;
    try {
      ret = hmmMirrorRegister(mirror, mm);
    } finally {
      mm.mmapWriteUnlock();
    }
    if (ret !== 0) {
      filesById.delete(id);
      return ret;
    }
    Atomics.store(ctl, F_META + M_MIRROR_SLOT, mirror.slot);
    return f;
  }

  attachFile(d: FileDescriptor, mm: MmStruct): LegacyDmirrorFile {
    const have = filesById.get(d.id);
    if (have !== undefined) return have;
    if (d.mmId !== mm.id)
      throw new Error(`legacy-dmirror file ${d.id} belongs to mm ${d.mmId}, not ${mm.id}`);
    const hmm = attachHmm(mm, { mmId: mm.id, words: d.hmm as SharedArrayBuffer });
    const ctl = new Int32Array(d.ctl as SharedArrayBuffer);
    const mirror = new HmmMirrorClass({ kind: LEGACY_DMIRROR_OPS_KIND, opsId: d.id });
    mirror.hmm = hmm;
    mirror.slot = Atomics.load(ctl, F_META + M_MIRROR_SLOT);
    return new LegacyDmirrorFile(this, mm, ctl, new Int32Array(d.mirror as SharedArrayBuffer), mirror);
  }
}

export class LegacyDmirrorFile implements MirrorFile {
  readonly id: number;
  readonly device: LegacyDmirrorDevice;
  readonly deviceId: number;
  readonly mm: MmStruct;
  readonly phys: PhysMem;
  readonly ctl: Int32Array;
  readonly mirror: Int32Array;
  readonly hmmMirror: HmmMirror;
  /** the hmm_mirror_ops of this file, as resolved in this thread */
  readonly ops: HmmMirrorOps;
  private readonly range: HmmRange54;
  private readonly gens = new Int32Array(DMIRROR_CHUNK_PAGES);
  private readonly actx: AccessContext;
  private cur: MirrorOpResult = newMirrorOpResult();
  private bounce = new Int32Array(0);
  /** the read/write loop's steps (mirror-common.ts) */
  private readonly rw: MirrorRwSteps;

  constructor(device: LegacyDmirrorDevice, mm: MmStruct, ctl: Int32Array, mirror: Int32Array, hm: HmmMirror) {
    this.device = device;
    this.deviceId = device.id;
    this.mm = mm;
    this.phys = device.phys;
    this.ctl = ctl;
    this.mirror = mirror;
    this.hmmMirror = hm;
    this.id = Atomics.load(ctl, F_META + M_ID);
    this.ops = {
      syncCpuDevicePagetables: (_m, update) => this.syncCpuDevicePagetables(update),
      release: () => this.releaseOp(),
    };
    this.range = hmmRange54Init({
      start: 0,
      end: DMIRROR_CHUNK_PAGES * PAGE_SIZE,
      flags: LEGACY_DMIRROR_FLAGS,
      values: LEGACY_DMIRROR_VALUES,
      pfnShift: LEGACY_DMIRROR_PFN_SHIFT,
    });
    this.actx = { log: device.log, phys: device.phys, device: device.id, file: this.id, mm: mm.id };
    this.rw = {
      usable: () => this.mm.users > 0 && Atomics.load(this.ctl, F_META + M_CLOSED) === 0,
      bounceFor: (npages) => {
        const n = npages * this.phys.W;
        if (this.bounce.length < n) this.bounce = new Int32Array(n);
        return this.bounce;
      },
      accessPass: (first, end, buf, bufPage0, what) => this.accessPass(first, end, buf, bufPage0, what),
      fault: (start, end, write) => this.legacyFault(start, end, write),
      faulted: () => this.stat(ST_FAULTS),
    };
    filesById.set(this.id, this);
  }

  descriptor(): FileDescriptor {
    const hmm = this.hmmMirror.hmm;
    if (hmm === null) throw new Error(`legacy-dmirror file ${this.id}: its mirror is not registered`);
    return {
      driver: LEGACY_DMIRROR_DRIVER_NAME,
      id: this.id,
      deviceId: this.deviceId,
      mmId: this.mm.id,
      ctl: this.ctl.buffer as SharedArrayBuffer,
      mirror: this.mirror.buffer as SharedArrayBuffer,
      hmm: hmm.w.buffer as SharedArrayBuffer,
    };
  }

  private stat(i: number, n = 1): void {
    Atomics.add(this.ctl, F_STATS + i, n);
  }

  stats(): FileStats {
    return readFileStats(this.ctl, STATS_LAYOUT);
  }

  lock(): void {
    mutexLock(this.ctl, F_LOCK);
  }
  unlock(): void {
    mutexUnlock(this.ctl, F_LOCK);
  }
  lockHeld(): boolean {
    return Atomics.load(this.ctl, F_LOCK) !== 0;
  }

  // ------------------------------------------------------------------------------------------
  // The mirror ops

  /**
   * sync_cpu_device_pagetables (a v5.4 driver's, e.g. nouveau_svm's): take the update lock (only
   * try it if not blockable: -EAGAIN), erase the mirror entries of [start, end), unlock, 0.
   */
  syncCpuDevicePagetables(update: MmuNotifierRange): number {
    const c = this.ctl;
    Atomics.add(c, F_INV + IV_CALLS, 1);
    if (mmuNotifierRangeBlockable(update)) mutexLock(c, F_LOCK);
    else if (!mutexTrylock(c, F_LOCK)) {
      Atomics.add(c, F_INV + IV_FAILED, 1);
      return -EAGAIN;
    }
    driverPoint(POINT_IN_INVALIDATE);
    this.erase(update.start, update.end);
    mutexUnlock(c, F_LOCK);
    driverHook(HOOK_AFTER_INVALIDATE);
    return 0;
  }

  /** release: the mm goes away; drop every mirror entry. */
  private releaseOp(): void {
    Atomics.add(this.ctl, F_INV + IV_RELEASED, 1);
    mutexLock(this.ctl, F_LOCK);
    this.erase(0, this.mm.size);
    mutexUnlock(this.ctl, F_LOCK);
  }

  /** Erase pages [start, end) (clipped); caller holds the update lock. */
  private erase(start: number, end: number): void {
    const first = Math.floor(start / PAGE_SIZE);
    const last = Math.min(Math.ceil(end / PAGE_SIZE), this.mm.npages);
    const erased = mirrorErase(this.mirror, first, last);
    if (erased !== 0) Atomics.add(this.ctl, F_INV + IV_ERASED, erased);
  }

  /** MirrorFile.invalidate: the sync op; false only when a non-blockable range found the lock taken. */
  invalidate(range: MmuNotifierRange, _curSeq: number): boolean {
    return this.syncCpuDevicePagetables(range) === 0;
  }

  // ------------------------------------------------------------------------------------------
  // The range-fault routine

  rangeFault(start: number, end: number, write: boolean): number {
    this.cur = newMirrorOpResult();
    return this.legacyFault(start, end, write);
  }

  private legacyFault(start: number, end: number, write: boolean): number {
    if (this.mm.users <= 0) return -EINVAL;
    for (let a = start; a < end; ) {
      const next = Math.min(end, a + DMIRROR_CHUNK_PAGES * PAGE_SIZE);
      const ret = this.legacyRangeFault(a, next, write);
      if (ret !== 0) return ret;
      a = next;
    }
    return 0;
  }

  /** The documented v5.4 pattern for one chunk (see the file header). */
  private legacyRangeFault(start: number, end: number, write: boolean): number {
    const range = this.range;
    const mm = this.mm;
    const c = this.ctl;
    range.start = start;
    range.end = end;
    range.defaultFlags[0] = write ? DEFAULT_FLAGS_WRITE : DEFAULT_FLAGS_READ;
    range.defaultFlags[1] = 0;
    range.pfnFlagsMask[0] = 0;
    range.pfnFlagsMask[1] = 0;
    const reg = hmmRangeRegister(range, this.hmmMirror);
    if (reg !== 0) return reg;
    const deadline = driverNow() + HMM_RANGE_DEFAULT_TIMEOUT;
    this.waitUntilValid();
    let ret = 0;
    for (let attempt = 0; ; attempt++) {
      if (driverNow() > deadline) {
        this.stat(ST_TIMEOUTS);
        ret = -EBUSY;
        break;
      }
      if (attempt > 0) this.cur.retries++;
      driverPoint(POINT_AFTER_READ_BEGIN);
      mm.mmapReadLock();
      const r = hmmRangeFault(range, 0);
      this.stat(ST_HMM_CALLS);
      if (r < 0) {
        mm.mmapReadUnlock();
        if (r === -EBUSY) {
          this.stat(ST_HMM_BUSY);
          this.waitUntilValid();
          continue;
        }
        // v5.4 fails on the shared zero page (a special PTE): counted apart
        if (r === -EFAULT && hmm54Stats.specialPte !== 0) this.stat(ST_ZERO_EFAULT);
        ret = r;
        break;
      }
      this.recordGenerations();
      driverHook(HOOK_AFTER_HMM_RANGE_FAULT);
      driverPoint(POINT_BEFORE_USER_LOCK);
      mutexLock(c, F_LOCK);
      if (!hmmRangeValid(range)) {
        mutexUnlock(c, F_LOCK);
        mm.mmapReadUnlock();
        this.stat(ST_INVALID_UNDER_LOCK);
        continue;
      }
      driverPoint(POINT_BEFORE_PROGRAM);
      ret = this.program(write);
      hmmRangeUnregister(range);
      mutexUnlock(c, F_LOCK);
      mm.mmapReadUnlock();
      return ret;
    }
    hmmRangeUnregister(range);
    return ret;
  }

  /** hmm_range_wait_until_valid, result ignored as the v5.4 drivers did; counts invalid waits. */
  private waitUntilValid(): void {
    if (hmmRangeValid(this.range)) return;
    this.stat(ST_WAITS_INVALID);
    const t0 = performance.now();
    hmmRangeWaitUntilValid(this.range, HMM_RANGE_DEFAULT_TIMEOUT);
    this.stat(ST_WAIT_US, Math.round((performance.now() - t0) * 1000));
  }

  /** Each page's frame generation right after the walk (oracle #1, as dmirror does). */
  private recordGenerations(): void {
    const range = this.range;
    const n = (range.end - range.start) / PAGE_SIZE;
    const gen = this.phys.frames.gen;
    for (let i = 0; i < n; i++) {
      const pfn = hmmDeviceEntryToPfnAt(range, i);
      this.gens[i] = pfn >= 0 && pfn < gen.length ? Atomics.load(gen, pfn) : 0;
    }
  }

  /**
   * Program the mirror from pfns under the update lock: each page's frame, writable iff the word
   * has flags[WRITE]; a page without a usable entry, or without WRITE on a write, is -EFAULT
   * (entries stored before it stay).
   */
  private program(write: boolean): number {
    const range = this.range;
    const m = this.mirror;
    const first = range.start / PAGE_SIZE;
    const n = (range.end - range.start) / PAGE_SIZE;
    for (let i = 0; i < n; i++) {
      const pfn = hmmDeviceEntryToPfnAt(range, i);
      if (pfn < 0) return -EFAULT;
      const wr = hmmRange54HasFlag(range, i, HMM_PFN_WRITE);
      if (write && !wr) return -EFAULT;
      mirrorInstall(m, first + i, pfn, wr, this.gens[i]!);
    }
    this.stat(ST_PAGES_FAULTED, n);
    return 0;
  }

  // ------------------------------------------------------------------------------------------
  // Device accesses

  private accessPass(first: number, end: number, buf: Int32Array, bufPage0: number, what: number): number {
    mutexLock(this.ctl, F_LOCK);
    try {
      const ret = dmirrorAccessPages(
        this.mirror,
        this.phys,
        this.actx,
        false,
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
    } finally {
      mutexUnlock(this.ctl, F_LOCK);
    }
  }

  private readWrite(addr: number, npages: number, buf: Int32Array, write: boolean): MirrorOpResult {
    const res = newMirrorOpResult();
    this.cur = res;
    return mirrorReadWrite(this.rw, this.mm, this.phys.W, res, addr, npages, buf, write);
  }

  read(addr: number, npages: number, out: Int32Array): MirrorOpResult {
    return this.readWrite(addr, npages, out, false);
  }

  write(addr: number, npages: number, src: Int32Array): MirrorOpResult {
    return this.readWrite(addr, npages, src, true);
  }

  forEachMirrorEntry(visit: (page: number, pfn: number, writable: boolean) => void): void {
    mirrorForEachEntry(this.mirror, this.mm.npages, visit);
  }

  /** The entry of `page`, or null. For tests. */
  mirrorEntry(page: number): { pfn: number; writable: boolean; gen: number } | null {
    return mirrorEntryAt(this.mirror, page);
  }

  /** Teardown: hmm_mirror_unregister; the mirror is dropped. */
  close(): number {
    if (Atomics.exchange(this.ctl, F_META + M_CLOSED, 1) !== 0) return -EINVAL;
    hmmMirrorUnregister(this.hmmMirror);
    filesById.delete(this.id);
    return 0;
  }
}

export interface LegacyDmirrorDriver extends MirrorDriver {
  createDevice(env: LegacyDmirrorEnv): LegacyDmirrorDevice;
  attachDevice(env: LegacyDmirrorEnv, d: DeviceDescriptor): LegacyDmirrorDevice;
}

export const legacyDmirrorDriver: LegacyDmirrorDriver = {
  name: LEGACY_DMIRROR_DRIVER_NAME,
  createDevice(env: LegacyDmirrorEnv): LegacyDmirrorDevice {
    // ids from 1001 on, apart from dmirror's 1..127 in reports (no device-private memory here)
    const id = nextDeviceId++;
    const ctl = sharedInt32(D_WORDS);
    Atomics.store(ctl, D_ID, id);
    return new LegacyDmirrorDevice(legacyDmirrorDriver, env, ctl);
  },
  attachDevice(env: LegacyDmirrorEnv, d: DeviceDescriptor): LegacyDmirrorDevice {
    const have = devicesById.get(d.id);
    if (have !== undefined && have.ctl.buffer === d.ctl) return have;
    return new LegacyDmirrorDevice(legacyDmirrorDriver, env, new Int32Array(d.ctl as SharedArrayBuffer));
  },
};
