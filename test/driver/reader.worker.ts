/** A second device thread for the driver tests: attach the world, read through a file on command. */
import { parentPort, workerData } from 'node:worker_threads';
import { attachViolationLog, type ViolationLogDescriptor } from '../../src/checker/oracles.js';
import { configureInjection, POINT_DEVICE_ACCESS } from '../../src/checker/points.js';
import { dmirrorDriver } from '../../src/driver/dmirror.js';
import { setPointHook } from '../../src/driver/sched.js';
import type { DeviceDescriptor, FileDescriptor } from '../../src/driver/types.js';
import { attachMm, type MmDescriptor } from '../../src/mm/mm.js';
import { attachPhysMem, type PhysMemDescriptor } from '../../src/mm/physmem.js';
import {
  attachMmuNotifierSubscriptions,
  type MmuNotifierSubscriptionsDescriptor,
} from '../../src/notifier/index.js';
import {
  R_ADDR,
  R_CMD,
  R_DONE,
  R_FILE,
  R_GO,
  R_NPAGES,
  R_PAUSED,
  R_RET,
  R_STARTED,
} from './reader-shared.js';

interface Input {
  phys: PhysMemDescriptor;
  mm: MmDescriptor;
  notifier: MmuNotifierSubscriptionsDescriptor;
  devices: DeviceDescriptor[];
  files: FileDescriptor[];
  log: ViolationLogDescriptor;
  ctl: SharedArrayBuffer;
  mutants: number;
  /** pause once inside the first device access: signal R_PAUSED, wait for R_GO (200 ms at most) */
  pauseAtAccess: boolean;
}

const d = workerData as Input;
configureInjection(d.mutants, false, 1);
const phys = attachPhysMem(d.phys);
const mm = attachMm(d.mm, phys);
attachMmuNotifierSubscriptions(mm, d.notifier);
const log = attachViolationLog(d.log);
const devices = d.devices.map((dd) => dmirrorDriver.attachDevice({ phys, log }, dd));
const files = d.files.map((fd) => devices.find((x) => x.id === fd.deviceId)!.attachFile(fd, mm));
const ctl = new Int32Array(d.ctl);
if (d.pauseAtAccess) {
  let paused = false;
  setPointHook((p) => {
    if (p !== POINT_DEVICE_ACCESS || paused) return;
    paused = true;
    Atomics.store(ctl, R_PAUSED, 1);
    Atomics.notify(ctl, R_PAUSED);
    Atomics.wait(ctl, R_GO, 0, 200);
  });
}
parentPort!.postMessage('ready');

let seen = 0;
for (;;) {
  while (Atomics.load(ctl, R_CMD) === seen) Atomics.wait(ctl, R_CMD, seen, 100);
  seen = Atomics.load(ctl, R_CMD);
  const addr = Atomics.load(ctl, R_ADDR);
  if (addr < 0) break;
  const f = files[Atomics.load(ctl, R_FILE)]!;
  const n = Atomics.load(ctl, R_NPAGES);
  Atomics.add(ctl, R_STARTED, 1);
  const r = f.read(addr, n, new Int32Array(n * phys.W));
  Atomics.store(ctl, R_RET, r.ret);
  Atomics.add(ctl, R_DONE, 1);
  Atomics.notify(ctl, R_DONE);
}
parentPort!.postMessage('bye');
