// Messaging between two users with two devices each: fan-out, ordering, exactly-once delivery,
// history/pagination consistency, idempotent retries, read receipts. Contract: docs/protocol.md and docs/openapi.yaml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError, isId } from './lib/harness.mjs';

const T = { timeout: 45000 };

let srv;
let A, B, A2, B2; // sessions: A/B from register, A2/B2 from a second login
let wa1, wa2, wb1, wb2; // one WebSocket per session
let conv; // the A-B direct conversation
let devices; // [{name, ws, token, userId}]

before(async () => {
  srv = await startServer({ label: 'chat' });
  A = await srv.registerUser('Alice');
  B = await srv.registerUser('Bob');
  A2 = await srv.login(A.username, undefined, { type: 'mobile', name: 'phone' });
  B2 = await srv.login(B.username, undefined, { type: 'smart_tv', name: 'tv' });
  wa1 = await srv.wsClient(A.token);
  wa2 = await srv.wsClient(A2.token);
  wb1 = await srv.wsClient(B.token);
  wb2 = await srv.wsClient(B2.token);
  devices = [
    { name: 'A1', ws: wa1, token: A.token, userId: A.id },
    { name: 'B1', ws: wb1, token: B.token, userId: B.id },
    { name: 'A2', ws: wa2, token: A2.token, userId: A.id },
    { name: 'B2', ws: wb2, token: B2.token, userId: B.id },
  ];
});
after(async () => { await srv?.close(); });

const isMsgFor = (convId) => (f) => f.type === 'message' && f.message && f.message.conversation_id === convId;

/** Fetches the whole history of a conversation with after-paging. */
async function fullHistory(token, convId, pageSize = 100) {
  const out = [];
  let after = 0;
  for (let guard = 0; guard < 1000; guard++) {
    const r = await srv.api('GET', `/api/v1/conversations/${convId}/messages?after=${after}&limit=${pageSize}`, { token });
    assert.equal(r.status, 200, r.text);
    out.push(...r.json.messages);
    if (!r.json.has_more) break;
    assert.ok(r.json.messages.length > 0, 'has_more with an empty page');
    after = r.json.messages.at(-1).seq;
  }
  return out;
}

/**
 * Sends a sentinel message from `from` (over REST so every WS gets it) and waits until every device
 * received it: since delivery is in seq order per conversation, anything sent before has arrived by then.
 */
async function barrier(convId, tag) {
  const cmid = `barrier-${tag}`;
  const r = await srv.api('POST', `/api/v1/conversations/${convId}/messages`, { token: B.token, body: { client_msg_id: cmid, body: `barrier ${tag}` } });
  assert.equal(r.status, 201, r.text);
  for (const d of devices) {
    await d.ws.next((f) => isMsgFor(convId)(f) && f.message.client_msg_id === cmid, 5000, `barrier ${tag} on ${d.name}`);
  }
  return r.json;
}

test('direct conversation: POST twice -> same id (201 then 200), from both sides', T, async () => {
  // Goal: one direct conversation per pair. Method: A creates it (201), A again (200), B with A's id (200): same id.
  const r1 = await srv.api('POST', '/api/v1/conversations', { token: A.token, body: { type: 'direct', user_id: B.id } });
  assert.equal(r1.status, 201, r1.text);
  conv = r1.json;
  assert.ok(isId(conv.id), `conversation id is a digit string: ${JSON.stringify(conv.id)}`);
  assert.equal(conv.type, 'direct');
  assert.deepEqual(conv.members.map((m) => m.user_id).sort(), [A.id, B.id].sort());
  for (const m of conv.members) {
    assert.equal(typeof m.username, 'string');
    assert.equal(typeof m.joined_at, 'number');
  }
  assert.equal(conv.last_seq, 0);
  assert.equal(conv.last_message, null);

  const r2 = await srv.api('POST', '/api/v1/conversations', { token: A.token, body: { type: 'direct', user_id: B.id } });
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.json.id, conv.id);

  // user_id given as a JSON integer is accepted too (spec: requests accept a string or an integer)
  const r3 = await srv.api('POST', '/api/v1/conversations', { token: B.token, rawBody: `{"type":"direct","user_id":${A.id}}` });
  assert.equal(r3.status, 200, r3.text);
  assert.equal(r3.json.id, conv.id);

  const g = await srv.api('GET', `/api/v1/conversations/${conv.id}`, { token: B2.token });
  assert.equal(g.status, 200, g.text);
  assert.equal(g.json.id, conv.id);

  const unknown = await srv.api('POST', '/api/v1/conversations', { token: A.token, body: { type: 'direct', user_id: '999999999' } });
  assertError(unknown, 404, 'not_found', 'direct conversation with unknown user');
});

