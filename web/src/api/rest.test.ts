import { describe, expect, it } from 'vitest';
import { ApiError, RestClient } from './rest';
import type { AuthResult, DeviceSession, Session } from './types';

const session = (access: string, refresh: string): Session => ({
  session_id: '7',
  device_id: '3',
  access_token: access,
  access_expires_at: 1_800_000_000_000,
  refresh_token: refresh,
  refresh_expires_at: 1_900_000_000_000,
});
const user = { id: '1', username: 'me', display_name: null, profile_picture: null, bio: null, created_at: 1, last_seen: null };

interface Call {
  method: string;
  url: string;
  auth: string | null;
  body: unknown;
}

/** A scripted fetch: each handler answers one request in order; records every call. */
function harness(handlers: ((c: Call) => Response)[], initial: Session | null = session('a1', 'r1')) {
  const calls: Call[] = [];
  let cur: AuthResult | null = initial ? { user, session: initial } : null;
  const sessions: (AuthResult | null)[] = [];
  const fetch = async (url: string, init?: RequestInit) => {
    const h = (init?.headers ?? {}) as Record<string, string>;
    const c: Call = { method: init?.method ?? 'GET', url, auth: h['Authorization'] ?? null, body: init?.body ? JSON.parse(String(init.body)) : undefined };
    calls.push(c);
    const next = handlers.shift();
    if (!next) throw new Error(`unexpected ${c.method} ${url}`);
    return next(c);
  };
  const rest = new RestClient({
    fetch,
    getSession: () => cur?.session ?? null,
    setSession: (s) => {
      cur = s;
      sessions.push(s);
    },
  });
  return { rest, calls, sessions, current: () => cur };
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
const noContent = () => new Response(null, { status: 204 });

const devices: DeviceSession[] = [
  { device_id: '3', session_id: '7', type: 'web', name: 'Firefox on Linux', created_at: 10, last_active: 50, current: true },
  { device_id: '4', session_id: '8', type: 'smart_tv', name: 'Samsung Internet on Tizen', created_at: 20, last_active: 40, current: false },
];

describe('RestClient devices', () => {
  it('GET /api/v1/users/me/devices with the bearer token returns the list', async () => {
    const { rest, calls } = harness([() => json(200, { devices })]);
    expect(await rest.devices()).toEqual(devices);
    expect(calls).toEqual([{ method: 'GET', url: '/api/v1/users/me/devices', auth: 'Bearer a1', body: undefined }]);
  });

  it('DELETE /api/v1/users/me/devices/{id} resolves on 204, id escaped', async () => {
    const { rest, calls } = harness([() => noContent(), () => noContent()]);
    await expect(rest.revokeDevice('4')).resolves.toBeUndefined();
    await rest.revokeDevice('a/b');
    expect(calls.map((c) => `${c.method} ${c.url} ${c.auth}`)).toEqual([
      'DELETE /api/v1/users/me/devices/4 Bearer a1',
      'DELETE /api/v1/users/me/devices/a%2Fb Bearer a1',
    ]);
  });

  it('an unknown, foreign or already revoked device is ApiError 404 not_found; the session is kept', async () => {
    const { rest, sessions } = harness([() => json(404, { error: { code: 'not_found', message: 'not found' } })]);
    const err = await rest.revokeDevice('99').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 404, code: 'not_found' });
    expect(sessions).toEqual([]);
  });

  it('on 401 refreshes once and retries with the new token', async () => {
    const { rest, calls } = harness([
      () => json(401, { error: { code: 'unauthorized', message: 'expired' } }),
      () => json(200, { user, session: session('a2', 'r2') }),
      () => json(200, { devices }),
    ]);
    expect((await rest.devices()).length).toBe(2);
    expect(calls.map((c) => `${c.method} ${c.url} ${c.auth}`)).toEqual([
      'GET /api/v1/users/me/devices Bearer a1',
      'POST /api/v1/auth/refresh null',
      'GET /api/v1/users/me/devices Bearer a2',
    ]);
    expect(calls[1].body).toEqual({ refresh_token: 'r1' });
  });

  it('when this device itself was logged out elsewhere, the failed refresh clears the session', async () => {
    const { rest, current } = harness([
      () => json(401, { error: { code: 'unauthorized', message: 'revoked' } }),
      () => json(401, { error: { code: 'unauthorized', message: 'revoked' } }),
    ]);
    await expect(rest.devices()).rejects.toMatchObject({ status: 401 });
    expect(current()).toBeNull();
  });
});

describe('RestClient login/register send the device', () => {
  it('login puts device {type, name} in the body', async () => {
    const { rest, calls, current } = harness([() => json(200, { user, session: session('a9', 'r9') })], null);
    await rest.login('me', 'password123', { type: 'smart_tv', name: 'Samsung Internet on Tizen' });
    expect(calls[0]).toMatchObject({ method: 'POST', url: '/api/v1/auth/login', auth: null });
    expect(calls[0].body).toEqual({ login: 'me', password: 'password123', device: { type: 'smart_tv', name: 'Samsung Internet on Tizen' } });
    expect(current()?.session.access_token).toBe('a9');
  });

  it('register puts device in the body', async () => {
    const { rest, calls } = harness([() => json(201, { user, session: session('a9', 'r9') })], null);
    await rest.register({ username: 'me', email: 'me@example.test', password: 'password123', device: { type: 'mobile', name: 'Safari on iPhone' } });
    expect(calls[0].url).toBe('/api/v1/auth/register');
    expect(calls[0].body).toMatchObject({ username: 'me', device: { type: 'mobile', name: 'Safari on iPhone' } });
  });
});
