/**
 * The reader/writer semaphore (src/shm/rwsem.ts), the model of the mmap lock: readers share it, a
 * writer excludes everyone, a waiting writer holds back new readers (writer preference), and a
 * downgrade lets readers in but no writer. Scripted interleavings use one actor thread per party;
 * a stress run checks the same exclusion under real contention.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  downgradeWrite,
  downRead,
  downReadTrylock,
  downWrite,
  downWriteTrylock,
  rwsemState,
  rwsemWaitingWriters,
  upRead,
  upWrite,
} from '../../src/shm/index.js';
import { Actor, newShared, runLoops, settlesWithin, testSeed, until } from './harness.js';
import { S } from './shared.js';

const seed = testSeed();
const why = (what: string) => `${what} (seed ${seed}; rerun with HMMSIM_SEED=${seed})`;
/** How long a blocked operation must stay blocked before we believe it is. */
const BLOCKED_MS = 150;
/** How long an unblocked operation may take to be seen (wake-up plus a message round trip). */
const WAKE_MS = 5_000;

const actors: Actor[] = [];
afterEach(async () => {
  await Promise.all(actors.splice(0).map((a) => a.stop()));
});

async function setup(n: number): Promise<{ w: Int32Array; a: Actor[] }> {
  const lockBuf = new SharedArrayBuffer(64);
  const a = Array.from({ length: n }, () => new Actor(lockBuf));
  actors.push(...a);
  await Promise.all(a.map((x) => x.ready));
  return { w: new Int32Array(lockBuf), a };
}

describe('rwsem on one thread', () => {
  it('counts readers, marks a writer, and its trylocks respect both', () => {
    const w = new Int32Array(new SharedArrayBuffer(64));
    expect(rwsemState(w, 0)).toBe(0);
    expect(downRead(w, 0)).toBe(false);
    expect(downReadTrylock(w, 0)).toBe(true);
    expect(rwsemState(w, 0)).toBe(2);
    expect(downWriteTrylock(w, 0)).toBe(false);
    upRead(w, 0);
    upRead(w, 0);
    expect(downWriteTrylock(w, 0)).toBe(true);
    expect(rwsemState(w, 0)).toBe(-1);
    expect(downReadTrylock(w, 0)).toBe(false);
    expect(downWriteTrylock(w, 0)).toBe(false);
    downgradeWrite(w, 0);
    expect(rwsemState(w, 0)).toBe(1);
    expect(downReadTrylock(w, 0)).toBe(true);
    expect(downWriteTrylock(w, 0)).toBe(false);
    upRead(w, 0);
    upRead(w, 0);
    expect(downWrite(w, 0)).toBe(false);
    upWrite(w, 0);
    expect(rwsemState(w, 0)).toBe(0);
  });
});

