/**
 * Worker side of test/notifier/threads.test.ts. Attaches the mm and its interval-notifier state
 * from workerData and runs one scripted role. Progress words in `ctl` (Atomics) let the main
 * thread see where the worker is without waiting for a message.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { configureInjection } from '../../src/checker/points.js';
import { attachMm } from '../../src/mm/mm.js';
import { mmuNotifierRangeInit } from '../../src/mm/mmu-notifier.js';
import { attachPhysMem } from '../../src/mm/physmem.js';
import {
  attachMmuNotifierSubscriptions,
  MmuIntervalNotifier,
  mmuIntervalNotifierAttach,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierStats,
  registerMmuIntervalOpsKind,
} from '../../src/notifier/index.js';
import { mutexLock, mutexUnlock } from '../../src/shm/mutex.js';
import {
  C_DONE,
  C_LOCK,
  C_READY,
  C_REC,
  C_STOP,
  C_VERSION,
  C_VIOL,
  type WorkerInput,
} from './worker-protocol.js';

const input = workerData as WorkerInput;
const ctl = new Int32Array(input.ctl);
configureInjection(input.mutants, false, input.seed ?? 1);
const mm = attachMm(input.mm, attachPhysMem(input.phys));
const core = attachMmuNotifierSubscriptions(mm, input.subs);
const port = parentPort!;

function signal(word: number): void {
  Atomics.store(ctl, word, 1);
  Atomics.notify(ctl, word);
}

function attach(): MmuIntervalNotifier {
  const h = mmuIntervalNotifierAttach(mm, input.sub!);
  if (h === null) throw new Error('subscription gone');
  return h;
}

switch (input.role) {
  case 'readBegin': {
    const h = attach();
    signal(C_READY);
    const seq = mmuIntervalReadBegin(h);
    signal(C_DONE);
    port.postMessage({
      seq,
      slept: mmuNotifierStats.lastReadBeginSlept,
      sleepMs: mmuNotifierStats.lastReadBeginSleepMs,
      retry: mmuIntervalReadRetry(h, seq),
      mmSeqAfter: core.invalidateSeq(),
    });
    break;
  }
  case 'remove': {
    const h = attach();
    const slot = h.slot;
    signal(C_READY);
    mmuIntervalNotifierRemove(h);
    // Lock-free read, right after remove returned: is the removal applied yet?
    const stateAfter = core.slotState(slot);
    signal(C_DONE);
    port.postMessage({ stateAfter, removeWaits: mmuNotifierStats.removeWaits });
    break;
  }
  case 'insert':
  case 'insertLocal': {
    const h = new MmuIntervalNotifier();
    const ops =
      input.role === 'insert' ? { kind: input.kind!, opsId: input.opsId! } : { invalidate: () => true };
    const ret = mmuIntervalNotifierInsert(h, mm, input.start!, input.length!, ops);
    port.postMessage({ ret, desc: ret === 0 ? h.descriptor() : null, threadId });
    port.on('message', (m: string) => {
      if (m === 'remove') {
        const slot = h.slot;
        mmuIntervalNotifierRemove(h);
        port.postMessage({ removed: true, state: core.slotState(slot) });
        port.close();
      }
    });
    break;
  }
  case 'invalidate': {
    registerMmuIntervalOpsKind(input.kind!, (opsId) => ({
      invalidate(sub, range, curSeq) {
        Atomics.store(ctl, C_REC, opsId);
        Atomics.store(ctl, C_REC + 1, curSeq);
        Atomics.store(ctl, C_REC + 2, threadId);
        Atomics.store(ctl, C_REC + 3, range.start);
        Atomics.store(ctl, C_REC + 4, range.end);
        Atomics.store(ctl, C_REC + 5, range.event);
        Atomics.add(ctl, C_REC + 6, 1);
        Atomics.store(ctl, C_REC + 7, sub.slot);
        mmuIntervalSetSeq(sub, curSeq);
        return true;
      },
    }));
    const r = mmuNotifierRangeInit(mm.id, 1, input.start!, input.start! + input.length!);
    const ret = mm.notifiers.invalidateRangeStart(r);
    const seqInside = core.invalidateSeq();
    if (ret === 0) mm.notifiers.invalidateRangeEnd(r);
    port.postMessage({ ret, seqInside, seqAfter: core.invalidateSeq(), threadId });
    break;
  }
  case 'reader': {
    // The documented driver pattern against a mutator that bumps C_VERSION between start and end
    // of every range that hits the subscription: a snapshot that passes read_retry under the
    // user lock must still be current.
    const h = attach();
    let ok = 0;
    let retries = 0;
    let violations = 0;
    let firstViolationAt = -1;
    Atomics.add(ctl, C_READY, 1); // several readers share ctl: count them in
    const iters = input.iters ?? 1000;
    let rng = input.seed! | 0 || 1;
    let sink = 0;
    let i = 0;
    for (; i < iters && Atomics.load(ctl, C_STOP) === 0; i++) {
      const seq = mmuIntervalReadBegin(h);
      const v = Atomics.load(ctl, C_VERSION);
      // the "walk" (hmm_range_fault): a seeded random few microseconds
      rng ^= rng << 13;
      rng ^= rng >>> 17;
      rng ^= rng << 5;
      const n = (rng >>> 0) % 4000;
      for (let j = 0; j < n; j++) sink += j;
      mutexLock(ctl, C_LOCK);
      if (mmuIntervalReadRetry(h, seq)) retries++;
      else if (Atomics.load(ctl, C_VERSION) !== v) {
        violations++;
        Atomics.add(ctl, C_VIOL, 1);
        if (firstViolationAt < 0) firstViolationAt = i;
      } else ok++;
      mutexUnlock(ctl, C_LOCK);
    }
    signal(C_DONE);
    port.postMessage({
      ok,
      retries,
      violations,
      firstViolationAt,
      iterations: i,
      sleeps: mmuNotifierStats.readBeginSleeps,
      sink: sink & 1,
    });
    break;
  }
}
