#!/usr/bin/env bash
# Builds the binaries of the local cluster (the real-cluster test layer, `npm run demo`, the chart tests' helm)
# from upstream Go modules (Go module proxy only):
#   kube-apiserver, kube-scheduler, kube-controller-manager, kubelet, kubectl  (k8s.io/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   helm                                                              (helm.sh/helm/v3)
#   containerd, containerd-shim-runc-v2, ctr                          (github.com/containerd/containerd/v2)
#   runc                                                              (github.com/opencontainers/runc; cgo + libseccomp)
#   prometheus, promtool                                              (github.com/prometheus/prometheus)
# and copies, without building anything, the prometheus-operator CRDs the chart's optional objects need
#   ServiceMonitor, PodMonitor, PrometheusRule CRD YAMLs                (github.com/prometheus-operator/prometheus-operator)
# Versions come from localcluster/cluster/build/versions.env. Binaries are cached by version under
#   ${EMUV_CACHE_DIR:-$HOME/.cache/emuv}/bin/<component>-<version>/
# and only what is missing is built. The prometheus server is built without the `builtinassets` tag: no web UI
# (its pages answer with an error), the HTTP API the tests query is complete. The Go module cache, the Go build cache and the generated build
# modules live under the same cache directory, never in the repository. Safe to run twice (a lock
# serialises concurrent runs; results are moved into place only when complete).
#
# The Go toolchain: containerd needs Go >= GO_MIN_VERSION (versions.env). When the local go is older, the go
# command is told GOTOOLCHAIN=$GO_TOOLCHAIN and fetches that toolchain from the Go module proxy into the same
# cache (Go >= 1.21 can do that), so a CI machine with an older Go still builds; otherwise the local go is used.
# runc needs cgo and libseccomp's headers (libseccomp-dev, pkg-config, gcc: setup-host.sh installs them).
#
# Usage: localcluster/cluster/build.sh [--print-dir]
#   --print-dir   print the binary directories and the CRD directory (KEY=path lines) and exit 0 if all are
#                 there, 1 if not.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=build/versions.env
source "$here/build/versions.env"

cache="${EMUV_CACHE_DIR:-$HOME/.cache/emuv}"
k8s_dir="$cache/bin/kubernetes-$KUBERNETES_VERSION"
etcd_dir="$cache/bin/etcd-$ETCD_VERSION"
helm_dir="$cache/bin/helm-$HELM_VERSION"
containerd_dir="$cache/bin/containerd-$CONTAINERD_VERSION"
runc_dir="$cache/bin/runc-$RUNC_VERSION"
prometheus_dir="$cache/bin/prometheus-$PROMETHEUS_VERSION"
promop_crds_dir="$cache/bin/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION"
prometheus_bins=(prometheus promtool)
# The CRDs of the kinds the chart renders (ServiceMonitor, PrometheusRule) and PodMonitor, the other scrape kind.
promop_crds=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_podmonitors.yaml monitoring.coreos.com_prometheusrules.yaml)
containerd_bins=(containerd containerd-shim-runc-v2 ctr)
k8s_bins=(kube-apiserver kube-scheduler kube-controller-manager kubelet kubectl)

have_k8s() { for b in "${k8s_bins[@]}"; do [[ -x "$k8s_dir/$b" ]] || return 1; done; }
have_etcd() { [[ -x "$etcd_dir/etcd" ]]; }
have_helm() { [[ -x "$helm_dir/helm" ]]; }
have_containerd() { for b in "${containerd_bins[@]}"; do [[ -x "$containerd_dir/$b" ]] || return 1; done; }
have_runc() { [[ -x "$runc_dir/runc" ]]; }
# A directory from before the server was built (promtool alone) is rebuilt whole, as every other component.
have_prometheus() { for b in "${prometheus_bins[@]}"; do [[ -x "$prometheus_dir/$b" ]] || return 1; done; }
have_promop_crds() { for f in "${promop_crds[@]}"; do [[ -s "$promop_crds_dir/$f" ]] || return 1; done; }
have_all() { have_k8s && have_etcd && have_helm && have_containerd && have_runc && have_prometheus && have_promop_crds; }

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "KUBERNETES_BIN=$k8s_dir"
  echo "ETCD_BIN=$etcd_dir"
  echo "HELM_BIN=$helm_dir"
  echo "CONTAINERD_BIN=$containerd_dir"
  echo "RUNC_BIN=$runc_dir"
  echo "PROMETHEUS_BIN=$prometheus_dir"
  echo "PROMETHEUS_OPERATOR_CRDS=$promop_crds_dir"
  have_all
  exit $?
