import { useEffect, useLayoutEffect, useRef, useState } from 'react';
import type { ChatClient, ConvState } from '../api/client';
import type { OutboxEntry } from '../api/cache';
import { codePointLength, MAX_BODY_CODE_POINTS, type Message } from '../api/types';
import { eventText } from './text';
import { Avatar } from './Common';
import { errorText, formatDay, formatTime, useClient } from './hooks';

const REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];
const INITIAL_WINDOW = 60;
const MAX_WINDOW = 300;

interface Props {
  client: ChatClient;
  st: ConvState;
  tv: boolean;
  onBack: () => void;
  onManage: () => void;
  setMenuCloser: (fn: (() => void) | null) => void;
}

export function ConversationView({ client, st, onBack, onManage, setMenuCloser }: Props) {
  useClient(client);
  const c = st.conv;
  const title = client.conversationTitle(c);
  const other = c.type === 'direct' ? client.otherMember(c) : null;
  const pres = other ? client.presence.get(other.user_id) : undefined;
  const typing = client.typingUsers(c.id);
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const composerRef = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (window.innerWidth > 720) composerRef.current?.focus();
  }, []);

  let subtitle: string;
  if (typing.length) subtitle = typing.map((u) => client.memberName(c.id, u)).join(', ') + (typing.length > 1 ? ' are typing…' : ' is typing…');
  else if (c.type === 'group') subtitle = `${c.members.length} members`;
  else if (pres) subtitle = pres.status === 'online' ? 'online' : pres.last_seen ? `last seen ${formatDay(pres.last_seen).toLowerCase()} ${formatTime(pres.last_seen)}` : 'offline';
  else subtitle = other ? '@' + other.username : 'Notes to self';

  return (
    <section className="conv-view" aria-label={`Conversation with ${title}`}>
      <header className="conv-head">
        <button className="icon-btn back-btn" onClick={onBack} aria-label="Back to conversations">
          ←
        </button>
        <Avatar id={other?.user_id ?? c.id} name={title} online={other ? pres?.status === 'online' : undefined} />
        <div className="conv-head-text">
          <h2>{title}</h2>
          <p className={`subtitle ${typing.length ? 'typing' : ''}`} aria-live="polite">
            {subtitle}
          </p>
        </div>
        {c.type === 'group' && (
          <button className="icon-btn" onClick={onManage} aria-label="Group settings" title="Group settings">
            ⚙
          </button>
        )}
      </header>
      <MessageList
        client={client}
        st={st}
        onReply={(m) => {
          setEditing(null);
          setReplyTo(m);
          composerRef.current?.focus();
        }}
        onEdit={(m) => {
          setReplyTo(null);
          setEditing(m);
          composerRef.current?.focus();
        }}
        setMenuCloser={setMenuCloser}
      />
      <Composer
        client={client}
        cid={c.id}
        replyTo={replyTo}
        editing={editing}
        inputRef={composerRef}
        clear={() => {
          setReplyTo(null);
          setEditing(null);
        }}
      />
    </section>
  );
}

/** Strips the `> Name: line` prefix older clients put in front of a reply's body. */
const LEGACY_QUOTE = /^(> .*\n)+/;

/** First line of a message, without a legacy quote prefix, cut to `max` code points. */
function firstLine(body: string, max = 80): string {
  const first = body.replace(LEGACY_QUOTE, '').split('\n')[0];
  return [...first].length > max ? [...first].slice(0, max).join('') + '…' : first;
}

/**
 * Renders a body as text. A real reply (`reply_to`) gets a quote block above the text; bodies of
 * replies sent by older clients (leading "> " lines, no reply_to) still show their quote.
 */
function Body({ text, quote }: { text: string; quote?: React.ReactNode }) {
  const lines = text.split('\n');
  let q = 0;
  if (!quote) while (q < lines.length - 1 && lines[q].startsWith('> ')) q++;
  return (
    <div className="body">
      {quote}
      {q > 0 && <blockquote>{lines.slice(0, q).map((l) => l.slice(2)).join('\n')}</blockquote>}
      <span className="text">{lines.slice(q).join('\n')}</span>
    </div>
  );
}

