// Runs the browser tests (*.test.mjs here, in name order, or those named on the command line) in one
// Chromium against a running server; each test gets its own contexts and artifact directory, and a
// time limit. Exit status 1 when any test failed.
//   BR_WEB_BASE=http://127.0.0.1:PORT BR_WEB_ADMIN=email:password BR_WEB_ARTIFACTS=DIR node run.mjs [name...]

import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';
import {launchBrowser, Ctx} from './lib/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const base = process.env.BR_WEB_BASE;
const artifacts = path.resolve(process.env.BR_WEB_ARTIFACTS || 'browser-artifacts');
const [adminEmail, ...pw] = (process.env.BR_WEB_ADMIN || '').split(':');
if (!base || !adminEmail || !pw.length) {
  console.error('run.mjs: set BR_WEB_BASE and BR_WEB_ADMIN (email:password)');
  process.exit(2);
}
const admin = {email: adminEmail, password: pw.join(':')};
const TEST_MS = Number(process.env.BR_WEB_TEST_MS || 90000);

const wanted = process.argv.slice(2);
const files = fs.readdirSync(here).filter((f) => f.endsWith('.test.mjs')).sort()
  .filter((f) => !wanted.length || wanted.some((w) => f.includes(w)));
if (!files.length) {
  console.error(`run.mjs: no test matches ${wanted.join(' ')}`);
  process.exit(2);
}

const browser = await launchBrowser();
console.log(`browser: Chromium ${browser.version()}; server ${base}; artifacts in ${artifacts}`);
const failed = [];
const t0 = Date.now();
for (const f of files) {
  const name = f.replace(/\.test\.mjs$/, '');
  const mod = await import(pathToFileURL(path.join(here, f)).href);
  const ctx = new Ctx(browser, name, {base, artifacts, admin});
  const start = Date.now();
  let err = null;
  let timer;
  try {
    await Promise.race([
      mod.default(ctx),
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${TEST_MS} ms`)), TEST_MS); }),
    ]);
    if (ctx.problems.length) {
      err = new Error(ctx.problems.join('\n'));
    }
  } catch (e) {
    err = e;
  } finally {
    clearTimeout(timer);
  }
  if (err) {
    // The page as it was when the test failed.
    for (const c of ctx.contexts) {
      for (const p of c.pages()) {
        await ctx.shot(p, 'FAILED').catch(() => {});
      }
    }
  }
  await ctx.close();
  fs.writeFileSync(path.join(ctx.dir, 'console.log'), ctx.log.join('\n') + '\n');
  const secs = ((Date.now() - start) / 1000).toFixed(1);
  if (err) {
    failed.push(name);
    console.log(`FAIL ${name} (${secs} s): ${err.message}`);
    if (!(err.name === 'TestFailure') && err.stack) {
      console.log(err.stack.split('\n').slice(1, 6).join('\n'));
    }
    console.log(`     screenshots and console: ${ctx.dir}`);
  } else {
    console.log(`ok   ${name} (${secs} s, ${ctx.step} screenshots, axe on ${ctx.axeRuns} page states)`);
  }
}
await browser.close();
const total = ((Date.now() - t0) / 1000).toFixed(1);
if (failed.length) {
  console.log(`browser tests: ${failed.length} of ${files.length} failed (${failed.join(', ')}) in ${total} s`);
  process.exit(1);
}
console.log(`browser tests: all ${files.length} passed in ${total} s`);
