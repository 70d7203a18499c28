import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startDemo, launchBrowser, screenshot, closePage, signIn, waitForHydration, DEMO_ADMIN,
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

/** The height of the pod deskproof registers in ConnectWise. */
const POD_HEIGHT = 320;

/** Opens a ConnectWise ticket for `contact` through the simulator's form; returns its id. */
async function newTicket(contact, summary) {
  const cw = demo.urls['new ticket'];
  assert.ok(cw && demo.urls['ticket screen'], `demo printed its links: ${JSON.stringify(demo.urls)}`);
  const psa = await browser.newPage();
  await psa.goto(cw);
  await psa.selectOption('select[name=company]', { label: 'Contoso' });
  await psa.selectOption('select[name=contact]', { label: contact });
  await psa.fill('input[name=summary]', summary);
  await psa.click('button[type=submit]');
  await psa.waitForURL(/\/sim\/tickets\/\d+$/);
  const id = psa.url().match(/\/sim\/tickets\/(\d+)$/)[1];
  await psa.close();
  return id;
}

function screenUrl(id, query = '') {
  return demo.urls['ticket screen'].replace('{id}', id) + query;
}

/** The pod page of the demo's ConnectWise connection, as Manage Hosted API frames it. */
function podUrl(id) {
  return `${demo.urls.app}/pod/connectwise/1?id=${id}&screen=ticket`;
}

/** The pod's frame inside `page`, once its page has hydrated. */
async function podFrame(page) {
  await page.waitForSelector('iframe#pod');
  const handle = await page.$('iframe#pod');
  const frame = await handle.contentFrame();
  await frame.waitForFunction(() => window.__deskproof_hydrated === true, null, { timeout: 30000 });
  return frame;
}

/** Whether everything the pod shows fits its frame without scrolling. */
async function podFits(pod) {
  return pod.evaluate(() => document.documentElement.scrollHeight <= window.innerHeight);
}

async function phonePage(user) {
  const device = await browser.newPage();
  await device.goto(demo.urls[`phone ${user}`]);
  return device;
}

/** Reloads the phone until a push is pending, then presses `button`; returns the push's code. */
async function answerOnPhone(user, button) {
  const device = await phonePage(user);
  const deadline = Date.now() + 15000;
  while (!(await device.$(`button.${button}`))) {
    if (Date.now() > deadline) throw new Error(`no push reached ${user}`);
    await device.waitForTimeout(300);
    await device.reload();
  }
  const code = await device.textContent('section.push tr:has(th:text-is("Code to read back")) td');
  await device.click(`button.${button}`);
  await closePage(device);
  return code;
}

/** Signs in as the demo admin, fills a policy form on `path` and saves it. */
async function savePolicy(path, values) {
  const admin = await browser.newPage();
  await signIn(admin, demo.urls.app, DEMO_ADMIN);
  await admin.goto(`${demo.urls.app}${path}`);
  await admin.waitForSelector('[data-testid=policy-form]');
  await waitForHydration(admin);
  for (const [name, value] of Object.entries(values)) {
    await admin.fill(`#policy-${name}`, value);
  }
  await Promise.all([
    admin.waitForResponse((r) => r.url().includes('/api/admin/save_policy')),
    admin.click('[data-testid=policy-form] button[type=submit]'),
  ]);
  await admin.waitForSelector('[data-testid=policy-form] [data-testid=saved]');
  await closePage(admin);
}

/** The settings path of the organization named `name`. */
async function organizationPath(name) {
  const admin = await browser.newPage();
  await signIn(admin, demo.urls.app, DEMO_ADMIN);
  await admin.goto(`${demo.urls.app}/settings/organizations`);
  const href = await admin.getAttribute(`[data-testid=organizations] a:text-is("${name}")`, 'href');
  await closePage(admin);
  return href;
}

