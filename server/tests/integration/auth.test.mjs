// Authentication: register, login, me, refresh rotation + theft detection, logout
// (REST + WebSocket revocation) and the auth rate limiter. Contract: docs/protocol.md and docs/openapi.yaml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniq, PASSWORD, assertError, isId } from './lib/harness.mjs';

let srv;
before(async () => { srv = await startServer({ label: 'auth' }); });
after(async () => { await srv?.close(); });

const T = { timeout: 30000 };

function assertSession(s) {
  assert.ok(s && typeof s === 'object', 'session object');
  assert.ok(isId(s.session_id), `session_id is a digit string: ${s.session_id}`);
  assert.ok(isId(s.device_id), `device_id is a digit string: ${s.device_id}`);
  assert.equal(typeof s.access_token, 'string');
  assert.ok(s.access_token.length > 0);
  assert.equal(typeof s.refresh_token, 'string');
  assert.ok(s.refresh_token.length > 0);
  assert.notEqual(s.access_token, s.refresh_token);
  assert.equal(typeof s.access_expires_at, 'number');
  assert.equal(typeof s.refresh_expires_at, 'number');
  assert.ok(s.access_expires_at > Date.now() - 60000, 'access_expires_at is ms since epoch in the future');
  assert.ok(s.refresh_expires_at >= s.access_expires_at);
}

test('register returns 201 with user and session', T, async () => {
  // Goal: registering creates the user and logs in. Method: POST register, check the shapes, use the token.
  const username = uniq('Reg');
  const email = `${username}@Example.test`;
  const res = await srv.api('POST', '/api/v1/auth/register', {
    body: { username, email, password: PASSWORD, display_name: 'Reg User', device: { type: 'web', name: 'laptop' } },
  });
  assert.equal(res.status, 201, res.text);
  const { user, session } = res.json;
  assert.ok(isId(user.id), `user.id is a digit string: ${JSON.stringify(user.id)}`);
  assert.equal(user.username, username);
  assert.equal(user.display_name, 'Reg User');
  assert.equal(typeof user.created_at, 'number');
  assert.ok(!('password' in user) && !('password_hash' in user), 'no password in user object');
  assertSession(session);

  const me = await srv.api('GET', '/api/v1/users/me', { token: session.access_token });
  assert.equal(me.status, 200, me.text);
  assert.equal(me.json.id, user.id);
  assert.equal(me.json.username, username);
  assert.equal(me.json.email.toLowerCase(), email.toLowerCase(), 'me includes email');
});

test('duplicate username (other case) -> 409 username_taken; duplicate email -> 409 email_taken', T, async () => {
  // Goal: uniqueness is case-insensitive for username and email. Method: register, then re-register variants.
  const u = await srv.registerUser('Dup');
  const r1 = await srv.api('POST', '/api/v1/auth/register', {
    body: { username: u.username.toUpperCase(), email: `${uniq('other')}@example.test`, password: PASSWORD },
  });
  assertError(r1, 409, 'username_taken', 'register same username in upper case');
  const r2 = await srv.api('POST', '/api/v1/auth/register', {
    body: { username: uniq('other'), email: u.email, password: PASSWORD },
  });
  assertError(r2, 409, 'email_taken', 'register same email');
  const r3 = await srv.api('POST', '/api/v1/auth/register', {
    body: { username: uniq('other'), email: u.email.toUpperCase(), password: PASSWORD },
  });
  assertError(r3, 409, 'email_taken', 'register same email in upper case');
});

