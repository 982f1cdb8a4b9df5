// Log events and sync (spec "v2 additions"): edit / delete / reaction by REST and WS (pushed to all devices, history
// shows the current state of text rows), permission errors (non-author 403, non-member 404, also as WS error frames
// with request_id), and the offline-device catch-up: a device that was offline during 500+ events pages through
// `sync` and must end up with exactly the missed events (once, in order) and the same folded state as a device that
// stayed online, and as GET history. Contract: docs/protocol.md and docs/openapi.yaml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError, withTimeout, sleep } from './lib/harness.mjs';
import { createGroup, isEventFor, fullHistory, assertContiguous, fold, snapshot, historyTextState } from './lib/v2.mjs';

const T = { timeout: 90000 };

let srv;
let A, A2, B, C, D, E; // A has two sessions (devices A1, A2)
let a1, a2, b1, c1, d1, e1;

before(async () => {
  srv = await startServer({ label: 'events-sync' });
  [A, B, C, D, E] = await Promise.all(['EvA', 'EvB', 'EvC', 'EvD', 'EvE'].map((n) => srv.registerUser(n)));
  A2 = await srv.login(A.username, undefined, { type: 'mobile', name: 'A2' });
  [a1, a2, b1, c1, d1, e1] = await Promise.all([A, A2, B, C, D, E].map((u) => srv.wsClient(u.token)));
});
after(async () => { await srv?.close(); });

const api = (method, p, token, body) => srv.api(method, p, { token, body });
const emojiUrl = (id, emoji) => `/api/v1/messages/${id}/reactions/${encodeURIComponent(emoji)}`;

/** Sends a WS request frame with a request_id and returns the reply (ok or error) carrying it. */
let reqCounter = 0;
async function wsRequest(ws, frame, timeoutMs = 10000) {
  const request_id = `req-${++reqCounter}`;
  ws.send({ ...frame, request_id });
  const reply = await ws.next((f) => f.request_id === request_id && (f.type === 'ok' || f.type === 'error'), timeoutMs, `reply to ${request_id} (${frame.type})`);
  reply.sentFrame = frame; // for failure messages
  return reply;
}

/** Waits until `ws` has received an event of conversation convId with seq >= seq (bounded). */
async function waitSeq(ws, convId, seq, timeoutMs = 15000, what = 'events') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const max = Math.max(0, ...ws.received(isEventFor(convId)).map((f) => f.message.seq));
    if (max >= seq) return;
    if (Date.now() > deadline) throw new Error(`timeout: ${what}: conversation ${convId} reached seq ${max}, expected ${seq}`);
    if (ws.closeInfo) throw new Error(`socket closed while waiting for ${what}`);
    await sleep(20);
  }
}

async function lastSeq(token, convId) {
  const r = await api('GET', `/api/v1/conversations/${convId}`, token);
  assert.equal(r.status, 200, r.text.slice(0, 300));
  return r.json.last_seq;
}

/** All live events of convId received by ws, in arrival order (message objects). */
const liveEvents = (ws, convId) => ws.received(isEventFor(convId)).map((f) => f.message);

