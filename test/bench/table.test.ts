import { describe, expect, it } from 'vitest';
import { END, type Results, renderPerformance, START, spliceReadme } from '../../bench/readme-table.js';

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
});
