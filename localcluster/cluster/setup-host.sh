#!/usr/bin/env bash
# Installs the host packages the local cluster (and so the real-cluster test layer) needs (Debian 12/13, root). Idempotent: packages
# already installed are not touched and apt is not contacted at all when nothing is missing.
#   containernetworking-plugins bridge/host-local/loopback/portmap CNI plugins (/usr/lib/cni)
#   iproute2                    ip netns / ip link for the cluster's network namespace
#   iptables                    used by the CNI bridge plugin (ipMasq, portmap) and by the kubelet
#   conntrack                   used by the CNI plugins on teardown
#   openssl                     certificates and keys for the control plane
#   gcc, libc6-dev              the static pause and test-image programs (gcc -static); cgo for runc
#   libseccomp-dev, pkg-config  build.sh builds runc with seccomp (cgo, links libseccomp.so.2)
#   buildah, debootstrap        the image: buildah builds the Dockerfile (no daemon), FROM base images made
#                               locally from Debian's archive with debootstrap (localcluster/images/)
# containerd and runc are not Debian's: Debian 12's containerd 1.6.20 has no CDI and is unsupported by any
# Kubernetes >= 1.34, so build.sh builds containerd, its shim and runc (versions.env), and the cluster runs them
# with its own config, sockets and directories.
set -euo pipefail

# tmux: test/cli/top-tmux.test.ts runs `emuv top` in a real terminal.
pkgs=(containernetworking-plugins iproute2 iptables conntrack openssl gcc libc6-dev libseccomp-dev pkg-config
  ca-certificates util-linux procps tmux buildah debootstrap)

if [[ "$(id -u)" != 0 ]]; then
  echo "setup-host.sh: must run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup-host.sh: all packages present (${pkgs[*]})"
else
  echo "setup-host.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps package scripts from starting system services (none of ours needs one).
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  trap '[[ $created_policy == 1 ]] && rm -f "$policy"' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Kernel features the kubelet and the CNI bridge rely on. Best effort: in a container or VM without
# module loading these are already built in or simply unavailable, and host.ts reports what fails.
for m in overlay br_netfilter; do
  if [[ ! -d /sys/module/$m ]] && command -v modprobe >/dev/null; then modprobe "$m" 2>/dev/null || true; fi
done


for b in ip iptables openssl gcc pkg-config buildah debootstrap; do
  command -v "$b" >/dev/null || { echo "setup-host.sh: $b still missing after install" >&2; exit 1; }
done
[[ -x /usr/lib/cni/bridge ]] || { echo "setup-host.sh: /usr/lib/cni/bridge missing" >&2; exit 1; }
pkg-config --exists libseccomp || { echo "setup-host.sh: libseccomp (pkg-config) missing after install" >&2; exit 1; }
echo "setup-host.sh: ok (CNI plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins), libseccomp $(pkg-config --modversion libseccomp))"