/** Reloads the ticket screen until its notes contain `text`; returns the notes' text. */
async function notesContaining(screen, text) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const notes = await screen.textContent('#notes');
    if (notes.includes(text)) return notes;
    if (Date.now() > deadline) throw new Error(`no note with ${JSON.stringify(text)}: ${notes}`);
    await screen.waitForTimeout(300);
    await screen.reload();
  }
}

test('the pod in the ticket screen verifies the contact without a reload', async () => {
  const id = await newTicket('Alex Example', 'Pod: password reset for Alex');
  const screen = await browser.newPage();
  await screen.goto(screenUrl(id));
  const pod = await podFrame(screen);

  // The handshake: ready → frame id → onLoad (acknowledged) → member credentials.
  await pod.waitForSelector('[data-testid=pod-verify]', { timeout: 20000 });
  const hosted = await screen.evaluate(() => window.__hosted);
  assert.deepEqual(hosted.received[0], { message: 'ready' });
  const ack = hosted.acks.find((a) => a.event === 'onLoad');
  assert.ok(ack, JSON.stringify(hosted));
  assert.equal(ack.result, 'success');
  assert.equal(ack._id, 1);
  assert.equal(ack.frameID, hosted.sent[0].MessageFrameID);
  assert.equal(hosted.answered, 1);
  assert.equal(await pod.textContent('[data-testid=pod-contact]'), 'Alex Example');
  assert.match(await pod.textContent('[data-testid=pod-matched]'), /al\*\*\*le/);
  assert.match(await pod.textContent('[data-testid=pod-member]'), /Jordan Tech \(jtech, ConnectWise\)/);
  // Framed at the height deskproof registers, and it fits.
  const frameHeight = await screen.$eval('iframe#pod', (f) => f.getBoundingClientRect().height);
  assert.equal(frameHeight, POD_HEIGHT);
  assert.ok(await podFits(pod), 'the ready pod fits its frame');
  await screenshot(screen, 'pod-ready');

  // Saving the ticket sends beforeSave, which ConnectWise waits on: the pod acknowledges it.
  await screen.evaluate(() => window.saveTicket());
  await screen.waitForFunction(
    () => window.__hosted.acks.some((a) => a.event === 'beforeSave' && a._id === 2 && a.result === 'success'),
    null,
    { timeout: 5000 },
  );

  // A marker in the pod's window survives only if the pod never reloads.
  await pod.evaluate(() => { window.__sameDocument = true; });
  await pod.click('[data-testid=pod-verify]');
  await pod.waitForSelector('[data-testid=pod-status]:has-text("Waiting")', { timeout: 15000 });
  await pod.waitForSelector('[data-testid=pod-caller-code]');
  const shown = await pod.textContent('[data-testid=pod-caller-code]');
  assert.ok(await podFits(pod), 'the waiting pod fits its frame');
  await screenshot(screen, 'pod-pushed');

  // The push carries the code the pod shows.
  const onPhone = await answerOnPhone('alex.example', 'approve');
  assert.match(onPhone, /^\d{6}$/);
  assert.equal(shown, onPhone);
  await pod.waitForSelector('[data-testid=pod-status]:has-text("Approved")', { timeout: 20000 });
  // While the approval counts the pod says until when and offers no push.
  await pod.waitForSelector('[data-testid=pod-verified-until]');
  assert.match(await pod.textContent('[data-testid=pod-verified-until]'), /^Verified until \d\d:\d\d UTC$/);
  assert.equal(await pod.$('[data-testid=pod-verify]'), null);
  assert.equal(await pod.$('[data-testid=pod-caller-code]'), null);
  assert.equal(await pod.evaluate(() => window.__sameDocument), true);
  assert.ok(await podFits(pod), 'the approved pod fits its frame');
  await screenshot(screen, 'pod-approved');

  // The outcome note names the ConnectWise member.
  const notes = await notesContaining(screen, 'alex.example has verified this ticket.');
  assert.match(notes, /requested by Jordan Tech \(jtech, ConnectWise\)/);
});

