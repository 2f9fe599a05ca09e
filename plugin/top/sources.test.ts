import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../localcluster/repo.ts';
import { parseStats } from '../stats/stats-reader.ts';
import { processRows, statsDirSource } from './sources.ts';

const GOLDEN = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'stats', 'golden-v1.bin');

describe('emuv top process rows', () => {
  const tmp = tempDir('emuv-top-src-');
  afterAll(() => tmp.cleanup());

  it('one row per process slot: pids, liveness, and the bytes of every device', () => {
    const s = parseStats(readFileSync(GOLDEN));
    const rows = processRows(s, ['live', 'gone']);
    expect(rows.map((r) => [r.pid, r.hostPid, r.state])).toEqual([
      [101, 40101, 'live'],
      [202, 0, 'gone'],
    ]);
    expect(rows[0]!.vramBytes).toBe(Number(s.processes[0]!.devices.reduce((a, d) => a + d.vram, 0n)));
    expect(processRows(s, null).every((r) => r.state === 'unknown')).toBe(true);
  });

  it('a --state-dir source keeps the slots of the files it read, by allocation ID', async () => {
    mkdirSync(join(tmp.path, 'gpu-0000-01-00-0-s03'));
    cpSync(GOLDEN, join(tmp.path, 'gpu-0000-01-00-0-s03', 'stats.bin'));
    const src = statsDirSource(tmp.path, null, join(tmp.path, 'no-proc'));
    const doc = await src.fetch();
    expect(doc.containers.map((c) => c.allocId)).toEqual(['gpu-0000-01-00-0-s03']);
    expect(
      src.processes!()
        .get('gpu-0000-01-00-0-s03')!
        .map((r) => r.pid),
    ).toEqual([101, 202]);
    src.close();
  });
});
