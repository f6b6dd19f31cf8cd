/**
 * The README's Throughput table, from bench/results/throughput.json (for bench/readme-table.ts):
 * one row per target with its median, spread and verdict, then a line of what the figures cover.
 */
import type { ThroughputResults } from './run.js';

function num(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 0.1 ? v.toFixed(2) : v.toPrecision(2);
}

export function throughputMarkdown(r: ThroughputResults): string[] {
  const lines = [
    `Worker threads, ${r.machine.cores} cores (${r.machine.cpu}), ${r.mode} run, medians over ` +
      `${String(r.settings.repetitions)} interleaved repetitions [min..max].`,
    '',
    '| figure | median [min..max] | target | |',
    '|---|---|---|---|',
  ];
  for (const t of r.targets) {
    const f =
      t.figure === null ? 'n/a' : `${num(t.figure.median)} [${num(t.figure.min)}..${num(t.figure.max)}]`;
    const verdict = t.target === 'report' ? '' : t.met === null ? '?' : t.met ? 'met' : 'missed';
    lines.push(`| ${t.what} | ${f} | ${t.target} | ${verdict} |`);
  }
  lines.push('', 'Pages mirrored per second per configuration (medians):', '');
  lines.push(
    '| devices | mutations/s | seqlock | global lock (spin) | message passing |',
    '|---|---|---|---|---|',
  );
  for (const c of r.configs) {
    const v = (name: string) => c.variants.find((x) => x.name === name)?.pagesMirroredPerSec.median ?? 0;
    const n = c.worldDevices;
    const g = c.globalSpin.chosen;
    lines.push(
      `| ${n} | ${c.mutationRate} | ${num(v(`seqlock@${n}`) / 1e6)} M | ${num(v(`global@${n}/spin${g}`) / 1e6)} M (${g}) | ${num(v(`message@${n}`) / 1e6)} M |`,
    );
  }
  return lines;
}
