// Typing indicators and delivery/read receipts (spec "v2 additions"): typing reaches the other members' devices only,
// is rate limited per connection and conversation (1 per 2 s, extra dropped silently), is refused for foreign
// conversations; delivered/read watermarks are pushed as receipt frames to the members (incl. the reader's other
// devices), shown by GET .../receipts and in the conversation list (unread_count). Contract: docs/protocol.md and docs/openapi.yaml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sleep } from './lib/harness.mjs';
import { createGroup, isEventFor, assertNone } from './lib/v2.mjs';

const T = { timeout: 30000 };

let srv;
let A, A2, B, B2, C, D; // A and B with two devices each; C, D for the group; C also owns a foreign conversation
let a1, a2, b1, b2, c1, d1;
let conv; // A-B direct conversation
let foreign; // C-D direct conversation (A is not a member)

before(async () => {
  srv = await startServer({ label: 'typing-receipts' });
  [A, B, C, D] = await Promise.all(['TypA', 'TypB', 'TypC', 'TypD'].map((n) => srv.registerUser(n)));
  A2 = await srv.login(A.username);
  B2 = await srv.login(B.username);
  conv = await srv.directConversation(A.token, B.id);
  foreign = await srv.directConversation(C.token, D.id);
  [a1, a2, b1, b2, c1, d1] = await Promise.all([A, A2, B, B2, C, D].map((u) => srv.wsClient(u.token)));
});
after(async () => { await srv?.close(); });

const isTyping = (convId) => (f) => f.type === 'typing' && f.conversation_id === convId;
const isReceipt = (convId, userId) => (f) => f.type === 'receipt' && f.conversation_id === convId && f.user_id === userId;

/** unread_count of conversation convId in the caller's conversation list. */
async function unreadOf(token, convId) {
  const r = await srv.api('GET', '/api/v1/conversations', { token });
  assert.equal(r.status, 200, r.text);
  const c = r.json.conversations.find((x) => x.id === convId);
  assert.ok(c, `conversation ${convId} listed`);
  return c.unread_count;
}

/** {user_id -> {delivered_seq, read_seq}} from GET .../receipts. */
async function receiptsOf(token, convId) {
  const r = await srv.api('GET', `/api/v1/conversations/${convId}/receipts`, { token });
  assert.equal(r.status, 200, r.text);
  assert.ok(Array.isArray(r.json.receipts), r.text);
  return Object.fromEntries(r.json.receipts.map((x) => [x.user_id, x]));
}

test('typing from A reaches B\'s devices (not A\'s), carries expires_in_ms; 2 s rate limit per connection', T, async () => {
  // Goal: typing fan-out and its rate limit. Method: a1 sends typing: b1 and b2 get {conversation_id, user_id:A,
  // expires_in_ms:5000}; a1/a2 get nothing. a1 sends typing again after ~0.5 s: dropped silently (B gets nothing, a1
  // no error). a2 (another connection) may type meanwhile: B gets it. a1 types again ~2.2 s after its first: arrives.
  const t0 = Date.now();
  a1.send({ type: 'typing', conversation_id: conv.id });
  for (const [name, ws] of [['b1', b1], ['b2', b2]]) {
    const f = await ws.next(isTyping(conv.id), 3000, `typing on ${name}`);
    assert.equal(f.user_id, A.id);
    assert.equal(f.expires_in_ms, 5000);
  }
  await sleep(500);
  a1.send({ type: 'typing', conversation_id: conv.id });
  await assertNone(b1, isTyping(conv.id), 500, 'second typing within 2 s is dropped');
  assert.equal(b2.received(isTyping(conv.id)).length, 1, 'b2: second typing dropped too');
  a2.send({ type: 'typing', conversation_id: conv.id });
  const fromA2 = await b1.next(isTyping(conv.id), 3000, 'typing from A\'s other connection');
  assert.equal(fromA2.user_id, A.id);
  await b2.next(isTyping(conv.id), 3000, 'typing from a2 on b2');

  await sleep(Math.max(0, 2200 - (Date.now() - t0)));
  a1.send({ type: 'typing', conversation_id: conv.id });
  const third = await b1.next(isTyping(conv.id), 3000, 'typing after 2 s arrives');
  assert.equal(third.user_id, A.id);
  await b2.next(isTyping(conv.id), 3000, 'typing after 2 s on b2');

  await sleep(200);
  assert.equal(a1.received(isTyping(conv.id)).length, 0, 'A\'s devices never get their own typing');
  assert.equal(a2.received(isTyping(conv.id)).length, 0, 'A\'s devices never get their own typing');
  assert.equal(a1.received((f) => f.type === 'error').length, 0, `dropped typing is silent: ${JSON.stringify(a1.received((f) => f.type === 'error'))}`);
  assert.equal(b1.received(isTyping(conv.id)).length, 3, 'b1 got exactly 3 typing frames');
  // typing is never stored
  const r = await srv.api('GET', `/api/v1/conversations/${conv.id}`, { token: A.token });
  assert.equal(r.json.last_seq, 0, 'typing does not create log entries');
});

