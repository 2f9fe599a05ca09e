// Vitest global setup of the `cluster` project: builds (or reuses) the binaries, brings the single-node
// cluster up once for all cluster tests, and tears it down afterwards. Component logs stay in the log
// directory it prints (default /tmp/emuv-cluster-logs).
import { loadCluster, startCluster, stopCluster, type ClusterInfo } from '../../localcluster/index.ts';

export default async function setup(): Promise<() => Promise<void>> {
  const log = (s: string) => console.log(`[cluster] ${s}`);
  let info: ClusterInfo | undefined;
  try {
    info = await startCluster({ log });
  } catch (e) {
    throw new Error(`cluster layer setup failed: ${(e as Error).message}`, { cause: e });
  }
  return async () => {
    if (process.env.EMUV_KEEP_CLUSTER === '1') {
      log(`EMUV_KEEP_CLUSTER=1: leaving the cluster running; stop it with: node_modules/.bin/node localcluster/cluster/cli.ts down`);
      return;
    }
    await stopCluster(loadCluster(info.paths), log);
  };
}
