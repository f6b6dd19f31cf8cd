/**
 * Single-threaded cases of spec/interval-notifier.md: sequence values and parity, overlap on
 * inclusive ends, ops arguments, insert in the three states, remove cases (a) and (b), read_begin
 * outside an invalidation (also across the 32-bit wrap), the retry checks, the non-blockable path,
 * errors, release, and the ops registry's failure modes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { configureInjection, MUTANT_BEGIN_NO_WAIT } from '../../src/checker/points.js';
import { MM_USERS } from '../../src/mm/layout.js';
import { createMm, type MmStruct } from '../../src/mm/mm.js';
import {
  EAGAIN,
  EINVAL,
  ENOSPC,
  EOVERFLOW,
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MMU_NOTIFY_CLEAR,
  MMU_NOTIFY_RELEASE,
  MMU_NOTIFY_UNMAP,
  type MmuNotifierRange,
  type MmuNotifierSubscriber,
  mmuNotifierRangeInit,
} from '../../src/mm/mmu-notifier.js';
import { createPhysMem } from '../../src/mm/physmem.js';
import {
  MMU_INTERVAL_ADDR_END,
  MMU_INTERVAL_LAST_MAX,
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  type MmuNotifierSubscriptions,
  type MmuNotifierSubscriptionsOptions,
  MN_SLOT_DEFERRED_INSERT,
  MN_SLOT_FREE,
  MN_SLOT_IN_SET,
  mmuIntervalCheckRetry,
  mmuIntervalNotifierAttach,
  mmuIntervalNotifierFromSlot,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierStats,
  mmuNotifierSubscriptionsGet,
  registerMmuIntervalOpsKind,
  resetMmuNotifierStats,
  unregisterMmuIntervalOpsKind,
} from '../../src/notifier/index.js';

const K = 4096;
const phys = createPhysMem({ nframes: 2048, W: 1 });

interface Call {
  name: string;
  start: number;
  end: number;
  event: number;
  flags: number;
  curSeq: number;
  sub: MmuIntervalNotifier;
}

/** An mm with its core; `calls` records every op call in order. */
function setup(opts: MmuNotifierSubscriptionsOptions = {}): {
  mm: MmStruct;
  core: MmuNotifierSubscriptions;
  calls: Call[];
  ops: (name: string, ret?: (r: MmuNotifierRange) => boolean, setSeq?: boolean) => MmuIntervalNotifierOps;
  sub: (
    name: string,
    start: number,
    length: number,
    ret?: (r: MmuNotifierRange) => boolean,
  ) => MmuIntervalNotifier;
} {
  const mm = createMm(phys, { size: 8 << 20 });
  const core = mmuNotifierSubscriptionsGet(mm, opts);
  const calls: Call[] = [];
  const ops = (
    name: string,
    ret?: (r: MmuNotifierRange) => boolean,
    setSeq = true,
  ): MmuIntervalNotifierOps => ({
    invalidate(sub, range, curSeq) {
      calls.push({
        name,
        start: range.start,
        end: range.end,
        event: range.event,
        flags: range.flags,
        curSeq,
        sub,
      });
      const ok = ret ? ret(range) : true;
      if (ok && setSeq) mmuIntervalSetSeq(sub, curSeq);
      return ok;
    },
  });
  const sub = (name: string, start: number, length: number, ret?: (r: MmuNotifierRange) => boolean) => {
    const s = new MmuIntervalNotifier();
    expect(mmuIntervalNotifierInsert(s, mm, start, length, ops(name, ret))).toBe(0);
    return s;
  };
  return { mm, core, calls, ops, sub };
}

function range(mm: MmStruct, start: number, end: number, blockable = true, event = MMU_NOTIFY_CLEAR) {
  return mmuNotifierRangeInit(mm.id, event, start, end, blockable);
}

/** The mm side of one invalidation: start through the chain, then end. */
function invalidate(mm: MmStruct, start: number, end: number): number {
  const r = range(mm, start, end);
  const ret = mm.notifiers.invalidateRangeStart(r);
  if (ret === 0) mm.notifiers.invalidateRangeEnd(r);
  return ret;
}

