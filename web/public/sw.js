// chatd service worker: caches the app shell so the app opens offline.
// API calls and the WebSocket are never cached (the app keeps its data in IndexedDB).
const CACHE = 'chatd-shell-v1';
const SHELL = ['/', '/index.html', '/manifest.webmanifest', '/icons/favicon.svg', '/icons/icon-192.png', '/icons/icon-512.png'];

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(SHELL);
      // also cache the hashed bundles referenced by index.html
      try {
        const html = await (await fetch('/index.html', { cache: 'no-store' })).text();
        const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
        await cache.addAll(assets);
      } catch (e) {
        /* best effort */
      }
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith('/api/') || url.pathname === '/ws' || url.pathname === '/metrics' || url.pathname === '/healthz') return;

  if (req.mode === 'navigate') {
    // network first, fall back to the cached shell (SPA)
    event.respondWith(
      (async () => {
        try {
          const res = await fetch(req);
          if (res.ok) (await caches.open(CACHE)).put('/index.html', res.clone());
          return res;
        } catch (e) {
          return (await caches.match('/index.html')) || (await caches.match('/')) || Response.error();
        }
      })(),
    );
    return;
  }
  // static files: cache first (hashed assets never change), then network and remember
  event.respondWith(
    (async () => {
      const hit = await caches.match(req);
      if (hit) return hit;
      const res = await fetch(req);
      if (res.ok && (url.pathname.startsWith('/assets/') || url.pathname.startsWith('/icons/'))) {
        (await caches.open(CACHE)).put(req, res.clone());
      }
      return res;
    })(),
  );
});
