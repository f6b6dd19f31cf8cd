/** A mirror registered in a worker is invalidated from the main thread (ops resolved per thread). */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { createViolationLog, readViolations } from '../../src/checker/oracles.js';
import { legacyDmirrorDriver } from '../../src/driver/legacy-dmirror.js';
import type { FileDescriptor } from '../../src/driver/types.js';
import { hmmGetOrCreate } from '../../src/legacy/index.js';
import { PAGE_SIZE } from '../../src/mm/layout.js';
import { MADV_DONTNEED, madvise } from '../../src/mm/madvise.js';
import { createMm } from '../../src/mm/mm.js';
import { createPhysMem } from '../../src/mm/physmem.js';
import { cpuFill, mapAnon, W } from '../conformance/helpers.js';
import { pfnAt } from './helpers.js';

interface Msg {
  kind: string;
  file?: FileDescriptor;
  r?: number[];
  ret?: number;
}

describe('legacy mirrors across threads', () => {
  it("the main thread's invalidation runs a worker-registered mirror's sync op", async () => {
    const phys = createPhysMem({ W, nframes: 4096 });
    const mm = createMm(phys, { size: 1 << 26 });
    const log = createViolationLog(16);
    const hmm = hmmGetOrCreate(mm);
    const dev = legacyDmirrorDriver.createDevice({ phys, log });
    const a = mapAnon(mm, 4);
    cpuFill(mm, a, 4);
    const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
    const entry = JSON.stringify(new URL('./mirror.worker.ts', import.meta.url).href);
    const worker = new Worker(`import(${api}).then((t) => { t.register(); return import(${entry}); })`, {
      eval: true,
      workerData: {
        phys: phys.descriptor(),
        mm: mm.descriptor(),
        hmm: hmm.descriptor(),
        device: dev.descriptor(),
        log: log.descriptor(),
        W,
      },
    });
    const inbox: Msg[] = [];
    let failure: unknown = null;
    worker.on('message', (m: Msg) => inbox.push(m));
    worker.on('error', (e) => {
      failure = e;
    });
    const next = async (kind: string): Promise<Msg> => {
      const until = Date.now() + 20000;
      for (;;) {
        if (failure !== null) throw failure;
        const i = inbox.findIndex((m) => m.kind === kind);
        if (i >= 0) return inbox.splice(i, 1)[0]!;
        if (Date.now() > until) throw new Error(`no '${kind}' from the worker`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    try {
      const opened = await next('opened');
      // the main thread attaches the worker's file, so its ops resolve here
      const f = dev.attachFile(opened.file!, mm);
      expect(hmm.state().mirrors).toBe(1);
      worker.postMessage({ kind: 'read', addr: a });
      expect((await next('read')).r).toEqual([0, 1, 1, 0]);
      expect(f.mirrorEntry(a / PAGE_SIZE)!.pfn).toBe(pfnAt(mm, a));
      expect(madvise(mm, a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
      expect(f.mirrorEntry(a / PAGE_SIZE)).toBe(null);
      expect(hmm.state()).toMatchObject({ notifiers: 0, syncCalls: 1, mirrors: 1 });
      expect(f.stats().entriesErased).toBe(1);
      // another page, still mapped: a new fault through the same mirror
      worker.postMessage({ kind: 'read', addr: a + PAGE_SIZE });
      expect((await next('read')).r).toEqual([0, 1, 1, 0]);
      worker.postMessage({ kind: 'close', addr: 0 });
      expect((await next('closed')).ret).toBe(0);
      expect(hmm.state().mirrors).toBe(0);
      expect(readViolations(log).length).toBe(0);
    } finally {
      await worker.terminate();
    }
  }, 30000);
});