function seqOf(s: MmuIntervalNotifier): number {
  return s.subscriptions.slotSeq(s.slot);
}

afterEach(() => {
  configureInjection(0, false, 1);
  resetMmuNotifierStats();
});

describe('per-mm state and registration', () => {
  it('starts at seq 2, idle, registered first on the chain', () => {
    const mm = createMm(phys, { size: 8 << 20 });
    const other: MmuNotifierSubscriber = {
      invalidateRangeStart: () => 0,
      invalidateRangeEnd: () => {},
      release: () => {},
    };
    mm.notifiers.register(other);
    const core = mmuNotifierSubscriptionsGet(mm);
    expect(mm.notifiers.subscribers[0]).toBe(core);
    expect(mm.notifiers.subscribers[1]).toBe(other);
    expect(mmuNotifierSubscriptionsGet(mm)).toBe(core);
    expect(core.state()).toEqual({
      invalidateSeq: 2,
      activeInvalidateRanges: 0,
      inSet: 0,
      deferred: 0,
      warnings: 0,
    });
    expect(core.lockOwner()).toBe(0);
  });

  it('handle fields, descriptor and attach in the same thread', () => {
    const { mm, sub } = setup();
    const a = sub('a', 16 * K, 4 * K);
    expect(a.mm).toBe(mm);
    expect(a.start).toBe(16 * K);
    expect(a.end).toBe(20 * K);
    expect(a.slot).toBe(0);
    expect(mmuIntervalNotifierAttach(mm, a.descriptor())).toBe(a);
    expect(mmuIntervalNotifierFromSlot(mm, 0)).toBe(a);
  });
});

describe('sequence values through nested and parallel invalidations', () => {
  it('odd while any hitting range is open, even again only at the last end', () => {
    const { mm, core, calls, sub } = setup();
    const a = sub('a', 0, 64 * K);
    expect(core.invalidateSeq()).toBe(2);
    expect(seqOf(a)).toBe(1);

    const r1 = range(mm, 0, 4 * K);
    const r2 = range(mm, 8 * K, 12 * K);
    expect(mm.notifiers.invalidateRangeStart(r1)).toBe(0);
    expect(core.invalidateSeq()).toBe(3);
    expect(seqOf(a)).toBe(3);
    expect(mm.notifiers.invalidateRangeStart(r2)).toBe(0); // nested: same odd value
    expect(core.invalidateSeq()).toBe(3);
    expect(calls.map((c) => c.curSeq)).toEqual([3, 3]);
    expect(core.state().activeInvalidateRanges).toBe(2);
    mm.notifiers.invalidateRangeEnd(r2);
    expect(core.invalidateSeq()).toBe(3);
    expect(core.state().activeInvalidateRanges).toBe(1);
    mm.notifiers.invalidateRangeEnd(r1);
    expect(core.invalidateSeq()).toBe(4);
    expect(core.state().activeInvalidateRanges).toBe(0);

    // A range that hits nothing stays even, but keeps a later hitting period odd until it ends.
    const miss = range(mm, 1 << 20, (1 << 20) + 4 * K);
    const hit = range(mm, 0, 4 * K);
    expect(mm.notifiers.invalidateRangeStart(miss)).toBe(0);
    expect(core.invalidateSeq()).toBe(4);
    expect(mm.notifiers.invalidateRangeStart(hit)).toBe(0);
    expect(core.invalidateSeq()).toBe(5);
    mm.notifiers.invalidateRangeEnd(hit);
    expect(core.invalidateSeq()).toBe(5); // the miss is still open
    mm.notifiers.invalidateRangeEnd(miss);
    expect(core.invalidateSeq()).toBe(6);
    expect(seqOf(a)).toBe(5);
    expect(seqOf(a) & 1).toBe(1);

    // Ranges that hit nothing never touch the seq.
    expect(invalidate(mm, 2 << 20, (2 << 20) + K)).toBe(0);
    expect(core.invalidateSeq()).toBe(6);
  });

  it('counts invalidations, hits and ops in the thread-local stats', () => {
    const { mm, sub } = setup();
    sub('a', 0, 8 * K);
    sub('b', 4 * K, 8 * K);
    resetMmuNotifierStats();
    invalidate(mm, 0, 8 * K);
    invalidate(mm, 1 << 20, (1 << 20) + K);
    expect(mmuNotifierStats.invalidateStarts).toBe(2);
    expect(mmuNotifierStats.invalidationsHit).toBe(1);
    expect(mmuNotifierStats.opsCalled).toBe(2);
    expect(mmuNotifierStats.opsFalse).toBe(0);
  });

  it('rejects an unbalanced end', () => {
    const { mm, core } = setup();
    expect(() => core.invalidateRangeEnd(range(mm, 0, K))).toThrow(/without a matching/);
    expect(core.state().activeInvalidateRanges).toBe(0);
  });
});

