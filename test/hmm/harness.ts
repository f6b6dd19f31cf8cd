/**
 * A harness for driving hmmRangeFault single-threaded: a real interval subscription over the
 * whole mm, the mmap read lock held around each call, requests given as kernel words.
 */
import { type HmmKernel, type HmmRange, hmmRangeFault } from '../../src/hmm/hmm.js';
import { HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE } from '../../src/hmm/pfn.js';
import type { MmStruct } from '../../src/mm/mm.js';
import { MMU_NOTIFY_CLEAR, mmuNotifierRangeInit } from '../../src/mm/mmu-notifier.js';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
} from '../../src/notifier/interval-notifier.js';
import { P, pfnsOf, words } from './util.js';

export const RF = HMM_PFN_REQ_FAULT;
export const RW = HMM_PFN_REQ_WRITE;

/** A kernel flag word (bigint) as the hi-word mask HmmRange takes. */
export function hi(w: bigint): number {
  return Number(BigInt.asUintN(64, w) >> 32n) | 0;
}

/** Subscribe to the whole mm with an op that only bumps the seq (like the snapshot op). */
export function subscribe(mm: MmStruct): MmuIntervalNotifier {
  const sub = new MmuIntervalNotifier();
  const r = mmuIntervalNotifierInsert(sub, mm, 0, mm.size, {
    invalidate(s, _range, curSeq) {
      mmuIntervalSetSeq(s, curSeq);
      return true;
    },
  });
  if (r !== 0) throw new Error(`insert failed: ${r}`);
  return sub;
}

/** A complete invalidation of [startPage, endPage) through the mm's notifier chain. */
export function invalidate(mm: MmStruct, startPage: number, endPage: number): void {
  const range = mmuNotifierRangeInit(mm.id, MMU_NOTIFY_CLEAR, startPage * P, endPage * P);
  mm.notifiers.invalidateRangeStart(range);
  mm.notifiers.invalidateRangeEnd(range);
}

export interface RunOpts {
  /** default_flags (kernel word) */
  dflt?: bigint;
  /** pfn_flags_mask (kernel word) */
  mask?: bigint;
  /** per-page input words, or one for all pages */
  input?: bigint[] | bigint;
  owner?: number;
  kernel?: HmmKernel;
  /** use this seq instead of a fresh read_begin (a stale one, say) */
  seq?: number;
}

export interface RunResult {
  ret: number;
  w: bigint[];
  pfns: Int32Array;
  range: HmmRange;
}

/** hmmRangeFault over pages [startPage, startPage + n) under the mmap read lock. */
export function run(
  mm: MmStruct,
  sub: MmuIntervalNotifier,
  startPage: number,
  n: number,
  o: RunOpts = {},
): RunResult {
  const pfns = pfnsOf(Math.max(n, 0));
  if (Array.isArray(o.input)) {
    for (let i = 0; i < o.input.length; i++) {
      const v = BigInt.asUintN(64, o.input[i]!);
      pfns[2 * i] = Number(v & 0xffffffffn) | 0;
      pfns[2 * i + 1] = Number(v >> 32n) | 0;
    }
  } else if (o.input !== undefined) {
    const v = BigInt.asUintN(64, o.input);
    for (let i = 0; i < n; i++) {
      pfns[2 * i] = Number(v & 0xffffffffn) | 0;
      pfns[2 * i + 1] = Number(v >> 32n) | 0;
    }
  }
  const seq = o.seq ?? mmuIntervalReadBegin(sub);
  const range: HmmRange = {
    notifier: sub,
    notifierSeq: seq,
    start: startPage * P,
    end: (startPage + n) * P,
    hmmPfns: pfns,
    defaultFlags: hi(o.dflt ?? 0n),
    pfnFlagsMask: hi(o.mask ?? 0n),
    devPrivateOwner: o.owner ?? -1,
  };
  mm.mmapReadLock();
  let ret: number;
  try {
    ret = o.kernel ? hmmRangeFault(range, o.kernel) : hmmRangeFault(range);
  } finally {
    mm.mmapReadUnlock();
  }
  return { ret, w: words(pfns), pfns, range };
}