test('20 interleaved messages over WS and REST from 4 devices: exactly-once, in order, no gaps, history matches', T, async () => {
  // Goal: fan-out correctness. Method: fire 20 sends concurrently, cycling the sending device and alternating
  // WS/REST; collect acks/REST replies; each device must get every message exactly once (except its own WS
  // sends, which come back as acks), strictly increasing seq; then compare with history and paging.
  assert.ok(conv, 'conversation created by the previous test');
  const N = 20;
  const sent = []; // {i, cmid, body, dev, via, promise}
  for (let i = 0; i < N; i++) {
    const dev = devices[i % 4];
    const via = i % 3 === 0 ? 'rest' : 'ws'; // mixes both transports for every device
    const cmid = `m-${i}-${dev.name}-${via}`;
    const body = `message ${i} from ${dev.name} via ${via} ✓`;
    let promise;
    if (via === 'ws') {
      dev.ws.send({ type: 'send', conversation_id: conv.id, client_msg_id: cmid, body });
      promise = dev.ws.next((f) => (f.type === 'ack' || f.type === 'error') && f.client_msg_id === cmid, 10000, `ack ${cmid}`).then((f) => {
        assert.equal(f.type, 'ack', `send ${cmid} failed: ${JSON.stringify(f)}`);
        return f;
      });
    } else {
      promise = srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: dev.token, body: { client_msg_id: cmid, body } }).then((r) => {
        assert.equal(r.status, 201, `REST send ${cmid}: ${r.text}`);
        return r.json;
      });
    }
    sent.push({ i, cmid, body, dev, via, promise });
  }
  const results = await Promise.all(sent.map((s) => s.promise));
  sent.forEach((s, k) => { s.result = results[k]; });

  // acks / REST replies: distinct ids, seq exactly 1..N
  for (const s of sent) {
    assert.ok(isId(s.result.id), `id is a digit string: ${JSON.stringify(s.result)}`);
    assert.equal(typeof s.result.seq, 'number');
    assert.equal(s.result.conversation_id, conv.id);
    if (s.via === 'ws') {
      assert.equal(s.result.client_msg_id, s.cmid);
      assert.equal(typeof s.result.created_at, 'number');
    } else {
      assert.equal(s.result.body, s.body);
      assert.equal(s.result.sender_id, s.dev.userId);
      assert.equal(s.result.client_msg_id, s.cmid);
      assert.equal(s.result.type, 'text');
    }
  }
  assert.equal(new Set(sent.map((s) => s.result.id)).size, N, 'distinct ids');
  assert.deepEqual(sent.map((s) => s.result.seq).sort((a, b) => a - b), Array.from({ length: N }, (_, k) => k + 1), 'seq 1..N without gaps');
  const byCmid = new Map(sent.map((s) => [s.cmid, s]));

  // deliveries
  for (const d of devices) {
    const expected = sent.filter((s) => !(s.via === 'ws' && s.dev === d));
    const got = await d.ws.collect(isMsgFor(conv.id), expected.length, 10000, `messages on ${d.name}`);
    const seqs = got.map((f) => f.message.seq);
    for (let k = 1; k < seqs.length; k++) {
      assert.ok(seqs[k] > seqs[k - 1], `${d.name}: seq strictly increasing, got ${seqs.join(',')}`);
    }
    assert.deepEqual(
      got.map((f) => f.message.client_msg_id).sort(),
      expected.map((s) => s.cmid).sort(),
      `${d.name} received exactly the messages not sent by its own connection`,
    );
    for (const f of got) {
      const m = f.message;
      const s = byCmid.get(m.client_msg_id);
      assert.equal(m.id, s.result.id, `${d.name}: delivered id equals ack id for ${s.cmid}`);
      assert.equal(m.seq, s.result.seq);
      assert.equal(m.body, s.body);
      assert.equal(m.sender_id, s.dev.userId);
      assert.equal(m.type, 'text');
      assert.equal(typeof m.created_at, 'number');
    }
  }

  // no duplicates arrive late: after a barrier every device must still have exactly one copy of each
  await barrier(conv.id, 'main');
  for (const d of devices) {
    const all = d.ws.received(isMsgFor(conv.id)).filter((f) => byCmid.has(f.message.client_msg_id));
    const expected = sent.filter((s) => !(s.via === 'ws' && s.dev === d)).length;
    assert.equal(all.length, expected, `${d.name}: no duplicate deliveries`);
    assert.equal(d.ws.received((f) => f.type === 'error').length, 0, `${d.name}: no error frames: ${JSON.stringify(d.ws.received((f) => f.type === 'error'))}`);
  }

  // history equals what was delivered (N messages + the barrier)
  const hist = await fullHistory(A.token, conv.id);
  assert.equal(hist.length, N + 1);
  assert.deepEqual(hist.map((m) => m.seq), Array.from({ length: N + 1 }, (_, k) => k + 1), 'history ascending, no gaps');
  for (const m of hist.slice(0, N)) {
    const s = byCmid.get(m.client_msg_id);
    assert.ok(s, `unexpected history entry ${JSON.stringify(m)}`);
    assert.equal(m.id, s.result.id);
    assert.equal(m.seq, s.result.seq);
    assert.equal(m.body, s.body);
    assert.equal(m.sender_id, s.dev.userId);
    assert.equal(m.conversation_id, conv.id);
  }
  // the same history seen by B's other device
  assert.deepEqual(await fullHistory(B2.token, conv.id), hist);

  // paging: limit + before/after reconstructs the same list
  const total = hist.length; // 21
  const latest = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages?limit=7`, { token: B.token });
  assert.equal(latest.status, 200);
  assert.deepEqual(latest.json.messages, hist.slice(total - 7));
  assert.equal(latest.json.has_more, true);
  const pagesBack = [latest.json.messages];
  let before = latest.json.messages[0].seq;
  let hasMore = true;
  while (hasMore) {
    const r = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages?before=${before}&limit=7`, { token: B.token });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.messages.every((m) => m.seq < before));
    assert.ok(r.json.messages.length > 0, `before=${before}: empty page although the previous page said has_more=true`);
    pagesBack.unshift(r.json.messages);
    hasMore = r.json.has_more;
    if (r.json.messages[0].seq === 1) assert.equal(hasMore, false, `before=${before}: page reaching seq 1 must say has_more=false`);
    before = r.json.messages[0].seq;
  }
  assert.deepEqual(pagesBack.flat(), hist, 'before-paging reconstructs history');
  assert.equal(pagesBack[0].length, total % 7 === 0 ? 7 : total % 7);

  const a1 = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages?after=0&limit=7`, { token: A2.token });
  assert.deepEqual(a1.json.messages, hist.slice(0, 7));
  assert.equal(a1.json.has_more, true);
  const aEnd = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages?after=${total - 7}&limit=7`, { token: A2.token });
  assert.deepEqual(aEnd.json.messages, hist.slice(total - 7));
  assert.equal(aEnd.json.has_more, false, 'exactly the last page: has_more false');
  const aPast = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages?after=${total}`, { token: A2.token });
  assert.deepEqual(aPast.json.messages, []);
  assert.equal(aPast.json.has_more, false);
  const bFirst = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages?before=8&limit=7`, { token: A2.token });
  assert.deepEqual(bFirst.json.messages, hist.slice(0, 7));
  assert.equal(bFirst.json.has_more, false, 'before=8&limit=7 returns seq 1..7: nothing older');
  const all = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages?limit=100`, { token: A2.token });
  assert.deepEqual(all.json.messages, hist);
  assert.equal(all.json.has_more, false);
  const dflt = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages`, { token: A2.token });
  assert.deepEqual(dflt.json.messages, hist, 'default limit 50 covers all 21');

  // conversation object reflects the latest message
  const c = await srv.api('GET', `/api/v1/conversations/${conv.id}`, { token: A.token });
  assert.equal(c.json.last_seq, total);
  assert.equal(c.json.last_message?.id, hist.at(-1).id);
  const list = await srv.api('GET', '/api/v1/conversations', { token: B2.token });
  assert.equal(list.status, 200);
  const mine = list.json.conversations.find((x) => x.id === conv.id);
  assert.ok(mine, 'conversation listed for B');
  assert.equal(mine.last_seq, total);
});

