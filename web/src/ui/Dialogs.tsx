import { useEffect, useState } from 'react';
import type { ChatClient, ConvState } from '../api/client';
import type { Invite, User } from '../api/types';
import type { Theme } from '../env';
import { Avatar, Dialog } from './Common';
import { errorText } from './hooks';

function useUserSearch(client: ChatClient, q: string) {
  const [users, setUsers] = useState<User[]>([]);
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    const t = q.trim();
    if (!t) {
      setUsers([]);
      return;
    }
    let live = true;
    const h = setTimeout(() => {
      client.rest
        .searchUsers(t.slice(0, 64), 20)
        .then((u) => live && (setUsers(u), setErr(null)))
        .catch((e) => live && setErr(errorText(e)));
    }, 200);
    return () => {
      live = false;
      clearTimeout(h);
    };
  }, [client, q]);
  return { users, err };
}

export function NewChatDialog({ client, onClose, onOpen }: { client: ChatClient; onClose: () => void; onOpen: (id: string) => void }) {
  const [q, setQ] = useState('');
  const { users, err } = useUserSearch(client, q);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  return (
    <Dialog title="New chat" onClose={onClose}>
      <label>
        Find people
        <input type="search" placeholder="Username or name" value={q} onChange={(e) => setQ(e.target.value)} aria-controls="user-results" />
      </label>
      <ul className="user-results" id="user-results" aria-label="Search results">
        {users.map((u) => (
          <li key={u.id}>
            <button
              className="user-item"
              disabled={busy !== null}
              onClick={async () => {
                setBusy(u.id);
                try {
                  onOpen(await client.startDirect(u.id));
                } catch (e) {
                  setError(errorText(e));
                  setBusy(null);
                }
              }}
            >
              <Avatar id={u.id} name={u.display_name || u.username} size="sm" />
              <span>
                {u.display_name || u.username} <span className="hint">@{u.username}</span>
                {u.id === client.me?.id && <span className="hint"> (you — notes to self)</span>}
              </span>
            </button>
          </li>
        ))}
        {q.trim() && users.length === 0 && !err && <li className="hint">No one found.</li>}
      </ul>
      {(err || error) && (
        <p className="error" role="alert">
          {err || error}
        </p>
      )}
    </Dialog>
  );
}

function MemberPicker({ client, picked, setPicked, exclude = [] }: { client: ChatClient; picked: User[]; setPicked: (u: User[]) => void; exclude?: string[] }) {
  const [q, setQ] = useState('');
  const { users, err } = useUserSearch(client, q);
  const skip = new Set([client.me?.id, ...exclude, ...picked.map((p) => p.id)]);
  return (
    <div className="picker">
      {picked.length > 0 && (
        <ul className="chips" aria-label="Selected people">
          {picked.map((u) => (
            <li key={u.id}>
              <button className="chip" onClick={() => setPicked(picked.filter((p) => p.id !== u.id))} aria-label={`Remove ${u.display_name || u.username}`}>
                {u.display_name || u.username} ✕
              </button>
            </li>
          ))}
        </ul>
      )}
      <label>
        Add people
        <input type="search" placeholder="Username or name" value={q} onChange={(e) => setQ(e.target.value)} />
      </label>
      <ul className="user-results" aria-label="Search results">
        {users
          .filter((u) => !skip.has(u.id))
          .map((u) => (
            <li key={u.id}>
              <button
                className="user-item"
                onClick={() => {
                  setPicked([...picked, u]);
                  setQ('');
                }}
              >
                <Avatar id={u.id} name={u.display_name || u.username} size="sm" />
                <span>
                  {u.display_name || u.username} <span className="hint">@{u.username}</span>
                </span>
              </button>
            </li>
          ))}
      </ul>
      {err && <p className="error">{err}</p>}
    </div>
  );
}

export function NewGroupDialog({ client, onClose, onOpen }: { client: ChatClient; onClose: () => void; onOpen: (id: string) => void }) {
  const [name, setName] = useState('');
  const [picked, setPicked] = useState<User[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Dialog title="New group" onClose={onClose}>
      <label>
        Group name
        <input value={name} maxLength={100} onChange={(e) => setName(e.target.value)} />
      </label>
      <MemberPicker client={client} picked={picked} setPicked={setPicked} />
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div className="dialog-actions">
        <button onClick={onClose}>Cancel</button>
        <button
          className="primary"
          disabled={busy || !name.trim()}
          onClick={async () => {
            setBusy(true);
            setError(null);
            try {
              onOpen(await client.createGroup(name.trim(), picked.map((p) => p.id)));
            } catch (e) {
              setError(errorText(e));
              setBusy(false);
            }
          }}
        >
          Create group
        </button>
      </div>
    </Dialog>
  );
}

