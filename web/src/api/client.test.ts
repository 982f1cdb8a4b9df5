import { describe, expect, it } from 'vitest';
import { ChatClient } from './client';
import { MemoryCache } from './cache';
import { FakeChatd, FakeClock, settle } from './testkit';
import type { AuthResult } from './types';

const auth: AuthResult = {
  user: { id: '1', username: 'me', display_name: null, profile_picture: null, bio: null, created_at: 1, last_seen: null },
  session: {
    session_id: '1',
    device_id: '1',
    access_token: 'tok',
    access_expires_at: 1_800_000_000_000,
    refresh_token: 'r',
    refresh_expires_at: 1_900_000_000_000,
  },
};

function memStorage() {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  };
}

function setup(opts: { cache?: MemoryCache; random?: () => number } = {}) {
  const server = new FakeChatd();
  const clock = new FakeClock();
  const storage = memStorage();
  storage.setItem('chatd.auth', JSON.stringify(auth));
  const client = new ChatClient({
    wsUrl: 'ws://test/ws',
    fetch: server.fetch as typeof fetch,
    WebSocket: server.WebSocket,
    timers: clock,
    random: opts.random ?? (() => 0.5),
    cache: opts.cache ?? new MemoryCache(),
    storage,
    backoffBaseMs: 100,
    backoffMaxMs: 1000,
    gapDelayMs: 50,
  });
  return { server, clock, client };
}

describe('ChatSocket via ChatClient', () => {
  it('authenticates with the first frame and pings every heartbeat', async () => {
    const { server, clock, client } = setup();
    server.heartbeat = 10000;
    server.addConversation('10');
    await client.start();
    await settle();
    const s = server.live!;
    expect(s.sent[0]).toEqual({ type: 'auth', token: 'tok' });
    expect(client.status).toBe('open');
    const pings = () => s.sent.filter((f) => f.type === 'ping').length;
    expect(pings()).toBe(0);
    await clock.advance(10000);
    expect(pings()).toBe(1);
    await clock.advance(20000);
    expect(pings()).toBeGreaterThanOrEqual(3);
  });

  it('reconnects with exponential backoff and jitter, reset after success', async () => {
    const { server, clock, client } = setup({ random: () => 0.5 });
    server.addConversation('10');
    server.refuse = true;
    await client.start();
    await settle();
    // each refused attempt schedules the next with a growing delay: cap/2 + random*cap/2
    for (let i = 0; i < 5; i++) {
      const d = client.socket.delays[i];
      await clock.advance(d);
      await settle();
    }
    expect(client.socket.delays.slice(0, 5)).toEqual([75, 150, 300, 600, 750]); // base 100, max 1000
    expect(client.status).toBe('waiting');
    server.refuse = false;
    await clock.advance(client.socket.delays[client.socket.delays.length - 1]);
    await settle();
    expect(client.status).toBe('open');
    const before = client.socket.delays.length;
    server.live!.kill();
    await settle();
    expect(client.socket.delays[before]).toBe(75); // backoff reset after a successful connection
  });

  it('jitter stays within [cap/2, cap]', () => {
    const { client } = setup({ random: () => 0.999 });
    expect(client.socket.backoffDelay(0)).toBeLessThanOrEqual(100);
    expect(client.socket.backoffDelay(10)).toBeLessThanOrEqual(1000);
    const { client: c2 } = setup({ random: () => 0 });
    expect(c2.socket.backoffDelay(3)).toBe(400);
  });

  it('stops reconnecting when the token is rejected and refresh fails', async () => {
    const { server, client } = setup();
    client.session = { ...client.session!, access_token: 'bad' };
    server.addConversation('10');
    await client.start();
    await settle(10);
    expect(client.status).toBe('closed');
    expect(client.loggedIn).toBe(false);
  });
});

describe('token refresh', () => {
  it('on close 4001 refreshes the token and reconnects with the new one', async () => {
    const { server, clock, client } = setup();
    server.refreshOk = true;
    client.session = { ...client.session!, access_token: 'expired' };
    server.addConversation('10');
    await client.start();
    await settle(10);
    await clock.advance(200);
    await settle(10);
    expect(client.status).toBe('open');
    expect(server.sockets[0].sent[0]).toEqual({ type: 'auth', token: 'expired' });
    expect(server.live!.sent[0]).toEqual({ type: 'auth', token: 'tok' });
    expect(client.session!.refresh_token).toBe('r2');
  });
});