test('invalid username / email / weak password / missing fields -> 400 with the documented codes', T, async () => {
  // Goal: validation errors use the documented codes. Method: one register call per bad field.
  const ok = () => ({ username: uniq('val'), email: `${uniq('val')}@example.test`, password: PASSWORD });
  const cases = [
    [{ ...ok(), username: 'ab' }, 'invalid_username', 'username too short'],
    [{ ...ok(), username: 'x'.repeat(33) }, 'invalid_username', 'username too long'],
    [{ ...ok(), username: 'bad name!' }, 'invalid_username', 'username with space and !'],
    [{ ...ok(), email: 'no-at-sign.example.test' }, 'invalid_email', 'email without @'],
    [{ ...ok(), email: 'a@b@example.test' }, 'invalid_email', 'email with two @'],
    [{ ...ok(), password: 'short7!' }, 'weak_password', 'password of 7 bytes'],
    [{ ...ok(), password: 'p'.repeat(1025) }, 'weak_password', 'password of 1025 bytes'],
    [{ email: `${uniq('val')}@example.test`, password: PASSWORD }, 'bad_request', 'missing username'],
    [{ ...ok(), username: 12345 }, 'bad_request', 'username of wrong type'],
  ];
  for (const [body, code, what] of cases) {
    const res = await srv.api('POST', '/api/v1/auth/register', { body });
    assertError(res, 400, code, what);
  }
  // boundary values that must be accepted
  const edge = await srv.api('POST', '/api/v1/auth/register', {
    body: { username: `a.b-${uniq('c').slice(0, 10)}`.slice(0, 32), email: `${uniq('e')}@example.test`, password: '12345678' },
  });
  assert.equal(edge.status, 201, `8-byte password and [._-] in username must be accepted: ${edge.text}`);
});

test('login by username and by email, case-insensitive; wrong password -> 401 invalid_credentials', T, async () => {
  // Goal: both login forms work and yield a fresh session. Method: login with upper/lower case variants.
  const u = await srv.registerUser('Login');
  for (const login of [u.username, u.username.toUpperCase(), u.email, u.email.toUpperCase()]) {
    const res = await srv.api('POST', '/api/v1/auth/login', { body: { login, password: PASSWORD, device: { type: 'mobile' } } });
    assert.equal(res.status, 200, `login ${login}: ${res.text}`);
    assert.equal(res.json.user.id, u.id);
    assertSession(res.json.session);
    assert.notEqual(res.json.session.session_id, u.session.session_id, 'each login is a new session');
    const me = await srv.api('GET', '/api/v1/users/me', { token: res.json.session.access_token });
    assert.equal(me.status, 200);
    assert.equal(me.json.id, u.id);
  }
  const bad = await srv.api('POST', '/api/v1/auth/login', { body: { login: u.username, password: 'wrong password!' } });
  assertError(bad, 401, 'invalid_credentials', 'wrong password');
  const unknown = await srv.api('POST', '/api/v1/auth/login', { body: { login: uniq('nobody'), password: PASSWORD } });
  assertError(unknown, 401, 'invalid_credentials', 'unknown user');
});

test('GET /users/me requires a valid token', T, async () => {
  // Goal: me works with the token and is refused without/with a bad one. Method: three GETs.
  const u = await srv.registerUser('Me');
  const me = await srv.api('GET', '/api/v1/users/me', { token: u.token });
  assert.equal(me.status, 200);
  assert.equal(me.json.id, u.id);
  assert.equal(me.json.username, u.username);
  assert.ok('email' in me.json);
  assertError(await srv.api('GET', '/api/v1/users/me'), 401, 'unauthorized', 'no token');
  assertError(await srv.api('GET', '/api/v1/users/me', { token: u.token + 'x' }), 401, 'unauthorized', 'tampered token');
  assertError(await srv.api('GET', '/api/v1/users/me', { token: 'garbage' }), 401, 'unauthorized', 'garbage token');
});

test('refresh rotates tokens; reusing the old refresh token revokes the session', T, async () => {
  // Goal: rotation + theft detection. Method: refresh once, check new tokens work and the old refresh token
  // is rejected; that reuse must revoke the whole session so the NEW tokens fail too.
  const u = await srv.registerUser('Refresh');
  const r1 = u.session.refresh_token;
  const res = await srv.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: r1 } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.user.id, u.id);
  assertSession(res.json.session);
  const s2 = res.json.session;
  assert.notEqual(s2.access_token, u.session.access_token, 'new access token');
  assert.notEqual(s2.refresh_token, r1, 'new refresh token');
  assert.equal(s2.session_id, u.session.session_id, 'same session');

  const me = await srv.api('GET', '/api/v1/users/me', { token: s2.access_token });
  assert.equal(me.status, 200, `new access token works: ${me.text}`);

  // the old refresh token is rejected ... and that reuse is treated as theft
  const reuse = await srv.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: r1 } });
  assertError(reuse, 401, 'unauthorized', 'reuse of rotated refresh token');

  const meAfter = await srv.api('GET', '/api/v1/users/me', { token: s2.access_token });
  assertError(meAfter, 401, 'unauthorized', 'new access token after theft detection');
  const refreshAfter = await srv.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: s2.refresh_token } });
  assertError(refreshAfter, 401, 'unauthorized', 'new refresh token after theft detection');
});

