/**
 * `emuv run [flags] -- <command> [args]`: one command through the interposer on a workstation, without
 * Kubernetes (plugin/run/run.ts does the work). Flags before `--`, the command after it.
 */
import { SPILL_BACKENDS, type SpillBackendMode } from '../../common/contracts/interposer.ts';
import { ConfigError } from '../../common/errors.ts';
import { defineCommand, oneOf, optionalText, parseFlags, parseSizeBytes, valueType } from '../../common/flags.ts';
import { NODE_FLAGS } from './node.ts';
import { AGENT_ENV_PREFIX } from './program.ts';

/** A size above 0, or '' for none (null). */
function optionalSize() {
  return valueType('<size>', (t) => {
    if (t === '') return null;
    const bytes = parseSizeBytes(t);
    if (bytes === 0) throw new Error('must be above 0');
    return bytes;
  });
}

export const RUN_COMMAND = defineCommand({
  command: 'emuv run',
  envPrefix: AGENT_ENV_PREFIX,
  flags: {
    limit: {
      type: optionalSize(),
      default: '',
      help: 'required: the virtual total the command sees and may never exceed (VRAM + host RAM), e.g. 28Gi',
    },
    'vram-share': {
      type: optionalSize(),
      default: '',
      defaultText: "the GPU's VRAM less --vram-reserve",
      help: "VRAM the command may use before it spills to host RAM; needed when NVML cannot tell the GPU's VRAM",
      doc: "VRAM the command may use before it spills to host RAM; needed when NVML cannot tell the GPU's VRAM (the default asks NVML)",
    },
    'vram-reserve': { ...NODE_FLAGS['vram-reserve'], help: 'VRAM left out of the default share, for CUDA contexts and the driver' },
    'spill-backend': {
      type: oneOf(SPILL_BACKENDS),
      default: 'auto',
      help: 'where spilled memory lives: auto (VMM host memory, pinned as the fallback), pinned or managed',
      doc: 'where spilled memory lives: `auto` (VMM host memory, pinned as the fallback), `pinned` or `managed` (`EMUV_SPILL_BACKEND`)',
    },
    gpu: {
      type: optionalText('<index|uuid|pci-address>'),
      default: '',
      defaultText: 'the first GPU NVML lists',
      help: 'the GPU whose VRAM sets the share: an NVML index, a GPU UUID or a PCI address',
    },
    'state-dir': {
      type: optionalText('<path>'),
      default: '',
      defaultText: '$XDG_RUNTIME_DIR/emuv, else /tmp/emuv-$UID',
      help: 'where the run keeps its stats directory (run-<pid>-<random>), for emuv top|status --state-dir',
      doc: 'where the run keeps its stats directory (`run-<pid>-<random>`), for `emuv top --state-dir` and `emuv status --state-dir`',
    },
    'driver-lib': {
      type: optionalText('<path>'),
      default: '',
      defaultText: 'found through /proc/driver/nvidia and ldconfig',
      help: "the NVIDIA driver's libcuda.so.1 (or its directory, which also holds libnvidia-ml.so.1)",
      doc: "the NVIDIA driver's `libcuda.so.1` (or its directory, which also holds `libnvidia-ml.so.1`); by default the one `ldconfig -p` names, when `/proc/driver/nvidia/gpus` lists a GPU",
    },
    'interposer-source': {
      type: optionalText('<dir>'),
      default: '',
      defaultText: 'native/build/lib of this package',
      help: 'the directory holding libemuv-cuda.so and libemuv-nvml.so (make -C native builds them)',
      doc: 'the directory holding `libemuv-cuda.so` and `libemuv-nvml.so` (`make -C native` builds them into `native/build/lib` of this package)',
    },
  },
});

export interface RunConfig {
  limitBytes: number;
  /** null: the GPU's VRAM (NVML) less vramReserveBytes. */
  vramShareBytes: number | null;
  vramReserveBytes: number;
  spillBackend: SpillBackendMode;
  gpu: string | null;
  /** The state directory as given; null: defaultRunStateDir. */
  stateDir: string | null;
  driverLib: string | null;
  interposerSource: string | null;
  /** The command and its arguments, as given after `--`. */
  command: string[];
}

export const RUN_EXAMPLE = 'emuv run --limit 28Gi -- python infer.py';

export function parseRunConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): RunConfig {
  const split = argv.indexOf('--');
  if (split < 0) throw new ConfigError(`no command: give it after --, e.g. ${RUN_EXAMPLE}`);
  const command = argv.slice(split + 1);
  const { values: v } = parseFlags(RUN_COMMAND, argv.slice(0, split), env);
  if (command.length === 0 || command[0] === '') throw new ConfigError(`no command after --, e.g. ${RUN_EXAMPLE}`);
  if (v.limit === null) throw new ConfigError(`--limit <size> is required (the virtual total the command sees), e.g. ${RUN_EXAMPLE}`);
  return {
    limitBytes: v.limit,
    vramShareBytes: v['vram-share'],
    vramReserveBytes: v['vram-reserve'],
    spillBackend: v['spill-backend'],
    gpu: v.gpu,
    stateDir: v['state-dir'],
    driverLib: v['driver-lib'],
    interposerSource: v['interposer-source'],
    command,
  };
}

/** The default state directory: `$XDG_RUNTIME_DIR/emuv` (private to the user), else `/tmp/emuv-<uid>`. */
export function defaultRunStateDir(env: Readonly<Record<string, string | undefined>>, uid: number): string {
  const xdg = env.XDG_RUNTIME_DIR ?? '';
  return xdg.startsWith('/') ? `${xdg.replace(/\/+$/, '')}/emuv` : `/tmp/emuv-${uid}`;
}
