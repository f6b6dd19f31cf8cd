/**
 * How a run ends when it cannot end well, through the real CLI (a child process: the hang path
 * ends the process with exit code 3, and Ctrl-C is a signal): a device that throws, a device that
 * holds its update lock forever (the main thread gets stuck behind it), and SIGINT. Each gives
 * its exit code promptly and writes the results gathered so far. The faults are the test-only
 * scenario field `testFaults`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunResults } from '../../src/report/schema.js';
import { testSeed } from './helpers.js';

const bin = new URL('../../bin/hmmsim.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'hmmsim-failures-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Ended {
  code: number | null;
  signal: string | null;
  stderr: string;
  ms: number;
  /** performance.now() at the exit */
  endAt: number;
}

/** Spawn `hmmsim run ...args`; `onStderr` sees stderr as it grows. Killed after `limitMs`. */
function hmmsim(args: string[], limitMs: number, onStderr?: (all: string, child: ChildProcess) => void) {
  return new Promise<Ended>((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [bin, 'run', '--no-progress', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      onStderr?.(stderr, child);
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      const endAt = performance.now();
      resolve({ code, signal, stderr, ms: endAt - t0, endAt });
    });
  });
}

function scenarioFile(name: string, s: Record<string, unknown>): string {
  const f = join(dir, `${name}.json`);
  writeFileSync(f, JSON.stringify(s));
  return f;
}

function readResults(f: string): RunResults {
  return JSON.parse(readFileSync(f, 'utf8')) as RunResults;
}

describe('hmmsim run: crashes, hangs and Ctrl-C', () => {
  it('a device that throws: exit 3, results written with the crash', { timeout: 60_000 }, async () => {
    const seed = testSeed();
    const out = join(dir, 'crash.out.json');
    const sc = scenarioFile('crash', {
      devices: 2,
      durationMs: 30_000,
      testFaults: { device: 1, crashAfterOps: 300 },
    });
    const r = await hmmsim([sc, '--seed', String(seed), '--out', out], 50_000);
    const msg = `seed ${seed} (HMMSIM_SEED=${seed}); exit ${r.code}/${r.signal}; stderr: ${r.stderr.slice(-2000)}`;
    expect(r.code, msg).toBe(3);
    const res = readResults(out);
    expect(res.outcome.verdict, msg).toBe('crashed');
    expect(res.outcome.exitCode, msg).toBe(3);
    expect(res.outcome.stoppedBy, msg).toBe('crash');
    expect(res.outcome.error, msg).toContain('device 1 crashed: test fault');
    expect(res.counters.devices[1]!.ops, msg).toBe(300);
    // well before the 30 s duration: the crash ends the run
    expect(r.ms, msg).toBeLessThan(25_000);
  });

  it('a device that holds its update lock forever: exit 3 within a bound, dump names the owner and seqs', {
    timeout: 60_000,
  }, async () => {
    const seed = testSeed();
    const out = join(dir, 'hang.out.json');
    // watchdogMs 500: the main thread's watchdog bound; the backstop's is max(2 x, 4 s).
    const sc = scenarioFile('hang', {
      devices: 2,
      durationMs: 60_000,
      watchdogMs: 500,
      testFaults: { device: 0, hangAfterOps: 200 },
    });
    const r = await hmmsim([sc, '--seed', String(seed), '--out', out], 50_000);
    const msg = `seed ${seed} (HMMSIM_SEED=${seed}); exit ${r.code}/${r.signal}; stderr: ${r.stderr.slice(-3000)}`;
    expect(r.code, msg).toBe(3);
    expect(r.ms, msg).toBeLessThan(40_000);
    // the inspector path ends the process without Node's debugger-disconnect line
    expect(r.stderr, msg).not.toContain('Waiting for the debugger');
    const res = readResults(out);
    expect(res.outcome.verdict, msg).toBe('hung');
    expect(res.outcome.exitCode, msg).toBe(3);
    const dump = res.outcome.hang ?? '';
    // the lock owner: device 0's worker thread holds its file's update lock
    const owner = /device 0 thread (\d+):/.exec(dump)?.[1];
    expect(owner, `${msg}\n${dump}`).toBeDefined();
    expect(dump, msg).toContain(`update lock held by thread ${owner}`);
    // the seqs: the notifier's and each subscription's
    expect(dump, msg).toMatch(/invalidate_seq \d+/);
    expect(dump, msg).toMatch(/slot \d+ seq \d+/);
    expect(res.counters.devices[0]!.ops, msg).toBe(200);
  });

  it('SIGINT: exits promptly with the results marked interrupted', { timeout: 60_000 }, async () => {
    const seed = testSeed();
    const out = join(dir, 'sigint.out.json');
    let sentAt = -1;
    let timer: NodeJS.Timeout | undefined;
    const r = await hmmsim(
      ['--duration', '30s', '--seed', String(seed), '--out', out],
      50_000,
      (all, child) => {
        // ~2 s after the devices are running (the CLI and the workers compile TypeScript first)
        if (timer === undefined && all.includes('devices running')) {
          timer = setTimeout(() => {
            sentAt = performance.now();
            child.kill('SIGINT');
          }, 2000);
        }
      },
    );
    clearTimeout(timer);
    const msg = `seed ${seed} (HMMSIM_SEED=${seed}); exit ${r.code}/${r.signal}; stderr: ${r.stderr.slice(-2000)}`;
    expect(sentAt, msg).toBeGreaterThan(0);
    expect(r.endAt - sentAt, msg).toBeLessThan(10_000);
    expect(r.signal, msg).toBeNull();
    expect([0, 1], msg).toContain(r.code);
    const res = readResults(out);
    expect(res.outcome.interrupted, msg).toBe(true);
    expect(res.outcome.stoppedBy, msg).toBe('interrupt');
    expect(res.outcome.mutatorOps, msg).toBeGreaterThan(0);
    expect(res.outcome.deviceOps, msg).toBeGreaterThan(0);
    expect(res.counters.merged.ops, msg).toBeGreaterThan(0);
    expect(r.stderr, msg).toContain('interrupted');
  });
});
