/**
 * The public mm API in one place: the core (layout, mm, physical memory, page table, faults,
 * mmap family, fork, exit, CPU accesses, the notifier chain) and the mutations the mutator and
 * the devices issue (madvise, NUMA, reclaim, writeback, khugepaged, memory failure, THP split,
 * the OOM reaper, device migration).
 */
export * from './cpu.js';
export * from './exit.js';
export * from './fault.js';
export * from './fork.js';
export * from './khugepaged.js';
export * from './layout.js';
export * from './madvise.js';
export * from './memory-failure.js';
export * from './memremap.js';
export * from './migrate-device.js';
export * from './mm.js';
export * from './mmap.js';
export * from './mmu-notifier.js';
export * from './notify.js';
export * from './numa.js';
export * from './oom.js';
export * from './pgtable.js';
export * from './physmem.js';
export * from './reclaim.js';
export * from './thp.js';
export * from './writeback.js';