/**
 * The quote block of a reply: sender and first line of the original, from the loaded rows
 * ("a message" while it is not loaded). Click / Enter / Space jumps to the original (loading
 * older history on demand).
 */
function ReplyQuote({ client, cid, id, onJump }: { client: ChatClient; cid: string; id: string; onJump?: (id: string) => void }) {
  const q = client.messageById(cid, id);
  const who = q ? client.memberName(cid, q.sender_id) : null;
  const line = !q ? 'a message' : q.deleted ? 'Message deleted' : firstLine(q.body);
  const jump = onJump ? () => onJump(id) : undefined;
  return (
    <blockquote
      className={`reply-quote ${q ? '' : 'unknown'}`}
      data-reply-to={id}
      role={jump ? 'button' : undefined}
      tabIndex={jump ? 0 : undefined}
      aria-label={`Reply to ${who ? `${who}: ${line}` : 'a message'}${jump ? '. Show the original' : ''}`}
      title={jump ? 'Show the original message' : undefined}
      onClick={jump}
      onKeyDown={
        jump &&
        ((e) => {
          if (e.key === 'Enter' || e.key === ' ') {
            e.preventDefault();
            e.stopPropagation();
            jump();
          }
        })
      }
    >
      {who && <span className="quote-sender">{who}</span>}
      <span className={`quote-text ${q?.deleted ? 'deleted' : ''}`}>{line}</span>
    </blockquote>
  );
}

