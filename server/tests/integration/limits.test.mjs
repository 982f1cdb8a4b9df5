// Input limits and malformed input: body length in code points, invalid UTF-8, bad JSON, unknown frame types,
// oversized frames/bodies. The server must answer with the documented codes and keep serving. Contract: docs/protocol.md and docs/openapi.yaml.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { startServer, assertError, withTimeout } from './lib/harness.mjs';

const T = { timeout: 45000 };
const MAX = 100000;

let srv, A, B, conv, wa, wb;
before(async () => {
  srv = await startServer({ label: 'limits' });
  A = await srv.registerUser('Lim');
  B = await srv.registerUser('Its');
  conv = await srv.directConversation(A.token, B.id);
  wa = await srv.wsClient(A.token);
  wb = await srv.wsClient(B.token);
});
after(async () => { await srv?.close(); });

const msgsUrl = () => `/api/v1/conversations/${conv.id}/messages`;

async function lastSeq() {
  const r = await srv.api('GET', `/api/v1/conversations/${conv.id}`, { token: A.token });
  assert.equal(r.status, 200, r.text);
  return r.json.last_seq;
}

async function messageAt(seq) {
  const r = await srv.api('GET', `${msgsUrl()}?after=${seq - 1}&limit=1`, { token: B.token });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.messages.length, 1, `message with seq ${seq} exists`);
  assert.equal(r.json.messages[0].seq, seq);
  return r.json.messages[0];
}

async function historyHas(cmid) {
  const r = await srv.api('GET', `${msgsUrl()}?limit=100`, { token: A.token });
  return r.json.messages.some((m) => m.client_msg_id === cmid);
}

/** Waits for the ack or error answering client_msg_id on ws. */
const answer = (ws, cmid) => ws.next((f) => (f.type === 'ack' || f.type === 'error') && f.client_msg_id === cmid, 10000, `answer to ${cmid}`);

test('body of exactly 100000 code points (multi-byte) accepted over WS and REST, stored intact', T, async () => {
  // Goal: the limit counts Unicode code points, not bytes or UTF-16 units. Method: 100000 x '€' (3 bytes) over WS
  // and 100000 x an emoji (4 bytes, 2 UTF-16 units) over REST; read both back from history and compare.
  const euro = '€'.repeat(MAX);
  wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'max-ws', body: euro });
  const ack = await answer(wa, 'max-ws');
  assert.equal(ack.type, 'ack', `100000 x € over WS: ${JSON.stringify(ack).slice(0, 300)}`);
  const got = await messageAt(ack.seq);
  assert.equal(got.id, ack.id);
  assert.equal(got.body.length, MAX);
  assert.ok(got.body === euro, 'body round-trips intact');
  const delivered = await wb.next((f) => f.type === 'message' && f.message.client_msg_id === 'max-ws', 10000);
  assert.ok(delivered.message.body === euro, 'delivered body intact');

  const emoji = '😀'.repeat(MAX);
  assert.equal([...emoji].length, MAX);
  const r = await srv.api('POST', msgsUrl(), { token: A.token, body: { client_msg_id: 'max-rest', body: emoji } });
  assert.equal(r.status, 201, `100000 x emoji over REST: ${r.text.slice(0, 300)}`);
  assert.ok(r.json.body === emoji);
  const got2 = await messageAt(r.json.seq);
  assert.equal(got2.id, r.json.id);
  assert.ok(got2.body === emoji, 'emoji body round-trips intact');
});

test('body of 100001 code points -> message_too_long (WS error with client_msg_id, REST 400), nothing stored', T, async () => {
  // Goal: one code point over the limit is refused on both paths. Method: send 100001 x '€' / emoji, check the
  // error and that last_seq did not move and no such client_msg_id is in history.
  const before = await lastSeq();
  wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'over-ws', body: '€'.repeat(MAX + 1) });
  const e = await answer(wa, 'over-ws');
  assert.equal(e.type, 'error', JSON.stringify(e).slice(0, 300));
  assert.equal(e.code, 'message_too_long');
  assert.equal(e.client_msg_id, 'over-ws');

  const r = await srv.api('POST', msgsUrl(), { token: A.token, body: { client_msg_id: 'over-rest', body: '😀'.repeat(MAX + 1) } });
  assertError(r, 400, 'message_too_long', 'REST 100001 emoji');
  const r2 = await srv.api('POST', msgsUrl(), { token: A.token, body: { client_msg_id: 'over-rest-ascii', body: 'a'.repeat(MAX + 1) } });
  assertError(r2, 400, 'message_too_long', 'REST 100001 ASCII');

  assert.equal(await lastSeq(), before, 'nothing stored');
  assert.equal(await historyHas('over-ws'), false);
  assert.equal(await historyHas('over-rest'), false);
  await wa.roundTrip();
});

