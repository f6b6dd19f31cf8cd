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
import { DmirrorFile, dmirrorDriver } from '../driver/dmirror.js';
import { LegacyDmirrorFile } from '../driver/legacy-dmirror.js';
import type {
  DeviceDescriptor,
  DriverEnv,
  FileDescriptor,
  MirrorDevice,
  MirrorDriver,
  MirrorFile,
} from '../driver/types.js';
import { setHmmKernel } from '../hmm/hmm.js';
import { cpuWrite } from '../mm/cpu.js';
import { PAGE_SIZE } from '../mm/layout.js';
import { attachMm, createMm, type MmDescriptor, type MmStruct } from '../mm/mm.js';
import { attachPhysMem, createPhysMem, type PhysMem, type PhysMemDescriptor } from '../mm/physmem.js';
import {
  attachMmuNotifierSubscriptions,
  type MmuNotifierSubscriptions,
  type MmuNotifierSubscriptionsDescriptor,
  mmuNotifierSubscriptionsGet,
} from '../notifier/index.js';
import { mapRegion } from './core.js';
import { BUILTIN_DMIRROR, checkMembers, DriverError, type ResolvedDevice } from './drivers.js';
import type { Protocol, Scenario } from './scenario.js';
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
  /**
   * device i's driver module (drivers.ts: builtin:..., or a file: URL), its label and protocol;
   * absent (older callers): every device is the v5.10 reference device
   */
  modules?: string[];
  labels?: string[];
  protocols?: Protocol[];
}

export interface World {
  phys: PhysMem;
  mm: MmStruct;
  notifier: MmuNotifierSubscriptions;
  devices: MirrorDevice[];
  /** file i is device i's open file on `mm` */
  files: MirrorFile[];
  log: ViolationLog;
  regions: RegionPlacement[];
  descriptor: WorldDescriptor;
}

/** The update-lock/ctl words of a built-in file (the watchdog's dump reads them), or null. */
export function fileCtl(f: MirrorFile): Int32Array | null {
  return f instanceof DmirrorFile || f instanceof LegacyDmirrorFile ? f.ctl : null;
}

/** Run a user driver's call, turning a throw into a one-line DriverError. */
function guarded<T>(where: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DriverError) throw e;
    throw new DriverError(
      `driver ${where}: ${what} threw: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`,
    );
  }
}

/** Write every page of the rw regions once (v5.4: no zero page for the walk to fail on). */
function pretouch(mm: MmStruct, regions: readonly RegionPlacement[]): void {
  for (const r of regions) {
    if (r.prot !== 'rw') continue;
    for (let p = r.start; p < r.start + r.pages; p++) cpuWrite(mm, p * PAGE_SIZE, p);
  }
}

/**
 * Main thread: build the world a scenario describes, with device i on `devs[i]`'s driver (from
 * `drivers`, loaded by drivers.ts). Throws RangeError on impossible sizes, DriverError when a
 * user's driver lacks something.
 */
export function buildWorld(
  s: Scenario,
  devs: readonly ResolvedDevice[],
  drivers: Map<string, MirrorDriver>,
): World {
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
  if (s.legacy?.pretouch === true) pretouch(mm, regions);
  const env: DriverEnv & { log: ViolationLog } = { phys, log };
  const devices: MirrorDevice[] = [];
  const files: MirrorFile[] = [];
  for (let i = 0; i < s.devices; i++) {
    const spec = devs[i]!;
    const driver = drivers.get(spec.module);
    if (driver === undefined) throw new Error(`device ${i}: driver ${spec.label} not loaded`);
    let dev: MirrorDevice;
    let f: MirrorFile | number;
    if (spec.module === BUILTIN_DMIRROR) {
      dev = dmirrorDriver.createDevice(env, {
        accessSection: s.accessSection,
        regionPages: s.subscriptionPages,
      });
      f = dev.open(mm);
    } else {
      const where = spec.label;
      dev = guarded(where, 'createDevice', () => driver.createDevice(env));
      checkMembers(dev, 'device', where);
      const d = dev;
      f = guarded(where, 'open', () => d.open(mm));
      if (typeof f !== 'number') checkMembers(f, 'file', where);
    }
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
      modules: devs.map((d) => d.module),
      labels: devs.map((d) => d.label),
      protocols: devs.map((d) => d.protocol),
    },
  };
}

/**
 * Worker: attach everything (all devices, all files: their invalidate ops may run here), each
 * device with the driver of its module (`drivers`, loaded by drivers.ts in this thread).
 */
export function attachWorld(
  d: WorldDescriptor,
  drivers: Map<string, MirrorDriver> = new Map([[BUILTIN_DMIRROR, dmirrorDriver]]),
): World {
  setHmmKernel(d.kernel);
  const phys = attachPhysMem(d.phys);
  const mm = attachMm(d.mm, phys);
  const notifier = attachMmuNotifierSubscriptions(mm, d.notifier);
  const log = attachViolationLog(d.log);
  const env = { phys, log };
  const devices = d.devices.map((dd, i) => {
    const module = d.modules?.[i] ?? BUILTIN_DMIRROR;
    const drv = drivers.get(module);
    if (drv === undefined) throw new Error(`device ${i}: driver ${module} not loaded in this worker`);
    return drv.attachDevice(env, dd);
  });
  const files = d.files.map((fd) => {
    const dev = devices.find((x) => x.id === fd.deviceId);
    if (dev === undefined) throw new Error(`file ${fd.id}: device ${fd.deviceId} not in the world`);
    return dev.attachFile(fd, mm);
  });
  return { phys, mm, notifier, devices, files, log, regions: d.regions, descriptor: d };
}
