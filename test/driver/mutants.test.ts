/**
 * Each driver-side mutant (spec/checking.md) makes oracle #1 (stale access) or #3 (mirror
 * coherence) fire in a small deterministic schedule, and the correct driver in the same schedule
 * stays clean. Single-threaded schedules run the "other thread's" work synchronously at a named
 * point (sched.ts hook); where the correct driver would block that thread (read_begin waiting for
 * the invalidation, the op waiting for an access), a second thread plays the device.
 */
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import {
  readViolations,
  V_MIRROR_INCOHERENT,
  V_STALE_ACCESS,
  type Violation,
} from '../../src/checker/oracles.js';
import {
  configureInjection,
  MUTANT_INVALIDATE_NO_LOCK,
  MUTANT_INVALIDATE_NOOP,
  MUTANT_NO_ACCESS_DRAIN,
  MUTANT_NO_SET_SEQ,
  MUTANT_RETRY_OUTSIDE_LOCK,
  MUTANT_SEQ_NOT_ODD,
  MUTANT_SKIP_READ_RETRY,
  POINT_BEFORE_PROGRAM,
  POINT_BEFORE_USER_LOCK,
  POINT_DEVICE_ACCESS,
} from '../../src/checker/points.js';
import { dmirrorAuditQuiescent } from '../../src/driver/audit.js';
import { HOOK_AFTER_INVALIDATE, setPointHook } from '../../src/driver/sched.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { MADV_DONTNEED, madvise } from '../../src/mm/madvise.js';
import { EAGAIN, MMU_NOTIFY_CLEAR, MMU_NOTIFY_UNMAP } from '../../src/mm/mmu-notifier.js';
import { invalidateRangeStart, rangeInit } from '../../src/mm/notify.js';
import { mmuNotifierSubscriptionsGet } from '../../src/notifier/index.js';
import { sharedInt32 } from '../../src/shm/layout.js';
import { cpuFill, expectClean, mapAnon, setup, W, type World } from '../conformance/helpers.js';
import { R_ADDR, R_CMD, R_DONE, R_FILE, R_GO, R_NPAGES, R_PAUSED, R_RET, R_WORDS } from './reader-shared.js';

afterEach(() => {
  setPointHook(null);
  configureInjection(0, false, 1);
});

function stale(w: World): Violation[] {
  return readViolations(w.log).filter((v) => v.kind === V_STALE_ACCESS);
}

/** A hook that runs `fn` the first time `point` is passed. */
function once(point: number, fn: () => void): void {
  let fired = false;
  setPointHook((p) => {
    if (p !== point || fired) return;
    fired = true;
    fn();
  });
}

/** Two written pages; the device reads page 0 while `fn` frees its frame at `point`. */
function freeDuringRead(
  mutants: number,
  point: number,
): { w: World; ret: number; retries: number; pfn: number } {
  const w = setup();
  const a = mapAnon(w.mm, 2);
  cpuFill(w.mm, a, 2, 1);
  const pfn = Atomics.load(w.mm.pte, a / PAGE_SIZE) & 0xffffff;
  configureInjection(mutants, false, 1);
  once(point, () => expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0));
  const r = w.f0.read(a, 1, new Int32Array(W));
  configureInjection(0, false, 1);
  setPointHook(null);
  return { w, ret: r.ret, retries: r.retries, pfn };
}