test('typing into a foreign (or unknown) conversation -> error not_found, with request_id', T, async () => {
  // Goal: typing is only for members. Method: a1 sends typing for the C-D conversation and for an unknown id: error
  // not_found echoing request_id; C and D get no typing frame.
  a1.send({ type: 'typing', conversation_id: foreign.id, request_id: 'typ-foreign' });
  const e1 = await a1.next((f) => f.request_id === 'typ-foreign', 3000, 'error for foreign typing');
  assert.equal(e1.type, 'error');
  assert.equal(e1.code, 'not_found');
  a1.send({ type: 'typing', conversation_id: '987654321', request_id: 'typ-unknown' });
  const e2 = await a1.next((f) => f.request_id === 'typ-unknown', 3000, 'error for unknown conversation');
  assert.equal(e2.type, 'error');
  assert.equal(e2.code, 'not_found');
  await assertNone(c1, isTyping(foreign.id), 200, 'C gets no typing from a non-member');
  await assertNone(d1, isTyping(foreign.id), 50, 'D gets no typing from a non-member');
});

test('receipts: delivered then read (WS), then PUT read from the other device; unread_count and GET receipts follow', T, async () => {
  // Goal: receipt fan-out and watermarks. Method: a1 sends m1 over WS; b1 sends delivered -> a1, a2 and B's other
  // device b2 get receipt {user_id:B, delivered_seq:m1}; B's unread_count is 1; b1 sends read -> receipt with
  // read_seq m1 on a1, a2, b2; unread 0; GET receipts shows both watermarks. Then A sends m2, m3 (REST): unread 2;
  // b2 does PUT /messages/{m3}/read -> 200 {conversation_id, read_seq}; b1 (other device) and A get the receipt;
  // unread 0; a stale PUT read of m1 does not lower read_seq.
  a1.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'r1', body: 'please read' });
  const ack = await a1.next((f) => f.type === 'ack' && f.client_msg_id === 'r1', 5000, 'ack m1');
  const s1 = ack.seq;
  await b1.next(isEventFor(conv.id), 5000, 'm1 on b1');
  await b2.next(isEventFor(conv.id), 5000, 'm1 on b2');
  await a2.next(isEventFor(conv.id), 5000, 'm1 on a2');
  assert.equal(await unreadOf(B.token, conv.id), 1, 'B has 1 unread');

  b1.send({ type: 'delivered', conversation_id: conv.id, seq: s1 });
  for (const [name, ws] of [['a1', a1], ['a2', a2], ['b2', b2]]) {
    const f = await ws.next(isReceipt(conv.id, B.id), 3000, `delivered receipt on ${name}`);
    assert.equal(f.delivered_seq, s1, `${name}: ${JSON.stringify(f)}`);
    assert.equal(f.read_seq, 0, `${name}: nothing read yet: ${JSON.stringify(f)}`);
  }
  let rc = await receiptsOf(A.token, conv.id);
  assert.equal(rc[B.id].delivered_seq, s1);
  assert.equal(rc[B.id].read_seq, 0);
  assert.equal(await unreadOf(B.token, conv.id), 1, 'delivered does not clear unread');

  b1.send({ type: 'read', conversation_id: conv.id, seq: s1 });
  for (const [name, ws] of [['a1', a1], ['a2', a2], ['b2', b2]]) {
    const f = await ws.next(isReceipt(conv.id, B.id), 3000, `read receipt on ${name}`);
    assert.equal(f.read_seq, s1, `${name}: ${JSON.stringify(f)}`);
    assert.equal(f.delivered_seq, s1, `${name}: ${JSON.stringify(f)}`);
  }
  rc = await receiptsOf(B.token, conv.id);
  assert.deepEqual([rc[B.id].delivered_seq, rc[B.id].read_seq], [s1, s1], 'GET receipts: both watermarks');
  assert.equal(await unreadOf(B.token, conv.id), 0, 'read clears unread');
  const list = await srv.api('GET', '/api/v1/conversations', { token: A.token });
  const bm = list.json.conversations.find((x) => x.id === conv.id).members.find((m) => m.user_id === B.id);
  assert.deepEqual([bm.delivered_seq, bm.read_seq], [s1, s1], 'conversation list: members[].delivered_seq/read_seq');
  assert.equal(await unreadOf(B2.token, conv.id), 0, 'unread is per user: 0 on the other device too');

  const m2 = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A.token, body: { client_msg_id: 'r2', body: 'two' } });
  const m3 = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A2.token, body: { client_msg_id: 'r3', body: 'three' } });
  assert.equal(m2.status, 201);
  assert.equal(m3.status, 201);
  assert.equal(await unreadOf(B.token, conv.id), 2, 'two new unread');
  const pr = await srv.api('PUT', `/api/v1/messages/${m3.json.id}/read`, { token: B2.token });
  assert.equal(pr.status, 200, pr.text);
  assert.deepEqual(pr.json, { conversation_id: conv.id, read_seq: m3.json.seq });
  for (const [name, ws] of [['b1', b1], ['a1', a1], ['a2', a2]]) {
    // (b1 may still hold the receipts of its own earlier delivered/read frames: skip those)
    const f = await ws.next((x) => isReceipt(conv.id, B.id)(x) && x.read_seq === m3.json.seq, 3000, `PUT read receipt on ${name}`);
    assert.ok(f.delivered_seq >= s1, `${name}: ${JSON.stringify(f)}`);
  }
  assert.equal(await unreadOf(B.token, conv.id), 0, 'reading on b2 cleared unread for b1 as well');

  const stale = await srv.api('PUT', `/api/v1/messages/${ack.id}/read`, { token: B.token });
  assert.equal(stale.status, 200, stale.text);
  assert.equal(stale.json.read_seq, m3.json.seq, 'read watermark never goes down');
  rc = await receiptsOf(A.token, conv.id);
  assert.equal(rc[B.id].read_seq, m3.json.seq);
  assert.equal(await unreadOf(A.token, conv.id), 0, 'own messages are not unread');

  // receipts for a foreign conversation: not_found
  const fr = await srv.api('GET', `/api/v1/conversations/${foreign.id}/receipts`, { token: A.token });
  assert.equal(fr.status, 404, fr.text);
});

