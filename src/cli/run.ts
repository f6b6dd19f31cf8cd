/**
 * `hmmsim run`: load a scenario (or the built-in default), apply the options, run, print the
 * summary, write `--out`, and report the exit code: 0 no violation, 1 violations, 2 bad input,
 * 3 a worker crashed or hung. Bad input is one line, never a stack trace.
 *
 * Wiring (src/cli/main.ts): `program.addCommand(makeRunCommand(io, (code) => { exitCode = code; }, program))`
 * and return `exitCode` from main after parseAsync.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import cliProgress from 'cli-progress';
import { MUTANTS } from '../checker/points.js';
import { COMPARE_SCHEMA, COMPARE_VERSION, type CompareResults, formatCompare } from '../report/compare.js';
import type { RunResults } from '../report/schema.js';
import { formatSummary } from '../report/summary.js';
import { DriverError } from '../sim/drivers.js';
import { EXIT_BAD_INPUT, EXIT_CRASH, runSimulation } from '../sim/run.js';
import {
  applyOverrides,
  defaultScenario,
  loadScenarioFile,
  PROTOCOLS,
  type Protocol,
  type Scenario,
  ScenarioError,
} from '../sim/scenario.js';

export interface RunIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface RunOptions {
  scenario?: string | undefined;
  devices?: number | undefined;
  duration?: number | undefined;
  ops?: number | undefined;
  seed?: number | undefined;
  mutant?: string | undefined;
  jitter?: boolean | undefined;
  /** v5.10 | v5.4 | both (both: run the scenario under each and print one side-by-side table) */
  protocol?: Protocol | 'both' | undefined;
  /** a user's driver module for every device */
  driver?: string | undefined;
  /** legacy (v5.4) flag: pre-touch the rw regions at set-up */
  pretouch?: boolean | undefined;
  out?: string | undefined;
  /** draw a progress bar (default: when stderr is a terminal and CI is not set) */
  progress?: boolean | undefined;
  /** print the summary (default true) */
  summary?: boolean | undefined;
}

function intArg(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    if (!/^\d+$/.test(v.trim())) throw new InvalidArgumentError(`${name} must be an integer, got "${v}"`);
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be in ${min}..${max}, got ${n}`);
    return n;
  };
}

/** "5", "5s", "500ms", "2m" -> milliseconds. */
export function parseDuration(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(v);
  if (m === null) throw new InvalidArgumentError(`duration must look like 5s, 500ms or 2m, got "${v}"`);
  const x = Number(m[1]);
  const ms = m[2] === 'ms' ? x : m[2] === 'm' ? x * 60_000 : x * 1000;
  if (!(ms >= 1)) throw new InvalidArgumentError(`duration must be at least 1 ms, got "${v}"`);
  return Math.round(ms);
}

function mutantArg(v: string): string {
  if (MUTANTS[v] === undefined) {
    throw new InvalidArgumentError(`unknown mutant "${v}" (known: ${Object.keys(MUTANTS).join(', ')})`);
  }
  return v;
}

/** --protocol: v5.10, v5.4, or both. */
export function protocolArg(v: string): Protocol | 'both' {
  if (v === 'both' || (PROTOCOLS as readonly string[]).includes(v)) return v as Protocol | 'both';
  throw new InvalidArgumentError(`unknown protocol "${v}" (known: ${PROTOCOLS.join(', ')}, both)`);
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Build the scenario the options describe; throws ScenarioError (one line). */
export function scenarioFromOptions(o: RunOptions): Scenario {
  const base = o.scenario !== undefined ? loadScenarioFile(o.scenario) : defaultScenario();
  return applyOverrides(base, {
    devices: o.devices,
    durationMs: o.duration,
    ops: o.ops,
    seed: o.seed,
    mutant: o.mutant,
    jitter: o.jitter,
    protocol: o.protocol === 'both' ? undefined : o.protocol,
    driver: o.driver,
    pretouch: o.pretouch,
  });
}

/** The worse of two exit codes: 3 (crash/hang) > 1 (violations) > 2 (bad input) > 0. */
function worse(a: number, b: number): number {
  const rank = (c: number): number => (c === EXIT_CRASH ? 3 : c === 1 ? 2 : c === EXIT_BAD_INPUT ? 1 : 0);
  return rank(a) >= rank(b) ? a : b;
}

/**
 * `--protocol both`: the same scenario and seed under v5.10, then v5.4, one table. Every device
 * of the scenario is switched to each protocol in turn (a scenario's per-device drivers stay).
 */
async function runBoth(o: RunOptions, io: RunIo): Promise<number> {
  let base: Scenario;
  const both: Scenario[] = [];
  try {
    base = scenarioFromOptions({ ...o, protocol: undefined, pretouch: undefined });
    const seed = base.seed ?? (Math.random() * 2 ** 32) >>> 0;
    for (const p of PROTOCOLS) {
      // legacy flags belong to the v5.4 run only
      both.push(
        applyOverrides(
          { ...base, seed, legacy: p === 'v5.4' ? base.legacy : undefined },
          { protocol: p, pretouch: p === 'v5.4' ? o.pretouch : undefined },
        ),
      );
    }
  } catch (e) {
    if (e instanceof ScenarioError) {
      io.err(`hmmsim run: ${e.message}\n`);
      return EXIT_BAD_INPUT;
    }
    throw e;
  }
  const runs: CompareResults['runs'] = [];
  let code = 0;
  for (const s of both) {
    io.err(`hmmsim run: protocol ${s.protocol}, seed ${s.seed}\n`);
    let r: RunResults;
    try {
      r = await runSimulation(s, { version: packageVersion() });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (e instanceof DriverError || e instanceof RangeError) {
        io.err(`hmmsim run: ${e instanceof DriverError ? '' : 'bad scenario: '}${msg.split('\n')[0]}\n`);
        return EXIT_BAD_INPUT;
      }
      io.err(`hmmsim run: internal error: ${msg.split('\n')[0]}\n`);
      return EXIT_CRASH;
    }
    runs.push({ protocol: s.protocol, results: r });
    code = worse(code, r.outcome.exitCode);
  }
  if (o.summary !== false) io.out(`${formatCompare(runs)}\n`);
  if (o.out !== undefined) {
    const doc: CompareResults = { schema: COMPARE_SCHEMA, version: COMPARE_VERSION, runs };
    try {
      writeFileSync(o.out, `${JSON.stringify(doc, null, 2)}\n`);
    } catch (e) {
      io.err(`hmmsim run: cannot write ${o.out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
      return code === 0 ? EXIT_BAD_INPUT : code;
    }
  }
  return code;
}