test('after a denied push the pod offers to try again', async () => {
  // Without a cool-down after a deny, the second push goes out at once.
  await savePolicy('/settings/policy', { deny_cooldown_minutes: '0' });
  const id = await newTicket('Megan Bowen', 'Pod: new phone for Megan');
  const screen = await browser.newPage();
  await screen.goto(screenUrl(id));
  const pod = await podFrame(screen);
  await pod.waitForSelector('[data-testid=pod-verify]', { timeout: 20000 });

  await pod.click('[data-testid=pod-verify]');
  await pod.waitForSelector('[data-testid=pod-status]:has-text("Waiting")', { timeout: 15000 });
  await answerOnPhone('megan.bowen', 'deny');
  await pod.waitForSelector('[data-testid=pod-status]:has-text("Denied")', { timeout: 20000 });
  await pod.waitForSelector('[data-testid=pod-verify]:not([disabled])');
  assert.equal(await pod.textContent('[data-testid=pod-verify]'), 'Try again');
  await screenshot(screen, 'pod-denied');

  await pod.click('[data-testid=pod-verify]');
  await pod.waitForSelector('[data-testid=pod-status]:has-text("Waiting")', { timeout: 15000 });
  await answerOnPhone('megan.bowen', 'approve');
  await pod.waitForSelector('[data-testid=pod-status]:has-text("Approved")', { timeout: 20000 });
  const history = await pod.$$eval('[data-testid=pod-history] li', (items) => items.map((li) => li.textContent));
  assert.equal(history.length, 2, JSON.stringify(history));
  assert.match(history[0], /\d\d:\d\d:\d\d Approved · Jordan Tech/);
  assert.match(history[1], /\d\d:\d\d:\d\d Denied · Jordan Tech/);
  assert.ok(await podFits(pod), 'the pod with its history fits its frame');
  await screenshot(screen, 'pod-retried');

  await savePolicy('/settings/policy', { deny_cooldown_minutes: '' });
});