function MessageList({
  client,
  st,
  onReply,
  onEdit,
  setMenuCloser,
}: {
  client: ChatClient;
  st: ConvState;
  onReply: (m: Message) => void;
  onEdit: (m: Message) => void;
  setMenuCloser: (fn: (() => void) | null) => void;
}) {
  const cid = st.conv.id;
  const rows = client.visibleMessages(cid);
  const pending = client.pendingFor(cid);
  const [startSeq, setStartSeq] = useState<number | null>(null);
  const [loading, setLoading] = useState(false);
  const loadingRef = useRef(false);
  const [menuFor, setMenuFor] = useState<string | null>(null);
  const [jump, setJump] = useState<{ seq: number } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const ref = useRef<HTMLDivElement>(null);
  const anchor = useRef<{ h: number; top: number } | null>(null);
  const stick = useRef(true);
  const meId = client.me?.id;
  const group = st.conv.type === 'group';
  const v2 = client.v2 === true;

  let startIdx = startSeq === null ? Math.max(0, rows.length - INITIAL_WINDOW) : rows.findIndex((r) => r.seq >= startSeq);
  if (startIdx < 0) startIdx = rows.length;
  const shown = rows.slice(startIdx);

  const keepAnchor = () => {
    const el = ref.current;
    if (el) anchor.current = { h: el.scrollHeight, top: el.scrollTop };
  };

  const older = async () => {
    if (startIdx > 0) {
      keepAnchor();
      setStartSeq(rows[Math.max(0, startIdx - 50)].seq);
      return;
    }
    if (!st.hasOlder || loadingRef.current) return;
    loadingRef.current = true;
    setLoading(true);
    // freeze the window while the page arrives so the view does not jump
    if (startSeq === null && shown.length) setStartSeq(shown[0].seq);
    try {
      await client.loadOlder(cid);
      const all = client.visibleMessages(cid);
      keepAnchor();
      if (all.length) setStartSeq(all[0].seq);
    } catch {
      /* offline: nothing older in the cache */
    } finally {
      loadingRef.current = false;
      setLoading(false);
    }
  };

  /** Scroll to the message a reply quotes (widening the window / loading older pages if needed). */
  const jumpTo = async (id: string) => {
    setNotice(null);
    let m = client.messageById(cid, id);
    if (!m) {
      setNotice('Looking for the original message…');
      m = await client.findMessage(cid, id).catch(() => undefined);
    }
    if (!m) {
      setNotice('The original message is not available.');
      return;
    }
    setNotice(null);
    const all = client.visibleMessages(cid);
    const idx = all.findIndex((r) => r.seq === m!.seq);
    // outside the rendered window (or just loaded): widen the window to start a little above it
    if (idx >= 0 && m.seq < (shown[0]?.seq ?? Infinity)) setStartSeq(all[Math.max(0, idx - 5)].seq);
    stick.current = false;
    setJump({ seq: m.seq });
  };

  const onScroll = () => {
    const el = ref.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
    if (el.scrollTop < 120) void older();
    if (stick.current && shown.length > MAX_WINDOW) setStartSeq(rows[rows.length - INITIAL_WINDOW].seq); // trim the window
  };

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (anchor.current) {
      el.scrollTop = el.scrollHeight - anchor.current.h + anchor.current.top;
      anchor.current = null;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  });

  // after a jump: bring the original into view, flash it and put focus on it
  useLayoutEffect(() => {
    if (!jump) return;
    const el = ref.current?.querySelector<HTMLElement>(`.msg[data-seq="${jump.seq}"]`);
    setJump(null);
    if (!el) return;
    el.scrollIntoView({ block: 'center' });
    const target = el.querySelector<HTMLElement>('.reply-quote, .msg-actions');
    target?.focus({ preventScroll: true });
    el.classList.remove('flash');
    void el.offsetWidth; // restart the animation
    el.classList.add('flash');
    window.setTimeout(() => el.classList.remove('flash'), 1600);
  }, [jump]);

  // if the first page does not fill the view, load more
  useEffect(() => {
    const el = ref.current;
    if (el && el.scrollHeight <= el.clientHeight + 10 && st.hasOlder && !loading) void older();
  });

  useEffect(() => {
    if (menuFor) setMenuCloser(() => setMenuFor(null));
    else setMenuCloser(null);
  }, [menuFor, setMenuCloser]);

  let lastDay = '';
  const items: React.ReactNode[] = [];
  for (const m of shown) {
    const day = new Date(m.created_at).toDateString();
    if (day !== lastDay) {
      lastDay = day;
      items.push(
        <div key={`d${m.seq}`} className="day-sep" role="separator" aria-label={formatDay(m.created_at)}>
          <span>{formatDay(m.created_at)}</span>
        </div>,
      );
    }
    if (m.type !== 'text') {
      items.push(
        <div key={m.seq} className="event" role="listitem">
          {eventText(client, m)}
        </div>,
      );
      continue;
    }
    const mine = m.sender_id === meId;
    const tick = mine ? client.tick(cid, m.seq) : null;
    const readBy = mine && group ? client.readBy(cid, m.seq) : [];
    const sender = client.memberName(cid, m.sender_id);
    items.push(
      <div key={m.seq} className={`msg ${mine ? 'mine' : 'theirs'}`} role="listitem" data-seq={m.seq} aria-label={`${mine ? 'You' : sender}, ${formatTime(m.created_at)}`}>
        <div className="bubble">
          {group && !mine && <div className="sender">{sender}</div>}
          {m.deleted ? (
            <div className="body deleted">Message deleted</div>
          ) : (
            <Body text={m.body} quote={m.reply_to ? <ReplyQuote client={client} cid={cid} id={m.reply_to} onJump={(id) => void jumpTo(id)} /> : undefined} />
          )}
          <div className="meta">
            {m.edited_at && !m.deleted && <span className="edited">edited</span>}
            <time dateTime={new Date(m.created_at).toISOString()}>{formatTime(m.created_at)}</time>
            {tick && (
              <span className={`tick tick-${tick}`} data-tick={tick} aria-label={tick === 'read' ? 'Read' : tick === 'delivered' ? 'Delivered' : 'Sent'} title={tick}>
                {tick === 'sent' ? '✓' : '✓✓'}
              </span>
            )}
          </div>
          {group && mine && readBy.length > 0 && (
            <div className="read-by">Read by {readBy.map((u) => client.memberName(cid, u)).join(', ')}</div>
          )}
        </div>
        {!m.deleted && (
          <button className="msg-actions" aria-label="Message actions" aria-haspopup="menu" aria-expanded={menuFor === m.id} onClick={() => setMenuFor(menuFor === m.id ? null : m.id)}>
            ⋯
          </button>
        )}
        {!m.deleted && (m.reactions?.length ?? 0) > 0 && (
          <div className="reactions">
            {m.reactions!.map((r) => {
              const on = !!meId && r.user_ids.includes(meId);
              return (
                <button
                  key={r.emoji}
                  className={`reaction ${on ? 'on' : ''}`}
                  aria-pressed={on}
                  aria-label={`${r.emoji} ${r.user_ids.length}, ${r.user_ids.map((u) => client.memberName(cid, u)).join(', ')}`}
                  disabled={!v2}
                  onClick={() => void client.react(m.id, r.emoji, !on).catch(() => undefined)}
                >
                  {r.emoji} {r.user_ids.length}
                </button>
              );
            })}
          </div>
        )}
        {menuFor === m.id && (
          <MessageMenu
            client={client}
            m={m}
            mine={mine}
            v2={v2}
            close={() => setMenuFor(null)}
            onReply={() => {
              setMenuFor(null);
              onReply(m);
            }}
            onEdit={() => {
              setMenuFor(null);
              onEdit(m);
            }}
          />
        )}
      </div>,
    );
  }
  for (const e of pending) items.push(<PendingRow key={e.client_msg_id} client={client} e={e} onJump={(id) => void jumpTo(id)} />);

  return (
    <div className="messages" ref={ref} onScroll={onScroll}>
      <div className="history-top">
        {loading ? (
          <span role="status">Loading older messages…</span>
        ) : startIdx > 0 || st.hasOlder ? (
          <button className="link" onClick={() => void older()}>
            Load older messages
          </button>
        ) : (
          <span className="hint">Beginning of the conversation</span>
        )}
      </div>
      <div role="list" aria-label="Messages" className="msg-list">
        {items}
      </div>
      {notice && (
        <div className="jump-notice" role="status">
          {notice}
        </div>
      )}
    </div>
  );
}

