// Authorization: a non-member (C) learns nothing about the A-B conversation, foreign profiles are read-only,
// and every authenticated endpoint refuses requests without a valid token. Contract: docs/protocol.md and docs/openapi.yaml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError } from './lib/harness.mjs';

const T = { timeout: 30000 };
const NOPE = '999999999'; // an id that does not exist

let srv, A, B, C, conv, msg;
before(async () => {
  srv = await startServer({ label: 'authz' });
  A = await srv.registerUser('Ann');
  B = await srv.registerUser('Ben');
  C = await srv.registerUser('Cat');
  conv = await srv.directConversation(A.token, B.id);
  const r = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A.token, body: { client_msg_id: 'secret-1', body: 'for B only' } });
  assert.equal(r.status, 201, r.text);
  msg = r.json;
});
after(async () => { await srv?.close(); });

async function historyOfA() {
  const r = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages?limit=100`, { token: A.token });
  assert.equal(r.status, 200);
  return r.json.messages;
}

test('non-member gets not_found on REST, identical to a nonexistent id', T, async () => {
  // Goal: membership is enforced and existence is not leaked. Method: C calls every conversation/message endpoint with
  // the A-B ids and with a nonexistent id; both answers must be 404 not_found with identical bodies; nothing stored.
  const pairs = [
    ['GET', `/api/v1/conversations/${conv.id}`, `/api/v1/conversations/${NOPE}`, undefined],
    ['GET', `/api/v1/conversations/${conv.id}/messages`, `/api/v1/conversations/${NOPE}/messages`, undefined],
    ['GET', `/api/v1/conversations/${conv.id}/messages?after=0&limit=10`, `/api/v1/conversations/${NOPE}/messages?after=0&limit=10`, undefined],
    ['POST', `/api/v1/conversations/${conv.id}/messages`, `/api/v1/conversations/${NOPE}/messages`, { client_msg_id: 'c-intrude', body: 'let me in' }],
    ['PUT', `/api/v1/messages/${msg.id}/read`, `/api/v1/messages/${NOPE}/read`, undefined],
  ];
  for (const [method, foreign, missing, body] of pairs) {
    const rf = await srv.api(method, foreign, { token: C.token, body });
    const rm = await srv.api(method, missing, { token: C.token, body });
    assertError(rf, 404, 'not_found', `C ${method} ${foreign}`);
    assertError(rm, 404, 'not_found', `C ${method} ${missing}`);
    assert.deepEqual(rf.json, rm.json, `${method}: body for a foreign id equals body for a nonexistent id`);
  }
  const list = await srv.api('GET', '/api/v1/conversations', { token: C.token });
  assert.equal(list.status, 200);
  assert.ok(!list.json.conversations.some((c) => c.id === conv.id), 'not listed for C');

  const hist = await historyOfA();
  assert.equal(hist.length, 1, 'nothing stored by C');
  assert.equal(hist[0].id, msg.id);
  const c = await srv.api('GET', `/api/v1/conversations/${conv.id}`, { token: B.token });
  assert.equal(c.json.read_seq, 0, "C's read attempt did not move B's watermark");
});

test('non-member gets not_found error frames on WS and receives nothing from the conversation', T, async () => {
  // Goal: the WS path enforces membership as REST does. Method: C's socket sends/reads into the A-B conversation
  // (error not_found with client_msg_id); A and B chat and mark read; C's socket sees none of it.
  const wc = await srv.wsClient(C.token);
  const wa = await srv.wsClient(A.token);
  const wb = await srv.wsClient(B.token);

  wc.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'ws-intrude', body: 'hello?' });
  const e1 = await wc.next((f) => f.type === 'error' || f.type === 'ack');
  assert.equal(e1.type, 'error', JSON.stringify(e1));
  assert.equal(e1.code, 'not_found');
  assert.equal(e1.client_msg_id, 'ws-intrude');

  wc.send({ type: 'send', conversation_id: NOPE, client_msg_id: 'ws-nowhere', body: 'hello?' });
  const e2 = await wc.next((f) => f.type === 'error' || f.type === 'ack');
  assert.equal(e2.code, 'not_found');
  assert.equal(e2.client_msg_id, 'ws-nowhere');
  assert.equal(e1.message, e2.message, 'same error text for foreign and nonexistent conversation');

  wc.send({ type: 'read', conversation_id: conv.id, seq: 1 });
  const e3 = await wc.next((f) => f.type === 'error' || f.type === 'receipt');
  assert.equal(e3.type, 'error', JSON.stringify(e3));
  assert.equal(e3.code, 'not_found');

  // A and B talk; B reads
  for (let i = 0; i < 3; i++) {
    wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: `ab-${i}`, body: `private ${i}` });
    await wa.next((f) => f.type === 'ack' && f.client_msg_id === `ab-${i}`);
  }
  const last = await wb.collect((f) => f.type === 'message' && f.message.conversation_id === conv.id && f.message.client_msg_id.startsWith('ab-'), 3);
  wb.send({ type: 'read', conversation_id: conv.id, seq: last.at(-1).message.seq });
  await wa.next((f) => f.type === 'receipt' && f.conversation_id === conv.id);

  // C's socket still works and has seen nothing of the conversation
  await wc.roundTrip();
  const leaked = wc.received((f) => f.type !== 'error' && f.type !== 'pong' && f.type !== 'ready');
  assert.deepEqual(leaked, [], 'C received nothing from the A-B conversation');
  assert.ok(!JSON.stringify(wc.frames).includes('private'), 'no message bodies leaked to C');

  const hist = await historyOfA();
  assert.ok(!hist.some((m) => m.client_msg_id === 'ws-intrude'), 'nothing stored from C');
  await Promise.all([wa.close(), wb.close(), wc.close()]);
});

test('profiles: read others (no email), PUT another user profile -> 403 forbidden', T, async () => {
  // Goal: profile authorization. Method: C reads A's profile (public fields only) and tries to change it.
  const g = await srv.api('GET', `/api/v1/users/${A.id}/profile`, { token: C.token });
  assert.equal(g.status, 200, g.text);
  assert.equal(g.json.id, A.id);
  assert.equal(g.json.username, A.username);
  assert.ok(!('email' in g.json) || g.json.email === null, `no email in a foreign profile: ${g.text}`);

  const p = await srv.api('PUT', `/api/v1/users/${A.id}/profile`, { token: C.token, body: { display_name: 'hacked', bio: 'pwned' } });
  assertError(p, 403, 'forbidden', "C PUT A's profile");
  const after = await srv.api('GET', `/api/v1/users/${A.id}/profile`, { token: A.token });
  assert.notEqual(after.json.display_name, 'hacked');
  assert.notEqual(after.json.bio, 'pwned');

  const missing = await srv.api('GET', `/api/v1/users/${NOPE}/profile`, { token: C.token });
  assertError(missing, 404, 'not_found', 'profile of unknown user');
});

test('requests without a (valid) token -> 401 unauthorized everywhere', T, async () => {
  // Goal: every authenticated endpoint checks the token. Method: call each without a token and with a junk token.
  const calls = [
    ['GET', '/api/v1/users/me'],
    ['GET', '/api/v1/users/search?q=ann'],
    ['GET', `/api/v1/users/${A.id}/profile`],
    ['PUT', `/api/v1/users/${A.id}/profile`, { bio: 'x' }],
    ['GET', '/api/v1/conversations'],
    ['POST', '/api/v1/conversations', { type: 'direct', user_id: B.id }],
    ['GET', `/api/v1/conversations/${conv.id}`],
    ['GET', `/api/v1/conversations/${conv.id}/messages`],
    ['POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: 'anon', body: 'x' }],
    ['PUT', `/api/v1/messages/${msg.id}/read`],
    ['POST', '/api/v1/auth/logout'],
  ];
  for (const [method, p, body] of calls) {
    assertError(await srv.api(method, p, { body }), 401, 'unauthorized', `${method} ${p} without token`);
    assertError(await srv.api(method, p, { body, token: 'junk.token.value' }), 401, 'unauthorized', `${method} ${p} with junk token`);
    assertError(await srv.api(method, p, { body, headers: { authorization: `Basic ${A.token}` } }), 401, 'unauthorized', `${method} ${p} with a non-Bearer scheme`);
  }
  const hist = await historyOfA();
  assert.ok(!hist.some((m) => m.client_msg_id === 'anon'));
});
