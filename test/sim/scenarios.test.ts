import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../src/sim/scenario.js';

const dir = new URL('../../scenarios/', import.meta.url);

describe('example scenarios', () => {
  it.each(readdirSync(dir).filter((f) => f.endsWith('.json')))('%s is valid', (f) => {
    expect(() => loadScenarioFile(new URL(f, dir).pathname)).not.toThrow();
  });
});
