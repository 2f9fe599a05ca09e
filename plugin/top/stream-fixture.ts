/** The recorded /status documents of test/fixtures/status-stream (for the tests of emuv top). */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { StatusDocument } from '../usage/status.ts';

export const STATUS_STREAM = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'status-stream');

export function streamDocs(): StatusDocument[] {
  return readdirSync(STATUS_STREAM)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(STATUS_STREAM, f), 'utf8')) as StatusDocument);
}
