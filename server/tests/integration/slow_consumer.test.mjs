// A slow or stalled client cannot grow server memory without bound: past the per-connection send
// queue cap (4 MiB) the server drops that connection (close 4008, or a TCP close if the client is
// not reading at all) and the client resyncs from history; everyone else is unaffected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/harness.mjs';

const T = { timeout: 60000 };
let srv;
before(async () => { srv = await startServer({ label: 'slow' }); });
after(async () => { await srv?.close(); });

const metric = async (name) => {
  const r = await fetch(`${srv.baseUrl}/metrics`);
  const line = (await r.text()).split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
};

test('a client that stops reading is disconnected; a reading device and history get everything', T, async () => {
  // Goal: bounded send queues. Method: B has two devices; B1 stops reading (its TCP socket is paused),
  // B2 keeps reading. A sends 150 messages of ~90 KB (13 MB) over REST. B1 must be closed by the
  // server within the close deadline, B2 must receive all 150 in order, history has all 150, and the
  // slow-consumer counter grows.
  const A = await srv.registerUser('Fast');
  const B = await srv.registerUser('Slow');
  const B2login = await srv.login(B.username);
  const conv = await srv.directConversation(A.token, B.id);
  const slow = await srv.wsClient(B.token);
  const fine = await srv.wsClient(B2login.token);
  const before = await metric('chatd_ws_slow_consumers_total');
  slow.ws._socket.pause(); // stop reading: the kernel buffers fill, then the server's queue does
  const body = 'x'.repeat(90_000);
  for (let i = 0; i < 150; i++) {
    const r = await srv.api('POST', `/api/v1/conversations/${conv.id}/messages`, {
      token: A.token, body: { client_msg_id: `big-${i}`, body: `${i} ${body}` },
    });
    assert.equal(r.status, 201, `send ${i}: ${JSON.stringify(r.json)}`);
  }
  // B2 read everything, in order.
  const got = [];
  while (got.length < 150) {
    const f = await fine.next((x) => x.type === 'message' && !got.includes(x.message.seq), 10000, `message ${got.length + 1}`);
    got.push(f.message.seq);
  }
  assert.deepEqual(got, [...got].sort((a, b) => a - b));
  // B1 was dropped (4008 if the close frame got through, else a TCP close: 1006).
  slow.ws._socket.resume();
  const closed = await slow.waitClosed(15000);
  assert.ok([4008, 1006].includes(closed.code), `close ${JSON.stringify(closed)}`);
  assert.ok((await metric('chatd_ws_slow_consumers_total')) > before, 'slow consumer counted');
  const hist = await srv.api('GET', `/api/v1/conversations/${conv.id}/messages?limit=100&after=0`, { token: B.token });
  assert.equal(hist.json.messages.length, 100);
  assert.equal(hist.json.has_more, true);
  fine.close();
});
