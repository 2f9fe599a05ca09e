import { defineConfig } from 'vitest/config';

// Two layers: `unit` (pure stages, fakes at process boundaries, real gRPC on unix sockets) and
// `cluster` (test/cluster, on the real control plane and kubelet of localcluster/, which its global setup
// starts). `npm test` runs both. localcluster/ is a library with no tests of its own: its tests are in test/.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['common/**/*.test.ts', 'plugin/**/*.test.ts', 'operator/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['test/cluster/**', 'node_modules/**'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: ['test/cluster/global-setup.ts'],
          // One cluster, one node: test files run one after another (a kubelet restart in one file would
          // disturb pods of another).
          fileParallelism: false,
          pool: 'forks',
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
