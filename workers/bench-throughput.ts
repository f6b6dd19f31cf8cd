/**
 * A device of the throughput benchmark (bench/throughput): attach the world, then loop until the
 * mode word says stop. Each operation picks an aligned 64-page chunk of the benchmark region and
 * read or write (from a PRNG reseeded each window, so every variant of a repetition sees the same
 * sequence), faults it in with the variant's design, then (T_ACCESS) reads or writes it through the
 * mirror.
 *
 * - seqlock: the reference driver's range-fault routine as is (read_begin, walk under the mmap
 *   read lock, update lock, read_retry, install).
 * - global lock: the same routine with one global mutex held around it (walk and install); the
 *   mutating thread holds the same mutex around each mutation, so nothing ever collides.
 * - message passing: the page table belongs to the main thread; each chunk is one postMessage
 *   round trip (the main thread walks and installs, the reply carries the return code).
 *
 * Idle between windows: the device sleeps on the epoch word (Atomics.wait, no spinning).
 */

import {
  CHUNK_PAGES,
  MODE_GLOBAL,
  MODE_IDLE,
  MODE_MESSAGE,
  MODE_SEQLOCK,
  MODE_STOP,
  T_ACCESS,
  T_EPOCH,
  T_GLOBAL,
  T_MODE,
  T_SEED,
  T_SPIN,
  T_WORLD,
  TD_ACCESS_US,
  TD_ACCESSES,
  TD_CHUNKS,
  TD_CRASHED,
  TD_ERRORS,
  TD_FAULT_US,
  TD_IDLE_EPOCH,
  TD_LOCK_US,
  TD_OPS,
  TD_PAGES,
  TD_READY,
  TD_REFAULTS,
  TD_SAMPLES,
  type ThroughputTask,
  type ThroughputTaskResult,
  tdBase,
} from '../bench/throughput/layout.js';
import { mutexLock, mutexUnlock } from '../src/shm/mutex.js';
import { deriveSeed, Prng } from '../src/sim/prng.js';
import { attachWorld } from '../src/sim/world.js';

/** Publish the counters every PUBLISH operations (a power of 2). */
const PUBLISH = 32;
/** Time one operation in SAMPLE (a power of 2). */
const SAMPLE = 16;

