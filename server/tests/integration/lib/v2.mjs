// Helpers for the v2 tests (groups, log events, presence, typing, receipts, sync).
// Contract: docs/protocol.md (groups, events, presence, typing, receipts, sync). Black-box only.

import assert from 'node:assert/strict';

/** Registers `n` users in parallel batches of `batch` (argon2id is slow). Returns them in order. */
export async function registerMany(srv, n, prefix = 'u', batch = 10) {
  const out = [];
  for (let i = 0; i < n; i += batch) {
    const k = Math.min(batch, n - i);
    const part = await Promise.all(Array.from({ length: k }, (_, j) => srv.registerUser(`${prefix}${i + j}`)));
    out.push(...part);
  }
  return out;
}

/** Opens one authenticated WebSocket per token, in parallel batches. */
export async function connectMany(srv, tokens, batch = 20, opts = {}) {
  const out = [];
  for (let i = 0; i < tokens.length; i += batch) {
    out.push(...(await Promise.all(tokens.slice(i, i + batch).map((t) => srv.wsClient(t, { timeoutMs: 10000, ...opts })))));
  }
  return out;
}

/** Creates a group; asserts 201; returns the conversation. */
export async function createGroup(srv, token, name, memberIds) {
  const r = await srv.api('POST', '/api/v1/conversations', { token, body: { type: 'group', name, member_ids: memberIds } });
  assert.equal(r.status, 201, `create group: ${r.text.slice(0, 500)}`);
  return r.json;
}

/** Predicate: a `message` frame (any log event) of conversation convId. */
export const isEventFor = (convId) => (f) => f.type === 'message' && f.message && f.message.conversation_id === convId;

/** Whole history of a conversation via after-paging (asserts 200 on every page). */
export async function fullHistory(srv, token, convId, pageSize = 100) {
  const out = [];
  let after = 0;
  for (let guard = 0; guard < 10000; guard++) {
    const r = await srv.api('GET', `/api/v1/conversations/${convId}/messages?after=${after}&limit=${pageSize}`, { token });
    assert.equal(r.status, 200, `history page after=${after}: ${r.text.slice(0, 300)}`);
    out.push(...r.json.messages);
    if (!r.json.has_more) break;
    assert.ok(r.json.messages.length > 0, 'has_more with an empty page');
    after = r.json.messages.at(-1).seq;
  }
  return out;
}

/** Asserts seqs strictly increase by exactly 1 (no gaps, no duplicates), optionally from `first`. */
export function assertContiguous(seqs, what, first) {
  if (seqs.length === 0) return;
  if (first !== undefined) assert.equal(seqs[0], first, `${what}: first seq ${seqs[0]}, expected ${first}`);
  for (let k = 1; k < seqs.length; k++) {
    if (seqs[k] !== seqs[k - 1] + 1) {
      assert.fail(`${what}: seq ${seqs[k - 1]} followed by ${seqs[k]} (expected ${seqs[k - 1] + 1}); seqs=${seqs.slice(Math.max(0, k - 5), k + 5).join(',')}`);
    }
  }
}

/**
 * Folds log events (message objects, in seq order) of ONE conversation into a client-side state:
 * {name, members:Set, messages: Map(id -> {body, deleted, reactions: Map(emoji -> Set(user))})}.
 * `initial` optionally seeds the state (e.g. from a REST snapshot).
 */
export function fold(events, initial = {}) {
  const st = {
    name: initial.name ?? null,
    members: new Set(initial.members ?? []),
    messages: new Map(),
    lastSeq: initial.lastSeq ?? 0,
  };
  if (initial.messages) {
    for (const [id, m] of initial.messages) {
      st.messages.set(id, { body: m.body, deleted: m.deleted, reactions: new Map([...m.reactions].map(([e, s]) => [e, new Set(s)])) });
    }
  }
  for (const e of events) {
    st.lastSeq = Math.max(st.lastSeq, e.seq);
    const d = e.data ?? {};
    switch (e.type) {
      case 'text':
        st.messages.set(e.id, { body: e.body, deleted: false, reactions: new Map() });
        break;
      case 'edit': {
        const m = st.messages.get(e.ref_id);
        if (m) m.body = e.body;
        break;
      }
      case 'delete': {
        const m = st.messages.get(e.ref_id);
        if (m) { m.deleted = true; m.body = ''; }
        break;
      }
      case 'reaction': {
        const m = st.messages.get(e.ref_id);
        if (!m) break;
        const set = m.reactions.get(e.body) ?? new Set();
        if (d.on) set.add(e.sender_id); else set.delete(e.sender_id);
        if (set.size) m.reactions.set(e.body, set); else m.reactions.delete(e.body);
        break;
      }
      case 'created':
        if (d.name !== undefined) st.name = d.name;
        for (const u of d.user_ids ?? []) st.members.add(u);
        st.members.add(e.sender_id);
        break;
      case 'member_added':
        for (const u of d.user_ids ?? []) st.members.add(u);
        break;
      case 'member_removed':
        for (const u of d.user_ids ?? []) st.members.delete(u);
        break;
      case 'member_left':
        st.members.delete(e.sender_id);
        break;
      case 'member_joined':
        st.members.add(e.sender_id);
        break;
      case 'renamed':
        st.name = e.body;
        break;
      default:
        break;
    }
  }
  return st;
}

/** Plain, comparable form of a fold() state (sorted). */
export function snapshot(st) {
  const messages = {};
  for (const [id, m] of [...st.messages].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    messages[id] = {
      body: m.body,
      deleted: m.deleted,
      reactions: Object.fromEntries([...m.reactions].sort().map(([e, s]) => [e, [...s].sort()])),
    };
  }
  return { name: st.name, members: [...st.members].sort(), messages };
}

/** Current state of `text` rows as shown by history (reactions normalised like snapshot()). */
export function historyTextState(rows) {
  const messages = {};
  for (const m of rows.filter((r) => r.type === 'text').sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const reactions = {};
    for (const r of m.reactions ?? []) if (r.user_ids.length) reactions[r.emoji] = [...r.user_ids].sort();
    messages[m.id] = { body: m.body, deleted: m.deleted, reactions: Object.fromEntries(Object.entries(reactions).sort()) };
  }
  return messages;
}

/** Asserts that `ws` receives no frame matching pred within ms (frames already queued count too). */
export async function assertNone(ws, pred, ms, what) {
  const f = await ws.next(pred, ms, what).then((x) => x, () => null);
  assert.equal(f, null, `${what}: unexpectedly received ${JSON.stringify(f)}`);
}
