import { ApiError, RestClient, type FetchLike, type Device } from './rest';
import { ChatSocket, type SocketState, type WebSocketCtor } from './socket';
import { MemoryCache, type Cache, type OutboxEntry } from './cache';
import { randomId, realTimers, type Timers } from './timers';
import { validateSend } from './validate';
import {
  PERMANENT_SEND_ERRORS,
  type AckFrame,
  type AuthResult,
  type Conversation,
  type ErrorFrame,
  type Id,
  type Message,
  type OkFrame,
  type ReceiptFrame,
  type ServerFrame,
  type Session,
  type SyncBatchFrame,
  type User,
} from './types';

export interface StorageLike {
  getItem(k: string): string | null;
  setItem(k: string, v: string): void;
  removeItem(k: string): void;
}

export interface ClientOptions {
  baseUrl?: string;
  wsUrl: string;
  fetch?: FetchLike;
  WebSocket?: WebSocketCtor;
  timers?: Timers;
  random?: () => number;
  cache?: Cache;
  storage?: StorageLike | null;
  device?: Device;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Wait this long before filling a seq gap (a late frame may still close it). */
  gapDelayMs?: number;
  syncLimit?: number;
}

export interface Receipt {
  read_seq: number;
  delivered_seq: number;
}

export interface ConvState {
  conv: Conversation;
  msgs: Map<number, Message>;
  byId: Map<Id, Message>;
  /** Highest seq up to which we have every entry (from the oldest loaded one). */
  watermark: number;
  /** Lowest seq loaded (Infinity when none). */
  oldest: number;
  hasOlder: boolean;
  loadedLatest: boolean;
  typing: Map<Id, number>;
  receipts: Map<Id, Receipt>;
  unread: number;
}

export type PresenceInfo = { status: 'online' | 'offline'; last_seen: number | null };

export type ConnectionStatus = SocketState | 'offline';

const AUTH_KEY = 'chatd.auth';
export const DISPLAY_EVENT_TYPES = new Set([
  'created',
  'member_added',
  'member_removed',
  'member_left',
  'member_joined',
  'renamed',
  'role_changed',
]);

/** Everything the app needs: REST + WebSocket + local state + cache. Usable without React. */
export class ChatClient {
  readonly rest: RestClient;
  readonly socket: ChatSocket;
  private readonly timers: Timers;
  private readonly cache: Cache;
  private readonly storage: StorageLike | null;
  private readonly gapDelay: number;
  private readonly syncLimit: number;

  me: User | null = null;
  session: Session | null = null;
  convs = new Map<Id, ConvState>();
  outbox = new Map<string, OutboxEntry>();
  presence = new Map<Id, PresenceInfo>();
  /** v2 protocol support: null until known. */
  v2: boolean | null = null;
  status: ConnectionStatus = 'idle';
  lastError: string | null = null;
  activeId: Id | null = null;
  visible = true;

  version = 0;
  private listeners = new Set<() => void>();
  private incomingListeners = new Set<(m: Message) => void>();
  private authListeners = new Set<(u: User | null) => void>();
  private emitScheduled = false;
  private gapTimers = new Map<Id, unknown>();
  private filling = new Map<Id, Promise<void>>();
  private syncRequestId: string | null = null;
  private requests = new Map<string, { resolve: (f: OkFrame) => void; reject: (e: Error) => void; timer: unknown }>();
  private lastTypingSent = new Map<Id, number>();
  private deliveredTimer: unknown = null;
  private deliveredPending = new Map<Id, number>();
  private presenceKey = '';
  private persistTimer: unknown = null;
  private dirtyMsgs: Message[] = [];
  private dirtyConvs = new Set<Id>();
  private started = false;

  constructor(private readonly opts: ClientOptions) {
    this.timers = opts.timers ?? realTimers;
    this.cache = opts.cache ?? new MemoryCache();
    this.storage = opts.storage === undefined ? (globalThis.localStorage ?? null) : opts.storage;
    this.gapDelay = opts.gapDelayMs ?? 300;
    this.syncLimit = opts.syncLimit ?? 500;
    this.rest = new RestClient({
      baseUrl: opts.baseUrl,
      fetch: opts.fetch,
      getSession: () => this.session,
      setSession: (r) => this.setAuth(r),
    });
    this.socket = new ChatSocket(
      {
        url: opts.wsUrl,
        WebSocket: opts.WebSocket,
        timers: this.timers,
        random: opts.random,
        backoffBaseMs: opts.backoffBaseMs,
        backoffMaxMs: opts.backoffMaxMs,
        getToken: () => this.freshToken(),
      },
      {
        onReady: () => void this.onReady(),
        onFrame: (f) => this.onFrame(f),
        onState: (s) => {
          this.status = s;
          this.emit();
        },
        onUnauthorized: () => this.rest.refresh(),
      },
    );
    const saved = this.storage?.getItem(AUTH_KEY);
    if (saved) {
      try {
        const r = JSON.parse(saved) as AuthResult;
        this.me = r.user;
        this.session = r.session;
      } catch {
        /* ignore */
      }
    }
  }

