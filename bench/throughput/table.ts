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
      `${String(r.settings.repetitions)} interleaved repetitions [min..max]. ` +
      'Each device operation is one range fault of an aligned 64-page chunk (read_begin, walk, update lock, read_retry, install): the targets compare that mirroring. ' +
      'The "with device accesses" rows add a read or write of the whole chunk through the mirror after each fault, which every design pays alike outside the global lock. ' +
      'What each figure includes, and why, is in the JSON (`notes`).',
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
  lines.push(
    '',
    'Per configuration (medians): pages mirrored per second by the mirror-only variants, and device accesses per second by the variants that also access each chunk through the mirror:',
    '',
  );
  lines.push(
    '| devices | mutations/s | seqlock | global lock (spin) | message passing | seqlock, accesses/s | global lock, accesses/s (spin) |',
    '|---|---|---|---|---|---|---|',
  );
  for (const c of r.configs) {
    const v = (name: string) => c.variants.find((x) => x.name === name)?.pagesMirroredPerSec.median ?? 0;
    const a = (name: string) => c.variants.find((x) => x.name === name)?.deviceAccessesPerSec.median ?? 0;
    const n = c.worldDevices;
    const g = c.globalSpin.chosen;
    // the global lock's best spin with accesses
    let ga = g;
    for (const x of c.variants) {
      const m = /^global@\d+\/spin(\d+)\+access$/.exec(x.name);
      if (m !== null && a(x.name) > a(`global@${n}/spin${ga}+access`)) ga = Number(m[1]);
    }
    lines.push(
      `| ${n} | ${c.mutationRate} | ${num(v(`seqlock@${n}`) / 1e6)} M | ${num(v(`global@${n}/spin${g}`) / 1e6)} M (${g}) | ${num(v(`message@${n}`) / 1e6)} M | ${num(a(`seqlock@${n}+access`) / 1e6)} M | ${num(a(`global@${n}/spin${ga}+access`) / 1e6)} M (${ga}) |`,
    );
  }
  return lines;
}

/**
 * The device curve of a full run (bench/results/throughput-full.json: worlds of 2, 4 and 8
 * devices, the 1-device figure from the 2-device world): pages mirrored per second per design.
 */
export function throughputCurveMarkdown(r: ThroughputResults): string[] {
  const lines = [
    `Device curve, **${r.mode}** run of ${r.startedAt.slice(0, 10)} (${r.machine.cores} cores, ${r.machine.cpu}; ` +
      `${String(r.settings.repetitions)} repetitions of ${String(r.settings.windowMs)} ms windows): pages mirrored per second, medians. ` +
      `With more devices than cores the device threads share the cores, so the curve flattens at the core count.`,
    '',
    '| devices | mutations/s | seqlock | global lock (spin) | message passing | seqlock / global lock |',
    '|---|---|---|---|---|---|',
  ];
  for (const c of r.configs) {
    const v = (name: string) => c.variants.find((x) => x.name === name)?.pagesMirroredPerSec.median ?? 0;
    const n = c.worldDevices;
    if (n === 2) {
      // the 1-device row, measured in the 2-device world with device 1 idle
      let g1 = -1;
      let best = 0;
      for (const x of c.variants) {
        const m = /^global@1\/spin(\d+)$/.exec(x.name);
        if (m !== null && x.pagesMirroredPerSec.median > best) {
          best = x.pagesMirroredPerSec.median;
          g1 = Number(m[1]);
        }
      }
      const s1 = v('seqlock@1');
      lines.push(
        `| 1 | ${c.mutationRate} | ${num(s1 / 1e6)} M | ${num(best / 1e6)} M (${g1}) | - | ${best > 0 ? num(s1 / best) : '-'} |`,
      );
    }
    const g = c.globalSpin.chosen;
    const s = v(`seqlock@${n}`);
    const gl = v(`global@${n}/spin${g}`);
    lines.push(
      `| ${n} | ${c.mutationRate} | ${num(s / 1e6)} M | ${num(gl / 1e6)} M (${g}) | ${num(v(`message@${n}`) / 1e6)} M | ${gl > 0 ? num(s / gl) : '-'} |`,
    );
  }
  return lines;
}
