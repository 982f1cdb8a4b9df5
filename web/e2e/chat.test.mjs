import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, registerUI, loginUI, startChatUI, openConv, sendUI, bubble, shot, uname, v2 } from './lib.mjs';

let srv, browser;
before(async () => {
  srv = await startServer();
  browser = await launch();
  console.log(`# server mode: ${srv.mode} at ${srv.base}`);
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('two users register, start a chat, exchange messages; ticks turn read; presence and typing; reload keeps state', async (t) => {
  const alice = uname('alice');
  const bob = uname('bob');
  const A = await newPage(browser, srv.base);
  const B = await newPage(browser, srv.base);
  await shot(A.page, 'desktop-login');
  await registerUI(A.page, alice, 'Alice Anders');
  await registerUI(B.page, bob, 'Bob Brown');

  await startChatUI(A.page, bob);
  await sendUI(A.page, 'Hello Bob! 👋');
  await bubble(A.page, 'Hello Bob!').waitFor();
  // B sees the conversation with an unread badge and the last message
  const item = B.page.locator('.conv-item', { hasText: 'Alice Anders' });
  await item.waitFor();
  await item.locator('.badge', { hasText: '1' }).waitFor();
  await item.locator('.conv-preview', { hasText: 'Hello Bob!' }).waitFor();
  // A's tick is "sent" (not read) before B opens the chat
  const tick = A.page.locator('.msg.mine .tick').last();
  await tick.waitFor();
  assert.notEqual(await tick.getAttribute('data-tick'), 'read');

  await openConv(B.page, 'Alice Anders');
  await bubble(B.page, 'Hello Bob!').waitFor();
  await A.page.locator('.msg.mine .tick[data-tick="read"]').last().waitFor({ timeout: 10000 });

  await sendUI(B.page, 'Hi Alice,\nhow are you?');
  await bubble(A.page, 'how are you?').waitFor();
  // multi-line: Shift+Enter inserts a newline
  const box = A.page.getByRole('textbox', { name: 'Message' });
  await box.type('line one');
  await box.press('Shift+Enter');
  await box.type('line two');
  assert.equal(await box.inputValue(), 'line one\nline two');
  await box.press('Enter');
  await bubble(B.page, 'line two').waitFor();
  assert.equal(await bubble(B.page, 'line two').innerText(), 'line one\nline two');

  // user content is text only
  await sendUI(A.page, '<img src=x onerror=alert(1)><b>bold</b>');
  await bubble(B.page, '<b>bold</b>').waitFor();
  assert.equal(await B.page.locator('.msg .body b').count(), 0);

  // the aria-live log announced incoming messages
  assert.match(await B.page.locator('[role="log"]').innerText(), /Alice Anders/);

  if (await v2(A.page)) {
    // presence dot and typing indicator
    await B.page.locator('.conv-head .dot.on').waitFor({ timeout: 10000 });
    await A.page.getByRole('textbox', { name: 'Message' }).type('typing…');
    await B.page.locator('.conv-head .subtitle.typing').waitFor({ timeout: 5000 });
  } else {
    t.diagnostic('SKIPPED presence/typing: server answers unknown_type (v2 not implemented yet)');
  }

  await shot(A.page, 'desktop-conversation');
  await A.page.evaluate(() => document.documentElement.setAttribute('data-theme', 'dark'));
  await shot(A.page, 'desktop-conversation-dark');
  await A.page.evaluate(() => document.documentElement.setAttribute('data-theme', 'light'));

  // reload keeps state (session, conversation list, history from cache/server)
  await B.page.reload();
  await B.page.locator('.conv-item', { hasText: 'Alice Anders' }).waitFor();
  await openConv(B.page, 'Alice Anders');
  await bubble(B.page, 'Hello Bob!').waitFor();
  await bubble(B.page, 'line two').waitFor();

  // logout, then log in again: the server still has everything
  await B.page.getByRole('button', { name: 'Log out' }).click();
  await B.page.getByRole('tab', { name: 'Sign in' }).waitFor();
  assert.equal(await B.page.evaluate(() => localStorage.getItem('chatd.auth')), null);
  await loginUI(B.page, bob);
  await openConv(B.page, 'Alice Anders');
  await bubble(B.page, 'line two').waitFor();

  assert.deepEqual(A.errors, []);
  assert.deepEqual(B.errors, []);
  await A.context.close();
  await B.context.close();
});
