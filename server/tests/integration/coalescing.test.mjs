// Write coalescing under load (--ws-coalesce-ms, --ws-coalesce-min-sends, --ws-coalesce-min-busy; docs/architecture.md "Transport"):
// a big group's frames may wait for the coalescing timer, prompt frames (acks, direct messages) never do, and
// a prompt frame takes the group frames queued before it along, in order. The threshold is 0 (coalescing always
// on) and the window 3 s, so that "waited for the timer" and "left with a prompt frame" are far apart (the
// checks allow half the window of scheduling slack).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/harness.mjs';
import { registerMany, connectMany, createGroup, isEventFor, assertContiguous } from './lib/v2.mjs';

const T = { timeout: 60000 };
const WINDOW_MS = 3000;
const MEMBERS = 20; // >= the hub's batchable fan-out (16)

let srv;
let users;
let wss;
let group;

before(async () => {
  srv = await startServer({
    label: 'coalescing',
    args: ['--ws-coalesce-ms', String(WINDOW_MS), '--ws-coalesce-min-sends', '0'],
  });
  users = await registerMany(srv, MEMBERS + 1, 'co');
  wss = await connectMany(srv, users.map((u) => u.token));
  group = await createGroup(srv, users[0].token, 'Coalesced', users.slice(1, MEMBERS).map((u) => u.id));
  // The `created` event (seq 1) reaches every member, through the timer or not; consume it.
  await Promise.all(wss.slice(0, MEMBERS).map((ws, i) => ws.collect(isEventFor(group.id), 1, 2 * WINDOW_MS, `created on ${i}`)));
});
after(async () => { await srv?.close(); });

async function sendAcked(ws, conversationId, body) {
  const cmid = `co-${Math.random().toString(36).slice(2)}`;
  ws.send({ type: 'send', conversation_id: conversationId, client_msg_id: cmid, body });
  const f = await ws.next((x) => (x.type === 'ack' || x.type === 'error') && x.client_msg_id === cmid, 10000, `ack ${body}`);
  assert.equal(f.type, 'ack', `send ${body}: ${JSON.stringify(f)}`);
  return f;
}

test('group frames held for coalescing still reach every member, once, in seq order, with no other traffic', T, async () => {
  // Goal: the coalescing timer writes what it holds (nothing else will flush these sessions). Method: 5 group
  // messages; the sender's acks are prompt; every other member must get seqs 2..6 contiguous.
  const started = Date.now();
  for (let k = 0; k < 5; k++) await sendAcked(wss[0], group.id, `burst ${k}`);
  const acked = Date.now() - started;
  assert.ok(acked < WINDOW_MS / 2, `5 acks took ${acked} ms: acks must not wait for the coalescing window`);
  await Promise.all(wss.slice(1, MEMBERS).map(async (ws, i) => {
    const evs = await ws.collect(isEventFor(group.id), 5, 3 * WINDOW_MS, `burst on member ${i + 1}`);
    assertContiguous(evs.map((f) => f.message.seq), `member ${i + 1}`, 2);
    assert.deepEqual(evs.map((f) => f.message.body), [0, 1, 2, 3, 4].map((k) => `burst ${k}`));
  }));
});

test('a direct message is not held by the window and takes the queued group frames along, in order', T, async () => {
  // Goal: prompt frames are never delayed by coalescing, and a session's queue keeps its order. Method: a group
  // message (held for the window on member 1's connection), then a direct message to member 1 from an outsider;
  // member 1 must receive the group message and then the direct message, well before the window ends.
  const direct = await srv.directConversation(users[MEMBERS].token, users[1].id);
  await sendAcked(wss[0], group.id, 'held');
  const t0 = Date.now();
  await sendAcked(wss[MEMBERS], direct.id, 'prompt');
  const isEither = (f) => f.type === 'message' && f.message && (f.message.conversation_id === group.id || f.message.conversation_id === direct.id);
  const got = await wss[1].collect(isEither, 2, 3 * WINDOW_MS, 'group then direct on member 1');
  const elapsed = Date.now() - t0;
  assert.deepEqual(got.map((f) => f.message.body), ['held', 'prompt'], 'queue order: the held group frame first');
  assert.ok(elapsed < WINDOW_MS / 2, `the direct message took ${elapsed} ms: it must not wait for the ${WINDOW_MS} ms window`);
  // Members without a prompt frame still get the group message from the timer.
  const late = await wss[2].collect(isEventFor(group.id), 1, 3 * WINDOW_MS, 'held on member 2');
  assert.equal(late[0].message.body, 'held');
});

// The thresholds: with a send rate of 1/s enough, the thread's busy share decides (--ws-coalesce-min-busy).
// Six more connections (accepted one after another, so every I/O thread holds some) send a `ping` every
// 20 ms meanwhile: every thread writes pongs in every rate window and the send-rate condition holds
// throughout, while the group's members get no prompt frame that would take held frames along.
const PINGERS = 6;
async function groupDeliveryMs(args) {
  const s = await startServer({ label: 'coalescing-threshold', args: ['--ws-coalesce-ms', String(WINDOW_MS), ...args] });
  let pinging = true;
  let pinger;
  try {
    const us = await registerMany(s, MEMBERS + PINGERS, 'ct');
    const sockets = await connectMany(s, us.slice(0, MEMBERS).map((u) => u.token));
    const g = await createGroup(s, us[0].token, 'Threshold', us.slice(1, MEMBERS).map((u) => u.id));
    await Promise.all(sockets.map((ws, i) => ws.collect(isEventFor(g.id), 1, 2 * WINDOW_MS, `created on ${i}`)));
    const pingers = await connectMany(s, us.slice(MEMBERS).map((u) => u.token));
    pinger = (async () => {
      while (pinging) {
        for (const ws of pingers) ws.send({ type: 'ping' });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 300)); // several rate windows (>= 50 ms) with traffic
    const t0 = Date.now();
    await sendAcked(sockets[0], g.id, 'measured');
    await Promise.all(sockets.slice(1).map((ws, i) => ws.collect(isEventFor(g.id), 1, 3 * WINDOW_MS, `measured on ${i + 1}`)));
    return Date.now() - t0;
  } finally {
    pinging = false;
    await pinger;
    await s.close();
  }
}

test('an I/O thread below the busy threshold does not hold group frames; at 0 % the send rate alone decides', T, async () => {
  // Goal: coalescing needs both thresholds. Method: window 3 s, send threshold 1/s. With --ws-coalesce-min-busy 90
  // (a test server idles far below that) the group message reaches every member at once; with 0 it waits for the
  // timer. Without the busy criterion the first case would wait too.
  const idle = await groupDeliveryMs(['--ws-coalesce-min-sends', '1', '--ws-coalesce-min-busy', '90']);
  assert.ok(idle < WINDOW_MS / 2, `an idle thread held group frames for ${idle} ms`);
  const rateOnly = await groupDeliveryMs(['--ws-coalesce-min-sends', '1', '--ws-coalesce-min-busy', '0']);
  assert.ok(rateOnly >= WINDOW_MS / 2, `with the busy threshold off, the frames left after ${rateOnly} ms, not with the timer`);
});
