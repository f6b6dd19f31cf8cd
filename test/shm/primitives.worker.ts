/**
 * Worker side of the shm tests. Two kinds of work, chosen by `workerData.role`:
 * - loops (`counter`, `seq-writer`, `seq-reader`, `rw-writer`, `rw-reader`): wait at a start gate,
 *   run a bounded number of operations, post one result object and exit (the rw loops run on the
 *   rwsem or, with lock `percpu-rwsem`, on the percpu rwsem);
 * - `actor`: perform one lock operation per message, in order, replying with its result, so a test
 *   can script exact interleavings (a reply that does not come means the operation is blocked).
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import {
  downgradeWrite,
  downRead,
  downReadTrylock,
  downWrite,
  downWriteTrylock,
  mutexLock,
  mutexOwner,
  mutexTrylock,
  mutexUnlock,
  percpuDowngradeWrite,
  percpuDownRead,
  percpuDownReadTrylock,
  percpuDownWrite,
  percpuDownWriteTrylock,
  percpuRwsemHeldHere,
  percpuUpRead,
  percpuUpWrite,
  seqReadBegin,
  seqReadRetry,
  seqWriteBegin,
  seqWriteEnd,
  spinLock,
  spinOwner,
  spinTrylock,
  spinUnlock,
  upRead,
  upWrite,
} from '../../src/shm/index.js';
import { type ActorOp, type LoopResult, mulberry32, S, type WorkerInput } from './shared.js';

const input = workerData as WorkerInput;
const port = parentPort!;

/** Burn `n` loop iterations: widens the window between a read and the write that depends on it. */
function delay(n: number): number {
  let x = 0;
  for (let k = 0; k < n; k++) x = (x + k) | 0;
  return x;
}

/** Check in, then wait until the main thread opens the gate, so all workers start together. */
function gate(ctl: Int32Array): void {
  Atomics.add(ctl, S.READY, 1);
  Atomics.notify(ctl, S.READY);
  while (Atomics.load(ctl, S.GO) === 0) Atomics.wait(ctl, S.GO, 0, 50);
}

/**
 * Whether a loop goes on: until `iterations` are done and then, if the threads have not yet met
 * (no contended acquisition, overlap or accepted read recorded in EVIDENCE), until they do or the
 * time cap passes. On a loaded 2-core machine workers can otherwise run one after the other.
 */
function goOn(n: number, data: Int32Array, deadline: number): boolean {
  if (n < input.iterations) return true;
  if (Atomics.load(data, S.EVIDENCE) !== 0) return false;
  return (n & 255) !== 0 || performance.now() < deadline; // read the clock now and then only
}

function counterLoop(lock: Int32Array, data: Int32Array, deadline: number): LoopResult {
  const rnd = mulberry32(input.seed);
  const kind = input.lock;
  let contended = 0;
  let violations = 0;
  let n = 0;
  for (; goOn(n, data, deadline); n++) {
    const gap = Math.floor(rnd() * input.maxDelay);
    let waited = false;
    if (kind === 'mutex') waited = mutexLock(lock, 0);
    else if (kind === 'spin') waited = spinLock(lock, 0);
    else if (kind === 'mutex-try') while (!mutexTrylock(lock, 0)) waited = true;
    else if (kind === 'spin-try') while (!spinTrylock(lock, 0)) waited = true;
    if (waited && contended++ === 0) Atomics.add(data, S.EVIDENCE, 1);
    // Nobody else may be inside: `inside` counts holders, and the holder word names us.
    if (Atomics.add(data, S.INSIDE, 1) !== 0 && violations++ === 0) Atomics.add(data, S.EVIDENCE, 1);
    if (kind !== 'none') {
      const owner = kind.startsWith('mutex') ? mutexOwner(lock, 0) : spinOwner(lock, 0);
      if (owner !== threadId + 1) violations++;
    }
    // The non-atomic increment the lock must protect: a plain read, a delay, a store of value + 1.
    const v = data[S.COUNTER]!;
    delay(gap);
    Atomics.store(data, S.COUNTER, v + 1);
    Atomics.sub(data, S.INSIDE, 1);
    if (kind === 'mutex' || kind === 'mutex-try') mutexUnlock(lock, 0);
    else if (kind === 'spin' || kind === 'spin-try') spinUnlock(lock, 0);
    delay(gap >> 1);
  }
  return { ops: n, contended, violations, accepted: 0, retried: 0, tornSeen: 0, maxConcurrent: 0 };
}

