import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, registerUI, startChatUI, sendUI, bubble, uname, apiRegister, api, shot } from './lib.mjs';

let srv, browser;
before(async () => {
  srv = await startServer();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('a message typed while offline is delivered exactly once when the connection returns', async () => {
  const bob = uname('bob');
  const B = await apiRegister(srv.base, bob, 'Bob Offline');
  const A = await newPage(browser, srv.base);
  await registerUI(A.page, uname('alice'), 'Alice');
  await startChatUI(A.page, bob);
  await sendUI(A.page, 'before going offline');
  await A.page.locator('.msg.mine .tick[data-tick="sent"], .msg.mine .tick[data-tick="delivered"]').first().waitFor();

  await A.context.setOffline(true);
  // the socket notices (browser closes it or the heartbeat times out); wait until the app says so
  await A.page.waitForFunction(() => window.chatd.status !== 'open', null, { timeout: 60000 });
  await sendUI(A.page, 'typed while offline');
  await A.page.locator('.msg.pending .tick[data-tick="pending"]').waitFor();
  await A.page.locator('.status-banner').waitFor();
  await shot(A.page, 'desktop-offline');
  await A.page.waitForTimeout(1500);

  await A.context.setOffline(false);
  await A.page.locator('.msg.pending').waitFor({ state: 'detached', timeout: 30000 });
  await bubble(A.page, 'typed while offline').waitFor();
  await A.page.waitForTimeout(1000);

  const conv = (await api(srv.base, 'GET', '/api/v1/conversations', undefined, B.token)).body.conversations[0];
  const hist = await api(srv.base, 'GET', `/api/v1/conversations/${conv.id}/messages?limit=100`, undefined, B.token);
  const bodies = hist.body.messages.filter((m) => m.type === 'text').map((m) => m.body);
  assert.deepEqual(bodies, ['before going offline', 'typed while offline']);
  assert.equal(await bubble(A.page, 'typed while offline').count(), 1);
  // and it survives a reload without duplicates
  await A.page.reload();
  await A.page.locator('.conv-item').first().click();
  await bubble(A.page, 'typed while offline').waitFor();
  assert.equal(await bubble(A.page, 'typed while offline').count(), 1);
  assert.deepEqual(A.errors, []);
  await A.context.close();
});
