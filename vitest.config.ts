import { defineConfig } from 'vitest/config';

// Two layers: `unit` (pure stages, fakes at process boundaries, real gRPC on unix sockets) and
// `cluster` (a real control plane and kubelet, test/cluster). `npm test` runs both.
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
    ],
  },
});