test('the pod ignores messages from any other origin', async () => {
  const id = await newTicket('Alex Example', 'Pod: forged messages');

  // 1. A page on another origin, framed beside the pod, imitates ConnectWise's side.
  const screen = await browser.newPage();
  await screen.route('http://evil.test/**', (route) => route.fulfill({
    contentType: 'text/html',
    body: `<script>
      const pod = window.parent.frames[0];
      const send = (m) => pod.postMessage(JSON.stringify(m), '*');
      window.addEventListener('message', (e) => parent.postMessage('pod-answered:' + e.data, '*'));
      send({ MessageFrameID: 'evil' });
      send({ event: 'onLoad', _id: 1, data: { screenObject: { screen: 'ticket', id: ${id}, hostedAs: 'pod' } } });
      send({ response: 'getmemberauthentication', data: { memberid: 'jtech', memberHash: 'forged' } });
      parent.postMessage('evil-done', '*');
    </script>`,
  }));
  // `hold`: the real ConnectWise screen does not answer until released.
  await screen.goto(screenUrl(id, '?hold'));
  const pod = await podFrame(screen);
  // The pod listens from the moment it says `ready`; count what reaches it from then on.
  await screen.waitForFunction(() => window.__hosted.received.some((m) => m.message === 'ready'));
  await pod.evaluate(() => {
    window.__seen = 0;
    // Counted after every listener of the event, the pod's included, has run.
    window.addEventListener('message', () => setTimeout(() => { window.__seen += 1; }));
  });
  await screen.evaluate(() => {
    window.__evil = [];
    window.addEventListener('message', (e) => {
      if (e.origin === 'http://evil.test') window.__evil.push(e.data);
    });
    const f = document.createElement('iframe');
    f.src = 'http://evil.test/frame';
    document.body.append(f);
  });
  await screen.waitForFunction(() => window.__evil.includes('evil-done'));
  await pod.waitForFunction(() => window.__seen >= 3);

  assert.match(await pod.$eval('main.pod', (m) => m.textContent), /^Connecting to ConnectWise…$/);
  const evil = await screen.evaluate(() => window.__evil);
  assert.deepEqual(evil, ['evil-done'], 'the pod sent nothing to the other origin');
  const hosted = await screen.evaluate(() => window.__hosted);
  assert.deepEqual(hosted.received, [{ message: 'ready' }], 'no ack of the forged onLoad reached ConnectWise');

  // The same pod completes the handshake once the real ConnectWise answers.
  await screen.evaluate(() => window.releaseHold());
  await pod.waitForSelector('[data-testid=pod-verify]', { timeout: 20000 });
  assert.equal(await pod.textContent('[data-testid=pod-contact]'), 'Alex Example');
  await closePage(screen);

  // 2. A page on another origin that frames the pod itself, as its parent window, and speaks
  // the Hosted API to it. Its messages come from the pod's parent, so only the origin check
  // can refuse them. frame-ancestors would keep the browser from showing the pod there at
  // all; it is taken off this one response to test the pod's own check behind it.
  const evilPage = await browser.newPage();
  const context = evilPage.context();
  await context.route(`${demo.urls.app}/pod/connectwise/**`, async (route) => {
    const response = await route.fetch();
    const headers = { ...response.headers() };
    delete headers['content-security-policy'];
    delete headers['x-frame-options'];
    await route.fulfill({ response, headers });
  });
  await context.route('http://evil.test/**', (route) => route.fulfill({
    contentType: 'text/html',
    body: `<!doctype html><title>Not ConnectWise</title>
      <iframe id="pod" src="${podUrl(id)}" style="width:400px;height:${POD_HEIGHT}px"></iframe>
      <script>
        const frame = document.getElementById('pod');
        window.__fromPod = [];
        window.addEventListener('message', (e) => {
          if (e.source === frame.contentWindow) window.__fromPod.push(e.data);
        });
        window.forge = () => {
          const send = (m) => frame.contentWindow.postMessage(JSON.stringify(m), '*');
          send({ MessageFrameID: 'evil' });
          send({ event: 'onLoad', _id: 1, data: { screenObject: { screen: 'ticket', id: ${id}, hostedAs: 'pod' } } });
          send({ response: 'getmemberauthentication', data: { memberid: 'jtech', memberHash: 'forged' } });
        };
      </script>`,
  }));
  await evilPage.goto('http://evil.test/ticket');
  const framed = await podFrame(evilPage);
  assert.equal(
    await framed.evaluate(() => window.parent !== window),
    true,
    'the pod runs inside the other origin\'s page',
  );
  await framed.evaluate(() => {
    window.__seen = 0;
    window.addEventListener('message', () => setTimeout(() => { window.__seen += 1; }));
  });
  await evilPage.evaluate(() => window.forge());
  await framed.waitForFunction(() => window.__seen >= 3);

  assert.deepEqual(await evilPage.evaluate(() => window.__fromPod), [], 'the pod posted nothing to its parent');
  assert.match(await framed.$eval('main.pod', (m) => m.textContent), /^Connecting to ConnectWise…$/);
  await closePage(evilPage);
});

test('with pod mode on, a ticket gets a note pointing to the pod and no link', async () => {
  const contoso = await organizationPath('Contoso');
  await savePolicy(contoso, { pod_enabled: 'yes' });
  const id = await newTicket('Alex Example', 'Pod mode: VPN for Alex');
  const screen = await browser.newPage();
  await screen.goto(screenUrl(id));
  const notes = await notesContaining(screen, 'deskproof pod');
  assert.match(notes, /can be verified in the deskproof pod on this ticket's screen/);
  assert.doesNotMatch(notes, /\/verify\//);
  assert.equal(await screen.locator('#notes a[href*="/verify/"]').count(), 0);
  // The pod on that ticket is ready to verify.
  const pod = await podFrame(screen);
  await pod.waitForSelector('[data-testid=pod-verify]', { timeout: 20000 });
  await closePage(screen);

  await savePolicy(contoso, { pod_enabled: '' });
});
