'use strict';
// chatd (this repository) over its public protocol: REST login, then the WebSocket protocol v2
// (docs/protocol.md): auth frame -> ready; send -> ack; message frames to the other members.
//   user i      = chatd username `${username_prefix}${i}` (chatd wants >= 3 characters and a
//                 password of >= 8 bytes, so "u0"/"pw" become "bench_u0"/"pw-chatd-bench")
//   group g     = the group conversation prepare.sh created for users g*100 .. g*100+99
//   direct i<->j = the direct conversation prepare.sh created for the pair (i, i^1)
// The ids come from peers/chatd/run/map.json, written by prepare.sh.
// connect() = REST login (argon2id verify on the server; retried on 429/503) + WebSocket upgrade +
// auth frame + `ready` (which also makes the user online for presence). Option login: "token"
// skips the REST login and uses the session token prepare.sh stored (a variant, label it).
const WebSocket = require('ws');
const http = require('http');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

let MAP = null;
let MAP_MTIME = 0;
function loadMap(cfg) {
  const file = path.resolve(__dirname, '..', '..', cfg.map_file || 'peers/chatd/run/map.json');
  const st = fs.statSync(file);
  if (!MAP || st.mtimeMs !== MAP_MTIME) { MAP = JSON.parse(fs.readFileSync(file, 'utf8')); MAP_MTIME = st.mtimeMs; }
  return MAP;
}

function login(cfg, user, deadline) {
  const body = JSON.stringify({ login: `${cfg.username_prefix || 'bench_u'}${user}`, password: cfg.password || 'pw-chatd-bench', device: { type: 'web', name: 'peers-driver' } });
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const req = http.request({ host: cfg.host || '127.0.0.1', port: cfg.port || 18400, path: '/api/v1/auth/login', method: 'POST',
        localAddress: cfg.localAddress, agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { data += c; });
        res.on('end', () => {
          if (res.statusCode === 200) {
            try { resolve(JSON.parse(data).session.access_token); } catch (e) { reject(e); }
          } else if ((res.statusCode === 429 || res.statusCode === 503) && Date.now() < deadline) {
            const ra = Number(res.headers['retry-after']);
            setTimeout(attempt, Number.isFinite(ra) && ra > 0 ? Math.min(ra * 1000, 1000) : 50);
          } else {
            reject(new Error(`login HTTP ${res.statusCode} ${data.slice(0, 120)}`));
          }
        });
      });
      req.on('error', reject);
      req.end(body);
    };
    attempt();
  });
}

function createClient(user, cfg, hooks) {
  const map = loadMap(cfg);
  const url = `ws://${cfg.host || '127.0.0.1'}:${cfg.port || 18400}/ws`;
  let ws = null;
  let closed = false;
  let pingTimer = null;
  let onReady = null, onFail = null;
  const pongs = [];
  let n = 0;
  const tag = crypto.randomBytes(4).toString('hex');

  function fail(err) { if (onFail) { const f = onFail; onFail = null; onReady = null; f(err); } }
  function send(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }
  function sendText(conv, body) {
    if (conv == null) { if (hooks.onError) hooks.onError('no conversation'); return; }
    send({ type: 'send', conversation_id: conv, client_msg_id: `${tag}-${++n}`, body });
  }

  function onData(data) {
    const s = typeof data === 'string' ? data : data.toString('utf8');
    let f;
    try { f = JSON.parse(s); } catch (e) { return; }
    switch (f.type) {
      case 'message':
        if (f.message && f.message.type === 'text') hooks.onMessage(f.message.body);
        break;
      case 'ready': {
        const hb = Math.max(1000, (f.heartbeat_interval_ms || 30000) * 0.8);
        pingTimer = setInterval(() => send({ type: 'ping' }), hb);
        const r = onReady; onReady = null; onFail = null; if (r) r();
        break;
      }
      case 'pong': { const cb = pongs.shift(); if (cb) cb(); break; }
      case 'error':
        if (onReady) fail(new Error(`chatd error ${f.code}`));
        else if (hooks.onError) hooks.onError(f.code);
        break;
      default: break; // ack, receipt, presence, typing
    }
  }

  return {
    connect() {
      return new Promise((resolve, reject) => {
        onReady = resolve; onFail = reject;
        const deadline = Date.now() + (cfg.login_timeout_ms || 55000);
        const tokenP = cfg.login === 'token' ? Promise.resolve(map.tokens && map.tokens[user]) : login(cfg, user, deadline);
        tokenP.then((token) => {
          if (!token) throw new Error('no token for user ' + user);
          if (closed) throw new Error('closed');
          ws = new WebSocket(url, { perMessageDeflate: false, localAddress: cfg.localAddress, handshakeTimeout: cfg.handshake_timeout_ms || 30000 });
          ws.on('open', () => send({ type: 'auth', token }));
          ws.on('message', onData);
          ws.on('error', (e) => fail(e));
          ws.on('close', (code) => {
            if (pingTimer) clearInterval(pingTimer);
            fail(new Error('closed during login, code ' + code));
            if (!closed && hooks.onClose) hooks.onClose('ws close ' + code);
            closed = true;
          });
        }).catch(fail);
      });
    },
    // Membership was created by prepare.sh; confirm with one round trip like the other adapters.
    joinGroup(g) {
      return new Promise((resolve, reject) => {
        const members = map.group_members && map.group_members[g];
        if (!map.groups || map.groups[g] == null || !members || user < members[0] || user > members[1]) {
          reject(new Error(`user ${user} is not a member of g${g} in map.json`));
          return;
        }
        pongs.push(resolve);
        send({ type: 'ping' });
      });
    },
    sendDirect(to, body) { sendText(map.direct[`${Math.min(user, to)}:${Math.max(user, to)}`], body); },
    sendGroup(g, body) { sendText(map.groups[g], body); },
    close() {
      closed = true;
      if (pingTimer) clearInterval(pingTimer);
      if (ws) { try { ws.terminate(); } catch (e) { /* ignore */ } }
    },
  };
}

module.exports = { name: 'chatd', createClient };
