/**
 * `npm run bench` (quick, under 3 minutes on 2 cores) and `npm run bench -- --full`: runs the
 * micro-benchmarks and the memory figures, writes bench/results/micro.json, and regenerates the
 * README's Performance section from it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { machine, type RunConfig } from './lib.js';
import { memoryFigures } from './memory.js';
import { microFigures } from './micro.js';
import { type Results, updateReadme } from './readme-table.js';

const full = process.argv.includes('--full');
const noReadme = process.argv.includes('--no-readme');
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
