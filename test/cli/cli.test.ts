/**
 * The command line as a user meets it: spawn node on bin/hmmsim.js (tsx registered by the shim,
 * no build step) and check exit codes and output. Also run from another directory.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { RunResults } from '../../src/report/schema.js';

const BIN = fileURLToPath(new URL('../../bin/hmmsim.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

function hmmsim(args: string[], cwd = ROOT): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('hmmsim CLI', () => {
  it('--help prints usage with the run command and exits 0', () => {
    const r = hmmsim(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: hmmsim /);
    expect(r.out).toMatch(/^\s+run\b/m);
    expect(r.err).toBe('');
  });

  it('--version and -V print the package version and exit 0', () => {
    for (const flag of ['--version', '-V']) {
      const r = hmmsim([flag]);
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe(VERSION);
    }
  });

  it('run executes a short bounded run: summary, verdict, seed, and an exit code of 0 or 1', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'hmmsim-cli-')), 'results.json');
    const r = hmmsim(['run', '--ops', '300', '--seed', '7', '--out', out]);
    expect([0, 1]).toContain(r.code);
    expect(r.out).toMatch(/^verdict: (CLEAN|VIOLATIONS)/m);
    expect(r.out).toMatch(/--seed 7\b/);
    expect(r.out).toMatch(/^retries caused by: process\s/m);
    expect(r.out).toMatch(/^ {2}another device's fault\s/m);
    expect(r.out).toMatch(/^ {2}the file's own fault\s/m);
    expect(r.err).not.toMatch(/\bat .*:\d+:\d+/); // no stack trace
    // the results carry the retries by cause, which sum to the retries (v5.10 devices)
    const res = JSON.parse(readFileSync(out, 'utf8')) as RunResults;
    for (const c of [...res.counters.devices, res.counters.merged]) {
      for (const k of ['retriesByProcess', 'retriesByOtherDevice', 'retriesByOwnFault'] as const) {
        expect(typeof c[k]).toBe('number');
      }
      expect(c.retriesByProcess + c.retriesByOtherDevice + c.retriesByOwnFault).toBe(
        c.hmmRangeFaultBusy + c.readRetryCollisions,
      );
    }
  });

  it('works when started from another directory', () => {
    const r = hmmsim(['run', '--help'], tmpdir());
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: hmmsim run/);
  });

  it('a scenario file that cannot be read is a one-line error with exit 2', () => {
    const r = hmmsim(['run', 'no-such-scenario.json']);
    expect(r.code).toBe(2);
    expect(r.err.trimEnd().split('\n')).toEqual(['hmmsim run: no-such-scenario.json: cannot read (ENOENT)']);
  });

  it.each([
    [['--frobnicate'], /unknown option '--frobnicate'/],
    [['run', '--frobnicate'], /unknown option '--frobnicate'/],
    [['rnu'], /unknown command 'rnu'/],
    [['run', 'a.json', 'b.json'], /too many arguments/],
  ])('%j is a one-line error on stderr with exit 2', (args, message) => {
    const r = hmmsim(args);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    const lines = r.err.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^hmmsim: /);
    expect(lines[0]).toMatch(message);
    expect(r.err).not.toMatch(/\bat .*:\d+:\d+/); // no stack trace
  });

  it('no command prints the help on stderr and exits 2', () => {
    const r = hmmsim([]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^Usage: hmmsim /);
  });
});