test('retry with the same client_msg_id (WS then REST, REST then WS): same id/seq, delivered once, stored once', T, async () => {
  // Goal: idempotent sends. Method: WS send + WS resend + REST resend with the same session and client_msg_id,
  // and the reverse (REST, REST, WS); compare answers, count deliveries after a barrier, count history rows.
  assert.ok(conv);
  const before = (await srv.api('GET', `/api/v1/conversations/${conv.id}`, { token: A.token })).json.last_seq;

  // 1) WS first, from device A1
  const c1 = 'retry-ws-first';
  wa1.send({ type: 'send', conversation_id: conv.id, client_msg_id: c1, body: 'retry one' });
  const ack1 = await wa1.next((f) => f.client_msg_id === c1 && (f.type === 'ack' || f.type === 'error'));
  assert.equal(ack1.type, 'ack', JSON.stringify(ack1));
  assert.equal(ack1.seq, before + 1);
  // wait until the first copy reached the others, then retry
  await wb1.next((f) => isMsgFor(conv.id)(f) && f.message.client_msg_id === c1);
  wa1.send({ type: 'send', conversation_id: conv.id, client_msg_id: c1, body: 'retry one' });
  const ack1b = await wa1.next((f) => f.client_msg_id === c1 && (f.type === 'ack' || f.type === 'error'));
  assert.equal(ack1b.type, 'ack', JSON.stringify(ack1b));
  assert.equal(ack1b.id, ack1.id);
  assert.equal(ack1b.seq, ack1.seq);
  const rest1 = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A.token, body: { client_msg_id: c1, body: 'retry one' } });
  assert.equal(rest1.status, 200, `REST retry of a WS-sent message -> 200: ${rest1.text}`);
  assert.equal(rest1.json.id, ack1.id);
  assert.equal(rest1.json.seq, ack1.seq);

  // 2) REST first, from device B2's session
  const c2 = 'retry-rest-first';
  const r2a = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: B2.token, body: { client_msg_id: c2, body: 'retry two' } });
  assert.equal(r2a.status, 201, r2a.text);
  assert.equal(r2a.json.seq, before + 2);
  const r2b = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: B2.token, body: { client_msg_id: c2, body: 'retry two' } });
  assert.equal(r2b.status, 200, r2b.text);
  assert.equal(r2b.json.id, r2a.json.id);
  assert.equal(r2b.json.seq, r2a.json.seq);
  wb2.send({ type: 'send', conversation_id: conv.id, client_msg_id: c2, body: 'retry two' });
  const ack2 = await wb2.next((f) => f.client_msg_id === c2 && (f.type === 'ack' || f.type === 'error'));
  assert.equal(ack2.type, 'ack', JSON.stringify(ack2));
  assert.equal(ack2.id, r2a.json.id);
  assert.equal(ack2.seq, r2a.json.seq);

  const bar = await barrier(conv.id, 'retry');
  assert.equal(bar.seq, before + 3, 'retries consumed no seq numbers');

  const count = (ws, cmid) => ws.received((f) => isMsgFor(conv.id)(f) && f.message.client_msg_id === cmid).length;
  assert.equal(count(wa1, c1), 0, 'the sending connection gets acks, not the message');
  for (const ws of [wa2, wb1, wb2]) assert.equal(count(ws, c1), 1, 'WS-first retry delivered exactly once');
  for (const ws of [wa1, wa2, wb1]) assert.equal(count(ws, c2), 1, 'REST-first retry delivered exactly once');
  // c2 was first sent over REST, so B2's WS got the delivery; its WS retry must not add another
  assert.equal(count(wb2, c2), 1);

  const hist = await fullHistory(A.token, conv.id);
  assert.equal(hist.filter((m) => m.client_msg_id === c1).length, 1);
  assert.equal(hist.filter((m) => m.client_msg_id === c2).length, 1);
  assert.deepEqual(hist.map((m) => m.seq), Array.from({ length: hist.length }, (_, k) => k + 1));
});

