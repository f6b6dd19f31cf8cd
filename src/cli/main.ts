/**
 * The hmmsim command line. `main` parses argv and returns the exit code; it never calls
 * process.exit, so output is flushed and the function can be driven from a test.
 *
 * Exit codes: 0 clean, 1 violations found, 2 bad input (unknown command or option, bad value),
 * 3 crash or hang. Usage errors are one line on stderr, never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from '@commander-js/extra-typings';
import { makeRunCommand } from './run.js';

export const EXIT_OK = 0;
export const EXIT_VIOLATIONS = 1;
export const EXIT_BAD_INPUT = 2;
export const EXIT_CRASH = 3;

/** The package version, read once from package.json beside src/. */
function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') {
    return pkg.version;
  }
  return '0.0.0';
}

/** Commander's messages may span lines ("(Did you mean run?)"): fold them into one. */
function oneLine(message: string): string {
  return message.trim().replace(/\s*\n\s*/g, ' ');
}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

const processIo: CliIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

function buildProgram(io: CliIo, onRunExit: (code: number) => void): Command {
  const program = new Command()
    .name('hmmsim')
    .description(
      'Simulate the Linux v5.10.109 HMM mirroring protocol (hmm_range_fault, mmu_interval_notifier) ' +
        'with real threads over shared memory, and check that device mirrors stay coherent.',
    )
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'print this help and exit')
    .exitOverride()
    .configureOutput({
      writeOut: io.out,
      writeErr: io.err,
      outputError: (str, write) => write(`hmmsim: ${oneLine(str)} (see hmmsim --help)\n`),
    });

  program.addCommand(makeRunCommand(io, onRunExit, program));

  return program;
}

/** Parse `argv` (as process.argv: node, script, args...) and run the command; returns the exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let runExit = EXIT_OK;
  const program = buildProgram(io, (code) => {
    runExit = code;
  });
  if (argv.length <= 2) {
    // No command: show the help on stderr and treat it as a usage error.
    io.err(program.helpInformation());
    return EXIT_BAD_INPUT;
  }
  try {
    await program.parseAsync([...argv]);
    return runExit;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end with exitCode 0; every parse error is bad input.
      return e.exitCode === 0 ? EXIT_OK : EXIT_BAD_INPUT;
    }
    const message = e instanceof Error ? e.message : String(e);
    io.err(`hmmsim: internal error: ${oneLine(message)}\n`);
    if (process.env.HMMSIM_DEBUG && e instanceof Error && e.stack) io.err(`${e.stack}\n`);
    return EXIT_CRASH;
  }
}
