/**
 * `npm run bench` (quick, under 3 minutes on 2 cores) and `npm run bench -- --full`: runs the
 * micro-benchmarks, the memory figures and the worker-thread throughput suite, writes
 * bench/results/micro.json and throughput.json (--full: throughput-full.json, the 2/4/8-device
 * curve), and regenerates the README's Performance section
 * from them (`--no-throughput` skips the suite, `--no-readme` the README).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { machine, type RunConfig } from './lib.js';
import { memoryFigures } from './memory.js';
import { microFigures } from './micro.js';
import { type Results, updateReadme } from './readme-table.js';
import { runThroughput } from './throughput/run.js';

const full = process.argv.includes('--full');
const noReadme = process.argv.includes('--no-readme');
const noThroughput = process.argv.includes('--no-throughput');
const cfg: RunConfig = full
  ? { reps: 11, timeMs: 400, warmupMs: 100 }
  : { reps: 5, timeMs: 150, warmupMs: 50 };
const t0 = performance.now();
const log = (s: string) =>
  process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)}s] ${s}\n`);

log(
  `${full ? 'full' : 'quick'} run: ${cfg.reps} repetitions, ${cfg.warmupMs} ms warm-up + ${cfg.timeMs} ms per task`,
);
const micro = await microFigures(cfg, log);
log('memory (child process)');
const memory = memoryFigures();
const results: Results = {
  name: 'micro',
  mode: full ? 'full' : 'quick',
  date: new Date().toISOString().slice(0, 10),
  machine: machine(),
  config: cfg,
  seed: 0x8badf00d,
  micro,
  memory,
  throughput: null,
};
const dir = fileURLToPath(new URL('results/', import.meta.url));
mkdirSync(dir, { recursive: true });
const out = `${dir}micro.json`;
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
log(`wrote ${out}`);
if (!noThroughput) {
  // Worker-thread throughput against the global-lock and message-passing baselines; quick mode
  // uses short windows so the whole bench stays near its 3-minute budget.
  const tp = await runThroughput(full ? { full, log } : { full, log, reps: 7, windowMs: 150 });
  // quick: throughput.json (the targets table); --full: throughput-full.json (the device curve)
  const name = full ? 'throughput-full.json' : 'throughput.json';
  writeFileSync(`${dir}${name}`, `${JSON.stringify(tp, null, 2)}\n`);
  log(`wrote ${dir}${name}`);
}
if (!noReadme) {
  updateReadme(out, fileURLToPath(new URL('../README.md', import.meta.url)));
  log('README Performance section regenerated');
}
for (const f of micro) {
  log(
    `${f.label}: ${f.ratio.median.toFixed(2)}x${f.target ? ` (target <= ${f.target.max}: ${f.met ? 'met' : 'MISSED'})` : ''}`,
  );
}
log(
  `mm ${memory.mmBytesPerPage} B/page, mirror ${memory.mirrorBytesPerPage} B/page, peak RSS ${(memory.rssPeakBytes / 2 ** 20).toFixed(0)} MiB`,
);