test('client_msg_id reused for another conversation -> 409 idempotency_conflict (REST) / error frame (WS)', T, async () => {
  // Goal: idempotency keys are not silently reused across conversations. Method: A's notes-to-self conversation,
  // re-send an A-B client_msg_id of A's into it.
  const self = await srv.api('POST', '/api/v1/conversations', { token: A.token, body: { type: 'direct', user_id: A.id } });
  assert.ok(self.status === 201 || self.status === 200, self.text);
  assert.equal(self.json.members.length, 1, 'notes-to-self has one member');
  const r = await srv.api('POST', `/api/v1/conversations/${self.json.id}/messages`, { token: A.token, body: { client_msg_id: 'retry-ws-first', body: 'x' } });
  assertError(r, 409, 'idempotency_conflict', 'client_msg_id reused in another conversation');
  wa1.send({ type: 'send', conversation_id: self.json.id, client_msg_id: 'retry-ws-first', body: 'x' });
  const e = await wa1.next((f) => f.client_msg_id === 'retry-ws-first' && (f.type === 'ack' || f.type === 'error'));
  assert.equal(e.type, 'error', JSON.stringify(e));
  assert.equal(e.code, 'idempotency_conflict');
  const h = await srv.api('GET', `/api/v1/conversations/${self.json.id}/messages`, { token: A.token });
  assert.deepEqual(h.json.messages, []);
});

