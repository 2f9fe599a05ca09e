/**
 * Installs the interposer onto the host at agent start, so that Allocate can mount it:
 *   <interposer-dir>/lib/libemuv-cuda.so, libemuv-nvml.so      (copied from the image)
 *   <interposer-dir>/lib/libemuv-real-cuda.so -> <driver-lib-dir>/libcuda.so.1        (container path)
 *   <interposer-dir>/lib/libemuv-real-nvml.so -> <driver-lib-dir>/libnvidia-ml.so.1
 *   <interposer-dir>/ld.so.preload                              (mounted over /etc/ld.so.preload)
 * Each file is written beside its final name and renamed, so a container starting meanwhile sees
 * either the old or the new file, never half of one. The private symlinks point at container paths:
 * they only resolve inside a GPU container, where the NVIDIA runtime has put the real driver.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTAINER_PATHS, LIBRARY_FILES } from '../../common/contracts/interposer.ts';
import type { InterposerInstall } from '../deviceplugin/allocate.ts';

export const REAL_LIBRARY_LINKS = {
  'libemuv-real-cuda.so': 'libcuda.so.1',
  'libemuv-real-nvml.so': 'libnvidia-ml.so.1',
} as const;

/** Names under <interposer-dir>: the library directory and the preload list. */
export const LIB_DIR_NAME = 'lib';
export const PRELOAD_FILE_NAME = 'ld.so.preload';
/** A file is written as `<final>.tmp-<pid>` and renamed; an install cut short can leave one behind. */
export const TEMP_INFIX = '.tmp-';

/** Every file installInterposer writes under targetDir, and its library directory (what uninstall removes). */
export function installedPaths(targetDir: string): { libDir: string; preloadFile: string; files: string[] } {
  const libDir = join(targetDir, LIB_DIR_NAME);
  const preloadFile = join(targetDir, PRELOAD_FILE_NAME);
  const libs = [...Object.values(LIBRARY_FILES), ...Object.keys(REAL_LIBRARY_LINKS)].map((f) => join(libDir, f));
  return { libDir, preloadFile, files: [...libs, preloadFile] };
}

export function preloadFileContent(): string {
  return `${CONTAINER_PATHS.libDir}/${LIBRARY_FILES.cuda}\n${CONTAINER_PATHS.libDir}/${LIBRARY_FILES.nvml}\n`;
}

export type InstallResult = { install: InterposerInstall } | { install: null; reason: string };

export function installInterposer(opts: { sourceDir: string; targetDir: string; driverLibDir: string }): InstallResult {
  const missing = Object.values(LIBRARY_FILES).filter((f) => !existsSync(join(opts.sourceDir, f)));
  if (missing.length > 0) {
    return {
      install: null,
      reason: `no ${missing.join(', ')} in ${opts.sourceDir}: containers get device nodes and EMUV_* but no interposer`,
    };
  }
  const { libDir, preloadFile } = installedPaths(opts.targetDir);
  mkdirSync(libDir, { recursive: true, mode: 0o755 });
  const replace = (final: string, write: (tmp: string) => void) => {
    const tmp = `${final}${TEMP_INFIX}${process.pid}`;
    rmSync(tmp, { force: true });
    write(tmp);
    renameSync(tmp, final);
  };
  for (const file of Object.values(LIBRARY_FILES)) replace(join(libDir, file), (tmp) => copyFileSync(join(opts.sourceDir, file), tmp));
  for (const [link, real] of Object.entries(REAL_LIBRARY_LINKS))
    replace(join(libDir, link), (tmp) => symlinkSync(join(opts.driverLibDir, real), tmp));
  replace(preloadFile, (tmp) => writeFileSync(tmp, preloadFileContent(), { mode: 0o644 }));
  return { install: { libDir, preloadFile } };
}
