/**
 * hmmsim's library entry: everything a user's script or test needs to drive a scenario
 * single-threaded, or to attach the same shared objects from a worker.
 */

export * from './checker/oracles.js';
export * from './checker/points.js';
export * from './driver/dmirror.js';
export * from './driver/types.js';
export * from './hmm/index.js';
export * from './mm/index.js';
export * from './notifier/index.js';
export * from './shm/index.js';
