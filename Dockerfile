# syntax=docker/dockerfile:1
# One image for every emuv component: the node agent (`emuv plugin`), the operator, the CLI, and the interposer
# libraries the agent installs onto GPU nodes. Built in three stages: JavaScript bundle, native
# libraries, then a runtime holding only what runs: Debian 12's C/C++ runtime libraries without a shell or a
# package manager (distroless), the Node 24 binary and emuv.
# The tests build this file with buildah (localcluster/images/emuv-image.ts), FROM local copies of these base
# images made under the same names (localcluster/images/base-images.ts: a new FROM needs a recipe there).

# --- 1. JavaScript: dependencies (Node 24 comes from the pinned `node` dev dependency) and the bundle
FROM node:24-bookworm AS js
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/ scripts/
COPY common/ common/
COPY protos/ protos/
COPY plugin/ plugin/
COPY operator/ operator/
RUN npm run build
# The runtime's Node binary without its debug symbols (126 -> 108 MB; nothing at run time reads them).
RUN strip -o /src/node /usr/local/bin/node

# --- 2. Native: the interposer (headers fetched and verified by the build itself)
FROM debian:bookworm AS native
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY native/ native/
RUN make -C native all

# --- 3. Runtime: glibc, libstdc++ (Node and koffi need them), CA certificates and a nonroot user; no shell
FROM gcr.io/distroless/cc-debian12:nonroot
# The base runs as nonroot; /app and everything in it belong to root, so the process cannot change its own code.
USER 0:0
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="emuv" \
      org.opencontainers.image.description="Virtual GPU memory for Kubernetes pods: VRAM first, then host RAM" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/emuv/emuv"
WORKDIR /app
COPY --from=js /src/node /usr/local/bin/node
COPY --from=js /src/dist/ dist/
# koffi is a native addon and stays outside the bundle; its compiled module is the platform package
# npm installed beside it (@koromix/koffi-<os>-<arch>).
COPY --from=js /src/node_modules/koffi/ node_modules/koffi/
COPY --from=js /src/node_modules/@koromix/ node_modules/@koromix/
COPY --from=native /src/native/build/lib/ native/build/lib/
COPY LICENSE ./
# Non-root by default; the agent's pod runs as UID 0 without capabilities (docs/security.md).
USER 65532:65532
# The agent's V8 flags (docs/benchmarks.md), on the command line because Node refuses --lite-mode in
# NODE_OPTIONS; the chart passes the same ones (agent.nodeArgs).
ENTRYPOINT ["node", "--lite-mode", "--max-semi-space-size=1", "--max-old-space-size=48", "/app/dist/emuv.mjs"]
