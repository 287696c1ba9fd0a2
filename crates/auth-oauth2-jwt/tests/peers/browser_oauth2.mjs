// Headless Chromium (Debian's, driven by playwright-core) through the whole OAuth2 browser flow
// against the auth-oauth2-jwt server: the sign-in page, the form, the redirect with the code, then
// the callback page exchanges the code (PKCE) and opens a WebSocket carrying the token as a
// `bearer.<token>` subprotocol. Prints the page's final text on stdout.
//
//   node browser_oauth2.mjs PLAYWRIGHT_CORE_INDEX_MJS AUTHORIZE_URL
//
// Environment: CHROMIUM (default /usr/bin/chromium).

import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';

const [playwright, start] = process.argv.slice(2);
const {chromium} = await import(pathToFileURL(playwright).href);
const dir = mkdtempSync(join(tmpdir(), 'wskit-oauth2-chromium-'));
const timer = setTimeout(() => {
  console.error('browser flow: overall deadline exceeded');
  process.exit(1);
}, 60000);
let context;
try {
  context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  const answer = await page.goto(start);
  const frame = answer.headers()['x-frame-options'];
  if (frame !== 'DENY') throw new Error(`sign-in page without X-Frame-Options: DENY (${frame})`);
  await page.fill('input[name=username]', 'alice');
  await page.fill('input[name=password]', 'wonderland');
  await Promise.all([page.waitForURL(/\/callback\?/), page.click('button[value=allow]')]);
  await page.waitForFunction(() => !document.getElementById('result').textContent.startsWith('working'));
  console.log(await page.textContent('#result'));
} catch (e) {
  console.error(`browser flow: FAILED: ${e && e.message ? e.message : e}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(dir, {recursive: true, force: true});
  clearTimeout(timer);
}