export function ManageGroupDialog({ client, st, onClose, onLeft }: { client: ChatClient; st: ConvState; onClose: () => void; onLeft: () => void }) {
  const c = st.conv;
  const meId = client.me!.id;
  const myRole = c.members.find((m) => m.user_id === meId)?.role ?? 'member';
  const admin = myRole === 'owner' || myRole === 'admin';
  const [name, setName] = useState(c.name ?? '');
  const [picked, setPicked] = useState<User[]>([]);
  const [invites, setInvites] = useState<Invite[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);

  useEffect(() => {
    if (admin) client.rest.invites(c.id).then(setInvites).catch(() => undefined);
  }, [client, c.id, admin]);

  const run = async (fn: () => Promise<unknown>, ok?: string) => {
    setError(null);
    setInfo(null);
    try {
      await fn();
      if (ok) setInfo(ok);
    } catch (e) {
      setError(errorText(e));
    }
  };
  const link = (i: Invite) => `${location.origin}/?join=${encodeURIComponent(i.conversation_id)}&code=${encodeURIComponent(i.code)}`;

  return (
    <Dialog title={`Group: ${c.name ?? ''}`} onClose={onClose} wide>
      {admin && (
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            void run(() => client.manage(c.id, (r) => r.renameGroup(c.id, name.trim())), 'Renamed.');
          }}
        >
          <label className="grow">
            Name
            <input value={name} maxLength={100} onChange={(e) => setName(e.target.value)} />
          </label>
          <button type="submit" disabled={!name.trim() || name === c.name}>
            Rename
          </button>
        </form>
      )}
      <h3>Members ({c.members.length})</h3>
      <ul className="members">
        {c.members.map((m) => (
          <li key={m.user_id}>
            <Avatar id={m.user_id} name={m.display_name || m.username} size="sm" online={client.presence.get(m.user_id)?.status === 'online'} />
            <span className="grow">
              {m.display_name || m.username} <span className="hint">@{m.username}</span> {m.role !== 'member' && <span className="role">{m.role}</span>}
            </span>
            {admin && m.user_id !== meId && m.role !== 'owner' && (
              <>
                <button
                  onClick={() =>
                    void run(() => client.manage(c.id, (r) => r.setRole(c.id, m.user_id, m.role === 'admin' ? 'member' : 'admin')))
                  }
                >
                  {m.role === 'admin' ? 'Make member' : 'Make admin'}
                </button>
                <button className="danger" onClick={() => void run(() => client.manage(c.id, (r) => r.removeMember(c.id, m.user_id)))}>
                  Remove
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
      {admin && (
        <>
          <h3>Add members</h3>
          <MemberPicker client={client} picked={picked} setPicked={setPicked} exclude={c.members.map((m) => m.user_id)} />
          <button
            disabled={!picked.length}
            onClick={() =>
              void run(async () => {
                await client.manage(c.id, (r) => r.addMembers(c.id, picked.map((p) => p.id)));
                setPicked([]);
              }, 'Members added.')
            }
          >
            Add {picked.length || ''} {picked.length === 1 ? 'person' : 'people'}
          </button>
          <h3>Invite links</h3>
          <ul className="invites">
            {invites.map((i) => (
              <li key={i.code}>
                <input readOnly value={link(i)} aria-label="Invite link" onFocus={(e) => e.target.select()} />
                <button onClick={() => void navigator.clipboard?.writeText(link(i)).then(() => setInfo('Link copied.'), () => undefined)}>Copy</button>
                <button
                  className="danger"
                  onClick={() =>
                    void run(async () => {
                      await client.rest.revokeInvite(c.id, i.code);
                      setInvites(invites.filter((x) => x.code !== i.code));
                    })
                  }
                >
                  Revoke
                </button>
              </li>
            ))}
          </ul>
          <button
            onClick={() =>
              void run(async () => {
                const i = await client.rest.createInvite(c.id);
                setInvites([...invites, i]);
              })
            }
          >
            Create invite link
          </button>
        </>
      )}
      {info && (
        <p className="ok" role="status">
          {info}
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <div className="dialog-actions">
        <button className="danger" onClick={() => void run(async () => (await client.leave(c.id), onLeft()))}>
          Leave group
        </button>
        <button onClick={onClose}>Done</button>
      </div>
    </Dialog>
  );
}

export function ProfileDialog({
  client,
  onClose,
  theme,
  toggleTheme,
  onDevices,
}: {
  client: ChatClient;
  onClose: () => void;
  theme: Theme;
  toggleTheme: () => void;
  onDevices: () => void;
}) {
  const me = client.me!;
  const [f, setF] = useState({ display_name: me.display_name ?? '', bio: me.bio ?? '', profile_picture: me.profile_picture ?? '' });
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  return (
    <Dialog title="Your profile" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await client.updateProfile(f);
            setMsg({ ok: true, text: 'Profile saved.' });
          } catch (err) {
            setMsg({ ok: false, text: errorText(err) });
          }
        }}
      >
        <p>
          Signed in as <strong>@{me.username}</strong>
          {me.email ? ` (${me.email})` : ''}
        </p>
        <label>
          Display name
          <input name="display_name" maxLength={64} value={f.display_name} onChange={(e) => setF({ ...f, display_name: e.target.value })} />
        </label>
        <label>
          Bio
          <textarea name="bio" maxLength={500} rows={3} value={f.bio} onChange={(e) => setF({ ...f, bio: e.target.value })} />
        </label>
        <label>
          Picture URL
          <input name="profile_picture" maxLength={255} value={f.profile_picture} onChange={(e) => setF({ ...f, profile_picture: e.target.value })} />
        </label>
        {msg && (
          <p className={msg.ok ? 'ok' : 'error'} role={msg.ok ? 'status' : 'alert'}>
            {msg.text}
          </p>
        )}
        <div className="dialog-actions">
          <button type="button" onClick={onDevices}>
            Your devices
          </button>
          <button type="button" onClick={toggleTheme}>
            {theme === 'dark' ? 'Light theme' : 'Dark theme'}
          </button>
          <button type="button" className="danger" onClick={() => void client.logout()}>
            Log out
          </button>
          <button type="submit" className="primary">
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}
