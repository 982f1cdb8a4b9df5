import type { ClientFrame, ReadyFrame, ServerFrame } from './types';
import { realTimers, type Timers } from './timers';

/** The subset of the browser WebSocket we use (so tests can inject a fake). */
export interface WebSocketLike {
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

export type SocketState = 'idle' | 'connecting' | 'authenticating' | 'open' | 'waiting' | 'closed';

export interface SocketOptions {
  url: string;
  WebSocket?: WebSocketCtor;
  timers?: Timers;
  random?: () => number;
  /** Returns a fresh access token (may refresh); null = no session, stop. */
  getToken: () => Promise<string | null>;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** If no frame at all arrives within this many ms of a ping, the connection is considered dead. */
  pongTimeoutMs?: number;
}

export interface SocketHandlers {
  onReady?: (f: ReadyFrame) => void;
  onFrame?: (f: ServerFrame) => void;
  onState?: (s: SocketState) => void;
  /** Close code 4001: the token/session is not valid. Return true to keep reconnecting (token refreshed). */
  onUnauthorized?: () => Promise<boolean>;
}

const OPEN = 1;

/**
 * One logical connection to chatd /ws: authenticates with the first frame, pings every
 * heartbeat_interval_ms, reconnects with exponential backoff + full jitter.
 */
export class ChatSocket {
  private ws: WebSocketLike | null = null;
  private state: SocketState = 'idle';
  private attempt = 0;
  private reconnectTimer: unknown = null;
  private heartbeatTimer: unknown = null;
  private pongTimer: unknown = null;
  private stopped = true;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly WS: WebSocketCtor;
  readonly base: number;
  readonly max: number;
  /** Delays chosen for each reconnect (for tests and diagnostics). */
  readonly delays: number[] = [];

  constructor(
    private readonly opts: SocketOptions,
    private readonly h: SocketHandlers = {},
  ) {
    this.timers = opts.timers ?? realTimers;
    this.random = opts.random ?? Math.random;
    this.WS = opts.WebSocket ?? (globalThis.WebSocket as unknown as WebSocketCtor);
    this.base = opts.backoffBaseMs ?? 500;
    this.max = opts.backoffMaxMs ?? 30000;
  }

  get status(): SocketState {
    return this.state;
  }
  get isOpen(): boolean {
    return this.state === 'open';
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    if (this.reconnectTimer !== null) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        /* ignore */
      }
    }
    this.setState('closed');
  }

  /** Reconnect now (e.g. browser came online); resets the backoff. */
  kick(): void {
    if (this.stopped) return;
    if (this.state === 'waiting') {
      if (this.reconnectTimer !== null) this.timers.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.attempt = 0;
      void this.connect();
    }
  }

  /** Sends a frame if authenticated; returns false otherwise (caller keeps it queued). */
  send(frame: ClientFrame): boolean {
    if (this.state !== 'open' || !this.ws || this.ws.readyState !== OPEN) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Backoff delay for attempt n (0-based): full jitter in [base*2^n/2, base*2^n], capped. */
  backoffDelay(n: number): number {
    const cap = Math.min(this.max, this.base * 2 ** n);
    return Math.round(cap / 2 + this.random() * (cap / 2));
  }

  private setState(s: SocketState) {
    if (this.state === s) return;
    this.state = s;
    this.h.onState?.(s);
  }

  private clearTimers() {
    if (this.heartbeatTimer !== null) this.timers.clearInterval(this.heartbeatTimer);
    if (this.pongTimer !== null) this.timers.clearTimeout(this.pongTimer);
    this.heartbeatTimer = this.pongTimer = null;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setState('connecting');
    const token = await this.opts.getToken();
    if (this.stopped) return;
    if (!token) {
      this.setState('closed');
      this.stopped = true;
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.opts.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.setState('authenticating');
      ws.send(JSON.stringify({ type: 'auth', token }));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.gotTraffic();
      let f: ServerFrame;
      try {
        f = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (!f || typeof f !== 'object' || typeof f.type !== 'string') return;
      if (f.type === 'ready') {
        this.attempt = 0;
        this.setState('open');
        this.startHeartbeat(f.heartbeat_interval_ms);
        this.h.onReady?.(f);
        return;
      }
      this.h.onFrame?.(f);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      if (this.stopped) return;
      if (ev.code === 4001) {
        // session not valid: try to refresh the token before reconnecting
        const cb = this.h.onUnauthorized;
        this.setState('waiting');
        void (cb ? cb() : Promise.resolve(false)).then((ok) => {
          if (ok) this.scheduleReconnect();
          else {
            this.stopped = true;
            this.setState('closed');
          }
        });
        return;
      }
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect() {
    if (this.stopped) return;
    this.setState('waiting');
    const d = this.backoffDelay(this.attempt++);
    this.delays.push(d);
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, d);
  }

  private startHeartbeat(interval: number) {
    this.clearTimers();
    const every = Math.max(1000, Math.floor((interval || 30000) * 0.8));
    const pongTimeout = this.opts.pongTimeoutMs ?? Math.max(5000, every);
    this.heartbeatTimer = this.timers.setInterval(() => {
      if (!this.send({ type: 'ping' })) return;
      if (this.pongTimer === null) {
        this.pongTimer = this.timers.setTimeout(() => {
          // nothing came back: the connection is dead (e.g. network gone without a close)
          this.pongTimer = null;
          const ws = this.ws;
          if (ws) {
            ws.onclose?.({ code: 1006, reason: 'pong timeout' });
            try {
              ws.close();
            } catch {
              /* ignore */
            }
          }
        }, pongTimeout);
      }
    }, every);
  }

  private gotTraffic() {
    if (this.pongTimer !== null) {
      this.timers.clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }
  }

  /** Forcibly drop the current connection (tests / network change); a reconnect follows. */
  drop(): void {
    const ws = this.ws;
    if (!ws) return;
    ws.onclose?.({ code: 1006, reason: 'dropped' });
    try {
      ws.close();
    } catch {
      /* ignore */
    }
  }
}
