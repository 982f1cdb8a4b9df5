import { useCallback, useEffect, useRef, useState } from 'react';
import type { ChatClient } from '../api/client';
import { ApiError } from '../api/rest';
import type { DeviceSession } from '../api/types';
import { Dialog } from './Common';
import { errorText } from './hooks';

const TYPES: Record<string, { icon: string; label: string }> = {
  web: { icon: '💻', label: 'Web browser' },
  mobile: { icon: '📱', label: 'Phone or tablet' },
  smart_tv: { icon: '📺', label: 'TV' },
};
const typeOf = (t: string) => TYPES[t] ?? TYPES.web;
export const deviceTitle = (d: DeviceSession) => d.name.trim() || typeOf(d.type).label;

/** "active now", "active 5 minutes ago", "active yesterday at 14:02", "active on 3 May 2026". */
export function lastActiveText(ms: number, now = Date.now()): string {
  const diff = Math.max(0, now - ms);
  const min = Math.floor(diff / 60_000);
  if (min < 2) return 'Active now';
  if (min < 60) return `Active ${min} minutes ago`;
  const h = Math.floor(min / 60);
  if (h < 24) return `Active ${h} hour${h === 1 ? '' : 's'} ago`;
  const d = new Date(ms);
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === y.toDateString()) return `Active yesterday at ${time}`;
  return `Active on ${d.toLocaleDateString([], { year: 'numeric', month: 'long', day: 'numeric' })}`;
}

/** "Your devices": every logged-in session of the account; log out the others (after a confirmation). */
export function DevicesDialog({ client, onClose }: { client: ChatClient; onClose: () => void }) {
  const [devices, setDevices] = useState<DeviceSession[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const listRef = useRef<HTMLUListElement>(null);
  const doneRef = useRef<HTMLButtonElement>(null);

  /** Focus the confirm dialog's safe choice / go back to the row's button / fall back to Done. */
  // The target appears once React commits the state change, which may be a few frames later on a
  // slow device: retry for ~20 frames before falling back to Done.
  const focusSoon = (sel: string, frames = 20) =>
    requestAnimationFrame(() => {
      const el = listRef.current?.querySelector<HTMLElement>(sel);
      if (el) el.focus();
      else if (frames > 0) focusSoon(sel, frames - 1);
      else doneRef.current?.focus();
    });

  const loaded = useRef(false);
  const initialFocus = useRef(false);
  // First load: start on the first device that can be logged out (TV: no hunting for it), else on
  // Done. In an effect, so the rows exist: a requestAnimationFrame could run before React commits.
  useEffect(() => {
    if (!initialFocus.current || devices === null) return;
    initialFocus.current = false;
    (listRef.current?.querySelector<HTMLElement>('.device-logout') ?? doneRef.current)?.focus();
  }, [devices]);
  const load = useCallback(async () => {
    try {
      setDevices(await client.rest.devices());
      setError(null);
      if (!loaded.current) {
        loaded.current = true;
        initialFocus.current = true; // applied after the rows are committed (effect below)
      }
    } catch (e) {
      setError(errorText(e));
    }
  }, [client]);
  useEffect(() => {
    void load();
  }, [load]);

  const ask = (d: DeviceSession) => {
    setConfirming(d.device_id);
    setInfo(null);
    setError(null);
    focusSoon(`[data-device-id="${d.device_id}"] .confirm-cancel`);
  };
  const cancel = (d: DeviceSession) => {
    setConfirming(null);
    focusSoon(`[data-device-id="${d.device_id}"] .device-logout`);
  };
  const revoke = async (d: DeviceSession) => {
    setBusy(true);
    setError(null);
    const others = (devices ?? []).filter((x) => !x.current && x.device_id !== d.device_id);
    try {
      await client.rest.revokeDevice(d.device_id);
      setInfo(`${deviceTitle(d)} was logged out.`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) setInfo(`${deviceTitle(d)} was already logged out.`);
      else {
        setError(errorText(e));
        setBusy(false);
        setConfirming(null);
        focusSoon(`[data-device-id="${d.device_id}"] .device-logout`);
        return;
      }
    }
    setConfirming(null);
    setDevices((list) => (list ?? []).filter((x) => x.device_id !== d.device_id));
    setBusy(false);
    // focus the next device that can be logged out, else "Done"
    if (others.length) focusSoon(`[data-device-id="${others[0].device_id}"] .device-logout`);
    else requestAnimationFrame(() => doneRef.current?.focus());
    void load();
  };

  return (
    <Dialog title="Your devices" onClose={onClose} wide>
      <p className="hint devices-intro">Everywhere you are logged in. Logging a device out ends its session there right away.</p>
      {devices === null && !error && <p role="status">Loading…</p>}
      {devices && (
        <ul className="devices" aria-label="Logged-in devices" ref={listRef}>
          {devices.length === 0 && <li className="hint">No devices.</li>}
          {devices.map((d) => {
            const t = typeOf(d.type);
            const title = deviceTitle(d);
            return (
              <li key={d.device_id} className={`device ${d.current ? 'current' : ''}`} data-device-id={d.device_id}>
                <span className="device-icon" aria-hidden="true">
                  {t.icon}
                </span>
                <span className="device-text">
                  <span className="device-name">
                    {title}
                    {d.current && <span className="this-device">This device</span>}
                  </span>
                  <span className="device-meta">
                    {d.name.trim() ? `${t.label} · ` : ''}
                    <time dateTime={new Date(d.last_active).toISOString()}>{d.current ? 'Active now' : lastActiveText(d.last_active)}</time>
                  </span>
                </span>
                {!d.current &&
                  (confirming === d.device_id ? (
                    <span
                      className="device-confirm"
                      role="group"
                      aria-label={`Log out ${title}?`}
                      onKeyDown={(e) => {
                        // Back inside the confirmation cancels it (not the whole screen)
                        if (e.key === 'Escape' || e.key === 'Backspace' || e.key === 'GoBack' || e.key === 'BrowserBack') {
                          e.preventDefault();
                          e.stopPropagation();
                          cancel(d);
                        }
                      }}
                    >
                      <span className="confirm-q">Log out {title}?</span>
                      <button className="confirm-cancel" disabled={busy} onClick={() => cancel(d)}>
                        Cancel
                      </button>
                      <button className="danger confirm-ok" disabled={busy} onClick={() => void revoke(d)}>
                        Log out
                      </button>
                    </span>
                  ) : (
                    <button className="danger device-logout" disabled={busy} onClick={() => ask(d)} aria-label={`Log out ${title}`}>
                      Log out
                    </button>
                  ))}
              </li>
            );
          })}
        </ul>
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
        <button onClick={() => void load()}>Refresh</button>
        <button ref={doneRef} className="primary" onClick={onClose}>
          Done
        </button>
      </div>
    </Dialog>
  );
}
