// Drives Debian's Chromium (headless, through playwright-core) against a running WebSocket-to-TCP
// proxy (crates/ws-proxy/tests/interop_peers.rs starts it), the way noVNC does:
//
//   node proxy.mjs ECHO_WS_URL [VNC_WS_URL]
//
// ECHO_WS_URL leads (through the proxy) to a TCP echo backend. The page (served on 127.0.0.1 by this script
// from NOVNC_DIR, default /usr/share/novnc) checks:
//   1. a raw `new WebSocket(url, ['binary'])` with binaryType arraybuffer: 1 MiB of random bytes in
//      messages of several sizes come back byte for byte;
//   2. `new WebSocket(url, ['base64'])`: the same through base64 text messages;
//   3. noVNC's own Websock (core/websock.js): 256 KiB sent through its 10 KiB send queue come back
//      through its receive queue;
// and when VNC_WS_URL is given (through the proxy to a minimal RFB 3.8 server), 4. noVNC's RFB
// client (core/rfb.js) connects with wsProtocols ['binary'], gets the desktop name, draws the
// framebuffer (a pixel of the canvas is checked) and pastes clipboard text, which the server
// answers upper-cased as ServerCutText.
// Prints one JSON line of results on stdout and exits 0; on failure prints
// `interop proxy browser: FAILED: ...` on stderr (plus the page's log) and exits 1.
// Environment: CHROMIUM (default /usr/bin/chromium), NOVNC_DIR, WSKIT_INTEROP_TIMEOUT_MS (15000).

import {chromium} from 'playwright-core';
import {mkdtempSync, readFileSync, rmSync, existsSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, normalize, extname} from 'node:path';
import {createServer} from 'node:http';

const [echoUrl, vncUrl] = process.argv.slice(2);
if (!echoUrl || !/^wss?:\/\//.test(echoUrl)) {
  console.error('usage: node proxy.mjs ECHO_WS_URL [VNC_WS_URL]');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const novncDir = process.env.NOVNC_DIR || '/usr/share/novnc';
const TIMEOUT = Number(process.env.WSKIT_INTEROP_TIMEOUT_MS || 15000);

let step = 'start';
const results = {ok: false};
const pageLog = [];
let context = null;
let page = null;
let server = null;
const userDataDir = mkdtempSync(join(tmpdir(), 'wskit-chromium-proxy-'));

const watchdog = setTimeout(() => fail(new Error('overall deadline exceeded')), TIMEOUT * 8);
watchdog.unref();
// The test harness closes our stdin when it gives up.
process.stdin.on('end', () => fail(new Error('stdin closed')));
process.stdin.resume();

async function cleanup() {
  try {
    if (context) await context.close();
  } catch (_) {
    // already gone
  }
  context = null;
  if (server) server.close();
  server = null;
  rmSync(userDataDir, {recursive: true, force: true});
}

async function fail(err) {
  setTimeout(() => process.exit(1), 5000).unref();
  console.error(`interop proxy browser: FAILED at step "${step}": ${err && err.message ? err.message : err}`);
  if (pageLog.length) console.error('page log:\n  ' + pageLog.slice(-40).join('\n  '));
  await cleanup();
  process.exit(1);
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>wskit proxy interop</title></head>
<body><div id="screen" style="width:320px;height:240px"></div></body></html>`;

const TYPES = {'.js': 'text/javascript', '.html': 'text/html', '.css': 'text/css', '.json': 'application/json'};

// In the page: echo through a raw WebSocket. Returns what it saw.
async function rawEcho([url, protocol, total, timeout]) {
  const sizes = [1, 125, 126, 65535, 65536, 100000];
  const data = new Uint8Array(total);
  for (let i = 0; i < total; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(total, i + 65536)));
  const ws = new WebSocket(url, [protocol]);
  ws.binaryType = 'arraybuffer';
  const b64 = (bytes) => {
    let s = '';
    for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    return btoa(s);
  };
  const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${protocol}: timed out (readyState ${ws.readyState})`)), timeout);
    const got = new Uint8Array(total);
    let len = 0;
    let messages = 0;
    const kinds = new Set();
    ws.onerror = () => {};
    ws.onclose = (e) => {
      clearTimeout(timer);
      reject(new Error(`${protocol}: closed early: ${e.code} ${e.reason} (after ${len} bytes)`));
    };
    ws.onopen = () => {
      let off = 0;
      let i = 0;
      while (off < total) {
        const n = Math.min(sizes[i++ % sizes.length], total - off);
        const part = data.subarray(off, off + n);
        ws.send(protocol === 'base64' ? b64(part) : part);
        off += n;
      }
    };
    ws.onmessage = (e) => {
      messages++;
      kinds.add(typeof e.data === 'string' ? 'text' : e.data.constructor.name);
      const part = typeof e.data === 'string' ? unb64(e.data) : new Uint8Array(e.data);
      if (len + part.length > total) {
        clearTimeout(timer);
        reject(new Error(`${protocol}: more bytes than sent`));
        return;
      }
      got.set(part, len);
      len += part.length;
      if (len === total) {
        clearTimeout(timer);
        let same = true;
        for (let j = 0; j < total; j++) if (got[j] !== data[j]) { same = false; break; }
        ws.onclose = (c) => resolve({protocol: ws.protocol, extensions: ws.extensions, bytes: len, messages, kinds: [...kinds], same, close: c.code, clean: c.wasClean});
        ws.close(1000, 'done');
      }
    };
  });
}

