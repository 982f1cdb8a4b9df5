import { useCallback, useEffect, useRef, useState } from 'react';
import type { ChatClient } from '../api/client';
import { applyTheme, type Theme } from '../env';
import { installTvKeys } from '../tv';
import { AuthScreen } from './AuthScreen';
import { Avatar } from './Common';
import { ConversationView } from './Conversation';
import { DevicesDialog } from './Devices';
import { ManageGroupDialog, NewChatDialog, NewGroupDialog, ProfileDialog } from './Dialogs';
import { errorText, formatTime, useClient } from './hooks';
import { preview } from './text';

/** What Back (Escape / Backspace / remote Back) does right now; Main replaces it. */
const backAction: { current: () => void } = { current: () => undefined };

export function App({ client, tv }: { client: ChatClient; tv: boolean }) {
  useClient(client);
  const [, force] = useState(0);
  useEffect(() => client.onAuth(() => force((x) => x + 1)), [client]);
  useEffect(() => (tv ? installTvKeys(() => backAction.current()) : undefined), [tv]);
  if (!client.loggedIn) return <AuthScreen client={client} />;
  return <Main key={client.me!.id} client={client} tv={tv} />;
}

type DialogKind = null | 'newchat' | 'newgroup' | 'profile' | 'manage' | 'devices';