function seqWriter(ctl: Int32Array, data: Int32Array, deadline: number): LoopResult {
  const rnd = mulberry32(input.seed);
  const words = input.words;
  let i = 1;
  for (; goOn(i - 1, data, deadline); i++) {
    seqWriteBegin(data, S.SEQ);
    for (let k = 0; k < words; k++) {
      Atomics.store(data, S.PAYLOAD + k, i);
      if (k === 0) delay(Math.floor(rnd() * 50)); // a writer that is slow mid-update
    }
    seqWriteEnd(data, S.SEQ);
    delay(Math.floor(rnd() * input.maxDelay));
  }
  Atomics.store(ctl, S.DONE, 1);
  return { ops: i - 1, contended: 0, violations: 0, accepted: 0, retried: 0, tornSeen: 0, maxConcurrent: 0 };
}

function seqReader(ctl: Int32Array, data: Int32Array): LoopResult {
  const words = input.words;
  const copy = new Int32Array(words);
  let accepted = 0;
  let retried = 0;
  let tornSeen = 0;
  let violations = 0;
  // Read until the writer is done; only reads that overlapped the writer count as accepted.
  while (Atomics.load(ctl, S.DONE) === 0) {
    const s = seqReadBegin(data, S.SEQ);
    // Plain reads, validated by seqReadRetry below (its Atomics.load orders them before it).
    for (let k = 0; k < words; k++) copy[k] = data[S.PAYLOAD + k]!;
    let equal = true;
    for (let k = 1; k < words; k++) if (copy[k] !== copy[0]) equal = false;
    if (seqReadRetry(data, S.SEQ, s)) {
      retried++;
      if (!equal) tornSeen++;
      continue;
    }
    if (!equal) violations++;
    else if (accepted++ === 0) Atomics.add(data, S.EVIDENCE, 1);
  }
  return { ops: accepted + retried, contended: 0, violations, accepted, retried, tornSeen, maxConcurrent: 0 };
}

/** The rw loop's view of a reader/writer lock at offset 0 of `lock`. */
interface RwApi {
  downRead(w: Int32Array, b: number): boolean;
  downReadTrylock(w: Int32Array, b: number): boolean;
  upRead(w: Int32Array, b: number): void;
  downWrite(w: Int32Array, b: number): boolean;
  downWriteTrylock(w: Int32Array, b: number): boolean;
  upWrite(w: Int32Array, b: number): void;
  downgradeWrite(w: Int32Array, b: number): void;
  /** Whether this thread may believe it holds the lock (null: the lock cannot tell). */
  heldHere: ((w: Int32Array, b: number) => boolean) | null;
}

const rwsemApi: RwApi = {
  downRead,
  downReadTrylock,
  upRead,
  downWrite,
  downWriteTrylock,
  upWrite,
  downgradeWrite,
  heldHere: null,
};

const percpuApi: RwApi = {
  downRead: percpuDownRead,
  downReadTrylock: percpuDownReadTrylock,
  upRead: percpuUpRead,
  downWrite: percpuDownWrite,
  downWriteTrylock: percpuDownWriteTrylock,
  upWrite: percpuUpWrite,
  downgradeWrite: percpuDowngradeWrite,
  heldHere: percpuRwsemHeldHere,
};

/**
 * Readers and writers of a two-word value under the rwsem (or the percpu rwsem); each checks who
 * else is inside. With `input.mixed`, some acquisitions go through the trylocks (falling back to
 * the blocking call when they fail) and some writers downgrade and finish as readers.
 */
