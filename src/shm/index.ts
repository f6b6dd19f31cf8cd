export * from './layout.js';
export * from './mutex.js';
export * from './percpu-rwsem.js';
export * from './rwsem.js';
export * from './seqcount.js';
export * from './spinlock.js';