test('invalid UTF-8 in a WS text frame -> close 1007 (RFC 6455 8.1); nothing stored; server serves on', T, async () => {
  // Goal: RFC 6455 requires failing the connection on invalid UTF-8 in a text frame (close 1007); the
  // server must store nothing and keep serving everyone else. Method: a raw text frame whose JSON string
  // contains 0xC3 0x28, sent with binary:false on a dedicated socket; then a second socket sends normally.
  const ws = await srv.wsClient(A.token);
  const before = await lastSeq();
  const frame = Buffer.concat([
    Buffer.from(`{"type":"send","conversation_id":"${conv.id}","client_msg_id":"bad-utf8-ws","body":"ab`),
    Buffer.from([0xc3, 0x28]),
    Buffer.from('cd"}'),
  ]);
  await ws.sendRaw(frame, { binary: false });
  const closed = await ws.waitClosed(5000);
  assert.equal(closed.code, 1007, `close code ${JSON.stringify(closed)}`);
  assert.equal(await lastSeq(), before, 'nothing stored');
  assert.equal(await historyHas('bad-utf8-ws'), false);
  // A lone surrogate escape is valid JSON text but not a valid body: an error frame, the socket lives.
  const ws2 = await srv.wsClient(A.token);
  ws2.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'lone-surrogate', body: 'a\ud800b' });
  const e = await ws2.next((f) => f.type === 'error' || f.type === 'ack', 5000, 'answer to a lone surrogate');
  assert.equal(e.type, 'error', JSON.stringify(e));
  assert.ok(['invalid_utf8', 'bad_json'].includes(e.code), JSON.stringify(e));
  ws2.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'after-bad-utf8', body: 'still here' });
  const ack = await ws2.next((f) => f.type === 'ack', 5000, 'ack after the bad frames');
  assert.equal(ack.client_msg_id, 'after-bad-utf8');
  ws2.close();
});

test('invalid UTF-8 in a REST body -> 400 invalid_utf8; nothing stored', T, async () => {
  // Goal: REST checks raw bytes too. Method: POST a JSON body with 0xC3 0x28 inside the body string.
  const before = await lastSeq();
  const raw = Buffer.concat([
    Buffer.from('{"client_msg_id":"bad-utf8-rest","body":"ab'),
    Buffer.from([0xc3, 0x28]),
    Buffer.from('cd"}'),
  ]);
  const r = await srv.api('POST', msgsUrl(), { token: A.token, rawBody: raw });
  assertError(r, 400, 'invalid_utf8', 'REST body with invalid UTF-8');
  // a lone continuation byte and an overlong encoding
  for (const bytes of [[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
    const raw2 = Buffer.concat([Buffer.from('{"client_msg_id":"bad-utf8-rest2","body":"x'), Buffer.from(bytes), Buffer.from('"}')]);
    const r2 = await srv.api('POST', msgsUrl(), { token: A.token, rawBody: raw2 });
    assertError(r2, 400, 'invalid_utf8', `REST body with bytes ${bytes.map((b) => b.toString(16)).join(' ')}`);
  }
  assert.equal(await lastSeq(), before);
});

test('malformed JSON / unknown type / binary frame -> error frames, connection keeps working', T, async () => {
  // Goal: protocol errors are not fatal. Method: on one socket send bad JSON, a non-object, an unknown type and a binary
  // frame; each gets the documented error; then ping -> pong and send -> ack on the same socket.
  const ws = await srv.wsClient(A.token);
  await ws.sendRaw('{"type":"send", this is not json');
  const e1 = await ws.next((f) => f.type === 'error');
  assert.equal(e1.code, 'bad_json', JSON.stringify(e1));
  assert.ok(ws.isOpen);

  await ws.sendRaw('{"type":"teleport","where":"mars"}');
  const e2 = await ws.next((f) => f.type === 'error');
  assert.equal(e2.code, 'unknown_type', JSON.stringify(e2));

  await ws.sendRaw('{"no_type":true}');
  const e3 = await ws.next((f) => f.type === 'error');
  assert.ok(['bad_request', 'unknown_type'].includes(e3.code), `frame without type: ${JSON.stringify(e3)}`);

  await ws.sendRaw(Buffer.from([1, 2, 3, 4]), { binary: true });
  const e4 = await ws.next((f) => f.type === 'error');
  assert.equal(e4.code, 'bad_request', `binary frame: ${JSON.stringify(e4)}`);

  const pong = await ws.roundTrip();
  assert.equal(typeof pong.ts, 'number');
  ws.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'after-errors', body: 'still alive' });
  const ack = await answer(ws, 'after-errors');
  assert.equal(ack.type, 'ack', JSON.stringify(ack));
  assert.equal(ws.closeInfo, null);
  ws.terminate();
});

