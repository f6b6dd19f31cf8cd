/** The v5.4 mirror API (spec/legacy-v5.4.md): struct hmm, mirrors, ranges, hmm_range_fault. */
export * from './hmm.js';
export * from './hmm-range-fault.js';
