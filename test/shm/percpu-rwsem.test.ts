/**
 * The percpu reader/writer semaphore (src/shm/percpu-rwsem.ts), the mmap lock: the rwsem's
 * behaviours (readers share it, a writer excludes everyone, a waiting writer holds back new readers,
 * a downgrade lets readers in but no writer) plus what the per-thread reader slots add: each thread
 * counts on its own cache line, only the sum of the slots matters (a release from another thread
 * balances), every slot is seen by a writer, and percpuRwsemHeldHere tells the holder apart.
 * Scripted interleavings use one actor thread per party (and the main thread as one more); stress
 * runs check the same exclusion under real contention.
 */
import { threadId } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LINE_WORDS,
  PERCPU_RWSEM_SLOTS,
  PERCPU_RWSEM_WORDS,
  percpuDowngradeWrite,
  percpuDownRead,
  percpuDownReadTrylock,
  percpuDownWrite,
  percpuDownWriteTrylock,
  percpuRwsemHeldHere,
  percpuRwsemState,
  percpuRwsemWaitingWriters,
  percpuUpRead,
  percpuUpWrite,
} from '../../src/shm/index.js';
import { Actor, type LoopSpec, newShared, runLoops, settlesWithin, testSeed, until } from './harness.js';
import { S } from './shared.js';

const seed = testSeed();
const why = (what: string) => `${what} (seed ${seed}; rerun with HMMSIM_SEED=${seed})`;
/** How long a blocked operation must stay blocked before we believe it is. */
const BLOCKED_MS = 150;
/** How long an unblocked operation may take to be seen (wake-up plus a message round trip). */
const WAKE_MS = 5_000;
/** The lock's buffer: far more than the old rwsem's 64 bytes (a header line plus a line per slot). */
const LOCK_BYTES = PERCPU_RWSEM_WORDS * 4;

const actors: Actor[] = [];
afterEach(async () => {
  await Promise.all(actors.splice(0).map((a) => a.stop()));
});

const slotOf = (tid: number) => tid % PERCPU_RWSEM_SLOTS;

/**
 * `n` actors (at most PERCPU_RWSEM_SLOTS - 1) on one fresh lock, each in a reader slot of its own
 * and none in the main thread's, so per-thread assertions (percpuRwsemHeldHere, which line a
 * reader writes) mean what they say. Workers constructed back to back get consecutive thread ids
 * (each worker's tsx loader-hooks thread takes an id too, but later), so n + 1 of them cover n + 1
 * slots, at most one of them the main thread's; the spare is left idle and stopped after the test.
 */
async function setup(n: number): Promise<{ w: Int32Array; a: Actor[] }> {
  const lockBuf = new SharedArrayBuffer(LOCK_BYTES);
  const batch = Array.from({ length: n + 1 }, () => new Actor(lockBuf));
  actors.push(...batch);
  await Promise.all(batch.map((x) => x.ready));
  const used = new Set([slotOf(threadId)]);
  const a: Actor[] = [];
  for (const x of batch) {
    if (a.length === n || used.has(slotOf(x.threadId))) continue;
    used.add(slotOf(x.threadId));
    a.push(x);
  }
  const ids = batch.map((x) => x.threadId).join(', ');
  if (a.length < n) throw new Error(`actors with thread ids ${ids} do not cover ${n} free reader slots`);
  return { w: new Int32Array(lockBuf), a };
}

/** Word offsets that differ between two snapshots. */
function changed(before: Int32Array, after: Int32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < after.length; i++) if (before[i] !== after[i]) out.push(i);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[s.length >> 1]!;
}

