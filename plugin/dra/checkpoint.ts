/**
 * Prepared claims on disk, so that an agent restart loses nothing: the kubelet unprepares a claim by UID and
 * name only (the claim may be gone from the apiserver by then), and asks again to prepare claims it already
 * prepared, which must then answer the same without wiping the running container's stats directory.
 *
 * One JSON file, `{"version": 1, "claims": {<uid>: PreparedClaim}}`, written whole to a temporary file and
 * renamed over the old one, so a crash leaves either the old or the new checkpoint. It is parsed strictly; a
 * file that does not parse is moved aside (never deleted: it is evidence) and the agent starts empty, saying so.
 */
import { mkdirSync, renameSync, writeFileSync, readFileSync, fsyncSync, openSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../../common/log.ts';
import { errFields } from '../../common/log.ts';
import type { ClaimDevice, PreparedClaim } from './claim.ts';

export const CHECKPOINT_VERSION = 1;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function field<T>(o: Json, key: string, check: (v: unknown) => v is T, where: string): T {
  const v = o[key];
  if (!check(v)) throw new Error(`${where}.${key}: unexpected ${JSON.stringify(v)?.slice(0, 80)}`);
  return v;
}
const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

function parseDevice(d: unknown, where: string): ClaimDevice {
  if (!isObject(d)) throw new Error(`${where}: expected an object`);
  return {
    request: field(d, 'request', isString, where),
    pool: field(d, 'pool', isString, where),
    device: field(d, 'device', isString, where),
    shareId: field(d, 'shareId', isStringOrNull, where),
    gpuAddress: field(d, 'gpuAddress', isString, where),
    limitBytes: field(d, 'limitBytes', isCount, where),
    allocId: field(d, 'allocId', isString, where),
    cdiDevice: field(d, 'cdiDevice', isString, where),
  };
}

/** Strict parse of the checkpoint's text; throws naming the first thing wrong. */
export function parseCheckpoint(text: string): Map<string, PreparedClaim> {
  const doc: unknown = JSON.parse(text);
  if (!isObject(doc)) throw new Error('expected a JSON object');
  if (doc.version !== CHECKPOINT_VERSION)
    throw new Error(`version ${JSON.stringify(doc.version)}: this agent reads version ${CHECKPOINT_VERSION}`);
  if (!isObject(doc.claims)) throw new Error('claims: expected an object');
  const out = new Map<string, PreparedClaim>();
  for (const [uid, c] of Object.entries(doc.claims)) {
    const where = `claims.${uid}`;
    if (!isObject(c)) throw new Error(`${where}: expected an object`);
    const claim: PreparedClaim = {
      namespace: field(c, 'namespace', isString, where),
      uid: field(c, 'uid', isString, where),
      name: field(c, 'name', isString, where),
      devices: field(c, 'devices', Array.isArray, where).map((d, i) => parseDevice(d, `${where}.devices[${i}]`)),
      pods: field(c, 'pods', isStrings, where),
    };
    if (claim.uid !== uid) throw new Error(`${where}.uid: ${claim.uid} differs from its key`);
    out.set(uid, claim);
  }
  return out;
}

export function formatCheckpoint(claims: ReadonlyMap<string, PreparedClaim>): string {
  return `${JSON.stringify({ version: CHECKPOINT_VERSION, claims: Object.fromEntries(claims) }, null, 1)}\n`;
}

export class ClaimCheckpoint {
  readonly file: string;
  readonly #log: Logger;

  constructor(file: string, logger: Logger) {
    this.file = file;
    this.#log = logger;
  }

  /** The prepared claims; empty when there is no file yet, or when it does not parse (moved aside, logged). */
  load(): Map<string, PreparedClaim> {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    try {
      return parseCheckpoint(text);
    } catch (err) {
      const aside = `${this.file}.unreadable-${Date.now()}`;
      renameSync(this.file, aside);
      this.#log.error('DRA checkpoint does not parse; moved aside, starting with no prepared claims', {
        file: this.file,
        movedTo: aside,
        ...errFields(err),
      });
      return new Map();
    }
  }

  save(claims: ReadonlyMap<string, PreparedClaim>): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o755 });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, formatCheckpoint(claims), { mode: 0o644 });
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}
