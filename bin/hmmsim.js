#!/usr/bin/env node
// Runs the TypeScript CLI with no build step: register tsx, then import the entry and run it.
// Paths resolve from this file, so it works from any directory and through `npx hmmsim`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);
