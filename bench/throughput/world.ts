/**
 * The throughput benchmark's world: one anonymous region of `regionPages` pages (populated once,
 * read+write, no huge pages), `devices` reference mirror devices with one open file each, every
 * file subscribed with one interval notifier per 64-page chunk (the driver's `regionPages`
 * option), so a mutation collides only with faults of the chunks it touches. Built on the main
 * thread; the descriptor is attachable in a worker with `attachWorld` (src/sim/world.ts).
 */
import { createViolationLog } from '../../src/checker/oracles.js';
import { type DmirrorDevice, type DmirrorFile, dmirrorDriver } from '../../src/driver/dmirror.js';
import { setHmmKernel } from '../../src/hmm/hmm.js';
import { createMm } from '../../src/mm/mm.js';
import { createPhysMem } from '../../src/mm/physmem.js';
import { mmuNotifierSubscriptionsGet } from '../../src/notifier/index.js';
import { mapRegion } from '../../src/sim/core.js';
import { placeRegions } from '../../src/sim/workload.js';
import type { World } from '../../src/sim/world.js';
import { CHUNK_PAGES } from './layout.js';

export interface BenchWorldOptions {
  devices: number;
  /** pages of the one benchmark region (a multiple of 64) */
  regionPages: number;
  /** dmirror's access-section model (device accesses outside the update lock; the op drains) */
  accessSection?: boolean;
  /** data words per frame: what a device access copies per page (default 1) */
  wordsPerPage?: number;
}

export function buildBenchWorld(o: BenchWorldOptions): World {
  setHmmKernel('5.10.109');
  const spaceMiB = Math.ceil(((o.regionPages + 512) * 4096) / 2 ** 21) * 2;
  const frames = Math.ceil((o.regionPages * 2 + 4096) / 512) * 512;
  const phys = createPhysMem({ nframes: frames, W: o.wordsPerPage ?? 1 });
  const mm = createMm(phys, { size: spaceMiB * 2 ** 20, freeMode: 'after-end', thpMode: 'never' });
  const nsubs = ((spaceMiB * 256) / CHUNK_PAGES) * o.devices;
  const notifier = mmuNotifierSubscriptionsGet(mm, { capacity: Math.max(1024, nsubs + 64) });
  const log = createViolationLog(256);
  const regions = placeRegions([{ pages: o.regionPages, kind: 'anon', prot: 'rw', hugepage: false }]);
  for (const r of regions) {
    const ret = mapRegion(mm, r);
    if (ret < 0) throw new RangeError(`mapping the benchmark region failed: ${ret}`);
  }
  const env = { phys, log };
  const devices: DmirrorDevice[] = [];
  const files: DmirrorFile[] = [];
  for (let i = 0; i < o.devices; i++) {
    const dev = dmirrorDriver.createDevice(env, {
      regionPages: CHUNK_PAGES,
      accessSection: o.accessSection ?? false,
    });
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
      kernel: '5.10.109',
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
