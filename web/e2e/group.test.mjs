import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, registerUI, sendUI, bubble, uname, api, apiRegister, serverHasGroups, shot, v2, openConv } from './lib.mjs';

let srv, browser;
before(async () => {
  srv = await startServer();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('three-person group: create, chat, read-by, rename, edit/react/delete, invite link, remove, leave', async (t) => {
  const probe = await apiRegister(srv.base, uname('probe'));
  if (!(await serverHasGroups(srv.base, probe.token))) {
    t.skip('server answers 501 not_implemented for groups (v2 not there yet)');
    return;
  }
  const names = { a: uname('ann'), b: uname('ben'), c: uname('cat'), d: uname('dan') };
  const A = await newPage(browser, srv.base);
  const B = await newPage(browser, srv.base);
  const C = await newPage(browser, srv.base);
  await registerUI(A.page, names.a, 'Ann Admin');
  await registerUI(B.page, names.b, 'Ben Member');
  await registerUI(C.page, names.c, 'Cat Member');

  // create the group with Ben and Cat
  await A.page.getByRole('button', { name: '+ New group' }).click();
  const dlg = A.page.getByRole('dialog');
  await dlg.getByLabel('Group name').fill('Project Team');
  for (const u of [names.b, names.c]) {
    await dlg.getByRole('searchbox').fill(u);
    await dlg.getByRole('button', { name: new RegExp('@' + u) }).click();
  }
  await shot(A.page, 'desktop-new-group');
  await dlg.getByRole('button', { name: 'Create group' }).click();
  await A.page.locator('.conv-view h2', { hasText: 'Project Team' }).waitFor();

  await sendUI(A.page, 'Welcome to the team');
  for (const P of [B, C]) {
    await openConv(P.page, 'Project Team');
    await bubble(P.page, 'Welcome to the team').waitFor();
  }
  await sendUI(B.page, 'Thanks Ann');
  await sendUI(C.page, 'Hi all');
  for (const P of [A, B, C]) {
    await bubble(P.page, 'Thanks Ann').waitFor();
    await bubble(P.page, 'Hi all').waitFor();
  }
  // sender names in groups, and read-by on Ann's message
  await A.page.locator('.msg .sender', { hasText: 'Ben Member' }).first().waitFor();
  await A.page.locator('.read-by', { hasText: 'Ben Member' }).first().waitFor({ timeout: 10000 });
  await A.page.locator('.read-by', { hasText: 'Cat Member' }).first().waitFor({ timeout: 10000 });

  if (await v2(A.page)) {
    // edit
    const mine = A.page.locator('.msg.mine', { hasText: 'Welcome to the team' });
    await mine.getByRole('button', { name: 'Message actions' }).click();
    await A.page.getByRole('menuitem', { name: 'Edit' }).click();
    const box = A.page.getByRole('textbox', { name: 'Message' });
    await box.fill('Welcome to the project team');
    await box.press('Enter');
    await B.page.locator('.msg', { hasText: 'Welcome to the project team' }).locator('.edited').waitFor();
    // react from Ben
    await B.page.locator('.msg', { hasText: 'Welcome to the project team' }).getByRole('button', { name: 'Message actions' }).click();
    await B.page.getByRole('menuitem', { name: 'React with 👍' }).click();
    await A.page.locator('.msg', { hasText: 'Welcome to the project team' }).locator('.reaction', { hasText: '👍 1' }).waitFor();
    // reply from Cat
    await C.page.locator('.msg', { hasText: 'Thanks Ann' }).getByRole('button', { name: 'Message actions' }).click();
    await C.page.getByRole('menuitem', { name: 'Reply' }).click();
    await C.page.locator('.composer-context', { hasText: 'Replying to Ben Member' }).waitFor();
    await sendUI(C.page, 'you are welcome');
    // rendered as a quote block (sender + first line of the original) above the text
    const quote = A.page.locator('.msg', { hasText: 'you are welcome' }).locator('.reply-quote');
    await quote.waitFor();
    assert.equal(await quote.locator('.quote-sender').innerText(), 'Ben Member');
    assert.equal(await quote.locator('.quote-text').innerText(), 'Thanks Ann');
    assert.equal(await A.page.locator('.msg', { hasText: 'you are welcome' }).locator('.text').innerText(), 'you are welcome');
    // stored as a real reply: reply_to = the original's id, no "> " prefix in the body
    const { token, cid } = await A.page.evaluate(() => ({
      token: JSON.parse(localStorage.getItem('chatd.auth')).session.access_token,
      cid: window.chatd.activeId,
    }));
    const hist = await api(srv.base, 'GET', `/api/v1/conversations/${cid}/messages?limit=100`, undefined, token);
    assert.equal(hist.status, 200);
    const orig = hist.body.messages.find((m) => m.type === 'text' && m.body === 'Thanks Ann');
    const reply = hist.body.messages.find((m) => m.type === 'text' && m.body.endsWith('you are welcome'));
    assert.ok(orig && reply, 'original and reply are in the history');
    assert.equal(orig.reply_to, null);
    assert.equal(reply.reply_to, orig.id);
    assert.equal(reply.body, 'you are welcome');
    assert.ok(!reply.body.startsWith('> '));
    // the quote is a button: Enter on it brings the original into view and focuses it
    await quote.focus();
    await A.page.keyboard.press('Enter');
    await A.page.locator('.msg.flash', { hasText: 'Thanks Ann' }).waitFor();
    assert.ok(await A.page.evaluate(() => !!document.activeElement?.closest('.msg')?.textContent?.includes('Thanks Ann')));
    // delete
    await sendUI(A.page, 'oops wrong chat');
    await bubble(B.page, 'oops wrong chat').waitFor();
    await A.page.locator('.msg.mine', { hasText: 'oops wrong chat' }).getByRole('button', { name: 'Message actions' }).click();
    await A.page.getByRole('menuitem', { name: 'Delete' }).click();
    await B.page.locator('.msg .body.deleted').waitFor();
    assert.equal(await bubble(B.page, 'oops wrong chat').count(), 0);
  }
  await shot(A.page, 'desktop-group');

  // manage: rename
  await A.page.getByRole('button', { name: 'Group settings' }).click();
  const mg = A.page.getByRole('dialog');
  await mg.getByLabel('Name').fill('Project Phoenix');
  await mg.getByRole('button', { name: 'Rename' }).click();
  await B.page.locator('.conv-view h2', { hasText: 'Project Phoenix' }).waitFor();
  // invite link -> Dan joins
  await mg.getByRole('button', { name: 'Create invite link' }).click();
  const link = await mg.getByLabel('Invite link').first().inputValue();
  assert.match(link, /\?join=\d+&code=/);
  await shot(A.page, 'desktop-manage-group');
  const D = await newPage(browser, srv.base);
  await registerUI(D.page, names.d, 'Dan Joiner');
  await D.page.goto(link);
  await D.page.locator('.conv-view h2', { hasText: 'Project Phoenix' }).waitFor();
  // the open dialog updates live from the member_joined event
  await mg.locator('.members li', { hasText: 'Dan Joiner' }).waitFor({ timeout: 10000 });
  // remove Cat
  const mg2 = A.page.getByRole('dialog');
  await mg2.locator('.members li', { hasText: 'Cat Member' }).getByRole('button', { name: 'Remove' }).click();
  await mg2.locator('.members li', { hasText: 'Cat Member' }).waitFor({ state: 'detached' });
  await mg2.getByRole('button', { name: 'Done' }).click();
  // Cat was removed: her client drops the group (member_removed event -> 404 on reload)
  await C.page.locator('.conv-item', { hasText: 'Project Phoenix' }).waitFor({ state: 'detached', timeout: 10000 });
  // Ben leaves
  await B.page.getByRole('button', { name: 'Group settings' }).click();
  await B.page.getByRole('dialog').getByRole('button', { name: 'Leave group' }).click();
  await B.page.locator('.conv-item', { hasText: 'Project Phoenix' }).waitFor({ state: 'detached' });

  for (const P of [A, B, C, D]) assert.deepEqual(P.errors, []);
  for (const P of [A, B, C, D]) await P.context.close();
});
