/**
 * The `emuv` program's variables: every command (discover, plugin, top, status, remove-agents) reads
 * `EMUV_AGENT_<FLAG>`. One prefix for the program rather than one per command, because the commands share
 * their settings: `emuv discover` run in an agent pod sees the agent's `EMUV_AGENT_SYS_ROOT` and the rest,
 * and so reports exactly the capacity the agent publishes.
 *
 * Not `EMUV_*`: that is the interposer's contract (common/contracts/interposer.ts), which the device plugin
 * writes into GPU containers; `EMUV_VRAM_MODE` and `EMUV_LOG_LEVEL` used to mean one thing to the agent
 * and another to the interposer. test/contract/env-prefixes.test.ts keeps the sets apart.
 */
export const AGENT_ENV_PREFIX = 'EMUV_AGENT_';
