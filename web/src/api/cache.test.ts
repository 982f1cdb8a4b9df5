import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { IdbCache } from './cache';
import type { Message } from './types';

const msg = (cid: string, seq: number): Message => ({
  id: `${cid}-${seq}`,
  conversation_id: cid,
  seq,
  sender_id: '1',
  type: 'text',
  body: `b${seq}`,
  client_msg_id: null,
  reply_to: seq === 3 ? `${cid}-1` : null,
  created_at: seq,
});

describe('IdbCache', () => {
  it('round-trips conversations, messages (latest N ascending) and the outbox', async () => {
    const c = new IdbCache('test-' + Math.random());
    await c.putConversations([
      { id: '1', type: 'direct', name: null, created_at: 1, last_seq: 3, members: [], last_message: null, unread_count: 0, read_seq: 0, delivered_seq: 0 },
    ]);
    await c.putMessages([msg('1', 1), msg('1', 2), msg('1', 3), msg('2', 1)]);
    await c.putOutbox({ client_msg_id: 'a', conversation_id: '1', body: 'x', reply_to: '1-2', created_at: 5, status: 'pending' });
    expect((await c.loadConversations()).map((x) => x.id)).toEqual(['1']);
    expect((await c.loadMessages('1', 2)).map((m) => m.seq)).toEqual([2, 3]);
    expect((await c.loadMessages('1', 1))[0].reply_to).toBe('1-1');
    expect((await c.loadOutbox()).map((e) => [e.client_msg_id, e.reply_to])).toEqual([['a', '1-2']]);
    await c.deleteOutbox('a');
    expect(await c.loadOutbox()).toEqual([]);
    await c.deleteConversation('1');
    expect(await c.loadMessages('1', 10)).toEqual([]);
    expect((await c.loadMessages('2', 10)).length).toBe(1);
    await c.clear();
    expect(await c.loadConversations()).toEqual([]);
  });
});