test('edit / delete / reactions by REST and WS: pushed to all devices; history shows the current state', T, async () => {
  // Goal: the event types and their fan-out. Method: group {A, B}; A sends m1, m2 (REST). A edits m1 by REST (200,
  // current state with edited_at) and by WS (ok + request_id); B reacts 👍 by REST, A reacts 🎉 by WS, B removes 👍
  // by REST DELETE; A deletes m2 by WS and m3 by REST (204). Devices a2 and b1 get every event (type, ref_id, body,
  // data.on); history shows m1 with the final body + edited_at + reactions [{🎉,[A]}], m2/m3 deleted with body "".
  const g = await createGroup(srv, A.token, 'Events', [B.id]);
  const url = `/api/v1/conversations/${g.id}`;
  const send = async (cmid, body) => {
    const r = await api('POST', `${url}/messages`, A.token, { client_msg_id: cmid, body });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  const m1 = await send('e1', 'first');
  const m2 = await send('e2', 'second');
  const m3 = await send('e3', 'third');

  const e1r = await api('PATCH', `/api/v1/messages/${m1.id}`, A.token, { body: 'first (edited)' });
  assert.equal(e1r.status, 200, e1r.text);
  assert.equal(e1r.json.id, m1.id);
  assert.equal(e1r.json.type, 'text');
  assert.equal(e1r.json.body, 'first (edited)');
  assert.equal(typeof e1r.json.edited_at, 'number');

  const e2r = await wsRequest(a1, { type: 'edit', message_id: m1.id, body: 'first (edited twice)' });
  assert.equal(e2r.type, 'ok', JSON.stringify(e2r));
  assert.equal(e2r.message.type, 'edit');
  assert.equal(e2r.message.ref_id, m1.id);
  assert.equal(e2r.message.body, 'first (edited twice)');

  const r1 = await api('PUT', emojiUrl(m1.id, '👍'), B.token);
  assert.equal(r1.status, 200, r1.text);
  assert.deepEqual(r1.json.reactions, [{ emoji: '👍', user_ids: [B.id] }]);
  const r2 = await wsRequest(a1, { type: 'react', message_id: m1.id, emoji: '🎉', on: true });
  assert.equal(r2.type, 'ok', JSON.stringify(r2));
  assert.equal(r2.message.type, 'reaction');
  assert.equal(r2.message.body, '🎉');
  assert.equal(r2.message.data?.on, true);
  const r3 = await api('DELETE', emojiUrl(m1.id, '👍'), B.token);
  assert.equal(r3.status, 200, r3.text);
  assert.deepEqual(r3.json.reactions, [{ emoji: '🎉', user_ids: [A.id] }]);

  const d1r = await wsRequest(a1, { type: 'delete', message_id: m2.id });
  assert.equal(d1r.type, 'ok', JSON.stringify(d1r));
  assert.equal(d1r.message.type, 'delete');
  assert.equal(d1r.message.ref_id, m2.id);
  const d2r = await api('DELETE', `/api/v1/messages/${m3.id}`, A.token);
  assert.equal(d2r.status, 204, d2r.text);

  const last = await lastSeq(A.token, g.id);
  assert.equal(last, 1 + 3 + 2 + 3 + 2, 'created + 3 texts + 2 edits + 3 reactions + 2 deletes');
  const expectTypes = ['created', 'text', 'text', 'text', 'edit', 'edit', 'reaction', 'reaction', 'reaction', 'delete', 'delete'];
  for (const [name, ws] of [['a2', a2], ['b1', b1]]) {
    await waitSeq(ws, g.id, last, 5000, `events on ${name}`);
    const evs = liveEvents(ws, g.id);
    assertContiguous(evs.map((e) => e.seq), name, 1);
    assert.deepEqual(evs.map((e) => e.type), expectTypes, `${name}: event types`);
    const [, , , , ed1, ed2, ra, rb, rc, del1, del2] = evs;
    assert.deepEqual([ed1.ref_id, ed1.body, ed2.ref_id, ed2.body], [m1.id, 'first (edited)', m1.id, 'first (edited twice)']);
    assert.deepEqual([ra.ref_id, ra.body, ra.data?.on, ra.sender_id], [m1.id, '👍', true, B.id]);
    assert.deepEqual([rb.ref_id, rb.body, rb.data?.on, rb.sender_id], [m1.id, '🎉', true, A.id]);
    assert.deepEqual([rc.ref_id, rc.body, rc.data?.on, rc.sender_id], [m1.id, '👍', false, B.id]);
    assert.deepEqual([del1.ref_id, del2.ref_id], [m2.id, m3.id]);
    assert.equal(ed2.id, e2r.message.id, 'pushed event = ok event');
  }

  const hist = await fullHistory(srv, B.token, g.id);
  assert.deepEqual(hist.map((m) => m.type), expectTypes, 'history lists every log entry');
  const h1 = hist.find((m) => m.id === m1.id);
  assert.equal(h1.body, 'first (edited twice)');
  assert.equal(typeof h1.edited_at, 'number');
  assert.equal(h1.deleted, false);
  assert.deepEqual(h1.reactions, [{ emoji: '🎉', user_ids: [A.id] }]);
  for (const id of [m2.id, m3.id]) {
    const h = hist.find((m) => m.id === id);
    assert.equal(h.deleted, true, `${id} deleted`);
    assert.equal(h.body, '', 'deleted => empty body');
  }
  // the folded live state equals history's current state
  assert.deepEqual(snapshot(fold(liveEvents(b1, g.id))).messages, historyTextState(hist));
});

test('edit/delete by a non-author -> 403 (REST and WS error with request_id); by a non-member -> 404; nothing changes', T, async () => {
  // Goal: authorization of log events. Method: group {A, B}; A sends m. B (member, not author): PATCH/DELETE -> 403
  // forbidden, WS edit/delete -> error forbidden echoing request_id; B may react (200). C (non-member): PATCH, DELETE,
  // PUT reaction -> 404 not_found, WS edit/delete/react -> error not_found with request_id. Unknown message id -> 404.
  // Finally m is unchanged (body, not deleted, only B's reaction) and last_seq grew by exactly 1 (B's reaction).
  const g = await createGroup(srv, A.token, 'Perms', [B.id]);
  const sent = await api('POST', `/api/v1/conversations/${g.id}/messages`, A.token, { client_msg_id: 'p1', body: 'mine' });
  assert.equal(sent.status, 201);
  const m = sent.json;
  const seq0 = await lastSeq(A.token, g.id);

  assertError(await api('PATCH', `/api/v1/messages/${m.id}`, B.token, { body: 'hijack' }), 403, 'forbidden', 'non-author REST edit');
  assertError(await api('DELETE', `/api/v1/messages/${m.id}`, B.token), 403, 'forbidden', 'non-author REST delete');
  for (const frame of [{ type: 'edit', message_id: m.id, body: 'hijack' }, { type: 'delete', message_id: m.id }]) {
    const r = await wsRequest(b1, frame);
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, 'forbidden', `non-author WS ${frame.type}: ${JSON.stringify(r)}`);
  }
  const react = await api('PUT', emojiUrl(m.id, '👀'), B.token);
  assert.equal(react.status, 200, `members may react: ${react.text}`);

  assertError(await api('PATCH', `/api/v1/messages/${m.id}`, C.token, { body: 'x' }), 404, 'not_found', 'non-member REST edit');
  assertError(await api('DELETE', `/api/v1/messages/${m.id}`, C.token), 404, 'not_found', 'non-member REST delete');
  assertError(await api('PUT', emojiUrl(m.id, '👀'), C.token), 404, 'not_found', 'non-member REST react');
  assertError(await api('DELETE', emojiUrl(m.id, '👀'), C.token), 404, 'not_found', 'non-member REST unreact');
  for (const frame of [{ type: 'edit', message_id: m.id, body: 'x' }, { type: 'delete', message_id: m.id }, { type: 'react', message_id: m.id, emoji: '👀', on: true }]) {
    const r = await wsRequest(c1, frame);
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, 'not_found', `non-member WS ${frame.type}: ${JSON.stringify(r)}`);
  }
  assertError(await api('PATCH', '/api/v1/messages/123456789012345', A.token, { body: 'x' }), 404, 'not_found', 'unknown message');

  const hist = await fullHistory(srv, A.token, g.id);
  const h = hist.find((x) => x.id === m.id);
  assert.equal(h.body, 'mine');
  assert.equal(h.deleted, false);
  assert.equal(h.edited_at, null);
  assert.deepEqual(h.reactions, [{ emoji: '👀', user_ids: [B.id] }]);
  assert.equal(await lastSeq(A.token, g.id), seq0 + 1, 'only the reaction was logged');
});

