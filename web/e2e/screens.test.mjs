import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, loginUI, uname, apiRegister, api, shot, bubble } from './lib.mjs';

let srv, browser;
before(async () => {
  srv = await startServer();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('phone layout (360x740): list, conversation, dialogs, no horizontal overflow; PWA manifest and service worker', async () => {
  const me = uname('phone');
  const A = await apiRegister(srv.base, me, 'Pocket Pat');
  const B = await apiRegister(srv.base, uname('pal'), 'Pal Quinn');
  const C = await apiRegister(srv.base, uname('sam'), 'Sam Rivers');
  for (const [other, msgs] of [
    [B, ['Are we still on for lunch?', 'I found a new place downtown 🍜']],
    [C, ['Sent you the slides', 'Let me know what you think!']],
  ]) {
    const conv = (await api(srv.base, 'POST', '/api/v1/conversations', { type: 'direct', user_id: A.user.id }, other.token)).body;
    let i = 0;
    for (const m of msgs) await api(srv.base, 'POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: `${other.user.id}x${i++}`, body: m }, other.token);
  }
  const P = await newPage(browser, srv.base, { width: 360, height: 740 });
  const { page } = P;
  await shot(page, 'phone-login');
  await loginUI(page, me);
  await page.locator('.conv-item .badge').first().waitFor();
  await shot(page, 'phone-list');
  const noOverflow = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(await noOverflow());
  await page.locator('.conv-item', { hasText: 'Pal Quinn' }).click();
  await bubble(page, 'new place downtown').waitFor();
  await page.getByRole('textbox', { name: 'Message' }).fill('Sounds great, see you at noon!');
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
  await page.locator('.msg.mine .tick').first().waitFor();
  assert.ok(await noOverflow());
  await shot(page, 'phone-conversation');
  // the composer counter shows the limit before the server refuses
  await page.getByRole('textbox', { name: 'Message' }).fill('😀'.repeat(100001));
  await page.locator('.counter.over').waitFor();
  assert.match(await page.locator('.counter').innerText(), /100,001 \/ 100,000/);
  assert.ok(await page.getByRole('button', { name: 'Send' }).isDisabled());
  await page.getByRole('textbox', { name: 'Message' }).fill('');
  await page.getByRole('button', { name: 'Back to conversations' }).click();
  await page.getByRole('button', { name: '+ New chat' }).click();
  await page.getByRole('dialog').getByRole('searchbox').fill('sam');
  await page.getByRole('dialog').locator('.user-item').first().waitFor();
  await shot(page, 'phone-new-chat');
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: /^Profile/ }).click();
  await shot(page, 'phone-profile');
  await page.getByLabel('Bio').fill('Always on the go');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Profile saved.').waitFor();
  await page.keyboard.press('Escape');

  // desktop list + dark theme screenshots of the same account
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.locator('.conv-item', { hasText: 'Sam Rivers' }).click();
  await bubble(page, 'what you think').waitFor();
  await shot(page, 'desktop-list-and-chat');
  await page.getByRole('button', { name: /Switch to dark theme/ }).click();
  await shot(page, 'desktop-dark');
  await page.setViewportSize({ width: 360, height: 740 });
  await shot(page, 'phone-conversation-dark');
  await page.getByRole('button', { name: 'Back to conversations' }).click();
  await shot(page, 'phone-list-dark');
  await page.getByRole('button', { name: /Switch to light theme/ }).click();

  // PWA: manifest + service worker controlling the page
  const man = await (await fetch(srv.base + '/manifest.webmanifest')).json();
  assert.equal(man.display, 'standalone');
  assert.ok(man.icons.some((i) => i.sizes === '512x512'));
  await page.waitForFunction(() => navigator.serviceWorker?.controller || navigator.serviceWorker?.ready.then(() => true), null, { timeout: 10000 });
  const swState = await page.evaluate(async () => (await navigator.serviceWorker.ready).active?.state);
  assert.ok(swState === 'activated' || swState === 'activating');
  // offline: the shell still opens from the cache, with cached conversations (IndexedDB)
  await page.reload();
  await page.locator('.conv-item').first().waitFor();
  await P.context.setOffline(true);
  await page.reload();
  await page.locator('.conv-item', { hasText: 'Pal Quinn' }).waitFor({ timeout: 10000 });
  await page.locator('.conv-item', { hasText: 'Pal Quinn' }).click();
  await bubble(page, 'new place downtown').waitFor();
  await shot(page, 'phone-offline');
  await P.context.setOffline(false);
  assert.deepEqual(P.errors, []);
  await P.context.close();
});