fi

start=$(date +%s)
log() { printf '[build.sh %s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$(($(date +%s) - start))" "$*"; }

if have_all; then
  log "all binaries cached in $cache/bin (kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION," \
    "containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, prometheus $PROMETHEUS_VERSION," \
    "prometheus-operator CRDs $PROMETHEUS_OPERATOR_VERSION); nothing to build"
  exit 0
fi

go_bin="$(command -v go || true)"
[[ -n "$go_bin" ]] || go_bin=/usr/local/go/bin/go
if [[ ! -x "$go_bin" ]]; then
  echo "build.sh: no Go toolchain found (PATH or /usr/local/go/bin/go); Go >= 1.21 is required (it fetches $GO_TOOLCHAIN itself)" >&2
  exit 2
fi
go() { "$go_bin" "$@"; }

# The local go if it is new enough, else the pinned toolchain from the module proxy (see the header).
local_go="$(GOTOOLCHAIN=local "$go_bin" env GOVERSION)"
local_go="${local_go#go}"
if [[ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$local_go" | sort -V | head -1)" == "$GO_MIN_VERSION" ]]; then
  toolchain=local
else
  toolchain="$GO_TOOLCHAIN"
  if [[ "$(printf '%s\n%s\n' 1.21 "$local_go" | sort -V | head -1)" != 1.21 ]]; then
    echo "build.sh: local Go $local_go cannot fetch a toolchain (needs >= 1.21); install Go >= $GO_MIN_VERSION" >&2
    exit 2
  fi
fi

mkdir -p "$cache/bin" "$cache/src"
exec 9>"$cache/build.lock"
if ! flock -n 9; then
  log "another build.sh holds $cache/build.lock; waiting"
  flock 9
fi

export GOMODCACHE="$cache/go/mod"
export GOCACHE="$cache/go/build"
export GOTOOLCHAIN="$toolchain"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
log "go: $("$go_bin" version) (local go $local_go, GOTOOLCHAIN=$toolchain); cache: $cache; cores: $(nproc)"

build_etcd() {
  local mod="$cache/src/etcd-$ETCD_VERSION" out="$etcd_dir.tmp"
  rm -rf "$mod" "$out" && mkdir -p "$mod" "$out"
  cp "$here/build/etcd/main.go" "$mod/main.go"
  (
    cd "$mod"
    go mod init emuv.local/etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=emuv-$ETCD_VERSION" -o "$out/etcd" .
  )
  rm -rf "$etcd_dir" && mv "$out" "$etcd_dir"
}

build_helm() {
  local out="$helm_dir.tmp" major="${HELM_VERSION%%.*}"
  rm -rf "$out" && mkdir -p "$out"
  # As helm's own Makefile does, the default Kubernetes version of `helm template`/`lint` (Capabilities)
  # comes from the client-go version helm is built with (v0.X.Y -> 1.X); without it helm assumes v1.20.
  local gomod client_go kmin
  gomod="$(cd "$cache/src" && go mod download -json "helm.sh/helm/$major@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")"
  kmin="${client_go#v0.}"
  kmin="${kmin%%.*}"
  [[ "$kmin" =~ ^[0-9]+$ ]] || { echo "build.sh: cannot read k8s.io/client-go's version from $gomod" >&2; exit 1; }
  local p="helm.sh/helm/$major"
  # go install from the module itself (helm's go.mod has no replace directives).
  GOBIN="$out" GOFLAGS=-buildvcs=false go install -trimpath \
    -ldflags "-s -w -X $p/internal/version.version=$HELM_VERSION -X $p/internal/version.gitTreeState=clean \
      -X $p/pkg/lint/rules.k8sVersionMajor=1 -X $p/pkg/lint/rules.k8sVersionMinor=$kmin \
      -X $p/pkg/chartutil.k8sVersionMajor=1 -X $p/pkg/chartutil.k8sVersionMinor=$kmin" \
    "helm.sh/helm/$major/cmd/helm@$HELM_VERSION"
  rm -rf "$helm_dir" && mv "$out" "$helm_dir"
}

build_prometheus() {
  local out="$prometheus_dir.tmp" pkgs=()
  rm -rf "$out" && mkdir -p "$out"
  # go install from the module itself (prometheus's go.mod has no replace directives); both binaries in one
  # command, so the packages they share are compiled once. No -tags builtinassets: the web UI's assets are
  # built by npm in Prometheus's own release process and are not in the Go module.
  for b in "${prometheus_bins[@]}"; do pkgs+=("github.com/prometheus/prometheus/cmd/$b@$PROMETHEUS_VERSION"); done
  # The version ldflags of Prometheus's release builds (promu), with the release the module version stands for
  # (v0.316.0 -> 3.16.0, see versions.env); without them `prometheus --version` prints an empty version.
  local mm="${PROMETHEUS_VERSION#v0.}" v=github.com/prometheus/common/version release
  mm="${mm%%.*}"
  [[ "$mm" =~ ^[0-9]{3,}$ ]] || { echo "build.sh: PROMETHEUS_VERSION $PROMETHEUS_VERSION is not v0.<major><minor>.<patch>" >&2; exit 1; }
  release="${mm:0:${#mm}-2}.$((10#${mm: -2})).${PROMETHEUS_VERSION##*.}"
  GOBIN="$out" GOFLAGS=-buildvcs=false go install -trimpath \
    -ldflags "-s -w -X $v.Version=$release -X $v.Revision=emuv -X $v.Branch=$PROMETHEUS_VERSION -X $v.BuildUser=emuv -X $v.BuildDate=19700101-00:00:00" \
    "${pkgs[@]}"
  rm -rf "$prometheus_dir" && mv "$out" "$prometheus_dir"
}

get_promop_crds() {
  local out="$promop_crds_dir.tmp" mod="github.com/prometheus-operator/prometheus-operator"
  rm -rf "$out" && mkdir -p "$out"
  # Only the module's files are needed (no build): `go mod download` puts the verified module (go.sum
  # database) into the module cache; the CRDs are generated by controller-gen into example/prometheus-operator-crd/.
  local dir
  dir="$(cd "$cache/src" && go mod download -json "$mod@$PROMETHEUS_OPERATOR_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$dir/example/prometheus-operator-crd" ]] || { echo "build.sh: no example/prometheus-operator-crd in $mod@$PROMETHEUS_OPERATOR_VERSION" >&2; exit 1; }
  for f in "${promop_crds[@]}"; do cp "$dir/example/prometheus-operator-crd/$f" "$out/$f"; done
  chmod 644 "$out"/*.yaml
  rm -rf "$promop_crds_dir" && mv "$out" "$promop_crds_dir"
}

build_k8s() {
  local mod="$cache/src/kubernetes-$KUBERNETES_VERSION" out="$k8s_dir.tmp"
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  rm -rf "$mod" "$out" && mkdir -p "$mod" "$out"
  # The replace list is generated from k8s.io/kubernetes's own go.mod: every k8s.io/<staging> module that it
  # requires at v0.0.0 (resolved upstream by ./staging/src replaces that dependents cannot use) maps to the
  # published v0.<minor>.<patch> tag of that staging repository.
  local gomod
  gomod="$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$gomod" ]] || { echo "build.sh: could not locate go.mod of k8s.io/kubernetes@$KUBERNETES_VERSION" >&2; exit 1; }
  local go_line godebug_line
  go_line="$(awk '$1 == "go" { print $2; exit }' "$gomod")"
  godebug_line="$(awk '$1 == "godebug" { print $2; exit }' "$gomod")"
  mapfile -t staging < <(awk '$1 ~ /^k8s\.io\/[A-Za-z0-9._-]+$/ && $2 == "v0.0.0" { print $1 }' "$gomod" | sort -u)
  [[ ${#staging[@]} -gt 10 ]] || { echo "build.sh: found only ${#staging[@]} staging modules in $gomod" >&2; exit 1; }
  log "kubernetes $KUBERNETES_VERSION: go $go_line, ${godebug_line:-no godebug}, ${#staging[@]} staging modules -> $staging_version"
  (
    cd "$mod"
    go mod init emuv.local/kubernetes >/dev/null 2>&1
    go mod edit -go="$go_line"
    [[ -z "$godebug_line" ]] || go mod edit -godebug="$godebug_line"
    for m in "${staging[@]}"; do go mod edit -replace="$m=$m@$staging_version"; done
    local pkgs=()
    for b in "${k8s_bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b@$KUBERNETES_VERSION"); done
    go get "${pkgs[@]}"
    local minor="${KUBERNETES_VERSION#v1.}"
    minor="${minor%%.*}"
    local ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    local targets=()
    for b in "${k8s_bins[@]}"; do targets+=("k8s.io/kubernetes/cmd/$b"); done
    go build -trimpath -ldflags "$ld" -o "$out/" "${targets[@]}"
  )
  rm -rf "$k8s_dir" && mv "$out" "$k8s_dir"
}

build_containerd() {
  local out="$containerd_dir.tmp" p=github.com/containerd/containerd/v2
  rm -rf "$out" && mkdir -p "$out"
  # Static, as containerd's release builds: without cgo btrfs is left out anyway (no_btrfs says so explicitly, and
  # keeps a cgo build from needing btrfs headers). The version ldflags are the Makefile's (else "2.4.2+unknown").
  local pkgs=()
  for b in "${containerd_bins[@]}"; do pkgs+=("$p/cmd/$b@$CONTAINERD_VERSION"); done
  GOBIN="$out" GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install -trimpath -tags no_btrfs \
    -ldflags "-s -w -X $p/version.Version=$CONTAINERD_VERSION -X $p/version.Revision=emuv" "${pkgs[@]}"
  rm -rf "$containerd_dir" && mv "$out" "$containerd_dir"
}

build_runc() {
  local out="$runc_dir.tmp"
  # seccomp needs cgo and libseccomp (the kubelet's RuntimeDefault profile and the CRI default go through it).
  if ! pkg-config --exists libseccomp 2>/dev/null || ! command -v gcc >/dev/null; then
    echo "build.sh: runc needs gcc, pkg-config and libseccomp-dev; run localcluster/cluster/setup-host.sh as root" >&2
    exit 1
  fi
  rm -rf "$out" && mkdir -p "$out"
  GOBIN="$out" GOFLAGS=-buildvcs=false CGO_ENABLED=1 go install -trimpath -tags seccomp \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
  rm -rf "$runc_dir" && mv "$out" "$runc_dir"
}

step() {
  local name="$1" fn="$2" t0
  t0=$(date +%s)
  log "building $name"
  "$fn"
  log "built $name in $(($(date +%s) - t0)) s"
}

have_etcd || step "etcd $ETCD_VERSION" build_etcd
have_containerd || step "containerd $CONTAINERD_VERSION (${containerd_bins[*]})" build_containerd
have_runc || step "runc $RUNC_VERSION" build_runc
have_k8s || step "kubernetes $KUBERNETES_VERSION (${k8s_bins[*]})" build_k8s
have_helm || step "helm $HELM_VERSION" build_helm
have_prometheus || step "prometheus, promtool (prometheus module $PROMETHEUS_VERSION)" build_prometheus
have_promop_crds || step "prometheus-operator CRDs $PROMETHEUS_OPERATOR_VERSION (${promop_crds[*]})" get_promop_crds

# The first line of each version: sed reads the whole output (head -1 exits early, the binary then dies of
# SIGPIPE on its next line and pipefail fails the build after everything was built).
"$k8s_dir/kube-apiserver" --version
"$etcd_dir/etcd" --version | sed -n 1p
"$helm_dir/helm" version --short
"$containerd_dir/containerd" --version
"$runc_dir/runc" --version | sed -n 1p
"$prometheus_dir/prometheus" --version | sed -n 1p
"$prometheus_dir/promtool" --version | sed -n 1p
grep -h '^  name: ' "${promop_crds[@]/#/$promop_crds_dir/}"
log "done in $(($(date +%s) - start)) s; binaries under $cache/bin"
