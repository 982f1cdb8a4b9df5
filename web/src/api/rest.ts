import type {
  AuthResult,
  Conversation,
  DeviceSession,
  DeviceType,
  HistoryPage,
  Id,
  Invite,
  Message,
  ReceiptEntry,
  Role,
  Session,
  User,
} from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfter: number | null;
  constructor(status: number, code: string, message: string, retryAfter: number | null = null) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
  /** True when the server does not have this feature yet (v2 on a v1 server). */
  get notImplemented(): boolean {
    return this.status === 501 || this.code === 'not_implemented';
  }
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface RestOptions {
  baseUrl?: string; // '' = same origin
  fetch?: FetchLike;
  /** Returns the current session (tokens) or null. */
  getSession: () => Session | null;
  /** Called after a successful refresh/login with the new session, or null when auth is lost. */
  setSession: (s: AuthResult | null) => void;
}

export interface Device {
  type: DeviceType;
  name?: string;
}

export class RestClient {
  private readonly base: string;
  private readonly fetchImpl: FetchLike;
  private refreshing: Promise<boolean> | null = null;

  constructor(private readonly opts: RestOptions) {
    this.base = opts.baseUrl ?? '';
    const f = opts.fetch ?? (globalThis.fetch as FetchLike);
    this.fetchImpl = (i, init) => f(i, init);
  }

  // ---------- low level ----------
  private async raw(method: string, path: string, body: unknown, token: string | null): Promise<Response> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers['Authorization'] = `Bearer ${token}`;
    return this.fetchImpl(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  private static async toError(res: Response): Promise<ApiError> {
    let code = `http_${res.status}`;
    let message = res.statusText;
    try {
      const j = await res.json();
      if (j && j.error) {
        code = j.error.code ?? code;
        message = j.error.message ?? message;
      }
    } catch {
      /* not json */
    }
    const ra = res.headers.get('Retry-After');
    return new ApiError(res.status, code, message, ra ? Number(ra) : null);
  }

  private static async parse<T>(res: Response): Promise<T> {
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Authenticated request; refreshes the access token once on 401. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const s = this.opts.getSession();
    let res = await this.raw(method, path, body, s?.access_token ?? null);
    if (res.status === 401 && s) {
      if (await this.refresh()) {
        res = await this.raw(method, path, body, this.opts.getSession()?.access_token ?? null);
      }
    }
    if (!res.ok) {
      const err = await RestClient.toError(res);
      if (res.status === 401) this.opts.setSession(null);
      throw err;
    }
    return RestClient.parse<T>(res);
  }

  private async unauthed<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.raw(method, path, body, null);
    if (!res.ok) throw await RestClient.toError(res);
    return RestClient.parse<T>(res);
  }

