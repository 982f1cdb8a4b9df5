import { describe, expect, it } from 'vitest';
import { detectDevice, deviceName, deviceType } from './device';

const UA = {
  chromeLinux: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36',
  headless: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/130.0.0.0 Safari/537.36',
  firefoxWin: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0',
  edgeWin: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0',
  safariMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  android: 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36',
  tizen: 'Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0 TV Safari/537.36',
  webos: 'Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager',
};

describe('device detection', () => {
  it('names the browser and OS', () => {
    expect(deviceName(UA.chromeLinux)).toBe('Chrome on Linux');
    expect(deviceName(UA.firefoxWin)).toBe('Firefox on Windows');
    expect(deviceName(UA.edgeWin)).toBe('Edge on Windows');
    expect(deviceName(UA.safariMac)).toBe('Safari on macOS');
    expect(deviceName(UA.iphone)).toBe('Safari on iPhone');
    expect(deviceName(UA.android)).toBe('Chrome on Android');
    expect(deviceName(UA.tizen)).toBe('Samsung Internet on Tizen');
    expect(deviceName(UA.webos)).toBe('Chrome on webOS');
    expect(deviceName('curl/8', 'Linux')).toBe('Linux');
    expect(deviceName('')).toBeNull();
  });

  it('keeps names within 64 code points', () => {
    expect([...(deviceName('x', '😀'.repeat(100)) ?? '')].length).toBe(64);
  });

  it('TV mode is smart_tv whatever the user agent', () => {
    expect(detectDevice({ userAgent: UA.chromeLinux, tv: true })).toEqual({ type: 'smart_tv', name: 'Chrome on Linux' });
    expect(deviceType({ userAgent: UA.iphone, tv: true })).toBe('smart_tv');
  });

  it('phones, tablets and touch-first small screens are mobile', () => {
    expect(deviceType({ userAgent: UA.iphone, tv: false })).toBe('mobile');
    expect(deviceType({ userAgent: UA.android, tv: false })).toBe('mobile');
    expect(deviceType({ userAgent: UA.chromeLinux, tv: false, uaData: { mobile: true } })).toBe('mobile');
    expect(deviceType({ userAgent: UA.chromeLinux, tv: false, maxTouchPoints: 5, coarsePointer: true })).toBe('mobile');
    expect(deviceType({ userAgent: UA.chromeLinux, tv: false, maxTouchPoints: 5, screenShortSide: 360 })).toBe('mobile');
    // iPadOS poses as a Mac
    expect(detectDevice({ userAgent: UA.safariMac, tv: false, maxTouchPoints: 5, coarsePointer: true })).toEqual({ type: 'mobile', name: 'Safari on iPad' });
  });

  it('desktops (also with a touch screen and a mouse) are web', () => {
    expect(detectDevice({ userAgent: UA.firefoxWin, tv: false })).toEqual({ type: 'web', name: 'Firefox on Windows' });
    expect(deviceType({ userAgent: UA.headless, tv: false, maxTouchPoints: 10, coarsePointer: false, screenShortSide: 1080 })).toBe('web');
    expect(deviceType({ userAgent: UA.safariMac, tv: false, maxTouchPoints: 0 })).toBe('web');
  });

  it('omits the name when nothing is known', () => {
    expect(detectDevice({ userAgent: '', tv: false })).toEqual({ type: 'web' });
  });
});
