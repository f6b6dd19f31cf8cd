import { describe, expect, it } from 'vitest';
import { runThroughput } from '../../bench/throughput/run.js';
import { parseScenario } from '../../src/sim/scenario.js';

describe('throughput benchmark', () => {
  it('measures every variant with real device workers (tiny windows)', async () => {
    const r = await runThroughput({
      full: false,
      devices: [2],
      reps: 1,
      windowMs: 40,
      warmMs: 10,
      noOracles: true,
      log: () => {},
    });
    expect(r.schema).toBe('hmmsim-bench-throughput');
    expect(r.machine.cores).toBeGreaterThan(0);
    const names = r.configs[0]!.variants.map((v) => v.name);
    expect(names).toContain('seqlock@2');
    expect(names).toContain('seqlock@1');
    expect(names).toContain('message@2');
    expect(names).toContain('seqlock@2+access');
    for (const c of r.configs) {
      for (const v of c.variants) {
        expect(v.pagesMirroredPerSec.median).toBeGreaterThan(0);
        // mirror-only variants access nothing; the +access ones access every chunk they fault
        if (v.name.endsWith('+access')) expect(v.deviceAccessesPerSec.median).toBeGreaterThan(0);
        else expect(v.deviceAccessesPerSec.median).toBe(0);
      }
      expect(c.variants.find((v) => v.name === 'seqlock@2')!.errors).toBe(0);
    }
    const ids = r.targets.map((t) => t.id);
    for (const id of [
      'seqlock-vs-global-2dev-0',
      'seqlock-vs-global-2dev-20000',
      'seqlock-vs-global-2dev-0-access',
      'seqlock-vs-message-2dev-0',
      'scaling-seqlock-0',
      'scaling-global-0',
      'retries-seqlock-20k',
    ]) {
      expect(ids).toContain(id);
    }
  }, 120_000);

  it('the scenario has an oracles switch, on by default', () => {
    expect(parseScenario({}).oracles).toBe(true);
    expect(parseScenario({ oracles: false }).oracles).toBe(false);
  });
});
