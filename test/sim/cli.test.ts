import { Command } from '@commander-js/extra-typings';
import { describe, expect, it } from 'vitest';
import { makeRunCommand, parseDuration, runWithOptions } from '../../src/cli/run.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) } };
}

async function parse(args: string[]): Promise<{ code: number; err: string }> {
  const t = io();
  let code = -1;
  const program = new Command()
    .name('hmmsim')
    .exitOverride()
    .configureOutput({ writeOut: t.io.out, writeErr: t.io.err, outputError: (s, w) => w(s) });
  program.addCommand(makeRunCommand(t.io, (c) => (code = c), program));
  try {
    await program.parseAsync(['node', 'hmmsim', 'run', ...args]);
  } catch {
    code = 2; // commander's usage errors: main.ts maps them to exit 2
  }
  return { code, err: t.err.join('') };
}

describe('hmmsim run options', () => {
  it('parses durations', () => {
    expect([parseDuration('5'), parseDuration('500ms'), parseDuration('2m'), parseDuration('1.5s')]).toEqual([
      5000, 500, 120000, 1500,
    ]);
  });

  it.each([
    [['--mutant', 'nope'], 'unknown mutant'],
    [['--devices', '0'], '--devices'],
    [['--duration', 'soon'], 'duration'],
    [['--seed', '-4'], '--seed'],
  ])('%j is bad input in one line', async (args, text) => {
    const r = await parse(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(text);
    expect(r.err.trim().includes('\n')).toBe(false);
  });

  it('a bad scenario file exits 2 with one line naming the field', async () => {
    const t = io();
    const code = await runWithOptions({ scenario: '/nonexistent/x.json', progress: false }, t.io);
    expect(code).toBe(2);
    expect(t.err.join('')).toMatch(/x\.json: cannot read/);
  });
});
