import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, uname, apiRegister, api, shot } from './lib.mjs';

let srv, browser;
before(async () => {
  srv = await startServer();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

/** Describes the focused element: tag, accessible-ish name, classes. */
const focused = (page) =>
  page.evaluate(() => {
    const el = document.activeElement;
    return {
      tag: el?.tagName.toLowerCase(),
      label: el?.getAttribute('aria-label') || el?.getAttribute('name') || el?.textContent?.trim().slice(0, 40) || '',
      cls: el?.className || '',
      ring: el ? getComputedStyle(el).outlineStyle !== 'none' : false,
    };
  });

/** Ten-foot check: body text >= 28px, headings >= 36px, no visible text below 24px, focus ring >= 4px. */
async function assertTenFoot(page, where) {
  const r = await page.evaluate(() => {
    const px = (el) => parseFloat(getComputedStyle(el).fontSize);
    const small = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || !n.textContent.trim() || el.closest('.sr-only')) continue;
      const b = el.getBoundingClientRect();
      if (b.width <= 1 || b.height <= 1 || getComputedStyle(el).visibility === 'hidden') continue;
      if (px(el) < 24) small.push(`${n.textContent.trim().slice(0, 30)} (${px(el)}px ${el.className})`);
    }
    const heads = [...document.querySelectorAll('h1, h2')].filter((h) => h.getBoundingClientRect().height > 0).map((h) => [h.textContent.trim(), px(h)]);
    const a = document.activeElement;
    const ring = a && a !== document.body ? parseFloat(getComputedStyle(a).outlineWidth) : null;
    return { body: px(document.body), small, heads, ring };
  });
  assert.ok(r.body >= 28, `${where}: body font ${r.body}px`);
  assert.deepEqual(r.small, [], `${where}: text below 24px`);
  for (const [t, size] of r.heads) assert.ok(size >= 36, `${where}: heading "${t}" is ${size}px`);
  if (r.ring !== null) assert.ok(r.ring >= 4, `${where}: focus ring ${r.ring}px`);
}

/** Press an arrow key until the focused element matches, at most n times. */
async function arrowTo(page, key, pred, n = 12) {
  for (let i = 0; i < n; i++) {
    const f = await focused(page);
    if (pred(f)) return f;
    await page.keyboard.press(key);
  }
  const f = await focused(page);
  assert.ok(pred(f), `could not reach target with ${key}; focus is on ${JSON.stringify(f)}`);
  return f;
}

