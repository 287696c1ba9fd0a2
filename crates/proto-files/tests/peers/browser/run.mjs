// Runs one scenario of tests/browser.rs in headless Chromium (Debian's, driven by playwright-core):
// opens PAGE_URL, evaluates SCENARIO_JS (a file defining `async function run(arg)`) in the page
// with ARG_JSON, and prints the JSON it returns on one line. Page console lines go to stderr.
//
//   node run.mjs PLAYWRIGHT_CORE_INDEX_MJS PAGE_URL SCENARIO_JS [ARG_JSON]
//
// Environment: CHROMIUM (default /usr/bin/chromium).

import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';

const [playwright, url, scenario, arg = '{}'] = process.argv.slice(2);
const {chromium} = await import(pathToFileURL(playwright).href);
const source = readFileSync(scenario, 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'wskit-files-chromium-'));
const timer = setTimeout(() => {
  console.error('browser scenario: overall deadline exceeded');
  process.exit(1);
}, 120000);
let context;
try {
  context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(100000);
  page.on('console', (m) => console.error(`page: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`page error: ${e}`));
  await page.goto(url);
  const result = await page.evaluate(`(async () => { ${source}\n; return await run(${arg}); })()`);
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`browser scenario: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  if (context) await context.close();
  rmSync(dir, {recursive: true, force: true});
}
