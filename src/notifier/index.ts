export * from './interval-notifier.js';
export * from './layout.js';
export * from './ops.js';
export * from './stats.js';