describe('percpu rwsem on one thread', () => {
  it('counts readers, marks a writer, and its trylocks and downgrade respect both', () => {
    // The lock at a nonzero base, between guard words: every access must add the base.
    const B = LINE_WORDS;
    const w = new Int32Array(new SharedArrayBuffer((PERCPU_RWSEM_WORDS + 2 * LINE_WORDS) * 4));
    const GUARD = 0x5a5a5a5a;
    w.fill(GUARD, 0, B);
    w.fill(GUARD, B + PERCPU_RWSEM_WORDS);
    expect(percpuRwsemState(w, B)).toBe(0);
    expect(percpuRwsemWaitingWriters(w, B)).toBe(0);
    expect(percpuRwsemHeldHere(w, B)).toBe(false);
    expect(percpuDownRead(w, B)).toBe(false);
    expect(percpuRwsemHeldHere(w, B)).toBe(true);
    expect(percpuDownReadTrylock(w, B)).toBe(true);
    expect(percpuRwsemState(w, B)).toBe(2);
    expect(percpuDownWriteTrylock(w, B)).toBe(false);
    // The failed write trylock leaves no trace: same count, no writer, readers still get in.
    expect(percpuRwsemState(w, B)).toBe(2);
    expect(percpuRwsemWaitingWriters(w, B)).toBe(0);
    expect(percpuDownReadTrylock(w, B)).toBe(true);
    expect(percpuRwsemState(w, B)).toBe(3);
    percpuUpRead(w, B);
    percpuUpRead(w, B);
    expect(percpuRwsemHeldHere(w, B)).toBe(true);
    percpuUpRead(w, B);
    expect(percpuRwsemState(w, B)).toBe(0);
    expect(percpuRwsemHeldHere(w, B)).toBe(false);
    expect(percpuDownWriteTrylock(w, B)).toBe(true);
    expect(percpuRwsemState(w, B)).toBe(-1);
    expect(percpuRwsemHeldHere(w, B)).toBe(true);
    expect(percpuDownReadTrylock(w, B)).toBe(false);
    expect(percpuDownWriteTrylock(w, B)).toBe(false);
    // The failed read trylock took its count back: the writer still holds with no reader inside.
    expect(percpuRwsemState(w, B)).toBe(-1);
    expect(percpuRwsemWaitingWriters(w, B)).toBe(0);
    percpuDowngradeWrite(w, B);
    expect(percpuRwsemState(w, B)).toBe(1);
    expect(percpuRwsemHeldHere(w, B)).toBe(true);
    expect(percpuDownReadTrylock(w, B)).toBe(true);
    expect(percpuRwsemState(w, B)).toBe(2);
    expect(percpuDownWriteTrylock(w, B)).toBe(false);
    percpuUpRead(w, B);
    percpuUpRead(w, B);
    expect(percpuRwsemState(w, B)).toBe(0);
    expect(percpuDownWrite(w, B)).toBe(false);
    expect(percpuRwsemState(w, B)).toBe(-1);
    percpuUpWrite(w, B);
    expect(percpuRwsemState(w, B)).toBe(0);
    expect(percpuRwsemWaitingWriters(w, B)).toBe(0);
    expect(percpuRwsemHeldHere(w, B)).toBe(false);
    expect(percpuDownReadTrylock(w, B)).toBe(true);
    percpuUpRead(w, B);
    for (let i = 0; i < B; i++) expect(w[i], `guard word ${i}`).toBe(GUARD);
    for (let i = B + PERCPU_RWSEM_WORDS; i < w.length; i++) expect(w[i], `guard word ${i}`).toBe(GUARD);
  });
});

