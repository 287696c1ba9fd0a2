// Drives Debian's Chromium (headless, through playwright-core) against a running `wskit serve`:
// loads the built-in test page, connects a WebSocket to /echo, checks that permessage-deflate was
// negotiated, echoes a text and a binary message, does the same through the sgcWebSockets
// compatibility layer (sgcWebSocket, sgcWSStreamWrite/Read), waits for the SSE `welcome` event,
// checks the fallback from a refused WebSocket to SSE (WskitClient with a derived and an explicit
// sseUrl, and sgcWebSocket's default transports), uploads a file through the multipart form and
// takes a screenshot. With AUTH_PORT, a second server with `--user alice:s3cret/ü? --sgc-url-auth`,
// it also connects with sgcWebSocket's credentials form {host, user, password} (and is refused
// with a wrong password or none).
//
//   node test.mjs PORT SCREENSHOT_PATH [UPLOAD_COPY_PATH] [AUTH_PORT]
//
// UPLOAD_COPY_PATH, when given (or ''), receives the exact bytes that were uploaded, so that the
// caller can compare them with what the server saved. Prints one JSON line of results on stdout and exits 0;
// on any failure prints `interop browser: FAILED: ...` on stderr (plus the page's logs) and exits 1.
// Environment: CHROMIUM (default /usr/bin/chromium), WSKIT_INTEROP_TIMEOUT_MS (per wait, 15000).

import {chromium} from 'playwright-core';
import {mkdtempSync, rmSync, writeFileSync, mkdirSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {randomBytes} from 'node:crypto';

const [portArg, screenshotArg, uploadCopyArg, authPortArg] = process.argv.slice(2);
const authPort = authPortArg ? Number(authPortArg) : null;
const port = Number(portArg);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !screenshotArg) {
  console.error('usage: node test.mjs PORT SCREENSHOT_PATH [UPLOAD_COPY_PATH]');
  process.exit(2);
}
const screenshot = resolve(screenshotArg);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = Number(process.env.WSKIT_INTEROP_TIMEOUT_MS || 15000);
const origin = `http://127.0.0.1:${port}`;

// The step being run, for the failure message.
let step = 'start';
const results = {ok: false, origin};
const pageLog = [];
let context = null;
let page = null;
const userDataDir = mkdtempSync(join(tmpdir(), 'wskit-chromium-'));

// Tears down even when a wait hangs past its own timeout.
const watchdog = setTimeout(() => fail(new Error(`overall deadline exceeded`)), TIMEOUT * 10);
watchdog.unref();

async function cleanup() {
  try {
    if (context) await context.close();
  } catch (_) {
    // already gone
  }
  context = null;
  rmSync(userDataDir, {recursive: true, force: true});
}