function Main({ client, tv }: { client: ChatClient; tv: boolean }) {
  useClient(client);
  const [activeId, setActiveId] = useState<string | null>(null);
  const [dialog, setDialog] = useState<DialogKind>(null);
  const [menuOpen, setMenuOpen] = useState<(() => void) | null>(null);
  const [theme, setTheme] = useState<Theme>((document.documentElement.dataset.theme as Theme) || 'light');
  const [notice, setNotice] = useState<string | null>(null);
  const announcer = useRef<HTMLDivElement>(null);

  useEffect(() => {
    void client.start();
    return () => client.stop();
  }, [client]);

  // join via invite link: /?join=<conversation_id>&code=<code>
  useEffect(() => {
    const p = new URLSearchParams(location.search);
    const cid = p.get('join');
    const code = p.get('code');
    if (!cid || !code) return;
    p.delete('join');
    p.delete('code');
    history.replaceState(null, '', location.pathname + (p.toString() ? '?' + p : ''));
    client
      .joinByInvite(cid, code)
      .then((id) => setActiveId(id))
      .catch((e) => setNotice('Could not join: ' + errorText(e)));
  }, [client]);

  const open = useCallback(
    (id: string | null) => {
      setActiveId(id);
      if (id) void client.open(id);
      else client.activeId = null;
    },
    [client],
  );

  // announce incoming messages (screen readers)
  useEffect(
    () =>
      client.onIncoming((m) => {
        const el = announcer.current;
        if (!el || m.type !== 'text') return;
        const p = document.createElement('p');
        const st = client.convs.get(m.conversation_id);
        p.textContent = `${client.memberName(m.conversation_id, m.sender_id)}${st && st.conv.type === 'group' ? ' in ' + client.conversationTitle(st.conv) : ''}: ${m.deleted ? 'deleted' : m.body.slice(0, 200)}`;
        el.appendChild(p);
        while (el.childNodes.length > 5) el.removeChild(el.firstChild!);
      }),
    [client],
  );

  const back = useCallback(() => {
    if (dialog) return setDialog(null);
    if (menuOpen) return menuOpen();
    if (activeId) {
      const id = activeId;
      open(null);
      // Focus the conversation we came from at the next frame, unless focus has gone elsewhere by
      // then (TV: the user pressed Up to "New chat" and opened it; the frame must not take it back).
      requestAnimationFrame(() => {
        const a = document.activeElement;
        if (a && a !== document.body && !a.classList.contains('conv-item')) return;
        document.querySelector<HTMLElement>(`[data-conv-id="${id}"]`)?.focus();
      });
    }
  }, [dialog, menuOpen, activeId, open]);
  useEffect(() => {
    backAction.current = back;
    return () => {
      backAction.current = () => undefined;
    };
  }, [back]);

  // TV: keep focus somewhere useful (first conversation, else "New chat") until the user moves it.
  // Once focus goes anywhere else, the element focused here is forgotten: a user who comes back to
  // it (arrows up to "New chat", first focused while the list was empty) keeps it on a later render.
  const autoFocused = useRef<Element | null>(null);
  useEffect(() => {
    if (!tv) return;
    const moved = (e: FocusEvent) => {
      if (e.target !== autoFocused.current) autoFocused.current = null;
    };
    document.addEventListener('focusin', moved);
    return () => document.removeEventListener('focusin', moved);
  }, [tv]);
  useEffect(() => {
    if (!tv || activeId || dialog) return;
    const a = document.activeElement;
    if (a && a !== document.body && a !== autoFocused.current) return;
    const el = document.querySelector<HTMLElement>('.conv-item') ?? document.querySelector<HTMLElement>('.side-buttons .primary');
    if (el && el !== a) {
      el.focus();
      autoFocused.current = el;
    }
  });

  const toggleTheme = () => {
    const t = theme === 'dark' ? 'light' : 'dark';
    applyTheme(t);
    setTheme(t);
  };

  const list = client.conversationList();
  const active = activeId ? client.convs.get(activeId) : undefined;
  const me = client.me!;
  const statusText =
    client.status === 'open'
      ? null
      : client.status === 'waiting' || client.status === 'closed'
        ? navigator.onLine
          ? 'Reconnecting… messages you send will be delivered when the connection is back.'
          : 'You are offline. Messages you send will be delivered when you are back online.'
        : 'Connecting…';

  return (
    <div className={`app ${activeId ? 'view-conv' : 'view-list'}`}>
      <aside className="sidebar" aria-label="Conversations">
        <header className="side-head">
          <button className="me-btn" onClick={() => setDialog('profile')} aria-label={`Profile: ${me.display_name || me.username}`}>
            <Avatar id={me.id} name={me.display_name || me.username} />
            <span className="me-name">{me.display_name || me.username}</span>
          </button>
          <div className="side-actions">
            <button className="icon-btn" onClick={toggleTheme} aria-label={theme === 'dark' ? 'Switch to light theme' : 'Switch to dark theme'} title="Theme">
              {theme === 'dark' ? '☀' : '☾'}
            </button>
            <button className="icon-btn" onClick={() => void client.logout()} aria-label="Log out" title="Log out">
              ⎋
            </button>
          </div>
        </header>
        <div className="side-buttons">
          <button className="primary" onClick={() => setDialog('newchat')}>
            + New chat
          </button>
          <button onClick={() => setDialog('newgroup')}>+ New group</button>
        </div>
        {statusText && (
          <p className="status-banner" role="status">
            {statusText}
          </p>
        )}
        {notice && (
          <p className="status-banner warn" role="alert">
            {notice}{' '}
            <button className="link" onClick={() => setNotice(null)}>
              Dismiss
            </button>
          </p>
        )}
        <nav aria-label="Conversation list">
          <ul className="conv-list">
            {list.length === 0 && <li className="empty">No conversations yet. Start one with “New chat”.</li>}
            {list.map((st) => {
              const c = st.conv;
              const title = client.conversationTitle(c);
              const other = c.type === 'direct' ? client.otherMember(c) : null;
              const online = other ? client.presence.get(other.user_id)?.status === 'online' : undefined;
              const typing = client.typingUsers(c.id);
              return (
                <li key={c.id}>
                  <button
                    className={`conv-item ${c.id === activeId ? 'active' : ''}`}
                    data-conv-id={c.id}
                    aria-current={c.id === activeId ? 'true' : undefined}
                    onClick={() => open(c.id)}
                  >
                    <Avatar id={other?.user_id ?? c.id} name={title} online={other ? online : undefined} />
                    <span className="conv-text">
                      <span className="conv-title">
                        <span className="conv-name">{title}</span>
                        {c.last_message && <time className="conv-time">{formatTime(c.last_message.created_at)}</time>}
                      </span>
                      <span className={`conv-preview ${typing.length ? 'typing' : ''}`}>
                        {typing.length ? (c.type === 'group' ? `${client.memberName(c.id, typing[0])} is typing…` : 'typing…') : preview(client, st)}
                      </span>
                    </span>
                    {st.unread > 0 && (
                      <span className="badge" aria-label={`${st.unread} unread`}>
                        {st.unread > 99 ? '99+' : st.unread}
                      </span>
                    )}
                    {online !== undefined && <span className="sr-only">{online ? ', online' : ', offline'}</span>}
                  </button>
                </li>
              );
            })}
          </ul>
        </nav>
      </aside>
      <main className="conv" aria-label="Conversation">
        {active ? (
          <ConversationView
            key={active.conv.id}
            client={client}
            st={active}
            tv={tv}
            onBack={() => open(null)}
            onManage={() => setDialog('manage')}
            setMenuCloser={(fn) => setMenuOpen(() => fn)}
          />
        ) : (
          <div className="placeholder">
            <p>Select a conversation or start a new one.</p>
          </div>
        )}
      </main>
      <div className="sr-only" role="log" aria-live="polite" aria-label="Incoming messages" ref={announcer} />
      {dialog === 'newchat' && (
        <NewChatDialog
          client={client}
          onClose={() => setDialog(null)}
          onOpen={(id) => {
            setDialog(null);
            open(id);
          }}
        />
      )}
      {dialog === 'newgroup' && (
        <NewGroupDialog
          client={client}
          onClose={() => setDialog(null)}
          onOpen={(id) => {
            setDialog(null);
            open(id);
          }}
        />
      )}
      {dialog === 'profile' && (
        <ProfileDialog client={client} onClose={() => setDialog(null)} theme={theme} toggleTheme={toggleTheme} onDevices={() => setDialog('devices')} />
      )}
      {dialog === 'devices' && <DevicesDialog client={client} onClose={() => setDialog(null)} />}
      {dialog === 'manage' && active && (
        <ManageGroupDialog
          client={client}
          st={active}
          onClose={() => setDialog(null)}
          onLeft={() => {
            setDialog(null);
            open(null);
          }}
        />
      )}
    </div>
  );
}
