// Groups (spec "v2 additions"): a 100-member group with fan-out to every member's device (exactly once, seq order,
// no gaps), the 100-member cap (add and invite-join -> 409 group_full, nothing changes), removal (event, then silence
// and 404 everywhere), late joiners see history only from their join, rename / roles / invites with permission
// checks, direct conversations are immutable, leave and owner hand-over. Contract: docs/protocol.md and docs/openapi.yaml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError } from './lib/harness.mjs';
import { registerMany, connectMany, createGroup, isEventFor, fullHistory, assertContiguous, assertNone } from './lib/v2.mjs';

const T = { timeout: 60000 };

let srv;
let users; // 104 registered users: [0] owner, [0..99] initial members, [100..103] outsiders for later
let wss; // wss[i] = WebSocket of users[i] (one device each)
let group; // the 100-member group
// Seq watermark per device index: the last event seq of `group` already consumed/checked on that device.
const seen = new Map();

before(async () => {
  srv = await startServer({ label: 'groups' });
  users = await registerMany(srv, 104, 'g');
  wss = await connectMany(srv, users.map((u) => u.token));
});
after(async () => { await srv?.close(); });

const api = (method, p, token, body) => srv.api(method, p, { token, body });
const convUrl = () => `/api/v1/conversations/${group.id}`;

/** Current members of the group as seen by `token` (asserts 200). */
async function getGroup(token = users[0].token) {
  const r = await api('GET', convUrl(), token);
  assert.equal(r.status, 200, r.text.slice(0, 300));
  return r.json;
}

/**
 * Waits until each device in `idxs` has received the next log event(s) up to and including seq `upto`, in order,
 * starting right after the device's watermark; returns a map idx -> [events]. Asserts contiguity (no gap/dup).
 */
async function drainTo(idxs, upto, what) {
  const out = new Map();
  await Promise.all(idxs.map(async (i) => {
    const from = seen.get(i) ?? 0;
    const evs = await wss[i].collect(isEventFor(group.id), upto - from, 10000, `${what} on device ${i}`);
    assertContiguous(evs.map((f) => f.message.seq), `${what} on device ${i}`, from + 1);
    seen.set(i, upto);
    out.set(i, evs.map((f) => f.message));
  }));
  return out;
}

test('create a 100-member group: 201, owner + 99 members, every device gets the created event (seq 1)', T, async () => {
  // Goal: group creation and the first fan-out. Method: users[0] creates a group with users[1..99]; check the
  // conversation object, then every one of the 100 devices must get exactly the `created` event with seq 1.
  const ids = users.slice(1, 100).map((u) => u.id);
  group = await createGroup(srv, users[0].token, 'Hundred', ids);
  assert.equal(group.type, 'group');
  assert.equal(group.name, 'Hundred');
  assert.equal(group.members.length, 100);
  assert.deepEqual(group.members.map((m) => m.user_id).sort(), users.slice(0, 100).map((u) => u.id).sort());
  assert.equal(group.members.find((m) => m.user_id === users[0].id).role, 'owner');
  assert.ok(group.members.filter((m) => m.user_id !== users[0].id).every((m) => m.role === 'member'), 'others are plain members');
  assert.equal(group.last_seq, 1);

  const idx = [...Array(100).keys()];
  const got = await drainTo(idx, 1, 'created');
  for (const [i, [e]] of got) {
    assert.equal(e.type, 'created', `device ${i}`);
    assert.equal(e.sender_id, users[0].id);
    assert.deepEqual([...e.data.user_ids].sort(), users.slice(0, 100).map((u) => u.id).sort(), `created.data.user_ids on device ${i}`);
  }
  await assertNone(wss[100], isEventFor(group.id), 200, 'outsider gets nothing of the group');
});

