import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { validateSend } from './validate';

interface Case {
  name: string;
  frame: unknown;
  repeat?: { placeholder: string; unit: string; count: number };
  expect: { kind: string; code?: string };
}

// Shared frame cases written by the server engineer (server/tests/unit/protocol_cases.json).
const casesPath = new URL('../../../server/tests/unit/protocol_cases.json', import.meta.url);
const cases: Case[] = existsSync(casesPath) ? JSON.parse(readFileSync(casesPath, 'utf8')) : [];

function frameOf(c: Case): Record<string, unknown> | null {
  let text = typeof c.frame === 'string' ? c.frame : JSON.stringify(c.frame);
  if (c.repeat) text = text.split(c.repeat.placeholder).join(c.repeat.unit.repeat(c.repeat.count));
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

describe.skipIf(cases.length === 0)('protocol_cases.json: the client refuses the same sends the server refuses', () => {
  const sends = cases
    .map((c) => ({ c, f: frameOf(c) }))
    .filter(({ f }) => f?.type === 'send')
    // ids beyond 2^53 cannot be represented by a JS number: the client always sends string ids
    .filter(({ f }) => !(typeof f!.conversation_id === 'number' && !Number.isSafeInteger(f!.conversation_id)));
  it('has send cases', () => expect(sends.length).toBeGreaterThan(10));
  for (const { c, f } of sends) {
    it(c.name, () => {
      const want = c.expect.kind === 'error' ? c.expect.code : null;
      expect(validateSend(f!)).toBe(want);
    });
  }
});

describe('validateSend', () => {
  it('accepts what the client produces', () => {
    expect(validateSend({ conversation_id: '12', client_msg_id: 'aZ09_-', body: 'hi 😀' })).toBeNull();
    expect(validateSend({ conversation_id: '12', client_msg_id: 'x', body: '😀'.repeat(100000) })).toBeNull();
    expect(validateSend({ conversation_id: '12', client_msg_id: 'x', body: '😀'.repeat(100001) })).toBe('message_too_long');
    expect(validateSend({ conversation_id: '12', client_msg_id: 'x', body: ' \n\t ' })).toBe('empty_message');
  });
});
