// Two or three nodes writing the same thing at the same instant (check-then-insert races): the loser
// must get exactly what a sequential run gives, never a 5xx. Each case is repeated over many keys, all
// fired at once on different nodes, so that some attempts really overlap in the nodes' writers.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { PASSWORD, uniq } from '../integration/lib/harness.mjs';
import { createGroup, fullHistory, registerMany } from '../integration/lib/v2.mjs';
import { endpoint, cluster } from './lib.mjs';

const T = { timeout: 120000 };
const lb = endpoint(0);
const nodes = [1, 2, 3].map(endpoint);
const ROUNDS = 30;

before(() => { cluster('start'); });

const statuses = (rs) => rs.map((r) => r.status).sort((a, b) => a - b);

test('one username registered on three nodes at once: one 201, the others 409 username_taken', T, async () => {
  const results = await Promise.all(Array.from({ length: ROUNDS }, async (_, k) => {
    const username = uniq(`race${k}`);
    // Other emails, same username in different case: only the username collides.
    return Promise.all(nodes.map((n, i) => n.api('POST', '/api/v1/auth/register', {
      body: { username: i === 0 ? username : username.toUpperCase(), email: `${username}.${i}@example.test`, password: PASSWORD },
    })));
  }));
  for (const rs of results) {
    assert.deepEqual(statuses(rs), [201, 409, 409], rs.map((r) => r.text.slice(0, 200)).join(' | '));
    for (const r of rs.filter((x) => x.status === 409)) assert.equal(r.json.error.code, 'username_taken', r.text);
  }
});

test('a send retried on three nodes at once (same client_msg_id): stored once, every node answers the original', T, async () => {
  const [alice, bob] = await registerMany(lb, 2, 'rm');
  const g = await createGroup(lb, alice.token, 'race-msgs', [bob.id]);
  const results = await Promise.all(Array.from({ length: ROUNDS }, (_, k) => Promise.all(nodes.map((n) =>
    n.api('POST', `/api/v1/conversations/${g.id}/messages`, { token: alice.token, body: { client_msg_id: `cm-${k}`, body: `m ${k}` } })))));
  for (const rs of results) {
    assert.deepEqual(statuses(rs), [200, 200, 201], rs.map((r) => r.text.slice(0, 200)).join(' | '));
    assert.equal(new Set(rs.map((r) => r.json.id)).size, 1, 'one message id');
    assert.equal(new Set(rs.map((r) => r.json.seq)).size, 1, 'one seq');
  }
  const history = await fullHistory(lb, bob.token, g.id, 100);
  const texts = history.filter((m) => m.type === 'text');
  assert.equal(texts.length, ROUNDS, 'each client_msg_id stored once');
  // No seq was burnt by a loser: the log is gapless.
  assert.deepEqual(history.map((m) => m.seq), history.map((_, i) => i + 1));
});

test('both users open their direct conversation on two nodes at once: one conversation', T, async () => {
  const users = await registerMany(lb, ROUNDS * 2, 'rd');
  const results = await Promise.all(Array.from({ length: ROUNDS }, (_, k) => {
    const [a, b] = [users[2 * k], users[2 * k + 1]];
    return Promise.all([
      nodes[0].api('POST', '/api/v1/conversations', { token: a.token, body: { type: 'direct', user_id: b.id } }),
      nodes[1].api('POST', '/api/v1/conversations', { token: b.token, body: { type: 'direct', user_id: a.id } }),
    ]);
  }));
  for (const rs of results) {
    assert.deepEqual(statuses(rs), [200, 201], rs.map((r) => r.text.slice(0, 200)).join(' | '));
    assert.equal(rs[0].json.id, rs[1].json.id, 'the same conversation');
  }
});

test('one invite joined on two nodes at once by the same user: one member_joined event', T, async () => {
  const [owner, ...joiners] = await registerMany(lb, ROUNDS + 1, 'ri');
  const g = await createGroup(lb, owner.token, 'race-join', []);
  const inv = await lb.api('POST', `/api/v1/conversations/${g.id}/invites`, { token: owner.token });
  assert.equal(inv.status, 201, inv.text);
  const results = await Promise.all(joiners.map((u) => Promise.all([0, 1].map((i) =>
    nodes[i].api('POST', `/api/v1/conversations/${g.id}/join`, { token: u.token, body: { code: inv.json.code } })))));
  for (const rs of results) assert.deepEqual(statuses(rs), [200, 200], rs.map((r) => r.text.slice(0, 200)).join(' | '));
  const history = await fullHistory(lb, owner.token, g.id, 100);
  const joined = history.filter((m) => m.type === 'member_joined').map((m) => String(m.sender_id));
  assert.equal(joined.length, ROUNDS, 'one member_joined per user');
  assert.equal(new Set(joined).size, ROUNDS);
  const conv = await lb.api('GET', `/api/v1/conversations/${g.id}`, { token: owner.token });
  assert.equal(conv.json.members.length, ROUNDS + 1);
});
