/**
 * The mutex and the spinlock (src/shm/mutex.ts, src/shm/spinlock.ts): trylock semantics on one
 * thread and across threads, and mutual exclusion under real contention from 2-4 worker threads.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  mutexIsLocked,
  mutexLock,
  mutexOwner,
  mutexTrylock,
  mutexUnlock,
  spinIsLocked,
  spinLock,
  spinOwner,
  spinTrylock,
  spinUnlock,
} from '../../src/shm/index.js';
import { Actor, newShared, runLoops, settlesWithin, testSeed } from './harness.js';
import { S } from './shared.js';

const seed = testSeed();
const why = (what: string) => `${what} (seed ${seed}; rerun with HMMSIM_SEED=${seed})`;

interface LockApi {
  name: 'mutex' | 'spin';
  trylock(w: Int32Array, i: number): boolean;
  lock(w: Int32Array, i: number): boolean;
  unlock(w: Int32Array, i: number): void;
  isLocked(w: Int32Array, i: number): boolean;
  owner(w: Int32Array, i: number): number;
}

const apis: LockApi[] = [
  {
    name: 'mutex',
    trylock: mutexTrylock,
    lock: (w, i) => mutexLock(w, i),
    unlock: mutexUnlock,
    isLocked: mutexIsLocked,
    owner: mutexOwner,
  },
  {
    name: 'spin',
    trylock: spinTrylock,
    lock: spinLock,
    unlock: spinUnlock,
    isLocked: spinIsLocked,
    owner: spinOwner,
  },
];

const actors: Actor[] = [];
afterEach(async () => {
  await Promise.all(actors.splice(0).map((a) => a.stop()));
});

async function actor(lockBuf: SharedArrayBuffer): Promise<Actor> {
  const a = new Actor(lockBuf);
  actors.push(a);
  await a.ready;
  return a;
}

describe.each(apis)('$name', (api) => {
  const op = (suffix: 'Lock' | 'Trylock' | 'Unlock') =>
    api.name === 'mutex' ? (`mutex${suffix}` as const) : (`spin${suffix}` as const);

  it('trylock takes a free lock once, is not recursive, and records the holder', () => {
    const w = new Int32Array(new SharedArrayBuffer(64));
    expect(api.isLocked(w, 0)).toBe(false);
    expect(api.owner(w, 0)).toBe(0);
    expect(api.trylock(w, 0)).toBe(true);
    expect(api.isLocked(w, 0)).toBe(true);
    expect(api.owner(w, 0)).toBe(1); // main thread: threadId 0, stored + 1
    expect(api.trylock(w, 0)).toBe(false);
    api.unlock(w, 0);
    expect(api.isLocked(w, 0)).toBe(false);
    expect(api.owner(w, 0)).toBe(0);
    expect(api.lock(w, 0)).toBe(false); // uncontended: did not wait
    expect(api.trylock(w, 0)).toBe(false);
    api.unlock(w, 0);
    expect(api.trylock(w, 0)).toBe(true);
    api.unlock(w, 0);
  });

  it('trylock fails while another thread holds the lock and succeeds once it is released', async () => {
    const lockBuf = new SharedArrayBuffer(64);
    const w = new Int32Array(lockBuf);
    const a = await actor(lockBuf);
    expect(api.trylock(w, 0)).toBe(true);
    expect(await a.call(op('Trylock'))).toBe(false);
    api.unlock(w, 0);
    expect(await a.call(op('Trylock'))).toBe(true);
    expect(api.owner(w, 0)).toBe(a.threadId + 1);
    expect(api.trylock(w, 0)).toBe(false);
    await a.call(op('Unlock'));
    expect(api.trylock(w, 0)).toBe(true);
    api.unlock(w, 0);
  });

  it('lock blocks while another thread holds it, and reports that it waited', async () => {
    const lockBuf = new SharedArrayBuffer(64);
    const w = new Int32Array(lockBuf);
    const a = await actor(lockBuf);
    expect(api.trylock(w, 0)).toBe(true);
    const locked = a.call(op('Lock'));
    expect(await settlesWithin(locked, 150)).toBe(false);
    api.unlock(w, 0);
    expect(await settlesWithin(locked, 5_000)).toBe(true);
    expect(await locked).toBe(true);
    expect(api.owner(w, 0)).toBe(a.threadId + 1);
    await a.call(op('Unlock'));
    expect(api.isLocked(w, 0)).toBe(false);
  });

  it.each([2, 4])('keeps a non-atomic increment exact with %i threads contending', async (threads) => {
    // Long enough (hundreds of ms) that the threads overlap despite staggered scheduling.
    const iterations = threads === 2 ? 20_000 : 10_000;
    const shared = newShared();
    const specs = Array.from({ length: threads }, () => ({
      role: 'counter' as const,
      iterations,
      maxDelay: 64,
    }));
    const results = await runLoops(api.name, specs, seed, shared);
    const violations = results.reduce((n, r) => n + r.violations, 0);
    expect(violations, why('threads inside the lock at once')).toBe(0);
    const ops = results.reduce((n, r) => n + r.ops, 0);
    expect(ops).toBeGreaterThanOrEqual(threads * iterations);
    expect(Atomics.load(shared.data, S.COUNTER), why('lost increments')).toBe(ops);
    // The threads really did contend, or the exactness above would prove nothing.
    const contended = results.reduce((n, r) => n + r.contended, 0);
    expect(contended, why('no acquisition ever had to wait')).toBeGreaterThan(0);
    expect(api.isLocked(new Int32Array(shared.lockBuf), 0)).toBe(false);
  });

  it('excludes too when taken only by trylock loops', async () => {
    const iterations = 10_000;
    const shared = newShared();
    const specs = Array.from({ length: 3 }, () => ({ role: 'counter' as const, iterations, maxDelay: 32 }));
    const results = await runLoops(`${api.name}-try`, specs, seed, shared);
    expect(
      results.reduce((n, r) => n + r.violations, 0),
      why('threads inside the lock at once'),
    ).toBe(0);
    const ops = results.reduce((n, r) => n + r.ops, 0);
    expect(Atomics.load(shared.data, S.COUNTER), why('lost increments')).toBe(ops);
  });
});

describe('the counter test itself', () => {
  // Without a lock the same loop must lose increments, or the tests above would prove nothing.
  it('sees lost increments and overlapping threads when no lock is taken', async () => {
    const iterations = 20_000;
    const shared = newShared();
    const specs = Array.from({ length: 2 }, () => ({ role: 'counter' as const, iterations, maxDelay: 256 }));
    const results = await runLoops('none', specs, seed, shared);
    const overlaps = results.reduce((n, r) => n + r.violations, 0);
    const counter = Atomics.load(shared.data, S.COUNTER);
    const ops = results.reduce((n, r) => n + r.ops, 0);
    expect(overlaps > 0 || counter < ops, why('no race seen without a lock')).toBe(true);
  });
});