test('TV mode (1920x1080, ?tv=1) is operable with arrow keys, Enter and Back only', async () => {
  const tvUser = uname('tv');
  const A = await apiRegister(srv.base, tvUser, 'Living Room');
  const B = await apiRegister(srv.base, uname('friend'), 'Friendly Fran');
  const conv = (await api(srv.base, 'POST', '/api/v1/conversations', { type: 'direct', user_id: A.user.id }, B.token)).body;
  await api(srv.base, 'POST', `/api/v1/conversations/${conv.id}/messages`, { client_msg_id: 'tv1', body: 'Movie night at 8?' }, B.token);

  const T = await newPage(browser, srv.base, { width: 1920, height: 1080, query: '?tv=1' });
  const { page } = T;
  assert.ok(await page.evaluate(() => document.documentElement.classList.contains('tv')));
  await shot(page, 'tv-login');
  await assertTenFoot(page, 'login');

  // login form: arrows to move, type text, Enter to submit
  await arrowTo(page, 'ArrowDown', (f) => f.tag === 'input' && f.label === 'login');
  await page.keyboard.type(tvUser);
  await arrowTo(page, 'ArrowDown', (f) => f.label === 'password');
  await page.keyboard.type('password123');
  await page.keyboard.press('Enter');
  await page.locator('.conv-item').first().waitFor();

  // the conversation list gets focus; Enter opens
  await page.waitForFunction(() => document.activeElement?.classList.contains('conv-item'));
  const f0 = await focused(page);
  assert.ok(f0.ring, 'visible focus ring');
  await shot(page, 'tv-list');
  await assertTenFoot(page, 'list');
  await page.keyboard.press('Enter');
  await page.locator('.msg .body', { hasText: 'Movie night at 8?' }).waitFor();
  await page.waitForFunction(() => document.activeElement?.tagName === 'TEXTAREA');

  // reply by keyboard: type, Enter sends
  await page.keyboard.type('Yes! Bring popcorn');
  await page.keyboard.press('Enter');
  await page.locator('.msg.mine .body', { hasText: 'Bring popcorn' }).waitFor();

  // up to the message actions of Fran's message, open the menu, pick Reply
  await arrowTo(page, 'ArrowUp', (f) => f.label === 'Message actions', 6);
  // ensure it is the actions button of Fran's message (the first one)
  for (let i = 0; i < 4; i++) {
    const isTheirs = await page.evaluate(() => !!document.activeElement?.closest('.msg.theirs'));
    if (isTheirs) break;
    await page.keyboard.press('ArrowUp');
  }
  assert.ok(await page.evaluate(() => !!document.activeElement?.closest('.msg.theirs')));
  await page.keyboard.press('Enter');
  await page.getByRole('menu').waitFor();
  await shot(page, 'tv-message-menu');
  await assertTenFoot(page, 'message menu');
  assert.equal((await focused(page)).label, 'Reply');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.tagName === 'TEXTAREA');
  await page.keyboard.type('8 works');
  await page.keyboard.press('Enter');
  await page.locator('.msg.mine .reply-quote', { hasText: 'Movie night at 8?' }).waitFor();
  await shot(page, 'tv-conversation');
  await assertTenFoot(page, 'conversation');

  // the quote is reachable with arrows; Enter on it moves focus to the original message
  // focus is back in the composer: Up reaches the reply's actions, Right the quote in its bubble
  await page.waitForFunction(() => document.activeElement?.tagName === 'TEXTAREA');
  await page.keyboard.press('ArrowUp');
  assert.ok(await page.evaluate(() => !!document.activeElement?.closest('.msg.mine')?.querySelector('.reply-quote')));
  await arrowTo(page, 'ArrowRight', (f) => f.label.startsWith('Reply to Friendly Fran'), 3);
  assert.ok((await focused(page)).ring, 'visible focus ring on the quote');
  await page.keyboard.press('Enter');
  await page.locator('.msg.theirs.flash', { hasText: 'Movie night at 8?' }).waitFor();
  assert.ok(await page.evaluate(() => !!document.activeElement?.closest('.msg.theirs')));

  // Back (Escape) returns to the list with focus on the conversation
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => document.activeElement?.classList.contains('conv-item'));

  // reach "+ New chat" with arrows, open it, search, Back closes it
  await arrowTo(page, 'ArrowUp', (f) => f.label.includes('New chat'));
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').waitFor();
  await page.keyboard.type('fri');
  await page.getByRole('dialog').locator('.user-item').first().waitFor();
  await page.keyboard.press('ArrowDown');
  assert.match((await focused(page)).label, /Friendly Fran/);
  await shot(page, 'tv-new-chat');
  await assertTenFoot(page, 'new chat');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });

  // profile + theme reachable too
  await arrowTo(page, 'ArrowUp', (f) => f.label.startsWith('Profile'));
  await page.keyboard.press('Enter');
  await page.getByRole('dialog', { name: 'Your profile' }).waitFor();
  await page.keyboard.press('Backspace'); // in a text field: edits text, does not go back
  await page.getByRole('dialog').waitFor();
  await arrowTo(page, 'ArrowDown', (f) => /devices|theme|Log out|Save/.test(f.label), 10);
  await arrowTo(page, 'ArrowRight', (f) => f.label === 'Save', 4);
  await shot(page, 'tv-profile');
  await assertTenFoot(page, 'profile');

  // "Your devices" from the profile, with the remote only: the API session of this user is the other device
  await arrowTo(page, 'ArrowLeft', (f) => f.label === 'Your devices', 4);
  await page.keyboard.press('Enter');
  const devices = page.getByRole('dialog', { name: 'Your devices' });
  await devices.locator('.device').nth(1).waitFor();
  assert.match(await devices.locator('.device.current').innerText(), /This device[\s\S]*TV/);
  // focus starts on the other device's Log out
  await page.waitForFunction(() => document.activeElement?.classList.contains('device-logout'));
  assert.ok((await focused(page)).ring, 'visible focus ring on Log out');
  await shot(page, 'tv-devices');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.classList.contains('confirm-cancel'));
  await shot(page, 'tv-devices-confirm');
  await assertTenFoot(page, 'devices');
  // Back cancels the question only
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => document.activeElement?.classList.contains('device-logout'));
  assert.equal(await devices.count(), 1);
  // Enter, Right, Enter logs it out
  await page.keyboard.press('Enter');
  await arrowTo(page, 'ArrowRight', (f) => f.cls.includes('confirm-ok'), 3);
  await page.keyboard.press('Enter');
  await devices.getByText('was logged out.').waitFor();
  assert.equal(await devices.locator('.device').count(), 1);
  assert.equal((await api(srv.base, 'GET', '/api/v1/users/me', undefined, A.token)).status, 401);
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  assert.deepEqual(T.errors, []);
  await T.context.close();
});

test('TV mode turns on by itself for a TV user agent', async () => {
  const T = await newPage(browser, srv.base, {
    width: 1920,
    height: 1080,
    userAgent: 'Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0 TV Safari/537.36',
  });
  assert.ok(await T.page.evaluate(() => document.documentElement.classList.contains('tv')));
  await T.context.close();
});
