/**
 * Shared machinery of the benchmarks: the machine description, a seeded PRNG, the statistics,
 * and `runGroup`, which runs a group of compared tinybench tasks for several repetitions with the
 * tasks interleaved (a fresh Bench per repetition, task order rotated each time, each task warmed
 * up before it is measured) and turns every task's median into a ratio against the group's
 * baseline task measured in the same repetition.
 */
import os from 'node:os';
import { Bench } from 'tinybench';

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  v8: string;
  platform: string;
  arch: string;
  totalMemBytes: number;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    node: process.versions.node,
    v8: process.versions.v8,
    platform: process.platform,
    arch: process.arch,
    totalMemBytes: os.totalmem(),
  };
}

/** mulberry32: a small seeded PRNG, so compared variants see the same workload. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return Number.NaN;
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** A median with its spread over the repetitions. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  reps: number[];
}

export function spread(xs: readonly number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), reps: [...xs] };
}

export interface Target {
  /** the figure must be at most this */
  max: number;
}

/** One measured figure: a ratio against a baseline measured in the same repetitions. */
export interface Figure {
  id: string;
  group: string;
  label: string;
  /** what the ratio is against */
  baseline: string;
  ratio: Spread;
  /** absolute cost of the variant and the baseline, per `unit` (ns), medians over repetitions */
  variantNs: Spread;
  baselineNs: Spread;
  unit: string;
  target?: Target;
  met?: boolean;
  includes: string;
  excludes: string;
}

export interface BenchTask {
  name: string;
  fn: () => void;
  /** operations (pages, lock pairs, ...) per call of fn: the figures are per operation */
  ops: number;
  beforeEach?: () => void;
  afterEach?: () => void;
}

export interface RunConfig {
  reps: number;
  /** ms of measurement per task per repetition */
  timeMs: number;
  /** ms of warm-up per task per repetition */
  warmupMs: number;
}

/**
 * Run `tasks` for `cfg.reps` repetitions, interleaved: each repetition is one Bench holding every
 * task (rotated order), so a slow phase of the machine hits all compared variants alike. Returns,
 * per task, the median latency of each repetition in ns per operation.
 */
export async function runGroup(tasks: readonly BenchTask[], cfg: RunConfig): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const t of tasks) out.set(t.name, []);
  for (let rep = 0; rep < cfg.reps; rep++) {
    const bench = new Bench({
      time: cfg.timeMs,
      iterations: 5,
      warmup: true,
      warmupTime: cfg.warmupMs,
      warmupIterations: 5,
      throws: true,
    });
    const order = tasks.map((_, i) => tasks[(i + rep) % tasks.length]!);
    for (const t of order) {
      const hooks: { beforeEach?: () => void; afterEach?: () => void } = {};
      if (t.beforeEach) hooks.beforeEach = t.beforeEach;
      if (t.afterEach) hooks.afterEach = t.afterEach;
      bench.add(t.name, t.fn, hooks);
    }
    await bench.run();
    for (const task of bench.tasks) {
      const r = task.result;
      if (r.state !== 'completed') throw new Error(`bench task ${task.name}: ${r.state}`);
      const t = tasks.find((x) => x.name === task.name)!;
      out.get(task.name)!.push((r.latency.p50 * 1e6) / t.ops);
    }
  }
  return out;
}

export interface FigureSpec {
  id: string;
  group: string;
  label: string;
  variant: string;
  baseline: string;
  baselineLabel: string;
  unit: string;
  target?: Target;
  includes: string;
  excludes: string;
}

/** Per-repetition ratios variant/baseline from runGroup's output. */
export function figure(m: Map<string, number[]>, s: FigureSpec): Figure {
  const v = m.get(s.variant);
  const b = m.get(s.baseline);
  if (!v || !b) throw new Error(`figure ${s.id}: missing task`);
  const ratios = v.map((x, i) => x / b[i]!);
  const ratio = spread(ratios);
  const f: Figure = {
    id: s.id,
    group: s.group,
    label: s.label,
    baseline: s.baselineLabel,
    ratio,
    variantNs: spread(v),
    baselineNs: spread(b),
    unit: s.unit,
    includes: s.includes,
    excludes: s.excludes,
  };
  if (s.target) {
    f.target = s.target;
    f.met = ratio.median <= s.target.max;
  }
  return f;
}
