/**
 * The simulated system of one run: physical memory, the process's mm with its interval-notifier
 * state, the devices and their open files, and the violation log. Built on the main thread
 * (`buildWorld`) and attached in each device worker (`attachWorld`) from a plain descriptor.
 *
 * Every thread that can invalidate the mm must attach every file (the invalidate op runs in the
 * invalidating thread: a device's COW fault or migration invalidates other devices' mirrors), so
 * each worker attaches all devices and all files, not only its own.
 *
 * SEAM (mm-A): the regions are mapped with `mapRegion` from ./core.js, the one adapter over the
 * mm's mutation API.
 */
import {
  attachViolationLog,
  createViolationLog,
  type ViolationLog,
  type ViolationLogDescriptor,
} from '../checker/oracles.js';
import { type DmirrorDevice, type DmirrorFile, dmirrorDriver } from '../driver/dmirror.js';
import type { DeviceDescriptor, FileDescriptor } from '../driver/types.js';
import { setHmmKernel } from '../hmm/hmm.js';
import { attachMm, createMm, type MmDescriptor, type MmStruct } from '../mm/mm.js';
import { attachPhysMem, createPhysMem, type PhysMem, type PhysMemDescriptor } from '../mm/physmem.js';
import {
  attachMmuNotifierSubscriptions,
  type MmuNotifierSubscriptions,
  type MmuNotifierSubscriptionsDescriptor,
  mmuNotifierSubscriptionsGet,
} from '../notifier/index.js';
import { mapRegion } from './core.js';
import type { Scenario } from './scenario.js';
import { placeRegions, type RegionPlacement } from './workload.js';

export interface WorldDescriptor {
  kernel: '5.10.109' | '5.10.0';
  phys: PhysMemDescriptor;
  mm: MmDescriptor;
  notifier: MmuNotifierSubscriptionsDescriptor;
  devices: DeviceDescriptor[];
  files: FileDescriptor[];
  log: ViolationLogDescriptor;
  regions: RegionPlacement[];
}

export interface World {
  phys: PhysMem;
  mm: MmStruct;
  notifier: MmuNotifierSubscriptions;
  devices: DmirrorDevice[];
  /** file i is device i's open file on `mm` */
  files: DmirrorFile[];
  log: ViolationLog;
  regions: RegionPlacement[];
  descriptor: WorldDescriptor;
}

/** Main thread: build the world a scenario describes. Throws RangeError on impossible sizes. */
export function buildWorld(s: Scenario): World {
  setHmmKernel(s.kernel);
  const phys = createPhysMem({ nframes: s.memory.frames, W: s.memory.wordsPerPage });
  const mm = createMm(phys, {
    size: s.memory.addressSpaceMiB * 1024 * 1024,
    freeMode: s.memory.free,
    thpMode: s.memory.thp,
  });
  const notifier = mmuNotifierSubscriptionsGet(mm);
  const log = createViolationLog(256);
  const regions = placeRegions(s.regions);
  for (const r of regions) {
    const ret = mapRegion(mm, r);
    if (ret < 0) throw new RangeError(`mapping region ${r.index} failed: ${ret}`);
  }
  const env = { phys, log };
  const devices: DmirrorDevice[] = [];
  const files: DmirrorFile[] = [];
  for (let i = 0; i < s.devices; i++) {
    const dev = dmirrorDriver.createDevice(env, { accessSection: s.accessSection });
    const f = dev.open(mm);
    if (typeof f === 'number') throw new RangeError(`opening a file on device ${dev.id} failed: ${f}`);
    devices.push(dev);
    files.push(f);
  }
  return {
    phys,
    mm,
    notifier,
    devices,
    files,
    log,
    regions,
    descriptor: {
      kernel: s.kernel,
      phys: phys.descriptor(),
      mm: mm.descriptor(),
      notifier: notifier.descriptor(),
      devices: devices.map((d) => d.descriptor()),
      files: files.map((f) => f.descriptor()),
      log: log.descriptor(),
      regions,
    },
  };
}

/** Worker: attach everything (all devices, all files: their invalidate ops may run here). */
export function attachWorld(d: WorldDescriptor): World {
  setHmmKernel(d.kernel);
  const phys = attachPhysMem(d.phys);
  const mm = attachMm(d.mm, phys);
  const notifier = attachMmuNotifierSubscriptions(mm, d.notifier);
  const log = attachViolationLog(d.log);
  const env = { phys, log };
  const devices = d.devices.map((dd) => dmirrorDriver.attachDevice(env, dd));
  const files = d.files.map((fd) => {
    const dev = devices.find((x) => x.id === fd.deviceId);
    if (dev === undefined) throw new Error(`file ${fd.id}: device ${fd.deviceId} not in the world`);
    return dev.attachFile(fd, mm);
  });
  return { phys, mm, notifier, devices, files, log, regions: d.regions, descriptor: d };
}
