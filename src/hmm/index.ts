export * from './hmm.js';
export * from './pfn.js';