// In the page: echo through noVNC's Websock (its 10 KiB send queue, its receive queue).
async function websockEcho([url, total, timeout]) {
  const {default: Websock} = await import('/core/websock.js');
  const sock = new Websock();
  const data = new Uint8Array(total);
  crypto.getRandomValues(data.subarray(0, Math.min(total, 65536)));
  for (let i = 65536; i < total; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Websock: timed out (${sock.readyState})`)), timeout);
    const got = new Uint8Array(total);
    let len = 0;
    sock.on('error', () => {});
    sock.on('close', (e) => {
      clearTimeout(timer);
      reject(new Error(`Websock: closed early: ${e.code} ${e.reason} (after ${len} bytes)`));
    });
    sock.on('open', () => {
      // noVNC never queues more than the 10 KiB send queue between flushes.
      for (let off = 0; off < total; off += 8000) sock.send(data.subarray(off, Math.min(total, off + 8000)));
    });
    sock.on('message', () => {
      const n = sock.rQlen;
      got.set(sock.rQshiftBytes(n), len);
      len += n;
      if (len >= total) {
        clearTimeout(timer);
        let same = len === total;
        for (let j = 0; same && j < total; j++) if (got[j] !== data[j]) same = false;
        const protocol = sock._websocket.protocol;
        sock.on('close', (c) => resolve({protocol, bytes: len, same, close: c.code, clean: c.wasClean}));
        sock.close();
      }
    });
    sock.open(url, ['binary']);
  });
}

// In the page: noVNC's RFB client against the fake VNC server behind the proxy.
async function rfbSession([url, timeout]) {
  const {default: RFB} = await import('/core/rfb.js');
  const screen = document.getElementById('screen');
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`RFB: timed out (${JSON.stringify(seen)})`)), timeout);
    const seen = {};
    const rfb = new RFB(screen, url, {wsProtocols: ['binary'], shared: true});
    rfb.addEventListener('securityfailure', (e) => reject(new Error(`RFB securityfailure ${JSON.stringify(e.detail)}`)));
    rfb.addEventListener('desktopname', (e) => { seen.name = e.detail.name; });
    rfb.addEventListener('disconnect', (e) => {
      if (!seen.done) {
        clearTimeout(timer);
        reject(new Error(`RFB disconnected early (clean ${e.detail.clean}, ${JSON.stringify(seen)})`));
      } else {
        clearTimeout(timer);
        resolve({...seen, clean: e.detail.clean});
      }
    });
    rfb.addEventListener('clipboard', (e) => {
      seen.clipboard = e.detail.text;
      seen.done = true;
      rfb.disconnect();
    });
    rfb.addEventListener('connect', () => {
      seen.connected = true;
      seen.protocol = rfb._sock._websocket.protocol;
      // Wait for the framebuffer to be drawn, then paste.
      const poll = () => {
        const canvas = screen.querySelector('canvas');
        if (canvas && canvas.width > 0) {
          const px = canvas.getContext('2d').getImageData(5, 5, 1, 1).data;
          seen.size = [canvas.width, canvas.height];
          seen.pixel = [px[0], px[1], px[2]];
          if (px[0] === 0x20 && px[1] === 0xa0 && px[2] === 0x60) {
            rfb.clipboardPasteFrom('hello from novnc');
            return;
          }
        }
        setTimeout(poll, 50);
      };
      poll();
    });
  });
}

async function main() {
  check(existsSync(join(novncDir, 'core/websock.js')), `${novncDir}/core/websock.js not found (apt-get install -y novnc)`);

  step = 'serve the page';
  // The page and noVNC's modules, from a plain HTTP server on 127.0.0.1 (a page whose origin is
  // not on loopback may not open loopback WebSockets: Chromium's local network access checks).
  server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, {'content-type': 'text/html'});
      return res.end(PAGE);
    }
    const file = normalize(join(novncDir, decodeURIComponent(path)));
    if (!file.startsWith(novncDir) || !existsSync(file)) {
      res.writeHead(404);
      return res.end('not found');
    }
    res.writeHead(200, {'content-type': TYPES[extname(file)] || 'application/octet-stream'});
    res.end(readFileSync(file));
  });
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).on('error', reject));
  const ORIGIN = `http://127.0.0.1:${server.address().port}`;

  step = 'launch chromium';
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    timeout: TIMEOUT * 2,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
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
  page.on('requestfailed', (r) => pageLog.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));

  step = 'load page';
  const resp = await page.goto(`${ORIGIN}/`, {waitUntil: 'load', timeout: TIMEOUT});
  check(resp && resp.ok(), `GET /: HTTP ${resp && resp.status()}`);

  const MiB = 1024 * 1024;
  for (const protocol of ['binary', 'base64']) {
    step = `raw WebSocket ${protocol}`;
    const r = await page.evaluate(rawEcho, [echoUrl, protocol, MiB, TIMEOUT * 2]);
    check(r.protocol === protocol, `${protocol}: negotiated subprotocol ${JSON.stringify(r.protocol)}`);
    check(r.same && r.bytes === MiB, `${protocol}: echo differs (${r.bytes} bytes)`);
    const kind = protocol === 'base64' ? 'text' : 'ArrayBuffer';
    check(r.kinds.length === 1 && r.kinds[0] === kind, `${protocol}: received ${r.kinds}, expected ${kind}`);
    check(r.clean && (r.close === 1000 || r.close === 1005), `${protocol}: close ${r.close} clean=${r.clean}`);
    results[protocol] = r;
  }

  step = 'noVNC Websock';
  const w = await page.evaluate(websockEcho, [echoUrl, 256 * 1024, TIMEOUT * 2]);
  check(w.protocol === 'binary', `Websock: subprotocol ${JSON.stringify(w.protocol)}`);
  check(w.same, `Websock: echo differs (${w.bytes} bytes)`);
  results.websock = w;

  if (vncUrl) {
    step = 'noVNC RFB';
    const r = await page.evaluate(rfbSession, [vncUrl, TIMEOUT * 2]);
    check(r.protocol === 'binary', `RFB: subprotocol ${JSON.stringify(r.protocol)}`);
    check(r.name === 'wskit fake vnc', `RFB: desktop name ${JSON.stringify(r.name)}`);
    check(r.clipboard === 'HELLO FROM NOVNC', `RFB: clipboard ${JSON.stringify(r.clipboard)}`);
    results.rfb = r;
  }

  check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join('; ')}`);
  results.ok = true;
  await cleanup();
  clearTimeout(watchdog);
  process.stdout.write(JSON.stringify(results) + '\n');
  process.exit(0);
}

main().catch(fail);
