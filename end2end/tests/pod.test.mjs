import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDemo, launchBrowser, screenshot, closePage } from './support.mjs';

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

/** The pod's frame inside the ticket screen, once its page has hydrated. */
async function podFrame(screen) {
  await screen.waitForSelector('iframe#pod');
  const handle = await screen.$('iframe#pod');
  const frame = await handle.contentFrame();
  await frame.waitForFunction(() => window.__deskproof_hydrated === true, null, { timeout: 30000 });
  return frame;
}

async function phonePage(user) {
  const device = await browser.newPage();
  await device.goto(demo.urls[`phone ${user}`]);
  return device;
}

/** Reloads the phone until a push is pending, then presses `button`. */
async function answerOnPhone(user, button) {
  const device = await phonePage(user);
  const deadline = Date.now() + 15000;
  while (!(await device.$(`button.${button}`))) {
    if (Date.now() > deadline) throw new Error(`no push reached ${user}`);
    await device.waitForTimeout(300);
    await device.reload();
  }
  await device.click(`button.${button}`);
  await closePage(device);
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
  await screenshot(screen, 'pod-pushed');

  await answerOnPhone('alex.example', 'approve');
  await pod.waitForSelector('[data-testid=pod-status]:has-text("Approved")', { timeout: 20000 });
  assert.equal(await pod.evaluate(() => window.__sameDocument), true);
  await screenshot(screen, 'pod-approved');

  // The outcome note names the ConnectWise member.
  const deadline = Date.now() + 20000;
  for (;;) {
    await screen.reload();
    if ((await screen.textContent('#notes')).includes('alex.example has verified this ticket.')) break;
    if (Date.now() > deadline) throw new Error('no outcome note');
    await screen.waitForTimeout(300);
  }
  assert.match(await screen.textContent('#notes'), /requested by Jordan Tech \(jtech, ConnectWise\)/);
});

test('after a denied push the pod offers to try again', async () => {
  const id = await newTicket('Megan Bowen', 'Pod: new phone for Megan');
  const screen = await browser.newPage();
  await screen.goto(screenUrl(id));
  const pod = await podFrame(screen);
  await pod.waitForSelector('[data-testid=pod-verify]', { timeout: 20000 });

  await pod.click('[data-testid=pod-verify]');
  await pod.waitForSelector('[data-testid=pod-status]:has-text("Waiting")', { timeout: 15000 });
  await answerOnPhone('megan.bowen', 'deny');
  await pod.waitForSelector('[data-testid=pod-status]:has-text("Denied")', { timeout: 20000 });
  assert.equal(await pod.textContent('[data-testid=pod-verify]'), 'Try again');
  await screenshot(screen, 'pod-denied');

  await pod.click('[data-testid=pod-verify]');
  await pod.waitForSelector(
    '[data-testid=pod-status]:has-text("Waiting"), [data-testid=pod-status]:has-text("No push sent")',
    { timeout: 15000 },
  );
  const status = await pod.textContent('[data-testid=pod-status]');
  if (status.includes('Waiting')) {
    await answerOnPhone('megan.bowen', 'approve');
    await pod.waitForSelector('[data-testid=pod-status]:has-text("Approved")', { timeout: 20000 });
  } else {
    // The verification policy may hold back a push right after a denial; the pod says why.
    assert.match(await pod.textContent('.lead'), /No push sent .+/);
  }
  const history = await pod.$$eval('[data-testid=pod-history] li', (items) => items.map((li) => li.textContent));
  assert.equal(history.length, 2, JSON.stringify(history));
  assert.match(history[1], /Denied/);
  await screenshot(screen, 'pod-retried');
});

test('the pod ignores messages from any other origin', async () => {
  const id = await newTicket('Alex Example', 'Pod: forged messages');
  const screen = await browser.newPage();
  // A page on another origin, framed beside the pod, imitates ConnectWise's side.
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
  await screen.waitForTimeout(1500);

  assert.match(await pod.textContent('[data-testid=pod-stage]'), /Connecting to ConnectWise/);
  assert.equal(await pod.$('[data-testid=pod-verify]'), null);
  const evil = await screen.evaluate(() => window.__evil);
  assert.deepEqual(evil, ['evil-done'], 'the pod sent nothing to the other origin');
  const hosted = await screen.evaluate(() => window.__hosted);
  assert.deepEqual(hosted.received, [{ message: 'ready' }], 'no ack of the forged onLoad reached ConnectWise');

  // The same pod completes the handshake once the real ConnectWise answers.
  await screen.evaluate(() => window.releaseHold());
  await pod.waitForSelector('[data-testid=pod-verify]', { timeout: 20000 });
  assert.equal(await pod.textContent('[data-testid=pod-contact]'), 'Alex Example');
});