describe('outbox', () => {
  it('resends unacknowledged messages after reconnect under the same client_msg_id; duplicate acks give one message', async () => {
    const { server, clock, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    server.holdAcks = true;
    const e = client.send('10', 'hello');
    await settle();
    expect(client.pendingFor('10')).toHaveLength(1);
    // connection dies before the ack
    server.live!.kill();
    server.holdAcks = false;
    server.duplicateAcks = true;
    await clock.advance(client.socket.delays[0]);
    await settle();
    const resent = server.sockets.flatMap((s) => s.sent).filter((f) => f.type === 'send');
    expect(resent).toHaveLength(2);
    expect(resent[0].client_msg_id).toBe(e.client_msg_id);
    expect(resent[1].client_msg_id).toBe(e.client_msg_id);
    expect(server.log.get('10')).toHaveLength(1); // stored once
    expect(client.pendingFor('10')).toHaveLength(0);
    const mine = client.visibleMessages('10').filter((m) => m.body === 'hello');
    expect(mine).toHaveLength(1);
    expect(mine[0].seq).toBe(1);
  });

  it('queues while offline and sends once when connected', async () => {
    const { server, clock, client } = setup();
    server.addConversation('10');
    server.refuse = true;
    await client.start();
    await settle();
    client.send('10', 'offline 1');
    client.send('10', 'offline 2');
    expect(client.pendingFor('10').map((e) => e.body)).toEqual(['offline 1', 'offline 2']);
    server.refuse = false;
    await clock.advance(1000);
    await settle();
    expect(server.log.get('10')!.map((m) => m.body)).toEqual(['offline 1', 'offline 2']);
    expect(client.pendingFor('10')).toHaveLength(0);
    expect(client.visibleMessages('10').map((m) => m.body)).toEqual(['offline 1', 'offline 2']);
  });

  it('persists the outbox in the cache and restores it on start', async () => {
    const cache = new MemoryCache();
    const a = setup({ cache });
    a.server.addConversation('10');
    a.server.refuse = true;
    await a.client.start();
    await settle();
    a.client.send('10', 'survives reload');
    await settle();
    a.client.stop();
    expect((await cache.loadOutbox()).map((e) => e.body)).toEqual(['survives reload']);
    const b = setup({ cache });
    b.server.addConversation('10');
    await b.client.start();
    await settle();
    expect(b.server.log.get('10')!.map((m) => m.body)).toEqual(['survives reload']);
    expect(await cache.loadOutbox()).toEqual([]);
  });

  it('puts reply_to in the send frame and the outbox entry, keeps it on resend, and the acked row carries it', async () => {
    const { server, clock, client } = setup();
    server.addConversation('10', 2);
    await client.start();
    await settle();
    await client.open('10');
    await settle();
    const orig = client.visibleMessages('10')[0];
    expect(orig.reply_to).toBeNull();
    server.holdAcks = true;
    const e = client.send('10', 'agreed', { replyTo: orig.id });
    expect(e.reply_to).toBe(orig.id);
    expect(client.outbox.get(e.client_msg_id)!.reply_to).toBe(orig.id);
    await settle();
    expect(server.live!.sent.filter((f) => f.type === 'send')).toEqual([
      { type: 'send', conversation_id: '10', client_msg_id: e.client_msg_id, body: 'agreed', reply_to: orig.id },
    ]);
    // connection dies before the ack: the resend keeps reply_to
    server.live!.kill();
    server.holdAcks = false;
    await clock.advance(client.socket.delays[0]);
    await settle();
    const sends = server.sockets.flatMap((s) => s.sent).filter((f) => f.type === 'send');
    expect(sends).toHaveLength(2);
    expect(sends[1]).toEqual(sends[0]);
    expect(server.log.get('10')!.at(-1)!.reply_to).toBe(orig.id);
    const mine = client.visibleMessages('10').find((m) => m.body === 'agreed')!;
    expect(mine.reply_to).toBe(orig.id);
    expect(client.messageById('10', mine.reply_to!)!.body).toBe('m1');
  });

  it('sends no reply_to for a plain message', async () => {
    const { server, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    const e = client.send('10', 'plain');
    await settle();
    expect(e.reply_to).toBeNull();
    const f = server.live!.sent.find((x) => x.type === 'send')!;
    expect('reply_to' in f).toBe(false);
    expect(client.visibleMessages('10')[0].reply_to).toBeNull();
  });

  it('a restored outbox entry is resent with its reply_to', async () => {
    const cache = new MemoryCache();
    const a = setup({ cache });
    a.server.addConversation('10', 1);
    a.server.refuse = true;
    await a.client.start();
    await settle();
    const origId = a.server.log.get('10')![0].id;
    a.client.send('10', 'later', { replyTo: origId });
    await settle();
    a.client.stop();
    expect((await cache.loadOutbox()).map((e) => e.reply_to)).toEqual([origId]);
    const b = setup({ cache });
    b.server.addConversation('10', 1);
    await b.client.start();
    await settle();
    expect(b.server.live!.sent.find((f) => f.type === 'send')!.reply_to).toBe(origId);
    expect(b.server.log.get('10')!.at(-1)).toMatchObject({ body: 'later', reply_to: origId });
  });

  it('rows without reply_to (older server, old cache) are stored with reply_to null; pushed replies keep it', async () => {
    const { server, client } = setup();
    server.addConversation('10', 1);
    await client.start();
    await settle();
    const base = server.log.get('10')![0];
    const legacy: Record<string, unknown> = { ...base, id: '5001', seq: 2, body: 'old' };
    delete legacy.reply_to;
    server.live!.push({ type: 'message', message: legacy });
    server.live!.push({ type: 'message', message: { ...base, id: '5002', seq: 3, body: 're', reply_to: base.id } });
    await settle();
    expect(client.messageById('10', '5001')!.reply_to).toBeNull();
    expect(client.messageById('10', '5002')!.reply_to).toBe(base.id);
  });

  it('findMessage pages older history until the replied-to message is loaded', async () => {
    const { server, client } = setup();
    server.addConversation('10', 120);
    await client.start();
    await settle();
    await client.open('10');
    await settle();
    const first = server.log.get('10')![0];
    expect(client.messageById('10', first.id)).toBeUndefined();
    const found = await client.findMessage('10', first.id);
    expect(found?.body).toBe('m1');
    expect(await client.findMessage('10', '999999')).toBeUndefined();
  });

  it('refuses a malformed reply_to locally', async () => {
    const { server, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    const e = client.send('10', 'x', { replyTo: 'abc' });
    expect(e.status).toBe('failed');
    expect(e.error).toBe('bad_request');
  });

  it('marks a message failed on a permanent error', async () => {
    const { server, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    server.holdAcks = true;
    const e = client.send('10', 'x');
    server.live!.push({ type: 'error', code: 'message_too_long', client_msg_id: e.client_msg_id });
    await settle();
    expect(client.outbox.get(e.client_msg_id)!.status).toBe('failed');
  });
});

describe('dedupe and gaps', () => {
  it('drops pushed frames it already has (same conversation_id, seq)', async () => {
    const { server, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    const m = server.append('10', '2', 'hi');
    server.live!.push({ type: 'message', message: m });
    server.live!.push({ type: 'message', message: m });
    server.live!.push({ type: 'message', message: { ...m, id: 'other-id-same-seq' } });
    await settle();
    expect(client.visibleMessages('10')).toHaveLength(1);
    expect(client.convs.get('10')!.watermark).toBe(1);
    expect(client.convs.get('10')!.unread).toBe(1);
  });

  it('a seq jump triggers GET history after=watermark', async () => {
    const { server, clock, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    const m1 = server.append('10', '2', 'one');
    server.append('10', '2', 'two'); // never pushed
    const m3 = server.append('10', '2', 'three');
    server.live!.push({ type: 'message', message: m1 });
    server.live!.push({ type: 'message', message: m3 });
    await settle();
    expect(client.convs.get('10')!.watermark).toBe(1);
    server.fetches.length = 0;
    await clock.advance(60);
    await settle();
    expect(server.fetches).toContain('GET /api/v1/conversations/10/messages?after=1&limit=100');
    expect(client.visibleMessages('10').map((m) => m.body)).toEqual(['one', 'two', 'three']);
    expect(client.convs.get('10')!.watermark).toBe(3);
  });

  it('an ack above watermark+1 also triggers a fill', async () => {
    const { server, clock, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    server.append('10', '2', 'missed'); // seq 1, never pushed
    client.send('10', 'mine'); // seq 2
    await settle();
    await clock.advance(60);
    await settle();
    expect(client.visibleMessages('10').map((m) => m.body)).toEqual(['missed', 'mine']);
  });
});

describe('delta sync', () => {
  it('asks for the current watermarks and pages while has_more', async () => {
    const cache = new MemoryCache();
    const a = setup({ cache });
    a.server.addConversation('10', 5);
    a.server.addConversation('20', 2);
    await a.client.start();
    await settle();
    // first start: no cache -> conversations start at their last_seq
    expect(a.server.syncs[0].since).toEqual({ '10': 5, '20': 2 });
    await a.client.flush();
    a.client.stop();

    // meanwhile 3 + 1 new entries arrive
    const b = setup({ cache });
    b.server.addConversation('10', 8);
    b.server.addConversation('20', 3);
    b.server.addConversation('30', 1); // a new conversation
    const origHandle = b.server.handle.bind(b.server);
    // make the server page at 2 events per batch
    b.server.handle = (s, f) => origHandle(s, f.type === 'sync' ? { ...f, limit: 2 } : f);
    await b.client.start();
    await settle(10);
    expect(b.server.syncs[0].since).toEqual({ '10': 5, '20': 2, '30': 1 });
    expect(b.server.syncs[1].since).toEqual({ '10': 7, '20': 2, '30': 1 });
    expect(b.server.syncs).toHaveLength(2); // the second batch had has_more=false
    expect(b.client.watermarks()).toEqual({ '10': 8, '20': 3, '30': 1 });
    expect(b.client.convs.get('10')!.watermark).toBe(8);
    expect(b.client.v2).toBe(true);
  });

  it('falls back to GET history after=watermark when the server answers unknown_type', async () => {
    const cache = new MemoryCache();
    const a = setup({ cache });
    a.server.v2 = false;
    a.server.addConversation('10', 5);
    a.server.addConversation('20', 2);
    await a.client.start();
    await settle();
    await a.client.flush();
    a.client.stop();

    const b = setup({ cache });
    b.server.v2 = false;
    b.server.addConversation('10', 7);
    b.server.addConversation('20', 2);
    await b.client.start();
    await settle(10);
    expect(b.client.v2).toBe(false);
    const hist = b.server.fetches.filter((f) => f.includes('/messages'));
    expect(hist).toEqual(['GET /api/v1/conversations/10/messages?after=5&limit=100']);
    expect(b.client.convs.get('10')!.watermark).toBe(7);
    expect(b.client.visibleMessages('10').map((m) => m.body)).toEqual(['m5', 'm6', 'm7']);
  });
});

describe('v2 folding', () => {
  it('applies edit, delete and reaction events to their target', async () => {
    const { server, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    const t = server.append('10', '2', 'original');
    const s = server.live!;
    s.push({ type: 'message', message: t });
    const ev = (seq: number, type: string, body: string, data: unknown = null) => ({
      ...t,
      id: `e${seq}`,
      seq,
      type,
      body,
      ref_id: t.id,
      data,
      created_at: t.created_at + seq,
    });
    s.push({ type: 'message', message: ev(2, 'edit', 'changed') });
    s.push({ type: 'message', message: ev(3, 'reaction', '👍', { on: true }) });
    await settle();
    let row = client.visibleMessages('10')[0];
    expect(row.body).toBe('changed');
    expect(row.edited_at).toBeTruthy();
    expect(row.reactions).toEqual([{ emoji: '👍', user_ids: ['2'] }]);
    s.push({ type: 'message', message: ev(4, 'reaction', '👍', { on: false }) });
    s.push({ type: 'message', message: ev(5, 'delete', '') });
    await settle();
    row = client.visibleMessages('10')[0];
    expect(row.deleted).toBe(true);
    expect(row.body).toBe('');
    expect(row.reactions).toEqual([]);
    expect(client.convs.get('10')!.watermark).toBe(5);
  });

  it('edit over WebSocket resolves on ok; the echoed push is deduped; a non-author edit rejects with forbidden', async () => {
    const { server, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    client.send('10', 'typo');
    const theirs = server.append('10', '2', 'not mine');
    server.live!.push({ type: 'message', message: theirs });
    await settle();
    const mine = client.visibleMessages('10').find((m) => m.body === 'typo')!;
    await client.edit(mine.id, 'fixed');
    await settle();
    expect(client.visibleMessages('10').map((m) => m.body)).toEqual(['fixed', 'not mine']);
    expect(client.convs.get('10')!.watermark).toBe(3);
    await expect(client.edit(theirs.id, 'hack')).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('tracks receipts for ticks', async () => {
    const { server, client } = setup();
    server.addConversation('10');
    await client.start();
    await settle();
    client.send('10', 'hi');
    await settle();
    expect(client.tick('10', 1)).toBe('sent');
    server.live!.push({ type: 'receipt', conversation_id: '10', user_id: '2', delivered_seq: 1, read_seq: 0 });
    await settle();
    expect(client.tick('10', 1)).toBe('delivered');
    server.live!.push({ type: 'receipt', conversation_id: '10', user_id: '2', read_seq: 1 });
    await settle();
    expect(client.tick('10', 1)).toBe('read');
    expect(client.readBy('10', 1)).toEqual(['2']);
  });
});