test('REST malformed JSON -> 400 bad_request; wrong types / missing fields -> 400 bad_request', T, async () => {
  // Goal: REST input errors use the documented codes. Method: broken JSON, wrong field types, missing fields.
  const before = await lastSeq();
  assertError(await srv.api('POST', msgsUrl(), { token: A.token, rawBody: '{"client_msg_id":"x", "body":' }), 400, 'bad_request', 'truncated JSON');
  assertError(await srv.api('POST', msgsUrl(), { token: A.token, rawBody: 'not json at all' }), 400, 'bad_request', 'not JSON');
  assertError(await srv.api('POST', msgsUrl(), { token: A.token, body: { client_msg_id: 'types', body: 42 } }), 400, 'bad_request', 'body is a number');
  assertError(await srv.api('POST', msgsUrl(), { token: A.token, body: { body: 'no id' } }), 400, 'bad_request', 'missing client_msg_id');
  assertError(await srv.api('POST', '/api/v1/auth/login', { rawBody: '{"login":' }), 400, 'bad_request', 'login with broken JSON');

  assert.equal(await lastSeq(), before, 'nothing stored');
});

test('REST body > 1 MiB -> 413 payload_too_large, nothing stored', T, async () => {
  // Goal: the HTTP body limit. Method: (1) raw socket: request head announcing Content-Length 1 MiB + 200 and the
  // first bytes of the body; the server must answer 413 payload_too_large (deterministic, the client is not still
  // writing when it reads). (2) fetch with the full body: 413, or a reset if the server closes while the client is
  // still uploading (reported as a note); either way nothing is stored and the server keeps serving.
  const before = await lastSeq();
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.on('error', () => {});
  try {
    await withTimeout(new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); }), 5000, 'tcp connect');
    let buf = '';
    const done = new Promise((resolve) => {
      sock.on('data', (d) => { buf += d.toString('latin1'); if (/\r\n\r\n[\s\S]*\}\}/.test(buf)) resolve(); });
      sock.on('close', resolve);
    });
    sock.write(`POST ${msgsUrl()} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nAuthorization: Bearer ${A.token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${1024 * 1024 + 200}\r\n\r\n{"client_msg_id":"huge-raw","body":"aaaa`);
    await withTimeout(done, 5000, '413 response');
    assert.match(buf, /^HTTP\/1\.1 413 /, `status line: ${buf.slice(0, 80)}`);
    const body = JSON.parse(buf.slice(buf.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error?.code, 'payload_too_large');
  } finally {
    sock.destroy();
  }

  const big = JSON.stringify({ client_msg_id: 'huge', body: 'a'.repeat(1024 * 1024 + 100) });
  try {
    const r = await srv.api('POST', msgsUrl(), { token: A.token, rawBody: big });
    assertError(r, 413, 'payload_too_large', 'body > 1 MiB');
  } catch (err) {
    if (!/EPIPE|ECONNRESET|UND_ERR_SOCKET|other side closed/.test(err.message)) throw err;
    console.log(`# note: POST of a body > 1 MiB with fetch: ${err.message} (connection reset while uploading instead of a readable 413)`);
  }
  assert.equal(await lastSeq(), before, 'nothing stored');
  const h = await srv.api('GET', '/healthz');
  assert.equal(h.status, 200);
});