test('30 messages from 10 members: every one of the 100 devices gets each exactly once, seq order, no gaps; senders get acks', T, async () => {
  // Goal: large fan-out correctness. Method: members 0,11,22,...,99 (10 senders) each fire 3 WS sends concurrently;
  // collect the acks (seq 2..31 without gaps); each device must then receive exactly the 30 events minus the ones its
  // own connection sent, strictly in seq order; a REST barrier message proves nothing else (no duplicate) was queued.
  assert.ok(group, 'group from the previous test');
  const senders = Array.from({ length: 10 }, (_, k) => k * 11);
  const sent = [];
  for (let r = 0; r < 3; r++) {
    for (const i of senders) {
      const cmid = `m-${i}-${r}`;
      wss[i].send({ type: 'send', conversation_id: group.id, client_msg_id: cmid, body: `hello ${r} from ${i}` });
      sent.push({ i, cmid, body: `hello ${r} from ${i}` });
    }
  }
  const acks = await Promise.all(sent.map((s) => wss[s.i].next((f) => (f.type === 'ack' || f.type === 'error') && f.client_msg_id === s.cmid, 15000, `ack ${s.cmid}`)));
  acks.forEach((a, k) => { assert.equal(a.type, 'ack', JSON.stringify(a)); sent[k].seq = a.seq; sent[k].id = a.id; });
  assert.deepEqual(acks.map((a) => a.seq).sort((a, b) => a - b), Array.from({ length: 30 }, (_, k) => k + 2), 'acks: seq 2..31');
  const bySeq = new Map(sent.map((s) => [s.seq, s]));

  await Promise.all([...Array(100).keys()].map(async (i) => {
    const expected = sent.filter((s) => s.i !== i).sort((a, b) => a.seq - b.seq);
    const got = await wss[i].collect(isEventFor(group.id), expected.length, 20000, `messages on device ${i}`);
    const seqs = got.map((f) => f.message.seq);
    assert.deepEqual(seqs, expected.map((s) => s.seq), `device ${i}: exactly the others' messages, in seq order`);
    for (const f of got) {
      const s = bySeq.get(f.message.seq);
      assert.equal(f.message.type, 'text');
      assert.equal(f.message.id, s.id);
      assert.equal(f.message.body, s.body);
      assert.equal(f.message.sender_id, users[s.i].id);
    }
    seen.set(i, 31);
  }));

  // barrier: anything else (a duplicate) would arrive before it
  const b = await api('POST', `${convUrl()}/messages`, users[5].token, { client_msg_id: 'barrier-1', body: 'barrier' });
  assert.equal(b.status, 201, b.text);
  assert.equal(b.json.seq, 32);
  await drainTo([...Array(100).keys()], 32, 'barrier');
  for (let i = 0; i < 100; i++) {
    assert.equal(wss[i].received((f) => f.type === 'error').length, 0, `device ${i} got no error frames`);
  }
  const hist = await fullHistory(srv, users[77].token, group.id);
  assert.deepEqual(hist.map((m) => m.seq), Array.from({ length: 32 }, (_, k) => k + 1), 'history 1..32');
});

