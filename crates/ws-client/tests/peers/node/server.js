#!/usr/bin/env node
// WebSocket server for ws-client's interop tests, on Node's `ws` (version pinned in package.json).
// Run by crates/ws-client/tests/interop_peers.rs; nothing here is wskit code.
//
// Binds 127.0.0.1 on a port the OS picks and prints `listening PORT`, then one line per finished
// connection: `closed PATH CODE REASON`. Exits when stdin reaches end of file (the test is gone).
//
// Paths: /echo echoes; /info first sends JSON {protocol, extensions, offer}, then echoes;
// /close closes at once with 4001 "bye". Subprotocols "chat" then "superchat" (server
// preference); none in common: none selected. permessage-deflate on, every message compressed.
'use strict';

const { WebSocketServer } = require('ws');

const PROTOCOLS = ['chat', 'superchat'];

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: { threshold: 0 },
  handleProtocols: (offered) => PROTOCOLS.find((p) => offered.has(p)) || false,
});

wss.on('listening', () => {
  console.log(`listening ${wss.address().port}`);
});

wss.on('connection', (ws, req) => {
  const path = req.url.split('?')[0];
  ws.on('close', (code, reason) => {
    console.log(`closed ${path} ${code} ${reason.toString()}`);
  });
  ws.on('error', (e) => {
    console.log(`error ${path} ${e.message}`);
  });
  if (path === '/close') {
    ws.close(4001, 'bye');
    return;
  }
  if (path === '/info') {
    ws.send(
      JSON.stringify({
        protocol: ws.protocol || null,
        extensions: ws.extensions || null,
        offer: req.headers['sec-websocket-extensions'] || null,
      }),
    );
  }
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
