/**
 * The side-by-side table of `hmmsim run --protocol both`: one scenario and seed run under v5.10
 * and under v5.4, one column each. Figures are totals over all devices of a run.
 *
 * Units: waits in milliseconds; throughput in device operations per second of run time (from the
 * moment every device ran to the stop flag).
 */
import type { RunResults } from './schema.js';

export const COMPARE_SCHEMA = 'hmmsim-compare';
export const COMPARE_VERSION = 1;

/** The results file of `--protocol both --out FILE`. */
export interface CompareResults {
  schema: typeof COMPARE_SCHEMA;
  version: typeof COMPARE_VERSION;
  /** one RunResults per protocol, in column order */
  runs: { protocol: string; results: RunResults }[];
}

function table(head: string[], rows: string[][]): string {
  const cells = [head, ...rows];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

function fix(x: number, d: number): string {
  return Number.isFinite(x) ? x.toFixed(d) : '-';
}

/** The rows of the comparison, each a label and one figure per run. */
export function compareRows(runs: readonly RunResults[]): [string, string[]][] {
  const col = (f: (r: RunResults) => string): string[] => runs.map(f);
  const m = (r: RunResults) => r.counters.merged;
  const runS = (r: RunResults) => (r.outcome.runMs ?? r.outcome.wallMs) / 1000;
  // retries by cause: counted by the v5.10 reference device only ('-' for a run without one)
  const byCause = (f: (c: RunResults['counters']['merged']) => number | undefined) =>
    col((r) =>
      r.devices === undefined || r.devices.some((d) => d.driver === 'dmirror') ? String(f(m(r)) ?? 0) : '-',
    );
  return [
    ['mutations', col((r) => String(r.outcome.mutatorOps))],
    ['device operations', col((r) => String(r.outcome.deviceOps))],
    ['range-fault calls', col((r) => String(m(r).rangeFaultCalls))],
    ['retries (total)', col((r) => String(m(r).collisions))],
    [
      'retries per 1000 calls',
      col((r) => fix((1000 * m(r).collisions) / Math.max(1, m(r).rangeFaultCalls), 2)),
    ],
    ['retries per call (p99)', col((r) => String(r.histograms.retriesPerCall.merged.p99))],
    ['hmm_range_fault -EBUSY', col((r) => String(m(r).hmmRangeFaultBusy))],
    ['collisions under the lock', col((r) => String(m(r).readRetryCollisions))],
    ['retries caused by: process', byCause((c) => c.retriesByProcess)],
    ["  another device's fault", byCause((c) => c.retriesByOtherDevice)],
    ["  the file's own fault", byCause((c) => c.retriesByOwnFault)],
    ['begin / wait_until_valid waits', col((r) => String(m(r).readBeginSleeps))],
    ['  time waited (ms)', col((r) => fix(m(r).readBeginSleepUs / 1000, 1))],
    ['timeouts', col((r) => String(m(r).timeouts))],
    ['-EFAULT (all)', col((r) => String(m(r).efault))],
    ['  of which on the zero page', col((r) => String(m(r).efaultZeroPage ?? 0))],
    ['violations', col((r) => String(r.outcome.violations))],
    ['throughput (device ops/s)', col((r) => fix(r.outcome.deviceOps / Math.max(1e-3, runS(r)), 0))],
  ];
}

export function formatCompare(runs: readonly { protocol: string; results: RunResults }[]): string {
  const rs = runs.map((x) => x.results);
  const first = rs[0];
  const cfg = (first?.config ?? {}) as {
    name?: string;
    devices?: number;
    jitter?: boolean;
    legacy?: { pretouch?: boolean };
  };
  const out: string[] = [];
  out.push(
    `hmmsim run "${cfg.name ?? '?'}" under ${runs.map((x) => x.protocol).join(' and ')}: ` +
      `${cfg.devices ?? '?'} devices, seed ${first?.seed ?? '?'}${cfg.jitter ? ', jitter' : ''}`,
  );
  out.push('');
  out.push(
    table(
      ['', ...runs.map((x) => x.protocol)],
      compareRows(rs).map(([label, vals]) => [label, ...vals]),
    ),
  );
  out.push('');
  out.push(
    `v5.4's hmm_range_fault fails with -EFAULT on the shared zero page (untouched anonymous memory ` +
      `read by a device), counted apart above; ${cfg.legacy?.pretouch === true ? 'memory was pre-touched at set-up' : 'memory was not pre-touched'}.`,
  );
  out.push(
    'v5.10 waits are mmu_interval_read_begin sleeps; v5.4 waits are hmm_range_wait_until_valid calls on an invalid range.',
  );
  for (const x of runs) {
    const o = x.results.outcome;
    out.push(
      `${x.protocol}: ${o.verdict.toUpperCase()}, ${o.violations} violation(s)` +
        (o.firstViolation !== null
          ? `, first (${o.firstViolation.oracle}) after ${o.firstViolation.deviceOps} device operations`
          : '') +
        `; exit code ${o.exitCode}`,
    );
  }
  return out.join('\n');
}