describe('overlap on inclusive ends', () => {
  it('a range ending exactly at a subscription start, or starting at its end, misses it', () => {
    const { mm, calls, sub } = setup();
    sub('a', 16 * K, 16 * K); // [16K, 32K - 1]
    expect(invalidate(mm, 0, 16 * K)).toBe(0); // [0, 16K-1]
    expect(invalidate(mm, 32 * K, 48 * K)).toBe(0); // [32K, 48K-1]
    expect(calls).toHaveLength(0);
    invalidate(mm, 12 * K, 16 * K + 1); // last byte 16K: hits
    invalidate(mm, 32 * K - 1, 40 * K); // first byte 32K-1: hits
    invalidate(mm, 31 * K, 32 * K); // the last page
    expect(calls.map((c) => [c.start, c.end])).toEqual([
      [12 * K, 16 * K + 1],
      [32 * K - 1, 40 * K],
      [31 * K, 32 * K],
    ]);
  });

  it('byte-exact for an unaligned one-byte subscription', () => {
    const { mm, calls, sub } = setup();
    sub('b', 0x10001, 1); // [0x10001, 0x10001]
    invalidate(mm, 0x10000, 0x10001);
    invalidate(mm, 0x10002, 0x11000);
    expect(calls).toHaveLength(0);
    invalidate(mm, 0x10001, 0x10002);
    invalidate(mm, 0, 0x20000);
    expect(calls).toHaveLength(2);
  });

  it('addresses above 2^32 compare exactly', () => {
    const { mm, calls, sub } = setup();
    const base = 2 ** 40;
    sub('hi', base, 4 * K);
    invalidate(mm, base - 4 * K, base);
    invalidate(mm, base + 4 * K, base + 8 * K);
    invalidate(mm, 0, 4 * K); // same low 32 bits as `base`
    expect(calls).toHaveLength(0);
    invalidate(mm, base + 4 * K - 1, base + 4 * K);
    expect(calls).toHaveLength(1);
  });
});

describe('op arguments', () => {
  it('each overlapping op gets the whole range and the same odd cur_seq, in start order', () => {
    const { mm, calls, sub } = setup();
    const c = sub('c', 40 * K, 8 * K);
    const a = sub('a', 0, 8 * K);
    sub('miss', 100 * K, 4 * K);
    const b = sub('b', 20 * K, 100 * K); // overlaps the range, starts inside it
    const r = range(mm, 4 * K, 44 * K, true, MMU_NOTIFY_UNMAP);
    expect(mm.notifiers.invalidateRangeStart(r)).toBe(0);
    expect(calls.map((x) => x.name)).toEqual(['a', 'b', 'c']);
    for (const x of calls) {
      expect([x.start, x.end, x.event, x.flags, x.curSeq]).toEqual([
        4 * K,
        44 * K,
        MMU_NOTIFY_UNMAP,
        MMU_NOTIFIER_RANGE_BLOCKABLE,
        3,
      ]);
    }
    // The handle passed is the very object inserted in this thread.
    expect(calls[0]!.sub).toBe(a);
    expect(calls[1]!.sub).toBe(b);
    expect(calls[2]!.sub).toBe(c);
    mm.notifiers.invalidateRangeEnd(r);
  });
});

