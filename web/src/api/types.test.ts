import { describe, expect, it } from 'vitest';
import { codePointLength, MAX_BODY_CODE_POINTS } from './types';
import { randomId } from './timers';

describe('limits', () => {
  it('counts code points, not UTF-16 units', () => {
    expect(codePointLength('abc')).toBe(3);
    expect(codePointLength('😀😀')).toBe(2);
    expect('😀😀'.length).toBe(4);
    expect(codePointLength('😀'.repeat(MAX_BODY_CODE_POINTS))).toBe(100000);
  });
  it('random ids are valid client_msg_ids', () => {
    for (let i = 0; i < 50; i++) expect(randomId()).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  });
});

