import { useSyncExternalStore } from 'react';
import type { ChatClient } from '../api/client';

/** Re-render whenever the client state changes. */
export function useClient(client: ChatClient): number {
  return useSyncExternalStore(client.subscribe, client.getVersion, client.getVersion);
}

const ERRORS: Record<string, string> = {
  invalid_credentials: 'Wrong username/email or password.',
  username_taken: 'That username is taken.',
  email_taken: 'That email is already registered.',
  invalid_username: 'Username: 3–32 characters of letters, digits, _ . -',
  invalid_email: 'Please enter a valid email address.',
  weak_password: 'Password must be at least 8 characters.',
  rate_limited: 'Too many attempts. Please wait a moment.',
  not_implemented: 'This server does not support that yet.',
  forbidden: 'You are not allowed to do that.',
  not_found: 'Not found (or you are no longer a member).',
  group_full: 'The group is full (100 members max).',
  message_too_long: 'Message is too long (100,000 characters max).',
  empty_message: 'Message is empty.',
  offline: 'You are offline.',
  timeout: 'The server did not answer in time.',
};

export function errorText(e: unknown): string {
  const code = (e as { code?: string })?.code ?? (e as Error)?.message;
  if (code && ERRORS[code]) return ERRORS[code];
  if ((e as { status?: number })?.status === 501) return ERRORS.not_implemented;
  if (e instanceof TypeError) return 'Cannot reach the server.';
  return (e as Error)?.message || 'Something went wrong.';
}

export function formatTime(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function formatDay(ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const y = new Date();
  y.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === y.toDateString()) return 'Yesterday';
  return d.toLocaleDateString([], { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[1][0] : (parts[0] ?? '?').slice(0, 2);
  return [...s].slice(0, 2).join('').toUpperCase();
}

/** Stable hue per id for avatars. */
export function hue(id: string): number {
  let h = 7;
  for (const c of id) h = (h * 131 + c.charCodeAt(0) * 97) % 360;
  return h;
}
