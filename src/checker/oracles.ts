/**
 * The oracles of spec/checking.md and the shared violation log they write to.
 *
 * #1 stale access: every device access compares the generation its mirror entry recorded at
 *    install with the frame's current `gen` (`checkDeviceAccess`, called by drivers).
 * #2 lost update: every device write adds 1 to the frame's 16-bit write counter (`noteDeviceWrite`)
 *    and to this thread's tally; `lostUpdateEquation` checks increments + copied = live + discarded
 *    (exact: counter wraps are accounted, see there).
 * #3 mirror coherence: `auditMirror` at a quiescent point.
 * #4 protocol sanity: `protocolSanity` (seqs, locks) at the end of a run.
 *
 * Violations go into a `ViolationLog`: a SharedArrayBuffer of fixed-size records that any thread
 * can append to (the first `capacity` records are kept, later ones only counted) and the main
 * thread decodes with `readViolations`.
 */
import { threadId } from 'node:worker_threads';
import {
  PMD_TYPE_HUGE,
  PMD_TYPE_NONE,
  PMD_TYPE_TABLE,
  PTE_PROTNONE,
  PTE_TYPE_DEVICE_PRIVATE,
  PTE_TYPE_MASK,
  PTE_TYPE_PRESENT,
  PTE_WRITE,
  PTRS_PER_PTE,
  ptePayload,
} from '../mm/layout.js';
import type { MmStruct } from '../mm/mm.js';
import { MMU_NOTIFY_EVENT_NAMES } from '../mm/mmu-notifier.js';
import { FREE_EVENT_MIGRATE_DONE, FREE_EVENT_OTHER, type FreeEvent, type PhysMem } from '../mm/physmem.js';
import { LINE_WORDS, sharedInt32 } from '../shm/layout.js';

// ---------------------------------------------------------------------------------------------
// Violation kinds and details

/** The free log's event code as a name: the mmu_notifier events, then physmem's own codes. */
function freeEventName(code: number): string {
  if (code < 0) return 'unknown';
  if (code === FREE_EVENT_OTHER) return 'a fault path (no notifier event)';
  if (code === FREE_EVENT_MIGRATE_DONE) return 'MIGRATE_DONE (the old frame of a completed migration)';
  return MMU_NOTIFY_EVENT_NAMES[code] ?? String(code);
}

export const V_STALE_ACCESS = 1;
export const V_LOST_UPDATE = 2;
export const V_MIRROR_INCOHERENT = 3;
export const V_PROTOCOL = 4;
export const VIOLATION_NAMES = ['', 'stale-access', 'lost-update', 'mirror-incoherent', 'protocol'] as const;

/** What the device was doing (stale access detail). */
export const ACCESS_READ = 1;
export const ACCESS_WRITE = 2;
export const ACCESS_MIGRATE_READBACK = 3;
export const ACCESS_INSTALL = 4;
export const ACCESS_NAMES = ['', 'read', 'write', 'migrate-readback', 'install'] as const;

/** Mirror-coherence detail. */
export const INCOH_NO_CPU_ENTRY = 1; // the CPU maps nothing (or an inaccessible entry) there
export const INCOH_OTHER_FRAME = 2; // the CPU maps a different frame
export const INCOH_WRITABLE = 3; // the mirror is writable, the CPU entry is not
export const INCOH_NAMES = ['', 'no-cpu-entry', 'other-frame', 'writable'] as const;

/** Protocol-sanity detail. */
export const PROTO_MM_SEQ_ODD = 1; // the mm seq is odd with no invalidation open
export const PROTO_SUB_SEQ_EVEN = 2; // a subscription seq is even
export const PROTO_LOCK_HELD = 3; // a lock is still held at the end of a run
export const PROTO_OPEN_INVALIDATIONS = 4; // active_invalidate_ranges is not 0 at the end
export const PROTO_NAMES = ['', 'mm-seq-odd', 'sub-seq-even', 'lock-held', 'open-invalidations'] as const;

