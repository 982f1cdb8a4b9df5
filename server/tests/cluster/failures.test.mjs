// Cluster failure modes under traffic: kill -9 of a node, a PostgreSQL restart, a Redis restart.
// 50 clients (through nginx) send into 5 groups; on a lost socket a client reconnects through nginx and
// resends its unacked message under the same client_msg_id; at the end every device syncs, and a checker
// compares every device's log with the database: every acked message exactly once, in the same order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { sleep } from '../integration/lib/harness.mjs';
import { createGroup, fullHistory, registerMany } from '../integration/lib/v2.mjs';
import { endpoint, cluster, clusterAsync, isMsgFor, pgServer, PG_SH as PG } from './lib.mjs';

const T = { timeout: 180000 };
const lb = endpoint(0);

before(() => { cluster('start'); });
after(() => {
  // Leave the cluster whole for whatever runs next.
  execFileSync(PG, ['start'], { stdio: 'ignore' });
  cluster('start');
});

class Device {
  constructor(user, group) {
    this.user = user;
    this.group = group;
    this.sockets = [];
    this.ws = null;
    this.acked = new Map(); // client_msg_id -> ack
    this.reconnects = 0;
    this.errors = [];
  }

  async connect() {
    for (let attempt = 0; ; attempt++) {
      try {
        this.ws = await lb.wsClient(this.user.token, { timeoutMs: 5000 });
        this.sockets.push(this.ws);
        return;
      } catch (e) {
        if (attempt > 300) throw e;
        await sleep(100);
      }
    }
  }

  async sendOne(cmid, body) {
    for (let attempt = 0; attempt < 600; attempt++) {
      if (!this.ws || !this.ws.isOpen) {
        this.reconnects++;
        await this.connect();
      }
      const ws = this.ws;
      try {
        ws.send({ type: 'send', conversation_id: this.group.id, client_msg_id: cmid, body });
      } catch {
        continue;
      }
      let f;
      try {
        f = await ws.next((x) => (x.type === 'ack' || x.type === 'error') && x.client_msg_id === cmid, 10000, `ack ${cmid}`);
      } catch {
        ws.terminate();
        continue; // socket lost: reconnect and resend under the same client_msg_id
      }
      if (f.type === 'ack') {
        this.acked.set(cmid, f);
        return;
      }
      this.errors.push(f.code);
      assert.ok(['unavailable', 'rate_limited', 'internal'].includes(f.code), `send ${cmid}: ${JSON.stringify(f)}`);
      await sleep(200);
    }
    assert.fail(`send ${cmid}: no ack after many attempts`);
  }

  /** Live frames (deduped per device) plus one sync from the contiguous watermark: the device's log. */
  async finalLog(startSeq) {
    const seen = new Map();
    for (const ws of this.sockets) {
      const seqs = ws.received(isMsgFor(this.group.id)).map((f) => f.message.seq);
      assert.equal(new Set(seqs).size, seqs.length, `${this.user.username}: a duplicate on one connection`);
      for (const f of ws.received(isMsgFor(this.group.id))) seen.set(f.message.seq, f.message.id);
    }
    for (const a of this.acked.values()) seen.set(a.seq, a.id);
    let wm = startSeq;
    while (seen.has(wm + 1)) wm++;
    if (!this.ws || !this.ws.isOpen) await this.connect();
    for (let page = 0; page < 50; page++) {
      const rid = `final-sync-${page}`;
      this.ws.send({ type: 'sync', since: { [this.group.id]: wm }, limit: 1000, request_id: rid });
      const b = await this.ws.next((x) => x.type === 'sync_batch' || (x.type === 'error' && x.request_id === rid), 15000, 'sync');
      assert.equal(b.type, 'sync_batch', JSON.stringify(b).slice(0, 300));
      for (const e of b.events) {
        if (e.conversation_id !== this.group.id) continue;
        seen.set(e.seq, e.id);
        wm = Math.max(wm, e.seq);
      }
      if (!b.has_more) break;
    }
    return [...seen.entries()].filter(([s]) => s > startSeq).sort((x, y) => x[0] - y[0]);
  }
}

async function setup(tag) {
  const users = await registerMany(lb, 50, tag);
  const groups = [];
  for (let g = 0; g < 5; g++) {
    const members = users.slice(g * 10, g * 10 + 10);
    groups.push(await createGroup(lb, members[0].token, `${tag}-${g}`, members.slice(1).map((u) => u.id)));
  }
  const devices = users.map((u, i) => new Device(u, groups[Math.floor(i / 10)]));
  for (let i = 0; i < devices.length; i += 10) await Promise.all(devices.slice(i, i + 10).map((d) => d.connect()));
  return { groups, devices };
}

