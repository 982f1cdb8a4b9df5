// Operational surface and small features: /healthz, /metrics, unknown routes, user search, profiles, WS heartbeat,
// auth and idle timeouts, Origin checks, header auth. Contract: docs/protocol.md and docs/openapi.yaml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, assertError, uniq, sleep } from './lib/harness.mjs';

const T = { timeout: 30000 };

let srv;
before(async () => { srv = await startServer({ label: 'misc' }); });
after(async () => { await srv?.close(); });

/** Sum of all samples of a metric (any labels) in Prometheus text; null if absent. */
function metricValue(text, name) {
  let found = false;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.trim()) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (m && m[1] === name) {
      found = true;
      sum += Number(m[3]);
    }
  }
  return found ? sum : null;
}

test('/healthz -> 200 {"status":"ok"} (JSON)', T, async () => {
  // Goal: liveness endpoint shape. Method: GET without auth.
  const r = await srv.api('GET', '/healthz');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 'ok' });
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
});

test('/metrics: Prometheus text with chatd_connections and chatd_messages_in_total; the counter grows after a send', T, async () => {
  // Goal: metrics are exposed and live. Method: read /metrics, open a WS and send a message, read again.
  const m1 = await srv.metrics();
  assert.equal(m1.status, 200);
  assert.match(m1.headers.get('content-type') ?? '', /text\/plain/);
  for (const name of ['chatd_connections', 'chatd_messages_in_total', 'chatd_http_requests_total', 'chatd_messages_out_total']) {
    assert.ok(m1.text.includes(name), `${name} in /metrics`);
  }
  assert.match(m1.text, /^# TYPE chatd_connections gauge$/m);
  assert.match(m1.text, /^# TYPE chatd_messages_in_total counter$/m);
  const in1 = metricValue(m1.text, 'chatd_messages_in_total');
  assert.equal(typeof in1, 'number');
  assert.ok(Number.isFinite(in1));

  const A = await srv.registerUser('Met');
  const B = await srv.registerUser('Rics');
  const conv = await srv.directConversation(A.token, B.id);
  const wa = await srv.wsClient(A.token);
  const wb = await srv.wsClient(B.token);
  wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'metric-1', body: 'count me' });
  await wa.next((f) => f.type === 'ack' && f.client_msg_id === 'metric-1');
  await wb.next((f) => f.type === 'message');

  const m2 = await srv.metrics();
  const in2 = metricValue(m2.text, 'chatd_messages_in_total');
  assert.ok(in2 > in1, `chatd_messages_in_total increased: ${in1} -> ${in2}`);
  const conns = metricValue(m2.text, 'chatd_connections');
  assert.ok(conns >= 2, `chatd_connections counts open sockets: ${conns}`);
  await Promise.all([wa.close(), wb.close()]);
});

test('unknown route -> 404 not_found error shape; wrong method -> 405', T, async () => {
  // Goal: routing errors use the common error body. Method: GET unknown paths (outside /api without a token, inside
  // /api with a token), DELETE on a GET-only route.
  assertError(await srv.api('GET', '/nope/at/all'), 404, 'not_found', 'unknown top-level route');
  const u = await srv.registerUser('Route');
  assertError(await srv.api('GET', '/api/v1/definitely/unknown', { token: u.token }), 404, 'not_found', 'unknown route with auth');
  assertError(await srv.api('DELETE', '/api/v1/users/me', { token: u.token }), 405, 'method_not_allowed', 'DELETE /users/me');
});

test('unknown /api/v1 route without a token -> 404 (spec: unknown route -> 404)', T, async () => {
  // Goal: the spec lists "unknown route" under 404 and 401 only for a missing/invalid token on an endpoint that needs
  // one. Method: GET an unknown /api/v1 path without Authorization.
  assertError(await srv.api('GET', '/api/v1/does-not-exist'), 404, 'not_found', 'unknown /api/v1 route without token');
});

