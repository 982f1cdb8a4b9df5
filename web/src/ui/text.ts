import type { ChatClient, ConvState } from '../api/client';
import type { Message } from '../api/types';

export function preview(client: ChatClient, st: ConvState): string {
  const m = st.conv.last_message;
  if (!m) return 'No messages yet';
  const who = m.sender_id === client.me?.id ? 'You: ' : st.conv.type === 'group' ? client.memberName(st.conv.id, m.sender_id) + ': ' : '';
  if (m.type !== 'text') return eventText(client, m);
  if (m.deleted) return who + 'Message deleted';
  return who + m.body.replace(/^> .*\n/, '').slice(0, 80);
}

export function eventText(client: ChatClient, m: Message): string {
  const who = client.memberName(m.conversation_id, m.sender_id);
  const ids = ((m.data?.user_ids as string[] | undefined) ?? []).map((u) => client.memberName(m.conversation_id, u)).join(', ');
  switch (m.type) {
    case 'created':
      return `${who} created the group “${m.body || (m.data?.name as string) || client.convs.get(m.conversation_id)?.conv.name || ''}”`;
    case 'member_added':
      return `${who} added ${ids}`;
    case 'member_removed':
      return `${who} removed ${ids}`;
    case 'member_left':
      return `${who} left`;
    case 'member_joined':
      return `${who} joined via invite link`;
    case 'renamed':
      return `${who} renamed the group to “${m.body}”`;
    case 'role_changed':
      return `${who} made ${client.memberName(m.conversation_id, String(m.data?.user_id ?? ''))} ${String(m.data?.role ?? '')}`;
    default:
      return m.body;
  }
}

