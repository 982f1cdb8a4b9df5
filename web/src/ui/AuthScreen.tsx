import { useState } from 'react';
import type { ChatClient } from '../api/client';
import { errorText } from './hooks';

export function AuthScreen({ client }: { client: ChatClient }) {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [f, setF] = useState({ login: '', username: '', email: '', password: '', display_name: '' });
  const set = (k: keyof typeof f) => (e: React.ChangeEvent<HTMLInputElement>) => setF({ ...f, [k]: e.target.value });

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === 'login') await client.login(f.login.trim(), f.password);
      else
        await client.register({
          username: f.username.trim(),
          email: f.email.trim(),
          password: f.password,
          display_name: f.display_name.trim() || undefined,
        });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="auth">
      <div className="auth-card">
        <h1 className="brand">
          <img src="/icons/favicon.svg" alt="" width="40" height="40" /> chatd
        </h1>
        <div className="tabs" role="tablist" aria-label="Sign in or register">
          <button role="tab" aria-selected={mode === 'login'} className={mode === 'login' ? 'active' : ''} onClick={() => setMode('login')}>
            Sign in
          </button>
          <button role="tab" aria-selected={mode === 'register'} className={mode === 'register' ? 'active' : ''} onClick={() => setMode('register')}>
            Create account
          </button>
        </div>
        <form onSubmit={submit} aria-label={mode === 'login' ? 'Sign in' : 'Create account'}>
          {mode === 'login' ? (
            <label>
              Username or email
              <input name="login" autoComplete="username" required value={f.login} onChange={set('login')} />
            </label>
          ) : (
            <>
              <label>
                Username
                <input name="username" autoComplete="username" required minLength={3} maxLength={32} pattern="[A-Za-z0-9_.\-]+" value={f.username} onChange={set('username')} />
              </label>
              <label>
                Display name <span className="hint">(optional)</span>
                <input name="display_name" autoComplete="name" maxLength={64} value={f.display_name} onChange={set('display_name')} />
              </label>
              <label>
                Email
                <input name="email" type="email" autoComplete="email" required value={f.email} onChange={set('email')} />
              </label>
            </>
          )}
          <label>
            Password
            <input
              name="password"
              type="password"
              autoComplete={mode === 'login' ? 'current-password' : 'new-password'}
              required
              minLength={mode === 'register' ? 8 : 1}
              value={f.password}
              onChange={set('password')}
            />
          </label>
          {error && (
            <p className="error" role="alert">
              {error}
            </p>
          )}
          <button className="primary" type="submit" disabled={busy}>
            {busy ? 'Please wait…' : mode === 'login' ? 'Sign in' : 'Create account'}
          </button>
        </form>
      </div>
    </main>
  );
}