describe('insert', () => {
  it('idle: seq - 1, in the set at once', () => {
    const { core, sub } = setup();
    const a = sub('a', 0, 4 * K);
    expect(seqOf(a)).toBe(1);
    expect(core.slotState(a.slot)).toBe(MN_SLOT_IN_SET);
    expect(core.invalidateSeq()).toBe(2);
  });

  it('invalidations open but none hit: seq made odd, in the set at once, seq = mm seq', () => {
    const { mm, core, calls, sub } = setup();
    const miss = range(mm, 1 << 20, (1 << 20) + 4 * K);
    mm.notifiers.invalidateRangeStart(miss);
    expect(core.invalidateSeq()).toBe(2);
    const a = sub('a', 0, 4 * K);
    expect(core.invalidateSeq()).toBe(3);
    expect(seqOf(a)).toBe(3); // read_begin would sleep until the end
    expect(core.slotState(a.slot)).toBe(MN_SLOT_IN_SET);
    // Already in the set: a nested invalidation reaches it.
    expect(invalidate(mm, 0, 4 * K)).toBe(0);
    expect(calls.map((c) => [c.name, c.curSeq])).toEqual([['a', 3]]);
    expect(core.invalidateSeq()).toBe(3);
    mm.notifiers.invalidateRangeEnd(miss);
    expect(core.invalidateSeq()).toBe(4);
    expect(mmuIntervalReadBegin(a)).toBe(3);
    expect(mmuNotifierStats.lastReadBeginSlept).toBe(false);
  });

  it('seq odd: deferred with seq = mm seq, enters the set at the final end', () => {
    const { mm, core, calls, sub } = setup();
    sub('a', 0, 4 * K);
    const r1 = range(mm, 0, 4 * K);
    mm.notifiers.invalidateRangeStart(r1);
    expect(core.invalidateSeq()).toBe(3);
    const b = sub('b', 8 * K, 4 * K);
    expect(seqOf(b)).toBe(3);
    expect(core.slotState(b.slot)).toBe(MN_SLOT_DEFERRED_INSERT);
    expect(core.state()).toMatchObject({ inSet: 1, deferred: 1 });
    // Not in the set yet: a nested invalidation over it does not call it.
    const r2 = range(mm, 8 * K, 12 * K);
    mm.notifiers.invalidateRangeStart(r2);
    expect(calls.map((c) => c.name)).toEqual(['a']);
    mm.notifiers.invalidateRangeEnd(r2);
    expect(core.slotState(b.slot)).toBe(MN_SLOT_DEFERRED_INSERT); // not the final end
    mm.notifiers.invalidateRangeEnd(r1);
    expect(core.invalidateSeq()).toBe(4);
    expect(core.slotState(b.slot)).toBe(MN_SLOT_IN_SET);
    expect(core.state()).toMatchObject({ inSet: 2, deferred: 0 });
    expect(seqOf(b)).toBe(3);
    invalidate(mm, 8 * K, 12 * K);
    expect(calls.map((c) => [c.name, c.curSeq])).toEqual([
      ['a', 3],
      ['b', 5],
    ]);
  });

  it('errors: -EOVERFLOW for zero length or overflow, -EINVAL without users, -ENOSPC when full', () => {
    const { mm, ops } = setup({ capacity: 2 });
    const o = ops('x');
    const s = new MmuIntervalNotifier();
    expect(mmuIntervalNotifierInsert(s, mm, 0, 0, o)).toBe(-EOVERFLOW);
    expect(mmuIntervalNotifierInsert(s, mm, 4 * K, -1, o)).toBe(-EOVERFLOW);
    expect(mmuIntervalNotifierInsert(s, mm, MMU_INTERVAL_LAST_MAX, 2, o)).toBe(-EOVERFLOW);
    expect(mmuIntervalNotifierInsert(s, mm, 4 * K, MMU_INTERVAL_ADDR_END, o)).toBe(-EOVERFLOW);
    expect(mmuIntervalNotifierInsert(s, mm, 0.5, 4 * K, o)).toBe(-EOVERFLOW);
    expect(s.slot).toBe(-1);
    // The largest intervals that fit.
    expect(mmuIntervalNotifierInsert(s, mm, MMU_INTERVAL_LAST_MAX, 1, o)).toBe(0);
    expect(s.end).toBe(MMU_INTERVAL_ADDR_END);
    const t = new MmuIntervalNotifier();
    expect(mmuIntervalNotifierInsert(t, mm, 0, MMU_INTERVAL_ADDR_END, o)).toBe(0);
    expect(mmuIntervalNotifierInsert(new MmuIntervalNotifier(), mm, 0, K, o)).toBe(-ENOSPC);
    // A freed slot is reused under a new generation; old descriptors no longer attach.
    const old = s.descriptor();
    mmuIntervalNotifierRemove(s);
    const u = new MmuIntervalNotifier();
    expect(mmuIntervalNotifierInsert(u, mm, 0, K, o)).toBe(0);
    expect(u.slot).toBe(old.slot);
    expect(u.gen).not.toBe(old.gen);
    expect(mmuIntervalNotifierAttach(mm, old)).toBeNull();
    // No users: -EINVAL, after the overflow checks.
    Atomics.store(mm.ctl, MM_USERS, 0);
    expect(mmuIntervalNotifierInsert(new MmuIntervalNotifier(), mm, 0, K, o)).toBe(-EINVAL);
    expect(mmuIntervalNotifierInsert(new MmuIntervalNotifier(), mm, 0, 0, o)).toBe(-EOVERFLOW);
    Atomics.store(mm.ctl, MM_USERS, 1);
    expect(() => mmuIntervalNotifierInsert(u, mm, 0, K, o)).toThrow(/already inserted/);
  });
});

