/**
 * A terminal for tests of `emuv top`: a tmux server of the test's own (its own socket), sessions of a fixed
 * size running a shell command, keys in with `send-keys`, the screen out with `capture-pane`. Used by
 * test/cli/top-tmux.test.ts (a recorded /status stream) and test/cluster/delivery-e2e.test.ts (the demo).
 * Needs tmux (Debian/Ubuntu package `tmux`; setup-host.sh installs it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { NODE_BIN, REPO_ROOT } from '../../localcluster/repo.ts';
import { waitUntil } from '../helpers.ts';

export const TMUX_MISSING = spawnSync('tmux', ['-V'], { encoding: 'utf8' }).error
  ? 'tmux is not installed: this test runs `emuv top` in a tmux session (apt-get install tmux)'
  : null;

/** `emuv top <args>` from the sources, as a shell command line for a tmux pane. */
export const topCommand = (args: string) => `'${NODE_BIN}' '${join(REPO_ROOT, 'plugin', 'main.ts')}' top ${args}`;

/** Container rows of top's overview, by their first column. */
export const rows = (lines: string[]) =>
  lines.filter((l) => /^[> ] [a-z0-9-]+\/[a-z0-9-]+\/[a-z0-9-]+ /.test(l)).map((l) => l.slice(2).split(' ')[0]);

export function tmuxServer(name: string, extraEnv: NodeJS.ProcessEnv = {}) {
  const socket = `${name}-${process.pid}`;
  // The server starts with this environment: no NO_COLOR from the caller's, a UTF-8 locale.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    LANG: 'C.UTF-8',
    TERM: 'xterm-256color',
    ...extraEnv,
  };
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-u', '-L', socket, ...args], { encoding: 'utf8', env });
  const screen = (session: string, escapes = false): string[] =>
    tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', session)
      .replace(/\n+$/, '')
      .split('\n');
  return {
    tmux,
    screen,
    paneFlag: (session: string, flag: string) => tmux('display-message', '-p', '-t', session, `#{${flag}}`).trim(),
    keys: (session: string, ...ks: string[]) => tmux('send-keys', '-t', session, ...ks),
    /** A session running `sh -c <cmd>`; the pane stays after the command (a `sleep` follows it). */
    start(session: string, cmd: string, cols: number, lines: number): void {
      tmux('new-session', '-d', '-s', session, '-x', String(cols), '-y', String(lines), 'sh', '-c', `${cmd}; sleep 600`);
    },
    async waitScreen(session: string, what: string, pred: (lines: string[]) => boolean, timeoutMs = 8000): Promise<string[]> {
      let last: string[] = [];
      try {
        await waitUntil(
          () => {
            last = screen(session);
            return pred(last);
          },
          timeoutMs,
          what,
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}; the screen:\n${last.join('\n')}`, { cause: err });
      }
      return last;
    },
    kill: () => spawnSync('tmux', ['-L', socket, 'kill-server'], { env }),
  };
}
