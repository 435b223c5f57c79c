import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    globalSetup: ['test/global-setup.ts'],
    // Two files at a time: most of an end-to-end file is waiting (for a daemon, a drain, a child
    // process), so two share CI's two cores well. Shared fixtures are written by the global setup.
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
  },
});
