/** Shared set-up of the legacy (v5.4) tests: one mm, the legacy reference device, a violation log. */
import { createViolationLog, type ViolationLog } from '../../src/checker/oracles.js';
import {
  type LegacyDmirrorDevice,
  type LegacyDmirrorFile,
  legacyDmirrorDriver,
} from '../../src/driver/legacy-dmirror.js';
import { PAGE_SIZE, PTE_PAYLOAD_MASK } from '../../src/mm/layout.js';
import { createMm, type MmStruct } from '../../src/mm/mm.js';
import { createPhysMem, type PhysMem } from '../../src/mm/physmem.js';
import { W } from '../conformance/helpers.js';

export interface LegacyWorld {
  phys: PhysMem;
  mm: MmStruct;
  log: ViolationLog;
  dev: LegacyDmirrorDevice;
  f: LegacyDmirrorFile;
}

export function legacyWorld(): LegacyWorld {
  const phys = createPhysMem({ W, nframes: 8192 });
  const mm = createMm(phys, { size: 1 << 28 });
  const log = createViolationLog(64);
  const dev = legacyDmirrorDriver.createDevice({ phys, log });
  const f = dev.open(mm);
  if (typeof f === 'number') throw new Error(`open failed: ${f}`);
  return { phys, mm, log, dev, f };
}

/** The PFN the CPU maps at `addr` (a present PTE). */
export function pfnAt(mm: MmStruct, addr: number): number {
  return Atomics.load(mm.pte, addr / PAGE_SIZE) & PTE_PAYLOAD_MASK;
}