function rwLoop(lock: Int32Array, data: Int32Array, writer: boolean, deadline: number): LoopResult {
  const rnd = mulberry32(input.seed);
  const api = input.lock === 'percpu-rwsem' ? percpuApi : rwsemApi;
  const mixed = input.mixed === true;
  let violations = 0;
  let contended = 0;
  let maxConcurrent = 0;
  let n = 0;
  for (; goOn(n, data, deadline); n++) {
    const gap = Math.floor(rnd() * input.maxDelay);
    const how = mixed ? rnd() : 1;
    if (writer) {
      if (how < 0.2) {
        if (!api.downWriteTrylock(lock, 0) && api.downWrite(lock, 0)) contended++;
      } else if (api.downWrite(lock, 0)) contended++;
      if (Atomics.add(data, S.WRITERS, 1) !== 0) violations++;
      if (Atomics.load(data, S.READERS) !== 0) violations++;
      if (api.heldHere !== null && !api.heldHere(lock, 0)) violations++;
      const v = data[S.PAYLOAD]!;
      Atomics.store(data, S.PAYLOAD, v + 1);
      delay(gap);
      Atomics.store(data, S.PAYLOAD + 1, v + 1);
      Atomics.sub(data, S.WRITERS, 1);
      if (how < 0.6 && how >= 0.4) {
        // Downgrade: still a writer until the call, a reader after it (no writer may get in).
        Atomics.add(data, S.READERS, 1);
        api.downgradeWrite(lock, 0);
        delay(gap >> 1);
        if (Atomics.load(data, S.WRITERS) !== 0) violations++;
        if (data[S.PAYLOAD] !== v + 1 || data[S.PAYLOAD + 1] !== v + 1) violations++;
        if (api.heldHere !== null && !api.heldHere(lock, 0)) violations++;
        Atomics.sub(data, S.READERS, 1);
        api.upRead(lock, 0);
      } else api.upWrite(lock, 0);
    } else {
      if (how < 0.2) {
        if (!api.downReadTrylock(lock, 0) && api.downRead(lock, 0)) contended++;
      } else if (api.downRead(lock, 0)) contended++;
      const inside = Atomics.add(data, S.READERS, 1) + 1;
      if (inside > maxConcurrent && (maxConcurrent = inside) === 2) Atomics.add(data, S.EVIDENCE, 1);
      if (Atomics.load(data, S.WRITERS) !== 0) violations++;
      if (api.heldHere !== null && !api.heldHere(lock, 0)) violations++;
      const a = data[S.PAYLOAD]!;
      delay(gap);
      if (data[S.PAYLOAD + 1] !== a) violations++;
      Atomics.sub(data, S.READERS, 1);
      api.upRead(lock, 0);
    }
    delay(gap);
  }
  return { ops: n, contended, violations, accepted: 0, retried: 0, tornSeen: 0, maxConcurrent };
}

function actor(lock: Int32Array): void {
  port.on('message', (msg: { id: number; op: ActorOp }) => {
    let result: boolean | null = null;
    switch (msg.op) {
      case 'mutexLock':
        result = mutexLock(lock, 0);
        break;
      case 'mutexTrylock':
        result = mutexTrylock(lock, 0);
        break;
      case 'mutexUnlock':
        mutexUnlock(lock, 0);
        break;
      case 'spinLock':
        result = spinLock(lock, 0);
        break;
      case 'spinTrylock':
        result = spinTrylock(lock, 0);
        break;
      case 'spinUnlock':
        spinUnlock(lock, 0);
        break;
      case 'downRead':
        result = downRead(lock, 0);
        break;
      case 'downReadTrylock':
        result = downReadTrylock(lock, 0);
        break;
      case 'upRead':
        upRead(lock, 0);
        break;
      case 'downWrite':
        result = downWrite(lock, 0);
        break;
      case 'downWriteTrylock':
        result = downWriteTrylock(lock, 0);
        break;
      case 'upWrite':
        upWrite(lock, 0);
        break;
      case 'downgradeWrite':
        downgradeWrite(lock, 0);
        break;
      case 'percpuDownRead':
        result = percpuDownRead(lock, 0);
        break;
      case 'percpuDownReadTrylock':
        result = percpuDownReadTrylock(lock, 0);
        break;
      case 'percpuUpRead':
        percpuUpRead(lock, 0);
        break;
      case 'percpuDownWrite':
        result = percpuDownWrite(lock, 0);
        break;
      case 'percpuDownWriteTrylock':
        result = percpuDownWriteTrylock(lock, 0);
        break;
      case 'percpuUpWrite':
        percpuUpWrite(lock, 0);
        break;
      case 'percpuDowngradeWrite':
        percpuDowngradeWrite(lock, 0);
        break;
      case 'percpuHeldHere':
        result = percpuRwsemHeldHere(lock, 0);
        break;
    }
    port.postMessage({ id: msg.id, result, threadId });
  });
  port.postMessage({ id: 0, result: null, threadId });
}

const ctl = new Int32Array(input.ctl);
const lock = new Int32Array(input.lockBuf);
const data = new Int32Array(input.data);
if (input.role === 'actor') {
  actor(lock);
} else {
  gate(ctl);
  const t0 = performance.now();
  const deadline = t0 + input.maxMs;
  let r: LoopResult;
  if (input.role === 'counter') r = counterLoop(lock, data, deadline);
  else if (input.role === 'seq-writer') r = seqWriter(ctl, data, deadline);
  else if (input.role === 'seq-reader') r = seqReader(ctl, data);
  else r = rwLoop(lock, data, input.role === 'rw-writer', deadline);
  r.elapsedMs = performance.now() - t0;
  port.postMessage(r);
}
