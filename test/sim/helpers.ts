/** Shared helpers of the sim tests: seeds that print on failure, and small bounded scenarios. */

import type { RunResults } from '../../src/report/schema.js';
import { runSimulation } from '../../src/sim/run.js';
import { parseScenario, type Scenario } from '../../src/sim/scenario.js';

/** HMMSIM_SEED if set, else a fresh one; every assertion message carries it. */
export function testSeed(): number {
  const env = process.env.HMMSIM_SEED;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env) >>> 0;
  return (Math.random() * 2 ** 32) >>> 0;
}

/** A small scenario bounded in mutator operations (and by a wall-clock guard via durationMs). */
export function boundedScenario(over: Record<string, unknown>): Scenario {
  return parseScenario({ devices: 2, watchdogMs: 8000, ...over }, 'test scenario');
}

export async function run(s: Scenario): Promise<RunResults> {
  return runSimulation(s, { version: 'test' });
}

export function describeRun(r: RunResults): string {
  return (
    `seed ${r.seed} (rerun with HMMSIM_SEED=${r.seed}); verdict ${r.outcome.verdict}, ` +
    `${r.outcome.mutatorOps} mutations, ${r.outcome.deviceOps} device ops; ` +
    `${r.outcome.error ?? ''}${r.outcome.hang ?? ''} ` +
    r.violations
      .slice(0, 3)
      .map((v) => v.text)
      .join(' | ')
  );
}
