/**
 * The readable end-of-run summary `hmmsim run` prints: the verdict first, then the devices'
 * counters (per device and merged), latency and retry percentiles, invalidations by event,
 * mutations, the named points, and the first violations.
 */
import type { DeviceCounters, RunResults } from './schema.js';

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...cells.slice(1).map(line)].join('\n');
}

/** Counters only the v5.10 reference device ("dmirror") keeps: '-' in other devices' columns. */
const DMIRROR_ONLY: ReadonlySet<keyof DeviceCounters> = new Set([
  'retriesByProcess',
  'retriesByOtherDevice',
  'retriesByOwnFault',
]);

const ROWS: [string, keyof DeviceCounters][] = [
  ['device operations', 'ops'],
  ['  succeeded', 'opsOk'],
  ['range-fault calls', 'rangeFaultCalls'],
  ['  succeeded', 'rangeFaultOk'],
  ['hmm_range_fault calls', 'hmmRangeFaultCalls'],
  ['  -EBUSY from the walk', 'hmmRangeFaultBusy'],
  ['read_retry collisions', 'readRetryCollisions'],
  ['retries caused by: process', 'retriesByProcess'],
  ["  another device's fault", 'retriesByOtherDevice'],
  ["  the file's own fault", 'retriesByOwnFault'],
  ['read_begin sleeps', 'readBeginSleeps'],
  ['  time slept (us)', 'readBeginSleepUs'],
  ['-EFAULT', 'efault'],
  ['  on the zero page (v5.4)', 'efaultZeroPage'],
  ['  CPU fallbacks', 'efaultFallbacks'],
  ['-EPERM', 'eperm'],
  ['-ENOENT', 'enoent'],
  ['timeouts', 'timeouts'],
  ['pages faulted in', 'pagesFaulted'],
  ['pages snapshotted', 'pagesSnapshotted'],
  ['device accesses (pages)', 'deviceAccesses'],
  ['invalidate ops', 'invalidations'],
  ['  mirror entries erased', 'mirrorEntriesErased'],
];

export function formatSummary(r: RunResults, maxViolations = 5): string {
  const o = r.outcome;
  const out: string[] = [];
  const cfg = r.config as { name?: string; devices?: number; mutant?: string | null; jitter?: boolean };
  out.push(
    `hmmsim run "${cfg.name ?? '?'}": ${cfg.devices ?? '?'} devices, seed ${r.seed}` +
      `${cfg.mutant ? `, mutant ${cfg.mutant}` : ''}${cfg.jitter ? ', jitter' : ''}; ` +
      `${(o.wallMs / 1000).toFixed(1)} s, ${o.mutatorOps} mutations, ${o.deviceOps} device operations ` +
      `(stopped by ${o.stoppedBy})`,
  );
  const info = r.devices ?? [];
  if (info.some((d) => d.protocol !== 'v5.10' || d.driver !== 'dmirror')) {
    out.push(`devices: ${info.map((d) => `dev ${d.index} ${d.protocol} (${d.driver})`).join(', ')}`);
  }
  out.push('');
  const devs = r.counters.devices;
  const dmirrorAt = (i: number): boolean => (info[i]?.driver ?? 'dmirror') === 'dmirror';
  out.push(
    table(
      ['counter', ...devs.map((_, i) => `dev ${i} ${r.devices?.[i]?.protocol ?? 'v5.10'}`), 'all'],
      ROWS.map(([label, k]) => [
        label,
        ...devs.map((d, i) => (DMIRROR_ONLY.has(k) && !dmirrorAt(i) ? '-' : (d[k] ?? 0))),
        DMIRROR_ONLY.has(k) && !devs.some((_, i) => dmirrorAt(i)) ? '-' : (r.counters.merged[k] ?? 0),
      ]),
    ),
  );
  out.push('');
  const lat = r.histograms.rangeFaultLatencyUs;
  const ret = r.histograms.retriesPerCall;
  out.push(
    table(
      ['histogram (all devices)', 'count', 'p50', 'p90', 'p99', 'max'],
      [
        [
          'range-fault latency (us)',
          lat.merged.count,
          lat.merged.p50,
          lat.merged.p90,
          lat.merged.p99,
          lat.merged.max,
        ],
        [
          'retries per call',
          ret.merged.count,
          ret.merged.p50,
          ret.merged.p90,
          ret.merged.p99,
          ret.merged.max,
        ],
      ],
    ),
  );
  out.push('');
  out.push(
    table(
      ['event', 'invalidations', 'pages', 'op time (us)', 'lock wait (us)'],
      r.counters.events
        .filter((e) => e.invalidations > 0)
        .map((e) => [e.event, e.invalidations, e.pagesInvalidated, e.invalidateOpUs, e.lockWaitUs]),
    ),
  );
  out.push('');
  const muts = Object.entries(r.counters.mutations).filter(([, m]) => m.ops > 0);
  out.push(
    table(
      ['mutation', 'ops', 'refused', 'mean (us)'],
      muts.map(([k, m]) => [k, m.ops, m.failed, Math.round(m.us / Math.max(1, m.ops))]),
    ),
  );
  const un = (r.config as { unavailableKinds?: string[] }).unavailableKinds ?? [];
  if (un.length > 0) out.push(`not available in this build: ${un.join(', ')}`);
  out.push(
    `mmap lock waits: mutator ${r.counters.mmapLockWaits.mutator}, devices ${r.counters.mmapLockWaits.devices}; ` +
      `quiescent audits: ${r.counters.audits}`,
  );
  if (cfg.jitter) {
    out.push('');
    out.push(
      table(
        ['point', 'passes', 'collisions'],
        r.counters.points.map((p) => [p.point, p.passes, p.collisions]),
      ),
    );
  }
  const lu = r.counters.lostUpdate;
  if (lu !== null) {
    out.push(
      `lost-update equation: increments ${lu.increments} + copied ${lu.copied} = live ${lu.live} + discarded ` +
        `${lu.discarded} ${lu.difference === 0 ? '(holds)' : `(off by ${lu.difference})`}`,
    );
  }
  out.push('');
  if (o.hang !== null) out.push(`HUNG: ${o.hang}`);
  if (o.error !== null) out.push(`CRASHED: ${o.error}`);
  if (o.violations > 0) {
    const byOracle = new Map<string, number>();
    for (const v of r.violations) byOracle.set(v.oracle, (byOracle.get(v.oracle) ?? 0) + 1);
    out.push(
      `VIOLATIONS: ${o.violations} (${[...byOracle].map(([k, n]) => `${k} ${n}`).join(', ')}` +
        `${r.violationsDropped > 0 ? `, ${r.violationsDropped} not kept` : ''})`,
    );
    if (o.firstViolation !== null) {
      out.push(
        `first oracle to fire: ${o.firstViolation.oracle}, after ${o.firstViolation.mutatorOps} mutations ` +
          `and ${o.firstViolation.deviceOps} device operations`,
      );
    }
    const sorted = [...r.violations].sort((a, b) => a.serial - b.serial);
    for (const v of sorted.slice(0, maxViolations)) out.push(`  ${v.text}`);
    if (sorted.length > maxViolations)
      out.push(`  ... ${sorted.length - maxViolations} more in the results file`);
  }
  out.push(
    `verdict: ${o.verdict.toUpperCase()}${o.interrupted ? ' (interrupted)' : ''}: ${o.violations} violation(s); exit code ${o.exitCode}`,
  );
  out.push(`reproduce the workload choices with --seed ${r.seed} (thread timing is not reproducible)`);
  return out.join('\n');
}
