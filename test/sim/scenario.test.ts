import { describe, expect, it } from 'vitest';
import {
  applyOverrides,
  defaultScenario,
  MUTATION_KINDS,
  parseScenario,
  ScenarioError,
} from '../../src/sim/scenario.js';

function errorOf(input: unknown): string {
  try {
    parseScenario(input, 'x.json');
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    return (e as Error).message;
  }
  throw new Error('expected a ScenarioError');
}

describe('scenario schema', () => {
  it('the default scenario has 2 devices and every mutation kind weighted', () => {
    const s = defaultScenario();
    expect(s.devices).toBe(2);
    for (const k of MUTATION_KINDS) expect(s.mutator.weights[k], k).toBeGreaterThan(0);
  });

  it.each([
    [{ devices: 0 }, 'devices'],
    [{ mutator: { opsPerSecond: -1 } }, 'mutator.opsPerSecond'],
    [{ mutator: { weights: { munmap: -2 } } }, 'mutator.weights.munmap'],
    [{ mutant: 'nope' }, 'mutant'],
    [{ regions: [{ pages: 99999 }] }, 'regions.0.pages'],
    [{ workload: { rangePages: { min: 4, max: 2 } } }, 'workload.rangePages.min'],
    [{ workload: { pattern: 'spiral' } }, 'workload.pattern'],
    [{ bogus: 1 }, 'bogus'],
    [{ memory: { wordsPerPage: 2048 } }, 'memory.wordsPerPage'],
  ])('%j is rejected in one line naming %s', (input, field) => {
    const m = errorOf(input);
    expect(m).toContain(`"${field}"`);
    expect(m).toContain('x.json');
    expect(m.includes('\n')).toBe(false);
  });

  it('options override the file, and zero devices is refused', () => {
    const s = applyOverrides(defaultScenario(), {
      devices: 3,
      ops: 10,
      seed: 7,
      mutant: 'no-set-seq',
      jitter: true,
    });
    expect([s.devices, s.ops, s.seed, s.mutant, s.jitter]).toEqual([3, 10, 7, 'no-set-seq', true]);
    expect(() => applyOverrides(defaultScenario(), { mutant: 'bogus' })).toThrow(ScenarioError);
  });

  it('no-access-drain implies the access-section device model', () => {
    expect(applyOverrides(defaultScenario(), { mutant: 'no-access-drain' }).accessSection).toBe(true);
  });
});
