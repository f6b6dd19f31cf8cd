/**
 * The sequence counter (src/shm/seqcount.ts): a writer keeps rewriting N words, all equal to its
 * iteration number, under seqWriteBegin/End; readers copy the words with plain reads and must never
 * accept (seqReadRetry false) a copy whose words differ.
 */
import { describe, expect, it } from 'vitest';
import { seqReadBegin, seqReadRetry, seqWriteBegin, seqWriteEnd, sharedInt32 } from '../../src/shm/index.js';
import { newShared, runLoops, testSeed } from './harness.js';
import { S } from './shared.js';

const seed = testSeed();
const why = (what: string) => `${what} (seed ${seed}; rerun with HMMSIM_SEED=${seed})`;

describe('seqcount', () => {
  it('is odd inside a write section and a read across one must retry', () => {
    const w = sharedInt32(1);
    const s0 = seqReadBegin(w, 0);
    expect(s0 & 1).toBe(0);
    expect(seqReadRetry(w, 0, s0)).toBe(false);
    seqWriteBegin(w, 0);
    expect(Atomics.load(w, 0) & 1).toBe(1);
    expect(seqReadRetry(w, 0, s0)).toBe(true);
    seqWriteEnd(w, 0);
    expect(seqReadRetry(w, 0, s0)).toBe(true);
    const s1 = seqReadBegin(w, 0);
    expect(s1).toBe(s0 + 2);
    expect(seqReadRetry(w, 0, s1)).toBe(false);
  });

  it('keeps its parity across the 2^32 wrap', () => {
    const w = sharedInt32(1);
    Atomics.store(w, 0, 0x7ffffffe); // even, next write passes INT32_MAX
    seqWriteBegin(w, 0);
    expect(Atomics.load(w, 0) & 1).toBe(1);
    seqWriteEnd(w, 0);
    const s = seqReadBegin(w, 0);
    expect(s).toBe(-0x80000000);
    seqWriteBegin(w, 0);
    seqWriteEnd(w, 0);
    expect(seqReadRetry(w, 0, s)).toBe(true);
    expect(seqReadBegin(w, 0) & 1).toBe(0);
  });

  it.each([
    [8, 2],
    [32, 3],
  ])('readers never accept a torn %i-word value (%i readers)', async (words, readers) => {
    const shared = newShared();
    const specs = [
      { role: 'seq-writer' as const, iterations: 20_000, maxDelay: 400 },
      ...Array.from({ length: readers }, () => ({ role: 'seq-reader' as const, iterations: 0 })),
    ];
    const results = await runLoops('none', specs, seed, shared, words);
    const rs = results.slice(1);
    const torn = rs.reduce((n, r) => n + r.violations, 0);
    const accepted = rs.reduce((n, r) => n + r.accepted, 0);
    const retried = rs.reduce((n, r) => n + r.retried, 0);
    expect(torn, why(`accepted torn reads (accepted ${accepted}, retried ${retried})`)).toBe(0);
    expect(accepted, why('no read accepted while the writer ran')).toBeGreaterThan(0);
    // The final value is whole and the counter even.
    const writes = results[0]!.ops;
    expect(writes).toBeGreaterThanOrEqual(20_000);
    expect(Atomics.load(shared.data, S.SEQ)).toBe(2 * writes);
    for (let k = 0; k < words; k++) expect(Atomics.load(shared.data, S.PAYLOAD + k)).toBe(writes);
  });
});