test('refresh: the old access token stops working after rotation', T, async () => {
  // Goal: spec says "NEW access and refresh token (rotation; old ones stop working)". Method: refresh, use old access token.
  const u = await srv.registerUser('RefreshOld');
  const res = await srv.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: u.session.refresh_token } });
  assert.equal(res.status, 200, res.text);
  const old = await srv.api('GET', '/api/v1/users/me', { token: u.token });
  assertError(old, 401, 'unauthorized', 'old access token after rotation');
  const fresh = await srv.api('GET', '/api/v1/users/me', { token: res.json.session.access_token });
  assert.equal(fresh.status, 200);
});

test('refresh with garbage / missing token -> 401 / 400', T, async () => {
  // Goal: bad refresh input is refused. Method: garbage token (401) and missing field (400 bad_request).
  assertError(await srv.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: 'nope' } }), 401, 'unauthorized', 'garbage refresh');
  assertError(await srv.api('POST', '/api/v1/auth/refresh', { body: {} }), 400, 'bad_request', 'missing refresh_token');
});

test('logout -> 204; tokens die on REST, open WS of the session closed with 4001, new WS auth fails', T, async () => {
  // Goal: logout revokes exactly that session everywhere. Method: two sessions of one user, both with a WS;
  // logout session 1; session 1 is dead (REST, refresh, WS closed 4001, WS re-auth refused), session 2 unaffected.
  const u = await srv.registerUser('Logout');
  const other = await srv.login(u.username);
  const ws1 = await srv.wsClient(u.token);
  const ws2 = await srv.wsClient(other.token);
  assert.equal(ws1.ready.session_id, u.session.session_id);

  const out = await srv.api('POST', '/api/v1/auth/logout', { token: u.token });
  assert.equal(out.status, 204, out.text);
  assert.equal(out.text, '', '204 has no body');

  const closed = await ws1.waitClosed(5000);
  assert.equal(closed.code, 4001, `WS of the revoked session closed with 4001 (got ${closed.code} ${closed.reason})`);

  assertError(await srv.api('GET', '/api/v1/users/me', { token: u.token }), 401, 'unauthorized', 'access token after logout');
  assertError(await srv.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: u.session.refresh_token } }), 401, 'unauthorized', 'refresh token after logout');
  assertError(await srv.api('POST', '/api/v1/auth/logout', { token: u.token }), 401, 'unauthorized', 'second logout');

  // a new WebSocket with the dead token: error unauthorized, then close 4001
  const ws3 = await srv.wsConnect();
  ws3.send({ type: 'auth', token: u.token });
  const err = await ws3.next((f) => f.type === 'error' || f.type === 'ready', 5000, 'auth answer');
  assert.equal(err.type, 'error', `auth with a revoked token must fail: ${JSON.stringify(err)}`);
  assert.equal(err.code, 'unauthorized');
  const c3 = await ws3.waitClosed(5000);
  assert.equal(c3.code, 4001);

  // the other session is unaffected
  assert.ok(ws2.isOpen, 'WS of the other session stays open');
  await ws2.roundTrip();
  const me2 = await srv.api('GET', '/api/v1/users/me', { token: other.token });
  assert.equal(me2.status, 200);
  await ws2.close();
});

