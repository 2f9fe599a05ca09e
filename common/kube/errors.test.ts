import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { isConflict, isNotFound, statusCode, unlessNotFound } from './errors.ts';

describe('API error status', () => {
  it("reads the status of client-node's ApiException and of errors that carry a statusCode", () => {
    expect(statusCode(new ApiException(404, 'not found', {}, {}))).toBe(404);
    expect(isConflict(new ApiException(409, 'conflict', {}, {}))).toBe(true);
    expect(statusCode(Object.assign(new Error('x'), { statusCode: 422 }))).toBe(422);
  });

  it('is undefined for network errors, whose code is a string', () => {
    const err = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(statusCode(err)).toBeUndefined();
    expect(isNotFound(err)).toBe(false);
    expect(statusCode('404')).toBeUndefined();
  });

  it('unlessNotFound turns a 404 into the fallback and lets every other error through', async () => {
    expect(await unlessNotFound(Promise.reject(new ApiException(404, 'gone', {}, {})), null)).toBeNull();
    expect(await unlessNotFound(Promise.resolve(7), null)).toBe(7);
    await expect(unlessNotFound(Promise.reject(new ApiException(403, 'forbidden', {}, {})), null)).rejects.toMatchObject({ code: 403 });
  });
});