test('the 101st member is refused: add -> 409 group_full, invite join -> 409 group_full; group unchanged', T, async () => {
  // Goal: the 100-member cap. Method: owner adds users[100] -> 409; owner creates an invite, users[100] joins with it
  // -> 409; adding two users at once is refused too; creating a 101-member group -> 409. The conversation still has
  // the same 100 members and last_seq, and no device receives a new event (the next event every device sees is the
  // barrier sent afterwards).
  const before = await getGroup();
  assert.equal(before.members.length, 100);
  assertError(await api('POST', `${convUrl()}/members`, users[0].token, { user_ids: [users[100].id] }), 409, 'group_full', 'add 101st');
  assertError(await api('POST', `${convUrl()}/members`, users[0].token, { user_ids: [users[100].id, users[101].id] }), 409, 'group_full', 'add 101st+102nd');
  const inv = await api('POST', `${convUrl()}/invites`, users[0].token);
  assert.equal(inv.status, 201, inv.text);
  assert.equal(typeof inv.json.code, 'string');
  assertError(await api('POST', `${convUrl()}/join`, users[100].token, { code: inv.json.code }), 409, 'group_full', 'join 101st via invite');

  const tooBig = await api('POST', '/api/v1/conversations', users[100].token, { type: 'group', name: 'Too big', member_ids: users.slice(0, 100).map((u) => u.id) });
  assertError(tooBig, 409, 'group_full', 'create a group of 101');

  const afterG = await getGroup();
  assert.equal(afterG.members.length, 100, 'member count still 100');
  assert.deepEqual(afterG.members.map((m) => m.user_id).sort(), before.members.map((m) => m.user_id).sort());
  assert.equal(afterG.last_seq, before.last_seq, 'no new log event');
  assertError(await api('GET', convUrl(), users[100].token), 404, 'not_found', 'refused user is not a member');
  assert.equal((await api('DELETE', `${convUrl()}/invites/${inv.json.code}`, users[0].token)).status, 204, 'revoke the invite');

  const b = await api('POST', `${convUrl()}/messages`, users[0].token, { client_msg_id: 'barrier-2', body: 'barrier 2' });
  assert.equal(b.status, 201, b.text);
  assert.equal(b.json.seq, before.last_seq + 1, 'barrier directly follows: nothing was logged by the refused changes');
  await drainTo([...Array(100).keys()], b.json.seq, 'barrier 2'); // a REST send reaches the sender's device too
  await assertNone(wss[100], isEventFor(group.id), 100, 'refused user receives nothing');
});

test('a removed member gets member_removed, then nothing more, and 404 on history / send / GET conversation', T, async () => {
  // Goal: removal semantics. Method: owner removes users[99] (204); every device (incl. the removed one) gets
  // member_removed with data.user_ids=[99]; then a member sends a message: the others get it, the removed device gets
  // nothing (checked after everybody else got it); the removed user gets 404 on GET conversation, history, REST send,
  // and an error not_found on a WS send; the conversation no longer lists them.
  const victim = 99;
  const r = await api('DELETE', `${convUrl()}/members/${users[victim].id}`, users[0].token);
  assert.equal(r.status, 204, r.text);
  const g = await getGroup();
  const removedSeq = g.last_seq;
  const got = await drainTo([...Array(100).keys()], removedSeq, 'member_removed');
  for (const [i, evs] of got) {
    const e = evs.at(-1);
    assert.equal(e.type, 'member_removed', `device ${i}`);
    assert.deepEqual(e.data.user_ids, [users[victim].id]);
    assert.equal(e.sender_id, users[0].id);
  }
  assert.equal(g.members.length, 99);
  assert.ok(!g.members.some((m) => m.user_id === users[victim].id), 'removed user not listed');

  const m = await api('POST', `${convUrl()}/messages`, users[3].token, { client_msg_id: 'after-removal', body: 'you are gone' });
  assert.equal(m.status, 201, m.text);
  await drainTo([...Array(99).keys()], m.json.seq, 'message after removal');
  await assertNone(wss[victim], isEventFor(group.id), 300, 'removed member receives nothing more');

  const vt = users[victim].token;
  assertError(await api('GET', convUrl(), vt), 404, 'not_found', 'removed: GET conversation');
  assertError(await api('GET', `${convUrl()}/messages`, vt), 404, 'not_found', 'removed: history');
  assertError(await api('GET', `${convUrl()}/messages?after=0&limit=10`, vt), 404, 'not_found', 'removed: history after=0');
  assertError(await api('POST', `${convUrl()}/messages`, vt, { client_msg_id: 'ghost', body: 'ghost' }), 404, 'not_found', 'removed: REST send');
  wss[victim].send({ type: 'send', conversation_id: group.id, client_msg_id: 'ghost-ws', body: 'ghost' });
  const err = await wss[victim].next((f) => f.client_msg_id === 'ghost-ws', 5000, 'error for WS send');
  assert.equal(err.type, 'error');
  assert.equal(err.code, 'not_found');
  const list = await api('GET', '/api/v1/conversations', vt);
  assert.equal(list.status, 200);
  assert.ok(!list.json.conversations.some((c) => c.id === group.id), 'removed user no longer lists the group');
  assert.equal((await getGroup()).last_seq, m.json.seq, 'failed sends stored nothing');

  // nothing transient reaches the removed member either, and it cannot type / sync into the group
  wss[3].send({ type: 'typing', conversation_id: group.id });
  wss[8].send({ type: 'read', conversation_id: group.id, seq: m.json.seq });
  await wss[4].next((f) => f.type === 'typing' && f.conversation_id === group.id, 5000, 'typing reaches a member');
  await wss[4].next((f) => f.type === 'receipt' && f.conversation_id === group.id && f.user_id === users[8].id, 5000, 'receipt reaches a member');
  await assertNone(wss[victim], (f) => f.conversation_id === group.id || f.message?.conversation_id === group.id, 300, 'removed member: no typing/receipt/event');
  wss[victim].send({ type: 'typing', conversation_id: group.id, request_id: 'ghost-typing' });
  const te = await wss[victim].next((f) => f.request_id === 'ghost-typing', 5000, 'typing error');
  assert.equal(te.code, 'not_found', JSON.stringify(te));
  assertError(await api('GET', `${convUrl()}/receipts`, vt), 404, 'not_found', 'removed: receipts');
  wss[victim].send({ type: 'sync', since: { [group.id]: 0 }, limit: 1000, request_id: 'ghost-sync' });
  const sb = await wss[victim].next((f) => f.type === 'sync_batch' || f.request_id === 'ghost-sync', 5000, 'sync batch');
  assert.equal(sb.type, 'sync_batch', JSON.stringify(sb).slice(0, 300));
  assert.ok(sb.removed.includes(group.id), `removed lists the group: ${JSON.stringify(sb.removed)}`);
  const leaked = sb.events.filter((e) => e.conversation_id === group.id && e.seq > removedSeq);
  assert.deepEqual(leaked, [], 'sync of a removed member has nothing after the removal');
});

