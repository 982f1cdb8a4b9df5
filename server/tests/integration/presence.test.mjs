// Presence (spec "v2 additions"): presence_subscribe only reports users sharing a conversation, online while any
// device is connected, offline after the last one closes + grace (with last_seen), no flap on a quick reconnect,
// heartbeat timeout, last_seen in the profile. chatd runs with --presence-grace-ms 300 --ws-idle-timeout-ms 1000.
// Contract: docs/protocol.md and docs/openapi.yaml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sleep } from './lib/harness.mjs';
import { assertNone } from './lib/v2.mjs';

const T = { timeout: 30000 };
const GRACE = 300;
const IDLE = 1000;
const MARGIN = 500; // scheduling slack on top of the server's timers

let srv;
let A, B, C; // A and B share a direct conversation; C shares nothing with anyone
let wa, wc; // A's and C's devices (subscribed to presence)

before(async () => {
  srv = await startServer({ label: 'presence', args: ['--presence-grace-ms', String(GRACE), '--ws-idle-timeout-ms', String(IDLE)] });
  [A, B, C] = await Promise.all([srv.registerUser('PresA'), srv.registerUser('PresB'), srv.registerUser('PresC')]);
  await srv.directConversation(A.token, B.id);
  wa = await srv.wsClient(A.token);
  wc = await srv.wsClient(C.token);
});
after(async () => { await srv?.close(); });

const presenceOf = (userId) => (f) => f.type === 'presence' && f.user_id === userId;

test('subscribe to B and C: only B (shares a conversation) is reported, C is silently ignored', T, async () => {
  // Goal: presence visibility. Method: A subscribes to [B, C] while B has no device: exactly one presence frame, for
  // B, status offline; nothing about C (and no error). C subscribes to B: gets nothing.
  wa.send({ type: 'presence_subscribe', user_ids: [B.id, C.id] });
  const f = await wa.next(presenceOf(B.id), 3000, 'initial presence of B');
  assert.equal(f.status, 'offline');
  assert.ok(f.last_seen === null || typeof f.last_seen === 'number', `last_seen null or ms: ${JSON.stringify(f)}`);
  wc.send({ type: 'presence_subscribe', user_ids: [B.id] });
  await sleep(300);
  assert.equal(wa.received(presenceOf(C.id)).length, 0, 'no presence frame about C');
  assert.equal(wa.received((x) => x.type === 'error').length, 0, `no error: ${JSON.stringify(wa.received((x) => x.type === 'error'))}`);
  assert.equal(wc.received((x) => x.type === 'presence' || x.type === 'error').length, 0, 'C gets nothing about B');
});

test('B connects -> online; second device + closing one -> still online; closing the last -> offline after grace with last_seen', T, async () => {
  // Goal: online while any device holds a session, offline only after the last one + grace. Method: B opens device 1
  // (A gets online), opens device 2 (no frame), closes device 1 and waits grace+margin (no offline), closes device 2:
  // offline arrives no earlier than ~grace and within grace+margin, with a numeric last_seen near the close time.
  const b1 = await srv.wsClient(B.token);
  const on = await wa.next(presenceOf(B.id), 3000, 'B online');
  assert.equal(on.status, 'online');

  const B2 = await srv.login(B.username);
  const b2 = await srv.wsClient(B2.token);
  await b1.close();
  await assertNone(wa, presenceOf(B.id), GRACE + MARGIN, 'no presence change while B still has a device');

  const closedAt = Date.now();
  await b2.close();
  const off = await wa.next(presenceOf(B.id), GRACE + 2 * MARGIN, 'B offline after the last device');
  const after = Date.now() - closedAt;
  assert.equal(off.status, 'offline');
  assert.equal(typeof off.last_seen, 'number', `last_seen is a number: ${JSON.stringify(off)}`);
  assert.ok(off.last_seen >= closedAt - 1000 && off.last_seen <= Date.now() + 1000, `last_seen ${off.last_seen} near close ${closedAt}`);
  assert.ok(after >= GRACE - 50, `offline only after the grace (${after} ms)`);
  assert.equal(wc.received((x) => x.type === 'presence').length, 0, 'C still got nothing about B');
});

test('a reconnect within the grace produces no offline/online flap', T, async () => {
  // Goal: grace hides short disconnects. Method: B connects (A gets online), closes, reconnects ~50 ms later (inside the
  // 300 ms grace): A gets no presence frame for grace+margin; then B closes for good -> one offline.
  const b1 = await srv.wsClient(B.token);
  assert.equal((await wa.next(presenceOf(B.id), 3000, 'B online')).status, 'online');
  await b1.close();
  await sleep(50);
  const b2 = await srv.wsClient(B.token);
  await assertNone(wa, presenceOf(B.id), GRACE + MARGIN, 'no flap on a quick reconnect');
  await b2.close();
  assert.equal((await wa.next(presenceOf(B.id), GRACE + 2 * MARGIN, 'B offline')).status, 'offline');
  await assertNone(wa, presenceOf(B.id), 200, 'exactly one offline');
  assert.equal(wc.received((x) => x.type === 'presence').length, 0, 'C still got nothing about B');
});

test('heartbeat timeout: a socket that stops answering pings is closed and B goes offline after timeout + grace', T, async () => {
  // Goal: dead connections do not keep a user online. Method: B connects with autoPong disabled and sends nothing;
  // A (answering pings) gets online, the server closes B's socket after ~the idle timeout, A gets offline within
  // timeout+grace+margin (not before the timeout); A's own socket stays open; B's profile then shows last_seen.
  const start = Date.now();
  const dead = await srv.wsClient(B.token, { autoPong: false });
  assert.equal((await wa.next(presenceOf(B.id), 3000, 'B online')).status, 'online');
  await dead.waitClosed(IDLE + 2 * MARGIN + 1000);
  const off = await wa.next(presenceOf(B.id), GRACE + 2 * MARGIN, 'B offline after heartbeat timeout');
  const elapsed = Date.now() - start;
  assert.equal(off.status, 'offline');
  assert.equal(typeof off.last_seen, 'number');
  assert.ok(elapsed >= IDLE, `offline not before the idle timeout (${elapsed} ms)`);
  assert.ok(wa.isOpen, 'A (answering pings) is still connected');
  await wa.roundTrip();

  const p = await srv.api('GET', `/api/v1/users/${B.id}/profile`, { token: A.token });
  assert.equal(p.status, 200, p.text);
  assert.equal(typeof p.json.last_seen, 'number', `profile last_seen: ${p.text}`);
  assert.ok(p.json.last_seen >= start - 1000 && p.json.last_seen <= Date.now() + 1000, `profile last_seen ${p.json.last_seen} is recent`);
  assert.equal(wc.received((x) => x.type === 'presence').length, 0, 'C got nothing about B during the whole file');
});

test('presence_subscribe replaces the previous set', T, async () => {
  // Goal: a new subscription replaces the old one. Method: A re-subscribes to [C] only (C is not visible: no frame);
  // B connects and disconnects: A gets nothing about B.
  wa.send({ type: 'presence_subscribe', user_ids: [C.id] });
  await sleep(200);
  const b = await srv.wsClient(B.token);
  await assertNone(wa, presenceOf(B.id), 300, 'no online after unsubscribing');
  await b.close();
  await assertNone(wa, presenceOf(B.id), GRACE + MARGIN, 'no offline after unsubscribing');
  assert.equal(wa.received(presenceOf(C.id)).length, 0);
});