describe('remove', () => {
  it('(a) seq even: out at once, no wait', () => {
    const { mm, core, calls, sub } = setup();
    const a = sub('a', 0, 4 * K);
    const slot = a.slot;
    mmuIntervalNotifierRemove(a);
    expect(a.slot).toBe(-1);
    expect(core.slotState(slot)).toBe(MN_SLOT_FREE);
    expect(core.state()).toMatchObject({ inSet: 0, deferred: 0, invalidateSeq: 2 });
    invalidate(mm, 0, 4 * K);
    expect(calls).toHaveLength(0);
    expect(mmuNotifierStats.removeWaits).toBe(0);
    expect(() => mmuIntervalNotifierRemove(a)).toThrow(/not inserted/);
  });

  it('(a) also while invalidations that hit nothing are open', () => {
    const { mm, core, sub } = setup();
    const a = sub('a', 0, 4 * K);
    const miss = range(mm, 1 << 20, (1 << 20) + K);
    mm.notifiers.invalidateRangeStart(miss);
    mmuIntervalNotifierRemove(a);
    expect(core.state()).toMatchObject({
      inSet: 0,
      deferred: 0,
      invalidateSeq: 2,
      activeInvalidateRanges: 1,
    });
    mm.notifiers.invalidateRangeEnd(miss);
  });

  it('(b) seq odd and still deferred: taken off the list, no wait', () => {
    const { mm, core, calls, sub } = setup();
    sub('a', 0, 4 * K);
    const r = range(mm, 0, 4 * K);
    mm.notifiers.invalidateRangeStart(r);
    const b = sub('b', 8 * K, 4 * K);
    const c = sub('c', 16 * K, 4 * K);
    const slot = b.slot;
    expect(core.state().deferred).toBe(2);
    mmuIntervalNotifierRemove(b); // unlinks from the middle of the list's walk order
    expect(core.slotState(slot)).toBe(MN_SLOT_FREE);
    expect(core.state()).toMatchObject({ deferred: 1, inSet: 1, invalidateSeq: 3 });
    expect(mmuNotifierStats.removeWaits).toBe(0);
    mm.notifiers.invalidateRangeEnd(r);
    expect(core.state()).toMatchObject({ deferred: 0, inSet: 2, invalidateSeq: 4 });
    expect(core.slotState(c.slot)).toBe(MN_SLOT_IN_SET);
    invalidate(mm, 8 * K, 12 * K);
    expect(calls.map((x) => x.name)).toEqual(['a']);
  });
});