function PendingRow({ client, e, onJump }: { client: ChatClient; e: OutboxEntry; onJump: (id: string) => void }) {
  return (
    <div className={`msg mine pending ${e.status}`} role="listitem" data-pending={e.client_msg_id}>
      <div className="bubble">
        <Body text={e.body} quote={e.reply_to ? <ReplyQuote client={client} cid={e.conversation_id} id={e.reply_to} onJump={onJump} /> : undefined} />
        <div className="meta">
          {e.status === 'failed' ? (
            <span className="error">Not sent: {errorText({ code: e.error })}</span>
          ) : (
            <span className="tick tick-pending" data-tick="pending" aria-label="Sending" title="sending">
              🕓
            </span>
          )}
        </div>
      </div>
      {e.status === 'failed' && (
        <div className="pending-actions">
          <button onClick={() => client.retry(e.client_msg_id)}>Retry</button>
          <button onClick={() => client.discard(e.client_msg_id)}>Discard</button>
        </div>
      )}
    </div>
  );
}

function MessageMenu({
  client,
  m,
  mine,
  v2,
  close,
  onReply,
  onEdit,
}: {
  client: ChatClient;
  m: Message;
  mine: boolean;
  v2: boolean;
  close: () => void;
  onReply: () => void;
  onEdit: () => void;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    ref.current?.querySelector<HTMLElement>('button')?.focus();
  }, []);
  const run = (p: Promise<unknown>) =>
    p.then(close).catch((e) => setErr(errorText(e)));
  return (
    <div
      className="msg-menu"
      role="menu"
      aria-label="Message actions"
      ref={ref}
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.stopPropagation();
          e.preventDefault();
          close();
        }
      }}
    >
      <button role="menuitem" onClick={onReply}>
        Reply
      </button>
      {mine && v2 && (
        <button role="menuitem" onClick={onEdit}>
          Edit
        </button>
      )}
      {mine && v2 && (
        <button role="menuitem" onClick={() => void run(client.remove(m.id))}>
          Delete
        </button>
      )}
      {v2 &&
        REACTIONS.map((r) => {
          const on = !!client.me && !!m.reactions?.find((x) => x.emoji === r)?.user_ids.includes(client.me.id);
          return (
            <button key={r} role="menuitem" className="emoji" aria-label={`${on ? 'Remove' : 'React with'} ${r}`} onClick={() => void run(client.react(m.id, r, !on))}>
              {r}
            </button>
          );
        })}
      {!v2 && <span className="hint">Edit, delete and reactions need a newer server.</span>}
      <button role="menuitem" onClick={close}>
        Close
      </button>
      {err && (
        <span className="error" role="alert">
          {err}
        </span>
      )}
    </div>
  );
}