describe('driver mutants are caught', () => {
  for (const [name, bit] of [
    ['skip-read-retry', MUTANT_SKIP_READ_RETRY],
    ['retry-outside-lock', MUTANT_RETRY_OUTSIDE_LOCK],
    ['no-set-seq', MUTANT_NO_SET_SEQ],
  ] as const) {
    it(`${name}: a free between the walk and the lock -> stale access (#1)`, () => {
      const bad = freeDuringRead(bit, POINT_BEFORE_USER_LOCK);
      const v = stale(bad.w);
      expect(v.length).toBeGreaterThan(0);
      expect(v[0]!.pfn).toBe(bad.pfn);
      expect(v[0]!.genNow).not.toBe(v[0]!.genRecorded);
      expect(v[0]!.freeEvent).toBe(MMU_NOTIFY_CLEAR);
      expect(v[0]!.detailName).toBe('read');
      // the correct driver in the same schedule retries once and stays clean
      const good = freeDuringRead(0, POINT_BEFORE_USER_LOCK);
      expect([good.ret, good.retries]).toEqual([0, 1]);
      expectClean(good.w);
    });
  }

  it('invalidate-no-lock: the op runs while the device programs -> stale access (#1)', () => {
    const bad = freeDuringRead(MUTANT_INVALIDATE_NO_LOCK, POINT_BEFORE_PROGRAM);
    expect(stale(bad.w).length).toBeGreaterThan(0);
    // correct driver: the op cannot run there; a non-blockable one fails to take the lock
    const w = setup();
    const a = mapAnon(w.mm, 1);
    cpuFill(w.mm, a, 1);
    once(POINT_BEFORE_PROGRAM, () =>
      expect(invalidateRangeStart(w.mm, rangeInit(w.mm, MMU_NOTIFY_UNMAP, a, a + PAGE_SIZE, false))).toBe(
        -EAGAIN,
      ),
    );
    expect(w.f0.read(a, 1, new Int32Array(W)).ret).toBe(0);
    expectClean(w);
  });

  for (const bit of [0, MUTANT_INVALIDATE_NOOP]) {
    it(`invalidate-noop${bit === 0 ? ' (correct driver)' : ''}: entries survive a DONTNEED -> #3 and #1`, () => {
      const w = setup();
      const a = mapAnon(w.mm, 1);
      cpuFill(w.mm, a, 1);
      configureInjection(bit, false, 1);
      expect(w.f0.read(a, 1, new Int32Array(W)).ret).toBe(0);
      expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
      configureInjection(0, false, 1);
      if (bit === 0) {
        expect(w.f0.read(a, 1, new Int32Array(W)).faults).toBe(1);
        expectClean(w);
        return;
      }
      expect(dmirrorAuditQuiescent(w.mm, w.files, w.log)).toBeGreaterThan(0);
      expect(readViolations(w.log)[0]!.kind).toBe(V_MIRROR_INCOHERENT);
      w.f0.read(a, 1, new Int32Array(W));
      expect(stale(w).length).toBe(1);
    });
  }

  it('no-access-drain (single thread): a free inside an access section -> stale access (#1)', () => {
    const w = setup({ accessSection: true });
    const a = mapAnon(w.mm, 1);
    cpuFill(w.mm, a, 1);
    expect(w.f0.read(a, 1, new Int32Array(W)).ret).toBe(0);
    configureInjection(MUTANT_NO_ACCESS_DRAIN, false, 1);
    once(POINT_DEVICE_ACCESS, () => expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0));
    w.f0.read(a, 1, new Int32Array(W));
    expect(stale(w).length).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Two-thread schedules

interface Reader {
  ctl: Int32Array;
  worker: Worker;
  read(file: number, addr: number, npages: number): void;
  waitDone(done: number, ms: number): boolean;
  stop(): Promise<void>;
}

async function startReader(w: World, mutants: number, pauseAtAccess: boolean): Promise<Reader> {
  const ctl = sharedInt32(R_WORDS);
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const entry = JSON.stringify(new URL('./reader.worker.ts', import.meta.url).href);
  const worker = new Worker(`import(${api}).then((t) => { t.register(); return import(${entry}); })`, {
    eval: true,
    workerData: {
      phys: w.phys.descriptor(),
      mm: w.mm.descriptor(),
      notifier: mmuNotifierSubscriptionsGet(w.mm).descriptor(),
      devices: [w.dev0.descriptor(), w.dev1.descriptor()],
      files: w.files.map((f) => f.descriptor()),
      log: w.log.descriptor(),
      ctl: ctl.buffer,
      mutants,
      pauseAtAccess,
    },
  });
  const msgs: string[] = [];
  worker.on('message', (m: string) => msgs.push(m));
  const until = (m: string) =>
    new Promise<void>((res, rej) => {
      worker.on('error', rej);
      const t = () => (msgs.includes(m) ? res() : setTimeout(t, 5));
      t();
    });
  await until('ready');
  return {
    ctl,
    worker,
    read(file, addr, npages) {
      Atomics.store(ctl, R_FILE, file);
      Atomics.store(ctl, R_ADDR, addr);
      Atomics.store(ctl, R_NPAGES, npages);
      Atomics.add(ctl, R_CMD, 1);
      Atomics.notify(ctl, R_CMD);
    },
    waitDone(done, ms) {
      const t0 = performance.now();
      while (Atomics.load(ctl, R_DONE) === done) {
        const left = ms - (performance.now() - t0);
        if (left <= 0) return false;
        Atomics.wait(ctl, R_DONE, done, left);
      }
      return true;
    },
    async stop() {
      Atomics.store(ctl, R_ADDR, -1);
      Atomics.add(ctl, R_CMD, 1);
      Atomics.notify(ctl, R_CMD);
      await until('bye');
      await worker.terminate();
    },
  };
}

describe('driver mutants are caught (two threads)', () => {
  for (const bit of [MUTANT_SEQ_NOT_ODD, 0]) {
    it(`seq-not-odd${bit === 0 ? ' (correct driver)' : ''}: a reader inside an open invalidation`, async () => {
      const w = setup();
      const a = mapAnon(w.mm, 1);
      cpuFill(w.mm, a, 1);
      const rd = await startReader(w, bit, false);
      try {
        configureInjection(bit, false, 1);
        let finished = false;
        // Inside f0's op (after its unlock, before the PTE change): the other device thread
        // reads the page. With the mutant read_begin does not wait and the read completes here;
        // the correct read_begin sleeps until the invalidation ends.
        once(HOOK_AFTER_INVALIDATE, () => {
          rd.read(0, a, 1);
          finished = rd.waitDone(0, 300);
        });
        expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
        setPointHook(null);
        configureInjection(0, false, 1);
        expect(rd.waitDone(0, 5000)).toBe(true);
        expect(Atomics.load(rd.ctl, R_RET)).toBe(0);
        expect(finished).toBe(bit !== 0);
        if (bit === 0) {
          expectClean(w);
        } else {
          expect(dmirrorAuditQuiescent(w.mm, w.files, w.log)).toBeGreaterThan(0);
          w.f0.read(a, 1, new Int32Array(W));
          expect(stale(w).length).toBe(1);
        }
      } finally {
        await rd.stop();
      }
    });
  }

  for (const bit of [MUTANT_NO_ACCESS_DRAIN, 0]) {
    it(`no-access-drain${bit === 0 ? ' (correct driver)' : ''}: a free while another thread copies`, async () => {
      const w = setup({ accessSection: true });
      const a = mapAnon(w.mm, 1);
      cpuFill(w.mm, a, 1);
      expect(w.f0.read(a, 1, new Int32Array(W)).ret).toBe(0);
      const rd = await startReader(w, bit, true);
      try {
        configureInjection(bit, false, 1);
        rd.read(0, a, 1);
        while (Atomics.load(rd.ctl, R_PAUSED) === 0) Atomics.wait(rd.ctl, R_PAUSED, 0, 100);
        // The reader is inside its access section. The correct op waits for it (the reader's
        // pause times out and it finishes its copy first); the mutant's op returns at once.
        expect(madvise(w.mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
        configureInjection(0, false, 1);
        Atomics.store(rd.ctl, R_GO, 1);
        Atomics.notify(rd.ctl, R_GO);
        expect(rd.waitDone(0, 5000)).toBe(true);
        if (bit === 0) expectClean(w);
        else expect(stale(w).length).toBe(1);
      } finally {
        await rd.stop();
      }
    });
  }
});
