/**
 * struct dev_pagemap_ops for device-private memory (memremap_pages): the CPU fault path reaches
 * a device-private entry's owner through this registry to call its migrate_to_ram. The registry
 * is thread-local (functions cannot cross threads): every thread that may fault on a device page
 * registers the ops of every device, as each attaches the device's shared state.
 */
import type { MmStruct } from './mm.js';

export interface DevPagemapOps {
  /**
   * dev_pagemap_ops.migrate_to_ram: move the device page `pfn` mapped at byte `address` of `mm`
   * back to a system frame (issuing its MIGRATE invalidation). Called with the mmap lock held for
   * read. Returns 0 or VM_FAULT_* bits (mm/fault.ts).
   */
  migrateToRam(mm: MmStruct, address: number, pfn: number): number;
}

const registry: (DevPagemapOps | undefined)[] = [];

/** Register (or replace) the ops of device `owner` (0..127) for this thread. */
export function registerDevPagemapOps(owner: number, ops: DevPagemapOps): void {
  registry[owner] = ops;
}

export function unregisterDevPagemapOps(owner: number): void {
  registry[owner] = undefined;
}

/** The ops of device `owner` on this thread, or undefined. */
export function devPagemapOps(owner: number): DevPagemapOps | undefined {
  return registry[owner];
}