describe('read side', () => {
  it('read_begin does not sleep outside an invalidation; read_retry and check_retry', () => {
    const { mm, sub } = setup();
    const a = sub('a', 0, 4 * K);
    const seq = mmuIntervalReadBegin(a);
    expect(seq).toBe(1);
    expect(mmuNotifierStats.lastReadBeginSlept).toBe(false);
    expect(mmuIntervalReadRetry(a, seq)).toBe(false);
    expect(mmuIntervalCheckRetry(a, seq)).toBe(false);
    invalidate(mm, 1 << 20, (1 << 20) + K); // misses: no retry
    expect(mmuIntervalReadRetry(a, seq)).toBe(false);
    const r = range(mm, 0, K);
    mm.notifiers.invalidateRangeStart(r);
    expect(mmuIntervalCheckRetry(a, seq)).toBe(true);
    expect(mmuIntervalReadRetry(a, seq)).toBe(true);
    mm.notifiers.invalidateRangeEnd(r);
    expect(mmuIntervalReadRetry(a, seq)).toBe(true); // stays true after the end
    const seq2 = mmuIntervalReadBegin(a);
    expect(seq2).toBe(3);
    expect(mmuNotifierStats.lastReadBeginSlept).toBe(false);
    expect(mmuIntervalReadRetry(a, seq2)).toBe(false);
    expect(mmuNotifierStats.readBegins).toBe(2);
    expect(mmuNotifierStats.readBeginSleeps).toBe(0);
  });

  it('begin-no-wait mutant: read_begin returns at once inside an invalidation', () => {
    const { mm, core, sub } = setup();
    const a = sub('a', 0, 4 * K);
    const r = range(mm, 0, K);
    mm.notifiers.invalidateRangeStart(r);
    configureInjection(MUTANT_BEGIN_NO_WAIT, false, 1);
    expect(mmuIntervalReadBegin(a)).toBe(core.invalidateSeq());
    expect(mmuNotifierStats.lastReadBeginSlept).toBe(false);
    configureInjection(0, false, 1);
    mm.notifiers.invalidateRangeEnd(r);
  });

  for (const initialSeq of [0x7ffffffe, -2]) {
    it(`parity across the 32-bit wrap (initial seq ${initialSeq})`, () => {
      const { mm, core, calls, sub } = setup({ initialSeq });
      const a = sub('a', 0, 4 * K);
      let mmSeq = initialSeq | 0;
      expect(seqOf(a)).toBe((mmSeq - 1) | 0);
      for (let i = 0; i < 4; i++) {
        const seq = mmuIntervalReadBegin(a);
        expect(mmuNotifierStats.lastReadBeginSlept).toBe(false);
        const r = range(mm, 0, K);
        mm.notifiers.invalidateRangeStart(r);
        const cur = mmSeq | 1 | 0;
        expect(core.invalidateSeq()).toBe(cur);
        expect(calls.at(-1)!.curSeq).toBe(cur);
        expect(seqOf(a)).toBe(cur);
        expect(cur & 1).toBe(1);
        expect(mmuIntervalReadRetry(a, seq)).toBe(true);
        mm.notifiers.invalidateRangeEnd(r);
        mmSeq = (cur + 1) | 0;
        expect(core.invalidateSeq()).toBe(mmSeq);
        expect(mmSeq & 1).toBe(0);
        expect(mmuIntervalReadBegin(a)).toBe(cur);
        expect(mmuNotifierStats.lastReadBeginSlept).toBe(false);
      }
      // Went across: 0x7ffffffe -> -0x80000000 .. ; -2 -> 0 ..
      expect(mmSeq).toBe((initialSeq + 8) | 0);
    });
  }
});

