import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startDemo, launchBrowser, signIn, waitForHydration, closePage, cspViolations,
  DEMO_ADMIN, DEMO_TECH,
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

/** Opens `path` and waits until the WebAssembly bundle has hydrated it under the policy. */
async function hydrated(page, path) {
  const res = await page.goto(`${demo.urls.app}${path}`);
  const policy = res.headers()['content-security-policy'];
  assert.match(policy, /script-src 'self' 'wasm-unsafe-eval' 'nonce-[A-Za-z0-9_-]{16,}'/, path);
  assert.match(policy, /style-src 'self';/, path);
  await waitForHydration(page);
}

test('every page hydrates under its content security policy', async () => {
  const tech = await browser.newPage();
  await hydrated(tech, '/signin');
  await signIn(tech, demo.urls.app, DEMO_TECH);
  await hydrated(tech, '/');
  await hydrated(tech, '/no-such-page');
  await closePage(tech);

  const admin = await browser.newPage();
  await signIn(admin, demo.urls.app, DEMO_ADMIN);
  for (const path of ['/settings', '/settings/organizations', '/settings/connections', '/audit']) {
    await hydrated(admin, path);
  }
  // A page navigated to inside the app (no new document) keeps working as well.
  await admin.click('nav a[href="/settings"]');
  await admin.waitForURL(`${demo.urls.app}/settings`);
  await closePage(admin);

  assert.deepEqual(cspViolations, [], 'no page broke its policy');
});

test('the policy is enforced: an inline script without the nonce does not run', async () => {
  const page = await browser.newPage();
  await hydrated(page, '/signin');
  const ran = await page.evaluate(() => new Promise((resolve) => {
    window.__injected = false;
    document.addEventListener('securitypolicyviolation', (e) => resolve({
      ran: window.__injected, directive: e.effectiveDirective,
    }), { once: true });
    const script = document.createElement('script');
    script.textContent = 'window.__injected = true;';
    document.body.appendChild(script);
  }));
  assert.deepEqual(ran, { ran: false, directive: 'script-src-elem' });
  await page.waitForTimeout(200);
  await closePage(page);

  // Chromium reported it on the console, where every browser test looks for violations; this
  // one was wanted, so it is taken off the list.
  const wanted = cspViolations.findIndex((v) => v.includes('/signin'));
  assert.notEqual(wanted, -1, `the violation was seen: ${JSON.stringify(cspViolations)}`);
  cspViolations.splice(wanted, 1);
  assert.deepEqual(cspViolations, []);
});