test('sync: a device offline during 500 messages + edits/deletes/reactions/membership changes catches up exactly', T, async () => {
  // Goal: offline catch-up is exact and consistent. Method: B creates group G {A, B, C, D} and group G2 {A, B, C}; A
  // and B share a direct conversation; a few messages everywhere while both A1 and A2 are online; A2 records its
  // watermarks and disconnects. While A2 is offline: 500 messages in G (B/C/D over WS, A over REST, E after being
  // added), E added, D removed, G renamed, 20 edits and 10 deletes (old and new messages), ~25 reaction toggles,
  // 20 direct messages with an edit/delete/reaction, and A removed from G2. A1 (online) collects every live frame.
  // Then A2 reconnects and pages `sync` (limit 200, since = its watermarks, updated while has_more). Checks: per
  // conversation A2 gets exactly seq watermark+1..last, once, in seq order (G and direct), G2 is in `removed`; the
  // missed events equal A1's live events (same id/type/seq; non-text events identical); folding A2's pre-offline
  // frames + sync events gives exactly the state folded from A1's frames (body, deleted, reactions, members, name);
  // text rows in sync and history show that current state; history equals A1's event list.
  const G = await createGroup(srv, B.token, 'Sync group', [A.id, C.id, D.id]);
  const G2 = await createGroup(srv, B.token, 'Will be removed', [A.id, C.id]);
  const DM = await srv.directConversation(B.token, A.id);
  const gUrl = `/api/v1/conversations/${G.id}`;
  const sent = []; // {id, seq, author, body}
  const byUser = { [A.id]: A, [B.id]: B, [C.id]: C, [D.id]: D, [E.id]: E };
  const wsOf = { [B.id]: b1, [C.id]: c1, [D.id]: d1, [E.id]: e1 };
  let cm = 0;

  /** Sends in convId: from A over REST (reaches A1), from others over WS (acks). Returns {id, seq, author, body}. */
  async function say(convId, user, body) {
    const cmid = `s-${++cm}`;
    if (user === A) {
      const r = await api('POST', `/api/v1/conversations/${convId}/messages`, A.token, { client_msg_id: cmid, body });
      assert.equal(r.status, 201, r.text);
      return { id: r.json.id, seq: r.json.seq, author: A, body, convId, toJSON() { return { id: this.id, seq: this.seq, author: this.author.username, convId } } };
    }
    const ws = wsOf[user.id];
    ws.send({ type: 'send', conversation_id: convId, client_msg_id: cmid, body });
    const f = await ws.next((x) => (x.type === 'ack' || x.type === 'error') && x.client_msg_id === cmid, 20000, `ack ${cmid}`);
    assert.equal(f.type, 'ack', JSON.stringify(f));
    return { id: f.id, seq: f.seq, author: user, body, convId, toJSON() { return { id: this.id, seq: this.seq, author: this.author.username, convId } } };
  }
  async function burst(convId, plan) { // plan: [[user, count], ...] sent concurrently
    const jobs = [];
    for (const [u, n] of plan) for (let k = 0; k < n; k++) jobs.push(say(convId, u, `${u.username.slice(0, 6)} #${k} ${'x'.repeat(k % 7)}`));
    const out = await Promise.all(jobs);
    sent.push(...out);
    return out;
  }

  // ---- online phase: everybody connected
  const pre = await burst(G.id, [[A, 3], [B, 3], [C, 2], [D, 2]]);
  const preDm = await burst(DM.id, [[A, 2], [B, 2]]);
  await burst(G2.id, [[B, 2], [C, 1]]);
  const wm = {};
  for (const c of [G, G2, DM]) {
    wm[c.id] = await lastSeq(A.token, c.id);
    await waitSeq(a2, c.id, wm[c.id], 10000, 'A2 online phase');
  }
  const a2Pre = {};
  for (const c of [G, G2, DM]) {
    a2Pre[c.id] = liveEvents(a2, c.id);
    assert.equal(Math.max(...a2Pre[c.id].map((e) => e.seq)), wm[c.id], 'A2 watermark = last seq');
  }
  await a2.close();

  // ---- offline phase for A2
  const t0 = Date.now();
  const phase1 = await burst(G.id, [[A, 50], [B, 100], [C, 100], [D, 50]]); // 300
  let r = await api('POST', `${gUrl}/members`, B.token, { user_ids: [E.id] });
  assert.equal(r.status, 200, r.text.slice(0, 200));
  r = await api('DELETE', `${gUrl}/members/${D.id}`, B.token);
  assert.equal(r.status, 204, r.text);
  r = await api('PATCH', gUrl, B.token, { name: 'Sync group (renamed)' });
  assert.equal(r.status, 200, r.text.slice(0, 200));
  const phase2 = await burst(G.id, [[A, 40], [B, 60], [C, 60], [E, 40]]); // 200 -> 500 in total

  // 20 edits by the authors (mix of pre-offline and new messages, REST for A, WS for the others; one message twice)
  const editable = [...pre, ...phase1, ...phase2].filter((s) => s.author !== D);
  const toEdit = [editable[0], editable[1], editable[2], ...editable.slice(10).filter((_, k) => k % 23 === 0).slice(0, 16), editable[0]];
  assert.equal(toEdit.length, 20);
  for (const s of toEdit) { // sequential: the same message may be edited twice
    const body = `edited ${s.id} @${Date.now()}`;
    if (s.author === A) {
      const er = await api('PATCH', `/api/v1/messages/${s.id}`, A.token, { body });
      assert.equal(er.status, 200, er.text);
    } else {
      const er = await wsRequest(wsOf[s.author.id], { type: 'edit', message_id: s.id, body });
      assert.equal(er.type, "ok", `edit of ${JSON.stringify(s)}: ${JSON.stringify(er)}`);
    }
  }
  // 10 deletes (one of them an edited message, one a pre-offline message)
  const toDelete = [toEdit[3], pre.find((s) => s.author !== D && !toEdit.includes(s)), ...editable.slice(40).filter((_, k) => k % 31 === 0 && !toEdit.includes(editable[40 + k])).slice(0, 8)];
  assert.equal(new Set(toDelete.map((s) => s.id)).size, 10);
  await Promise.all(toDelete.map(async (s) => {
    if (s.author === A) {
      const dr = await api('DELETE', `/api/v1/messages/${s.id}`, A.token);
      assert.equal(dr.status, 204, dr.text);
    } else {
      const dr = await wsRequest(wsOf[s.author.id], { type: 'delete', message_id: s.id });
      assert.equal(dr.type, "ok", `delete of ${JSON.stringify(s)}: ${JSON.stringify(dr)}`);
    }
  }));
  // reaction toggles on live messages (by A over REST, by B/C/E over WS), including removals
  const deletedIds = new Set(toDelete.map((s) => s.id));
  const reactable = editable.filter((s) => !deletedIds.has(s.id));
  const reactions = [];
  for (let k = 0; k < 8; k++) {
    const s = reactable[k * 17 % reactable.length];
    reactions.push([s, A, '👍', true], [s, B, '❤️', true], [s, C, '👍', true]);
  }
  reactions.push([reactable[0], A, '👍', false], [reactable[17], C, '👍', false], [reactable.find((s) => phase2.includes(s)), E, '🎉', true]); // E only sees messages after its join
  for (const [s, u, emoji, on] of reactions) { // sequential to keep every toggle meaningful
    if (u === A) {
      const rr = await api(on ? 'PUT' : 'DELETE', emojiUrl(s.id, emoji), A.token);
      assert.equal(rr.status, 200, rr.text);
    } else {
      const rr = await wsRequest(wsOf[u.id], { type: 'react', message_id: s.id, emoji, on });
      assert.equal(rr.type, "ok", `react ${emoji} ${on} by ${u.username} on ${JSON.stringify(s)}: ${JSON.stringify(rr)}`);
    }
  }
  // direct conversation activity
  const dmNew = await burst(DM.id, [[A, 10], [B, 10]]);
  const dmB = dmNew.find((s) => s.author === B);
  assert.equal((await wsRequest(b1, { type: 'edit', message_id: dmB.id, body: 'dm edited' })).type, 'ok');
  assert.equal((await wsRequest(b1, { type: 'delete', message_id: preDm.find((s) => s.author === B).id })).type, 'ok');
  assert.equal((await api('PUT', emojiUrl(dmB.id, '😀'), A.token)).status, 200);
  // A removed from G2 (then G2 keeps going without A)
  await burst(G2.id, [[B, 3]]);
  r = await api('DELETE', `/api/v1/conversations/${G2.id}/members/${A.id}`, B.token);
  assert.equal(r.status, 204, r.text);
  const g2RemovedSeq = await lastSeq(B.token, G2.id);
  await burst(G2.id, [[C, 3]]);

  // ---- A1 must have received everything live
  const final = { [G.id]: await lastSeq(A.token, G.id), [DM.id]: await lastSeq(A.token, DM.id) };
  for (const c of [G, DM]) await waitSeq(a1, c.id, final[c.id], 20000, 'A1 live events');
  await waitSeq(a1, G2.id, g2RemovedSeq, 5000, 'A1 gets the G2 removal');
  await sleep(200); // anything extra (duplicates, G2 events after the removal) would show up by now
  const a1Live = {};
  for (const c of [G, G2, DM]) {
    a1Live[c.id] = liveEvents(a1, c.id);
    assertContiguous(a1Live[c.id].map((e) => e.seq), `A1 live ${c.id}`, 1);
  }
  assert.equal(a1Live[G.id].at(-1).seq, final[G.id], 'A1: nothing after the last G event');
  assert.equal(a1Live[G2.id].at(-1).seq, g2RemovedSeq, 'A1: nothing of G2 after its removal');
  assert.equal(a1Live[G2.id].at(-1).type, 'member_removed');
  assert.ok(final[G.id] - wm[G.id] >= 500 + 3 + 20 + 10 + reactions.length, `enough missed events in G: ${final[G.id] - wm[G.id]}`);
  const offlineMs = Date.now() - t0;

  // ---- A2 reconnects and syncs
  const a2b = await srv.wsClient(A2.token);
  const since = { ...wm };
  const got = [];
  const removed = new Set();
  let pages = 0;
  for (;;) {
    assert.ok(++pages <= 50, 'sync terminates');
    const rid = `sync-${pages}`;
    a2b.send({ type: 'sync', since, limit: 200, request_id: rid });
    const batch = await a2b.next((f) => f.type === 'sync_batch' || (f.type === 'error' && f.request_id === rid), 15000, `sync page ${pages}`);
    assert.equal(batch.type, 'sync_batch', JSON.stringify(batch).slice(0, 500));
    assert.ok(Array.isArray(batch.events) && batch.events.length <= 200, `page ${pages}: ${batch.events?.length} events`);
    for (const id of batch.removed ?? []) removed.add(id);
    // (conversation, seq) order inside a page: each conversation's events form one ascending run
    const runs = [];
    for (const e of batch.events) if (runs.at(-1) !== e.conversation_id) runs.push(e.conversation_id);
    assert.equal(new Set(runs).size, runs.length, `page ${pages}: events grouped by conversation: ${runs.join(',')}`);
    for (const e of batch.events) {
      got.push(e);
      since[e.conversation_id] = Math.max(since[e.conversation_id] ?? 0, e.seq);
    }
    if (!batch.has_more) break;
    assert.ok(batch.events.length > 0, 'has_more with an empty page');
  }
  assert.ok(pages >= 3, `500+ events need several pages of 200 (got ${pages})`);
  assert.ok(removed.has(G2.id), `G2 is reported in removed: ${JSON.stringify([...removed])}`);

  const missed = (cid) => a1Live[cid].filter((e) => e.seq > wm[cid]);
  for (const c of [G, DM]) {
    const mine = got.filter((e) => e.conversation_id === c.id);
    assertContiguous(mine.map((e) => e.seq), `A2 sync ${c.id}`, wm[c.id] + 1);
    assert.equal(mine.at(-1).seq, final[c.id], `A2 sync reaches the last seq of ${c.id}`);
    const live = missed(c.id);
    assert.equal(mine.length, live.length, `${c.id}: as many events as missed`);
    for (let k = 0; k < live.length; k++) {
      const [x, y] = [mine[k], live[k]];
      assert.deepEqual([x.id, x.seq, x.type, x.sender_id, x.ref_id, x.created_at], [y.id, y.seq, y.type, y.sender_id, y.ref_id, y.created_at], `${c.id} seq ${y.seq}`);
      if (y.type !== 'text') assert.deepEqual(x, y, `${c.id}: non-text event seq ${y.seq} identical in sync and live`);
    }
  }
  const g2Synced = got.filter((e) => e.conversation_id === G2.id);
  assert.ok(g2Synced.every((e) => e.seq <= g2RemovedSeq), `no G2 event after A's removal in sync: ${JSON.stringify(g2Synced.filter((e) => e.seq > g2RemovedSeq)).slice(0, 300)}`);
  // conversations not named in `since` (the groups of the earlier tests) start from 0 = A's join: complete logs
  const list = await api('GET', '/api/v1/conversations', A.token);
  assert.equal(list.status, 200);
  const others = list.json.conversations.filter((c) => ![G.id, G2.id, DM.id].includes(c.id));
  assert.ok(others.length >= 2, 'the earlier tests\' groups are listed');
  for (const c of others) {
    const evs = got.filter((e) => e.conversation_id === c.id);
    assertContiguous(evs.map((e) => e.seq), `unnamed conversation ${c.id} synced from 0`, 1);
    assert.equal(evs.at(-1)?.seq, c.last_seq, `unnamed conversation ${c.id} synced completely`);
  }
  const mineIds = new Set([G2.id, ...list.json.conversations.map((c) => c.id)]);
  assert.ok(got.every((e) => mineIds.has(e.conversation_id)), 'only A\'s conversations');

  // ---- folded state: A2 (pre-offline frames + sync) == A1 (live) == history
  for (const c of [G, DM]) {
    const stA1 = snapshot(fold(a1Live[c.id]));
    const stA2 = snapshot(fold([...a2Pre[c.id], ...got.filter((e) => e.conversation_id === c.id)]));
    assert.deepEqual(stA2, stA1, `${c.id}: A2's folded state equals A1's`);
    const hist = await fullHistory(srv, A.token, c.id);
    assert.deepEqual(hist.map((m) => [m.seq, m.id, m.type]), a1Live[c.id].map((m) => [m.seq, m.id, m.type]), `${c.id}: history = A1's event list`);
    assert.deepEqual(historyTextState(hist), stA1.messages, `${c.id}: history current state = folded state`);
    // text rows delivered by sync show the current state too
    const current = stA1.messages;
    for (const e of got.filter((x) => x.conversation_id === c.id && x.type === 'text')) {
      assert.deepEqual(historyTextState([e])[e.id], current[e.id], `sync text row ${e.id} (seq ${e.seq}) shows its current state`);
    }
  }
  const stG = snapshot(fold(a1Live[G.id]));
  const conv = await api('GET', gUrl, A.token);
  assert.equal(stG.name, 'Sync group (renamed)');
  assert.equal(conv.json.name, stG.name);
  assert.deepEqual(stG.members, [A.id, B.id, C.id, E.id].sort(), 'folded members: D removed, E added');
  assert.deepEqual(conv.json.members.map((m) => m.user_id).sort(), stG.members);
  const st = fold(a1Live[G.id]);
  assert.equal([...st.messages.values()].filter((m) => m.deleted).length, 10, '10 deleted messages');
  assert.ok([...st.messages.values()].some((m) => m.reactions.size > 0), 'some reactions survive');
  // E (added while A2 was offline) syncing from 0 starts at its member_added event; D (removed) sees G in `removed`
  // and nothing after its removal
  const eJoin = a1Live[G.id].find((e) => e.type === 'member_added' && e.data?.user_ids?.includes(E.id)).seq;
  const dOut = a1Live[G.id].find((e) => e.type === 'member_removed' && e.data?.user_ids?.includes(D.id)).seq;
  for (const [who, ws, since] of [['E', e1, {}], ['E', e1, { [G.id]: 0 }], ['D', d1, { [G.id]: 0 }]]) {
    const evs = [];
    let rm = [];
    for (let page = 1; ; page++) {
      assert.ok(page <= 20, 'sync terminates');
      const rid = `sync-${who}-${page}-${Object.keys(since).length}`;
      ws.send({ type: 'sync', since, limit: 1000, request_id: rid });
      const b = await ws.next((f) => f.type === 'sync_batch' || (f.type === 'error' && f.request_id === rid), 15000, `sync ${who}`);
      assert.equal(b.type, 'sync_batch', JSON.stringify(b).slice(0, 300));
      rm = rm.concat(b.removed);
      for (const e of b.events) { evs.push(e); since[e.conversation_id] = Math.max(since[e.conversation_id] ?? 0, e.seq); }
      if (!b.has_more) break;
    }
    const gs = evs.filter((e) => e.conversation_id === G.id).map((e) => e.seq);
    if (who === 'E') {
      assertContiguous(gs, `E sync ${JSON.stringify(since)}`, eJoin);
      assert.equal(gs.at(-1), final[G.id]);
    } else {
      assert.ok(rm.includes(G.id), `D: G in removed ${JSON.stringify(rm)}`);
      assert.ok(gs.every((q) => q <= dOut), `D: nothing after its removal (max ${Math.max(...gs)} > ${dOut})`);
    }
  }
  // A1 saw no duplicates and no errors
  assert.equal(a1.received((f) => f.type === 'error').length, 0, JSON.stringify(a1.received((f) => f.type === 'error')).slice(0, 300));
  process.stderr.write(`# sync test: ${got.length} events in ${pages} pages; offline phase ${offlineMs} ms\n`);
});
