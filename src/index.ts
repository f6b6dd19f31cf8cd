export * from './mm/layout.js';
export * from './mm/mm.js';
export * from './mm/mmu-notifier.js';
export * from './mm/physmem.js';
export * from './shm/index.js';
