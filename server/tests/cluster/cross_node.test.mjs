// Cluster mode (scripts/cluster.sh: PostgreSQL, Redis, three chatd nodes, nginx): users connected to
// different nodes chat one-on-one and in groups, typing and logout cross nodes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, assertError } from '../integration/lib/harness.mjs';
import { createGroup, assertContiguous } from '../integration/lib/v2.mjs';
import { endpoint, cluster, isMsgFor } from './lib.mjs';

const T = { timeout: 60000 };
const [lb, n1, n2, n3] = [0, 1, 2, 3].map(endpoint);
const nodes = [n1, n2, n3];

before(() => {
  cluster('start');
});

// Every socket a test opens, closed at the end even when an assertion failed (an open socket
// would keep the test process, and make cluster-test, from exiting).
const opened = [];
function track(ws) {
  opened.push(ws);
  return ws;
}
after(() => {
  for (const ws of opened) ws.close();
});

/** Sends one text over WS and waits for its ack. */
async function send(ws, convId, cmid, body) {
  ws.send({ type: 'send', conversation_id: convId, client_msg_id: cmid, body });
  const f = await ws.next((x) => (x.type === 'ack' || x.type === 'error') && x.client_msg_id === cmid, 10000, `ack ${cmid}`);
  assert.equal(f.type, 'ack', `send ${cmid}: ${JSON.stringify(f)}`);
  return f;
}

/**
 * Every device must have each message not sent from itself exactly once. Frames of one
 * conversation published by different nodes can arrive out of seq order (each node publishes
 * through Redis on its own; docs/protocol.md "Ordering and idempotency"), so the check orders
 * them by seq, as a client does, and requires exactly the expected seqs, each once.
 */
async function checkDevices(devices, convId, sent) {
  for (const d of devices) {
    const expected = sent.filter((s) => s.from !== d.ws).map((s) => s.ack.seq);
    const isSent = (f) => isMsgFor(convId)(f) && expected.includes(f.message.seq);
    await d.ws.collect(isSent, expected.length, 10000, `${d.name} messages`);
    await sleep(300);
    // Events from before the first send (the group's creation) can still be on their way from
    // another node when the device connects: only the sends are counted.
    const first = Math.min(...sent.map((s) => s.ack.seq));
    const all = d.ws.received(isMsgFor(convId)).map((f) => f.message.seq).filter((q) => q >= first);
    assert.deepEqual([...all].sort((x, y) => x - y), expected, `${d.name}: each message once, no extra frames`);
  }
}

test('one-on-one across nodes: A on node 1 and node 3, B on node 2; each device gets each message once', T, async () => {
  const a = await n1.registerUser('xa');
  const b = await n2.registerUser('xb');
  const a2 = await n3.login(a.username);
  const conv = await n1.directConversation(a.token, b.id);
  const devices = [
    { name: 'a1@node1', ws: track(await n1.wsClient(a.token)) },
    { name: 'a2@node3', ws: track(await n3.wsClient(a2.token)) },
    { name: 'b1@node2', ws: track(await n2.wsClient(b.token)) },
  ];
  const sent = [];
  for (let i = 0; i < 30; i++) {
    const from = devices[i % 3].ws;
    const ack = await send(from, conv.id, `x-${i}`, `hello ${i}`);
    sent.push({ from, ack });
  }
  assertContiguous(sent.map((s) => s.ack.seq), 'acks', 1);
  await checkDevices(devices, conv.id, sent);
  // A REST send through nginx reaches every device (no sending connection).
  const r = await lb.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: b.token, body: { client_msg_id: 'rest-1', body: 'via nginx' } });
  assert.equal(r.status, 201, r.text);
  for (const d of devices) {
    const f = await d.ws.next(isMsgFor(conv.id), 5000, `${d.name} REST message`);
    assert.equal(f.message.seq, r.json.seq ?? r.json.message?.seq);
  }
  for (const d of devices) d.ws.close();
});

test('group across three nodes: every member device gets every message once', T, async () => {
  const users = [];
  for (let i = 0; i < 6; i++) users.push(await nodes[i % 3].registerUser(`xg${i}`));
  const group = await createGroup(n1, users[0].token, 'cluster group', users.slice(1).map((u) => u.id));
  const devices = [];
  for (let i = 0; i < users.length; i++) {
    const ws = track(await nodes[i % 3].wsClient(users[i].token));
    devices.push({ name: `u${i}@node${(i % 3) + 1}`, ws });
  }
  // Drain the membership events of the creation (seq 1..) before counting.
  const created = Number(group.last_seq ?? 0);
  const sent = [];
  for (let i = 0; i < 36; i++) {
    const from = devices[(i * 5) % devices.length].ws;
    const ack = await send(from, group.id, `g-${i}`, `group ${i}`);
    sent.push({ from, ack });
  }
  assertContiguous(sent.map((s) => s.ack.seq), 'group acks');
  assert.ok(sent[0].ack.seq > created);
  await checkDevices(devices, group.id, sent);
  for (const d of devices) d.ws.close();
});

test('typing crosses nodes', T, async () => {
  const a = await n1.registerUser('ta');
  const b = await n3.registerUser('tb');
  const conv = await n1.directConversation(a.token, b.id);
  const wa = track(await n1.wsClient(a.token));
  const wb = track(await n3.wsClient(b.token));
  wa.send({ type: 'typing', conversation_id: conv.id });
  const f = await wb.next((x) => x.type === 'typing' && x.conversation_id === conv.id, 3000, 'typing on node 3');
  assert.equal(String(f.user_id), String(a.id));
  wa.close();
  wb.close();
});

test('logout on node 1 closes the session socket on node 2 within 1 s; the token fails on every node', T, async () => {
  const u = await n1.registerUser('lo');
  const other = await n2.login(u.username); // a second session, which must survive
  const ws2 = track(await n2.wsClient(u.token));
  const ws3 = track(await n3.wsClient(u.token));
  const keep = track(await n2.wsClient(other.token));
  const t0 = Date.now();
  const out = await n1.api('POST', '/api/v1/auth/logout', { token: u.token });
  assert.equal(out.status, 204, out.text);
  const [c2, c3] = await Promise.all([ws2.waitClosed(1000), ws3.waitClosed(1000)]);
  assert.equal(c2.code, 4001);
  assert.equal(c3.code, 4001);
  assert.ok(Date.now() - t0 <= 1000, `closed after ${Date.now() - t0} ms`);
  for (const n of [lb, ...nodes]) {
    assertError(await n.api('GET', '/api/v1/users/me', { token: u.token }), 401, 'unauthorized', `token on ${n.label}`);
  }
  // The other session is untouched.
  assert.equal((await n3.api('GET', '/api/v1/users/me', { token: other.token })).status, 200);
  await sleep(200);
  assert.equal(keep.closeInfo, null, 'the other session stays connected');
  keep.close();
});