test('group of 4: GET receipts lists readers; delivered-to / read-by counts derive from it', T, async () => {
  // Goal: receipts in a group. Method: A creates a group with B, C, D; A sends m; B sends delivered+read, C delivered
  // only, D nothing. Every member's device sees the receipt frames; GET receipts (by any member) gives
  // delivered-to = {B, C} and read-by = {B} for m; unread_count: B 0, C 1, D 1; after D reads via PUT, read-by {B, D}.
  const g = await createGroup(srv, A.token, 'Four', [B.id, C.id, D.id]);
  for (const ws of [a1, b1, c1, d1]) await ws.next(isEventFor(g.id), 5000, 'created');
  a1.send({ type: 'send', conversation_id: g.id, client_msg_id: 'g1', body: 'group hello' });
  const ack = await a1.next((f) => f.type === 'ack' && f.client_msg_id === 'g1', 5000, 'ack');
  const s = ack.seq;
  for (const ws of [b1, c1, d1]) await ws.next(isEventFor(g.id), 5000, 'group message');

  b1.send({ type: 'delivered', conversation_id: g.id, seq: s });
  c1.send({ type: 'delivered', conversation_id: g.id, seq: s });
  for (const ws of [a1, d1]) {
    await ws.next(isReceipt(g.id, B.id), 3000, 'B delivered receipt');
    await ws.next(isReceipt(g.id, C.id), 3000, 'C delivered receipt');
  }
  b1.send({ type: 'read', conversation_id: g.id, seq: s });
  for (const ws of [a1, c1, d1]) {
    const f = await ws.next((x) => isReceipt(g.id, B.id)(x) && x.read_seq === s, 3000, 'B read receipt');
    assert.equal(f.read_seq, s);
  }

  const readersOf = (rc, seq) => ({
    delivered: Object.values(rc).filter((x) => x.user_id !== A.id && x.delivered_seq >= seq).map((x) => x.user_id).sort(),
    read: Object.values(rc).filter((x) => x.user_id !== A.id && x.read_seq >= seq).map((x) => x.user_id).sort(),
  });
  for (const viewer of [A, C]) {
    const rc = await receiptsOf(viewer.token, g.id);
    assert.deepEqual(Object.keys(rc).sort(), [A.id, B.id, C.id, D.id].sort(), 'one entry per member');
    const r = readersOf(rc, s);
    assert.deepEqual(r.delivered, [B.id, C.id].sort(), 'delivered to B and C');
    assert.deepEqual(r.read, [B.id], 'read by B');
  }
  assert.equal(await unreadOf(B.token, g.id), 0);
  assert.equal(await unreadOf(C.token, g.id), 1);
  assert.equal(await unreadOf(D.token, g.id), 1);

  const pr = await srv.api('PUT', `/api/v1/messages/${ack.id}/read`, { token: D.token });
  assert.equal(pr.status, 200, pr.text);
  await a1.next((x) => isReceipt(g.id, D.id)(x) && x.read_seq === s, 3000, 'D read receipt on A');
  const r2 = readersOf(await receiptsOf(B.token, g.id), s);
  assert.deepEqual(r2.read, [B.id, D.id].sort(), 'read by B and D');
  assert.equal(await unreadOf(D.token, g.id), 0);
});
