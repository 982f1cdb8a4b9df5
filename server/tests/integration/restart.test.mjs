// Durability across restarts: graceful SIGTERM (exit 0, WS closed with 1001, all data kept) and SIGKILL during a
// burst (every acked message survives), also while acked sends are only in the SQLite append log. Contract: docs/protocol.md and docs/openapi.yaml ("ack after the durable write").
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, PASSWORD } from './lib/harness.mjs';

const T = { timeout: 60000 };
const servers = [];
after(async () => { for (const s of servers) await s.close(); });

async function start(label, args = []) {
  const s = await startServer({ label, args });
  servers.push(s);
  return s;
}

/** Full history via after-paging (limit 100). */
async function fullHistory(srv, token, convId) {
  const out = [];
  let after = 0;
  for (let guard = 0; guard < 1000; guard++) {
    const r = await srv.api('GET', `/api/v1/conversations/${convId}/messages?after=${after}&limit=100`, { token });
    assert.equal(r.status, 200, r.text);
    out.push(...r.json.messages);
    if (!r.json.has_more || r.json.messages.length === 0) break;
    after = r.json.messages.at(-1).seq;
  }
  return out;
}

async function loginAgain(srv, username) {
  // after a restart we log in again rather than relying on the old access token
  return srv.login(username, PASSWORD);
}

test('200 acked messages survive SIGTERM + restart, same ids, in order; SIGTERM closes WS with 1001 and exits 0', T, async () => {
  // Goal: graceful shutdown loses nothing. Method: send 200 messages over WS (pipelined), collect acks, SIGTERM
  // (open sockets must be closed with 1001, exit code 0), restart on the same data dir, compare history with acks;
  // then one more message gets seq 201.
  const srv = await start('restart-graceful');
  const A = await srv.registerUser('Dur');
  const B = await srv.registerUser('Able');
  const conv = await srv.directConversation(A.token, B.id);
  const wa = await srv.wsClient(A.token);
  const wb = await srv.wsClient(B.token);

  const N = 200;
  const acks = [];
  for (let i = 0; i < N; i++) {
    wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: `g-${i}`, body: `graceful ${i}` });
  }
  for (let i = 0; i < N; i++) {
    const f = await wa.next((x) => (x.type === 'ack' || x.type === 'error') && x.client_msg_id === `g-${i}`, 15000, `ack g-${i}`);
    assert.equal(f.type, 'ack', JSON.stringify(f));
    acks.push(f);
  }
  assert.deepEqual(acks.map((a) => a.seq), Array.from({ length: N }, (_, k) => k + 1), 'pipelined sends from one socket keep their order');

  const code = await srv.stop('SIGTERM');
  assert.equal(code, 0, `exit code after SIGTERM (exit=${JSON.stringify(srv.exit)})`);
  const [ca, cb] = await Promise.all([wa.waitClosed(5000), wb.waitClosed(5000)]);
  assert.equal(ca.code, 1001, `WS close code on shutdown (got ${ca.code} ${ca.reason})`);
  assert.equal(cb.code, 1001, `WS close code on shutdown (got ${cb.code} ${cb.reason})`);

  await srv.restart();
  const A2 = await loginAgain(srv, A.username);
  const hist = await fullHistory(srv, A2.token, conv.id);
  assert.equal(hist.length, N);
  hist.forEach((m, k) => {
    assert.equal(m.seq, k + 1);
    assert.equal(m.id, acks[k].id, `id of seq ${k + 1} unchanged`);
    assert.equal(m.client_msg_id, `g-${k}`);
    assert.equal(m.body, `graceful ${k}`);
    assert.equal(m.sender_id, A.id);
  });

  // the sequence continues without a gap and retries of old client_msg_ids are still recognised
  const r = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A2.token, body: { client_msg_id: 'after-restart', body: 'hello again' } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.seq, N + 1);
  const retry = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A2.token, body: { client_msg_id: 'g-7', body: 'graceful 7' } });
  assert.equal(retry.status, 200, `retry of a pre-restart client_msg_id: ${retry.text}`);
  assert.equal(retry.json.id, acks[7].id);

  // old access token: sessions are stored, so it should still work after a restart (not strictly required: report only)
  const old = await srv.api('GET', '/api/v1/users/me', { token: A.token });
  if (old.status !== 200) console.log(`# note: access token issued before the restart answered ${old.status} afterwards`);
});

