/**
 * `emuv top` in a real terminal: tmux runs it in a detached session of a fixed size against a local
 * HTTP server that answers /status with the documents recorded in test/fixtures/status-stream (one per
 * request, then the last one again); keys go in with `tmux send-keys`, the screen comes out with
 * `tmux capture-pane`. The pane's command is a shell that prints a line before top starts and top's exit
 * status after it, so the screen after `q` shows whether the terminal was given back.
 *
 * Needs tmux (Debian/Ubuntu package `tmux`); without it this file fails, saying so.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamDocs } from '../../plugin/top/stream-fixture.ts';
import { rows, TMUX_MISSING, tmuxServer, topCommand } from './tmux.ts';

const { tmux, screen, paneFlag, keys, waitScreen, start, kill } = tmuxServer('emuv-top-test');

function startTop(session: string, url: string, cols: number, lines: number, env = ''): void {
  start(session, `echo BEFORE TOP; ${env} ${topCommand(`--url ${url}`)}; echo EXITED $?`, cols, lines);
}

describe('emuv top in tmux', () => {
  const docs = streamDocs();
  let served = 0;
  let server: Server;
  let url = '';

  beforeAll(async () => {
    // A machine without tmux fails here, saying what to install (CI's setup-host.sh installs it).
    if (TMUX_MISSING) throw new Error(TMUX_MISSING);
    server = createServer((req, res) => {
      if (req.url !== '/status') {
        res.writeHead(404).end();
        return;
      }
      const doc = docs[Math.min(served++, docs.length - 1)];
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    startTop('top', url, 100, 30);
  });

  afterAll(async () => {
    kill();
    await new Promise((r) => server.close(r));
  });

  it('shows the header, the GPUs and the container rows, in colour, in the alternate screen', async () => {
    const lines = await waitScreen(
      'top',
      'the overview with every container',
      (l) => rows(l).length === 4 && l.some((x) => x.includes('2026-11-27T16:00:04')),
    );
    expect(lines[0]).toMatch(/^ emuv top │ node gpu-node-1 │ sort spill▼ │ 2026-11-27T16:00:0\d\.000Z │ http:\/\/127\.0\.0\.1:\d+\/status/);
    expect(lines).toContain('GPU 0000:17:00.0 NVIDIA L4 healthy');
    expect(lines.find((l) => l.includes('NAMESPACE/POD/CONTAINER'))).toMatch(/LIMIT +VRAM +SPILL▼ +PEAK-V +PEAK-S +SPILLS +OOM +PROC$/);
    expect(rows(lines)).toEqual(['team-a/llm-0/server', 'ml/trainer-2/worker', 'zeta/batch-x/eval', 'team-b/notebook-7f9c/jupyter']);
    expect(lines.every((l) => l.length <= 100)).toBe(true);
    // the history of five samples is drawn
    expect(lines.some((l) => /│ +[▁▂▃▄▅▆▇█]{5}$/.test(l))).toBe(true);
    expect(paneFlag('top', 'alternate_on')).toBe('1');
    expect(screen('top', true).join('\n')).toMatch(/\x1b\[[0-9;]*m/);
  });

  it('s sorts by the next column (VRAM), S reverses', async () => {
    keys('top', 's');
    let lines = await waitScreen('top', 'sorted by VRAM', (l) => l.some((x) => x.includes('VRAM▼')));
    expect(rows(lines)).toEqual(['ml/trainer-2/worker', 'team-a/llm-0/server', 'zeta/batch-x/eval', 'team-b/notebook-7f9c/jupyter']);
    keys('top', 'S');
    lines = await waitScreen('top', 'reversed', (l) => l.some((x) => x.includes('VRAM▲')));
    expect(rows(lines)).toEqual(['team-b/notebook-7f9c/jupyter', 'zeta/batch-x/eval', 'team-a/llm-0/server', 'ml/trainer-2/worker']);
    keys('top', 'S');
  });

  it('/ filters the rows by text as it is typed; Esc clears the filter', async () => {
    keys('top', '/', 'team');
    let lines = await waitScreen('top', 'the filter prompt', (l) => l.at(-1)!.startsWith('/team_'));
    expect(rows(lines)).toEqual(['team-a/llm-0/server', 'team-b/notebook-7f9c/jupyter']);
    keys('top', 'Enter');
    lines = await waitScreen('top', 'the filter kept', (l) => l.at(-1)!.startsWith('q quit'));
    expect(lines[0]).toContain('│ filter "team" │');
    expect(rows(lines)).toHaveLength(2);
    keys('top', 'Escape');
    await waitScreen('top', 'the filter cleared', (l) => rows(l).length === 4 && !l[0]!.includes('filter'));
  });

  it('Tab selects a row, Enter shows its detail and process view, Esc goes back', async () => {
    keys('top', 'Tab');
    const sel = await waitScreen('top', 'a selected row', (l) => l.some((x) => x.startsWith('> ')));
    expect(sel.find((x) => x.startsWith('> '))).toMatch(/^> ml\/trainer-2\/worker /);
    keys('top', 'Enter');
    const lines = await waitScreen('top', 'the detail view', (l) => l.includes('PROCESSES'));
    expect(lines[1]).toMatch(/^ml\/trainer-2\/worker {2}alloc gpu-0000-65-00-0-s00 {2}GPU GPU-9a8b7c6d/);
    expect(lines.join('\n')).toContain('2 running, 1 exited still holding 1.5G');
    keys('top', 'Escape');
    await waitScreen('top', 'the overview again', (l) => l.some((x) => x.includes('NAMESPACE/POD/CONTAINER')) && !l.includes('PROCESSES'));
    keys('top', 'Escape');
  });

  it('re-lays out on resize: narrower columns, a minimum-size message, graphs side by side when wide', async () => {
    tmux('resize-window', '-t', 'top', '-x', '80', '-y', '24');
    let lines = await waitScreen('top', 'the 80-column layout', (l) =>
      l.some((x) => x.includes('NAMESPACE/POD/CONTAINER') && !x.includes('PEAK-V')),
    );
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    expect(lines).toHaveLength(24);
    tmux('resize-window', '-t', 'top', '-x', '50', '-y', '10');
    lines = await waitScreen('top', 'the minimum-size message', (l) => l[0]!.startsWith('emuv top needs 60x12'));
    expect(lines[0]).toBe('emuv top needs 60x12; this terminal is 50x10');
    tmux('resize-window', '-t', 'top', '-x', '160', '-y', '45');
    lines = await waitScreen('top', 'the wide layout', (l) => l.some((x) => /^ {2}VRAM .*│.* spill .*│/.test(x)));
    expect(lines.every((l) => l.length <= 160)).toBe(true);
    // Back to the size the shell's screen was saved at: tmux gives the main screen back resized otherwise,
    // with lines of its own scroll-back in view, which would say nothing about top.
    tmux('resize-window', '-t', 'top', '-x', '100', '-y', '30');
    await waitScreen('top', 'the 100-column layout', (l) => l.length === 30 && l.some((x) => x.includes('PEAK-V')));
  });

  it('q quits with status 0 and gives the terminal back: main screen as it was, cursor shown', async () => {
    keys('top', 'q');
    const lines = await waitScreen('top', 'top to exit', (l) => l.some((x) => x.startsWith('EXITED')));
    expect(lines.filter((l) => l.trim())).toEqual(['BEFORE TOP', 'EXITED 0']);
    expect(paneFlag('top', 'alternate_on')).toBe('0');
    expect(paneFlag('top', 'cursor_flag')).toBe('1');
  });

  it('NO_COLOR: no colour; SIGTERM: exits 0 and gives the terminal back', async () => {
    startTop('plain', url, 100, 30, 'NO_COLOR=1');
    await waitScreen('plain', 'the overview', (l) => rows(l).length === 4);
    expect(screen('plain', true).join('\n')).not.toMatch(/\x1b\[[0-9;]*m/);
    expect(paneFlag('plain', 'alternate_on')).toBe('1');
    const shell = Number(paneFlag('plain', 'pane_pid'));
    const top = Number(readFileSync(`/proc/${shell}/task/${shell}/children`, 'utf8').trim().split(/\s+/)[0]);
    expect(top).toBeGreaterThan(0);
    process.kill(top, 'SIGTERM');
    const lines = await waitScreen('plain', 'top to exit', (l) => l.some((x) => x.startsWith('EXITED')));
    expect(lines.filter((l) => l.trim())).toEqual(['BEFORE TOP', 'EXITED 0']);
    expect(paneFlag('plain', 'alternate_on')).toBe('0');
    expect(paneFlag('plain', 'cursor_flag')).toBe('1');
  });
});
