/**
 * Long versions of test/sim/run.test.ts, run by `npm run stress` (HMMSIM_STRESS=1): the correct
 * protocol over every example scenario for longer, with and without jitter; each mutant with a
 * larger operation bound. HMMSIM_STRESS_OPS scales the bounds.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../src/sim/run.js';
import { applyOverrides, loadScenarioFile } from '../../src/sim/scenario.js';
import { describeRun, testSeed } from '../sim/helpers.js';

const OPS = Number(process.env.HMMSIM_STRESS_OPS ?? 30_000);
const dir = new URL('../../scenarios/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

describe('stress: correct protocol', () => {
  for (const f of files) {
    for (const jitter of [false, true]) {
      it(`${f}${jitter ? ' with jitter' : ''}: zero violations`, { timeout: 600_000 }, async () => {
        const seed = testSeed();
        const s = applyOverrides(loadScenarioFile(new URL(f, dir).pathname), { seed, ops: OPS, jitter });
        const r = await runSimulation({ ...s, durationMs: 300_000 });
        expect(r.outcome.verdict, describeRun(r)).toBe('clean');
      });
    }
  }
});

describe('stress: mutants', () => {
  const mutants = [
    'skip-read-retry',
    'retry-outside-lock',
    'no-set-seq',
    'invalidate-no-lock',
    'invalidate-noop',
    'begin-no-wait',
    'free-before-start',
    'seq-not-odd',
    'no-access-drain',
  ];
  it.each(mutants)('%s is caught', { timeout: 600_000 }, async (mutant) => {
    const seed = testSeed();
    const s = applyOverrides(loadScenarioFile(new URL('default.json', dir).pathname), {
      seed,
      ops: OPS * 3,
      mutant,
      jitter: true,
    });
    const r = await runSimulation({ ...s, stopOnViolation: true, durationMs: 300_000 });
    expect(r.outcome.verdict, describeRun(r)).toBe('violations');
  });
});