export default async function benchThroughputTask(task: ThroughputTask): Promise<ThroughputTaskResult> {
  const c = new Int32Array(task.control);
  const b = tdBase(task.index);
  const port = task.port;
  let error: string | null = null;
  // The message-passing reply: one pending resolver (one request in flight per device).
  let pending: ((ret: number) => void) | null = null;
  port.on('message', (ret: number) => {
    const r = pending;
    pending = null;
    r?.(ret);
  });
  const request = (page: number, write: boolean): Promise<number> =>
    new Promise<number>((resolve) => {
      pending = resolve;
      port.postMessage(write ? -page - 1 : page);
    });
  try {
    const worlds = task.worlds.map((d) => attachWorld(d));
    const files = worlds.map((w) => w.files[task.index]!);
    let file = files[0]!;
    const W = worlds[0]!.phys.W;
    const buf = new Int32Array(CHUNK_PAGES * W);
    let rng = new Prng(1);
    let epoch = -1;
    let access = true;
    let fill = (task.index + 1) << 24;
    // Counters are kept in locals and published with Atomics.store every PUBLISH ops (every op in
    // the message-passing variant, whose rate is low) and before going idle: a window edge misses
    // at most PUBLISH - 1 operations per device. Times are sampled on one operation in SAMPLE
    // (performance.now costs ~70 ns here, ~5% of a seqlock operation): microseconds, wrapping.
    let ops = 0;
    let chunks = 0;
    let pages = 0;
    let accesses = 0;
    let errors = 0;
    let refaults = 0;
    let samples = 0;
    let faultUs = 0;
    let accessUs = 0;
    let lockUs = 0;
    const publish = (): void => {
      Atomics.store(c, b + TD_CHUNKS, chunks | 0);
      Atomics.store(c, b + TD_PAGES, pages | 0);
      Atomics.store(c, b + TD_ACCESSES, accesses | 0);
      Atomics.store(c, b + TD_ERRORS, errors | 0);
      Atomics.store(c, b + TD_REFAULTS, refaults | 0);
      Atomics.store(c, b + TD_SAMPLES, samples | 0);
      Atomics.store(c, b + TD_FAULT_US, Math.trunc(faultUs % 2 ** 31));
      Atomics.store(c, b + TD_ACCESS_US, Math.trunc(accessUs % 2 ** 31));
      Atomics.store(c, b + TD_LOCK_US, Math.trunc(lockUs % 2 ** 31));
      Atomics.store(c, b + TD_OPS, ops | 0);
    };
    Atomics.store(c, b + TD_READY, 1);
    for (;;) {
      const mode = Atomics.load(c, T_MODE);
      if (mode === MODE_STOP) break;
      const e = Atomics.load(c, T_EPOCH);
      // Idle between windows, or parked for this window (TD_READY 2: not among the active devices).
      if (mode === MODE_IDLE || Atomics.load(c, b + TD_READY) === 2) {
        publish();
        Atomics.store(c, b + TD_IDLE_EPOCH, e);
        Atomics.notify(c, b + TD_IDLE_EPOCH);
        Atomics.wait(c, T_EPOCH, e, 50);
        continue;
      }
      if (e !== epoch) {
        epoch = e;
        file = files[Atomics.load(c, T_WORLD)]!;
        access = Atomics.load(c, T_ACCESS) !== 0;
        rng = new Prng(deriveSeed(Atomics.load(c, T_SEED), task.index));
      }
      const page = task.regionStart + rng.below(task.chunks) * CHUNK_PAGES;
      const write = rng.chance(task.writeFraction);
      const addr = page * 4096;
      const sampled = (ops & (SAMPLE - 1)) === 0;
      let ret: number;
      const tf = sampled ? performance.now() : 0;
      if (mode === MODE_SEQLOCK) {
        ret = file.rangeFault(addr, addr + CHUNK_PAGES * 4096, write);
      } else if (mode === MODE_GLOBAL) {
        mutexLock(c, T_GLOBAL, Atomics.load(c, T_SPIN));
        if (sampled) lockUs += (performance.now() - tf) * 1000;
        ret = file.rangeFault(addr, addr + CHUNK_PAGES * 4096, write);
        mutexUnlock(c, T_GLOBAL);
      } else if (mode === MODE_MESSAGE) {
        ret = await request(page, write);
      } else {
        throw new Error(`unknown mode ${mode}`);
      }
      const ta = sampled ? performance.now() : 0;
      if (sampled) {
        faultUs += (ta - tf) * 1000;
        samples++;
      }
      if (ret === 0) {
        chunks++;
        pages += CHUNK_PAGES;
      }
      if (ret === 0 && access) {
        let res: { ret: number; cpages: number; faults: number };
        if (write) {
          fill = (fill + 1) | 0;
          buf.fill(fill);
          res = file.write(addr, CHUNK_PAGES, buf);
        } else {
          res = file.read(addr, CHUNK_PAGES, buf);
        }
        if (res.ret === 0) accesses += res.cpages;
        else errors++;
        refaults += res.faults;
        if (sampled) accessUs += (performance.now() - ta) * 1000;
      } else if (ret !== 0) {
        errors++;
      }
      ops++;
      if (mode === MODE_MESSAGE || (ops & (PUBLISH - 1)) === 0) publish();
    }
  } catch (e) {
    error = e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e);
    Atomics.store(c, b + TD_CRASHED, 1);
    Atomics.notify(c, b + TD_IDLE_EPOCH);
  } finally {
    port.close();
  }
  return { index: task.index, error };
}
