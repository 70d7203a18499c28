import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDemo, launchBrowser, screenshot, waitForHydration, DEMO_TECH } from './support.mjs';

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

test('a technician signs in and sees the start page', async () => {
  const page = await browser.newPage();
  await page.goto(`${demo.urls.app}/signin`);
  await waitForHydration(page);

  // The show/hide toggle only works once the page is hydrated.
  assert.equal(await page.getAttribute('#password', 'type'), 'password');
  await page.click('[data-testid=toggle-password]');
  await page.waitForSelector('#password[type=text]');
  await page.click('[data-testid=toggle-password]');
  await page.waitForSelector('#password[type=password]');

  await page.fill('#username', DEMO_TECH.username);
  await page.fill('#password', DEMO_TECH.password);
  await screenshot(page, 'signin');
  await page.click('button[type=submit]');
  await page.waitForURL(`${demo.urls.app}/`);
  await page.waitForSelector('[data-testid=welcome]');
  assert.match(await page.textContent('[data-testid=welcome]'), /Welcome, Jordan Tech/);
  assert.equal(await page.textContent('[data-testid=current-user]'), 'Jordan Tech');
  await screenshot(page, 'home');
});

test('a wrong password gets a clear message and no session', async () => {
  const page = await browser.newPage();
  await page.goto(`${demo.urls.app}/signin`);
  await waitForHydration(page);
  await page.fill('#username', DEMO_TECH.username);
  await page.fill('#password', 'not-the-password');
  await page.click('button[type=submit]');
  const alert = await page.waitForSelector('[role=alert]');
  assert.match(await alert.textContent(), /Wrong username or password/);
  await page.goto(`${demo.urls.app}/`);
  await page.waitForURL(/\/signin(\?next=.*)?$/);
});

test('signing out ends the session', async () => {
  const page = await browser.newPage();
  await page.goto(`${demo.urls.app}/signin`);
  await waitForHydration(page);
  await page.fill('#username', DEMO_TECH.username);
  await page.fill('#password', DEMO_TECH.password);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=welcome]');
  await page.click('text=Sign out');
  await page.waitForURL(/\/signin(\?next=.*)?$/);
  await page.goto(`${demo.urls.app}/`);
  await page.waitForURL(/\/signin(\?next=.*)?$/);
});

test('after sign-in only a path on this site is followed, never another host', async () => {
  for (const next of ['/%5Cevil.example/x', '//evil.example/x', 'https://evil.example/x', '/%09/evil.example']) {
    const page = await browser.newPage();
    await page.goto(`${demo.urls.app}/signin?next=${next}`);
    await waitForHydration(page);
    await page.fill('#username', DEMO_TECH.username);
    await page.fill('#password', DEMO_TECH.password);
    await page.click('button[type=submit]');
    await page.waitForURL(`${demo.urls.app}/`);
    assert.equal(new URL(page.url()).host, new URL(demo.urls.app).host, next);
    await page.close();
  }
});
