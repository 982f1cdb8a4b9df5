import { MAX_BODY_CODE_POINTS } from './types';

const INT64_MAX = 9223372036854775807n;

/** An id as the server parses it: a decimal string or a non-negative integer within int64. */
function validId(v: unknown): boolean {
  if (typeof v === 'string') return /^\d{1,19}$/.test(v) && BigInt(v) <= INT64_MAX;
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;
  return false;
}

/** Client-side mirror of the server's `send` checks: returns the error code the server would answer, or null. */
export function validateSend(f: { conversation_id?: unknown; client_msg_id?: unknown; body?: unknown; reply_to?: unknown }): string | null {
  if (!validId(f.conversation_id)) return 'bad_request';
  const id = f.client_msg_id;
  if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) return 'bad_request';
  if (f.reply_to !== undefined && f.reply_to !== null && !validId(f.reply_to)) return 'bad_request';
  const body = f.body;
  if (typeof body !== 'string') return 'bad_request';
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(body)) return 'invalid_utf8';
  if (/^[\s\u0085\u00a0]*$/.test(body)) return 'empty_message';
  let n = 0;
  for (const _ of body) if (++n > MAX_BODY_CODE_POINTS) return 'message_too_long';
  return null;
}