// ---------------------------------------------------------------------------------------------
// The log. Header on its own line: [0] next slot, [1] capacity, [2] total reported.
// Each record is one cache line of 16 words:
const R_STATE = 0; // 0 empty, 1 being written, 2 ready
const R_KIND = 1;
const R_DETAIL = 2;
const R_DEVICE = 3;
const R_FILE = 4;
const R_MM = 5;
const R_PAGE = 6; // address >> PAGE_SHIFT
const R_PFN = 7;
const R_GEN_RECORDED = 8;
const R_GEN_NOW = 9;
const R_FREE_EVENT = 10; // the mmu_notifier event that freed the frame, -1 unknown
const R_FREE_MM = 11;
const R_FREE_PAGE = 12;
const R_EXTRA = 13; // detail-specific (writable bits, the CPU pfn, a seq ...)
const R_THREAD = 14;
const R_SERIAL = 15; // order of reporting
const RECORD_WORDS = LINE_WORDS;
const H_NEXT = 0;
const H_CAPACITY = 1;
const H_TOTAL = 2;

export interface ViolationLogDescriptor {
  words: SharedArrayBuffer;
}

export class ViolationLog {
  readonly words: Int32Array;
  readonly capacity: number;
  constructor(d: ViolationLogDescriptor) {
    this.words = new Int32Array(d.words);
    this.capacity = Atomics.load(this.words, H_CAPACITY);
  }
  descriptor(): ViolationLogDescriptor {
    return { words: this.words.buffer as SharedArrayBuffer };
  }
  /** How many violations were reported (kept or not). */
  get total(): number {
    return Atomics.load(this.words, H_TOTAL);
  }
  /** Forget everything (between runs; no reporter may be running). */
  reset(): void {
    const w = this.words;
    for (let i = LINE_WORDS; i < w.length; i++) Atomics.store(w, i, 0);
    Atomics.store(w, H_NEXT, 0);
    Atomics.store(w, H_TOTAL, 0);
  }
}

export function createViolationLog(capacity = 256): ViolationLog {
  const w = sharedInt32(LINE_WORDS + capacity * RECORD_WORDS);
  Atomics.store(w, H_CAPACITY, capacity);
  return new ViolationLog({ words: w.buffer as SharedArrayBuffer });
}

export function attachViolationLog(d: ViolationLogDescriptor): ViolationLog {
  return new ViolationLog(d);
}

/** The fields of one violation (numbers only: -1 where not applicable). */
export interface ViolationFields {
  kind: number;
  detail: number;
  device: number;
  file: number;
  mm: number;
  page: number;
  pfn: number;
  genRecorded: number;
  genNow: number;
  freeEvent: number;
  freeMm: number;
  freePage: number;
  extra: number;
}

/** Append a record; returns false when the log is full (the violation is still counted). */
export function recordViolation(log: ViolationLog, f: ViolationFields): boolean {
  const w = log.words;
  const serial = Atomics.add(w, H_TOTAL, 1);
  const slot = Atomics.add(w, H_NEXT, 1);
  if (slot >= log.capacity) return false;
  const b = LINE_WORDS + slot * RECORD_WORDS;
  Atomics.store(w, b + R_STATE, 1);
  Atomics.store(w, b + R_KIND, f.kind);
  Atomics.store(w, b + R_DETAIL, f.detail);
  Atomics.store(w, b + R_DEVICE, f.device);
  Atomics.store(w, b + R_FILE, f.file);
  Atomics.store(w, b + R_MM, f.mm);
  Atomics.store(w, b + R_PAGE, f.page);
  Atomics.store(w, b + R_PFN, f.pfn);
  Atomics.store(w, b + R_GEN_RECORDED, f.genRecorded);
  Atomics.store(w, b + R_GEN_NOW, f.genNow);
  Atomics.store(w, b + R_FREE_EVENT, f.freeEvent);
  Atomics.store(w, b + R_FREE_MM, f.freeMm);
  Atomics.store(w, b + R_FREE_PAGE, f.freePage);
  Atomics.store(w, b + R_EXTRA, f.extra);
  Atomics.store(w, b + R_THREAD, threadId);
  Atomics.store(w, b + R_SERIAL, serial);
  Atomics.store(w, b + R_STATE, 2); // publish last
  return true;
}

/** A decoded violation, for reports and test failures. */
export interface Violation extends ViolationFields {
  kindName: string;
  detailName: string;
  freeEventName: string;
  thread: number;
  serial: number;
  /** one line a person can read */
  text: string;
}

