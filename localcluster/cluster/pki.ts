// The cluster's PKI (openssl, EC P-256, 30 days): a CA; serving certificates for the apiserver and the
// kubelet; client certificates for the admin (system:masters), the scheduler, the controller-manager, the
// kubelet (system:node:<node>) and the apiserver's calls to the kubelet; the service-account key pair; and a
// kubeconfig per client. Everything is written to Paths.certs.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { APISERVER_PORT, NODE_IP, NODE_NAME, SERVICE_IP, type Paths } from './layout.ts';
import { run } from './process.ts';

function openssl(args: string[]): void {
  run('openssl', args);
}

/** <dir>/<name>.key and <name>.crt: a new EC key and its certificate, self-signed or signed by <dir>/ca. */
function ecCertificate(dir: string, name: string, subject: string, extensions: string[], signer: 'self' | 'ca'): void {
  openssl([
    'req',
    '-x509',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    path.join(dir, `${name}.key`),
    '-out',
    path.join(dir, `${name}.crt`),
    '-subj',
    subject,
    '-days',
    '30',
    ...(signer === 'ca' ? ['-CA', path.join(dir, 'ca.crt'), '-CAkey', path.join(dir, 'ca.key')] : []),
    ...extensions.flatMap((e) => ['-addext', e]),
  ]);
}

/** A leaf certificate signed by the CA, for serving (with these subject alternative names) and/or as a client. */
function issue(dir: string, name: string, subject: string, opts: { server?: string[]; client?: boolean }): void {
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${[opts.server ? 'serverAuth' : '', opts.client ? 'clientAuth' : ''].filter(Boolean).join(',')}`,
  ];
  if (opts.server) ext.push(`subjectAltName=${opts.server.join(',')}`);
  ecCertificate(dir, name, subject, ext, 'ca');
}

function writeKubeconfig(file: string, server: string, ca: string, cert: string, key: string): void {
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: emuv-test',
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority: ${ca}`,
      'users:',
      '- name: user',
      '  user:',
      `    client-certificate: ${cert}`,
      `    client-key: ${key}`,
      'contexts:',
      '- name: emuv-test',
      '  context: {cluster: emuv-test, user: user}',
      'current-context: emuv-test',
      '',
    ].join('\n'),
  );
}

/** The admin credentials clients on the host use (ClusterInfo points at them). */
export function adminFiles(p: Paths): { kubeconfig: string; caFile: string; adminCert: string; adminKey: string } {
  const d = p.certs;
  return {
    kubeconfig: path.join(d, 'admin.kubeconfig'),
    caFile: path.join(d, 'ca.crt'),
    adminCert: path.join(d, 'admin.crt'),
    adminKey: path.join(d, 'admin.key'),
  };
}

export function makePki(p: Paths): void {
  const d = p.certs;
  mkdirSync(d, { recursive: true });
  ecCertificate(
    d,
    'ca',
    '/CN=emuv-test-ca',
    ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'],
    'self',
  );
  issue(d, 'apiserver', '/CN=kube-apiserver', {
    server: [
      'DNS:kubernetes',
      'DNS:kubernetes.default',
      'DNS:kubernetes.default.svc',
      'DNS:localhost',
      'IP:127.0.0.1',
      `IP:${NODE_IP}`,
      `IP:${SERVICE_IP}`,
    ],
  });
  issue(d, 'admin', '/O=system:masters/CN=emuv-admin', { client: true });
  issue(d, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', { client: true });
  issue(d, 'scheduler', '/CN=system:kube-scheduler', { client: true });
  issue(d, 'controller-manager', '/CN=system:kube-controller-manager', { client: true });
  issue(d, 'kubelet', `/O=system:nodes/CN=system:node:${NODE_NAME}`, { client: true });
  issue(d, 'kubelet-serving', `/CN=${NODE_NAME}`, { server: [`DNS:${NODE_NAME}`, `IP:${NODE_IP}`] });
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', path.join(d, 'sa.key')]);
  openssl(['pkey', '-in', path.join(d, 'sa.key'), '-pubout', '-out', path.join(d, 'sa.pub')]);
  const ca = path.join(d, 'ca.crt');
  // The node's own components reach the apiserver on the namespace's loopback; the host's clients at NODE_IP.
  const local = `https://127.0.0.1:${APISERVER_PORT}`;
  for (const n of ['scheduler', 'controller-manager', 'kubelet']) {
    writeKubeconfig(path.join(d, `${n}.kubeconfig`), local, ca, path.join(d, `${n}.crt`), path.join(d, `${n}.key`));
  }
  const admin = adminFiles(p);
  writeKubeconfig(admin.kubeconfig, `https://${NODE_IP}:${APISERVER_PORT}`, ca, admin.adminCert, admin.adminKey);
}