function Composer({
  client,
  cid,
  replyTo,
  editing,
  inputRef,
  clear,
}: {
  client: ChatClient;
  cid: string;
  replyTo: Message | null;
  editing: Message | null;
  inputRef: React.RefObject<HTMLTextAreaElement | null>;
  clear: () => void;
}) {
  const draftKey = `chatd.draft.${cid}`;
  const [text, setText] = useState(() => sessionStorage.getItem(draftKey) ?? '');
  const [err, setErr] = useState<string | null>(null);
  const n = codePointLength(text);
  const over = n > MAX_BODY_CODE_POINTS;
  const empty = text.trim().length === 0;

  useEffect(() => {
    if (editing) setText(editing.reply_to ? editing.body : editing.body.replace(LEGACY_QUOTE, ''));
  }, [editing]);
  useEffect(() => {
    if (!editing) sessionStorage.setItem(draftKey, text);
  }, [text, draftKey, editing]);

  const submit = async () => {
    if (empty || over) return;
    setErr(null);
    if (editing) {
      // a reply sent by an older client keeps its "> " quote lines; a real reply has none
      const quote = editing.reply_to ? '' : (editing.body.match(LEGACY_QUOTE)?.[0] ?? '');
      try {
        await client.edit(editing.id, quote + text);
        setText('');
        clear();
      } catch (e) {
        setErr(errorText(e));
      }
      return;
    }
    client.send(cid, text, { replyTo: replyTo?.id ?? null });
    setText('');
    clear();
  };

  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      {(replyTo || editing) && (
        <div className="composer-context">
          <span>
            {editing ? 'Editing message' : `Replying to ${client.memberName(cid, replyTo!.sender_id)}: `}
            {replyTo && <em>{replyTo.deleted ? 'Message deleted' : firstLine(replyTo.body, 60)}</em>}
          </span>
          <button
            type="button"
            className="icon-btn"
            aria-label="Cancel"
            onClick={() => {
              if (editing) setText('');
              clear();
            }}
          >
            ✕
          </button>
        </div>
      )}
      <div className="composer-row">
        <label className="sr-only" htmlFor={`composer-${cid}`}>
          Message
        </label>
        <textarea
          id={`composer-${cid}`}
          ref={inputRef}
          rows={1}
          placeholder="Write a message…"
          value={text}
          aria-describedby={`counter-${cid}`}
          aria-invalid={over}
          onChange={(e) => {
            setText(e.target.value);
            client.typing(cid);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
              e.preventDefault();
              void submit();
            }
          }}
        />
        <button type="submit" className="primary send-btn" disabled={empty || over} aria-label={editing ? 'Save edit' : 'Send'}>
          {editing ? 'Save' : 'Send'}
        </button>
      </div>
      <div className="composer-foot">
        <span id={`counter-${cid}`} className={`counter ${over ? 'over' : n > MAX_BODY_CODE_POINTS * 0.9 ? 'near' : ''}`} aria-live={over ? 'assertive' : 'off'}>
          {n > 0 ? `${n.toLocaleString('en-US')} / ${MAX_BODY_CODE_POINTS.toLocaleString('en-US')}` : ''}
          {over ? ' — too long' : ''}
        </span>
        <span className="hint">Enter to send · Shift+Enter for a new line</span>
        {err && (
          <span className="error" role="alert">
            {err}
          </span>
        )}
      </div>
    </form>
  );
}
