# syntax=docker/dockerfile:1
# One image for every emuv component: the node agent (`emuv plugin`), the operator, the CLI, and the interposer
# libraries the agent installs onto GPU nodes. Built in three stages: JavaScript bundle, native
# libraries, then a slim Node 24 runtime holding only what runs.
# The local-cluster image builder replays the runtime stage without a container engine (localcluster/images/emuv-image.ts):
# keep it to LABEL, WORKDIR, COPY, ENV, USER and ENTRYPOINT, or teach that builder the new instruction.

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

# --- 2. Native: the interposer (headers fetched and verified by the build itself)
FROM debian:bookworm AS native
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY native/ native/
RUN make -C native all

# --- 3. Runtime
FROM node:24-bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="emuv" \
      org.opencontainers.image.description="Virtual GPU memory for Kubernetes pods: VRAM first, then host RAM" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/emuv/emuv"
WORKDIR /app
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
