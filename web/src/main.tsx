import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { ChatClient } from './api/client';
import { IdbCache, MemoryCache } from './api/cache';
import { browserHints, detectDevice } from './api/device';
import { applyTheme, detectTv, initialTheme, wsUrl } from './env';
import { App } from './ui/App';
import './styles.css';

const tv = detectTv();
if (tv) document.documentElement.classList.add('tv');
applyTheme(initialTheme());

const client = new ChatClient({
  wsUrl: wsUrl(),
  cache: IdbCache.available() ? new IdbCache() : new MemoryCache(),
  device: detectDevice(browserHints(tv)),
});
// for debugging and e2e tests
(window as unknown as { chatd: ChatClient }).chatd = client;

window.addEventListener('online', () => client.kick());
// the browser knows the network is gone: do not wait for the heartbeat to notice
window.addEventListener('offline', () => client.socket.drop());
document.addEventListener('visibilitychange', () => {
  client.visible = document.visibilityState === 'visible';
  if (client.visible) {
    client.kick();
    if (client.activeId) client.markRead(client.activeId);
  }
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App client={client} tv={tv} />
  </StrictMode>,
);

if ('serviceWorker' in navigator && location.protocol !== 'file:' && !new URLSearchParams(location.search).has('nosw')) {
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/sw.js').catch(() => undefined);
  });
}
