// Test harness for the chatd integration suite.
//
// Starts the real chatd binary (CHATD_BIN, default <repo>/build/release/chatd) on
// 127.0.0.1:0 with a fresh temporary data dir, and offers small REST / WebSocket
// helpers. Every wait is bounded by a timeout so a misbehaving server makes a test
// fail instead of hanging the suite.
//
// Contract: docs/protocol.md and docs/openapi.yaml. Nothing here depends on the
// server's internals.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { beforeEach, afterEach } from 'node:test';
import WebSocket from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// lib -> integration -> tests -> server -> repo root
export const REPO_ROOT = path.resolve(HERE, '..', '..', '..', '..');
export const CHATD_BIN = process.env.CHATD_BIN
  ? path.resolve(process.env.CHATD_BIN)
  : path.join(REPO_ROOT, 'build', 'release', 'chatd');

export const PASSWORD = 'correct horse battery';
export const DEFAULT_TIMEOUT_MS = 5000;
const STARTUP_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 15000;

// Flags that keep the auth rate limiter out of the way for tests that do not
// test it (every test registers/logs in many times from 127.0.0.1).
export const HIGH_RATE_LIMITS = [
  '--rate-auth-ip-per-min', '100000',
  '--rate-auth-account-per-min', '100000',
  '--rate-send-per-sec', '100000',
];

// ---------------------------------------------------------------------------
// small utilities

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function uniq(prefix = 'u') {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/** Races a promise against a timeout; rejects with `what` in the message. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------
// process bookkeeping: kill leftovers, dump logs of failed tests

const liveChildren = new Set();
const tempDirs = new Set();
const allServers = new Set();

function killLeftovers() {
  for (const child of liveChildren) {
    try { child.kill('SIGKILL'); } catch { /* ignore */ }
  }
  liveChildren.clear();
  for (const dir of tempDirs) {
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* ignore */ }
  }
  tempDirs.clear();
}
process.on('exit', killLeftovers);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => { killLeftovers(); process.exit(130); });
}

const LOG_TAIL_CHARS = 20000;
beforeEach(() => {
  for (const s of allServers) s._logMark = s._log.length;
});
afterEach((t) => {
  if (t.passed !== false) return;
  for (const s of allServers) {
    const from = Math.max(s._logMark ?? 0, s._dumpedTo ?? 0);
    const since = s._log.slice(from);
    s._dumpedTo = s._log.length;
    if (!since) continue;
    const tail = since.length > LOG_TAIL_CHARS ? '...' + since.slice(-LOG_TAIL_CHARS) : since;
    process.stderr.write(`\n----- chatd output (${s.label}, data dir ${s.dataDir}) during failed test "${t.name}" -----\n${tail}\n----- end chatd output -----\n`);
  }
});

// ---------------------------------------------------------------------------
// server

/**
 * Start chatd.
 * @param {object} [opts]
 * @param {string[]} [opts.args]     extra flags (appended after the defaults)
 * @param {boolean} [opts.highRateLimits=true] prepend HIGH_RATE_LIMITS
 * @param {string} [opts.dataDir]    reuse a data dir (default: fresh mkdtemp)
 * @param {object} [opts.env]        extra environment
 * @param {string} [opts.label]      name used in log dumps
 */
