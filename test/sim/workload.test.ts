import { describe, expect, it } from 'vitest';
import { deriveSeed, Prng, ZipfSampler } from '../../src/sim/prng.js';
import { placeRegions, Workload } from '../../src/sim/workload.js';
import { testSeed } from './helpers.js';

const regions = placeRegions([
  { pages: 100, kind: 'anon', prot: 'rw', hugepage: false },
  { pages: 600, kind: 'anon', prot: 'rw', hugepage: true },
]);
const params = {
  pattern: 'uniform' as const,
  rangePages: { min: 1, max: 64 },
  writeFraction: 0.5,
  snapshotFraction: 0.1,
  migrateFraction: 0.1,
  hotSetFraction: 0.1,
  hotProbability: 0.9,
  zipfExponent: 1.1,
};

describe('workload', () => {
  it('regions start on 2 MiB boundaries from 2 MiB', () => {
    expect(regions.map((r) => r.start)).toEqual([512, 1024]);
  });

  it.each(['sequential', 'uniform', 'hotset', 'zipf'] as const)(
    '%s ranges stay inside one region',
    (pattern) => {
      const seed = testSeed();
      const w = new Workload({ ...params, pattern }, regions, seed);
      for (let i = 0; i < 5000; i++) {
        w.next();
        const r = regions.find((x) => w.page >= x.start && w.page < x.start + x.pages);
        expect(r, `seed ${seed}`).toBeDefined();
        expect(w.page + w.npages, `seed ${seed}`).toBeLessThanOrEqual(r!.start + r!.pages);
        expect(w.npages).toBeGreaterThanOrEqual(1);
      }
    },
  );

  it('the same seed gives the same choices', () => {
    const seed = testSeed();
    const a = new Workload(params, regions, seed);
    const b = new Workload(params, regions, seed);
    for (let i = 0; i < 100; i++) {
      a.next();
      b.next();
      expect([a.kind, a.page, a.npages], `seed ${seed}`).toEqual([b.kind, b.page, b.npages]);
    }
    expect(deriveSeed(seed, 1)).not.toBe(deriveSeed(seed, 2));
  });

  it('zipf prefers low ranks', () => {
    const z = new ZipfSampler(100, 1.2);
    const rng = new Prng(testSeed());
    let low = 0;
    for (let i = 0; i < 10000; i++) if (z.sample(rng) < 10) low++;
    expect(low).toBeGreaterThan(5000);
  });
});