describe('non-blockable ranges', () => {
  it('an op failing stops the loop: -EAGAIN, later ops not called, end run by the core', () => {
    const { mm, core, calls, sub } = setup();
    const a = sub('a', 0, 4 * K);
    const b = sub('b', 4 * K, 4 * K, (r) => (r.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0);
    const c = sub('c', 8 * K, 4 * K);
    resetMmuNotifierStats();
    const r = range(mm, 0, 12 * K, false, MMU_NOTIFY_UNMAP);
    expect(mm.notifiers.invalidateRangeStart(r)).toBe(-EAGAIN);
    expect(calls.map((x) => [x.name, x.curSeq, x.flags])).toEqual([
      ['a', 3, 0],
      ['b', 3, 0],
    ]);
    expect(seqOf(a)).toBe(3); // called: keeps its new seq
    expect(seqOf(b)).toBe(1); // trylock failed: no set_seq
    expect(seqOf(c)).toBe(1); // never called
    expect(core.state()).toMatchObject({ invalidateSeq: 4, activeInvalidateRanges: 0, warnings: 0 });
    expect(mmuNotifierStats).toMatchObject({ opsCalled: 2, opsFalse: 1, eagain: 1, blockableWarnings: 0 });
    // read_begin does not sleep afterwards (a's seq 3 != mm seq 4)
    expect(mmuIntervalReadBegin(a)).toBe(3);
    expect(mmuNotifierStats.lastReadBeginSlept).toBe(false);
  });

  it('the core end step applies deferred entries queued by a failing range', () => {
    const { mm, core, sub } = setup();
    let inserted: MmuIntervalNotifier | null = null;
    // Insert from inside the failing op: the seq is odd, so the insert is deferred.
    const late = new MmuIntervalNotifier();
    const trigger = sub('t', 0, 4 * K, () => {
      if (!inserted) {
        inserted = late;
        expect(mmuIntervalNotifierInsert(late, mm, 64 * K, K, { invalidate: () => true })).toBe(0);
      }
      return false;
    });
    expect(trigger.slot).toBe(0);
    expect(mm.notifiers.invalidateRangeStart(range(mm, 0, K, false))).toBe(-EAGAIN);
    expect(core.slotState(late.slot)).toBe(MN_SLOT_IN_SET);
    expect(core.state()).toMatchObject({
      invalidateSeq: 4,
      activeInvalidateRanges: 0,
      deferred: 0,
      inSet: 2,
    });
  });

  it('on a blockable range a failing op is a warning and the loop goes on', () => {
    const { mm, core, calls, sub } = setup();
    sub('a', 0, 4 * K, () => false);
    sub('b', 4 * K, 4 * K);
    resetMmuNotifierStats();
    const r = range(mm, 0, 8 * K);
    expect(mm.notifiers.invalidateRangeStart(r)).toBe(0);
    expect(calls.map((x) => x.name)).toEqual(['a', 'b']);
    expect(core.invalidateSeq()).toBe(3);
    expect(core.state().warnings).toBe(1);
    expect(mmuNotifierStats).toMatchObject({ opsCalled: 2, opsFalse: 1, blockableWarnings: 1, eagain: 0 });
    mm.notifiers.invalidateRangeEnd(r);
    expect(core.invalidateSeq()).toBe(4);
  });
});

describe('release and misuse', () => {
  it('release calls every op once with RELEASE over the whole space, then ends', () => {
    const { mm, core, calls, sub } = setup();
    sub('a', 0, 4 * K);
    sub('b', 2 ** 45, 4 * K);
    mm.notifiers.release(range(mm, 0, 8 << 20, true, MMU_NOTIFY_RELEASE));
    expect(calls.map((c) => [c.name, c.start, c.end, c.event, c.flags, c.curSeq])).toEqual([
      ['a', 0, MMU_INTERVAL_ADDR_END, MMU_NOTIFY_RELEASE, MMU_NOTIFIER_RANGE_BLOCKABLE, 3],
      ['b', 0, MMU_INTERVAL_ADDR_END, MMU_NOTIFY_RELEASE, MMU_NOTIFIER_RANGE_BLOCKABLE, 3],
    ]);
    expect(core.state()).toMatchObject({ invalidateSeq: 4, activeInvalidateRanges: 0 });
  });

  it('remove or read_begin from an invalidate op throws, and the start is closed again', () => {
    const { mm, core, sub } = setup();
    let victim: MmuIntervalNotifier | null = null;
    sub('a', 0, 4 * K, () => {
      mmuIntervalNotifierRemove(victim!);
      return true;
    });
    victim = sub('v', 0, 4 * K);
    expect(() => invalidate(mm, 0, K)).toThrow(/from an interval-notifier invalidate op/);
    expect(core.state()).toMatchObject({ invalidateSeq: 4, activeInvalidateRanges: 0 });
    // The thread is not stuck "inside an op": read_begin works.
    expect(mmuIntervalReadBegin(victim)).toBe(1);
  });

  it('an unresolvable ops kind throws from the start and leaves the state consistent', () => {
    const { mm, core } = setup();
    const s = new MmuIntervalNotifier();
    expect(mmuIntervalNotifierInsert(s, mm, 0, K, { kind: 'nobody-registered-this', opsId: 1 })).toBe(0);
    expect(() => invalidate(mm, 0, K)).toThrow(/not registered/);
    expect(core.state()).toMatchObject({ invalidateSeq: 4, activeInvalidateRanges: 0 });
  });

  it('ops kinds: resolved once per subscription, re-resolved after unregister', () => {
    const { mm, calls, ops } = setup();
    let resolutions = 0;
    const kind = 'test-resolve-once';
    const resolver = (id: number) => {
      resolutions++;
      return ops(`k${id}`);
    };
    registerMmuIntervalOpsKind(kind, resolver);
    registerMmuIntervalOpsKind(kind, resolver); // same resolver: no-op
    expect(() => registerMmuIntervalOpsKind(kind, (id) => ops(`${id}`))).toThrow(/already registered/);
    const s = new MmuIntervalNotifier();
    expect(mmuIntervalNotifierInsert(s, mm, 0, K, { kind, opsId: 7 })).toBe(0);
    invalidate(mm, 0, K);
    invalidate(mm, 0, K);
    expect(resolutions).toBe(1);
    expect(calls.map((c) => c.name)).toEqual(['k7', 'k7']);
    expect(calls[0]!.sub).toBe(s);
    unregisterMmuIntervalOpsKind(kind);
    registerMmuIntervalOpsKind(kind, resolver);
    invalidate(mm, 0, K);
    expect(resolutions).toBe(2);
    unregisterMmuIntervalOpsKind(kind);
  });
});

describe('overlap search against brute force (seeded)', () => {
  it('ops called = subscriptions overlapping on inclusive ends, through inserts and removes', () => {
    const seed = Number(process.env.HMMSIM_SEED ?? 0xc0ffee);
    let x = seed | 0 || 1;
    const rnd = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const { mm, core, calls, ops } = setup({ capacity: 64 });
    const live: { s: MmuIntervalNotifier; name: string; start: number; last: number }[] = [];
    let serial = 0;
    for (let step = 0; step < 3000; step++) {
      const op = rnd(10);
      if ((op < 3 && live.length < 64) || live.length === 0) {
        // mostly short, sometimes long (covering many others), addresses in [0, 2^34)
        const start = rnd(4) === 0 ? rnd(1 << 20) * 4096 * 16 : rnd(1 << 12) * 4096;
        const length = rnd(8) === 0 ? 2 ** 33 : (1 + rnd(64)) * 4096 - rnd(2);
        const name = `s${serial++}`;
        const s = new MmuIntervalNotifier();
        expect(mmuIntervalNotifierInsert(s, mm, start, length, ops(name)), `seed ${seed}`).toBe(0);
        live.push({ s, name, start, last: start + length - 1 });
      } else if (op < 5) {
        const i = rnd(live.length);
        mmuIntervalNotifierRemove(live[i]!.s);
        live.splice(i, 1);
      } else {
        const start = rnd(1 << 12) * 4096 + (rnd(4) === 0 ? rnd(2 ** 21) * 4096 * 4 : 0);
        const end = start + (1 + rnd(32)) * 4096;
        calls.length = 0;
        invalidate(mm, start, end);
        const want = live
          .filter((e) => e.start <= end - 1 && e.last >= start)
          .sort((a, b) => a.start - b.start || a.s.slot - b.s.slot)
          .map((e) => e.name);
        expect(
          calls.map((c) => c.name),
          `seed ${seed} step ${step}`,
        ).toEqual(want);
      }
    }
    expect(core.state().inSet, `seed ${seed}`).toBe(live.length);
  });
});