function detailName(kind: number, detail: number): string {
  if (kind === V_STALE_ACCESS) return ACCESS_NAMES[detail] ?? String(detail);
  if (kind === V_MIRROR_INCOHERENT) return INCOH_NAMES[detail] ?? String(detail);
  if (kind === V_PROTOCOL) return PROTO_NAMES[detail] ?? String(detail);
  return String(detail);
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

/** Decode every published record, in slot order. */
export function readViolations(log: ViolationLog): Violation[] {
  const w = log.words;
  const n = Math.min(Atomics.load(w, H_NEXT), log.capacity);
  const out: Violation[] = [];
  for (let s = 0; s < n; s++) {
    const b = LINE_WORDS + s * RECORD_WORDS;
    if (Atomics.load(w, b + R_STATE) !== 2) continue;
    const g = (i: number): number => Atomics.load(w, b + i);
    const kind = g(R_KIND);
    const detail = g(R_DETAIL);
    const freeEvent = g(R_FREE_EVENT);
    const v: Violation = {
      kind,
      detail,
      device: g(R_DEVICE),
      file: g(R_FILE),
      mm: g(R_MM),
      page: g(R_PAGE),
      pfn: g(R_PFN),
      genRecorded: g(R_GEN_RECORDED),
      genNow: g(R_GEN_NOW),
      freeEvent,
      freeMm: g(R_FREE_MM),
      freePage: g(R_FREE_PAGE),
      extra: g(R_EXTRA),
      thread: g(R_THREAD),
      serial: g(R_SERIAL),
      kindName: VIOLATION_NAMES[kind] ?? String(kind),
      detailName: detailName(kind, detail),
      freeEventName: freeEventName(freeEvent),
      text: '',
    };
    v.text = describe(v);
    out.push(v);
  }
  return out;
}

function describe(v: Violation): string {
  const where = `device ${v.device} file ${v.file} mm ${v.mm} address ${hex(v.page * 4096)}`;
  switch (v.kind) {
    case V_STALE_ACCESS:
      return (
        `stale access (${v.detailName}): ${where} pfn ${v.pfn} generation recorded ${v.genRecorded}, now ` +
        `${v.genNow}; freed by ${v.freeEventName}` +
        (v.freePage >= 0 ? ` at ${hex(v.freePage * 4096)} of mm ${v.freeMm}` : '')
      );
    case V_MIRROR_INCOHERENT:
      return `mirror incoherent (${v.detailName}): ${where} mirror pfn ${v.pfn}, cpu pfn ${v.extra}`;
    case V_LOST_UPDATE:
      return `lost update: increments + copied exceed live + discarded by ${v.extra}`;
    default:
      return `protocol (${v.detailName}): mm ${v.mm} value ${v.extra}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Free-event lookup: physmem's ring log of frees names the event that freed a frame. The free
// that matters is the first one after the entry was installed: the one that produced gen + 1.
function lookupFreeEvent(phys: PhysMem, pfn: number, genRecorded: number): FreeEvent | null {
  return phys.lastFreeEvent(pfn, (genRecorded + 1) | 0) ?? phys.lastFreeEvent(pfn);
}

// ---------------------------------------------------------------------------------------------
// Oracle #1: stale access

/** Who is accessing, for the record (filled once per operation, reused). */
export interface AccessContext {
  log: ViolationLog | null;
  phys: PhysMem;
  device: number;
  file: number;
  mm: number;
}

/**
 * Compare a mirror entry's recorded generation with the frame's current one; record a violation on
 * mismatch. Returns true if the access was stale. Called before and after each page copy, so a
 * free that lands inside the copy is seen too.
 */
export function checkDeviceAccess(
  ctx: AccessContext,
  what: number,
  page: number,
  pfn: number,
  genRecorded: number,
): boolean {
  const genNow = Atomics.load(ctx.phys.frames.gen, pfn);
  if (genNow === genRecorded) return false;
  reportStaleAccess(ctx, what, page, pfn, genRecorded, genNow);
  return true;
}

export function reportStaleAccess(
  ctx: AccessContext,
  what: number,
  page: number,
  pfn: number,
  genRecorded: number,
  genNow: number,
): void {
  staleAccesses++;
  if (ctx.log === null) return;
  const fe = lookupFreeEvent(ctx.phys, pfn, genRecorded);
  recordViolation(ctx.log, {
    kind: V_STALE_ACCESS,
    detail: what,
    device: ctx.device,
    file: ctx.file,
    mm: ctx.mm,
    page,
    pfn,
    genRecorded,
    genNow,
    freeEvent: fe === null ? -1 : fe.event,
    freeMm: fe === null ? -1 : fe.mmId,
    freePage: fe === null ? -1 : fe.page,
    extra: -1,
  });
}

let staleAccesses = 0;
/** Stale accesses this thread detected (even with no log attached). */
export function staleAccessCount(): number {
  return staleAccesses;
}

// ---------------------------------------------------------------------------------------------
// Oracle #2: lost update

let writeIncrements = 0;

/**
 * This thread's switch of the per-access oracle work (oracle #1's generation checks and #2's write
 * counting), set from the scenario's `oracles` flag at the start of a run; the driver reads it once
 * per operation. Off: the checks are skipped (benchmarks of the checking cost), never the model.
 */
export const oracleSwitch = { enabled: true };

export function setOraclesEnabled(on: boolean): void {
  oracleSwitch.enabled = on;
}

/**
 * A device wrote to frame `pfn`: bump its write counter (shared, `PhysMem.countWrite`) and this
 * thread's tally, and cancel MADV_FREE's lazy-free state (hmmsim's documented difference,
 * spec/mm-events.md).
 */
export function noteDeviceWrite(phys: PhysMem, pfn: number): void {
  if (oracleSwitch.enabled) {
    phys.countWrite(pfn);
    writeIncrements++;
  }
  phys.clearLazyFree(pfn);
}

/** Write-counter increments device accesses made in this thread (report it at the end of a run). */
export function deviceWriteIncrements(): number {
  return writeIncrements;
}

export function resetDeviceWriteIncrements(): void {
  writeIncrements = 0;
}

export interface LostUpdateTerms {
  /** increments every thread made (devices and CPU), summed over threads */
  increments: number;
  /** phys accounting: counter values duplicated by COW copies */
  copied: number;
  /** counters in live content (frames and swap slots still referenced) */
  live: number;
  /** phys accounting: counters of content dropped, plus WCOUNT_WRAP per counter wrap */
  discarded: number;
}

export interface LostUpdateResult extends LostUpdateTerms {
  /** (increments + copied) - (live + discarded) as an int32: 0 when nothing was lost */
  difference: number;
  ok: boolean;
}

/**
 * checking.md #2: increments + copied = live + discarded. Records a violation when it fails.
 *
 * Frame write counters are 16 bits (layout.ts: WCOUNT_*). Every write goes through
 * `PhysMem.countWrite`, which counts the wraps, and each wrap enters `discarded` as WCOUNT_WRAP
 * (65,536) writes; `copied`, `live` and the rest of `discarded` add up the counters' 16-bit values.
 * So the equation is exact in integers and `difference` is the true number of writes lost (> 0)
 * or counted twice (< 0), taken as an int32 (the shared accounting words are int32s, which wrap
 * at 2^32 in a long run). The one blind spot the 16-bit counters add: one frame's lost writes go
 * unseen only if they are exactly a multiple of 65,536 (content dropped unaccounted while its
 * counter reads 0, i.e. after k * 65,536 counted writes; or k * 65,536 writes to a frame that is
 * no longer live). Any other loss is reported with its exact size, losses on several frames add up
 * (two frames losing 32,768 writes each give 65,536), and only a total that is a multiple of 2^32
 * cancels out, as with 32-bit counters.
 */
export function lostUpdateEquation(t: LostUpdateTerms, log: ViolationLog | null = null): LostUpdateResult {
  const difference = (t.increments + t.copied - (t.live + t.discarded)) | 0;
  if (difference !== 0 && log !== null) {
    recordViolation(log, {
      kind: V_LOST_UPDATE,
      detail: 0,
      device: -1,
      file: -1,
      mm: -1,
      page: -1,
      pfn: -1,
      genRecorded: -1,
      genNow: -1,
      freeEvent: -1,
      freeMm: -1,
      freePage: -1,
      extra: difference,
    });
  }
  return { ...t, difference, ok: difference === 0 };
}

// ---------------------------------------------------------------------------------------------
// Oracle #3: mirror coherence

/** What oracle #3 needs from a file: its mirror entries (the interface's optional audit hook). */
export interface AuditableMirror {
  readonly id: number;
  readonly deviceId: number;
  readonly mm: MmStruct;
  /** Visit every present entry: page number, PFN, writable. */
  forEachMirrorEntry(visit: (page: number, pfn: number, writable: boolean) => void): void;
}

/**
 * The CPU's entry for `page`: PFN (a device-private entry names the device frame) and writable,
 * or pfn -1 when nothing accessible is mapped. Packs into `out` (pfn, writable 0/1).
 */
export function cpuEntryAt(mm: MmStruct, page: number, out: Int32Array): void {
  const pmd = Atomics.load(mm.pmd, Math.floor(page / PTRS_PER_PTE));
  const ptype = pmd & PTE_TYPE_MASK;
  out[0] = -1;
  out[1] = 0;
  if (ptype === PMD_TYPE_HUGE) {
    if ((pmd & PTE_PROTNONE) !== 0) return;
    out[0] = ptePayload(pmd) + (page % PTRS_PER_PTE);
    out[1] = (pmd & PTE_WRITE) !== 0 ? 1 : 0;
    return;
  }
  if (ptype !== PMD_TYPE_TABLE && ptype !== PMD_TYPE_NONE) return;
  const pte = Atomics.load(mm.pte, page);
  const t = pte & PTE_TYPE_MASK;
  if ((t === PTE_TYPE_PRESENT && (pte & PTE_PROTNONE) === 0) || t === PTE_TYPE_DEVICE_PRIVATE) {
    out[0] = ptePayload(pte);
    out[1] = (pte & PTE_WRITE) !== 0 ? 1 : 0;
  }
}

/**
 * checking.md #3, at a quiescent point: every mirror entry maps the frame the CPU maps there and
 * is writable only if the CPU entry is. Returns the number of violations found (and records them).
 */
export function auditMirror(m: AuditableMirror, log: ViolationLog | null): number {
  const cpu = new Int32Array(2);
  let bad = 0;
  m.forEachMirrorEntry((page, pfn, writable) => {
    cpuEntryAt(m.mm, page, cpu);
    let detail = 0;
    if (cpu[0]! < 0) detail = INCOH_NO_CPU_ENTRY;
    else if (cpu[0] !== pfn) detail = INCOH_OTHER_FRAME;
    else if (writable && cpu[1] === 0) detail = INCOH_WRITABLE;
    if (detail === 0) return;
    bad++;
    if (log === null) return;
    recordViolation(log, {
      kind: V_MIRROR_INCOHERENT,
      detail,
      device: m.deviceId,
      file: m.id,
      mm: m.mm.id,
      page,
      pfn,
      genRecorded: -1,
      genNow: -1,
      freeEvent: -1,
      freeMm: -1,
      freePage: -1,
      extra: cpu[0]!,
    });
  });
  return bad;
}

// ---------------------------------------------------------------------------------------------
// Oracle #4: protocol sanity

/** The facts oracle #4 checks, gathered by the caller from the notifier and the locks. */
export interface SanityFacts {
  mmId: number;
  /** the mm's invalidate_seq */
  mmSeq: number;
  /** active_invalidate_ranges */
  activeInvalidations: number;
  /** every subscription's seq */
  subscriptionSeqs: ArrayLike<number>;
  /** names of locks still held ("mmap lock", "file 3 update lock", ...) */
  locksHeld: string[];
}

/** checking.md #4. Returns the number of violations (and records them). */
export function protocolSanity(f: SanityFacts, log: ViolationLog | null): number {
  let bad = 0;
  const rec = (detail: number, extra: number): void => {
    bad++;
    if (log === null) return;
    recordViolation(log, {
      kind: V_PROTOCOL,
      detail,
      device: -1,
      file: -1,
      mm: f.mmId,
      page: -1,
      pfn: -1,
      genRecorded: -1,
      genNow: -1,
      freeEvent: -1,
      freeMm: -1,
      freePage: -1,
      extra,
    });
  };
  if (f.activeInvalidations !== 0) rec(PROTO_OPEN_INVALIDATIONS, f.activeInvalidations);
  else if ((f.mmSeq & 1) !== 0) rec(PROTO_MM_SEQ_ODD, f.mmSeq);
  for (let i = 0; i < f.subscriptionSeqs.length; i++) {
    const s = f.subscriptionSeqs[i]!;
    if ((s & 1) === 0) rec(PROTO_SUB_SEQ_EVEN, s);
  }
  for (let i = 0; i < f.locksHeld.length; i++) rec(PROTO_LOCK_HELD, i);
  return bad;
}
