/** A device thread for threads.test.ts: opens a legacy file on the mm, reads through it on command. */
import { parentPort, workerData } from 'node:worker_threads';
import { attachViolationLog, type ViolationLogDescriptor } from '../../src/checker/oracles.js';
import { legacyDmirrorDriver } from '../../src/driver/legacy-dmirror.js';
import type { DeviceDescriptor } from '../../src/driver/types.js';
import { attachHmm, type HmmDescriptor } from '../../src/legacy/index.js';
import { attachMm, type MmDescriptor } from '../../src/mm/mm.js';
import { attachPhysMem, type PhysMemDescriptor } from '../../src/mm/physmem.js';

interface Input {
  phys: PhysMemDescriptor;
  mm: MmDescriptor;
  hmm: HmmDescriptor;
  device: DeviceDescriptor;
  log: ViolationLogDescriptor;
  W: number;
}

const d = workerData as Input;
const phys = attachPhysMem(d.phys);
const mm = attachMm(d.mm, phys);
attachHmm(mm, d.hmm);
const log = attachViolationLog(d.log);
const dev = legacyDmirrorDriver.attachDevice({ phys, log }, d.device);
const f = dev.open(mm);
if (typeof f === 'number') throw new Error(`open failed: ${f}`);
parentPort!.postMessage({ kind: 'opened', file: f.descriptor() });
parentPort!.on('message', (m: { kind: string; addr: number }) => {
  if (m.kind === 'read') {
    const r = f.read(m.addr, 1, new Int32Array(d.W));
    parentPort!.postMessage({ kind: 'read', r: [r.ret, r.cpages, r.faults, r.retries] });
  } else if (m.kind === 'close') {
    parentPort!.postMessage({ kind: 'closed', ret: f.close() });
  }
});