test('SIGKILL during a burst: every acked message is present after restart', T, async () => {
  // Goal: an ack means durable. Method: two sockets pipeline 1500 sends each; at the 50th ack SIGKILL the server;
  // restart on the same data dir; every acked (client_msg_id -> id, seq) is in history unchanged, history has no
  // gaps/duplicates and holds only messages we sent.
  const srv = await start('restart-kill');
  const A = await srv.registerUser('Kil');
  const B = await srv.registerUser('Led');
  const conv = await srv.directConversation(A.token, B.id);
  const senders = [await srv.wsClient(A.token), await srv.wsClient(B.token)];

  const acked = new Map(); // cmid -> ack
  const sentBodies = new Map();
  const PER = 1500;
  const KILL_AT = 50;
  let killed = false;
  for (const [k, ws] of senders.entries()) {
    ws.ws.on('message', (data) => {
      let f;
      try { f = JSON.parse(data.toString()); } catch { return; }
      if (f.type !== 'ack') return;
      acked.set(f.client_msg_id, f);
      // kill synchronously from the ack handler so the burst is still in flight
      if (!killed && acked.size >= KILL_AT) { killed = true; srv.child.kill('SIGKILL'); }
    });
    for (let i = 0; i < PER; i++) {
      const cmid = `k${k}-${i}`;
      const body = `burst ${k} ${i}`;
      sentBodies.set(cmid, body);
      ws.send({ type: 'send', conversation_id: conv.id, client_msg_id: cmid, body });
    }
  }
  const deadline = Date.now() + 15000;
  while (!killed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.ok(killed, `${KILL_AT} acks arrived (got ${acked.size})`);
  await srv.stop('SIGKILL'); // waits for the exit
  await Promise.all(senders.map((s) => s.waitClosed(5000).catch(() => null)));
  const ackedAtKill = new Map(acked);

  await srv.restart();
  const A2 = await loginAgain(srv, A.username);
  const hist = await fullHistory(srv, A2.token, conv.id);
  const byCmid = new Map(hist.map((m) => [m.client_msg_id, m]));

  const lost = [];
  for (const [cmid, ack] of ackedAtKill) {
    const m = byCmid.get(cmid);
    if (!m) { lost.push(cmid); continue; }
    assert.equal(m.id, ack.id, `${cmid}: id`);
    assert.equal(m.seq, ack.seq, `${cmid}: seq`);
    assert.equal(m.body, sentBodies.get(cmid));
  }
  assert.deepEqual(lost, [], `acked messages lost after SIGKILL (${lost.length} of ${ackedAtKill.size})`);
  assert.deepEqual(hist.map((m) => m.seq), Array.from({ length: hist.length }, (_, k) => k + 1), 'no gaps after recovery');
  assert.equal(byCmid.size, hist.length, 'no duplicates');
  for (const m of hist) assert.ok(sentBodies.has(m.client_msg_id), `unexpected message ${m.client_msg_id}`);
  console.log(`# SIGKILL test: ${ackedAtKill.size} acked before kill, ${hist.length} in history after restart`);

  // the server works normally afterwards
  const r = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A2.token, body: { client_msg_id: 'post-kill', body: 'alive' } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.seq, hist.length + 1);
});

test('SIGKILL while acked sends are only in the append log: all replayed at restart (SQLite)', T, async () => {
  // Goal: with SQLite, a batch of sends is acked once its append-log frame is fsynced and reaches the database
  // later (docs/architecture.md, "The append log"); a crash in between loses nothing. Method: a publish interval
  // of 10 s and no reads after the sends, so every acked send is only in chatd.db-log when the server is killed;
  // restart: the log line names all 120 as replayed (SQLite only), history has them with their ids and seqs, a
  // retry is recognised and the next send continues the sequence. On PostgreSQL (no log) the same holds through
  // its commits.
  const srv = await start('restart-log', ['--publish-interval-ms', '10000']);
  const A = await srv.registerUser('Log');
  const B = await srv.registerUser('Ged');
  const conv = await srv.directConversation(A.token, B.id);
  const wa = await srv.wsClient(A.token);
  const N = 120;
  for (let i = 0; i < N; i++) wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: `l-${i}`, body: `logged ${i}` });
  const acks = [];
  for (let i = 0; i < N; i++) {
    const f = await wa.next((x) => (x.type === 'ack' || x.type === 'error') && x.client_msg_id === `l-${i}`, 15000, `ack l-${i}`);
    assert.equal(f.type, 'ack', JSON.stringify(f));
    acks.push(f);
  }
  await srv.stop('SIGKILL');
  await wa.waitClosed(5000).catch(() => null);

  await srv.restart();
  if (!process.env.CHATD_TEST_PG_ADMIN_DSN) {
    assert.match(srv._log, new RegExp(`store: ${N} acknowledged sends replayed from the append log`), 'replay line at start');
  }
  const A2 = await loginAgain(srv, A.username);
  const hist = await fullHistory(srv, A2.token, conv.id);
  assert.equal(hist.length, N);
  hist.forEach((m, k) => {
    assert.equal(m.seq, k + 1);
    assert.equal(m.id, acks[k].id, `id of seq ${k + 1}`);
    assert.equal(m.body, `logged ${k}`);
  });
  const retry = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A2.token, body: { client_msg_id: 'l-5', body: 'logged 5' } });
  assert.equal(retry.status, 200, `retry of a replayed client_msg_id: ${retry.text}`);
  assert.equal(retry.json.id, acks[5].id);
  const next = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, { token: A2.token, body: { client_msg_id: 'l-next', body: 'next' } });
  assert.equal(next.status, 201, next.text);
  assert.equal(next.json.seq, N + 1);
});
