import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// The README's library example must keep working as printed there.
it('examples/library.ts prints the kernel words of a faulted range', () => {
  const script = fileURLToPath(new URL('../../examples/library.ts', import.meta.url));
  const tsx = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url));
  const out = execFileSync(process.execPath, [tsx, script], { encoding: 'utf8' });
  expect(out.trim().split('\n')).toEqual([
    'page 0: 0xc000000000000400',
    'page 1: 0x8000000000000000',
    'page 2: 0x8000000000000000',
    'page 3: 0x8000000000000000',
  ]);
});
