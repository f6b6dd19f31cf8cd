import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: process.env.HMMSIM_STRESS ? [] : ['test/stress/**'],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