test('a WS frame larger than 1 MiB closes that connection with 1009; others keep working; /healthz 200', T, async () => {
  // Goal: the frame size limit is enforced per connection without harming the server. Method: send a 1 MiB + 1 KiB
  // text frame on a dedicated socket, expect close 1009; then wa/wb still exchange a message and /healthz is 200.
  const victim = await srv.wsClient(A.token);
  const big = JSON.stringify({ type: 'send', conversation_id: conv.id, client_msg_id: 'too-big', body: 'a'.repeat(1024 * 1024 + 1024) });
  victim.sendRaw(big).catch(() => {});
  const closed = await victim.waitClosed(10000);
  // The server answers with close 1009 (pinned down by the raw-socket test below). Whether a client that is still
  // writing the rest of its 1 MiB frame gets to read that close frame depends on the server draining the socket
  // instead of resetting it; if it resets, the client sees 1006. Accept both here, report 1006.
  assert.ok([1009, 1006].includes(closed.code), `close code for an oversized frame (got ${closed.code} ${closed.reason})`);
  if (closed.code === 1006) console.log('# note: oversized frame: client saw 1006 (connection reset before the 1009 close frame could be read)');
  assert.equal(await historyHas('too-big'), false);

  wa.send({ type: 'send', conversation_id: conv.id, client_msg_id: 'after-big', body: 'still here' });
  const ack = await answer(wa, 'after-big');
  assert.equal(ack.type, 'ack');
  await wb.next((f) => f.type === 'message' && f.message.client_msg_id === 'after-big');

  const fresh = await srv.wsClient(B.token);
  await fresh.roundTrip();
  fresh.terminate();

  const h = await srv.api('GET', '/healthz');
  assert.equal(h.status, 200);
  assert.deepEqual(h.json, { status: 'ok' });
});

test('raw socket: the header of a > 1 MiB frame is answered with a close frame 1009', T, async () => {
  // Goal: pin down the server side of the 1 MiB frame limit independently of how a client library copes with a
  // connection closed while it is still writing. Method: hand-made upgrade (Bearer header auth), then only the
  // 14-byte header of a masked 1 MiB + 1 KiB text frame plus a little payload; the server must send a close frame
  // (opcode 0x8) whose status code is 1009.
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.on('error', () => {});
  try {
    await withTimeout(new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); }), 5000, 'tcp connect');
    let buf = Buffer.alloc(0);
    let wake = () => {};
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); wake(); });
    sock.on('close', () => wake());
    const waitFor = (pred, what) => withTimeout(new Promise((resolve) => {
      const check = () => { if (pred()) resolve(); };
      wake = check;
      check();
    }), 5000, what);
    const key = crypto.randomBytes(16).toString('base64');
    sock.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${A.token}\r\n\r\n`);
    await waitFor(() => buf.includes('\r\n\r\n'), '101 response');
    const headEnd = buf.indexOf('\r\n\r\n') + 4;
    assert.match(buf.subarray(0, headEnd).toString('latin1'), /^HTTP\/1\.1 101/);
    // skip whole frames the server sends first (e.g. ready) until a close frame shows up
    const len = 1024 * 1024 + 1024;
    const hdr = Buffer.alloc(14);
    hdr[0] = 0x81; // FIN + text
    hdr[1] = 0x80 | 127; // masked, 64-bit length
    hdr.writeBigUInt64BE(BigInt(len), 2);
    crypto.randomBytes(4).copy(hdr, 10);
    sock.write(Buffer.concat([hdr, Buffer.alloc(1024, 0x61)]));
    const findClose = () => {
      let off = headEnd;
      while (off + 2 <= buf.length) {
        const op = buf[off] & 0x0f;
        let plen = buf[off + 1] & 0x7f;
        let h = 2;
        if (plen === 126) { if (off + 4 > buf.length) return null; plen = buf.readUInt16BE(off + 2); h = 4; }
        else if (plen === 127) { if (off + 10 > buf.length) return null; plen = Number(buf.readBigUInt64BE(off + 2)); h = 10; }
        if (off + h + plen > buf.length) return null;
        if (op === 0x8) return plen >= 2 ? buf.readUInt16BE(off + h) : -1;
        off += h + plen;
      }
      return null;
    };
    await waitFor(() => findClose() !== null || sock.destroyed, 'close frame');
    assert.equal(findClose(), 1009, `close frame status (bytes after 101: ${buf.subarray(headEnd).length})`);
  } finally {
    sock.destroy();
  }
});
