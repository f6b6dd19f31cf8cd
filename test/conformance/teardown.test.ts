/** Conformance scenario 18: a device read racing a munmap of the second half from another thread. */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { readViolations } from '../../src/checker/oracles.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { munmap } from '../../src/mm/mmap.js';
import { mmuNotifierSubscriptionsGet } from '../../src/notifier/index.js';
import { sharedInt32 } from '../../src/shm/layout.js';
import { cpuFill, expectClean, expectSame, mapAnon, NPAGES, pattern, setup, W } from './helpers.js';
import { C_ADDR, C_CMD, C_DELAY_NS, C_DONE, C_LEN, C_RESULT, C_WORDS } from './teardown-shared.js';

function seedOf(): number {
  const env = process.env.HMMSIM_SEED;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env) >>> 0;
  return (Math.random() * 2 ** 32) >>> 0 || 1;
}

describe('conformance: teardown race', () => {
  it('18 read vs munmap of the second half from another thread', async () => {
    const seed = seedOf();
    const msg = `seed ${seed} (HMMSIM_SEED=${seed} to replay the delays)`;
    let rng = seed | 0 || 1;
    const next = (): number => {
      rng ^= rng << 13;
      rng ^= rng >>> 17;
      rng ^= rng << 5;
      return rng >>> 0;
    };
    const w = setup();
    const ctl = sharedInt32(C_WORDS);
    const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
    const entry = JSON.stringify(new URL('./teardown.worker.ts', import.meta.url).href);
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
      },
    });
    const messages: string[] = [];
    const gotMessage = (want: string) =>
      new Promise<void>((res, rej) => {
        const check = () => (messages.includes(want) ? res() : setTimeout(check, 5));
        worker.on('error', rej);
        check();
      });
    worker.on('message', (m: string) => messages.push(m));
    await gotMessage('ready');
    try {
      const out = new Int32Array(NPAGES * W);
      let oks = 0;
      for (let c = 0; c < 10; c++) {
        const a = mapAnon(w.mm, NPAGES);
        cpuFill(w.mm, a, NPAGES, c);
        Atomics.store(ctl, C_ADDR, a + (NPAGES / 2) * PAGE_SIZE);
        Atomics.store(ctl, C_LEN, (NPAGES / 2) * PAGE_SIZE);
        Atomics.store(ctl, C_DELAY_NS, next() % 32_001);
        const done = Atomics.load(ctl, C_DONE);
        Atomics.add(ctl, C_CMD, 1);
        Atomics.notify(ctl, C_CMD);
        const r = w.f0.read(a, NPAGES, out);
        while (Atomics.load(ctl, C_DONE) === done) Atomics.wait(ctl, C_DONE, done, 100);
        expect(Atomics.load(ctl, C_RESULT), msg).toBe(0);
        if (r.ret === 0) {
          oks++;
          expect([r.cpages, r.faults], msg).toEqual([NPAGES, 1]);
          expectSame(out, pattern(NPAGES, c));
        }
        expect(
          readViolations(w.log).map((v) => v.text),
          msg,
        ).toEqual([]);
        expect(munmap(w.mm, a, (NPAGES / 2) * PAGE_SIZE)).toBe(0);
      }
      expect(oks, msg).toBeGreaterThanOrEqual(0);
      expectClean(w);
    } finally {
      Atomics.store(ctl, C_ADDR, -1);
      Atomics.add(ctl, C_CMD, 1);
      Atomics.notify(ctl, C_CMD);
      await gotMessage('bye');
      await worker.terminate();
    }
  });
});
