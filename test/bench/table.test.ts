import { describe, expect, it } from 'vitest';
import { END, type Results, renderPerformance, START, spliceReadme } from '../../bench/readme-table.js';
import type { ThroughputResults, VariantResult } from '../../bench/throughput/run.js';

const s = (m: number) => ({ median: m, min: m * 0.9, max: m * 1.1, reps: [m, m, m, m, m] });

const fixture: Results = {
  name: 'micro',
  mode: 'quick',
  date: '2026-01-01',
  machine: {
    cpu: 'Test CPU',
    cores: 2,
    node: '20.0.0',
    v8: '11.3',
    platform: 'linux',
    arch: 'x64',
    totalMemBytes: 1,
  },
  config: { reps: 5, timeMs: 10, warmupMs: 5 },
  seed: 1,
  micro: [
    {
      id: 'walk-a',
      group: 'walk',
      label: 'walk A',
      baseline: 'floor',
      ratio: s(1.2),
      variantNs: s(1.2),
      baselineNs: s(1),
      unit: 'page',
      target: { max: 1.6 },
      met: true,
      includes: 'i',
      excludes: 'e',
    },
    {
      id: 'walk-b',
      group: 'walk',
      label: 'walk B',
      baseline: 'floor',
      ratio: s(2),
      variantNs: s(2),
      baselineNs: s(1),
      unit: 'page',
      target: { max: 1.15 },
      met: false,
      includes: 'i',
      excludes: 'e',
    },
    {
      id: 'ref',
      group: 'walk',
      label: 'reference C',
      baseline: 'floor',
      ratio: s(5),
      variantNs: s(5),
      baselineNs: s(1),
      unit: 'page',
      includes: 'i',
      excludes: 'e',
    },
  ],
  memory: null,
  throughput: null,
};

describe('bench/readme-table', () => {
  const out = renderPerformance(fixture);
  const row = (label: string) => out.split('\n').find((l) => l.startsWith(`| ${label} |`)) ?? '';

  it('puts each target beside its figure with met / missed', () => {
    expect(row('walk A')).toContain('| 1.20x |');
    expect(row('walk A')).toContain('| <= 1.6x | met |');
    expect(row('walk B')).toContain('| <= 1.15x | **missed** |');
    expect(row('reference C')).toMatch(/\| - \| - \|$/);
  });

  it('names the machine, and says so when no throughput results are given', () => {
    expect(out).toContain('Test CPU, 2 cores, Node 20.0.0, V8 11.3');
    expect(out).toContain('throughput: not measured in this run');
  });

  it('replaces only the text between the markers', () => {
    const readme = `# T\n\n## Performance\n\n${START}\nold\n${END}\n\n## Next\n`;
    const r = spliceReadme(readme, out);
    expect(r.startsWith('# T\n\n## Performance\n\n')).toBe(true);
    expect(r.endsWith('\n\n## Next\n')).toBe(true);
    expect(r).not.toContain('old');
  });

  it('adds the device curve of a full run: a 1-device row from the 2-device world, then each world', () => {
    const v = (name: string, pages: number): VariantResult =>
      ({ name, pagesMirroredPerSec: s(pages), deviceAccessesPerSec: s(0) }) as unknown as VariantResult;
    const full = {
      mode: 'full',
      startedAt: '2026-01-02T00:00:00.000Z',
      machine: { cores: 16, cpu: 'Big CPU', node: '20', platform: 'linux', arch: 'x64' },
      settings: { repetitions: 5, windowMs: 500 },
      configs: [
        {
          worldDevices: 2,
          mutationRate: 0,
          globalSpin: { candidates: {}, chosen: 100 },
          variants: [
            v('seqlock@1', 50e6),
            v('seqlock@2', 100e6),
            v('global@2/spin100', 40e6),
            v('global@1/spin0', 30e6),
            v('global@1/spin100', 45e6),
            v('message@2', 2e6),
          ],
        },
        {
          worldDevices: 4,
          mutationRate: 0,
          globalSpin: { candidates: {}, chosen: 30 },
          variants: [v('seqlock@4', 200e6), v('global@4/spin30', 50e6), v('message@4', 3e6)],
        },
      ],
    } as unknown as ThroughputResults;
    const text = renderPerformance(fixture, null, full);
    const lines = text.split('\n');
    expect(text).toContain('Device curve, **full** run of 2026-01-02 (16 cores, Big CPU');
    expect(lines).toContain('| 1 | 0 | 50.0 M | 45.0 M (100) | - | 1.11 |');
    expect(lines).toContain('| 2 | 0 | 100 M | 40.0 M (100) | 2.00 M | 2.50 |');
    expect(lines).toContain('| 4 | 0 | 200 M | 50.0 M (30) | 3.00 M | 4.00 |');
  });
});
