/**
 * V8 flags the agent runs with in production (the image's ENTRYPOINT, agent.nodeArgs in the chart; on
 * the command line, as Node refuses --lite-mode in NODE_OPTIONS; test/delivery checks they agree): no optimising JIT (the agent's work is I/O, not
 * computation), a 1 MiB young generation and a 48 MiB old generation (the agent's live heap is about
 * 11 MiB with the Kubernetes client loaded). bench/deviceplugin.ts measures them against Node's defaults.
 */
export const AGENT_NODE_FLAGS = ['--lite-mode', '--max-semi-space-size=1', '--max-old-space-size=48'];