/** Run with parsed options; returns the exit code. Never throws. */
export async function runWithOptions(o: RunOptions, io: RunIo): Promise<number> {
  if (o.protocol === 'both') return runBoth(o, io);
  let s: Scenario;
  try {
    s = scenarioFromOptions(o);
  } catch (e) {
    if (e instanceof ScenarioError) {
      io.err(`hmmsim run: ${e.message}\n`);
      return EXIT_BAD_INPUT;
    }
    throw e;
  }
  const showProgress = o.progress ?? (process.stderr.isTTY === true && !process.env.CI);
  const bar = showProgress
    ? new cliProgress.SingleBar(
        {
          format:
            'hmmsim run [{bar}] {percentage}% | {mutatorOps} mutations | {deviceOps} device ops | {violations} violations',
          hideCursor: true,
          clearOnComplete: true,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const ac = new AbortController();
  let sigints = 0;
  const onSigint = (): void => {
    sigints++;
    if (sigints === 1) {
      io.err(
        '\nhmmsim run: interrupted; stopping the devices and writing what was gathered (Ctrl-C again to quit now)\n',
      );
      ac.abort();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  /** Print the summary and write --out; returns the exit code. Synchronous (see onWedged). */
  const finish = (results: RunResults): number => {
    bar?.stop();
    if (o.summary !== false) io.out(`${formatSummary(results)}\n`);
    else if (results.outcome.hang !== null) io.err(`hmmsim run: HUNG: ${results.outcome.hang}\n`);
    if (o.out !== undefined) {
      try {
        writeFileSync(o.out, `${JSON.stringify(results, null, 2)}\n`);
        if (o.summary !== false) io.err(`hmmsim run: results written to ${o.out}\n`);
      } catch (e) {
        io.err(`hmmsim run: cannot write ${o.out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
        return results.outcome.exitCode === 0 ? EXIT_BAD_INPUT : results.outcome.exitCode;
      }
    }
    return results.outcome.exitCode;
  };
  let results: RunResults;
  try {
    if (o.summary !== false) {
      io.err(
        `hmmsim run: seed ${s.seed ?? '(fresh)'}; ${s.devices} devices; ` +
          `${s.ops !== undefined ? `${s.ops} mutations` : `${s.durationMs} ms`}` +
          `${s.mutant !== null ? `; mutant ${s.mutant}` : ''}${s.jitter ? '; jitter' : ''}; protocol ${s.protocol}` +
          `${s.perDevice.length > 0 ? ' (per-device overrides)' : ''}${s.driver !== null ? `; driver ${s.driver}` : ''}\n`,
      );
    }
    bar?.start(100, 0, { mutatorOps: 0, deviceOps: 0, violations: 0 });
    results = await runSimulation(s, {
      signal: ac.signal,
      version: packageVersion(),
      note: (line) => io.err(`hmmsim run: ${line}\n`),
      // The main thread is stuck: write what was gathered; runSimulation then exits with 3.
      onWedged: (partial) => {
        io.err('hmmsim run: the main thread is stuck; writing the results gathered so far\n');
        finish(partial);
      },
      progress: (p) =>
        bar?.update(Math.round(p.fraction * 100), {
          mutatorOps: p.mutatorOps,
          deviceOps: p.deviceOps,
          violations: p.violations,
        }),
    });
  } catch (e) {
    bar?.stop();
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof DriverError) {
      io.err(`hmmsim run: ${msg.split('\n')[0]}\n`);
      return EXIT_BAD_INPUT;
    }
    if (e instanceof RangeError) {
      io.err(`hmmsim run: bad scenario: ${msg.split('\n')[0]}\n`);
      return EXIT_BAD_INPUT;
    }
    io.err(`hmmsim run: internal error: ${msg.split('\n')[0]}\n`);
    if (process.env.HMMSIM_DEBUG && e instanceof Error && e.stack) io.err(`${e.stack}\n`);
    return EXIT_CRASH;
  } finally {
    process.off('SIGINT', onSigint);
  }
  const code = finish(results);
  if (results.outcome.verdict === 'hung') {
    // A hung worker that even terminate() could not stop must not keep the process alive.
    setTimeout(() => process.exit(code), 3000).unref();
  }
  return code;
}

/**
 * The `run` subcommand. `onExit` receives the exit code when the action finishes; pass the parent
 * program to inherit its output and exit-override settings (as `.command()` would).
 */
export function makeRunCommand(io: RunIo, onExit: (code: number) => void, parent?: Command) {
  const cmd = new Command('run');
  if (parent !== undefined) cmd.copyInheritedSettings(parent);
  return cmd
    .description('run a simulation: device workers against a mutating main thread, checked by the oracles')
    .argument('[scenario]', 'a scenario JSON file (default: the built-in scenario)')
    .option('-s, --scenario <file>', 'a scenario JSON file (same as the argument)')
    .option('-d, --devices <n>', 'device workers', intArg('--devices', 1, 16))
    .addOption(
      new Option('--duration <time>', 'how long to run: 5s, 500ms, 2m')
        .argParser(parseDuration)
        .conflicts('ops'),
    )
    .option('--ops <n>', 'stop after this many mutations (instead of a duration)', intArg('--ops', 1))
    .option(
      '--seed <n>',
      'the run seed (uint32): fixes every workload choice',
      intArg('--seed', 0, 0xffffffff),
    )
    .option('-m, --mutant <name>', `inject a bug: ${Object.keys(MUTANTS).join(', ')}`, mutantArg)
    .option('-j, --jitter', 'random short delays at the named interleaving points')
    .option(
      '-p, --protocol <name>',
      'v5.10 (default), v5.4, or both (the same scenario and seed under each, one side-by-side table)',
      protocolArg,
    )
    .option('--driver <module>', "a user's driver module (.ts/.js exporting a MirrorDriver) for every device")
    .option('--pretouch', 'v5.4 devices: write every page of the rw regions at set-up (no zero page)')
    .option('-o, --out <file>', 'write the results (JSON, schema hmmsim-results v1)')
    .option('--no-progress', 'no progress bar (it is drawn only on a terminal anyway)')
    .action(async (file, opts) => {
      const code = await runWithOptions(
        {
          scenario: opts.scenario ?? file,
          devices: opts.devices,
          duration: opts.duration,
          ops: opts.ops,
          seed: opts.seed,
          mutant: opts.mutant,
          jitter: opts.jitter,
          protocol: opts.protocol,
          driver: opts.driver,
          pretouch: opts.pretouch,
          out: opts.out,
          progress: opts.progress === false ? false : undefined,
        },
        io,
      );
      onExit(code);
    });
}