test('user search: case-insensitive prefix on username and display_name', T, async () => {
  // Goal: search semantics. Method: register users with a unique prefix in username / display name, query with
  // other case variants and a non-prefix substring.
  const tag = uniq('Zq').replace('_', '');
  const u1 = await srv.registerUser(`${tag}One`);
  const u2 = await srv.registerUser('plain', { display_name: `${tag.toUpperCase()} Display` });
  const me = await srv.registerUser('Searcher');

  const r = await srv.api('GET', `/api/v1/users/search?q=${encodeURIComponent(tag.toLowerCase())}`, { token: me.token });
  assert.equal(r.status, 200, r.text);
  const ids = r.json.users.map((x) => x.id);
  assert.ok(ids.includes(u1.id), 'found by username prefix (lower case query)');
  assert.ok(ids.includes(u2.id), 'found by display_name prefix');
  const hit = r.json.users.find((x) => x.id === u1.id);
  assert.equal(hit.username, u1.username);

  const r2 = await srv.api('GET', `/api/v1/users/search?q=${encodeURIComponent(tag.toUpperCase())}&limit=1`, { token: me.token });
  assert.equal(r2.status, 200);
  assert.equal(r2.json.users.length, 1, 'limit respected');

  const mid = tag.slice(2);
  const r3 = await srv.api('GET', `/api/v1/users/search?q=${encodeURIComponent(mid)}`, { token: me.token });
  assert.equal(r3.status, 200);
  assert.ok(!r3.json.users.some((x) => x.id === u1.id || x.id === u2.id), 'substring that is not a prefix does not match');

  const empty = await srv.api('GET', '/api/v1/users/search?q=', { token: me.token });
  assertError(empty, 400, 'bad_request', 'empty q');
  const long = await srv.api('GET', `/api/v1/users/search?q=${'a'.repeat(65)}`, { token: me.token });
  assertError(long, 400, 'bad_request', 'q of 65 chars');
});

test('profile: get and put own profile', T, async () => {
  // Goal: own profile round-trip. Method: PUT display_name/bio/profile_picture, check the 200 body and a later GET;
  // too long display_name -> 400.
  const u = await srv.registerUser('Prof');
  const g = await srv.api('GET', `/api/v1/users/${u.id}/profile`, { token: u.token });
  assert.equal(g.status, 200, g.text);
  assert.equal(g.json.id, u.id);
  assert.equal(g.json.username, u.username);
  for (const k of ['display_name', 'profile_picture', 'bio', 'created_at', 'last_seen']) assert.ok(k in g.json, `user has ${k}`);

  const upd = { display_name: 'Grace 🚀', bio: 'Writes compilers.', profile_picture: 'https://example.test/p.png' };
  const p = await srv.api('PUT', `/api/v1/users/${u.id}/profile`, { token: u.token, body: upd });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.display_name, upd.display_name);
  assert.equal(p.json.bio, upd.bio);
  assert.equal(p.json.profile_picture, upd.profile_picture);
  const g2 = await srv.api('GET', `/api/v1/users/${u.id}/profile`, { token: u.token });
  assert.equal(g2.json.display_name, upd.display_name);
  assert.equal(g2.json.bio, upd.bio);
  const me = await srv.api('GET', '/api/v1/users/me', { token: u.token });
  assert.equal(me.json.display_name, upd.display_name);

  // 64 code points ok, 65 refused
  const ok64 = await srv.api('PUT', `/api/v1/users/${u.id}/profile`, { token: u.token, body: { display_name: '€'.repeat(64) } });
  assert.equal(ok64.status, 200, `display_name of 64 code points: ${ok64.text}`);
  const bad = await srv.api('PUT', `/api/v1/users/${u.id}/profile`, { token: u.token, body: { display_name: 'x'.repeat(65) } });
  assert.equal(bad.status, 400, `display_name of 65 code points: ${bad.text}`);
  const badBio = await srv.api('PUT', `/api/v1/users/${u.id}/profile`, { token: u.token, body: { bio: 'b'.repeat(501) } });
  assert.equal(badBio.status, 400, `bio of 501 code points: ${badBio.text}`);
});

test('WS heartbeat: {"type":"ping"} -> {"type":"pong","ts":ms}', T, async () => {
  // Goal: application-level heartbeat. Method: ping twice, expect pongs with numeric timestamps.
  const u = await srv.registerUser('Ping');
  const ws = await srv.wsClient(u.token);
  const p1 = await ws.roundTrip();
  assert.equal(p1.type, 'pong');
  assert.equal(typeof p1.ts, 'number');
  assert.ok(p1.ts > 1.6e12, 'ts is ms since the epoch');
  const p2 = await ws.roundTrip();
  assert.ok(p2.ts >= p1.ts);
  await ws.close();
});

