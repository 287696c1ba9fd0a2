// Headless Chromium (Debian's, driven by playwright-core) runs wskit-files.js against a
// proto-files server: the page sends a 1,000,003-byte Blob at QoS 2, then waits for the file the
// server sends back at QoS 1. Prints one JSON line: {sent, received} with sizes and SHA-256s.
//
//   node browser_files.mjs PLAYWRIGHT_CORE_INDEX_MJS PAGE_URL
//
// Environment: CHROMIUM (default /usr/bin/chromium).

import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';

const [playwright, url] = process.argv.slice(2);
const {chromium} = await import(pathToFileURL(playwright).href);
const dir = mkdtempSync(join(tmpdir(), 'wskit-files-chromium-'));
const timer = setTimeout(() => {
  console.error('browser files: overall deadline exceeded');
  process.exit(1);
}, 90000);
let context;
try {
  context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(60000);
  page.on('console', (m) => console.error(`page: ${m.text()}`));
  await page.goto(url);
  const result = await page.evaluate(async () => {
    const files = new WskitFiles('/files?channel=browser');
    await files.ready;
    const received = new Promise((resolve) => files.on('file', resolve));
    const events = {};
    files.on('event', (e) => { events[e.kind] = (events[e.kind] || 0) + 1; });
    const data = new Uint8Array(1000003);
    let x = 7;
    for (let i = 0; i < data.length; i++) { x = (x * 1103515245 + 12345) >>> 0; data[i] = x >>> 16; }
    const sent = await files.sendFile(new Blob([data]), {name: 'from-browser.bin', qos: 2, chunk: 32768});
    const f = await received;
    const h = new WskitFiles.Sha256();
    h.update(new Uint8Array(await f.blob.arrayBuffer()));
    const blobSha = Array.from(h.digest(), (b) => b.toString(16).padStart(2, '0')).join('');
    return {sent, received: {name: f.name, size: f.size, sha256: f.sha256, blobSha}, events};
  });
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`browser files: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  if (context) await context.close();
  rmSync(dir, {recursive: true, force: true});
}
