// E2E harness: starts a private chatd (and, if chatd has no --web-root yet, a tiny static server that
// proxies /api and /ws to it), launches the system Chromium with playwright-core, and UI helpers.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, extname, normalize } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { chromium } from 'playwright-core';

export const WEB_DIR = resolve(new URL('..', import.meta.url).pathname);
export const DIST = join(WEB_DIR, 'dist');
export const SHOTS = join(WEB_DIR, 'e2e', 'screenshots');
export const CHATD_BIN = process.env.CHATD_BIN || '/work/main/build/release/chatd';
export const CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'";

function spawnChatd(args) {
  return new Promise((resolveP, reject) => {
    const p = spawn(CHATD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`chatd did not start in 15s\n${out}\n${err}`));
    }, 15000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/chatd listening on (127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolveP({ proc: p, addr: m[1], stderr: () => err });
      }
    });
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`chatd exited ${code}: ${err}`), { code, stderr: err }));
    });
  });
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

/** Fallback only: serves web/dist (SPA fallback) and proxies /api, /healthz, /metrics and /ws to chatd. */
export function startStaticProxy(chatdAddr) {
  const [host, port] = chatdAddr.split(':');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname.startsWith('/api/') || url.pathname === '/healthz' || url.pathname === '/metrics') {
      const up = http.request({ host, port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      req.pipe(up);
      return;
    }
    let file = normalize(join(DIST, decodeURIComponent(url.pathname)));
    if (!file.startsWith(DIST) || !existsSync(file) || statSync(file).isDirectory()) file = join(DIST, 'index.html');
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Security-Policy': CSP,
      'Cache-Control': file.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    res.end(readFileSync(file));
  });
  server.on('upgrade', (req, sock, head) => {
    const up = net.connect(Number(port), host, () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(raw + '\r\n');
      if (head?.length) up.write(head);
      up.pipe(sock);
      sock.pipe(up);
    });
    up.on('error', () => sock.destroy());
    sock.on('error', () => up.destroy());
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

/** Starts chatd serving web/dist. Returns { base, mode, stop }. */
export async function startServer() {
  if (!existsSync(join(DIST, 'index.html'))) throw new Error('web/dist missing: run npm run build first');
  const dataDir = mkdtempSync(join(tmpdir(), 'chatd-e2e-'));
  const common = ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--rate-auth-ip-per-min', '100000', '--rate-auth-account-per-min', '100000'];
  let chatd;
  let mode = 'web-root';
  let proxy = null;
  try {
    if (process.env.E2E_FORCE_PROXY === '1') throw Object.assign(new Error('forced'), { stderr: 'unknown option --web-root (E2E_FORCE_PROXY)' });
    chatd = await spawnChatd([...common, '--web-root', DIST]);
  } catch (e) {
    if (!/web-root|unknown|unrecognized|option/i.test(String(e.stderr ?? e.message))) throw e;
    mode = 'proxy';
    chatd = await spawnChatd(common);
  }
  let base = `http://${chatd.addr}`;
  if (mode === 'proxy') {
    proxy = await startStaticProxy(chatd.addr);
    base = `http://127.0.0.1:${proxy.address().port}`;
  } else {
    // chatd accepted --web-root: make sure it really serves the app, else use the proxy anyway
    const r = await fetch(base + '/').catch(() => null);
    const t = r && r.ok ? await r.text() : '';
    if (!t.includes('id="root"')) {
      mode = 'proxy';
      proxy = await startStaticProxy(chatd.addr);
      base = `http://127.0.0.1:${proxy.address().port}`;
    }
  }
  return {
    base,
    mode,
    chatdAddr: chatd.addr,
    async stop() {
      proxy?.close();
      proxy?.closeAllConnections?.();
      chatd.proc.kill('SIGTERM');
      await new Promise((r) => (chatd.proc.exitCode !== null ? r() : chatd.proc.on('exit', r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// ---------------- REST helpers (node side) ----------------
let uniq = 0;
export function uname(prefix = 'u') {
  return `${prefix}${process.pid % 1000}${Date.now() % 100000}${uniq++}`;
}

export async function api(base, method, path, body, token) {
  const r = await fetch(base + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

export async function apiRegister(base, username, display_name) {
  const r = await api(base, 'POST', '/api/v1/auth/register', { username, email: `${username}@example.test`, password: 'password123', display_name });
  if (r.status !== 201) throw new Error('register failed ' + JSON.stringify(r.body));
  return { user: r.body.user, token: r.body.session.access_token };
}

/** Does the server implement groups (v2)? */
export async function serverHasGroups(base, token) {
  const r = await api(base, 'POST', '/api/v1/conversations', { type: 'group', name: 'probe', member_ids: [] }, token);
  return r.status !== 501 && r.status !== 404 && r.status !== 400;
}

// ---------------- UI helpers ----------------
export async function newPage(browser, base, { width = 1280, height = 800, query = '', userAgent } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, userAgent });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text());
  });
  await page.goto(base + '/' + query);
  return { context, page, errors };
}

export async function registerUI(page, username, displayName) {
  await page.getByRole('tab', { name: 'Create account' }).click();
  await page.getByLabel('Username', { exact: true }).fill(username);
  if (displayName) await page.getByLabel(/Display name/).fill(displayName);
  await page.getByLabel('Email').fill(`${username}@example.test`);
  await page.getByLabel('Password').fill('password123');
  await page.getByRole('button', { name: 'Create account' }).last().click();
  await page.getByRole('button', { name: '+ New chat' }).waitFor();
}

export async function loginUI(page, login) {
  await page.getByLabel('Username or email').fill(login);
  await page.getByLabel('Password').fill('password123');
  await page.getByRole('button', { name: 'Sign in' }).last().click();
  await page.getByRole('button', { name: '+ New chat' }).waitFor();
}

export async function startChatUI(page, username) {
  await page.getByRole('button', { name: '+ New chat' }).click();
  await page.getByRole('dialog').getByRole('searchbox').fill(username);
  await page.getByRole('dialog').getByRole('button', { name: new RegExp('@' + username) }).click();
  await page.locator('.conv-view').waitFor();
}

export async function openConv(page, title) {
  await page.locator('.conv-item', { hasText: title }).first().click();
  await page.locator('.conv-view').waitFor();
}

export async function sendUI(page, text) {
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  await box.press('Enter');
}

export function bubble(page, text) {
  return page.locator('.msg .body', { hasText: text });
}

export async function shot(page, name) {
  await page.waitForTimeout(150);
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

export async function v2(page) {
  await page.waitForFunction(() => window.chatd && window.chatd.v2 !== null, null, { timeout: 10000 }).catch(() => undefined);
  return page.evaluate(() => window.chatd?.v2 === true);
}
