import { runSimulation } from './src/sim/run.js';
import { parseScenario } from './src/sim/scenario.js';
const zero = process.argv[2]!.split(',').filter(Boolean);
const w: Record<string, number> = {};
for (const k of zero) w[k] = 0;
let bad = 0;
for (let i = 0; i < 3; i++) {
  const r = await runSimulation(parseScenario({ ops: 3000, jitter: true, durationMs: 60000, mutator: { weights: w }, workload: { migrateFraction: process.argv[3] === 'nomig' ? 0 : 0.05 } }));
  const ev = new Set(r.violations.map((v) => `${v.oracle}/${v.detail}/freed:${v.freedBy}`));
  console.log(zero.join(',') || 'none', process.argv[3] ?? '', r.seed, r.outcome.verdict, [...ev].join(' '));
  if (r.outcome.violations) bad++;
}
process.exit(0);