test('a member added later sees history only from their member_added event on', T, async () => {
  // Goal: history visibility starts at the join seq. Method: owner adds users[100] (group back to 100); their history
  // (latest, after=0, before=<join+1>) starts with the member_added event; older seqs are never returned; the newcomer
  // then receives new messages live and can send.
  const newcomer = 100;
  const r = await api('POST', `${convUrl()}/members`, users[0].token, { user_ids: [users[newcomer].id] });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.equal(r.json.members.length, 100);
  const joinSeq = r.json.last_seq;
  const got = await drainTo([...Array(99).keys()], joinSeq, 'member_added');
  assert.equal(got.get(0).at(-1).type, 'member_added');
  assert.deepEqual(got.get(0).at(-1).data.user_ids, [users[newcomer].id]);

  const nt = users[newcomer].token;
  const latest = await api('GET', `${convUrl()}/messages`, nt);
  assert.equal(latest.status, 200, latest.text);
  assert.equal(latest.json.messages.length, 1, `only the member_added event: ${latest.text.slice(0, 300)}`);
  assert.equal(latest.json.messages[0].seq, joinSeq);
  assert.equal(latest.json.messages[0].type, 'member_added');
  assert.equal(latest.json.has_more, false, 'nothing older is available');
  const fromZero = await api('GET', `${convUrl()}/messages?after=0&limit=100`, nt);
  assert.equal(fromZero.status, 200);
  assert.deepEqual(fromZero.json.messages.map((x) => x.seq), [joinSeq], 'after=0 starts at the join');
  const older = await api('GET', `${convUrl()}/messages?before=${joinSeq}&limit=100`, nt);
  assert.equal(older.status, 200);
  assert.deepEqual(older.json.messages, [], 'before the join: nothing');
  assert.equal(older.json.has_more, false);
  // sync from 0 (named or not) starts at the join too
  for (const [rid, since] of [['s-named', { [group.id]: 0 }], ['s-unnamed', {}], ['s-low', { [group.id]: 3 }]]) {
    wss[newcomer].send({ type: 'sync', since, limit: 1000, request_id: rid });
    const b = await wss[newcomer].next((f) => f.type === 'sync_batch' || f.request_id === rid, 5000, `sync ${rid}`);
    assert.equal(b.type, 'sync_batch', JSON.stringify(b).slice(0, 300));
    const seqs = b.events.filter((e) => e.conversation_id === group.id).map((e) => e.seq);
    assert.deepEqual(seqs, [joinSeq], `sync ${JSON.stringify(since)}: only events from the join on (got seqs ${seqs.slice(0, 10).join(',')}...)`);
  }

  const m = await api('POST', `${convUrl()}/messages`, users[7].token, { client_msg_id: 'welcome', body: 'welcome' });
  assert.equal(m.status, 201);
  // the newcomer's device gets its own member_added event, then the new message; nothing older
  seen.set(newcomer, joinSeq - 1);
  const nev = await drainTo([newcomer], m.json.seq, 'newcomer live events');
  assert.deepEqual(nev.get(newcomer).map((e) => e.type), ['member_added', 'text']);
  await drainTo([...Array(99).keys()], m.json.seq, 'welcome');
  const mine = await api('POST', `${convUrl()}/messages`, nt, { client_msg_id: 'hi-all', body: 'hi all' });
  assert.equal(mine.status, 201, mine.text);
  await drainTo([...Array(99).keys(), newcomer], mine.json.seq, 'newcomer message');
});

