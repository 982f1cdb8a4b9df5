// Wire types of the chatd protocol (spec v1 + v2 additions). Ids are strings; seq/timestamps numbers.

export type Id = string;

export interface User {
  id: Id;
  username: string;
  display_name: string | null;
  profile_picture: string | null;
  bio: string | null;
  created_at: number;
  last_seen: number | null;
  email?: string;
}

export interface Session {
  session_id: Id;
  device_id: Id;
  access_token: string;
  access_expires_at: number;
  refresh_token: string;
  refresh_expires_at: number;
}

export interface AuthResult {
  user: User;
  session: Session;
}

export type Role = 'owner' | 'admin' | 'member';

export interface Member {
  user_id: Id;
  username: string;
  display_name: string | null;
  role: Role | string;
  joined_at: number;
  delivered_seq?: number;
  read_seq?: number;
}

export type MessageType =
  | 'text'
  | 'edit'
  | 'delete'
  | 'reaction'
  | 'created'
  | 'member_added'
  | 'member_removed'
  | 'member_left'
  | 'member_joined'
  | 'renamed'
  | 'role_changed';

export interface Reaction {
  emoji: string;
  user_ids: Id[];
}

export interface Message {
  id: Id;
  conversation_id: Id;
  seq: number;
  sender_id: Id;
  type: MessageType | string;
  body: string;
  client_msg_id: string | null;
  created_at: number;
  ref_id?: Id | null;
  /** `text`: the message this one replies to (same conversation), or null. */
  reply_to: Id | null;
  data?: Record<string, unknown> | null;
  edited_at?: number | null;
  deleted?: boolean;
  reactions?: Reaction[];
}

export interface Conversation {
  id: Id;
  type: 'direct' | 'group' | string;
  name: string | null;
  created_at: number;
  last_seq: number;
  members: Member[];
  last_message: Message | null;
  unread_count: number;
  read_seq: number;
  delivered_seq: number;
}

export interface HistoryPage {
  messages: Message[];
  has_more: boolean;
}

export interface Invite {
  code: string;
  conversation_id: Id;
  created_at: number;
}

export interface ReceiptEntry {
  user_id: Id;
  delivered_seq: number;
  read_seq: number;
}

export type DeviceType = 'web' | 'mobile' | 'smart_tv';

/** One logged-in device of the caller (`GET /api/v1/users/me/devices`). */
export interface DeviceSession {
  device_id: Id;
  session_id: Id;
  type: DeviceType | string;
  name: string;
  created_at: number;
  last_active: number;
  /** The session making the request. */
  current: boolean;
}

// ---- WebSocket frames ----
export type ClientFrame =
  | { type: 'auth'; token: string }
  | { type: 'ping' }
  | { type: 'send'; conversation_id: Id; client_msg_id: string; body: string; reply_to?: Id; request_id?: string }
  | { type: 'read'; conversation_id: Id; seq: number }
  | { type: 'delivered'; conversation_id: Id; seq: number }
  | { type: 'typing'; conversation_id: Id }
  | { type: 'presence_subscribe'; user_ids: Id[] }
  | { type: 'sync'; since: Record<Id, number>; limit: number; request_id?: string }
  | { type: 'edit'; message_id: Id; body: string; request_id: string }
  | { type: 'delete'; message_id: Id; request_id: string }
  | { type: 'react'; message_id: Id; emoji: string; on: boolean; request_id: string };

export interface ReadyFrame {
  type: 'ready';
  user_id: Id;
  session_id: Id;
  device_id: Id;
  heartbeat_interval_ms: number;
}
export interface AckFrame {
  type: 'ack';
  client_msg_id: string;
  conversation_id: Id;
  id: Id;
  seq: number;
  created_at: number;
}
export interface MessageFrame {
  type: 'message';
  message: Message;
}
export interface ReceiptFrame {
  type: 'receipt';
  conversation_id: Id;
  user_id: Id;
  read_seq?: number;
  delivered_seq?: number;
}
export interface ErrorFrame {
  type: 'error';
  code: string;
  message?: string;
  client_msg_id?: string;
  request_id?: string;
}
export interface TypingFrame {
  type: 'typing';
  conversation_id: Id;
  user_id: Id;
  expires_in_ms: number;
}
export interface PresenceFrame {
  type: 'presence';
  user_id: Id;
  status: 'online' | 'offline';
  last_seen: number | null;
}
export interface SyncBatchFrame {
  type: 'sync_batch';
  events: Message[];
  has_more: boolean;
  removed?: Id[];
  request_id?: string;
}
export interface OkFrame {
  type: 'ok';
  request_id: string;
  message?: Message;
}
export interface PongFrame {
  type: 'pong';
  ts: number;
}

export type ServerFrame =
  | ReadyFrame
  | AckFrame
  | MessageFrame
  | ReceiptFrame
  | ErrorFrame
  | TypingFrame
  | PresenceFrame
  | SyncBatchFrame
  | OkFrame
  | PongFrame;

export const MAX_BODY_CODE_POINTS = 100000;

/** Counts Unicode code points (what the server limits), not UTF-16 units. */
export function codePointLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Errors on a send that will never succeed by retrying. */
export const PERMANENT_SEND_ERRORS = new Set([
  'not_found',
  'message_too_long',
  'invalid_utf8',
  'empty_message',
  'bad_request',
  'idempotency_conflict',
  'forbidden',
]);
