// Test helpers: a manual clock and an in-memory chatd (WebSocket + fetch), no network.
import type { Timers } from './timers';
import type { WebSocketLike } from './socket';
import type { Conversation, Message } from './types';

export class FakeClock implements Timers {
  t = 1_700_000_000_000;
  private seq = 0;
  private tasks = new Map<number, { at: number; fn: () => void; every?: number }>();
  setTimeout(fn: () => void, ms: number) {
    const id = ++this.seq;
    this.tasks.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown) {
    this.tasks.delete(h as number);
  }
  setInterval(fn: () => void, ms: number) {
    const id = ++this.seq;
    this.tasks.set(id, { at: this.t + ms, fn, every: ms });
    return id;
  }
  clearInterval(h: unknown) {
    this.tasks.delete(h as number);
  }
  now() {
    return this.t;
  }
  /** Pending timeouts (not intervals) in ms from now, sorted. */
  pending(): number[] {
    return [...this.tasks.values()].filter((x) => !x.every).map((x) => x.at - this.t).sort((a, b) => a - b);
  }
  /** Advance time, running due tasks in order, settling promises between them. */
  async advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void; every?: number }] | null = null;
      for (const e of this.tasks) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      const [id, task] = next;
      this.t = task.at;
      if (task.every) task.at += task.every;
      else this.tasks.delete(id);
      task.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

export async function settle(n = 5) {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
}

type Frame = Record<string, any>;

/** A fake client-side socket wired to a FakeChatd. */
export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  sent: Frame[] = [];
  authed = false;
  userId = '';
  constructor(
    readonly server: FakeChatd,
    readonly url: string,
  ) {
    server.sockets.push(this);
    setTimeout(() => {
      if (server.refuse) {
        this.readyState = 3;
        this.onclose?.({ code: 1006, reason: 'refused' });
        return;
      }
      this.readyState = 1;
      this.onopen?.({});
    }, 0);
  }
  send(data: string) {
    const f = JSON.parse(data);
    this.sent.push(f);
    this.server.handle(this, f);
  }
  close(code = 1000, reason = '') {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }
  /** Server side: push a frame to this client. */
  push(f: Frame) {
    if (this.readyState !== 1) return;
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  /** Server side: drop the connection abruptly. */
  kill(code = 1006) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason: 'killed' });
  }
}

/** In-memory chatd: one conversation store, idempotent sends, history, optional v2 sync. */
export class FakeChatd {
  sockets: FakeSocket[] = [];
  refuse = false;
  v2 = true;
  holdAcks = false;
  refreshOk = false;
  duplicateAcks = false;
  heartbeat = 30000;
  me = '1';
  other = '2';
  convs = new Map<string, Conversation>();
  log = new Map<string, Message[]>();
  byClientId = new Map<string, Message>();
  fetches: string[] = [];
  syncs: Frame[] = [];
  private nextId = 1000;

  addConversation(id: string, n = 0): Conversation {
    const c: Conversation = {
      id,
      type: 'direct',
      name: null,
      created_at: 1,
      last_seq: 0,
      members: [
        { user_id: this.me, username: 'me', display_name: null, role: 'member', joined_at: 1 },
        { user_id: this.other, username: 'bob', display_name: 'Bob', role: 'member', joined_at: 1 },
      ],
      last_message: null,
      unread_count: 0,
      read_seq: 0,
      delivered_seq: 0,
    };
    this.convs.set(id, c);
    this.log.set(id, []);
    for (let i = 0; i < n; i++) this.append(id, this.other, `m${i + 1}`);
    return c;
  }

  append(cid: string, sender: string, body: string, client_msg_id: string | null = null, reply_to: string | null = null): Message {
    const l = this.log.get(cid)!;
    const m: Message = {
      id: String(++this.nextId),
      conversation_id: cid,
      seq: l.length + 1,
      sender_id: sender,
      type: 'text',
      body,
      client_msg_id,
      created_at: 1_700_000_000_000 + l.length,
      ref_id: null,
      reply_to,
      data: null,
      edited_at: null,
      deleted: false,
      reactions: [],
    };
    l.push(m);
    const c = this.convs.get(cid)!;
    c.last_seq = m.seq;
    c.last_message = m;
    return m;
  }

  get live(): FakeSocket | undefined {
    return [...this.sockets].reverse().find((s) => s.readyState === 1 && s.authed);
  }

  WebSocket = (() => {
    const server = this;
    return class extends FakeSocket {
      constructor(url: string) {
        super(server, url);
      }
    };
  })();

