// What this client tells the server about itself at login/register: `device: {type, name}`.
// Pure functions of what the browser reports, so they are unit-testable.
import type { Device } from './rest';

export interface DeviceHints {
  userAgent: string;
  /** TV mode is on (?tv=1 or a TV user agent). */
  tv: boolean;
  /** navigator.userAgentData (Chromium): `mobile` and `platform` when present. */
  uaData?: { mobile?: boolean; platform?: string } | null;
  /** navigator.maxTouchPoints */
  maxTouchPoints?: number;
  /** matchMedia('(pointer: coarse)') — the primary pointer is a finger. */
  coarsePointer?: boolean;
  /** min(screen.width, screen.height) in CSS pixels. */
  screenShortSide?: number;
}

/** The server accepts at most 64 code points. */
const NAME_MAX = 64;

const MOBILE_UA = /Mobi|iPhone|iPod|iPad|Android|Windows Phone|BlackBerry|Opera Mini|IEMobile/i;

export function browserName(ua: string): string | null {
  const rules: [RegExp, string][] = [
    [/SamsungBrowser\//, 'Samsung Internet'],
    [/EdgA?\/|EdgiOS\/|Edge\//, 'Edge'],
    [/OPR\/|OPiOS\/|Opera/, 'Opera'],
    [/YaBrowser\//, 'Yandex Browser'],
    [/Vivaldi\//, 'Vivaldi'],
    [/Firefox\/|FxiOS\//, 'Firefox'],
    [/CriOS\/|Chrome\/|Chromium\//, 'Chrome'],
    [/Safari\//, 'Safari'],
  ];
  for (const [re, name] of rules) if (re.test(ua)) return name;
  return null;
}

export function osName(ua: string, platform?: string): string | null {
  const rules: [RegExp, string][] = [
    [/Tizen/i, 'Tizen'],
    [/Web0S|WebOS/i, 'webOS'],
    [/AFT[A-Z]/, 'Fire TV'],
    [/CrOS/, 'ChromeOS'],
    [/Windows Phone/, 'Windows Phone'],
    [/Windows/, 'Windows'],
    [/iPhone|iPod/, 'iPhone'],
    [/iPad/, 'iPad'],
    [/Android/, 'Android'],
    [/Macintosh|Mac OS X/, 'macOS'],
    [/Linux|X11/, 'Linux'],
  ];
  for (const [re, name] of rules) if (re.test(ua)) return name;
  const p = platform?.trim();
  return p ? p : null;
}

/** "Firefox on Windows", "Safari on iPhone", "Chrome", "Linux", or null when nothing is known. */
export function deviceName(ua: string, platform?: string): string | null {
  const b = browserName(ua);
  const os = osName(ua, platform);
  const name = b && os ? `${b} on ${os}` : (b ?? os);
  return name ? [...name].slice(0, NAME_MAX).join('') : null;
}

/** type: "smart_tv" in TV mode, "mobile" for phone/tablet or touch-first, phone-sized screens, else "web". */
export function deviceType(h: DeviceHints): Device['type'] {
  if (h.tv) return 'smart_tv';
  if (h.uaData?.mobile) return 'mobile';
  if (MOBILE_UA.test(h.userAgent)) return 'mobile';
  const touch = (h.maxTouchPoints ?? 0) > 0;
  // iPadOS reports itself as a Mac; a touch screen that is phone-sized or touch-first is a mobile device
  if (touch && (h.coarsePointer || (h.screenShortSide !== undefined && h.screenShortSide > 0 && h.screenShortSide <= 600))) return 'mobile';
  return 'web';
}

export function detectDevice(h: DeviceHints): Device {
  const type = deviceType(h);
  let name = deviceName(h.userAgent, h.uaData?.platform);
  // iPadOS 13+ poses as a Mac
  if (name && type === 'mobile' && / on macOS$/.test(name) && (h.maxTouchPoints ?? 0) > 1) name = name.replace(/macOS$/, 'iPad');
  return name ? { type, name } : { type };
}

/** Reads the hints from the running browser (safe outside a browser: falls back to empty values). */
export function browserHints(tv: boolean): DeviceHints {
  const nav = (globalThis as { navigator?: Navigator & { userAgentData?: { mobile?: boolean; platform?: string } } }).navigator;
  const mm = (q: string) => {
    try {
      return globalThis.matchMedia?.(q).matches ?? false;
    } catch {
      return false;
    }
  };
  const scr = (globalThis as { screen?: Screen }).screen;
  return {
    userAgent: nav?.userAgent ?? '',
    tv,
    uaData: nav?.userAgentData ?? null,
    maxTouchPoints: nav?.maxTouchPoints ?? 0,
    coarsePointer: mm('(pointer: coarse)'),
    screenShortSide: scr ? Math.min(scr.width, scr.height) : undefined,
  };
}