describe('percpu rwsem across threads', () => {
  it('lets many readers hold it at once', async () => {
    const { w, a } = await setup(3);
    for (const x of a) expect(await settlesWithin(x.call('percpuDownRead'), WAKE_MS)).toBe(true);
    expect(percpuDownReadTrylock(w, 0)).toBe(true);
    expect(percpuRwsemState(w, 0)).toBe(4);
    expect(percpuDownWriteTrylock(w, 0)).toBe(false);
    expect(percpuRwsemState(w, 0)).toBe(4);
    percpuUpRead(w, 0);
    for (const x of a) await x.call('percpuUpRead');
    expect(percpuRwsemState(w, 0)).toBe(0);
    expect(percpuDownWriteTrylock(w, 0)).toBe(true);
    percpuUpWrite(w, 0);
  });

  it('readers in different threads count on different cache lines, and a release undoes its acquire', async () => {
    const { w, a } = await setup(2);
    const [r1, r2] = a as [Actor, Actor];
    const lines = new Set<number>();
    let before = w.slice();
    for (const take of [() => r1.call('percpuDownRead'), () => r2.call('percpuDownRead')]) {
      await take();
      const d = changed(before, w);
      // The uncontended fast path writes one word, on a line of its own (not the header line).
      expect(d.length).toBe(1);
      const line = Math.floor(d[0]! / LINE_WORDS);
      expect(line).not.toBe(0);
      lines.add(line);
      before = w.slice();
    }
    percpuDownRead(w, 0);
    const d = changed(before, w);
    expect(d.length).toBe(1);
    lines.add(Math.floor(d[0]! / LINE_WORDS));
    expect(lines.size).toBe(3);
    expect(percpuRwsemState(w, 0)).toBe(3);
    percpuUpRead(w, 0);
    await r1.call('percpuUpRead');
    await r2.call('percpuUpRead');
    expect(percpuRwsemState(w, 0)).toBe(0);
    // No writer came by, so nothing else changed: every word is back to zero.
    expect(changed(new Int32Array(w.length), w)).toEqual([]);
  });

  it('sees a reader in every slot', async () => {
    // The main thread plus 15 actors cover all PERCPU_RWSEM_SLOTS slots.
    const { w, a } = await setup(PERCPU_RWSEM_SLOTS - 1);
    const slots = new Set([slotOf(threadId), ...a.map((x) => slotOf(x.threadId))]);
    expect(slots.size).toBe(PERCPU_RWSEM_SLOTS);
    type Party = { name: string; down: () => Promise<unknown>; up: () => Promise<unknown> };
    const parties: Party[] = [
      {
        name: `main (slot ${slotOf(threadId)})`,
        down: async () => percpuDownRead(w, 0),
        up: async () => percpuUpRead(w, 0),
      },
      ...a.map((x) => ({
        name: `thread ${x.threadId} (slot ${slotOf(x.threadId)})`,
        down: () => x.call('percpuDownRead'),
        up: () => x.call('percpuUpRead'),
      })),
    ];
    // One reader alone, in each slot in turn: a writer must see it.
    for (const p of parties) {
      await p.down();
      expect(percpuRwsemState(w, 0), p.name).toBe(1);
      expect(percpuDownWriteTrylock(w, 0), p.name).toBe(false);
      await p.up();
      expect(percpuRwsemState(w, 0), p.name).toBe(0);
    }
    // All at once; the count falls by one per release and a writer gets in only after the last.
    for (const p of parties) await p.down();
    expect(percpuRwsemState(w, 0)).toBe(PERCPU_RWSEM_SLOTS);
    let left = PERCPU_RWSEM_SLOTS;
    for (const p of parties) {
      expect(percpuDownWriteTrylock(w, 0), p.name).toBe(false);
      await p.up();
      expect(percpuRwsemState(w, 0), p.name).toBe(--left);
    }
    expect(percpuDownWriteTrylock(w, 0)).toBe(true);
    expect(percpuRwsemState(w, 0)).toBe(-1);
    percpuUpWrite(w, 0);
  });

  it('a release from another thread than the acquirer balances the count', async () => {
    const { w, a } = await setup(3);
    const [r1, r2, wr] = a as [Actor, Actor, Actor];
    await r1.call('percpuDownRead');
    await r2.call('percpuUpRead'); // r2 releases r1's read lock: its slot goes to -1
    expect(percpuRwsemState(w, 0)).toBe(0);
    expect(percpuDownWriteTrylock(w, 0)).toBe(true);
    percpuUpWrite(w, 0);
    // The same with a writer already draining: the foreign release is the one it waits for.
    await r1.call('percpuDownRead');
    const write = wr.call('percpuDownWrite');
    expect(await until(() => percpuRwsemWaitingWriters(w, 0) === 1, WAKE_MS)).toBe(true);
    expect(await settlesWithin(write, BLOCKED_MS)).toBe(false);
    await r2.call('percpuUpRead');
    expect(await settlesWithin(write, WAKE_MS)).toBe(true);
    expect(await write).toBe(true);
    expect(percpuRwsemState(w, 0)).toBe(-1);
    await wr.call('percpuUpWrite');
    expect(percpuRwsemState(w, 0)).toBe(0);
  });

  it('percpuRwsemHeldHere is true in the reading thread only, and for a writer', async () => {
    const { w, a } = await setup(2);
    const [r1, r2] = a as [Actor, Actor];
    expect(await r1.call('percpuHeldHere')).toBe(false);
    await r1.call('percpuDownRead');
    expect(await r1.call('percpuHeldHere')).toBe(true);
    expect(await r2.call('percpuHeldHere')).toBe(false);
    expect(percpuRwsemHeldHere(w, 0)).toBe(false);
    await r2.call('percpuDownRead');
    expect(await r2.call('percpuHeldHere')).toBe(true);
    await r1.call('percpuUpRead');
    expect(await r1.call('percpuHeldHere')).toBe(false);
    expect(await r2.call('percpuHeldHere')).toBe(true);
    await r2.call('percpuUpRead');
    expect(await r2.call('percpuHeldHere')).toBe(false);
    // Held for write: documented as "held" in every thread (the writer word has no owner).
    await r1.call('percpuDownWrite');
    expect(await r1.call('percpuHeldHere')).toBe(true);
    expect(await r2.call('percpuHeldHere')).toBe(true);
    expect(percpuRwsemHeldHere(w, 0)).toBe(true);
    await r1.call('percpuDowngradeWrite');
    expect(await r1.call('percpuHeldHere')).toBe(true);
    expect(await r2.call('percpuHeldHere')).toBe(false);
    await r1.call('percpuUpRead');
    expect(await r1.call('percpuHeldHere')).toBe(false);
    expect(percpuRwsemHeldHere(w, 0)).toBe(false);
  });

  it('a writer excludes readers and other writers until it releases', async () => {
    const { w, a } = await setup(3);
    const [r1, r2, w2] = a as [Actor, Actor, Actor];
    expect(await r1.call('percpuDownWrite')).toBe(false);
    expect(await r2.call('percpuDownReadTrylock')).toBe(false);
    expect(await w2.call('percpuDownWriteTrylock')).toBe(false);
    expect(percpuRwsemState(w, 0)).toBe(-1);
    const read = r2.call('percpuDownRead');
    expect(await settlesWithin(read, BLOCKED_MS)).toBe(false);
    await r1.call('percpuUpWrite');
    expect(await settlesWithin(read, WAKE_MS)).toBe(true);
    expect(await read).toBe(true); // it waited
    // Now a reader holds: a writer waits for it.
    const write = w2.call('percpuDownWrite');
    expect(await settlesWithin(write, BLOCKED_MS)).toBe(false);
    expect(percpuRwsemWaitingWriters(w, 0)).toBe(1);
    await r2.call('percpuUpRead');
    expect(await settlesWithin(write, WAKE_MS)).toBe(true);
    expect(await write).toBe(true);
    expect(percpuRwsemState(w, 0)).toBe(-1);
    expect(percpuRwsemWaitingWriters(w, 0)).toBe(0);
    // Another writer waits for this one.
    const write2 = r1.call('percpuDownWrite');
    expect(await settlesWithin(write2, BLOCKED_MS)).toBe(false);
    expect(percpuRwsemWaitingWriters(w, 0)).toBe(1);
    await w2.call('percpuUpWrite');
    expect(await settlesWithin(write2, WAKE_MS)).toBe(true);
    expect(await write2).toBe(true);
    expect(percpuRwsemState(w, 0)).toBe(-1);
    await r1.call('percpuUpWrite');
    expect(percpuRwsemState(w, 0)).toBe(0);
  });

  it('a writer draining readers blocks new readers (writer preference)', async () => {
    const { w, a } = await setup(3);
    const [r1, wr, r2] = a as [Actor, Actor, Actor];
    await r1.call('percpuDownRead');
    const write = wr.call('percpuDownWrite');
    expect(await until(() => percpuRwsemWaitingWriters(w, 0) === 1, WAKE_MS)).toBe(true);
    expect(await settlesWithin(write, BLOCKED_MS)).toBe(false);
    // The lock is only read-held, yet a new reader must queue behind the writer.
    expect(percpuRwsemState(w, 0)).toBe(1);
    expect(percpuDownReadTrylock(w, 0)).toBe(false);
    expect(await r2.call('percpuDownReadTrylock')).toBe(false);
    expect(percpuRwsemState(w, 0)).toBe(1);
    const read = r2.call('percpuDownRead');
    expect(await settlesWithin(read, BLOCKED_MS)).toBe(false);
    // The first reader leaves: the writer goes first, the new reader still waits.
    await r1.call('percpuUpRead');
    expect(await settlesWithin(write, WAKE_MS)).toBe(true);
    expect(await settlesWithin(read, BLOCKED_MS)).toBe(false);
    expect(percpuRwsemState(w, 0)).toBe(-1);
    await wr.call('percpuUpWrite');
    expect(await settlesWithin(read, WAKE_MS)).toBe(true);
    expect(percpuRwsemState(w, 0)).toBe(1);
    await r2.call('percpuUpRead');
    expect(percpuRwsemState(w, 0)).toBe(0);
  });

  it('writers waiting for another writer keep readers (and write trylocks) out', async () => {
    const { w, a } = await setup(3);
    const [w2, w3, rd] = a as [Actor, Actor, Actor];
    expect(percpuDownWrite(w, 0)).toBe(false);
    const write2 = w2.call('percpuDownWrite');
    expect(await until(() => percpuRwsemWaitingWriters(w, 0) === 1, WAKE_MS)).toBe(true);
    const write3 = w3.call('percpuDownWrite');
    expect(await until(() => percpuRwsemWaitingWriters(w, 0) === 2, WAKE_MS)).toBe(true);
    const read = rd.call('percpuDownRead');
    expect(await settlesWithin(Promise.race([write2, write3, read]), BLOCKED_MS)).toBe(false);
    // Release, and at once (before any waiter can run) try to get in: the waiting writers' counts
    // in the writer word must keep out a reader and a barging writer alike.
    percpuUpWrite(w, 0);
    const readTry = percpuDownReadTrylock(w, 0);
    const writeTry = percpuDownWriteTrylock(w, 0);
    expect(readTry, 'a reader got in while writers were waiting').toBe(false);
    expect(writeTry, 'a write trylock barged ahead of waiting writers').toBe(false);
    // One waiting writer gets it; the other writer and the reader still wait.
    const first = await Promise.race([
      write2.then(() => 2),
      write3.then(() => 3),
      sleep(WAKE_MS).then(() => 0),
    ]);
    expect(first).not.toBe(0);
    const [winner, second, secondWrite] = first === 2 ? [w2, w3, write3] : [w3, w2, write2];
    expect(percpuRwsemState(w, 0)).toBe(-1);
    expect(percpuRwsemWaitingWriters(w, 0)).toBe(1);
    expect(await settlesWithin(Promise.race([secondWrite, read]), BLOCKED_MS)).toBe(false);
    await winner.call('percpuUpWrite');
    expect(await settlesWithin(secondWrite, WAKE_MS)).toBe(true);
    expect(await settlesWithin(read, BLOCKED_MS)).toBe(false);
    expect(percpuRwsemState(w, 0)).toBe(-1);
    expect(percpuRwsemWaitingWriters(w, 0)).toBe(0);
    await second.call('percpuUpWrite');
    expect(await settlesWithin(read, WAKE_MS)).toBe(true);
    expect(percpuRwsemState(w, 0)).toBe(1);
    await rd.call('percpuUpRead');
    expect(percpuRwsemState(w, 0)).toBe(0);
    expect(percpuRwsemWaitingWriters(w, 0)).toBe(0);
  });

  it('downgrade lets waiting and new readers in, but no writer until all readers leave', async () => {
    const { w, a } = await setup(3);
    const [wr, rd, w2] = a as [Actor, Actor, Actor];
    await wr.call('percpuDownWrite');
    const read = rd.call('percpuDownRead');
    expect(await settlesWithin(read, BLOCKED_MS)).toBe(false);
    await wr.call('percpuDowngradeWrite');
    expect(await settlesWithin(read, WAKE_MS)).toBe(true);
    expect(percpuRwsemState(w, 0)).toBe(2);
    // A new reader gets in too; a writer does not.
    expect(percpuDownReadTrylock(w, 0)).toBe(true);
    percpuUpRead(w, 0);
    expect(percpuDownWriteTrylock(w, 0)).toBe(false);
    const write = w2.call('percpuDownWrite');
    expect(await settlesWithin(write, BLOCKED_MS)).toBe(false);
    await wr.call('percpuUpRead'); // the downgraded holder leaves; one reader remains
    expect(await settlesWithin(write, BLOCKED_MS)).toBe(false);
    expect(percpuRwsemState(w, 0)).toBe(1);
    await rd.call('percpuUpRead');
    expect(await settlesWithin(write, WAKE_MS)).toBe(true);
    expect(percpuRwsemState(w, 0)).toBe(-1);
    await w2.call('percpuUpWrite');
    expect(percpuRwsemState(w, 0)).toBe(0);
  });

  it('a sleeping waiter wakes as soon as it may go on (no lost wake-up)', async () => {
    // Each waiter is let go a few ms into its first sleep: woken, it goes on within a few ms; with a
    // lost wake-up it would sleep out its wait slice (50 ms) and be seen ~40 ms later.
    const { w, a } = await setup(2);
    const [x, y] = a as [Actor, Actor];
    const ROUNDS = 5;
    const LIMIT_MS = 20;
    const drain: number[] = [];
    const reader: number[] = [];
    const writer: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // A writer draining two readers: the first release must not let it in, the last must.
      percpuDownRead(w, 0);
      await y.call('percpuDownRead');
      const write = x.call('percpuDownWrite');
      expect(await until(() => percpuRwsemWaitingWriters(w, 0) === 1, WAKE_MS)).toBe(true);
      await y.call('percpuUpRead');
      expect(await settlesWithin(write, 5)).toBe(false);
      let t0 = performance.now();
      percpuUpRead(w, 0);
      await write;
      drain.push(performance.now() - t0);
      await x.call('percpuUpWrite');
      // A reader waiting for a writer.
      percpuDownWrite(w, 0);
      const read = x.call('percpuDownRead');
      expect(await settlesWithin(read, 8)).toBe(false);
      t0 = performance.now();
      percpuUpWrite(w, 0);
      await read;
      reader.push(performance.now() - t0);
      await x.call('percpuUpRead');
      // A writer waiting for another writer.
      percpuDownWrite(w, 0);
      const write2 = x.call('percpuDownWrite');
      expect(await until(() => percpuRwsemWaitingWriters(w, 0) === 1, WAKE_MS)).toBe(true);
      expect(await settlesWithin(write2, 5)).toBe(false);
      t0 = performance.now();
      percpuUpWrite(w, 0);
      await write2;
      writer.push(performance.now() - t0);
      await x.call('percpuUpWrite');
      expect(percpuRwsemState(w, 0)).toBe(0);
    }
    const ms = (xs: number[]) => xs.map((t) => t.toFixed(1)).join(', ');
    expect(median(drain), `writer after the last reader left: ${ms(drain)} ms`).toBeLessThan(LIMIT_MS);
    expect(median(reader), `reader after the writer left: ${ms(reader)} ms`).toBeLessThan(LIMIT_MS);
    expect(median(writer), `writer after the writer left: ${ms(writer)} ms`).toBeLessThan(LIMIT_MS);
  });

  async function stress(specs: LoopSpec[]): Promise<void> {
    const shared = newShared(LOCK_BYTES);
    const results = await runLoops('percpu-rwsem', specs, seed, shared);
    const violations = results.reduce((n, r) => n + r.violations, 0);
    expect(violations, why('a reader overlapped a writer, writers overlapped, or a value was torn')).toBe(0);
    const writes = results.reduce((n, r, i) => n + (specs[i]!.role === 'rw-writer' ? r.ops : 0), 0);
    expect(Atomics.load(shared.data, S.PAYLOAD), why('lost writer increments')).toBe(writes);
    expect(Math.max(...results.map((r) => r.maxConcurrent)), why('readers never overlapped')).toBeGreaterThan(
      1,
    );
    const w = new Int32Array(shared.lockBuf);
    expect(percpuRwsemState(w, 0), why('the lock is not free at the end')).toBe(0);
    expect(percpuRwsemWaitingWriters(w, 0), why('writers still counted at the end')).toBe(0);
  }

  it('under contention readers overlap each other but never a writer', async () => {
    // Long enough (a few hundred ms) that the threads overlap despite staggered scheduling.
    await stress([
      { role: 'rw-writer', iterations: 20_000, maxDelay: 64 },
      { role: 'rw-reader', iterations: 40_000, maxDelay: 512 },
      { role: 'rw-reader', iterations: 40_000, maxDelay: 512 },
      { role: 'rw-reader', iterations: 40_000, maxDelay: 512 },
    ]);
  });

  it('under contention with two writers, trylocks and downgrades, exclusion still holds', async () => {
    await stress([
      { role: 'rw-writer', iterations: 10_000, maxDelay: 64, mixed: true },
      { role: 'rw-writer', iterations: 10_000, maxDelay: 64, mixed: true },
      { role: 'rw-reader', iterations: 30_000, maxDelay: 512, mixed: true },
      { role: 'rw-reader', iterations: 30_000, maxDelay: 512, mixed: true },
      { role: 'rw-reader', iterations: 30_000, maxDelay: 512, mixed: true },
    ]);
  });
});
