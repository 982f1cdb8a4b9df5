#!/usr/bin/env node
// Redis CPU per WebSocket connect/close cycle of a cluster-mode chatd (presence reports, grace
// expiry, heartbeats and sweeps). Starts a private redis-server and one chatd (SQLite store,
// --bus redis://), registers USERS users, then runs CYCLES cycles: open /ws, auth, wait for
// `ready`, subscribe to the presence of 20 users (all in one group), wait for their 20 presence
// frames, close; waits for every grace period to end.
// Reports redis-server's CPU (INFO cpu: used_cpu_user + used_cpu_sys) and INFO commandstats for the cycle phase,
// minus an idle phase of the same length (heartbeats and sweeps only).
//
//   node bench/redis-cycle-cost.mjs [CHATD_BIN]
//   CHATD=build/release/chatd CYCLES=2000 USERS=50 REDIS_PORT=56493 node bench/redis-cycle-cost.mjs
//   SUBSCRIBE=0 ...   connect, auth and close only (no presence_subscribe)
//
// Uses the `ws` package of server/tests/integration (npm ci there first).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../server/tests/integration/package.json'));
const WebSocket = require('ws');

const CHATD = process.argv[2] ?? process.env.CHATD ?? path.join(here, '../build/release/chatd');
const CYCLES = Number(process.env.CYCLES ?? 2000);
const USERS = Number(process.env.USERS ?? 50);
const REDIS_PORT = Number(process.env.REDIS_PORT ?? 56493);
const CHATD_PORT = Number(process.env.CHATD_PORT ?? 28390);
const SUBSCRIBE = process.env.SUBSCRIBE !== '0'; // SUBSCRIBE=0: connect, auth, close only
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function redisCpu() {
  const info = redisCli('INFO', 'cpu');
  return Number(info.match(/used_cpu_user:([\d.]+)/)[1]) + Number(info.match(/used_cpu_sys:([\d.]+)/)[1]);
}
function redisCli(...args) {
  return execFileSync('redis-cli', ['-p', String(REDIS_PORT), ...args]).toString();
}
function commandStats() {
  const out = {};
  for (const line of redisCli('INFO', 'commandstats').split('\n')) {
    const m = line.match(/^cmdstat_(\w+):calls=(\d+),usec=(\d+)/);
    if (m) out[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return out;
}
function diffStats(a, b) {
  const out = {};
  for (const [k, v] of Object.entries(b)) {
    const calls = v.calls - (a[k]?.calls ?? 0);
    if (calls > 0) out[k] = { calls, usec: v.usec - (a[k]?.usec ?? 0) };
  }
  return out;
}

const dir = mkdtempSync(path.join(tmpdir(), 'chatd-redis-cost-'));
const redis = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(REDIS_PORT), '--save', '',
  '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
let chatd;
try {
  for (let i = 0; i < 100; i++) {
    try { if (redisCli('PING').trim() === 'PONG') break; } catch { /* starting */ }
    await sleep(100);
  }
  chatd = spawn(CHATD, ['--listen', `127.0.0.1:${CHATD_PORT}`, '--data-dir', dir, '--bus',
    `redis://127.0.0.1:${REDIS_PORT}`, '--presence-grace-ms', '200', '--rate-auth-ip-per-min', '10000000',
    '--rate-auth-account-per-min', '10000000', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${CHATD_PORT}`;
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${base}/healthz`)).ok) break; } catch { /* starting */ }
    await sleep(100);
  }
  const users = [];
  for (let i = 0; i < USERS; i++) {
    const name = `cost${i}_${process.pid}`;
    const res = await fetch(`${base}/api/v1/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: name, email: `${name}@example.test`, password: 'correct horse battery',
        display_name: name, device: { type: 'web', name: 'bench' } }),
    });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`);
    const j = await res.json();
    users.push({ id: j.user.id, token: j.session.access_token });
  }
  // One group of everybody, so every watched user shares a conversation with every watcher.
  const group = await fetch(`${base}/api/v1/conversations`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${users[0].token}` },
    body: JSON.stringify({ type: 'group', name: 'cost', member_ids: users.slice(1).map((u) => u.id) }),
  });
  if (group.status !== 201) throw new Error(`group: ${group.status} ${await group.text()}`);
  const watch = users.slice(0, 20).map((u) => u.id);
  const cycle = (u) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${CHATD_PORT}/ws`);
    let presences = 0;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'auth', token: u.token })));
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      if (f.type === 'ready' && !SUBSCRIBE) ws.close();
      if (f.type === 'ready' && SUBSCRIBE) ws.send(JSON.stringify({ type: 'presence_subscribe', user_ids: watch }));
      if (f.type === 'presence' && ++presences === watch.length) ws.close();
      if (f.type === 'error') reject(new Error(data.toString()));
    });
    ws.on('close', resolve);
    ws.on('error', reject);
  });
  await sleep(1500); // settle
  const t0 = Date.now();
  const cpu0 = redisCpu();
  const s0 = commandStats();
  const netIn = () => Number(redisCli('INFO', 'stats').match(/total_net_input_bytes:(\d+)/)[1]);
  const b0 = netIn();
  for (let i = 0; i < CYCLES; i++) await cycle(users[i % USERS]);
  await sleep(1500); // every grace period (200 ms) ends, and the sweeps after it
  const busy = (Date.now() - t0) / 1000;
  const cpu1 = redisCpu();
  const s1 = commandStats();
  const b1 = netIn();
  await sleep(busy * 1000); // idle baseline of the same length: heartbeats and sweeps only
  const cpu2 = redisCpu();
  const s2 = commandStats();
  const cycleCpu = (cpu1 - cpu0) - (cpu2 - cpu1);
  const stats = diffStats(s0, s1);
  const idle = diffStats(s1, s2);
  const scriptUsec = ['eval', 'evalsha', 'script'].reduce((n, k) => n + (stats[k]?.usec ?? 0) - (idle[k]?.usec ?? 0), 0);
  console.log(JSON.stringify({
    chatd: CHATD, cycles: CYCLES, subscribe: SUBSCRIBE, seconds: busy,
    redis_cpu_s_cycles: +(cpu1 - cpu0).toFixed(4), redis_cpu_s_idle_same_length: +(cpu2 - cpu1).toFixed(4),
    redis_cpu_us_per_cycle: +(cycleCpu / CYCLES * 1e6).toFixed(1),
    script_usec_per_cycle: +(scriptUsec / CYCLES).toFixed(2),
    redis_net_input_bytes_per_cycle: Math.round((b1 - b0) / CYCLES),
    commandstats_cycles: stats, commandstats_idle: idle,
  }, null, 1));
} finally {
  if (chatd) { chatd.kill('SIGTERM'); await new Promise((r) => chatd.once('exit', r)); }
  redis.kill('SIGTERM');
  await new Promise((r) => redis.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
