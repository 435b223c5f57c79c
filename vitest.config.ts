import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Native engines use both cores; files run one at a time so timings stay sane on 2-core CI.
    fileParallelism: false,
    pool: 'forks',
  },
});
