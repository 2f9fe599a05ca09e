/**
 * Client of the kubelet's PodResources API (List), over its unix socket.
 */
import { credentials } from '@grpc/grpc-js';
import { podResourcesApi, type PodResources__Output } from '../../protos/podresources.ts';

export interface PodResourcesSource {
  list(): Promise<PodResources__Output[]>;
  close(): void;
}

export function podResourcesClient(socketPath: string, timeoutMs = 2000): PodResourcesSource {
  const Lister = podResourcesApi().PodResourcesLister;
  const client = new Lister(`unix://${socketPath}`, credentials.createInsecure(), { 'grpc.default_authority': 'localhost' });
  return {
    list: () =>
      new Promise((resolve, reject) =>
        client.List({}, { deadline: Date.now() + timeoutMs }, (err, res) =>
          err || !res ? reject(err ?? new Error('empty answer')) : resolve(res.pod_resources),
        ),
      ),
    close: () => client.close(),
  };
}
