import type { Conversation, Id, Message } from './types';

export interface OutboxEntry {
  client_msg_id: string;
  conversation_id: Id;
  body: string;
  /** The message this one replies to; sent again on every resend. */
  reply_to?: Id | null;
  created_at: number;
  status: 'pending' | 'failed';
  error?: string;
}

/** Local persistence used to open instantly and show history offline. */
export interface Cache {
  loadConversations(): Promise<Conversation[]>;
  putConversations(cs: Conversation[]): Promise<void>;
  deleteConversation(id: Id): Promise<void>;
  loadMessages(conversationId: Id, limit: number): Promise<Message[]>; // latest `limit`, ascending
  putMessages(ms: Message[]): Promise<void>;
  loadOutbox(): Promise<OutboxEntry[]>;
  putOutbox(e: OutboxEntry): Promise<void>;
  deleteOutbox(clientMsgId: string): Promise<void>;
  clear(): Promise<void>;
}

export class MemoryCache implements Cache {
  convs = new Map<Id, Conversation>();
  msgs = new Map<string, Message>();
  outbox = new Map<string, OutboxEntry>();
  async loadConversations() {
    return [...this.convs.values()];
  }
  async putConversations(cs: Conversation[]) {
    for (const c of cs) this.convs.set(c.id, c);
  }
  async deleteConversation(id: Id) {
    this.convs.delete(id);
    for (const [k, m] of this.msgs) if (m.conversation_id === id) this.msgs.delete(k);
  }
  async loadMessages(cid: Id, limit: number) {
    const all = [...this.msgs.values()].filter((m) => m.conversation_id === cid).sort((a, b) => a.seq - b.seq);
    return all.slice(-limit);
  }
  async putMessages(ms: Message[]) {
    for (const m of ms) this.msgs.set(`${m.conversation_id}:${m.seq}`, m);
  }
  async loadOutbox() {
    return [...this.outbox.values()].sort((a, b) => a.created_at - b.created_at);
  }
  async putOutbox(e: OutboxEntry) {
    this.outbox.set(e.client_msg_id, e);
  }
  async deleteOutbox(id: string) {
    this.outbox.delete(id);
  }
  async clear() {
    this.convs.clear();
    this.msgs.clear();
    this.outbox.clear();
  }
}

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** IndexedDB cache: stores conversations, messages ([conversation_id, seq]) and the outbox. */
export class IdbCache implements Cache {
  private dbp: Promise<IDBDatabase> | null = null;
  constructor(
    private readonly name = 'chatd',
    private readonly idb: IDBFactory = globalThis.indexedDB,
  ) {}

  static available(): boolean {
    return typeof globalThis.indexedDB !== 'undefined';
  }

  private db(): Promise<IDBDatabase> {
    if (!this.dbp) {
      this.dbp = new Promise((resolve, reject) => {
        const open = this.idb.open(this.name, 1);
        open.onupgradeneeded = () => {
          const db = open.result;
          db.createObjectStore('conversations', { keyPath: 'id' });
          const ms = db.createObjectStore('messages', { keyPath: ['conversation_id', 'seq'] });
          ms.createIndex('conv', 'conversation_id');
          db.createObjectStore('outbox', { keyPath: 'client_msg_id' });
        };
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
      });
    }
    return this.dbp;
  }

  async loadConversations(): Promise<Conversation[]> {
    const db = await this.db();
    return req(db.transaction('conversations').objectStore('conversations').getAll()) as Promise<Conversation[]>;
  }
  async putConversations(cs: Conversation[]): Promise<void> {
    const db = await this.db();
    const tx = db.transaction('conversations', 'readwrite');
    const st = tx.objectStore('conversations');
    for (const c of cs) st.put(c);
    await done(tx);
  }
  async deleteConversation(id: Id): Promise<void> {
    const db = await this.db();
    const tx = db.transaction(['conversations', 'messages'], 'readwrite');
    tx.objectStore('conversations').delete(id);
    tx.objectStore('messages').delete(IDBKeyRange.bound([id, -Infinity], [id, Infinity]));
    await done(tx);
  }
  async loadMessages(cid: Id, limit: number): Promise<Message[]> {
    const db = await this.db();
    const st = db.transaction('messages').objectStore('messages');
    const out: Message[] = [];
    await new Promise<void>((resolve, reject) => {
      const cur = st.openCursor(IDBKeyRange.bound([cid, -Infinity], [cid, Infinity]), 'prev');
      cur.onsuccess = () => {
        const c = cur.result;
        if (!c || out.length >= limit) return resolve();
        out.push(c.value as Message);
        c.continue();
      };
      cur.onerror = () => reject(cur.error);
    });
    return out.reverse();
  }
  async putMessages(ms: Message[]): Promise<void> {
    if (!ms.length) return;
    const db = await this.db();
    const tx = db.transaction('messages', 'readwrite');
    const st = tx.objectStore('messages');
    for (const m of ms) st.put(m);
    await done(tx);
  }
  async loadOutbox(): Promise<OutboxEntry[]> {
    const db = await this.db();
    const all = (await req(db.transaction('outbox').objectStore('outbox').getAll())) as OutboxEntry[];
    return all.sort((a, b) => a.created_at - b.created_at);
  }
  async putOutbox(e: OutboxEntry): Promise<void> {
    const db = await this.db();
    const tx = db.transaction('outbox', 'readwrite');
    tx.objectStore('outbox').put(e);
    await done(tx);
  }
  async deleteOutbox(id: string): Promise<void> {
    const db = await this.db();
    const tx = db.transaction('outbox', 'readwrite');
    tx.objectStore('outbox').delete(id);
    await done(tx);
  }
  async clear(): Promise<void> {
    const db = await this.db();
    const tx = db.transaction(['conversations', 'messages', 'outbox'], 'readwrite');
    tx.objectStore('conversations').clear();
    tx.objectStore('messages').clear();
    tx.objectStore('outbox').clear();
    await done(tx);
  }
}