async function fail(err) {
  // Exits even when closing the browser hangs.
  setTimeout(() => process.exit(1), 5000).unref();
  console.error(`interop browser: FAILED at step "${step}": ${err && err.message ? err.message : err}`);
  if (page) {
    // What the page showed, to tell a server problem from a page problem.
    const shown = await page
      .evaluate(() =>
        ['#status', '#extensions', '#close-info', '#log', '#sse-status', '#sse-log', '#upload-result'].map((sel) => {
          const el = document.querySelector(sel);
          const text = el ? (el.children.length ? [...el.children].map((c) => c.textContent).join(' | ') : el.textContent) : '(missing)';
          return `${sel}: ${text.trim().slice(-400)}`;
        }),
      )
      .catch(() => []);
    if (shown.length) console.error('page state:\n  ' + shown.join('\n  '));
  }
  if (pageLog.length) console.error('page log:\n  ' + pageLog.slice(-40).join('\n  '));
  await cleanup();
  process.exit(1);
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

// The uploaded file: a text header, then bytes that trip naive multipart parsers (CRLF, dashes, a
// fake boundary, NUL), then every byte value, then random bytes; about 200 KiB in all.
function uploadBytes() {
  const header = Buffer.from('wskit interop upload\r\n\r\n--\r\n------WebKitFormBoundaryFAKE\r\n--\0\r\n');
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  return Buffer.concat([header, all, randomBytes(200 * 1024), Buffer.from('\r\n--')]);
}

async function main() {
  step = 'fetch /wskit.js';
  const js = await fetch(`${origin}/wskit.js`, {signal: AbortSignal.timeout(TIMEOUT)});
  check(js.ok, `GET /wskit.js: HTTP ${js.status}`);
  const jsType = js.headers.get('content-type') || '';
  check(/^(application|text)\/javascript\b/i.test(jsType), `GET /wskit.js: content-type ${JSON.stringify(jsType)}`);
  check((await js.text()).includes('WskitClient'), 'GET /wskit.js does not define WskitClient');

  step = 'launch chromium';
  // A persistent context on a fresh directory: Playwright refuses `--user-data-dir` in `args`.
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    timeout: TIMEOUT * 2,
    viewport: {width: 1100, height: 800},
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  results.browser = context.browser()?.version() ?? 'chromium';
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  const pageErrors = [];
  page.on('pageerror', (e) => {
    pageErrors.push(String(e));
    pageLog.push(`pageerror: ${e}`);
  });
  page.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
  page.on('response', (r) => {
    if (r.status() >= 400) pageLog.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => pageLog.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));

  step = 'load /';
  const resp = await page.goto(`${origin}/`, {waitUntil: 'load', timeout: TIMEOUT});
  check(resp && resp.ok(), `GET /: HTTP ${resp && resp.status()}`);
  check(/^text\/html\b/i.test(resp.headers()['content-type'] || ''), `GET /: content-type ${resp.headers()['content-type']}`);
  check(await page.evaluate(() => typeof window.WskitClient === 'function'), 'the page has no WskitClient (/wskit.js not loaded)');
  const url = await page.inputValue('#url');
  check(url === `ws://127.0.0.1:${port}/echo`, `default WebSocket URL is ${JSON.stringify(url)}`);
  results.url = url;

  step = 'connect /echo';
  const t0 = Date.now();
  await page.click('#connect');
  await waitState(page, '#status', 'open');
  results.open_ms = Date.now() - t0;
  results.extensions = (await page.textContent('#extensions')).trim();
  results.protocol = (await page.textContent('#protocol')).trim();
  check(results.extensions.includes('permessage-deflate'), `extensions are ${JSON.stringify(results.extensions)}, expected permessage-deflate`);

  step = 'echo text';
  const text = `hello from chromium ${randomBytes(4).toString('hex')} ✓`;
  await page.fill('#send-text', text);
  const t1 = Date.now();
  await page.click('#send');
  await page.locator('#log li.in[data-kind=text] .text', {hasText: text}).first().waitFor({timeout: TIMEOUT});
  const echoed = await page.locator('#log li.in[data-kind=text] .text').last().textContent();
  check(echoed === text, `echoed ${JSON.stringify(echoed)}, sent ${JSON.stringify(text)}`);
  results.echo_ms = Date.now() - t1;
  results.echo = echoed;

  step = 'echo binary';
  const binText = `binary ${randomBytes(4).toString('hex')}`;
  await page.fill('#send-text', binText);
  await page.click('#send-binary');
  await page.locator('#log li.in[data-kind=binary] .text', {hasText: binText}).first().waitFor({timeout: TIMEOUT});
  const binEcho = await page.locator('#log li.in[data-kind=binary] .text').last().textContent();
  const want = `[binary ${Buffer.byteLength(binText)} bytes]`;
  check(binEcho.startsWith(want), `binary echo ${JSON.stringify(binEcho)}, expected it to start with ${want}`);
  results.binary_echo = true;

  step = 'sgcWebSocket compatibility';
  // A page written against the seed's browser library: its constructor, events and send calls, and
  // the binary ID-header helpers, through the same /wskit.js, against /echo.
  const compat = await page.evaluate(
    async ([wsUrl, timeout]) => {
      const out = {};
      const s = new sgcWebSocket(wsUrl);
      const wait = (ev) =>
        new Promise((res, rej) => {
          s.on(ev, res);
          setTimeout(() => rej(new Error(`no ${ev} event within ${timeout} ms`)), timeout);
        });
      await wait('open');
      out.state = s.state();
      const msg = wait('message');
      s.send('sgc text ✓');
      out.text = (await msg).message;
      const payload = new Uint8Array(300).map((_, i) => (i * 7) & 255);
      const stream = wait('stream');
      s.send(sgcWSStreamWrite('00042', payload));
      const ev = await stream;
      out.streamIsBlob = ev.stream instanceof Blob;
      const r = await sgcWSStreamRead(ev.stream);
      out.header = r.header;
      const got = new Uint8Array(await r.stream.arrayBuffer());
      out.payloadOk = got.length === payload.length && got.every((b, i) => b === payload[i]);
      const closed = wait('close');
      s.close();
      out.close = (await closed).code;
      return out;
    },
    [url, TIMEOUT],
  );
  check(compat.state === 'open', `sgcWebSocket state after open is ${compat.state}`);
  check(compat.text === 'sgc text ✓', `sgcWebSocket message event carried ${JSON.stringify(compat.text)}`);
  check(compat.streamIsBlob, 'sgcWebSocket stream event did not carry a Blob');
  check(compat.header === '00042', `sgcWSStreamRead header is ${JSON.stringify(compat.header)}`);
  check(compat.payloadOk, 'sgcWSStreamRead payload differs from what was sent');
  check(compat.close === 1000 || compat.close === 1005, `sgcWebSocket close code ${compat.close}`);
  results.sgc_compat = compat;

  step = 'SSE welcome';
  const welcome = page.locator('#sse-log li.in[data-event=welcome]').first();
  await welcome.waitFor({timeout: TIMEOUT});
  const welcomeData = await welcome.getAttribute('data-data');
  check(welcomeData === 'hello', `SSE welcome data is ${JSON.stringify(welcomeData)}, expected "hello"`);
  await waitState(page, '#sse-status', 'open');
  results.sse = {event: 'welcome', data: welcomeData};

  step = 'fallback to SSE';
  // wskit serve refuses a WebSocket on /sse (404) and on unknown paths, and serves SSE on /sse.
  const fallback = await page.evaluate(
    async ([sgcUrl, timeout]) => {
      const run = (url, opts) =>
        new Promise((res, rej) => {
          const events = [];
          const c = new WskitClient(url, Object.assign({minDelay: 20, maxDelay: 40, sseEvents: ['welcome']}, opts));
          const t = setTimeout(() => {
            c.close();
            rej(new Error(`no SSE event within ${timeout} ms from ${url}; events ${JSON.stringify(events)}`));
          }, timeout);
          c.on('close', (i) => events.push(`close ${i.code} ${i.willReconnect ? 'will reconnect' : 'final'}`));
          c.on('reconnecting', (i) => events.push(`reconnecting ${i.transport}`));
          c.on('fallback', (i) => events.push(`fallback ${i.from} to ${i.to}`));
          c.on('open', (i) => events.push(`open ${i.transport}`));
          c.on('message', (data, info) => {
            events.push(`message ${info.transport} ${info.event} ${data}`);
            const transport = c.transport();
            clearTimeout(t);
            c.close();
            res({events, transport});
          });
        });
      const sgc = () =>
        new Promise((res, rej) => {
          const events = [];
          const s = new sgcWebSocket(sgcUrl);
          const t = setTimeout(() => rej(new Error(`sgcWebSocket did not open within ${timeout} ms; events ${JSON.stringify(events)}`)), timeout);
          s.on('close', (e) => events.push(`close ${e.code}`));
          s.on('open', (e) => {
            events.push(`open ${e.transport}`);
            clearTimeout(t);
            s.close();
            res(events);
          });
        });
      return {
        derived: await run('/sse', {sseUrl: true, fallbackAfter: 2}),
        explicit: await run('/no-such-endpoint', {sseUrl: '/sse', fallbackAfter: 1}),
        sgc: await sgc(),
      };
    },
    [`ws://127.0.0.1:${port}/sse`, TIMEOUT],
  );
  const wantDerived = [
    'close 1006 will reconnect',
    'reconnecting websocket',
    'close 1006 will reconnect',
    'fallback websocket to sse',
    'open sse',
    'message sse welcome hello',
    'close 1000 final',
  ];
  check(
    JSON.stringify(fallback.derived.events) === JSON.stringify(wantDerived) && fallback.derived.transport === 'sse',
    `fallback with a derived sseUrl: ${JSON.stringify(fallback.derived)}, expected events ${JSON.stringify(wantDerived)}`,
  );
  const wantExplicit = ['close 1006 will reconnect', 'fallback websocket to sse', 'open sse', 'message sse welcome hello', 'close 1000 final'];
  check(
    JSON.stringify(fallback.explicit.events) === JSON.stringify(wantExplicit),
    `fallback with sseUrl '/sse': ${JSON.stringify(fallback.explicit)}, expected events ${JSON.stringify(wantExplicit)}`,
  );
  check(
    JSON.stringify(fallback.sgc) === JSON.stringify(['open sse', 'close 1000']),
    `sgcWebSocket on a refused WebSocket: events ${JSON.stringify(fallback.sgc)}, expected an open over sse (no close for the refused WebSocket), then its own close`,
  );
  results.fallback = fallback;

  if (authPort) {
    step = 'sgcWebSocket credentials';
    const creds = await page.evaluate(
      async ([host, user, password, timeout]) => {
        const attempt = (url, transport) =>
          new Promise((res) => {
            const out = {};
            const s = new sgcWebSocket(url, '', transport);
            const t = setTimeout(() => res(Object.assign(out, {timedOut: true})), timeout);
            s.on('open', (e) => {
              out.open = e.transport;
              s.send('with credentials ✓');
            });
            s.on('message', (e) => {
              out.echo = e.message;
              s.close();
            });
            s.on('error', () => {
              out.error = true;
            });
            s.on('close', (e) => {
              out.close = e.code;
              clearTimeout(t);
              res(out);
            });
          });
        return {
          good: await attempt({host, user, password}),
          wrong: await attempt({host, user, password: password + 'x'}, 'websocket'),
          none: await attempt({host}, 'websocket'),
        };
      },
      [`ws://127.0.0.1:${authPort}/echo`, 'alice', 's3cret/ü?', TIMEOUT],
    );
    check(
      creds.good.open === 'websocket' && creds.good.echo === 'with credentials ✓' && [1000, 1005].includes(creds.good.close),
      `sgcWebSocket({host, user, password}): ${JSON.stringify(creds.good)}`,
    );
    for (const k of ['wrong', 'none']) {
      check(!creds[k].open && !creds[k].timedOut && creds[k].close === 1006, `sgcWebSocket with ${k} credentials was not refused: ${JSON.stringify(creds[k])}`);
    }
    results.credentials = creds;
  }

  step = 'upload';
  const bytes = uploadBytes();
  const name = 'wskit-interop-upload.bin';
  if (uploadCopyArg) {
    mkdirSync(dirname(resolve(uploadCopyArg)), {recursive: true});
    writeFileSync(resolve(uploadCopyArg), bytes);
  }
  await page.setInputFiles('#upload-file', {name, mimeType: 'application/octet-stream', buffer: bytes});
  await page.fill('#upload-note', 'uploaded by the interop test');
  await page.click('#upload-submit');
  await page.waitForFunction(
    () => {
      const s = document.getElementById('upload-result').dataset.status;
      return s !== '' && s !== undefined;
    },
    null,
    {timeout: TIMEOUT},
  );
  const status = await page.getAttribute('#upload-result', 'data-status');
  const uploadText = (await page.textContent('#upload-result')).trim();
  check(status === '200', `upload answered ${status}: ${uploadText}`);
  const expected = `saved ${name} (${bytes.length} bytes)`;
  check(uploadText.includes(expected), `upload result ${JSON.stringify(uploadText)}, expected ${JSON.stringify(expected)}`);
  results.upload = {name, size: bytes.length, result: uploadText};

  step = 'screenshot';
  mkdirSync(dirname(screenshot), {recursive: true});
  await page.screenshot({path: screenshot, fullPage: true, timeout: TIMEOUT});
  results.screenshot = screenshot;

  step = 'close';
  await page.click('#disconnect');
  await waitState(page, '#status', 'closed');
  results.close = (await page.textContent('#close-info')).trim();
  // The server echoes the close; RFC 6455 lets it omit the code (the browser then reports 1005).
  check(/^(1000|1005)\b.*\bclean$/.test(results.close), `close info is ${JSON.stringify(results.close)}, expected a clean 1000`);

  check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join('; ')}`);
  results.ok = true;
  await cleanup();
  clearTimeout(watchdog);
  process.stdout.write(JSON.stringify(results) + '\n');
}

// Waits until the badge's data-state is `state`; fails early when it reaches 'closed' instead.
async function waitState(page, selector, state) {
  try {
    await page.waitForFunction(
      ([sel, want]) => {
        const s = document.querySelector(sel)?.dataset.state;
        return s === want || (s === 'closed' && want !== 'closed');
      },
      [selector, state],
      {timeout: TIMEOUT},
    );
  } catch (e) {
    const got = await page.textContent(selector).catch(() => '?');
    throw new Error(`${selector} did not become ${state} within ${TIMEOUT} ms (it shows ${JSON.stringify(got)})`);
  }
  const got = await page.getAttribute(selector, 'data-state');
  if (got !== state) {
    throw new Error(`${selector} is ${got} (${JSON.stringify(await page.textContent(selector))}), expected ${state}`);
  }
}

main().catch(fail);
