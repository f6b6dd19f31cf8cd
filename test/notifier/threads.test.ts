/**
 * Cross-thread cases: read_begin sleeping in a worker until the main thread's end, remove case (c)
 * from a worker (fixed wait and the remove-early-return mutant), ops resolved through the
 * registry in the other thread (both directions), and a bounded, seeded stress of the documented
 * driver pattern (clean with the correct core, caught with begin-no-wait).
 * Every wait is bounded; a failing stress case prints its seed (HMMSIM_SEED overrides it).
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { MUTANT_BEGIN_NO_WAIT, MUTANT_REMOVE_EARLY_RETURN } from '../../src/checker/points.js';
import { createMm, type MmStruct } from '../../src/mm/mm.js';
import { MMU_NOTIFY_CLEAR, mmuNotifierRangeInit } from '../../src/mm/mmu-notifier.js';
import { createPhysMem } from '../../src/mm/physmem.js';
import {
  MmuIntervalNotifier,
  type MmuNotifierSubscriptions,
  MN_SLOT_DEFERRED_REMOVE,
  MN_SLOT_FREE,
  MN_SLOT_IN_SET,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
  mmuNotifierDebugHooks,
  mmuNotifierStats,
  mmuNotifierSubscriptionsGet,
  registerMmuIntervalOpsKind,
} from '../../src/notifier/index.js';
import { sharedInt32 } from '../../src/shm/layout.js';
import { mutexLock, mutexUnlock } from '../../src/shm/mutex.js';
import {
  C_DONE,
  C_LOCK,
  C_READY,
  C_REC,
  C_STOP,
  C_VERSION,
  C_VIOL,
  C_WORDS,
  type WorkerInput,
} from './worker-protocol.js';

const K = 4096;
const BOUND_MS = 15_000;
const phys = createPhysMem({ nframes: 2048, W: 1 });
const workers: Worker[] = [];
/** The last error a worker died of, so a bounded wait fails with it instead of timing out. */
let workerFailure: Error | null = null;