  // ------------------------------------------------------------------ subscriptions
  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };
  getVersion = (): number => this.version;
  onIncoming(fn: (m: Message) => void): () => void {
    this.incomingListeners.add(fn);
    return () => this.incomingListeners.delete(fn);
  }
  onAuth(fn: (u: User | null) => void): () => void {
    this.authListeners.add(fn);
    return () => this.authListeners.delete(fn);
  }
  private emit() {
    if (this.emitScheduled) return;
    this.emitScheduled = true;
    queueMicrotask(() => {
      this.emitScheduled = false;
      this.version++;
      for (const l of [...this.listeners]) l();
    });
  }

  // ------------------------------------------------------------------ auth
  private setAuth(r: AuthResult | null) {
    const had = !!this.session;
    if (r) {
      this.me = r.user;
      this.session = r.session;
      this.storage?.setItem(AUTH_KEY, JSON.stringify(r));
    } else {
      this.me = null;
      this.session = null;
      this.storage?.removeItem(AUTH_KEY);
      if (had) {
        this.stopInternal();
        void this.cache.clear();
        for (const l of this.authListeners) l(null);
      }
    }
    this.emit();
  }

  private async freshToken(): Promise<string | null> {
    const s = this.session;
    if (!s) return null;
    if (s.access_expires_at && s.access_expires_at - this.timers.now() < 60_000) {
      if (!(await this.rest.refresh())) return null;
    }
    return this.session?.access_token ?? null;
  }

  get loggedIn(): boolean {
    return !!this.session && !!this.me;
  }

  async register(p: { username: string; email: string; password: string; display_name?: string }): Promise<User> {
    await this.resetLocal();
    const r = await this.rest.register({ ...p, device: this.opts.device });
    for (const l of this.authListeners) l(r.user);
    return r.user;
  }
  async login(login: string, password: string): Promise<User> {
    await this.resetLocal();
    const r = await this.rest.login(login, password, this.opts.device);
    for (const l of this.authListeners) l(r.user);
    return r.user;
  }
  async logout(): Promise<void> {
    this.stopInternal();
    try {
      await this.rest.logout();
    } catch {
      /* token may be dead already */
    }
    await this.resetLocal();
    this.emit();
  }
  private async resetLocal() {
    this.stopInternal();
    this.convs.clear();
    this.outbox.clear();
    this.presence.clear();
    this.v2 = null;
    this.activeId = null;
    await this.cache.clear().catch(() => undefined);
  }

  async updateProfile(p: { display_name?: string; bio?: string; profile_picture?: string }): Promise<User> {
    if (!this.me || !this.session) throw new Error('not logged in');
    const u = await this.rest.updateProfile(this.me.id, p);
    this.me = { ...this.me, ...u };
    this.storage?.setItem(AUTH_KEY, JSON.stringify({ user: this.me, session: this.session }));
    this.emit();
    return this.me;
  }

  // ------------------------------------------------------------------ lifecycle
  /** Loads the cache (instant UI), then connects. */
  async start(): Promise<void> {
    if (this.started || !this.session) return;
    this.started = true;
    try {
      const [cs, ob] = await Promise.all([this.cache.loadConversations(), this.cache.loadOutbox()]);
      for (const c of cs) this.upsertConv(c, true);
      for (const e of ob) this.outbox.set(e.client_msg_id, e);
      await Promise.all(
        [...this.convs.keys()].map(async (id) => {
          const ms = await this.cache.loadMessages(id, 200);
          const st = this.convs.get(id);
          if (!st) return;
          for (const m of ms) this.store(st, m);
          st.watermark = Math.max(st.watermark, this.contiguousTop(st, ms.length ? ms[0].seq : st.watermark));
          if (ms.length) st.oldest = Math.min(st.oldest, ms[0].seq);
        }),
      );
    } catch {
      /* cache is best effort */
    }
    this.emit();
    this.socket.start();
    void this.refreshConversations().catch(() => undefined);
  }

  stop(): void {
    this.stopInternal();
  }
  private stopInternal() {
    this.started = false;
    this.socket.stop();
    for (const t of this.gapTimers.values()) this.timers.clearTimeout(t);
    this.gapTimers.clear();
    for (const r of this.requests.values()) {
      this.timers.clearTimeout(r.timer);
      r.reject(new Error('stopped'));
    }
    this.requests.clear();
  }

  /** Browser came back online / page visible: reconnect immediately. */
  kick(): void {
    this.socket.kick();
  }

  // ------------------------------------------------------------------ conversations
  private newState(c: Conversation): ConvState {
    return {
      conv: c,
      msgs: new Map(),
      byId: new Map(),
      watermark: c.last_seq ?? 0,
      oldest: Infinity,
      hasOlder: (c.last_seq ?? 0) > 0,
      loadedLatest: false,
      typing: new Map(),
      receipts: new Map(),
      unread: c.unread_count ?? 0,
    };
  }

  private upsertConv(c: Conversation, fromCache = false): ConvState {
    let st = this.convs.get(c.id);
    if (!st) {
      st = this.newState(c);
      if (fromCache) {
        st.watermark = (c as Conversation & { _watermark?: number })._watermark ?? c.last_seq ?? 0;
        st.unread = c.unread_count ?? 0;
      }
      this.convs.set(c.id, st);
      if (c.last_message) this.store(st, c.last_message);
    } else {
      const lastSeq = Math.max(st.conv.last_seq, c.last_seq ?? 0);
      const lm =
        st.conv.last_message && (!c.last_message || st.conv.last_message.seq > c.last_message.seq)
          ? st.conv.last_message
          : c.last_message;
      st.conv = { ...c, last_seq: lastSeq, last_message: lm };
      if (!fromCache) st.unread = c.unread_count ?? st.unread;
      if (c.last_message && !st.msgs.has(c.last_message.seq) && c.last_message.seq <= st.watermark)
        this.store(st, c.last_message);
    }
    for (const m of c.members ?? []) {
      if (m.read_seq !== undefined || m.delivered_seq !== undefined) {
        const old = st.receipts.get(m.user_id) ?? { read_seq: 0, delivered_seq: 0 };
        st.receipts.set(m.user_id, {
          read_seq: Math.max(old.read_seq, m.read_seq ?? 0),
          delivered_seq: Math.max(old.delivered_seq, m.delivered_seq ?? 0, m.read_seq ?? 0),
        });
      }
    }
    if (!fromCache) this.markConvDirty(c.id);
    return st;
  }

  /** GET /conversations; new ones start at their last_seq (older history is paged on demand). */
  async refreshConversations(): Promise<void> {
    const list = await this.rest.conversations();
    const seen = new Set<Id>();
    for (const c of list) {
      seen.add(c.id);
      this.upsertConv(c);
    }
    for (const id of [...this.convs.keys()]) {
      if (!seen.has(id)) this.removeConv(id);
    }
    this.resubscribePresence();
    this.emit();
  }

  private removeConv(id: Id) {
    this.convs.delete(id);
    void this.cache.deleteConversation(id).catch(() => undefined);
    if (this.activeId === id) this.activeId = null;
    this.emit();
  }

  /** Conversations, most recent activity first. */
  conversationList(): ConvState[] {
    const t = (s: ConvState) => s.conv.last_message?.created_at ?? s.conv.created_at ?? 0;
    return [...this.convs.values()].sort((a, b) => t(b) - t(a));
  }

  conversationTitle(c: Conversation): string {
    if (c.type === 'group') return c.name || 'Group';
    const other = c.members?.find((m) => m.user_id !== this.me?.id);
    if (!other) return 'Notes to self';
    return other.display_name || other.username;
  }

  otherMember(c: Conversation) {
    return c.members?.find((m) => m.user_id !== this.me?.id) ?? null;
  }

  memberName(cid: Id, uid: Id): string {
    if (uid === this.me?.id) return 'You';
    const m = this.convs.get(cid)?.conv.members.find((x) => x.user_id === uid);
    return m ? m.display_name || m.username : `user ${uid}`;
  }

  async startDirect(userId: Id): Promise<Id> {
    const c = await this.rest.createDirect(userId);
    this.upsertConv(c);
    this.resubscribePresence();
    this.emit();
    return c.id;
  }

  async createGroup(name: string, memberIds: Id[]): Promise<Id> {
    const c = await this.rest.createGroup(name, memberIds);
    this.upsertConv(c);
    this.resubscribePresence();
    this.emit();
    return c.id;
  }

  async joinByInvite(cid: Id, code: string): Promise<Id> {
    const c = await this.rest.join(cid, code);
    this.upsertConv(c);
    this.emit();
    return c.id;
  }

  /** Run a group-management call, then reload that conversation. */
  async manage<T>(cid: Id, fn: (r: RestClient) => Promise<T>): Promise<T> {
    const r = await fn(this.rest);
    try {
      const c = await this.rest.conversation(cid);
      this.upsertConv(c);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) this.removeConv(cid);
    }
    this.emit();
    return r;
  }

  async leave(cid: Id): Promise<void> {
    await this.rest.leave(cid);
    this.removeConv(cid);
  }

  // ------------------------------------------------------------------ messages
  /** Stores a row and folds v2 events onto their targets. Returns false if (conversation, seq) was known. */
  private store(st: ConvState, m: Message, replace = false): boolean {
    const had = st.msgs.get(m.seq);
    if (had && !replace) return false;
    if (m.reply_to === undefined) m = { ...m, reply_to: null }; // older server or cache row
    if (had && replace && had.type === 'text' && m.type === 'text') {
      // keep locally folded state if it is newer than the fetched row
      m = { ...m };
    }
    st.msgs.set(m.seq, m);
    st.byId.set(m.id, m);
    if (m.type === 'edit' || m.type === 'delete' || m.type === 'reaction') this.fold(st, m);
    if (m.type === 'renamed' && m.body) st.conv = { ...st.conv, name: m.body };
    this.dirtyMsgs.push(m);
    this.persistSoon();
    return true;
  }

  private fold(st: ConvState, ev: Message) {
    if (!ev.ref_id) return;
    const t = st.byId.get(ev.ref_id);
    if (!t) return;
    let n: Message;
    if (ev.type === 'edit') {
      if (t.edited_at && t.edited_at > ev.created_at) return;
      n = { ...t, body: ev.body, edited_at: ev.created_at };
    } else if (ev.type === 'delete') {
      n = { ...t, body: '', deleted: true };
    } else {
      const on = (ev.data as { on?: boolean } | null)?.on !== false;
      const reactions = (t.reactions ?? []).map((r) => ({ ...r, user_ids: [...r.user_ids] }));
      let r = reactions.find((x) => x.emoji === ev.body);
      if (!r) {
        r = { emoji: ev.body, user_ids: [] };
        reactions.push(r);
      }
      const has = r.user_ids.includes(ev.sender_id);
      if (on && !has) r.user_ids.push(ev.sender_id);
      if (!on && has) r.user_ids = r.user_ids.filter((u) => u !== ev.sender_id);
      n = { ...t, reactions: reactions.filter((x) => x.user_ids.length > 0) };
    }
    st.msgs.set(n.seq, n);
    st.byId.set(n.id, n);
    this.dirtyMsgs.push(n);
    if (st.conv.last_message?.id === n.id) st.conv = { ...st.conv, last_message: n };
  }

  private contiguousTop(st: ConvState, from: number): number {
    let w = from;
    while (st.msgs.has(w + 1)) w++;
    return w;
  }

  /**
   * Ingest one row. source: 'push' (live frame), 'sync', 'ack' (our own send) or 'fetch' (history).
   * Pushed rows are deduped by (conversation_id, seq); a seq above watermark+1 schedules a gap fill.
   */
  ingest(m: Message, source: 'push' | 'sync' | 'ack' | 'fetch'): boolean {
    let st = this.convs.get(m.conversation_id);
    if (!st) {
      // a conversation we do not know yet (added to a group, new direct chat)
      st = this.newState({
        id: m.conversation_id,
        type: 'direct',
        name: null,
        created_at: m.created_at,
        last_seq: m.seq - 1,
        members: [],
        last_message: null,
        unread_count: 0,
        read_seq: 0,
        delivered_seq: 0,
      });
      st.watermark = source === 'sync' ? 0 : m.seq - 1;
      this.convs.set(m.conversation_id, st);
      void this.refreshConversations().catch(() => undefined);
    }
    const fresh = this.store(st, m, source === 'fetch');
    if (!fresh) return false;
    if (m.client_msg_id && m.sender_id === this.me?.id && this.outbox.has(m.client_msg_id)) {
      this.dropOutbox(m.client_msg_id);
    }
    if (m.seq === st.watermark + 1) st.watermark = this.contiguousTop(st, m.seq);
    if (st.oldest === Infinity || m.seq < st.oldest) {
      if (source !== 'fetch' && st.oldest === Infinity) st.oldest = m.seq;
      else if (source === 'fetch') st.oldest = Math.min(st.oldest, m.seq);
    }
    if (m.seq > st.conv.last_seq) st.conv = { ...st.conv, last_seq: m.seq };
    const displayable = m.type === 'text' || DISPLAY_EVENT_TYPES.has(m.type);
    if (displayable && (!st.conv.last_message || st.conv.last_message.seq < m.seq)) {
      st.conv = { ...st.conv, last_message: st.byId.get(m.id) ?? m };
    }
    if (source !== 'fetch' && m.type === 'text' && m.sender_id !== this.me?.id) {
      if (m.seq > st.conv.read_seq) {
        if (this.activeId === st.conv.id && this.visible) this.scheduleRead(st.conv.id);
        else st.unread++;
      }
      if (st.typing.delete(m.sender_id)) this.emit(); // they sent it: no longer typing
      for (const l of this.incomingListeners) l(m);
      this.queueDelivered(st.conv.id);
    }
    if ((source === 'push' || source === 'ack') && m.seq > st.watermark + 1) this.scheduleGapFill(st.conv.id);
    if (source !== 'fetch' && DISPLAY_EVENT_TYPES.has(m.type) && m.type !== 'created') this.scheduleConvRefresh(st.conv.id);
    this.markConvDirty(st.conv.id);
    this.emit();
    return true;
  }

  private convRefreshTimers = new Map<Id, unknown>();
  /** Membership/name/role changed: reload the conversation (404 = we were removed). */
  private scheduleConvRefresh(cid: Id) {
    if (this.convRefreshTimers.has(cid)) return;
    this.convRefreshTimers.set(
      cid,
      this.timers.setTimeout(() => {
        this.convRefreshTimers.delete(cid);
        this.rest
          .conversation(cid)
          .then((c) => {
            this.upsertConv(c);
            this.resubscribePresence();
            this.emit();
          })
          .catch((e) => {
            if (e instanceof ApiError && e.status === 404) this.removeConv(cid);
          });
      }, 100),
    );
  }

  private scheduleGapFill(cid: Id) {
    if (this.gapTimers.has(cid)) return;
    this.gapTimers.set(
      cid,
      this.timers.setTimeout(() => {
        this.gapTimers.delete(cid);
        const st = this.convs.get(cid);
        if (st && st.conv.last_seq > st.watermark) void this.fillFrom(cid).catch(() => undefined);
      }, this.gapDelay),
    );
  }

  /** GET history after=watermark, repeating while has_more. */
  fillFrom(cid: Id): Promise<void> {
    const running = this.filling.get(cid);
    if (running) return running;
    const p = (async () => {
      try {
        for (let i = 0; i < 100; i++) {
          const st = this.convs.get(cid);
          if (!st) return;
          const page = await this.rest.history(cid, { after: st.watermark, limit: 100 });
          for (const m of page.messages) this.ingest(m, 'fetch');
          const st2 = this.convs.get(cid);
          if (st2 && page.messages.length) {
            // the page is contiguous from watermark+1
            st2.watermark = Math.max(st2.watermark, this.contiguousTop(st2, st2.watermark));
          }
          if (!page.has_more || !page.messages.length) break;
        }
      } finally {
        this.filling.delete(cid);
        this.emit();
      }
    })();
    this.filling.set(cid, p);
    return p;
  }

  /** Open a conversation: fetch the latest page once (cache shows instantly meanwhile). */
  async open(cid: Id): Promise<void> {
    this.activeId = cid;
    const st = this.convs.get(cid);
    this.emit();
    if (!st) return;
    if (!st.loadedLatest) {
      try {
        const page = await this.rest.history(cid, { limit: 50 });
        st.loadedLatest = true;
        for (const m of page.messages) this.ingest(m, 'fetch');
        if (page.messages.length) {
          st.oldest = Math.min(st.oldest, page.messages[0].seq);
          const top = page.messages[page.messages.length - 1].seq;
          if (top > st.watermark) {
            // the latest page is newer than what we had contiguously: fill the hole
            if (st.watermark < page.messages[0].seq - 1) void this.fillFrom(cid).catch(() => undefined);
            else st.watermark = this.contiguousTop(st, st.watermark);
          }
        }
        st.hasOlder = page.has_more;
      } catch {
        /* offline: cache only */
      }
      if (this.v2) void this.loadReceipts(cid);
    }
    this.markRead(cid);
    this.emit();
  }

  private async loadReceipts(cid: Id) {
    try {
      const rs = await this.rest.receipts(cid);
      const st = this.convs.get(cid);
      if (!st) return;
      for (const r of rs) this.applyReceipt(st, r.user_id, r.read_seq, r.delivered_seq);
      this.emit();
    } catch {
      /* v1 or offline */
    }
  }

  /** Loads an older page (before the oldest loaded seq). Returns the number of rows added. */
  async loadOlder(cid: Id): Promise<number> {
    const st = this.convs.get(cid);
    if (!st || !st.hasOlder) return 0;
    const before = st.oldest === Infinity ? st.conv.last_seq + 1 : st.oldest;
    if (before <= 1) {
      st.hasOlder = false;
      return 0;
    }
    const page = await this.rest.history(cid, { before, limit: 50 });
    let n = 0;
    for (const m of page.messages) if (this.ingest(m, 'fetch')) n++;
    if (page.messages.length) st.oldest = Math.min(st.oldest, page.messages[0].seq);
    st.hasOlder = page.has_more && page.messages.length > 0;
    this.emit();
    return n;
  }

  /** A loaded row of a conversation by id (current state), or undefined. */
  messageById(cid: Id, id: Id): Message | undefined {
    return this.convs.get(cid)?.byId.get(id);
  }

  private replyLookups = new Map<string, Promise<Message | undefined>>();
  /**
   * The message a reply points at: from the loaded rows, else by paging older history
   * (at most `maxPages` pages of 50) until it shows up. Single-flight per (conversation, id).
   */
  findMessage(cid: Id, id: Id, maxPages = 10): Promise<Message | undefined> {
    const have = this.messageById(cid, id);
    if (have) return Promise.resolve(have);
    const key = `${cid}:${id}`;
    const running = this.replyLookups.get(key);
    if (running) return running;
    const p = (async () => {
      try {
        for (let i = 0; i < maxPages; i++) {
          const st = this.convs.get(cid);
          if (!st || !st.hasOlder) break;
          await this.loadOlder(cid);
          const m = this.messageById(cid, id);
          if (m) return m;
        }
        return this.messageById(cid, id);
      } finally {
        this.replyLookups.delete(key);
      }
    })();
    this.replyLookups.set(key, p);
    return p;
  }

  /** Rows to show: text messages (current state) and group events, ascending. */
  visibleMessages(cid: Id): Message[] {
    const st = this.convs.get(cid);
    if (!st) return [];
    return [...st.msgs.values()]
      .filter((m) => m.type === 'text' || DISPLAY_EVENT_TYPES.has(m.type))
      .sort((a, b) => a.seq - b.seq);
  }

  pendingFor(cid: Id): OutboxEntry[] {
    return [...this.outbox.values()].filter((e) => e.conversation_id === cid).sort((a, b) => a.created_at - b.created_at);
  }

  // ------------------------------------------------------------------ sending
  /** Queues a message in the outbox (persisted) and sends it when connected. */
  send(cid: Id, body: string, opts: { replyTo?: Id | null } = {}): OutboxEntry {
    const e: OutboxEntry = {
      client_msg_id: randomId(),
      conversation_id: cid,
      body,
      reply_to: opts.replyTo ?? null,
      created_at: this.timers.now(),
      status: 'pending',
    };
    const bad = validateSend(e);
    if (bad) {
      // the server would refuse it: keep it visible as failed instead of sending
      e.status = 'failed';
      e.error = bad;
    }
    this.outbox.set(e.client_msg_id, e);
    void this.cache.putOutbox(e).catch(() => undefined);
    this.stopTyping(cid);
    this.transmit(e);
    this.emit();
    return e;
  }

  private transmit(e: OutboxEntry) {
    if (e.status !== 'pending') return;
    this.socket.send({
      type: 'send',
      conversation_id: e.conversation_id,
      client_msg_id: e.client_msg_id,
      body: e.body,
      ...(e.reply_to ? { reply_to: e.reply_to } : {}),
    });
  }

  retry(clientMsgId: string) {
    const e = this.outbox.get(clientMsgId);
    if (!e) return;
    e.status = 'pending';
    e.error = undefined;
    void this.cache.putOutbox(e).catch(() => undefined);
    this.transmit(e);
    this.emit();
  }

  discard(clientMsgId: string) {
    this.dropOutbox(clientMsgId);
    this.emit();
  }

  private dropOutbox(id: string) {
    this.outbox.delete(id);
    void this.cache.deleteOutbox(id).catch(() => undefined);
  }

  private onAck(f: AckFrame) {
    const e = this.outbox.get(f.client_msg_id);
    const st = this.convs.get(f.conversation_id);
    if (e) this.dropOutbox(f.client_msg_id);
    if (st && st.msgs.has(f.seq)) {
      this.emit();
      return; // duplicate ack (or already fetched): one message
    }
    if (!e) {
      // an ack for something we do not hold (sent from a previous page life): fetch it
      if (st && f.seq > st.watermark) this.scheduleGapFill(f.conversation_id);
      return;
    }
    this.ingest(
      {
        id: f.id,
        conversation_id: f.conversation_id,
        seq: f.seq,
        sender_id: this.me?.id ?? '',
        type: 'text',
        body: e.body,
        client_msg_id: f.client_msg_id,
        created_at: f.created_at,
        ref_id: null,
        reply_to: e.reply_to ?? null,
        data: null,
        edited_at: null,
        deleted: false,
        reactions: [],
      },
      'ack',
    );
    const s2 = this.convs.get(f.conversation_id);
    if (s2 && s2.conv.read_seq < f.seq) {
      // own messages count as read by us
      s2.conv = { ...s2.conv, read_seq: Math.max(s2.conv.read_seq, s2.watermark >= f.seq ? f.seq : s2.conv.read_seq) };
    }
  }

  private onSendError(f: ErrorFrame) {
    const e = this.outbox.get(f.client_msg_id!);
    if (!e) return;
    if (PERMANENT_SEND_ERRORS.has(f.code)) {
      e.status = 'failed';
      e.error = f.code;
      void this.cache.putOutbox(e).catch(() => undefined);
    } else {
      // rate_limited / unavailable: try again shortly with the same client_msg_id
      this.timers.setTimeout(() => this.transmit(e), 2000);
    }
    this.emit();
  }

  // ------------------------------------------------------------------ v2 actions
  private request(frame: Record<string, unknown>, timeoutMs = 10000): Promise<OkFrame> {
    const request_id = randomId();
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.requests.delete(request_id);
        reject(new Error('timeout'));
      }, timeoutMs);
      this.requests.set(request_id, { resolve, reject, timer });
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      if (!this.socket.send({ ...frame, request_id } as any)) {
        this.timers.clearTimeout(timer);
        this.requests.delete(request_id);
        reject(new Error('offline'));
      }
    });
  }

  private async action(frame: Record<string, unknown>): Promise<void> {
    const ok = await this.request(frame);
    if (ok.message) this.ingest(ok.message, 'push');
  }
  edit(messageId: Id, body: string) {
    return this.action({ type: 'edit', message_id: messageId, body });
  }
  remove(messageId: Id) {
    return this.action({ type: 'delete', message_id: messageId });
  }
  react(messageId: Id, emoji: string, on: boolean) {
    return this.action({ type: 'react', message_id: messageId, emoji, on });
  }

  /** Call on every keystroke; sends at most one typing frame per 2 s per conversation. */
  typing(cid: Id) {
    if (!this.v2) return;
    const now = this.timers.now();
    const wait = 2000 - (now - (this.lastTypingSent.get(cid) ?? 0));
    if (wait > 0) {
      // still typing after the throttle window: send once more at its end (trailing edge)
      if (!this.typingTrailing.has(cid)) {
        this.typingTrailing.set(
          cid,
          this.timers.setTimeout(() => {
            this.typingTrailing.delete(cid);
            if (this.socket.send({ type: 'typing', conversation_id: cid })) this.lastTypingSent.set(cid, this.timers.now());
          }, wait + 10),
        );
      }
      return;
    }
    if (this.socket.send({ type: 'typing', conversation_id: cid })) this.lastTypingSent.set(cid, now);
  }

  /** Stop the trailing typing frame (message was sent). */
  stopTyping(cid: Id) {
    const t = this.typingTrailing.get(cid);
    if (t !== undefined) this.timers.clearTimeout(t);
    this.typingTrailing.delete(cid);
  }
  private typingTrailing = new Map<Id, unknown>();

  typingUsers(cid: Id): Id[] {
    const st = this.convs.get(cid);
    if (!st) return [];
    const now = this.timers.now();
    return [...st.typing.entries()].filter(([, exp]) => exp > now).map(([u]) => u);
  }

  // ------------------------------------------------------------------ read / delivered
  private readTimer: unknown = null;
  private scheduleRead(cid: Id) {
    if (this.readTimer !== null) return;
    this.readTimer = this.timers.setTimeout(() => {
      this.readTimer = null;
      this.markRead(cid);
    }, 100);
  }

  /** Moves our read watermark to the newest row we hold (if the conversation is open & visible). */
  markRead(cid: Id) {
    const st = this.convs.get(cid);
    if (!st) return;
    const top = st.watermark;
    st.unread = 0;
    if (top <= st.conv.read_seq) {
      this.emit();
      return;
    }
    st.conv = { ...st.conv, read_seq: top };
    if (!this.socket.send({ type: 'read', conversation_id: cid, seq: top })) {
      const m = st.msgs.get(top);
      if (m) void this.rest.markRead(m.id).catch(() => undefined);
    }
    this.markConvDirty(cid);
    this.emit();
  }

  private queueDelivered(cid: Id) {
    if (!this.v2) return;
    const st = this.convs.get(cid);
    if (!st) return;
    this.deliveredPending.set(cid, st.watermark);
    if (this.deliveredTimer !== null) return;
    this.deliveredTimer = this.timers.setTimeout(() => {
      this.deliveredTimer = null;
      for (const [c, seq] of this.deliveredPending) this.socket.send({ type: 'delivered', conversation_id: c, seq });
      this.deliveredPending.clear();
    }, 200);
  }

  private applyReceipt(st: ConvState, uid: Id, read?: number, delivered?: number) {
    if (uid === this.me?.id) {
      if (read !== undefined && read > st.conv.read_seq) {
        st.conv = { ...st.conv, read_seq: read };
        if (read >= st.watermark) st.unread = 0;
      }
      return;
    }
    const old = st.receipts.get(uid) ?? { read_seq: 0, delivered_seq: 0 };
    const r = Math.max(old.read_seq, read ?? 0);
    st.receipts.set(uid, { read_seq: r, delivered_seq: Math.max(old.delivered_seq, delivered ?? 0, r) });
  }

  /** 'read' | 'delivered' | 'sent' for our own message at seq. */
  tick(cid: Id, seq: number): 'read' | 'delivered' | 'sent' {
    const st = this.convs.get(cid);
    if (!st) return 'sent';
    const others = st.conv.members.filter((m) => m.user_id !== this.me?.id);
    if (!others.length) return 'read';
    const rs = others.map((m) => st.receipts.get(m.user_id));
    if (rs.every((r) => r && r.read_seq >= seq)) return 'read';
    if (rs.every((r) => r && r.delivered_seq >= seq)) return 'delivered';
    return 'sent';
  }

  readBy(cid: Id, seq: number): Id[] {
    const st = this.convs.get(cid);
    if (!st) return [];
    return [...st.receipts.entries()].filter(([u, r]) => u !== this.me?.id && r.read_seq >= seq).map(([u]) => u);
  }

  // ------------------------------------------------------------------ presence
  private resubscribePresence() {
    if (!this.v2 || !this.socket.isOpen) return;
    const ids = new Set<Id>();
    for (const st of this.convs.values()) for (const m of st.conv.members) if (m.user_id !== this.me?.id) ids.add(m.user_id);
    const list = [...ids].sort().slice(0, 500);
    const key = list.join(',');
    if (key === this.presenceKey) return;
    if (this.socket.send({ type: 'presence_subscribe', user_ids: list })) this.presenceKey = key;
  }

  // ------------------------------------------------------------------ socket events
  private async onReady() {
    this.lastError = null;
    this.presenceKey = '';
    // 1. resend everything not acknowledged, under the same client_msg_id (acks dedupe)
    for (const e of [...this.outbox.values()].sort((a, b) => a.created_at - b.created_at)) this.transmit(e);
    // 2. learn about new conversations (they start at their last_seq), then 3. delta sync
    try {
      await this.refreshConversations();
    } catch {
      /* keep going with what we know */
    }
    if (!this.socket.isOpen) return;
    this.sendSync();
    this.emit();
  }

  /** Current watermarks of every known conversation: what `sync` asks from. */
  watermarks(): Record<Id, number> {
    const since: Record<Id, number> = {};
    for (const [id, st] of this.convs) since[id] = st.watermark;
    return since;
  }

  private sendSync() {
    if (this.v2 === false) {
      this.fallbackSync();
      return;
    }
    this.syncRequestId = randomId();
    const ok = this.socket.send({ type: 'sync', since: this.watermarks(), limit: this.syncLimit, request_id: this.syncRequestId });
    if (!ok) this.syncRequestId = null;
  }

  /** v1 server: GET history after=watermark for every conversation that is behind. */
  private fallbackSync() {
    for (const [id, st] of this.convs) {
      if (st.conv.last_seq > st.watermark) void this.fillFrom(id).catch(() => undefined);
    }
  }

  private onSyncBatch(f: SyncBatchFrame) {
    this.syncRequestId = null;
    const first = this.v2 !== true;
    this.v2 = true;
    for (const id of f.removed ?? []) this.removeConv(id);
    for (const m of f.events ?? []) this.ingest(m, 'sync');
    if (f.has_more && (f.events?.length ?? 0) > 0) this.sendSync();
    if (first) this.resubscribePresence();
    this.emit();
  }

  private onFrame(f: ServerFrame) {
    switch (f.type) {
      case 'ack':
        this.onAck(f);
        break;
      case 'message':
        if (f.message) this.ingest(f.message, 'push');
        break;
      case 'receipt': {
        const st = this.convs.get(f.conversation_id);
        if (st) {
          const r = f as ReceiptFrame;
          this.applyReceipt(st, r.user_id, r.read_seq, r.delivered_seq);
          this.emit();
        }
        break;
      }
      case 'typing': {
        const st = this.convs.get(f.conversation_id);
        if (st && f.user_id !== this.me?.id) {
          const ms = f.expires_in_ms || 5000;
          st.typing.set(f.user_id, this.timers.now() + ms);
          this.timers.setTimeout(() => this.emit(), ms + 50);
          this.emit();
        }
        break;
      }
      case 'presence':
        this.presence.set(f.user_id, { status: f.status, last_seen: f.last_seen });
        this.emit();
        break;
      case 'sync_batch':
        this.onSyncBatch(f);
        break;
      case 'ok': {
        const r = this.requests.get(f.request_id);
        if (r) {
          this.requests.delete(f.request_id);
          this.timers.clearTimeout(r.timer);
          r.resolve(f);
        }
        break;
      }
      case 'error':
        this.onError(f);
        break;
      default:
        break;
    }
  }

  private onError(f: ErrorFrame) {
    if (f.client_msg_id) return this.onSendError(f);
    if (f.request_id && this.requests.has(f.request_id)) {
      const r = this.requests.get(f.request_id)!;
      this.requests.delete(f.request_id);
      this.timers.clearTimeout(r.timer);
      r.reject(new ApiError(0, f.code, f.message ?? f.code));
      return;
    }
    if (f.code === 'unknown_type' && this.syncRequestId && (!f.request_id || f.request_id === this.syncRequestId)) {
      // v1 server: no sync/typing/presence; fall back to history
      this.syncRequestId = null;
      this.v2 = false;
      this.fallbackSync();
      this.emit();
      return;
    }
    this.lastError = f.code;
    this.emit();
  }

  // ------------------------------------------------------------------ persistence
  private markConvDirty(id: Id) {
    this.dirtyConvs.add(id);
    this.persistSoon();
  }
  private persistSoon() {
    if (this.persistTimer !== null) return;
    this.persistTimer = this.timers.setTimeout(() => {
      this.persistTimer = null;
      void this.flush();
    }, 150);
  }
  async flush(): Promise<void> {
    const msgs = this.dirtyMsgs;
    this.dirtyMsgs = [];
    const convs = [...this.dirtyConvs]
      .map((id) => this.convs.get(id))
      .filter((s): s is ConvState => !!s)
      .map((s) => ({ ...s.conv, unread_count: s.unread, _watermark: s.watermark }));
    this.dirtyConvs.clear();
    try {
      if (convs.length) await this.cache.putConversations(convs);
      if (msgs.length) await this.cache.putMessages(msgs.filter((m) => this.convs.has(m.conversation_id)));
    } catch {
      /* best effort */
    }
  }
}
