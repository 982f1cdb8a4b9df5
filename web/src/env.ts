// Environment detection: TV mode, theme, URLs. No React here.

export const TV_UA = /SMART-TV|SmartTV|Tizen|Web0S|WebOS|HbbTV|BRAVIA|AFT/i;

export function detectTv(search = location.search, ua = navigator.userAgent): boolean {
  const p = new URLSearchParams(search).get('tv');
  if (p === '1') return true;
  if (p === '0') return false;
  return TV_UA.test(ua);
}

export type Theme = 'light' | 'dark';
const THEME_KEY = 'chatd.theme';

export function initialTheme(): Theme {
  const saved = localStorage.getItem(THEME_KEY);
  if (saved === 'light' || saved === 'dark') return saved;
  return matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function applyTheme(t: Theme) {
  document.documentElement.dataset.theme = t;
  localStorage.setItem(THEME_KEY, t);
}

export function wsUrl(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}
