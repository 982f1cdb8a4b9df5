'use strict';
// Provision chatd for the peers driver (see prepare.sh). Exit 0: nothing to do; 10: created
// users/conversations and wrote run/map.json; other: failure.
const http = require('http');
const fs = require('fs');
const path = require('path');

const [users, groups, groupSize] = process.argv.slice(2).map(Number);
const peer = JSON.parse(fs.readFileSync(path.join(__dirname, 'peer.json'), 'utf8'));
const opt = peer.adapter_options;
const MAPF = path.join(__dirname, 'run', 'map.json');
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function req(method, p, body, token) {
  const data = body ? JSON.stringify(body) : null;
  return new Promise((resolve, reject) => {
    const r = http.request({ host: opt.host, port: opt.port, path: p, method, agent,
      headers: Object.assign({ 'content-type': 'application/json' }, data ? { 'content-length': Buffer.byteLength(data) } : {},
        token ? { authorization: `Bearer ${token}` } : {}) }, (res) => {
      let s = ''; res.setEncoding('utf8'); res.on('data', (c) => { s += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: s ? JSON.parse(s) : null }));
    });
    r.on('error', reject); r.end(data || undefined);
  });
}
async function retrying(method, p, body, token) {
  for (let i = 0; i < 600; i++) {
    const r = await req(method, p, body, token);
    if (r.status !== 429 && r.status !== 503) return r;
    await sleep(100);
  }
  throw new Error(`${method} ${p}: still busy`);
}
async function pool(n, conc, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(conc, n) }, async () => { while (next < n) { const i = next++; await fn(i); } }));
}

(async () => {
  const want = Math.max(users, groups * groupSize);
  let map = fs.existsSync(MAPF) ? JSON.parse(fs.readFileSync(MAPF, 'utf8')) : null;
  if (!map) map = { users: 0, group_size: groupSize, ids: [], tokens: [], groups: {}, group_members: {}, direct: {} };
  if (map.group_size !== groupSize) {
    console.error(`chatd prepare: the template has groups of ${map.group_size}, not ${groupSize}: rm -rf ${path.join(__dirname, 'run', 'template')}`);
    process.exit(1);
  }
  const needGroups = [...Array(groups).keys()].filter((g) => map.groups[g] == null);
  const needPairs = [];
  for (let i = 0; i + 1 < want; i += 2) if (map.direct[`${i}:${i + 1}`] == null) needPairs.push(i);
  if (map.users >= want && needGroups.length === 0 && needPairs.length === 0) {
    console.error(`chatd prepare: template already has ${map.users} users, ${Object.keys(map.groups).length} groups`);
    process.exit(0);
  }
  const t0 = Date.now();
  const from = map.users;
  await pool(want - from, 8, async (k) => {
    const i = from + k;
    const name = `${opt.username_prefix}${i}`;
    let r = await retrying('POST', '/api/v1/auth/register', { username: name, email: `${name}@bench.invalid`, password: opt.password, device: { type: 'web' } });
    if (r.status === 409) r = await retrying('POST', '/api/v1/auth/login', { login: name, password: opt.password });
    if (r.status !== 201 && r.status !== 200) throw new Error(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    map.ids[i] = r.body.user.id; map.tokens[i] = r.body.session.access_token;
  });
  map.users = want;
  console.error(`chatd prepare: registered ${want - from} users in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await pool(needGroups.length, 4, async (k) => {
    const g = needGroups[k];
    const first = g * groupSize;
    const members = [];
    for (let m = first + 1; m < first + groupSize; m++) members.push(map.ids[m]);
    const r = await retrying('POST', '/api/v1/conversations', { type: 'group', name: `g${g}`, member_ids: members }, map.tokens[first]);
    if (r.status !== 201) throw new Error(`group g${g}: ${r.status} ${JSON.stringify(r.body)}`);
    map.groups[g] = r.body.id; map.group_members[g] = [first, first + groupSize - 1];
  });
  await pool(needPairs.length, 16, async (k) => {
    const i = needPairs[k];
    const r = await retrying('POST', '/api/v1/conversations', { type: 'direct', user_id: map.ids[i + 1] }, map.tokens[i]);
    if (r.status !== 201 && r.status !== 200) throw new Error(`direct ${i}: ${r.status} ${JSON.stringify(r.body)}`);
    map.direct[`${i}:${i + 1}`] = r.body.id;
  });
  fs.writeFileSync(MAPF, JSON.stringify(map));
  console.error(`chatd prepare: ${map.users} users, ${Object.keys(map.groups).length} groups, ${Object.keys(map.direct).length} direct conversations (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  agent.destroy();
  process.exit(10);
})().catch((e) => { console.error('chatd prepare failed:', e.message || e); process.exit(1); });
