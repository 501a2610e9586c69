import { defineConfig } from 'vitest/config';

// tfjs tests are CPU-heavy and single-threaded per process: forks keep each test file in its own
// wasm instance, and 2 workers match the 2-core CI machine.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