test('read receipts: PUT /messages/{id}/read and WS read -> receipt frames, watermark only grows', T, async () => {
  // Goal: read watermark semantics. Method: a fresh conversation A-D where only A writes (8 messages), so D's
  // watermark starts at 0; D marks seq 5 read (REST), then seq 3 (stays 5), then seq 7 over WS; A's devices
  // receive receipt frames with D's user id and the new watermark.
  const D = await srv.registerUser('Dora');
  const wd = await srv.wsClient(D.token);
  const cd = await srv.directConversation(A.token, D.id);
  const sentMsgs = [];
  for (let i = 1; i <= 8; i++) {
    const r = await srv.api('POST', `/api/v1/conversations/${cd.id}/messages`, { token: A.token, body: { client_msg_id: `rr-${i}`, body: `read me ${i}` } });
    assert.equal(r.status, 201, r.text);
    sentMsgs.push(r.json);
  }
  await wd.collect((f) => f.type === 'message' && f.message.conversation_id === cd.id, 8);
  const before = await srv.api('GET', `/api/v1/conversations/${cd.id}`, { token: D.token });
  assert.equal(before.json.read_seq, 0, 'D has read nothing yet');
  assert.equal(before.json.unread_count, 8);

  const m5 = sentMsgs.find((m) => m.seq === 5);
  const m3 = sentMsgs.find((m) => m.seq === 3);
  const r = await srv.api('PUT', `/api/v1/messages/${m5.id}/read`, { token: D.token });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { conversation_id: cd.id, read_seq: 5 });
  for (const ws of [wa1, wa2]) {
    const rc = await ws.next((f) => f.type === 'receipt' && f.conversation_id === cd.id && f.user_id === D.id && f.read_seq === 5, 5000, 'receipt 5');
    assert.equal(rc.read_seq, 5);
  }
  const r3 = await srv.api('PUT', `/api/v1/messages/${m3.id}/read`, { token: D.token });
  assert.equal(r3.status, 200, r3.text);
  assert.equal(r3.json.read_seq, 5, 'watermark = max(old, seq)');

  wd.send({ type: 'read', conversation_id: cd.id, seq: 7 });
  for (const ws of [wa1, wa2]) {
    await ws.next((f) => f.type === 'receipt' && f.conversation_id === cd.id && f.user_id === D.id && f.read_seq === 7, 5000, 'receipt 7');
  }
  const c = await srv.api('GET', `/api/v1/conversations/${cd.id}`, { token: D.token });
  assert.equal(c.json.read_seq, 7);
  assert.equal(c.json.unread_count, 1, 'unread_count = last_seq - read_seq for messages of the other member');
  assert.ok(!wb1.received((f) => f.type === 'receipt' && f.conversation_id === cd.id).length, 'B (not a member) sees no receipts');
  const unknown = await srv.api('PUT', '/api/v1/messages/999999999/read', { token: D.token });
  assertError(unknown, 404, 'not_found', 'read of an unknown message');
  wd.terminate();
});

