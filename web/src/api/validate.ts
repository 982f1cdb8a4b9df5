import { MAX_BODY_CODE_POINTS } from './types';

const INT64_MAX = 9223372036854775807n;

/** Client-side mirror of the server's `send` checks: returns the error code the server would answer, or null. */
export function validateSend(f: { conversation_id?: unknown; client_msg_id?: unknown; body?: unknown }): string | null {
  const cid = f.conversation_id;
  if (typeof cid === 'string') {
    if (!/^\d{1,19}$/.test(cid) || BigInt(cid) > INT64_MAX) return 'bad_request';
  } else if (typeof cid === 'number') {
    if (!Number.isInteger(cid) || cid < 0 || cid > Number.MAX_SAFE_INTEGER) return 'bad_request';
  } else return 'bad_request';
  const id = f.client_msg_id;
  if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) return 'bad_request';
  const body = f.body;
  if (typeof body !== 'string') return 'bad_request';
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(body)) return 'invalid_utf8';
  if (/^[\s\u0085\u00a0]*$/.test(body)) return 'empty_message';
  let n = 0;
  for (const _ of body) if (++n > MAX_BODY_CODE_POINTS) return 'message_too_long';
  return null;
}
