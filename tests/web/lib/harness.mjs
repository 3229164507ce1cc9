// What every browser test shares: Debian's Chromium through playwright-core, one fresh browser
// context per test, numbered screenshots of each step, axe-core on a page, and checks on what a
// page shows (never raw JSON, no uncaught script error, no Content-Security-Policy violation).

import fs from 'node:fs';
import path from 'node:path';
import {createRequire} from 'node:module';
import {chromium} from 'playwright-core';
import {Api} from './api.mjs';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export const STEP_MS = 15000; // the longest any one wait may take

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.BR_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    // The closed network here refuses Chromium's background connections (machines/c.md).
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

export class TestFailure extends Error {}

export function check(cond, what) {
  if (!cond) {
    throw new TestFailure(what);
  }
}

// One test's context: ctx.page(), ctx.shot(page, step), ctx.axe(page, label), ctx.api, ctx.base.
export class Ctx {
  constructor(browser, name, {base, artifacts, admin}) {
    this.browser = browser;
    this.name = name;
    this.base = base;
    this.api = new Api(base);
    this.admin = admin; // {email, password}
    this.dir = path.join(artifacts, name);
    fs.mkdirSync(this.dir, {recursive: true});
    this.step = 0;
    this.problems = []; // uncaught page errors and CSP violations
    this.log = [];
    this.contexts = [];
    this.axeRuns = 0;
  }

  async adminToken() {
    if (!this._adminToken) {
      this._adminToken = await this.api.login(this.admin.email, this.admin.password);
    }
    return this._adminToken;
  }

  // A new page in its own browser context (own sessionStorage: one person).
  async page({width = 1280, height = 900, isMobile = false} = {}) {
    const context = await this.browser.newContext({viewport: {width, height}, isMobile, hasTouch: isMobile,
      reducedMotion: 'reduce'});
    context.setDefaultTimeout(STEP_MS);
    this.contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (e) => this.problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      const text = m.text();
      this.log.push(`[${m.type()}] ${text}`);
      if (m.type() === 'error' && /Content.Security.Policy/i.test(text)) {
        this.problems.push(`CSP violation: ${text}`);
      }
    });
    return page;
  }

  async goto(page, hash) {
    await page.goto(`${this.base}/${hash}`, {waitUntil: 'domcontentloaded'});
  }

  // Saves NN-step.png in the test's artifact directory -> its path.
  async shot(page, step, {fullPage = true} = {}) {
    this.step += 1;
    const file = path.join(this.dir, `${String(this.step).padStart(2, '0')}-${step}.png`);
    // A whole-page shot: the window made as tall as the page, then put back. (Playwright's own
    // fullPage left this Chromium's scroll position out of step: the next click scrolled the
    // page between mousedown and mouseup and missed its button.)
    const view = page.viewportSize();
    const height = fullPage ? await page.evaluate(() => document.documentElement.scrollHeight) : view.height;
    if (height > view.height) {
      await page.setViewportSize({width: view.width, height: Math.min(height, 4000)});
    }
    await page.screenshot({path: file, animations: 'disabled', caret: 'hide'});
    if (height > view.height) {
      await page.setViewportSize(view);
    }
    return file;
  }

  // Runs axe-core on the page as it is; fails on any serious or critical violation. axe is
  // evaluated through the DevTools protocol, so the page's CSP ('self' only) stays in force.
  async axe(page, label) {
    this.axeRuns += 1;
    await page.evaluate(AXE_SOURCE);
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, {resultTypes: ['violations']});
      return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' '))}));
    });
    const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    const minor = result.filter((v) => !bad.includes(v));
    if (minor.length) {
      this.log.push(`axe ${label}: minor: ${minor.map((v) => `${v.id} (${v.impact})`).join(', ')}`);
    }
    check(bad.length === 0, `axe on ${label}: ${bad.map((v) => `${v.impact} ${v.id} "${v.help}" at ${v.nodes.join(' | ')}`).join('; ')}`);
  }

  // What the page shows must never be raw JSON or an HTTP status line.
  async noRawErrors(page, label) {
    const text = await page.locator('body').innerText();
    check(!/\{\s*"error"|"code"\s*:|\bHTTP\/1\.1\b|\bat .+\.js:\d+/.test(text), `${label}: the page shows raw JSON or a stack: ${text.slice(0, 300)}`);
  }

  async close() {
    for (const c of this.contexts) {
      await c.close().catch(() => {});
    }
  }
}

export const sel = (name) => `[data-test="${name}"]`;

// Text of the one message area, and its data-code.
export async function message(page) {
  const m = page.locator(sel('message'));
  return {text: (await m.innerText()).trim(), code: await m.getAttribute('data-code'), kind: await m.getAttribute('data-kind')};
}

// Waits for the message area to carry `code` (data-code) -> its text.
export async function waitMessageCode(page, code, timeout = STEP_MS) {
  await page.locator(`${sel('message')}[data-code="${code}"]`).waitFor({state: 'visible', timeout});
  return (await page.locator(sel('message')).innerText()).trim();
}

// Registers through the register page (then signed in); lands on `next`.
export async function registerInPage(ctx, page, {name, email, password}, next = '/') {
  await ctx.goto(page, `#/register?next=${encodeURIComponent(next)}`);
  await page.locator(sel('register-form')).waitFor();
  await page.fill(sel('register-name'), name);
  await page.fill(sel('register-email'), email);
  await page.fill(sel('register-password'), password);
  await page.click(sel('register-button'));
  await page.locator(sel('logout-button')).waitFor();
}

export async function loginInPage(ctx, page, {email, password}, next = '/') {
  await ctx.goto(page, `#/login?next=${encodeURIComponent(next)}`);
  await page.locator(sel('login-form')).waitFor();
  await page.fill(sel('login-email'), email);
  await page.fill(sel('login-password'), password);
  await page.click(sel('login-button'));
  await page.locator(sel('logout-button')).waitFor();
}

// A unique address for this run.
let seq = 0;
export function email(tag) {
  seq += 1;
  return `${tag}-${process.pid}-${seq}@web.test`;
}
