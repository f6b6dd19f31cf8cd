/** Main-thread side of the shm tests: start TypeScript workers, gate them, script actors. */
import { Worker } from 'node:worker_threads';
import { sharedInt32 } from '../../src/shm/index.js';
import {
  type ActorOp,
  CTL_WORDS,
  DATA_WORDS,
  type LockKind,
  type LoopResult,
  S,
  type WorkerInput,
} from './shared.js';

const WORKER_URL = new URL('./primitives.worker.ts', import.meta.url);
// Not `import.meta.resolve('tsx')`: see tsx-register.mjs for why a worker must register tsx itself.
const TSX = ['--import', new URL('./tsx-register.mjs', import.meta.url).href];

/** The run's seed: HMMSIM_SEED if set, else a fresh one. Tests put it in every failure message. */
export function testSeed(): number {
  const env = process.env.HMMSIM_SEED;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env) >>> 0;
  return (Math.random() * 2 ** 32) >>> 0;
}

/** Cap on a loop's extra time when its threads have not met after their operations (ms). */
export const MAX_LOOP_MS = 3_000;

export function startWorker(input: WorkerInput): Worker {
  return new Worker(WORKER_URL, { execArgv: TSX, workerData: input });
}

export interface LoopSpec {
  role: WorkerInput['role'];
  iterations: number;
  maxDelay?: number;
  /** rw loops on the percpu rwsem: mix in trylocks and downgrades (WorkerInput.mixed). */
  mixed?: boolean;
}

export interface Shared {
  lockBuf: SharedArrayBuffer;
  ctl: Int32Array;
  data: Int32Array;
}

/** `lockBytes`: the lock buffer's size (the percpu rwsem needs PERCPU_RWSEM_WORDS * 4). */
export function newShared(lockBytes = 64): Shared {
  return {
    lockBuf: new SharedArrayBuffer(lockBytes),
    ctl: sharedInt32(CTL_WORDS),
    data: sharedInt32(DATA_WORDS),
  };
}

/**
 * Start one worker per spec, open the gate once all are ready (tsx start-up takes a while, and
 * staggered starts would leave little overlap), and collect their results. Each worker's seed is
 * derived from `seed`, so a failing run can be repeated with HMMSIM_SEED.
 */
export async function runLoops(
  lock: LockKind,
  specs: LoopSpec[],
  seed: number,
  shared: Shared = newShared(),
  words = 8,
): Promise<LoopResult[]> {
  const workers = specs.map((s, n) =>
    startWorker({
      role: s.role,
      lock,
      lockBuf: shared.lockBuf,
      ctl: shared.ctl.buffer as SharedArrayBuffer,
      data: shared.data.buffer as SharedArrayBuffer,
      seed: (seed + Math.imul(n + 1, 0x9e3779b1)) | 0,
      iterations: s.iterations,
      maxDelay: s.maxDelay ?? 0,
      words,
      maxMs: MAX_LOOP_MS,
      ...(s.mixed === undefined ? {} : { mixed: s.mixed }),
    }),
  );
  const results = workers.map(
    (w) =>
      new Promise<LoopResult>((resolve, reject) => {
        w.once('message', (r: LoopResult) => resolve(r));
        w.once('error', reject);
        w.once('exit', (code) => reject(new Error(`worker exited with ${code} before reporting`)));
      }),
  );
  // A worker that dies before reporting fails the run at once, not after the start-up deadline.
  let failure: unknown;
  for (const r of results) r.catch((e: unknown) => (failure ??= e));
  try {
    const deadline = Date.now() + 20_000;
    while (Atomics.load(shared.ctl, S.READY) < workers.length) {
      if (failure !== undefined) throw failure;
      if (Date.now() > deadline) throw new Error('workers did not start within 20 s');
      await new Promise((r) => setTimeout(r, 5));
    }
    Atomics.store(shared.ctl, S.GO, 1);
    Atomics.notify(shared.ctl, S.GO);
    return await Promise.all(results);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * A worker that performs one lock operation per call, in order. A call that does not settle means
 * the operation is blocked in the worker; `settlesWithin` tells the two apart with a timeout.
 */
export class Actor {
  private readonly worker: Worker;
  private readonly pending = new Map<number, (r: boolean | null) => void>();
  private nextId = 1;
  readonly ready: Promise<void>;
  threadId = -1;

  constructor(lockBuf: SharedArrayBuffer) {
    const dummy = new SharedArrayBuffer(4);
    this.worker = startWorker({
      role: 'actor',
      lock: 'rwsem',
      lockBuf,
      ctl: dummy,
      data: dummy,
      seed: 0,
      iterations: 0,
      maxDelay: 0,
      words: 0,
      maxMs: 0,
    });
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (m: { id: number; result: boolean | null; threadId: number }) => {
        if (m.id === 0) {
          this.threadId = m.threadId;
          resolve();
          return;
        }
        const done = this.pending.get(m.id);
        this.pending.delete(m.id);
        done?.(m.result);
      });
      this.worker.once('error', reject);
    });
  }

  /** Send one operation; resolves with its result (the `waited` flag or the trylock outcome). */
  call(op: ActorOp): Promise<boolean | null> {
    const id = this.nextId++;
    const p = new Promise<boolean | null>((resolve) => this.pending.set(id, resolve));
    this.worker.postMessage({ id, op });
    return p;
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}

/** Whether `p` settles within `ms`: false means the operation behind it is (still) blocked. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const r = await Promise.race([p.then(() => true as const), timeout]);
  clearTimeout(timer);
  return r;
}

/** Poll `cond` every few ms until it holds or `ms` pass. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
}