test('WS auth: bad token -> error unauthorized + close 4001; non-auth first frame -> unauthorized + 4001', T, async () => {
  // Goal: WebSocket authentication failure modes. Method: a bad token, then a send before auth.
  const ws = await srv.wsConnect();
  ws.send({ type: 'auth', token: 'not-a-token' });
  const e = await ws.next((f) => f.type === 'error' || f.type === 'ready');
  assert.equal(e.type, 'error');
  assert.equal(e.code, 'unauthorized');
  assert.equal((await ws.waitClosed()).code, 4001);

  const ws2 = await srv.wsConnect();
  ws2.send({ type: 'send', conversation_id: '1', client_msg_id: 'x1', body: 'hi' });
  const e2 = await ws2.next((f) => f.type === 'error' || f.type === 'ready');
  assert.equal(e2.type, 'error');
  assert.equal(e2.code, 'unauthorized');
  assert.equal((await ws2.waitClosed()).code, 4001);

  // and a good one works, ready carries the documented fields
  const u = await srv.registerUser('WsAuth');
  const ok = await srv.wsClient(u.token);
  assert.equal(ok.ready.user_id, u.id);
  assert.equal(ok.ready.session_id, u.session.session_id);
  assert.equal(ok.ready.device_id, u.session.device_id);
  assert.equal(typeof ok.ready.heartbeat_interval_ms, 'number');
  assert.ok(ok.ready.heartbeat_interval_ms > 0);
  await ok.close();
});

async function loginAttempts(server, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push(await server.api('POST', '/api/v1/auth/login', { body: { login: uniq('ghost'), password: 'wrong password' } }));
  }
  return out;
}