describe('rwsem across threads', () => {
  it('lets many readers hold it at once', async () => {
    const { w, a } = await setup(3);
    for (const x of a) expect(await settlesWithin(x.call('downRead'), WAKE_MS)).toBe(true);
    expect(downReadTrylock(w, 0)).toBe(true);
    expect(rwsemState(w, 0)).toBe(4);
    expect(downWriteTrylock(w, 0)).toBe(false);
    upRead(w, 0);
    for (const x of a) await x.call('upRead');
    expect(rwsemState(w, 0)).toBe(0);
  });

  it('a writer excludes readers and other writers until it releases', async () => {
    const { w, a } = await setup(3);
    const [r1, r2, w2] = a as [Actor, Actor, Actor];
    expect(await r1.call('downWrite')).toBe(false);
    expect(await r2.call('downReadTrylock')).toBe(false);
    expect(await w2.call('downWriteTrylock')).toBe(false);
    const read = r2.call('downRead');
    expect(await settlesWithin(read, BLOCKED_MS)).toBe(false);
    await r1.call('upWrite');
    expect(await settlesWithin(read, WAKE_MS)).toBe(true);
    expect(await read).toBe(true); // it waited
    // Now a reader holds: a writer waits for it.
    const write = w2.call('downWrite');
    expect(await settlesWithin(write, BLOCKED_MS)).toBe(false);
    expect(rwsemWaitingWriters(w, 0)).toBe(1);
    await r2.call('upRead');
    expect(await settlesWithin(write, WAKE_MS)).toBe(true);
    expect(rwsemState(w, 0)).toBe(-1);
    expect(rwsemWaitingWriters(w, 0)).toBe(0);
    await w2.call('upWrite');
    expect(rwsemState(w, 0)).toBe(0);
  });

  it('a waiting writer blocks new readers (writer preference)', async () => {
    const { w, a } = await setup(3);
    const [r1, wr, r2] = a as [Actor, Actor, Actor];
    await r1.call('downRead');
    const write = wr.call('downWrite');
    expect(await until(() => rwsemWaitingWriters(w, 0) === 1, WAKE_MS)).toBe(true);
    expect(await settlesWithin(write, BLOCKED_MS)).toBe(false);
    // The lock is only read-held, yet a new reader must queue behind the writer.
    expect(rwsemState(w, 0)).toBe(1);
    expect(downReadTrylock(w, 0)).toBe(false);
    const read = r2.call('downRead');
    expect(await settlesWithin(read, BLOCKED_MS)).toBe(false);
    // The first reader leaves: the writer goes first, the new reader still waits.
    await r1.call('upRead');
    expect(await settlesWithin(write, WAKE_MS)).toBe(true);
    expect(await settlesWithin(read, BLOCKED_MS)).toBe(false);
    expect(rwsemState(w, 0)).toBe(-1);
    await wr.call('upWrite');
    expect(await settlesWithin(read, WAKE_MS)).toBe(true);
    expect(rwsemState(w, 0)).toBe(1);
    await r2.call('upRead');
    expect(rwsemState(w, 0)).toBe(0);
  });

  it('downgrade lets waiting and new readers in, but no writer until all readers leave', async () => {
    const { w, a } = await setup(3);
    const [wr, rd, w2] = a as [Actor, Actor, Actor];
    await wr.call('downWrite');
    const read = rd.call('downRead');
    expect(await settlesWithin(read, BLOCKED_MS)).toBe(false);
    await wr.call('downgradeWrite');
    expect(await settlesWithin(read, WAKE_MS)).toBe(true);
    expect(rwsemState(w, 0)).toBe(2);
    // A new reader gets in too; a writer does not.
    expect(downReadTrylock(w, 0)).toBe(true);
    upRead(w, 0);
    expect(downWriteTrylock(w, 0)).toBe(false);
    const write = w2.call('downWrite');
    expect(await settlesWithin(write, BLOCKED_MS)).toBe(false);
    await wr.call('upRead'); // the downgraded holder leaves; one reader remains
    expect(await settlesWithin(write, BLOCKED_MS)).toBe(false);
    await rd.call('upRead');
    expect(await settlesWithin(write, WAKE_MS)).toBe(true);
    expect(rwsemState(w, 0)).toBe(-1);
    await w2.call('upWrite');
  });

  it('under contention readers overlap each other but never a writer', async () => {
    const shared = newShared();
    // Long enough (a few hundred ms) that the threads overlap despite staggered scheduling.
    const writes = 20_000;
    const specs = [
      { role: 'rw-writer' as const, iterations: writes, maxDelay: 64 },
      { role: 'rw-reader' as const, iterations: 40_000, maxDelay: 512 },
      { role: 'rw-reader' as const, iterations: 40_000, maxDelay: 512 },
      { role: 'rw-reader' as const, iterations: 40_000, maxDelay: 512 },
    ];
    const results = await runLoops('rwsem', specs, seed, shared);
    const violations = results.reduce((n, r) => n + r.violations, 0);
    expect(violations, why('a reader overlapped a writer, or saw a torn value')).toBe(0);
    expect(Atomics.load(shared.data, S.PAYLOAD), why('lost writer increments')).toBe(results[0]!.ops);
    expect(Math.max(...results.map((r) => r.maxConcurrent)), why('readers never overlapped')).toBeGreaterThan(
      1,
    );
    expect(rwsemState(new Int32Array(shared.lockBuf), 0)).toBe(0);
  });
});
