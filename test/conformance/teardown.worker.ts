/** Scenario 18's second thread: attach the world, then munmap on command after a short delay. */
import { parentPort, workerData } from 'node:worker_threads';
import { attachViolationLog, type ViolationLogDescriptor } from '../../src/checker/oracles.js';
import { dmirrorDriver } from '../../src/driver/dmirror.js';
import type { DeviceDescriptor, FileDescriptor } from '../../src/driver/types.js';
import { attachMm, type MmDescriptor } from '../../src/mm/mm.js';
import { munmap } from '../../src/mm/mmap.js';
import { attachPhysMem, type PhysMemDescriptor } from '../../src/mm/physmem.js';
import {
  attachMmuNotifierSubscriptions,
  type MmuNotifierSubscriptionsDescriptor,
} from '../../src/notifier/index.js';
import { C_ADDR, C_CMD, C_DELAY_NS, C_DONE, C_LEN, C_RESULT } from './teardown-shared.js';

interface Input {
  phys: PhysMemDescriptor;
  mm: MmDescriptor;
  notifier: MmuNotifierSubscriptionsDescriptor;
  devices: DeviceDescriptor[];
  files: FileDescriptor[];
  log: ViolationLogDescriptor;
  ctl: SharedArrayBuffer;
}

const d = workerData as Input;
const phys = attachPhysMem(d.phys);
const mm = attachMm(d.mm, phys);
attachMmuNotifierSubscriptions(mm, d.notifier);
const log = attachViolationLog(d.log);
const devices = d.devices.map((dd) => dmirrorDriver.attachDevice({ phys, log }, dd));
for (const fd of d.files) devices.find((x) => x.id === fd.deviceId)!.attachFile(fd, mm);
const ctl = new Int32Array(d.ctl);
parentPort!.postMessage('ready');

let seen = 0;
for (;;) {
  while (Atomics.load(ctl, C_CMD) === seen) Atomics.wait(ctl, C_CMD, seen, 100);
  seen = Atomics.load(ctl, C_CMD);
  const addr = Atomics.load(ctl, C_ADDR);
  if (addr < 0) break;
  const until = performance.now() + Atomics.load(ctl, C_DELAY_NS) / 1e6;
  while (performance.now() < until) {
    // spin: 0-32 us
  }
  Atomics.store(ctl, C_RESULT, munmap(mm, addr, Atomics.load(ctl, C_LEN)));
  Atomics.add(ctl, C_DONE, 1);
  Atomics.notify(ctl, C_DONE);
}
parentPort!.postMessage('bye');