test('WS auth via Authorization header on the upgrade request -> ready without an auth frame', T, async () => {
  // Goal: non-browser clients may authenticate with a header. Method: connect with the Bearer header, wait for ready.
  const u = await srv.registerUser('Hdr');
  const ws = await srv.wsConnect({ headers: { authorization: `Bearer ${u.token}` } });
  const r = await ws.next((f) => f.type === 'ready' || f.type === 'error', 5000, 'ready after header auth');
  assert.equal(r.type, 'ready', JSON.stringify(r));
  assert.equal(r.user_id, u.id);
  await ws.roundTrip();
  await ws.close();
});

test('unauthenticated WS that sends nothing is closed with 4000 after --auth-timeout-ms', T, async () => {
  // Goal: auth timeout. Method: separate chatd with --auth-timeout-ms 300; open a socket, stay silent.
  const s = await startServer({ label: 'auth-timeout', args: ['--auth-timeout-ms', '300'] });
  try {
    const ws = await s.wsConnect();
    const c = await ws.waitClosed(10000);
    assert.equal(c.code, 4000, `close code (got ${c.code} ${c.reason})`);
    // an authenticated socket is not affected by the auth timeout
    const u = await s.registerUser('Quick');
    const ok = await s.wsClient(u.token);
    await sleep(600);
    assert.ok(ok.isOpen, 'authenticated socket survives the auth timeout');
    await ok.roundTrip();
    ok.terminate();
  } finally {
    await s.close();
  }
});

test('idle timeout: a silent authenticated socket (no pong replies) is closed; an active one is not', T, async () => {
  // Goal: --ws-idle-timeout-ms closes dead connections. Method: separate chatd with --ws-idle-timeout-ms 500; a client
  // with autoPong disabled sends nothing and must be closed; a client sending pings every 100 ms stays open meanwhile.
  const s = await startServer({ label: 'idle-timeout', args: ['--ws-idle-timeout-ms', '500'] });
  try {
    const u = await s.registerUser('Idle');
    const silent = await s.wsClient(u.token, { autoPong: false });
    const active = await s.wsClient(u.token);
    let stop = false;
    const pinger = (async () => {
      while (!stop && active.isOpen) {
        active.send({ type: 'ping' });
        await sleep(100);
      }
    })();
    const c = await silent.waitClosed(10000);
    assert.ok(c.code !== undefined, 'silent socket closed');
    await sleep(1000);
    stop = true;
    await pinger;
    assert.ok(active.isOpen, `active socket stays open (close=${JSON.stringify(active.closeInfo)})`);
    active.terminate();
  } finally {
    await s.close();
  }
});

test('WS upgrade with a foreign Origin -> 403; same-origin Origin is accepted', T, async () => {
  // Goal: cross-site WebSocket hijacking protection. Method: upgrade with Origin http://evil.example (403), then with
  // the server's own origin (101, auth works).
  const bad = await srv.wsTryUpgrade({ origin: 'http://evil.example' });
  if (bad.opened) bad.client.terminate();
  assert.equal(bad.opened, false, 'foreign origin must not be upgraded');
  assert.equal(bad.status, 403, `status for foreign origin: ${bad.status} ${bad.error}`);

  const good = await srv.wsTryUpgrade({ origin: `http://127.0.0.1:${srv.port}` });
  assert.equal(good.opened, true, `same origin upgrade: ${good.status} ${good.error}`);
  const u = await srv.registerUser('Orig');
  good.client.send({ type: 'auth', token: u.token });
  const r = await good.client.next((f) => f.type === 'ready' || f.type === 'error');
  assert.equal(r.type, 'ready', JSON.stringify(r));
  good.client.terminate();
});

test('--allowed-origins admits the listed origin', T, async () => {
  // Goal: the allow-list flag works. Method: separate chatd with --allowed-origins https://app.example; that origin
  // is upgraded, http://evil.example still gets 403.
  const s = await startServer({ label: 'origins', args: ['--allowed-origins', 'https://app.example,https://other.example'] });
  try {
    const ok = await s.wsTryUpgrade({ origin: 'https://app.example' });
    assert.equal(ok.opened, true, `allowed origin: ${ok.status} ${ok.error}`);
    ok.client.terminate();
    const bad = await s.wsTryUpgrade({ origin: 'http://evil.example' });
    if (bad.opened) bad.client.terminate();
    assert.equal(bad.status, 403);
  } finally {
    await s.close();
  }
});

