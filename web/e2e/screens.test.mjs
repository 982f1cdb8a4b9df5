import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, loginUI, registerUI, uname, apiRegister, api, shot, bubble } from './lib.mjs';

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

const ANDROID_UA =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36';

test('Your devices: the same user in two browsers; logging the other one out sends it to the login screen', async () => {
  const me = uname('dev');
  // first browser: desktop, registers (one session); second: a phone, logs in (second session)
  const D = await newPage(browser, srv.base, { width: 1280, height: 800 });
  await registerUI(D.page, me, 'Dana Devices');
  const M = await newPage(browser, srv.base, { width: 360, height: 740, userAgent: ANDROID_UA });
  await loginUI(M.page, me);
  await M.page.waitForFunction(() => window.chatd?.status === 'open', null, { timeout: 10000 });

  // the phone sees its own screen too (profile -> Your devices), marked as this device
  await M.page.getByRole('button', { name: /^Profile/ }).click();
  await M.page.getByRole('dialog').getByRole('button', { name: 'Your devices' }).click();
  const mDialog = M.page.getByRole('dialog', { name: 'Your devices' });
  await mDialog.locator('.device').nth(1).waitFor();
  assert.match(await mDialog.locator('.device.current').innerText(), /Chrome on Android[\s\S]*This device[\s\S]*Phone or tablet/);
  assert.ok(await M.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
  await shot(M.page, 'phone-devices');
  await M.page.keyboard.press('Escape');
  await mDialog.waitFor({ state: 'detached' });

  // desktop: open the devices screen from the profile, see both devices
  const { page } = D;
  await page.getByRole('button', { name: /^Profile/ }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Your devices' }).click();
  const dialog = page.getByRole('dialog', { name: 'Your devices' });
  await dialog.locator('.device').nth(1).waitFor();
  assert.equal(await dialog.locator('.device').count(), 2);
  const current = dialog.locator('.device.current');
  assert.equal(await current.count(), 1);
  assert.match(await current.innerText(), /This device/);
  assert.match(await current.innerText(), /Web browser/);
  assert.equal(await current.getByRole('button', { name: /Log out/ }).count(), 0, 'no log out button for this device');
  const phone = dialog.locator('.device:not(.current)');
  assert.match(await phone.innerText(), /Chrome on Android/);
  assert.match(await phone.innerText(), /Phone or tablet/);
  assert.match(await phone.innerText(), /Active/);
  // keyboard: focus starts on the other device's Log out button
  await page.waitForFunction(() => document.activeElement?.classList.contains('device-logout'));
  await shot(page, 'desktop-devices');

  // log it out: asks first; Cancel keeps it
  await phone.getByRole('button', { name: 'Log out Chrome on Android' }).click();
  const confirm = dialog.getByRole('group', { name: 'Log out Chrome on Android?' });
  await confirm.waitFor();
  await page.waitForFunction(() => document.activeElement?.classList.contains('confirm-cancel'));
  await shot(page, 'desktop-devices-confirm');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await confirm.waitFor({ state: 'detached' });
  assert.equal(await dialog.locator('.device').count(), 2);
  assert.equal(await M.page.getByLabel('Username or email').count(), 0, 'still logged in after Cancel');
  await phone.getByRole('button', { name: 'Log out Chrome on Android' }).click();
  await confirm.getByRole('button', { name: 'Log out', exact: true }).click();
  await dialog.getByText('Chrome on Android was logged out.').waitFor();
  await dialog.locator('.device').nth(1).waitFor({ state: 'detached' });
  assert.equal(await dialog.locator('.device').count(), 1);

  // the phone: its socket closes with 4001, the refresh fails, so it is back on the login screen
  await M.page.getByLabel('Username or email').waitFor({ timeout: 15000 });
  assert.equal(await M.page.evaluate(() => localStorage.getItem('chatd.auth')), null);
  // the server agrees: only the desktop session is left
  const list = await page.evaluate(() => window.chatd.rest.devices());
  assert.equal(list.length, 1);
  assert.ok(list[0].current);
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  assert.deepEqual(D.errors, []);
  assert.deepEqual(M.errors, []);
  await D.context.close();
  await M.context.close();
});