test('auth rate limit per IP: excess login attempts -> 429 rate_limited with Retry-After; server still healthy', T, async () => {
  // Goal: the per-IP auth limiter trips and answers properly. Method: separate chatd with --rate-auth-ip-per-min 5,
  // 10 failed logins in a row: once a 429 appears every later attempt is 429, each with the error shape and a
  // positive Retry-After in seconds; /healthz still 200 and non-auth endpoints are not limited.
  const limited = await startServer({
    label: 'auth-ratelimit',
    highRateLimits: false,
    args: ['--rate-auth-ip-per-min', '5', '--rate-auth-account-per-min', '100000'],
  });
  try {
    const res = await loginAttempts(limited, 10);
    const statuses = res.map((r) => r.status);
    const first429 = statuses.indexOf(429);
    assert.ok(first429 >= 0, `some attempt is rate limited: ${statuses.join(',')}`);
    assert.ok(first429 <= 5, `the 6th attempt at the latest is limited: ${statuses.join(',')}`);
    res.forEach((r, i) => {
      if (i < first429) assertError(r, 401, 'invalid_credentials', `attempt ${i + 1}`);
      else {
        assertError(r, 429, 'rate_limited', `attempt ${i + 1} (${statuses.join(',')})`);
        const ra = r.headers.get('retry-after');
        assert.ok(ra !== null, 'Retry-After header present');
        assert.match(ra, /^\d+$/, `Retry-After is seconds: ${ra}`);
        assert.ok(Number(ra) >= 1 && Number(ra) <= 60, `Retry-After within a minute: ${ra}`);
      }
    });
    const h = await limited.api('GET', '/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: 'ok' });
    const m = await limited.metrics();
    assert.equal(m.status, 200);
  } finally {
    await limited.close();
  }
});

test('auth rate limit per IP: --rate-auth-ip-per-min 5 admits 5 attempts, the 6th gets 429', T, async () => {
  // Goal: the flag means N attempts per minute per IP (spec: "--rate-auth-ip-per-min N"). Method: separate chatd
  // with the flag at 5; 5 failed logins must be answered 401 invalid_credentials, the 6th 429.
  const limited = await startServer({
    label: 'auth-ratelimit-exact',
    highRateLimits: false,
    args: ['--rate-auth-ip-per-min', '5', '--rate-auth-account-per-min', '100000'],
  });
  try {
    const res = await loginAttempts(limited, 6);
    const statuses = res.map((r) => r.status).join(',');
    for (let i = 0; i < 5; i++) assertError(res[i], 401, 'invalid_credentials', `attempt ${i + 1} of 5 allowed (${statuses})`);
    assertError(res[5], 429, 'rate_limited', `attempt 6 (${statuses})`);
  } finally {
    await limited.close();
  }
});

test('an access token stops working at its expiry even while the token cache would still hold it', T, async () => {
  // Goal: the token cache never serves a token past its own expiry. Method: separate chatd with 1 s access
  // tokens and a 60 s token cache (the maximum); the token is used (cached), then used again once its access_expires_at
  // has passed: 401 unauthorized, although the cache entry is far from its TTL.
  const short = await startServer({ label: 'auth-expiry', args: ['--access-ttl-s', '1', '--auth-cache-ttl-ms', '60000'] });
  try {
    const u = await short.registerUser('Exp');
    assert.equal((await short.api('GET', '/api/v1/users/me', { token: u.token })).status, 200);
    assert.equal((await short.api('GET', '/api/v1/users/me', { token: u.token })).status, 200, 'served from the cache');
    const expires = u.session.access_expires_at;
    while (Date.now() <= expires + 50) await new Promise((r) => setTimeout(r, 100));
    assertError(await short.api('GET', '/api/v1/users/me', { token: u.token }), 401, 'unauthorized', 'expired access token');
    const h = await short.api('GET', '/healthz');
    assert.equal(h.status, 200);
  } finally {
    await short.close();
  }
});

test('devices: list the logged-in devices, log one out remotely (its sockets close with 4001)', T, async () => {
  // Goal: a user sees their devices and can sign one out from another. Method: register (web) and log
  // in twice more (mobile, smart_tv); list; DELETE the mobile device from the web session; its token
  // and socket die, the others live; another user's device id and unknown ids are 404.
  const u = await srv.registerUser('Dev');
  const phone = await srv.login(u.username, undefined, { type: 'mobile', name: 'phone' });
  const tv = await srv.login(u.username, undefined, { type: 'smart_tv', name: 'living room' });
  const list = await srv.api('GET', '/api/v1/users/me/devices', { token: u.token });
  assert.equal(list.status, 200);
  assert.equal(list.json.devices.length, 3);
  const byType = Object.fromEntries(list.json.devices.map((d) => [d.type, d]));
  assert.equal(byType.mobile.name, 'phone');
  assert.equal(byType.smart_tv.name, 'living room');
  assert.equal(byType.web.current, true);
  assert.equal(byType.mobile.current, false);
  const phoneWs = await srv.wsClient(phone.token);
  const tvWs = await srv.wsClient(tv.token);
  const del = await srv.api('DELETE', `/api/v1/users/me/devices/${byType.mobile.device_id}`, { token: u.token });
  assert.equal(del.status, 204);
  const closed = await phoneWs.waitClosed(5000);
  assert.equal(closed.code, 4001);
  assertError(await srv.api('GET', '/api/v1/users/me', { token: phone.token }), 401, 'unauthorized', 'revoked device');
  assert.equal((await srv.api('GET', '/api/v1/users/me', { token: tv.token })).status, 200);
  tvWs.send({ type: 'ping' });
  await tvWs.next((f) => f.type === 'pong');
  const after2 = await srv.api('GET', '/api/v1/users/me/devices', { token: u.token });
  assert.equal(after2.json.devices.length, 2);
  // Someone else's device, an unknown one, the same one again.
  const other = await srv.registerUser('Oth');
  const theirs = (await srv.api('GET', '/api/v1/users/me/devices', { token: other.token })).json.devices[0];
  assertError(await srv.api('DELETE', `/api/v1/users/me/devices/${theirs.device_id}`, { token: u.token }), 404, 'not_found', 'foreign device');
  assertError(await srv.api('DELETE', '/api/v1/users/me/devices/987654321', { token: u.token }), 404, 'not_found', 'unknown device');
  assertError(await srv.api('DELETE', `/api/v1/users/me/devices/${byType.mobile.device_id}`, { token: u.token }), 404, 'not_found', 'already revoked');
  assert.equal((await srv.api('GET', '/api/v1/users/me', { token: other.token })).status, 200);
  tvWs.close();
});
