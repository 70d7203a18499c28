import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  startDemo, launchBrowser, screenshot, signIn, waitForHydration, DEMO_ADMIN, DEMO_TECH,
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

/** A value the demo printed as `  label: value`. */
function printed(label) {
  const m = demo.output().match(new RegExp(`^\\s*${label}:\\s+(\\S+)`, 'm'));
  assert.ok(m, `demo printed ${label}`);
  return m[1];
}

/** Reloads a page until it contains `text`. */
async function reloadUntil(page, text, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await page.content()).includes(text)) return;
    if (Date.now() > deadline) throw new Error(`page never showed ${JSON.stringify(text)}`);
    await page.waitForTimeout(300);
    await page.reload();
  }
}

/** Clicks and waits for the server function's answer. */
async function clickAndWait(page, selector, fn) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().includes(`/api/admin/${fn}`)),
    page.click(selector),
  ]);
  return response;
}

test('an admin sets up an organization that a verification then uses, all audited', async () => {
  const keys = {
    host: printed('duo api host'),
    authIkey: printed('duo auth ikey'),
    authSkey: printed('duo auth skey'),
    adminIkey: printed('duo admin ikey'),
    adminSkey: printed('duo admin skey'),
  };
  const fabrikamId = demo.output().match(/company Fabrikam \(company id (\d+)/)[1];
  const app = demo.urls.app;

  const admin = await browser.newPage();
  await signIn(admin, app, DEMO_ADMIN);
  await admin.waitForSelector('nav a[href="/settings"]');

  // Organization.
  await admin.goto(`${app}/settings/organizations`);
  await waitForHydration(admin);
  await admin.click('[data-testid=new-organization] button[type=submit]');
  await admin.waitForSelector('[data-testid=error-name]');
  assert.equal(await admin.textContent('[data-testid=error-name]'), 'Enter a name.');
  await admin.fill('#org-name', 'Fabrikam');
  await clickAndWait(admin, '[data-testid=new-organization] button[type=submit]', 'save_organization');
  await admin.waitForSelector('[data-testid=organizations] a:has-text("Fabrikam")');
  await screenshot(admin, 'settings-organizations');

  // Duo keys: a wrong secret key first, then the right one.
  await admin.click('[data-testid=organizations] a:has-text("Fabrikam")');
  await admin.waitForSelector('[data-testid=duo-form]');
  await waitForHydration(admin);
  assert.equal(await admin.textContent('[data-testid=auth-skey-state]'), 'not set');
  await admin.fill('#api_host', keys.host);
  await admin.fill('#auth_ikey', keys.authIkey);
  await admin.fill('#auth_skey', 'not-the-right-secret-key-0000000000000000');
  await admin.fill('#admin_ikey', keys.adminIkey);
  await admin.fill('#admin_skey', keys.adminSkey);
  await clickAndWait(admin, '[data-testid=save-duo]', 'save_duo');
  await admin.waitForSelector('[data-testid=auth-skey-state]:text-is("set")');
  assert.equal(await admin.inputValue('#auth_skey'), '', 'a stored secret is never shown');
  await clickAndWait(admin, '[data-testid=test-duo]', 'test_duo');
  const failure = await admin.textContent('[data-testid=duo-test-result]');
  assert.match(failure, /Duo refused the keys/);
  assert.match(failure, /Auth API: Duo rejected the request signature \(40103\)/);
  await screenshot(admin, 'settings-duo-test-failure');

  await admin.fill('#auth_skey', keys.authSkey);
  await clickAndWait(admin, '[data-testid=save-duo]', 'save_duo');
  await clickAndWait(admin, '[data-testid=test-duo]', 'test_duo');
  await admin.waitForSelector('[data-testid=duo-test-result]:has-text("Duo accepted both sets of keys.")');
  assert.doesNotMatch(await admin.content(), new RegExp(keys.authSkey));
  await screenshot(admin, 'settings-duo-test-success');

  // Company mapping.
  await admin.goto(`${app}/settings/connections`);
  await admin.waitForSelector('[data-testid=mapping-form]');
  await waitForHydration(admin);
  await admin.fill('#map-company', fabrikamId);
  await admin.selectOption('#map-organization', { label: 'Fabrikam' });
  await clickAndWait(admin, '[data-testid=save-mapping]', 'save_mapping');
  await admin.waitForSelector(`[data-testid=mappings] td:has-text("Fabrikam")`);
  await admin.click('[data-testid=test-connection]');
  await admin.waitForSelector('[data-testid=connection-test-result]:has-text("Connected")');
  await screenshot(admin, 'settings-connections');

  // The demo's Autotask tenant: its webhook URL, its fields and a working Test connection.
  const autotask = admin.locator('section.card', { has: admin.locator('h2:has-text("Datto Autotask")') });
  assert.match(await autotask.locator('[data-testid=hook-url]').textContent(), /\/hooks\/autotask\/\d+$/);
  assert.equal(await autotask.locator('input[name="fields[secret]"]').inputValue(), '', 'a stored secret is never shown');
  assert.equal(await autotask.locator('[data-testid=connect-psa]').count(), 0, 'one-click connect is ConnectWise only');
  await Promise.all([
    admin.waitForResponse((r) => r.url().includes('/api/admin/test_connection')),
    autotask.locator('[data-testid=test-connection]').click(),
  ]);
  await autotask.locator('[data-testid=connection-test-result]:has-text("Connected: Autotask accepted the credentials.")').waitFor();

  // One-click connect: the ticket callback and, with a screen id, the pod. The pod's
  // ConnectWise address, stored by the demo's setup, is shown and kept by the save.
  const cwOrigin = new URL(demo.urls['new ticket']).origin;
  assert.equal(await admin.inputValue('#conn1-pod_origins'), cwOrigin);
  await admin.fill('#conn1-pod_screen_id', '25');
  const saved = await clickAndWait(admin, '[data-testid=conn1-form] [data-testid=save-connection]', 'save_connection');
  const answer = `save_connection answered ${saved.status()}: ${await saved.text()}`;
  await admin.waitForSelector('[data-testid=conn1-form] [data-testid=saved]').catch((e) => {
    throw new Error(`${e.message}\n${answer}`);
  });
  assert.equal(await admin.inputValue('#conn1-pod_origins'), cwOrigin);
  const podPage = await admin.request.get(`${app}/pod/connectwise/1`);
  assert.equal(podPage.status(), 200);
  assert.match(podPage.headers()['content-security-policy'], new RegExp(`(^|; )frame-ancestors ${cwOrigin}(;|$)`));
  await clickAndWait(admin, '[data-testid=connect-psa]', 'connect_psa');
  const connected = await admin.textContent('[data-testid=connect-result]');
  // The demo's ConnectWise already calls deskproof back, so Connect adds no second callback.
  assert.match(connected, /Ticket callback already registered \(id \d+\): .*\/hooks\/connectwise\/1\?recordId=/);
  assert.doesNotMatch(connected, /Created ticket callback/);
  assert.match(connected, /Created pod \d+ on screen 25/);
  await admin.locator('[data-testid=connect-result]').scrollIntoViewIfNeeded();
  await screenshot(admin, 'settings-connect');

  // A Fabrikam ticket is verified with Fabrikam's Duo account.
  const cw = demo.urls['new ticket'].replace(/\/sim\/new-ticket$/, '');
  const psa = await browser.newPage();
  await psa.goto(`${cw}/sim/new-ticket`);
  await psa.selectOption('select[name=company]', { label: 'Fabrikam' });
  await psa.selectOption('select[name=contact]', { label: 'Adele Vance' });
  await psa.fill('input[name=summary]', 'New laptop for Adele');
  await psa.click('button[type=submit]');
  await psa.waitForURL(/\/sim\/tickets\/\d+$/);
  const ticketId = psa.url().match(/\/sim\/tickets\/(\d+)$/)[1];
  await reloadUntil(psa, '/verify/');
  const link = await psa.getAttribute('a[href*="/verify/"]', 'href');

  const tech = await browser.newPage();
  await signIn(tech, app, DEMO_TECH);
  await tech.goto(link);
  await tech.waitForSelector('[data-testid=contact]');
  await waitForHydration(tech);
  assert.equal(await tech.textContent('[data-testid=contact]'), 'Adele Vance');
  await tech.click('[data-testid=send-push]');
  await tech.waitForSelector('[data-testid=status]:has-text("Waiting")');
  const phone = await browser.newPage();
  await phone.goto(demo.urls['phone adele.vance']);
  await phone.waitForSelector('button.approve', { timeout: 15000 });
  await phone.click('button.approve');
  await tech.waitForSelector('[data-testid=status]:has-text("Approved")', { timeout: 20000 });

  // The audit log shows the verification; filtered by ticket and exported as CSV.
  await admin.goto(`${app}/audit?ticket=${ticketId}`);
  await admin.waitForSelector('[data-testid=audit-table]');
  await waitForHydration(admin);
  const table = await admin.textContent('[data-testid=audit-table]');
  assert.match(table, /push answered/);
  assert.match(table, /Jordan Tech/);
  assert.match(table, /Adele Vance/);
  assert.match(table, /adele\.vance/);
  assert.match(table, /approved/);
  assert.match(table, /Fabrikam/);
  await screenshot(admin, 'settings-audit');

  const [download] = await Promise.all([
    admin.waitForEvent('download'),
    admin.click('[data-testid=export-csv]'),
  ]);
  const csv = readFileSync(await download.path(), 'utf8');
  const lines = csv.trim().split('\n');
  assert.equal(lines[0], 'id,at,actor,action,organization,ticket,contact,duo_user,outcome,txid,detail,connection');
  assert.ok(lines.slice(1).every((l) => l.endsWith(',ConnectWise (simulator)')), csv);
  assert.ok(lines.slice(1).every((l) => l.includes(`,${ticketId},`)), csv);
  assert.ok(lines.some((l) => l.includes('push answered') && l.includes(',approved,')), csv);

  // Everything the admin changed is there too.
  await admin.goto(`${app}/audit?technician=Demo%20Admin`);
  await admin.waitForSelector('[data-testid=audit-table]');
  const changes = await admin.textContent('[data-testid=audit-table]');
  for (const action of ['organization created', 'Duo account saved', 'company mapped']) {
    assert.match(changes, new RegExp(action));
  }
  assert.doesNotMatch(changes, new RegExp(keys.authSkey));

  // The ticket's timeline is that of ticket ${ticketId} in this ConnectWise connection.
  await admin.goto(`${app}/audit?ticket=${ticketId}`);
  await admin.waitForSelector('[data-testid=audit-table]');
  await waitForHydration(admin);
  await admin.click('[data-testid=ticket-link] >> nth=0');
  await admin.waitForURL(`${app}/audit/ticket/1/${ticketId}`);
  await admin.waitForSelector('[data-testid=timeline] li');
  assert.match(await admin.textContent('[data-testid=timeline-connection]'), /PSA connection: ConnectWise/);
  assert.match(await admin.textContent('[data-testid=timeline]'), /push sent[\s\S]*push answered/);
  await screenshot(admin, 'settings-ticket-timeline');
});

test('an MSP child account is picked from Duo\'s list and verifies with Duo\'s confirmation code', async () => {
  const keys = {
    host: printed('duo accounts api host'),
    ikey: printed('duo accounts ikey'),
    skey: printed('duo accounts skey'),
    authIkey: printed('duo child auth ikey'),
    authSkey: printed('duo child auth skey'),
  };
  const northwindId = demo.output().match(/company Northwind \(company id (\d+)/)[1];
  const app = demo.urls.app;
  const admin = await browser.newPage();
  await signIn(admin, app, DEMO_ADMIN);
  await admin.waitForSelector('nav a[href="/settings"]');
  await admin.goto(`${app}/settings/organizations`);
  await waitForHydration(admin);
  await admin.fill('#org-name', 'Northwind');
  await clickAndWait(admin, '[data-testid=new-organization] button[type=submit]', 'save_organization');
  await admin.click('[data-testid=organizations] a:has-text("Northwind")');
  await admin.waitForSelector('[data-testid=duo-form]');
  await waitForHydration(admin);

  // The MSP fields appear with the choice; a wrong secret is named next to its field.
  assert.equal(await admin.isVisible('#accounts_api_host'), false);
  await admin.check('#directory-accounts_api');
  await admin.waitForSelector('#accounts_api_host', { state: 'visible' });
  assert.equal(await admin.isVisible('#api_host'), false);
  await admin.fill('#accounts_api_host', keys.host);
  await admin.fill('#accounts_ikey', keys.ikey);
  await admin.fill('#accounts_skey', 'not-the-accounts-secret-key-000000000000');
  await clickAndWait(admin, '[data-testid=list-children]', 'list_duo_children');
  await admin.waitForSelector('[data-testid=error-accounts_skey]');
  assert.match(await admin.textContent('[data-testid=error-accounts_skey]'), /secret key is wrong \(40103\)/);
  await admin.fill('#accounts_skey', keys.skey);
  await clickAndWait(admin, '[data-testid=list-children]', 'list_duo_children');
  await admin.waitForSelector('#child_account_id option:has-text("Northwind")', { state: 'attached' });
  assert.equal(await admin.locator('[data-testid=error-accounts_skey]').count(), 0);
  await admin.selectOption('#child_account_id', { label: await admin.textContent('#child_account_id option:has-text("Northwind")') });
  await admin.fill('#auth_ikey', keys.authIkey);
  await admin.fill('#auth_skey', keys.authSkey);
  await admin.selectOption('#caller_code', 'verification_push');
  await clickAndWait(admin, '[data-testid=save-duo]', 'save_duo');
  await admin.waitForSelector('[data-testid=accounts-skey-state]:text-is("set")');
  assert.equal(await admin.inputValue('#accounts_skey'), '', 'a stored secret is never shown');
  await clickAndWait(admin, '[data-testid=test-duo]', 'test_duo');
  await admin.waitForSelector('[data-testid=duo-test-result]:has-text("Duo accepted both sets of keys.")');
  assert.match(
    await admin.textContent('[data-testid=duo-test-result]'),
    /Accounts API \(child account "Northwind"\): keys accepted; 1 user\(s\) in the account\./,
  );
  assert.doesNotMatch(await admin.content(), new RegExp(keys.skey));
  await screenshot(admin, 'settings-duo-msp');

  await admin.goto(`${app}/settings/connections`);
  await admin.waitForSelector('[data-testid=mapping-form]');
  await waitForHydration(admin);
  await admin.fill('#map-company', northwindId);
  await admin.selectOption('#map-organization', { label: 'Northwind' });
  await clickAndWait(admin, '[data-testid=save-mapping]', 'save_mapping');

  // A Northwind ticket: Diego's user is found in the child account, and the page shows the
  // confirmation code Duo put on his phone.
  const cw = demo.urls['new ticket'].replace(/\/sim\/new-ticket$/, '');
  const psa = await browser.newPage();
  await psa.goto(`${cw}/sim/new-ticket`);
  await psa.selectOption('select[name=company]', { label: 'Northwind' });
  await psa.selectOption('select[name=contact]', { label: 'Diego Siciliani' });
  await psa.fill('input[name=summary]', 'Locked out of e-mail');
  await psa.click('button[type=submit]');
  await psa.waitForURL(/\/sim\/tickets\/\d+$/);
  await reloadUntil(psa, '/verify/');
  const link = await psa.getAttribute('a[href*="/verify/"]', 'href');
  const tech = await browser.newPage();
  await signIn(tech, app, DEMO_TECH);
  await tech.goto(link);
  await tech.waitForSelector('[data-testid=contact]');
  await waitForHydration(tech);
  await tech.click('[data-testid=send-push]');
  await tech.waitForSelector('[data-testid=status]:has-text("Waiting")');
  // The page shows the attempt's code as soon as the push is sent.
  await tech.waitForSelector('[data-testid=caller-code]');
  const shown = (await tech.textContent('[data-testid=caller-code]')).trim();
  const phone = await browser.newPage();
  await phone.goto(demo.urls['phone diego.siciliani']);
  await phone.waitForSelector('[data-testid=confirmation-code]', { timeout: 15000 });
  assert.equal((await phone.textContent('[data-testid=confirmation-code]')).trim(), shown);
  await phone.click('button.approve');
  await tech.waitForSelector('[data-testid=status]:has-text("Approved")', { timeout: 20000 });
  await phone.close();
});

test('an admin removes a company mapping from its row', async () => {
  const app = demo.urls.app;
  const admin = await browser.newPage();
  await signIn(admin, app, DEMO_ADMIN);
  await admin.waitForSelector('nav a[href="/settings"]');
  await admin.goto(`${app}/settings/connections`);
  await admin.waitForSelector('[data-testid=mapping-form]');
  await waitForHydration(admin);
  await admin.fill('#map-company', '9090');
  await admin.selectOption('#map-organization', { label: 'Contoso' });
  await clickAndWait(admin, '[data-testid=save-mapping]', 'save_mapping');
  const row = admin.locator('[data-testid=mappings] tr', { has: admin.locator('td:text-is("9090")') });
  await row.waitFor();

  await Promise.all([
    admin.waitForResponse((r) => r.url().includes('/api/admin/remove_mapping')),
    row.locator('[data-testid=remove-mapping]').click(),
  ]);

  await admin.waitForSelector('[data-testid=mapping-removed] [data-testid=saved]');
  assert.match(
    await admin.textContent('[data-testid=mapping-removed]'),
    /Company 9090 of ConnectWise \(simulator\) no longer belongs to Contoso/,
  );
  await row.waitFor({ state: 'detached' });
  assert.equal(await admin.locator('[data-testid=mappings] td:text-is("9090")').count(), 0);
  await admin.goto(`${app}/audit?technician=Demo%20Admin`);
  await admin.waitForSelector('[data-testid=audit-table]');
  assert.match(await admin.textContent('[data-testid=audit-table]'), /company unmapped/);
});

test('a technician sees no admin links and gets 403 from every admin page', async () => {
  const app = demo.urls.app;
  const tech = await browser.newPage();
  await signIn(tech, app, DEMO_TECH);
  await tech.waitForSelector('[data-testid=current-user]');
  await waitForHydration(tech);
  assert.equal(await tech.locator('a[href="/settings"]').count(), 0);
  assert.equal(await tech.locator('a[href="/audit"]').count(), 0);
  for (const path of [
    '/settings', '/settings/organizations', '/settings/organizations/1', '/settings/connections',
    '/settings/policy', '/settings/users', '/audit', '/audit/ticket/1', '/audit/export.csv',
  ]) {
    const res = await tech.goto(`${app}${path}`);
    assert.equal(res.status(), 403, path);
  }
  await tech.goto(`${app}/settings/users`);
  await tech.waitForSelector('[data-testid=forbidden]');
  await screenshot(tech, 'settings-forbidden');
});

test('a problem with one user is shown in that user\'s row', async () => {
  const app = demo.urls.app;
  const admin = await browser.newPage();
  await signIn(admin, app, DEMO_ADMIN);
  await admin.goto(`${app}/settings/users`);
  await admin.waitForSelector('[data-testid=users]');
  await waitForHydration(admin);
  const tech = admin.locator('[data-testid=user-tech]');
  const me = admin.locator('[data-testid=user-admin]');

  // A password that is too short, for the technician.
  await tech.locator('input[name=password]').fill('short');
  await Promise.all([
    admin.waitForResponse((r) => r.url().includes('/api/admin/reset_password')),
    tech.locator('[data-testid=reset-password]').click(),
  ]);
  await tech.locator('[data-testid=error-password]').waitFor();
  assert.match(await tech.locator('[data-testid=error-password]').textContent(), /at least/);
  assert.equal(await me.locator('[data-testid=error-password]').count(), 0);

  // Disabling one's own account.
  await Promise.all([
    admin.waitForResponse((r) => r.url().includes('/api/admin/set_user_disabled')),
    me.locator('[data-testid=toggle-user]').click(),
  ]);
  await me.locator('[data-testid=error-disabled]').waitFor();
  assert.equal(await me.locator('[data-testid=error-disabled]').textContent(), 'You cannot disable your own account.');
  assert.equal(await tech.locator('[data-testid=error-disabled]').count(), 0);
  assert.equal(await admin.locator('[data-testid=saved]').count(), 0, 'nothing was saved');
  await screenshot(admin, 'settings-users-row-error');
});