test('pagination parameter errors: limit 101 / 0 -> 400, before+after -> 400, bad cursor -> 400', T, async () => {
  // Goal: documented 400s for bad paging parameters. Method: GET messages with each bad combination.
  assert.ok(conv);
  const base = `/api/v1/conversations/${conv.id}/messages`;
  assertError(await srv.api('GET', `${base}?limit=101`, { token: A.token }), 400, 'bad_request', 'limit=101');
  assertError(await srv.api('GET', `${base}?limit=0`, { token: A.token }), 400, 'bad_request', 'limit=0');
  assertError(await srv.api('GET', `${base}?before=5&after=2`, { token: A.token }), 400, 'bad_request', 'before+after');
  const ok100 = await srv.api('GET', `${base}?limit=100`, { token: A.token });
  assert.equal(ok100.status, 200, 'limit=100 is allowed');
  const ok1 = await srv.api('GET', `${base}?limit=1`, { token: A.token });
  assert.equal(ok1.status, 200);
  assert.equal(ok1.json.messages.length, 1);
  assert.equal(ok1.json.has_more, true);
  const bad = await srv.api('GET', `${base}?before=abc`, { token: A.token });
  assert.equal(bad.status, 400, `before=abc: ${bad.text}`);
  assert.ok(['invalid_cursor', 'bad_request'].includes(bad.json?.error?.code), `before=abc code: ${bad.text}`);
});

test('WS send validation: missing fields -> bad_request with client_msg_id, connection stays', T, async () => {
  // Goal: bad send frames are answered, not fatal. Method: send frames lacking fields / with a bad client_msg_id.
  assert.ok(conv);
  wa2.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'nobody' });
  const e1 = await wa2.next((f) => f.type === 'error' && f.client_msg_id === 'nobody');
  assert.equal(e1.code, 'bad_request');
  wa2.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'has space', body: 'x' });
  const e2 = await wa2.next((f) => f.type === 'error');
  assert.equal(e2.code, 'bad_request', JSON.stringify(e2));
  wa2.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'empty-body', body: ' \n\t ' });
  const e3 = await wa2.next((f) => f.type === 'error' && f.client_msg_id === 'empty-body');
  assert.equal(e3.code, 'empty_message');
  await wa2.roundTrip();
  const re = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A.token, body: { client_msg_id: 'empty-rest', body: '   ' } });
  assertError(re, 400, 'empty_message', 'REST whitespace-only body');
  const rc = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A.token, body: { client_msg_id: 'x'.repeat(65), body: 'hi' } });
  assertError(rc, 400, 'bad_request', 'client_msg_id of 65 bytes');
});
