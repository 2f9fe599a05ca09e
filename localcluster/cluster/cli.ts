// The cluster by hand, for debugging: node_modules/.bin/node localcluster/cluster/cli.ts up|down|cleanup
// (`npm run demo` brings it up with emuv installed; `npm run demo:down` is `down` after a helm uninstall).
import { existsSync } from 'node:fs';
import { cleanupStale } from './cleanup.ts';
import { paths } from './layout.ts';
import { loadCluster, startCluster, stopCluster } from './lifecycle.ts';

async function main(cmd: string | undefined): Promise<void> {
  if (cmd === 'up') {
    const info = await startCluster();
    console.log(`export KUBECONFIG=${info.kubeconfig}`);
  } else if (cmd === 'down') {
    const p = paths();
    await stopCluster(existsSync(p.clusterFile) ? loadCluster(p) : undefined, console.log);
  } else if (cmd === 'cleanup') {
    await cleanupStale(paths(), console.log);
  } else {
    console.error('usage: node_modules/.bin/node localcluster/cluster/cli.ts up|down|cleanup');
    process.exit(2);
  }
}

main(process.argv[2]).catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});
