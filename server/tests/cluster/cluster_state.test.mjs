// Cluster state shared in Redis (issue #5): presence across nodes (online while any device on any
// node is connected, one global grace period, users of a node killed with -9 go offline), the
// per-account login limit shared by every node, and X-Forwarded-For honoured through nginx
// (--trusted-proxy). scripts/cluster.sh runs the nodes with --presence-grace-ms 1000 and
// --rate-auth-account-per-min $CLUSTER_RATE_ACCOUNT (default 30). Timings are bounds to wait for,
// never asserted as speeds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { sleep } from '../integration/lib/harness.mjs';
import { endpoint, cluster } from './lib.mjs';

const T = { timeout: 90000 };
const [lb, n1, n2, n3] = [0, 1, 2, 3].map(endpoint);
const GRACE = 1000;
const ACCOUNT_LIMIT = Number(process.env.CLUSTER_RATE_ACCOUNT ?? 30);
const REDIS_PORT = process.env.CLUSTER_REDIS_PORT ?? '56379';

before(() => {
  cluster('start');
});
after(() => {
  cluster('start-node', '1'); // the kill -9 test restarts it; make sure for the next files
});

const presenceOf = (userId) => (f) => f.type === 'presence' && f.user_id === userId;

/** A watcher W on `watchNode` sharing a conversation with a fresh user U; W subscribed to U. */
async function watcherAndUser(watchNode) {
  const w = await watchNode.registerUser('watch');
  const u = await n1.registerUser('subj');
  await n1.directConversation(u.token, w.id);
  const ws = await watchNode.wsClient(w.token);
  ws.send({ type: 'presence_subscribe', user_ids: [u.id] });
  const first = await ws.next(presenceOf(u.id), 5000, 'initial presence');
  assert.equal(first.status, 'offline');
  return { w, u, ws };
}

function redis(...args) {
  return execFileSync('redis-cli', ['-p', REDIS_PORT, ...args], { encoding: 'utf8' }).trim();
}

test('watcher on node 2 sees a user on node 1 go online, then offline after the grace period', T, async () => {
  const { u, ws } = await watcherAndUser(n2);
  const dev = await n1.wsClient(u.token);
  const on = await ws.next(presenceOf(u.id), 5000, 'online');
  assert.equal(on.status, 'online');
  dev.close();
  const off = await ws.next((f) => presenceOf(u.id)(f) && f.status === 'offline', GRACE + 8000, 'offline');
  assert.equal(typeof off.last_seen, 'number');
  await sleep(GRACE + 1500);
  assert.equal(ws.received(presenceOf(u.id)).length, 3, 'initial, online, offline: once each');
  // last_seen was persisted (a write after the transition): the profile read through another node agrees.
  let seen;
  for (let i = 0; i < 50; i++) {
    const p = await n3.api('GET', '/api/v1/users/me', { token: u.token });
    assert.equal(p.status, 200, p.text);
    seen = p.json.last_seen ?? p.json.user?.last_seen;
    if (seen === off.last_seen) break;
    await sleep(100);
  }
  assert.equal(seen, off.last_seen);
  ws.close();
});

test('a device moving from node 1 to node 3 within the grace period publishes no offline (and no second online)', T, async () => {
  const { u, ws } = await watcherAndUser(n2);
  const d1 = await n1.wsClient(u.token);
  assert.equal((await ws.next(presenceOf(u.id), 5000, 'online')).status, 'online');
  d1.close();
  await sleep(100);
  const d3 = await n3.wsClient(u.token);
  await sleep(GRACE + 3000); // past the grace period and the survivors' sweep slack
  const frames = ws.received(presenceOf(u.id)).map((f) => f.status);
  assert.deepEqual(frames, ['offline', 'online'], `initial + online only: ${JSON.stringify(frames)}`);
  d3.close();
  const off = await ws.next((f) => presenceOf(u.id)(f) && f.status === 'offline', GRACE + 8000, 'offline at last');
  assert.equal(typeof off.last_seen, 'number');
  ws.close();
});

test('kill -9 of the node holding the only device: the user goes offline within a bounded time', T, async () => {
  const { u, ws } = await watcherAndUser(n2);
  await n1.wsClient(u.token);
  assert.equal((await ws.next(presenceOf(u.id), 5000, 'online')).status, 'online');
  cluster('kill-node', '1');
  try {
    // Bound: node liveness TTL (5 s) + one heartbeat/sweep period (1 s) + slack for a loaded machine.
    const off = await ws.next((f) => presenceOf(u.id)(f) && f.status === 'offline', 20000, 'offline after kill -9');
    assert.equal(typeof off.last_seen, 'number');
    await sleep(2500);
    const frames = ws.received(presenceOf(u.id)).map((f) => f.status);
    assert.deepEqual(frames, ['offline', 'online', 'offline'], 'initial, online, offline: the offline once');
  } finally {
    cluster('start-node', '1');
    ws.close();
  }
});

test('the per-account login limit is shared by the nodes, not per node', T, async () => {
  const u = await n1.registerUser('limited');
  const nodes = [n1, n2, n3];
  let refusedAt = -1;
  let retryAfter = null;
  const started = Date.now();
  for (let i = 0; i < ACCOUNT_LIMIT * 3 + 3 && refusedAt < 0; i++) {
    const node = nodes[i % 3];
    const r = await node.api('POST', '/api/v1/auth/login', { body: { login: u.username, password: 'wrong password!', device: { type: 'web', name: 'x' } } });
    if (r.status === 429) {
      refusedAt = i;
      retryAfter = r.headers.get('retry-after');
    } else {
      assert.equal(r.status, 401, r.text);
    }
  }
  // The bucket holds ACCOUNT_LIMIT and refills one per 60/ACCOUNT_LIMIT s while the loop runs; a
  // per-node bucket would admit ACCOUNT_LIMIT on each of the three nodes.
  const refilled = Math.ceil((Date.now() - started) / (60000 / ACCOUNT_LIMIT));
  assert.ok(refusedAt >= ACCOUNT_LIMIT && refusedAt <= ACCOUNT_LIMIT + refilled,
    `refused at attempt ${refusedAt}: expected ${ACCOUNT_LIMIT}..${ACCOUNT_LIMIT + refilled} (shared), not ~${3 * ACCOUNT_LIMIT} (per node)`);
  assert.ok(refusedAt < 2 * ACCOUNT_LIMIT, 'one bucket for the cluster');
  assert.ok(Number(retryAfter) >= 1, `Retry-After: ${retryAfter}`);
  // The right password is refused too while the bucket is empty, on any node.
  const r = await n2.api('POST', '/api/v1/auth/login', { body: { login: u.username, password: u.password, device: { type: 'web', name: 'x' } } });
  assert.equal(r.status, 429, r.text);
});

test('X-Forwarded-For through nginx: the rate-limit bucket is the client address nginx saw, not 127.0.0.1', T, async () => {
  const ip = `203.0.113.${1 + Math.floor(Math.random() * 250)}`;
  redis('DEL', `chatd:rl:ip:${ip}`);
  const u = await n1.registerUser('xff');
  const r = await lb.api('POST', '/api/v1/auth/login', {
    body: { login: u.username, password: u.password, device: { type: 'web', name: 'x' } },
    headers: { 'X-Forwarded-For': ip },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(redis('EXISTS', `chatd:rl:ip:${ip}`), '1', 'the per-IP bucket of the forwarded address');
});