test('rename / roles / invites: non-admins get 403; owner and promoted admin can; join by code; revoked code -> 404', T, async () => {
  // Goal: permissions of group management. Method: plain member users[5] tries PATCH name, PUT role, add/remove
  // member, create/list invites -> 403 each. Owner renames (renamed event, body=new name) and promotes users[5]
  // (role_changed event data {user_id, role:"admin"}); users[5] can now rename and create an invite; users[6] leaves
  // to free a seat; outsider users[101] joins with the code (member_joined event); the invite is revoked (204);
  // users[102] joining with the revoked code -> 404 (and with an unknown code -> 404); an admin cannot remove the owner.
  const owner = users[0].token;
  const five = users[5].token;
  const eventsAll = () => [...Array(99).keys(), 100].filter((i) => i !== 6 && i !== 99);

  assertError(await api('PATCH', convUrl(), five, { name: 'Mine' }), 403, 'forbidden', 'member renames');
  assertError(await api('PUT', `${convUrl()}/members/${users[7].id}/role`, five, { role: 'admin' }), 403, 'forbidden', 'member promotes');
  assertError(await api('PUT', `${convUrl()}/members/${users[5].id}/role`, five, { role: 'admin' }), 403, 'forbidden', 'member promotes self');
  assertError(await api('DELETE', `${convUrl()}/members/${users[7].id}`, five), 403, 'forbidden', 'member removes member');
  assertError(await api('POST', `${convUrl()}/members`, five, { user_ids: [users[101].id] }), 403, 'forbidden', 'member adds');
  assertError(await api('POST', `${convUrl()}/invites`, five), 403, 'forbidden', 'member creates invite');
  assertError(await api('GET', `${convUrl()}/invites`, five), 403, 'forbidden', 'member lists invites');
  assertError(await api('PATCH', convUrl(), users[101].token, { name: 'Outsider' }), 404, 'not_found', 'outsider renames');
  const unchanged = await getGroup();
  assert.equal(unchanged.name, 'Hundred');

  const rn = await api('PATCH', convUrl(), owner, { name: 'Renamed by owner' });
  assert.equal(rn.status, 200, rn.text.slice(0, 300));
  assert.equal(rn.json.name, 'Renamed by owner');
  let evs = await drainTo(eventsAll(), rn.json.last_seq, 'renamed');
  assert.equal(evs.get(5).at(-1).type, 'renamed');
  assert.equal(evs.get(5).at(-1).body, 'Renamed by owner');

  const pr = await api('PUT', `${convUrl()}/members/${users[5].id}/role`, owner, { role: 'admin' });
  assert.equal(pr.status, 200, pr.text.slice(0, 300));
  assert.equal(pr.json.members.find((m) => m.user_id === users[5].id).role, 'admin');
  evs = await drainTo(eventsAll(), pr.json.last_seq, 'role_changed');
  const rc = evs.get(5).at(-1);
  assert.equal(rc.type, 'role_changed');
  assert.deepEqual(rc.data, { user_id: users[5].id, role: 'admin' });

  const rn2 = await api('PATCH', convUrl(), five, { name: 'Renamed by admin' });
  assert.equal(rn2.status, 200, rn2.text.slice(0, 300));
  await drainTo(eventsAll(), rn2.json.last_seq, 'renamed by admin');
  // the spec says "owner cannot be removed" without naming the status: accept 400 bad_request or 403 forbidden
  const ro = await api('DELETE', `${convUrl()}/members/${users[0].id}`, five);
  assert.ok([400, 403].includes(ro.status) && ['bad_request', 'forbidden'].includes(ro.json?.error?.code), `admin removes owner: ${ro.status} ${ro.text}`);
  assert.equal((await getGroup()).members.find((m) => m.user_id === users[0].id)?.role, 'owner', 'owner still there');

  const inv = await api('POST', `${convUrl()}/invites`, five);
  assert.equal(inv.status, 201, inv.text);
  assert.equal(inv.json.conversation_id, group.id);
  assert.equal(typeof inv.json.created_at, 'number');
  const code = inv.json.code;
  const list = await api('GET', `${convUrl()}/invites`, owner);
  assert.equal(list.status, 200, list.text);
  assert.ok(list.json.invites.some((i) => i.code === code), 'invite listed');
  assertError(await api('POST', `${convUrl()}/join`, users[101].token, { code }), 409, 'group_full', 'join while full');

  const lv = await api('POST', `${convUrl()}/leave`, users[6].token);
  assert.equal(lv.status, 204, lv.text);
  const afterLeave = await getGroup();
  assert.equal(afterLeave.members.length, 99);
  evs = await drainTo(eventsAll(), afterLeave.last_seq, 'member_left');
  assert.equal(evs.get(5).at(-1).type, 'member_left');
  assert.equal(evs.get(5).at(-1).sender_id, users[6].id);
  assertError(await api('GET', convUrl(), users[6].token), 404, 'not_found', 'left member: GET conversation');

  const jn = await api('POST', `${convUrl()}/join`, users[101].token, { code });
  assert.equal(jn.status, 200, jn.text.slice(0, 300));
  assert.equal(jn.json.members.length, 100);
  assert.equal(jn.json.members.find((m) => m.user_id === users[101].id)?.role, 'member');
  evs = await drainTo(eventsAll(), jn.json.last_seq, 'member_joined');
  assert.equal(evs.get(5).at(-1).type, 'member_joined');
  assert.equal(evs.get(5).at(-1).sender_id, users[101].id);

  assert.equal((await api('DELETE', `${convUrl()}/invites/${code}`, owner)).status, 204, 'revoke');
  const list2 = await api('GET', `${convUrl()}/invites`, five);
  assert.equal(list2.status, 200);
  assert.ok(!list2.json.invites.some((i) => i.code === code), 'revoked invite not listed');
  // make room so that a 404 is not masked by group_full
  assert.equal((await api('DELETE', `${convUrl()}/members/${users[101].id}`, five)).status, 204, 'admin removes a member');
  assertError(await api('POST', `${convUrl()}/join`, users[102].token, { code }), 404, 'not_found', 'join with revoked code');
  assertError(await api('POST', `${convUrl()}/join`, users[102].token, { code: 'no-such-code' }), 404, 'not_found', 'join with unknown code');
  assertError(await api('GET', convUrl(), users[102].token), 404, 'not_found', 'not a member after failed joins');
});

