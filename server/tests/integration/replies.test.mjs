// Replies (quote a message): a text message may name another message of the same conversation in
// reply_to; live frames and history carry it; a reply to something the sender cannot see is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError } from './lib/harness.mjs';

const T = { timeout: 30000 };
let srv, A, B, C, conv, other;

before(async () => {
  srv = await startServer({ label: 'replies' });
  A = await srv.registerUser('Ann');
  B = await srv.registerUser('Ben');
  C = await srv.registerUser('Cid');
  conv = await srv.directConversation(A.token, B.id);
  other = await srv.directConversation(A.token, C.id);
});
after(async () => { await srv?.close(); });

test('reply_to over WS and REST is delivered and kept in history; bad targets are refused', T, async () => {
  // Goal: replies round-trip and are validated. Method: B listens; A sends an original, then replies
  // over WS and REST; then replies to a message of another conversation, to an unknown id, and with a
  // malformed id, which must all fail without storing anything.
  const wb = await srv.wsClient(B.token);
  const wa = await srv.wsClient(A.token);
  wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'orig', body: 'original' });
  const orig = await wa.next((f) => f.type === 'ack' && f.client_msg_id === 'orig');
  wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'rep1', body: 'answer', reply_to: orig.id });
  const ack = await wa.next((f) => f.type === 'ack' && f.client_msg_id === 'rep1');
  const live = await wb.next((f) => f.type === 'message' && f.message.client_msg_id === 'rep1');
  assert.equal(live.message.reply_to, orig.id);
  assert.equal(live.message.ref_id, null);
  const rest = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, {
    token: B.token, body: { client_msg_id: 'rep2', body: 'me too', reply_to: orig.id },
  });
  assert.equal(rest.status, 201, JSON.stringify(rest.json));
  assert.equal(rest.json.reply_to, orig.id);

  const hist = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages`, { token: A.token });
  const byCid = Object.fromEntries(hist.json.messages.map((m) => [m.client_msg_id, m]));
  assert.equal(byCid.rep1.reply_to, orig.id);
  assert.equal(byCid.rep1.id, ack.id);
  assert.equal(byCid.rep2.reply_to, orig.id);
  assert.equal(byCid.orig.reply_to, null);

  // A message of another conversation, an unknown id, a malformed id.
  wa.send({ type: 'send', conversation_id: other.id, client_msg_id: 'x-orig', body: 'elsewhere' });
  const elsewhere = await wa.next((f) => f.type === 'ack' && f.client_msg_id === 'x-orig');
  const before = hist.json.messages.length;
  for (const [cid, target] of [['bad1', elsewhere.id], ['bad2', '999999999999']]) {
    const r = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, {
      token: A.token, body: { client_msg_id: cid, body: 'nope', reply_to: target },
    });
    assertError(r, 400, 'bad_request', `reply_to ${target}`);
  }
  wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'bad3', body: 'nope', reply_to: 'abc' });
  const e = await wa.next((f) => f.type === 'error' && f.client_msg_id === 'bad3');
  assert.equal(e.code, 'bad_request');
  const after2 = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages`, { token: A.token });
  assert.equal(after2.json.messages.length, before, 'nothing stored for refused replies');
  wa.close();
  wb.close();
});
