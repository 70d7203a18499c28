import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startDemo, launchBrowser, screenshot, waitForHydration, settledContent, DEMO_TECH,
} from './support.mjs';

let demo;
let browser;

before(async () => {
  demo = await startDemo();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await demo?.stop();
});

/** Reloads a simulator page until it contains `text`. */
async function reloadUntil(page, text, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await page.content()).includes(text)) return;
    if (Date.now() > deadline) throw new Error(`page never showed ${JSON.stringify(text)}`);
    await page.waitForTimeout(300);
    await page.reload();
  }
}

test('a ticket is verified end to end with an approved Duo Push', async () => {
  const cw = demo.urls['new ticket'].replace(/\/sim\/new-ticket$/, '');
  const phone = demo.urls['phone alex.example'];
  assert.ok(cw && phone, `demo printed its links: ${JSON.stringify(demo.urls)}`);

  // The client's employee (or an attacker) opens a ticket in ConnectWise.
  const psa = await browser.newPage();
  await psa.goto(`${cw}/sim/new-ticket`);
  await psa.selectOption('select[name=company]', { label: 'Contoso' });
  await psa.selectOption('select[name=contact]', { label: 'Alex Example' });
  await psa.fill('input[name=summary]', 'Password reset for Alex');
  await psa.click('button[type=submit]');
  await psa.waitForURL(/\/sim\/tickets\/\d+$/);
  const ticketUrl = psa.url();
  await reloadUntil(psa, '/verify/');
  await screenshot(psa, 'ticket-link-note');
  const link = await psa.getAttribute('a[href*="/verify/"]', 'href');
  assert.match(link, /\/verify\//);

  // The technician follows the link, signs in and lands back on it.
  const tech = await browser.newPage();
  await tech.goto(link);
  await tech.waitForURL(/\/signin\?next=/);
  await waitForHydration(tech);
  await tech.fill('#username', DEMO_TECH.username);
  await tech.fill('#password', DEMO_TECH.password);
  await tech.click('button[type=submit]');
  await tech.waitForURL(link);
  await tech.waitForSelector('[data-testid=contact]');
  await waitForHydration(tech);
  assert.equal(await tech.textContent('[data-testid=contact]'), 'Alex Example');
  assert.match(await tech.textContent('[data-testid=matched]'), /al\*\*\*le/);
  await screenshot(tech, 'verify-page');

  await tech.evaluate(() => { window.__sameDocument = true; });
  await tech.click('[data-testid=send-push]');
  await tech.waitForSelector('[data-testid=status]:has-text("Waiting")');
  // The code to read back appears with the push, without a reload.
  await tech.waitForSelector('[data-testid=caller-code]');
  const shown = await tech.textContent('[data-testid=caller-code]');
  await screenshot(tech, 'verify-pushed');

  // The employee approves on their phone; the push carries the code the page shows.
  const device = await browser.newPage();
  await device.goto(phone);
  await device.waitForSelector('button.approve', { timeout: 15000 });
  assert.match(await device.content(), /Verification is required for the ticket you submitted/);
  const onPhone = await device.textContent('section.push tr:has(th:text-is("Code to read back")) td');
  assert.match(onPhone, /^\d{6}$/);
  assert.equal(shown, onPhone);
  await screenshot(device, 'phone-push');
  await device.click('button.approve');

  // The technician's page turns to Approved without a reload, says until when the approval
  // counts and offers no push meanwhile.
  await tech.waitForSelector('[data-testid=status]:has-text("Approved")', { timeout: 20000 });
  await tech.waitForSelector('[data-testid=verified-until]');
  assert.match(await tech.textContent('[data-testid=verified-until]'), /^Verified until \d\d:\d\d UTC$/);
  assert.equal(await tech.$('[data-testid=send-push]'), null);
  assert.equal(await tech.$('[data-testid=caller-code]'), null);
  assert.equal(await tech.evaluate(() => window.__sameDocument), true);
  await screenshot(tech, 'verify-approved');

  await psa.goto(ticketUrl);
  await reloadUntil(psa, 'alex.example has verified this ticket.');
  await screenshot(psa, 'ticket-approved-note');
});

test('a technician who is not signed in never sends a push by opening a link', async () => {
  const cw = demo.urls['new ticket'].replace(/\/sim\/new-ticket$/, '');
  const psa = await browser.newPage();
  await psa.goto(`${cw}/sim/new-ticket`);
  await psa.selectOption('select[name=company]', { label: 'Contoso' });
  await psa.selectOption('select[name=contact]', { label: 'Megan Bowen' });
  await psa.click('button[type=submit]');
  await reloadUntil(psa, '/verify/');
  const link = await psa.getAttribute('a[href*="/verify/"]', 'href');

  const scanner = await browser.newPage();
  await scanner.goto(link);
  await scanner.waitForURL(/\/signin\?next=/);
  const phone = await browser.newPage();
  await phone.goto(demo.urls['phone megan.bowen']);
  assert.doesNotMatch(await settledContent(phone), /button class="approve"/);
});

test('after a denied push the link is used up, a fresh link opens, and the cooldown is explained', async () => {
  const cw = demo.urls['new ticket'].replace(/\/sim\/new-ticket$/, '');
  const psa = await browser.newPage();
  await psa.goto(`${cw}/sim/new-ticket`);
  await psa.selectOption('select[name=company]', { label: 'Contoso' });
  await psa.selectOption('select[name=contact]', { label: 'Megan Bowen' });
  await psa.fill('input[name=summary]', 'VPN access for Megan');
  await psa.click('button[type=submit]');
  await reloadUntil(psa, '/verify/');
  const link = await psa.getAttribute('a[href*="/verify/"]', 'href');

  const tech = await browser.newPage();
  await tech.goto(link);
  await tech.waitForURL(/\/signin\?next=/);
  await waitForHydration(tech);
  await tech.fill('#username', DEMO_TECH.username);
  await tech.fill('#password', DEMO_TECH.password);
  await tech.click('button[type=submit]');
  await tech.waitForURL(link);
  await tech.waitForSelector('[data-testid=send-push]');
  await waitForHydration(tech);
  await tech.click('[data-testid=send-push]');
  await tech.waitForSelector('[data-testid=status]:has-text("Waiting")');

  const phone = await browser.newPage();
  await phone.goto(demo.urls['phone megan.bowen']);
  await phone.waitForSelector('button.deny', { timeout: 15000 });
  await phone.click('button.deny');

  // The link sent its push: the page offers a fresh link instead of the button.
  await tech.waitForSelector('[data-testid=status]:has-text("Denied")', { timeout: 20000 });
  await tech.waitForSelector('[data-testid=link-used]');
  assert.equal(await tech.$('[data-testid=send-push]'), null);
  await screenshot(tech, 'verify-link-used');
  await tech.click('[data-testid=fresh-link]');
  await tech.waitForURL((url) => url.pathname.startsWith('/verify/') && url.href !== link);
  await tech.waitForSelector('[data-testid=send-push]');
  await waitForHydration(tech);

  // The contact denied a moment ago, so the policy refuses and says until when.
  await tech.click('[data-testid=send-push]');
  await tech.waitForSelector('[data-testid=status]:has-text("No push sent")');
  assert.match(await tech.textContent('.lead'), /denied a Duo Push at .* The next push is allowed at \d\d:\d\d UTC/);
  await screenshot(tech, 'verify-refused');
});