test('direct conversations cannot be changed (403)', T, async () => {
  // Goal: group operations are refused on a direct conversation. Method: users[1] and users[2] share a direct
  // conversation; rename, add member, remove member, set role, create invite, leave -> 403 forbidden; afterwards the
  // conversation is unchanged (2 members, no name change, last_seq unchanged).
  const d = await srv.directConversation(users[1].token, users[2].id);
  const url = `/api/v1/conversations/${d.id}`;
  const t1 = users[1].token;
  assertError(await api('PATCH', url, t1, { name: 'nope' }), 403, 'forbidden', 'rename direct');
  assertError(await api('POST', `${url}/members`, t1, { user_ids: [users[3].id] }), 403, 'forbidden', 'add to direct');
  assertError(await api('DELETE', `${url}/members/${users[2].id}`, t1), 403, 'forbidden', 'remove from direct');
  assertError(await api('PUT', `${url}/members/${users[2].id}/role`, t1, { role: 'admin' }), 403, 'forbidden', 'role in direct');
  assertError(await api('POST', `${url}/invites`, t1), 403, 'forbidden', 'invite to direct');
  assertError(await api('POST', `${url}/leave`, t1), 403, 'forbidden', 'leave direct');
  const g = await api('GET', url, users[2].token);
  assert.equal(g.status, 200);
  assert.equal(g.json.type, 'direct');
  assert.deepEqual(g.json.members.map((m) => m.user_id).sort(), [users[1].id, users[2].id].sort());
  assert.equal(g.json.last_seq, d.last_seq);
});