// CHATD_TEST_PG_ADMIN_DSN set: every server gets a fresh PostgreSQL database instead of SQLite
// (created once per data dir, so a restart on the same data dir keeps its data).
const PG_ADMIN = process.env.CHATD_TEST_PG_ADMIN_DSN;
const pgDatabases = new Map(); // dataDir -> dsn
function storeArgs(server) {
  if (!PG_ADMIN) return [];
  let dsn = pgDatabases.get(server.dataDir);
  if (!dsn) {
    const name = `chatd_it_${process.pid}_${pgDatabases.size}_${Math.random().toString(36).slice(2, 8)}`;
    const r = spawnSync('psql', [PG_ADMIN, '-v', 'ON_ERROR_STOP=1', '-qc', `CREATE DATABASE ${name}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`createdb ${name} failed: ${r.stderr}`);
    const u = new URL(PG_ADMIN);
    u.pathname = `/${name}`;
    dsn = u.toString();
    pgDatabases.set(server.dataDir, dsn);
  }
  return ['--store', dsn];
}

export async function startServer(opts = {}) {
  if (!existsSync(CHATD_BIN)) {
    throw new Error(`chatd binary not found at ${CHATD_BIN} (set CHATD_BIN)`);
  }
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), 'chatd-it-'));
  if (!opts.dataDir) tempDirs.add(dataDir);
  const extra = [...(opts.highRateLimits === false ? [] : HIGH_RATE_LIMITS), ...(opts.args ?? [])];
  const server = new ChatdServer({ dataDir, extra, env: opts.env ?? {}, label: opts.label ?? 'chatd' });
  allServers.add(server);
  await server._spawn();
  return server;
}

export class ChatdServer {
  constructor({ dataDir, extra, env, label }) {
    this.dataDir = dataDir;
    this.extra = extra;
    this.env = env;
    this.label = label;
    this.port = null;
    this.child = null;
    this.exit = null; // {code, signal} of the last exit
    this._log = '';
    this._logMark = 0;
    this.clients = new Set();
  }

  get baseUrl() { return `http://127.0.0.1:${this.port}`; }
  get wsUrl() { return `ws://127.0.0.1:${this.port}/ws`; }
  get running() { return this.child !== null && this.exit === null; }

  _spawn() {
    const args = ['--listen', '127.0.0.1:0', '--data-dir', this.dataDir, ...storeArgs(this), ...this.extra];
    this._log += `\n[harness] spawn ${CHATD_BIN} ${args.join(' ')}\n`;
    const child = spawn(CHATD_BIN, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    this.child = child;
    this.exit = null;
    liveChildren.add(child);
    this._exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        liveChildren.delete(child);
        this.exit = { code, signal };
        this._log += `\n[harness] chatd exited code=${code} signal=${signal}\n`;
        resolve(this.exit);
      });
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => { this._log += d; });
    child.stdout.setEncoding('utf8');

    return new Promise((resolve, reject) => {
      let out = '';
      let done = false;
      const finish = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          try { child.kill('SIGKILL'); } catch { /* ignore */ }
          reject(new Error(`${err}\n--- chatd output ---\n${this._log.slice(-LOG_TAIL_CHARS)}`));
        } else resolve(this);
      };
      const timer = setTimeout(() => finish(`chatd did not print "chatd listening on" within ${STARTUP_TIMEOUT_MS} ms`), STARTUP_TIMEOUT_MS);
      child.stdout.on('data', (d) => {
        this._log += d;
        if (done) return;
        out += d;
        const m = out.match(/chatd listening on 127\.0\.0\.1:(\d+)/);
        if (m) {
          this.port = Number(m[1]);
          if (!(this.port > 0)) finish(`chatd printed a bad port: ${m[0]}`);
          else finish(null);
        }
      });
      child.on('error', (e) => finish(`spawn failed: ${e.message}`));
      child.on('exit', (code, signal) => finish(`chatd exited before ready (code=${code} signal=${signal})`));
    });
  }

  /** Send `signal`, wait for exit; returns the exit code (null if killed by a signal; see this.exit). */
  async stop(signal = 'SIGTERM') {
    if (!this.child || this.exit) return this.exit?.code ?? null;
    this.child.kill(signal);
    let res;
    try {
      res = await withTimeout(this._exited, STOP_TIMEOUT_MS, `chatd exit after ${signal}`);
    } catch (e) {
      this.child.kill('SIGKILL');
      await this._exited;
      throw e;
    }
    return res.code;
  }

  /** Stop (SIGTERM unless already stopped) and start again on the same data dir (new port). */
  async restart() {
    if (this.running) await this.stop('SIGTERM');
    for (const c of this.clients) c.terminate();
    this.clients.clear();
    await this._spawn();
    return this;
  }

  /** Stop, close clients, remove the temp data dir. Safe to call twice. */
  async close() {
    for (const c of this.clients) c.terminate();
    this.clients.clear();
    if (this.running) {
      try { await this.stop('SIGTERM'); } catch { /* already SIGKILLed */ }
    }
    allServers.delete(this);
    if (tempDirs.has(this.dataDir)) {
      tempDirs.delete(this.dataDir);
      try { rmSync(this.dataDir, { recursive: true, force: true }); } catch { /* ignore */ }
    }
  }

  // ------------------------------------------------------------------ REST

  /**
   * REST call. Returns {status, json, text, headers}. `json` is null for an empty
   * body and undefined if the body is not JSON.
   */
  async api(method, urlPath, { token, body, rawBody, headers = {}, timeoutMs = 10000 } = {}) {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload;
    if (rawBody !== undefined) {
      payload = rawBody;
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      h['content-type'] = 'application/json';
    }
    let res;
    try {
      res = await fetch(this.baseUrl + urlPath, {
        method,
        headers: h,
        body: payload,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      await sleep(50); // let an exit event arrive
      const state = this.exit ? `chatd is not running (exited code=${this.exit.code} signal=${this.exit.signal})` : 'chatd is running';
      const err = new Error(`${method} ${urlPath}: ${e.message} (${e.cause?.code ?? e.cause?.message ?? ''}); ${state}`);
      err.cause = e;
      throw err;
    }
    const text = await res.text();
    let json = null;
    if (text.length > 0) {
      try { json = JSON.parse(text); } catch { json = undefined; }
    }
    return { status: res.status, json, text, headers: res.headers };
  }

  /** Registers a fresh user with a unique name. Returns {user, session, token, username, email, password}. */
  async registerUser(name = 'user', extra = {}) {
    const base = name.replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 20) || 'user';
    const username = uniq(base);
    const email = `${username}@example.test`;
    const res = await this.api('POST', '/api/v1/auth/register', {
      body: { username, email, password: PASSWORD, display_name: extra.display_name ?? `${name} display`, device: { type: 'web', name: 'it' }, ...extra },
    });
    if (res.status !== 201) {
      throw new Error(`register ${username} failed: ${res.status} ${res.text}`);
    }
    return { ...res.json, id: res.json.user.id, token: res.json.session.access_token, username, email, password: PASSWORD };
  }

  /** Logs in again (new session = new device). Returns {user, session, token}. */
  async login(login, password = PASSWORD, device = { type: 'web', name: 'second' }) {
    const res = await this.api('POST', '/api/v1/auth/login', { body: { login, password, device } });
    if (res.status !== 200) throw new Error(`login ${login} failed: ${res.status} ${res.text}`);
    return { ...res.json, id: res.json.user.id, token: res.json.session.access_token };
  }

  /** Creates (or gets) the direct conversation between the token's user and userId. Returns the conversation. */
  async directConversation(token, userId) {
    const res = await this.api('POST', '/api/v1/conversations', { token, body: { type: 'direct', user_id: userId } });
    if (res.status !== 201 && res.status !== 200) throw new Error(`create conversation failed: ${res.status} ${res.text}`);
    return res.json;
  }

  async metrics() {
    const res = await fetch(this.baseUrl + '/metrics', { signal: AbortSignal.timeout(10000) });
    return { status: res.status, text: await res.text(), headers: res.headers };
  }

  // ------------------------------------------------------------- WebSocket

  /** Opens a WebSocket without authenticating. See WsClient. */
  async wsConnect(opts = {}) {
    const c = new WsClient(opts.url ?? this.wsUrl, opts);
    this.clients.add(c);
    c.closed.then(() => this.clients.delete(c));
    await c.opened;
    return c;
  }

  /** Opens a WebSocket, sends the auth frame, waits for `ready` (c.ready holds it). */
  async wsClient(token, opts = {}) {
    const c = await this.wsConnect(opts);
    c.send({ type: 'auth', token });
    const f = await c.next((m) => m.type === 'ready' || m.type === 'error', opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    if (f.type !== 'ready') {
      c.terminate();
      throw new Error(`ws auth failed: ${JSON.stringify(f)}`);
    }
    c.ready = f;
    return c;
  }

  /**
   * Attempts a WebSocket upgrade and reports the outcome without throwing:
   * {opened: true, client} or {opened: false, status, body}.
   */
  async wsTryUpgrade(opts = {}) {
    const c = new WsClient(opts.url ?? this.wsUrl, opts);
    this.clients.add(c);
    try {
      await c.opened;
      return { opened: true, client: c };
    } catch (e) {
      this.clients.delete(c);
      return { opened: false, status: c.upgradeStatus ?? null, body: c.upgradeBody ?? '', error: e.message };
    }
  }
}

// ---------------------------------------------------------------------------
// WebSocket client

/**
 * Wraps a `ws` WebSocket:
 *  - frames: every received frame in order (text frames parsed as JSON when possible,
 *    otherwise {type:'__raw', data}; binary frames as {type:'__binary', data})
 *  - next(pred, timeoutMs): removes and returns the first not-yet-consumed frame matching pred
 *    (waits for it); frames not matching stay queued for later next() calls
 *  - collect(pred, count, timeoutMs): `count` matching frames
 *  - send(obj) / sendRaw(string|Buffer, {binary}) / close() / terminate()
 *  - closed: promise {code, reason} resolved when the socket closes (never rejects)
 */
export class WsClient {
  constructor(url, { headers = {}, origin, autoPong = true, protocols } = {}) {
    this.url = url;
    this.frames = [];
    this.queue = [];
    this.waiters = [];
    this.closeInfo = null;
    this.upgradeStatus = null;
    const wsOpts = { headers, autoPong, handshakeTimeout: DEFAULT_TIMEOUT_MS };
    if (origin !== undefined) wsOpts.origin = origin;
    this.ws = new WebSocket(url, protocols, wsOpts);
    let resolveClosed;
    this.closed = new Promise((r) => { resolveClosed = r; });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (req, res) => {
        this.upgradeStatus = res.statusCode;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { body += d; });
        const finish = () => {
          this.upgradeBody = body;
          reject(new Error(`unexpected upgrade response ${res.statusCode}`));
          try { req.destroy(); } catch { /* ignore */ }
        };
        res.on('end', finish);
        res.on('error', finish);
        setTimeout(finish, 1000);
      });
    });
    this.opened.catch(() => {});
    this.ws.on('error', (e) => { this.lastError = e; });
    this.ws.on('message', (data, isBinary) => {
      let f;
      if (isBinary) f = { type: '__binary', data };
      else {
        const s = data.toString('utf8');
        try {
          f = JSON.parse(s);
          if (f === null || typeof f !== 'object') f = { type: '__raw', data: s };
        } catch { f = { type: '__raw', data: s }; }
      }
      this.frames.push(f);
      this.queue.push(f);
      this._wake();
    });
    this.ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString('utf8') };
      resolveClosed(this.closeInfo);
      this._wake();
    });
  }

  _wake() {
    for (const w of [...this.waiters]) w();
  }

  /** Removes and returns the first queued frame matching pred, waiting up to timeoutMs. */
  next(pred = () => true, timeoutMs = DEFAULT_TIMEOUT_MS, what = 'frame') {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        const i = this.queue.findIndex((f) => pred(f));
        if (i >= 0) {
          const [f] = this.queue.splice(i, 1);
          cleanup();
          resolve(f);
          return;
        }
        if (this.closeInfo) {
          cleanup();
          reject(new Error(`socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${what}; received: ${summarize(this.frames)}`));
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timeout after ${timeoutMs} ms waiting for ${what}; received: ${summarize(this.frames)}`));
      }, timeoutMs);
      this.waiters.push(check);
      check();
    });
  }

  /** Waits for `count` frames matching pred (consumes them); returns them in arrival order. */
  async collect(pred, count, timeoutMs = DEFAULT_TIMEOUT_MS, what = 'frames') {
    const deadline = Date.now() + timeoutMs;
    const out = [];
    while (out.length < count) {
      const left = Math.max(1, deadline - Date.now());
      out.push(await this.next(pred, left, `${what} (${out.length}/${count} so far)`));
    }
    return out;
  }

  /** All received frames (not only unconsumed ones) matching pred. */
  received(pred = () => true) {
    return this.frames.filter(pred);
  }

  send(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  sendRaw(data, { binary = false } = {}) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, { binary }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Sends a ping frame (JSON) and waits for the pong: proves the connection still works. */
  async roundTrip(timeoutMs = DEFAULT_TIMEOUT_MS) {
    this.send({ type: 'ping' });
    return this.next((f) => f.type === 'pong', timeoutMs, 'pong');
  }

  /** Waits for the socket to be closed by the peer; returns {code, reason}. */
  waitClosed(timeoutMs = DEFAULT_TIMEOUT_MS) {
    return withTimeout(this.closed, timeoutMs, 'websocket close');
  }

  get isOpen() { return this.ws.readyState === WebSocket.OPEN; }

  close(code = 1000) {
    try { this.ws.close(code); } catch { /* ignore */ }
    return this.closed;
  }

  terminate() {
    try { this.ws.terminate(); } catch { /* ignore */ }
  }
}

function summarize(frames) {
  const s = JSON.stringify(frames.slice(-10).map((f) => (f.type === '__binary' ? { type: '__binary', len: f.data.length } : f)));
  return (frames.length > 10 ? `[${frames.length} frames, last 10] ` : '') + (s.length > 2000 ? s.slice(0, 2000) + '...' : s);
}

// ---------------------------------------------------------------------------
// assertions helpers

/** Asserts a REST error response: status and {"error":{"code","message"}} shape. */
export function assertError(res, status, code, what = '') {
  const ctx = `${what} -> ${res.status} ${res.text?.slice(0, 500)}`;
  if (res.status !== status) throw new Error(`expected HTTP ${status} ${code}, got ${ctx}`);
  if (!res.json || typeof res.json !== 'object' || !res.json.error) throw new Error(`expected error body, got ${ctx}`);
  if (res.json.error.code !== code) throw new Error(`expected error code ${code}, got ${ctx}`);
  if (typeof res.json.error.message !== 'string') throw new Error(`error.message is not a string: ${ctx}`);
}

/** True if the string is a JSON id (decimal digits). */
export function isId(v) {
  return typeof v === 'string' && /^[0-9]+$/.test(v);
}
