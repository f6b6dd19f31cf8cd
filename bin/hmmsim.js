#!/usr/bin/env node
// Runs the TypeScript CLI with no build step: register tsx, then import the entry.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