test('leave works; the owner leaving hands ownership to a remaining member', T, async () => {
  // Goal: leave + owner hand-over. Method: small group owner users[100] + users[101..103]; users[103] leaves (204,
  // member_left to the others, 404 afterwards); the owner leaves (204): exactly one remaining member is now owner and
  // can rename; the old owner gets 404; leaving twice -> 404.
  const [o, a, b, c] = [100, 101, 102, 103];
  const g = await createGroup(srv, users[o].token, 'Small', [users[a].id, users[b].id, users[c].id]);
  const url = `/api/v1/conversations/${g.id}`;
  for (const i of [o, a, b, c]) await wss[i].next(isEventFor(g.id), 5000, `created on ${i}`);

  assert.equal((await api('POST', `${url}/leave`, users[c].token)).status, 204);
  for (const i of [o, a, b]) {
    const e = await wss[i].next(isEventFor(g.id), 5000, `member_left on ${i}`);
    assert.equal(e.message.type, 'member_left');
    assert.equal(e.message.sender_id, users[c].id);
  }
  assertError(await api('GET', url, users[c].token), 404, 'not_found', 'after leave');
  assertError(await api('POST', `${url}/leave`, users[c].token), 404, 'not_found', 'leave twice');

  assert.equal((await api('POST', `${url}/leave`, users[o].token)).status, 204, 'owner leaves');
  assertError(await api('GET', url, users[o].token), 404, 'not_found', 'old owner after leave');
  const r = await api('GET', url, users[a].token);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.members.map((m) => m.user_id).sort(), [users[a].id, users[b].id].sort());
  const owners = r.json.members.filter((m) => m.role === 'owner');
  assert.equal(owners.length, 1, `exactly one owner after hand-over: ${JSON.stringify(r.json.members)}`);
  const newOwner = users.find((u) => u.id === owners[0].user_id);
  const rn = await api('PATCH', url, newOwner.token, { name: 'Handed over' });
  assert.equal(rn.status, 200, rn.text.slice(0, 300));
  assert.equal(rn.json.name, 'Handed over');
  const other = newOwner === users[a] ? users[b] : users[a];
  assertError(await api('PATCH', url, other.token, { name: 'not me' }), 403, 'forbidden', 'the other member is not admin');
});
