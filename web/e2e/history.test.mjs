import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, loginUI, bubble, uname, apiRegister, api, shot } from './lib.mjs';

let srv, browser;
before(async () => {
  srv = await startServer();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('scrolling up loads older history (windowed list, day separators)', async () => {
  const a = uname('hist');
  const A = await apiRegister(srv.base, a, 'History Reader');
  const B = await apiRegister(srv.base, uname('talker'), 'Chatty Carl');
  const conv = (await api(srv.base, 'POST', '/api/v1/conversations', { type: 'direct', user_id: A.user.id }, B.token)).body;
  const N = 160;
  for (let i = 1; i <= N; i++) {
    const r = await api(srv.base, 'POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: `h${i}`, body: `history message #${i}` }, i % 3 ? B.token : A.token);
    assert.ok(r.status === 201, JSON.stringify(r.body));
  }
  const P = await newPage(browser, srv.base);
  await loginUI(P.page, a);
  await P.page.locator('.conv-item', { hasText: 'Chatty Carl' }).locator('.badge').waitFor();
  await P.page.locator('.conv-item', { hasText: 'Chatty Carl' }).click();
  await bubble(P.page, `history message #${N}`).waitFor();
  const first = P.page.locator('.msg .body .text', { hasText: /^history message #1$/ });
  assert.equal(await first.count(), 0, 'oldest not loaded yet');
  await P.page.locator('.day-sep').first().waitFor();
  await shot(P.page, 'desktop-history');

  const list = P.page.locator('.messages');
  for (let i = 0; i < 30 && (await first.count()) === 0; i++) {
    await list.evaluate((el) => (el.scrollTop = 0));
    await P.page.waitForTimeout(300);
  }
  await first.waitFor();
  await P.page.getByText('Beginning of the conversation').waitFor();
  // no duplicates after paging
  const texts = await P.page.locator('.msg .body .text').allInnerTexts();
  assert.equal(new Set(texts).size, texts.length);
  assert.equal(texts.length, N);
  assert.deepEqual(P.errors, []);
  await P.context.close();
});