  handle(s: FakeSocket, f: Frame) {
    if (!s.authed) {
      if (f.type === 'auth' && f.token === 'tok') {
        s.authed = true;
        s.push({ type: 'ready', user_id: this.me, session_id: '1', device_id: '1', heartbeat_interval_ms: this.heartbeat });
      } else {
        s.push({ type: 'error', code: 'unauthorized' });
        s.kill(4001);
      }
      return;
    }
    switch (f.type) {
      case 'ping':
        s.push({ type: 'pong', ts: 1 });
        return;
      case 'send': {
        let m = this.byClientId.get(f.client_msg_id);
        if (!m) {
          const target = f.reply_to == null ? null : this.log.get(f.conversation_id)?.find((x) => x.id === String(f.reply_to) && x.type === 'text');
          if (f.reply_to != null && !target) {
            s.push({ type: 'error', code: 'bad_request', message: 'reply_to', client_msg_id: f.client_msg_id });
            return;
          }
          m = this.append(f.conversation_id, this.me, f.body, f.client_msg_id, target ? target.id : null);
          this.byClientId.set(f.client_msg_id, m);
        }
        if (this.holdAcks) return;
        const ack = { type: 'ack', client_msg_id: f.client_msg_id, conversation_id: m.conversation_id, id: m.id, seq: m.seq, created_at: m.created_at };
        s.push(ack);
        if (this.duplicateAcks) s.push(ack);
        return;
      }
      case 'sync': {
        this.syncs.push(f);
        if (!this.v2) {
          s.push({ type: 'error', code: 'unknown_type', message: 'unknown frame type' });
          return;
        }
        const events: Message[] = [];
        for (const [cid, l] of this.log) {
          const since = f.since[cid] ?? 0;
          for (const m of l) if (m.seq > since) events.push(m);
        }
        const page = events.slice(0, f.limit);
        s.push({ type: 'sync_batch', events: page, has_more: events.length > f.limit, removed: [], request_id: f.request_id });
        return;
      }
      case 'edit': {
        if (!this.v2) return s.push({ type: 'error', code: 'unknown_type', message: 'unknown frame type' });
        const target = [...this.log.values()].flat().find((m) => m.id === f.message_id);
        if (!target) return s.push({ type: 'error', code: 'not_found', request_id: f.request_id });
        if (target.sender_id !== this.me) return s.push({ type: 'error', code: 'forbidden', request_id: f.request_id });
        const ev = this.append(target.conversation_id, this.me, f.body);
        Object.assign(ev, { type: 'edit', ref_id: target.id });
        s.push({ type: 'ok', request_id: f.request_id, message: ev });
        s.push({ type: 'message', message: ev }); // also pushed to every device
        return;
      }
      case 'read':
      case 'delivered':
      case 'typing':
      case 'presence_subscribe':
        if (!this.v2) s.push({ type: 'error', code: 'unknown_type', message: 'unknown frame type' });
        return;
      default:
        s.push({ type: 'error', code: 'unknown_type' });
    }
  }

  fetch = async (url: string, init?: RequestInit): Promise<Response> => {
    const method = init?.method ?? 'GET';
    this.fetches.push(`${method} ${url}`);
    const u = new URL(url, 'http://x');
    const json = (status: number, body: unknown) =>
      new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
    if (method === 'GET' && u.pathname === '/api/v1/conversations') {
      return json(200, { conversations: [...this.convs.values()] });
    }
    const hm = u.pathname.match(/^\/api\/v1\/conversations\/(\d+)\/messages$/);
    if (method === 'GET' && hm) {
      const l = this.log.get(hm[1]) ?? [];
      const limit = Number(u.searchParams.get('limit') ?? 50);
      const after = u.searchParams.get('after');
      const before = u.searchParams.get('before');
      let page: Message[];
      let has_more: boolean;
      if (after !== null) {
        const rest = l.filter((m) => m.seq > Number(after));
        page = rest.slice(0, limit);
        has_more = rest.length > limit;
      } else {
        const rest = before !== null ? l.filter((m) => m.seq < Number(before)) : l;
        page = rest.slice(-limit);
        has_more = rest.length > limit;
      }
      return json(200, { messages: page, has_more });
    }
    if (u.pathname === '/api/v1/auth/refresh') {
      if (!this.refreshOk) return json(401, { error: { code: 'unauthorized', message: 'no' } });
      return json(200, {
        user: { id: this.me, username: 'me', display_name: null, profile_picture: null, bio: null, created_at: 1, last_seen: null },
        session: { session_id: '1', device_id: '1', access_token: 'tok', access_expires_at: 1_800_000_000_000, refresh_token: 'r2', refresh_expires_at: 1_900_000_000_000 },
      });
    }
    if (u.pathname.match(/^\/api\/v1\/conversations\/\d+\/receipts$/)) return json(200, { receipts: [] });
    return json(404, { error: { code: 'not_found', message: 'no route' } });
  };
}
