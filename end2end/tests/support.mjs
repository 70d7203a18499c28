// Shared helpers for the browser tests: start `deskproof demo` on a free port with its own
// database, and open Debian's Chromium through playwright-core (no browser download).
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const here = path.dirname(new URL(import.meta.url).pathname);
export const root = path.resolve(here, '..', '..');
export const screenshots = path.join(root, 'end2end', 'screenshots');

export const DEMO_TECH = { username: 'tech', password: 'demo-tech-password' };
export const DEMO_ADMIN = { username: 'admin', password: 'demo-admin-password' };

/** How to stop each demo started in this file, so a failing browser close still stops them. */
const demos = [];

/** Starts `deskproof demo`; resolves with the URLs it printed and a `stop` function. */
export async function startDemo() {
  const dir = mkdtempSync(path.join(tmpdir(), 'deskproof-e2e-'));
  const bin = process.env.DESKPROOF_BIN
    ? path.resolve(process.env.DESKPROOF_BIN)
    : path.join(root, 'target', 'debug', 'deskproof');
  const siteRoot = process.env.DESKPROOF_SITE_ROOT
    ? path.resolve(process.env.DESKPROOF_SITE_ROOT)
    : path.join(root, 'target', 'site');
  const child = spawn(bin, ['demo'], {
    cwd: dir,
    env: {
      ...process.env,
      DESKPROOF_BIND: '127.0.0.1:0',
      DESKPROOF_DATABASE_URL: `sqlite://${dir}/deskproof.db`,
      DESKPROOF_SITE_ROOT: siteRoot,
      DESKPROOF_DEMO_FAST: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (d) => { output += d.toString(); });
  const urls = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not start:\n${output}`)), 60000);
    child.stdout.on('data', (d) => {
      output += d.toString();
      const found = {};
      for (const line of output.split('\n')) {
        const m = line.match(/^\s*([a-z][a-z .-]*[a-z0-9]):\s+(http\S+)/i);
        if (m) found[m[1].trim()] = m[2];
      }
      const app = output.match(/running at (http\S+)/);
      if (app && output.includes('Contacts:')) {
        clearTimeout(timer);
        resolve({ app: app[1], ...found });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`demo exited with ${code}:\n${output}`));
    });
  });
  const stop = () => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
  demos.push(stop);
  return { urls, output: () => output, stop };
}

/**
 * Content Security Policy violations Chromium reported on any page, as `url: message`. Closing
 * the browser fails when there are any, so every browser test also checks that deskproof's
 * pages run under their policy (hydration included).
 */
export const cspViolations = [];

function watchForCsp(page) {
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
      cspViolations.push(`${page.url()}: ${msg.text()}`);
    }
  });
}

/** Starts Chromium; every `newPage` call on the result gets a fresh profile (no cookies). */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
  });
  return {
    newPage: async () => {
      const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
      const page = await context.newPage();
      watchForCsp(page);
      return page;
    },
    close: async () => {
      await browser.close();
      if (cspViolations.length) {
        await Promise.all(demos.map((stop) => stop()));
        throw new Error(`Content Security Policy violations:\n${cspViolations.join('\n')}`);
      }
    },
  };
}

/**
 * Closes a page and its profile. The page is first taken to about:blank, so a page that
 * reloads itself (the simulated phone) is not in the middle of a navigation when it closes.
 */
export async function closePage(page) {
  await page.goto('about:blank');
  await page.context().close();
}

/**
 * The page's HTML once it is not between two loads: the simulated phone reloads itself, and
 * reading it mid-navigation fails.
 */
export async function settledContent(page) {
  for (let tries = 0; ; tries += 1) {
    try {
      return await page.content();
    } catch (e) {
      if (tries >= 10 || !/navigating/.test(e.message)) throw e;
      await page.waitForLoadState('load');
    }
  }
}

export async function screenshot(page, name) {
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });
}

/** Signs in through the page, the way a person would. */
export async function signIn(page, baseUrl, who) {
  await page.goto(`${baseUrl}/signin`);
  await waitForHydration(page);
  await page.fill('#username', who.username);
  await page.fill('#password', who.password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${baseUrl}/`);
}

/** Resolves once the WebAssembly bundle has attached to the server-rendered page. */
export async function waitForHydration(page) {
  await page.waitForFunction(() => window.__deskproof_hydrated === true, null, { timeout: 30000 });
}
