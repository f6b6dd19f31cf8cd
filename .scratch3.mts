import { Command } from '@commander-js/extra-typings';
import { makeRunCommand } from './src/cli/run.js';
let code = 0;
const io = { out: (s: string) => process.stdout.write(s), err: (s: string) => process.stderr.write(s) };
const program = new Command().name('hmmsim').exitOverride();
program.addCommand(makeRunCommand(io, (c) => { code = c; }, program));
try { await program.parseAsync(process.argv); } catch { code = 2; }
process.exitCode = code;