afterEach(async () => {
  mmuNotifierDebugHooks.applyDeferred = null;
  workerFailure = null;
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

// biome-ignore lint/suspicious/noExplicitAny: messages are test-specific shapes
type Msg = any;

interface Spawned {
  worker: Worker;
  ctl: Int32Array;
  next(): Promise<Msg>;
  post(m: string): void;
}

function spawn(
  mm: MmStruct,
  core: MmuNotifierSubscriptions,
  input: Omit<WorkerInput, 'mm' | 'phys' | 'subs' | 'ctl'>,
  ctl = sharedInt32(C_WORDS),
): Spawned {
  // A .ts entry given directly to Worker with `execArgv: ['--import', tsx]` fails on Node 20.20
  // ("Unknown file extension"): the hooks are not in place for the entry itself. So the entry is
  // a tiny script that registers tsx in the worker and then imports the TypeScript module.
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const entry = JSON.stringify(new URL('./notifier.worker.ts', import.meta.url).href);
  const worker = new Worker(`import(${api}).then((t) => { t.register(); return import(${entry}); })`, {
    eval: true,
    workerData: {
      ...input,
      mm: mm.descriptor(),
      phys: phys.descriptor(),
      subs: core.descriptor(),
      ctl: ctl.buffer,
    },
  });
  workers.push(worker);
  const queue: Msg[] = [];
  const waiting: ((m: Msg) => void)[] = [];
  let failure: Error | null = null;
  const failAll = (e: Error) => {
    failure = e;
    for (const w of waiting.splice(0)) w(Promise.reject(e));
  };
  worker.on('message', (m) => {
    const w = waiting.shift();
    if (w) w(m);
    else queue.push(m);
  });
  worker.on('error', (e) => {
    workerFailure = e;
    failAll(e);
  });
  return {
    worker,
    ctl,
    next() {
      if (queue.length) return Promise.resolve(queue.shift());
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('worker message timed out')), BOUND_MS);
        waiting.push((m) => {
          clearTimeout(t);
          resolve(m);
        });
      });
    },
    post(m) {
      worker.postMessage(m);
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait (without blocking the event loop) until ctl[word] reaches `atLeast`; bounded. */
async function waitWord(ctl: Int32Array, word: number, atLeast = 1): Promise<void> {
  const t0 = Date.now();
  while (Atomics.load(ctl, word) < atLeast) {
    if (workerFailure) throw workerFailure;
    if (Date.now() - t0 > BOUND_MS) throw new Error(`timed out waiting for ctl word ${word}`);
    await sleep(2);
  }
}

/** Block this thread for `ms` (used inside the end step, which holds the notifier lock). */
function blockFor(ms: number): void {
  Atomics.wait(sharedInt32(1), 0, 0, ms);
}

let kindSerial = 0;
function setup(): { mm: MmStruct; core: MmuNotifierSubscriptions; sub: MmuIntervalNotifier; kind: string } {
  const mm = createMm(phys, { size: 8 << 20 });
  const core = mmuNotifierSubscriptionsGet(mm);
  const kind = `threads-main-${kindSerial++}`;
  registerMmuIntervalOpsKind(kind, () => ({
    invalidate(s, _r, cur) {
      mmuIntervalSetSeq(s, cur);
      return true;
    },
  }));
  const sub = new MmuIntervalNotifier();
  expect(mmuIntervalNotifierInsert(sub, mm, 0, 64 * K, { kind, opsId: 0 })).toBe(0);
  return { mm, core, sub, kind };
}

function range(mm: MmStruct, start: number, end: number) {
  return mmuNotifierRangeInit(mm.id, MMU_NOTIFY_CLEAR, start, end);
}

describe('read_begin across threads', () => {
  it('a worker sleeps in read_begin until the main thread ends the invalidation', async () => {
    const { mm, core, sub } = setup();
    const r = range(mm, 0, K);
    mm.notifiers.invalidateRangeStart(r);
    expect(core.invalidateSeq()).toBe(3);
    const w = spawn(mm, core, { role: 'readBegin', mutants: 0, sub: sub.descriptor() });
    await waitWord(w.ctl, C_READY);
    await sleep(150);
    expect(Atomics.load(w.ctl, C_DONE)).toBe(0); // still asleep
    mm.notifiers.invalidateRangeEnd(r);
    const m = await w.next();
    expect(m.seq).toBe(3);
    expect(m.slept).toBe(true);
    expect(m.sleepMs).toBeGreaterThan(50);
    expect(m.retry).toBe(false);
    expect(m.mmSeqAfter).toBe(4);
  });

  it('with begin-no-wait the worker returns at once inside the invalidation', async () => {
    const { mm, core, sub } = setup();
    const r = range(mm, 0, K);
    mm.notifiers.invalidateRangeStart(r);
    const w = spawn(mm, core, { role: 'readBegin', mutants: MUTANT_BEGIN_NO_WAIT, sub: sub.descriptor() });
    const m = await w.next();
    expect(m.seq).toBe(3);
    expect(m.slept).toBe(false);
    expect(m.mmSeqAfter).toBe(3);
    mm.notifiers.invalidateRangeEnd(r);
  });

  it('a worker does not sleep outside an invalidation', async () => {
    const { mm, core, sub } = setup();
    const w = spawn(mm, core, { role: 'readBegin', mutants: 0, sub: sub.descriptor() });
    const m = await w.next();
    expect([m.seq, m.slept, m.retry, m.mmSeqAfter]).toEqual([1, false, false, 2]);
  });
});

describe('remove case (c) from a worker', () => {
  async function removeDuringInvalidation(mutants: number, holdMs: number) {
    const { mm, core, sub } = setup();
    const slot = sub.slot;
    const r = range(mm, 0, K);
    mm.notifiers.invalidateRangeStart(r);
    const w = spawn(mm, core, { role: 'remove', mutants, sub: sub.descriptor() });
    await waitWord(w.ctl, C_READY);
    await sleep(150);
    expect(Atomics.load(w.ctl, C_DONE)).toBe(0); // blocked in remove
    expect(core.slotState(slot)).toBe(MN_SLOT_DEFERRED_REMOVE);
    expect(core.state()).toMatchObject({ deferred: 1, inSet: 1, invalidateSeq: 3 });
    const seen: number[] = [];
    // Hold the end step inside its deferred-list walk (notifier lock held, seq already even).
    mmuNotifierDebugHooks.applyDeferred = (s, state) => {
      seen.push(s, state);
      blockFor(holdMs);
    };
    mm.notifiers.invalidateRangeEnd(r);
    mmuNotifierDebugHooks.applyDeferred = null;
    expect(seen).toEqual([slot, MN_SLOT_DEFERRED_REMOVE]);
    expect(core.slotState(slot)).toBe(MN_SLOT_FREE);
    expect(core.state()).toMatchObject({ deferred: 0, inSet: 0, invalidateSeq: 4 });
    return w.next();
  }

  it('blocks until the final end has applied the deferred list (5.10.113 wait)', async () => {
    const m = await removeDuringInvalidation(0, 150);
    expect(m.stateAfter).toBe(MN_SLOT_FREE);
    expect(m.removeWaits).toBe(1);
  });

  it('remove-early-return mutant: returns while the end step is still walking the list', async () => {
    const m = await removeDuringInvalidation(MUTANT_REMOVE_EARLY_RETURN, 400);
    expect(m.stateAfter).toBe(MN_SLOT_DEFERRED_REMOVE);
    expect(m.removeWaits).toBe(1);
  });
});

describe('ops resolved through the registry in the other thread', () => {
  it('a worker inserts; the main thread invalidates and runs the op it resolves', async () => {
    const mm = createMm(phys, { size: 8 << 20 });
    const core = mmuNotifierSubscriptionsGet(mm);
    const kind = 'threads-registry-main';
    const calls: number[][] = [];
    registerMmuIntervalOpsKind(kind, (opsId) => ({
      invalidate(s, r, cur) {
        calls.push([opsId, s.slot, s.start, s.end, r.start, r.end, cur]);
        mmuIntervalSetSeq(s, cur);
        return true;
      },
    }));
    const w = spawn(mm, core, { role: 'insert', mutants: 0, kind, opsId: 42, start: 64 * K, length: 16 * K });
    const m = await w.next();
    expect(m.ret).toBe(0);
    const slot = m.desc.slot;
    expect(core.slotState(slot)).toBe(MN_SLOT_IN_SET);
    expect(core.slotSeq(slot)).toBe(1);
    const r = range(mm, 60 * K, 68 * K);
    expect(mm.notifiers.invalidateRangeStart(r)).toBe(0);
    mm.notifiers.invalidateRangeEnd(r);
    expect(calls).toEqual([[42, slot, 64 * K, 80 * K, 60 * K, 68 * K, 3]]);
    expect(core.slotSeq(slot)).toBe(3);
    w.post('remove');
    const done = await w.next();
    expect(done).toEqual({ removed: true, state: MN_SLOT_FREE });
    expect(core.state()).toMatchObject({ inSet: 0, invalidateSeq: 4 });
  });

  it('an ops object passed directly in a worker cannot be called from the main thread', async () => {
    const mm = createMm(phys, { size: 8 << 20 });
    const core = mmuNotifierSubscriptionsGet(mm);
    const w = spawn(mm, core, { role: 'insertLocal', mutants: 0, start: 0, length: 4 * K });
    const m = await w.next();
    expect(m.ret).toBe(0);
    const r = range(mm, 0, K);
    expect(() => mm.notifiers.invalidateRangeStart(r)).toThrow(/cannot call it/);
    expect(core.state()).toMatchObject({ invalidateSeq: 4, activeInvalidateRanges: 0 });
    w.post('remove');
    expect((await w.next()).state).toBe(MN_SLOT_FREE);
  });

  it('the main thread inserts; a worker invalidates and runs the op it resolves', async () => {
    const mm = createMm(phys, { size: 8 << 20 });
    const core = mmuNotifierSubscriptionsGet(mm);
    const sub = new MmuIntervalNotifier();
    const kind = 'threads-registry-worker';
    expect(mmuIntervalNotifierInsert(sub, mm, 0, 16 * K, { kind, opsId: 7 })).toBe(0);
    const w = spawn(mm, core, { role: 'invalidate', mutants: 0, kind, start: 4 * K, length: 4 * K });
    const m = await w.next();
    expect(m.ret).toBe(0);
    expect(m.seqInside).toBe(3);
    expect(m.seqAfter).toBe(4);
    expect(m.threadId).not.toBe(0);
    const rec = Array.from(w.ctl.subarray(C_REC, C_REC + 8));
    expect(rec).toEqual([7, 3, m.threadId, 4 * K, 8 * K, MMU_NOTIFY_CLEAR, 1, sub.slot]);
    expect(core.slotSeq(sub.slot)).toBe(3);
    expect(mmuIntervalReadBegin(sub)).toBe(3);
    expect(mmuNotifierStats.lastReadBeginSlept).toBe(false);
  });
});

describe('stress: the driver pattern against a mutator (bounded, seeded)', () => {
  const baseSeed = Number(process.env.HMMSIM_SEED ?? 0x5eed1);

  async function run(mutants: number, seed: number, maxOps: number) {
    const mm = createMm(phys, { size: 8 << 20 });
    const core = mmuNotifierSubscriptionsGet(mm);
    const ctl = sharedInt32(C_WORDS);
    const kind = `threads-stress-${seed}-${mutants}`;
    registerMmuIntervalOpsKind(kind, () => ({
      invalidate(s, _r, cur) {
        mutexLock(ctl, C_LOCK);
        mmuIntervalSetSeq(s, cur);
        mutexUnlock(ctl, C_LOCK);
        return true;
      },
    }));
    const sub = new MmuIntervalNotifier();
    expect(mmuIntervalNotifierInsert(sub, mm, 0, 64 * K, { kind, opsId: 0 })).toBe(0);
    const readers = [1, 2].map((i) =>
      spawn(
        mm,
        core,
        { role: 'reader', mutants, sub: sub.descriptor(), iters: 200_000, seed: seed + i },
        ctl,
      ),
    );
    await waitWord(ctl, C_READY, readers.length);
    await sleep(20);

    // The mutator: random ranges, some nested, the "PTE change" (version++) between start and end
    // of every range that hits the subscription.
    let x = seed | 0 || 1;
    const rnd = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    let sink = 0;
    const spin = (n: number) => {
      for (let j = 0; j < n; j++) sink += j;
    };
    const t0 = Date.now();
    let ops = 0;
    let hits = 0;
    for (; ops < maxOps && Date.now() - t0 < 8000 && Atomics.load(ctl, C_VIOL) === 0; ops++) {
      const outer = rnd(4) === 0 ? range(mm, rnd(32) * 4 * K, rnd(32) * 4 * K + 4 * K) : null;
      if (outer) expect(mm.notifiers.invalidateRangeStart(outer)).toBe(0);
      const a = rnd(32) * 4 * K; // [0, 128K): hits [0, 64K) half the time
      const r = range(mm, a, a + 4 * K);
      expect(mm.notifiers.invalidateRangeStart(r)).toBe(0);
      spin(rnd(4000));
      if (a < 64 * K) {
        Atomics.add(ctl, C_VERSION, 1);
        hits++;
      }
      spin(rnd(1000));
      mm.notifiers.invalidateRangeEnd(r);
      if (outer) mm.notifiers.invalidateRangeEnd(outer);
      if (rnd(8) === 0) spin(rnd(20000));
    }
    Atomics.store(ctl, C_STOP, 1);
    const results = await Promise.all(readers.map((w) => w.next()));
    const st = core.state();
    if (process.env.HMMSIM_VERBOSE)
      console.log(JSON.stringify({ seed, mutants, ops, hits, ms: Date.now() - t0, results }));
    return { ops, hits, results, st, sink };
  }

  it('the correct core: no stale snapshot passes read_retry, seq even at the end', async () => {
    const seed = baseSeed;
    const { ops, hits, results, st } = await run(0, seed, 4000);
    const msg = `seed ${seed}`;
    expect(st.invalidateSeq & 1, msg).toBe(0);
    expect(st.activeInvalidateRanges, msg).toBe(0);
    expect(ops, msg).toBeGreaterThan(100);
    expect(hits, msg).toBeGreaterThan(0);
    for (const r of results) {
      expect(r.violations, msg).toBe(0);
      expect(r.ok, msg).toBeGreaterThan(0);
    }
    expect(
      results.reduce((n: number, r: Msg) => n + r.retries + r.sleeps, 0),
      msg,
    ).toBeGreaterThan(0);
  });

  it('begin-no-wait is caught within a bounded run', async () => {
    const seed = baseSeed + 1;
    const { results, st } = await run(MUTANT_BEGIN_NO_WAIT, seed, 50_000);
    const msg = `seed ${seed}`;
    expect(st.invalidateSeq & 1, msg).toBe(0);
    expect(
      results.reduce((n: number, r: Msg) => n + r.violations, 0),
      msg,
    ).toBeGreaterThan(0);
    for (const r of results) expect(r.sleeps, msg).toBe(0);
  });
});