  /** Rotates tokens (single flight). Resolves false if the session is gone. */
  refresh(): Promise<boolean> {
    if (this.refreshing) return this.refreshing;
    const s = this.opts.getSession();
    if (!s) return Promise.resolve(false);
    this.refreshing = (async () => {
      try {
        const r = await this.unauthed<AuthResult>('POST', '/api/v1/auth/refresh', { refresh_token: s.refresh_token });
        this.opts.setSession(r);
        return true;
      } catch (e) {
        if (e instanceof ApiError && (e.status === 401 || e.status === 400)) this.opts.setSession(null);
        return false;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  // ---------- auth ----------
  async register(p: { username: string; email: string; password: string; display_name?: string; device?: Device }): Promise<AuthResult> {
    const r = await this.unauthed<AuthResult>('POST', '/api/v1/auth/register', p);
    this.opts.setSession(r);
    return r;
  }
  async login(login: string, password: string, device?: Device): Promise<AuthResult> {
    const r = await this.unauthed<AuthResult>('POST', '/api/v1/auth/login', { login, password, device });
    this.opts.setSession(r);
    return r;
  }
  async logout(): Promise<void> {
    try {
      await this.request<void>('POST', '/api/v1/auth/logout');
    } finally {
      this.opts.setSession(null);
    }
  }

  // ---------- users ----------
  me(): Promise<User> {
    return this.request('GET', '/api/v1/users/me');
  }
  async searchUsers(q: string, limit = 20): Promise<User[]> {
    const r = await this.request<{ users: User[] }>('GET', `/api/v1/users/search?q=${encodeURIComponent(q)}&limit=${limit}`);
    return r.users;
  }
  profile(id: Id): Promise<User> {
    return this.request('GET', `/api/v1/users/${encodeURIComponent(id)}/profile`);
  }
  updateProfile(id: Id, p: { display_name?: string; profile_picture?: string; bio?: string }): Promise<User> {
    return this.request('PUT', `/api/v1/users/${encodeURIComponent(id)}/profile`, p);
  }
  /** The caller's logged-in devices, most recently active first; `current` marks this session. */
  async devices(): Promise<DeviceSession[]> {
    const r = await this.request<{ devices: DeviceSession[] }>('GET', '/api/v1/users/me/devices');
    return r.devices;
  }
  /** Logs one of the caller's devices out (its tokens stop working, its sockets close with 4001). 404 if unknown/gone. */
  revokeDevice(deviceId: Id): Promise<void> {
    return this.request('DELETE', `/api/v1/users/me/devices/${encodeURIComponent(deviceId)}`);
  }

  // ---------- conversations ----------
  async conversations(): Promise<Conversation[]> {
    const r = await this.request<{ conversations: Conversation[] }>('GET', '/api/v1/conversations');
    return r.conversations;
  }
  conversation(id: Id): Promise<Conversation> {
    return this.request('GET', `/api/v1/conversations/${id}`);
  }
  createDirect(userId: Id): Promise<Conversation> {
    return this.request('POST', '/api/v1/conversations', { type: 'direct', user_id: userId });
  }
  history(id: Id, q: { before?: number; after?: number; limit?: number } = {}): Promise<HistoryPage> {
    const params = new URLSearchParams();
    if (q.before !== undefined) params.set('before', String(q.before));
    if (q.after !== undefined) params.set('after', String(q.after));
    if (q.limit !== undefined) params.set('limit', String(q.limit));
    const qs = params.toString();
    return this.request('GET', `/api/v1/conversations/${id}/messages${qs ? '?' + qs : ''}`);
  }
  sendMessage(id: Id, client_msg_id: string, body: string, replyTo?: Id | null): Promise<Message> {
    return this.request('POST', `/api/v1/conversations/${id}/messages`, replyTo ? { client_msg_id, body, reply_to: replyTo } : { client_msg_id, body });
  }
  markRead(messageId: Id): Promise<{ conversation_id: Id; read_seq: number }> {
    return this.request('PUT', `/api/v1/messages/${messageId}/read`);
  }

  // ---------- v2: groups ----------
  createGroup(name: string, memberIds: Id[]): Promise<Conversation> {
    return this.request('POST', '/api/v1/conversations', { type: 'group', name, member_ids: memberIds });
  }
  renameGroup(id: Id, name: string): Promise<Conversation> {
    return this.request('PATCH', `/api/v1/conversations/${id}`, { name });
  }
  addMembers(id: Id, userIds: Id[]): Promise<Conversation> {
    return this.request('POST', `/api/v1/conversations/${id}/members`, { user_ids: userIds });
  }
  removeMember(id: Id, userId: Id): Promise<void> {
    return this.request('DELETE', `/api/v1/conversations/${id}/members/${userId}`);
  }
  leave(id: Id): Promise<void> {
    return this.request('POST', `/api/v1/conversations/${id}/leave`);
  }
  setRole(id: Id, userId: Id, role: Exclude<Role, 'owner'>): Promise<unknown> {
    return this.request('PUT', `/api/v1/conversations/${id}/members/${userId}/role`, { role });
  }
  createInvite(id: Id): Promise<Invite> {
    return this.request('POST', `/api/v1/conversations/${id}/invites`);
  }
  async invites(id: Id): Promise<Invite[]> {
    const r = await this.request<{ invites: Invite[] }>('GET', `/api/v1/conversations/${id}/invites`);
    return r.invites;
  }
  revokeInvite(id: Id, code: string): Promise<void> {
    return this.request('DELETE', `/api/v1/conversations/${id}/invites/${encodeURIComponent(code)}`);
  }
  join(id: Id, code: string): Promise<Conversation> {
    return this.request('POST', `/api/v1/conversations/${id}/join`, { code });
  }

  // ---------- v2: messages ----------
  editMessage(messageId: Id, body: string): Promise<Message> {
    return this.request('PATCH', `/api/v1/messages/${messageId}`, { body });
  }
  deleteMessage(messageId: Id): Promise<void> {
    return this.request('DELETE', `/api/v1/messages/${messageId}`);
  }
  react(messageId: Id, emoji: string, on: boolean): Promise<Message> {
    return this.request(on ? 'PUT' : 'DELETE', `/api/v1/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`);
  }
  async receipts(id: Id): Promise<ReceiptEntry[]> {
    const r = await this.request<{ receipts: ReceiptEntry[] }>('GET', `/api/v1/conversations/${id}/receipts`);
    return r.receipts;
  }
}