async function burst(devices, perClient, tag) {
  await Promise.all(devices.map(async (d, i) => {
    for (let k = 0; k < perClient; k++) {
      await d.sendOne(`${tag}-${i}-${k}`, `${tag} ${i} ${k}`);
      await sleep(5 + (i % 7));
    }
  }));
}

async function check(groups, devices, tag) {
  for (const g of groups) {
    const history = await fullHistory(lb, devices.find((d) => d.group === g).user.token, g.id, 100);
    const start = Number(g.last_seq ?? 0);
    const dbLog = history.filter((m) => m.seq > start).map((m) => [m.seq, m.id]);
    const byCmid = new Map();
    for (const m of history) {
      if (!m.client_msg_id) continue;
      assert.ok(!byCmid.has(m.client_msg_id), `${tag}: ${m.client_msg_id} stored twice`);
      byCmid.set(m.client_msg_id, m);
    }
    for (const d of devices.filter((x) => x.group === g)) {
      for (const [cmid, a] of d.acked) {
        const m = byCmid.get(cmid);
        assert.ok(m, `${tag}: acked ${cmid} missing from the database`);
        assert.equal(m.id, a.id, `${tag}: ${cmid} acked with another id`);
        assert.equal(m.seq, a.seq);
      }
      const log = await d.finalLog(start);
      assert.deepEqual(log, dbLog, `${tag}: ${d.user.username}'s log differs from the database`);
    }
  }
  for (const d of devices) for (const ws of d.sockets) ws.close();
}

test('kill -9 of a node during a send burst from 50 clients: every acked message exactly once, same order, on every device', T, async () => {
  const { groups, devices } = await setup('kn');
  const traffic = burst(devices, 20, 'kn');
  await sleep(400);
  cluster('kill-node', '2');
  await traffic;
  cluster('start-node', '2');
  const total = devices.reduce((n, d) => n + d.acked.size, 0);
  assert.equal(total, 50 * 20);
  assert.ok(devices.some((d) => d.reconnects > 0), 'some clients had to reconnect');
  await check(groups, devices, 'kn');
});

// The restart drills stop PostgreSQL and Redis without blocking the event loop (the clients keep
// sending, timing out and retrying meanwhile, as real ones would). Run them with
// CHATD_PG_PORT=55433 CLUSTER_PORT_BASE=48080 CLUSTER_REDIS_PORT=56679 (or any free ports) on a
// machine where others use the default PostgreSQL: the drill stops the one it is pointed at.
test('PostgreSQL restarted during traffic: sends fail with unavailable while down, nothing acked is lost, service resumes', T, async () => {
  const { groups, devices } = await setup('pg');
  const traffic = burst(devices, 20, 'pg');
  await sleep(300);
  await pgServer('stop');
  await sleep(1500);
  await pgServer('start');
  await traffic;
  const errors = devices.flatMap((d) => d.errors);
  assert.ok(errors.length > 0, 'some sends failed while PostgreSQL was down');
  assert.ok(errors.every((c) => c === 'unavailable'), `errors: ${[...new Set(errors)].join(',')}`);
  await check(groups, devices, 'pg');
});

test('Redis restarted during traffic: fan-out between nodes resumes by itself; sync fills the gap', T, async () => {
  const { groups, devices } = await setup('rd');
  const traffic = burst(devices, 20, 'rd');
  await sleep(300);
  await clusterAsync('stop-redis');
  await sleep(1000);
  await clusterAsync('start-redis');
  await traffic;
  // Live fan-out across nodes works again: a probe sent on node 1 reaches a member on node 2 and 3.
  const n1 = endpoint(1);
  const [a, b, c] = [0, 1, 2].map((i) => devices[i]);
  const wb = await endpoint(2).wsClient(b.user.token);
  const wc = await endpoint(3).wsClient(c.user.token);
  const deadline = Date.now() + 10000;
  for (let k = 0; ; k++) {
    const r = await n1.api('POST', `/api/v1/conversations/${a.group.id}/messages`, { token: a.user.token, body: { client_msg_id: `rd-probe-${k}`, body: 'probe' } });
    assert.equal(r.status, 201, r.text);
    try {
      await Promise.all([wb, wc].map((w) => w.next((f) => isMsgFor(a.group.id)(f) && f.message.client_msg_id === `rd-probe-${k}`, 1000, 'probe')));
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
  wb.close();
  wc.close();
  await check(groups, devices, 'rd');
});
