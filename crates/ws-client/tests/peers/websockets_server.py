#!/usr/bin/env python3
"""WebSocket server for ws-client's interop tests, on Python `websockets` (>= 14, asyncio API).

Run by crates/ws-client/tests/interop_peers.rs; nothing here is wskit code.

    websockets_server.py [--cert PEM --key PEM [--client-ca PEM]]

Binds 127.0.0.1 on a port the OS picks and prints `listening PORT`, then one line per finished
connection: `closed PATH CODE REASON` (the code and reason the client sent). Exits when stdin
reaches end of file (the test is gone) or when killed.

Paths:
  /echo       echoes every message (text as text, binary as binary)
  /info       first sends JSON {protocol, extensions, offer, user_agent}, then echoes
  /close      closes at once with 4001 "bye"
  /fragments  sends "fragmented" in three frames and b"\\x00\\x01\\x02" in two, then echoes
  /ping       pings with b"are you there", waits for the pong, sends "pong received", echoes
  /auth       401 unless `Authorization: Basic alice:s3cret`, then echoes
  /redirect   302 to /echo

Subprotocols: "chat" and "superchat", server preference in that order; none offered: none
selected; only others offered: HTTP 400. permessage-deflate is on (the library's default).
"""

import argparse
import asyncio
import base64
import json
import os
import ssl
import sys
import threading
from http import HTTPStatus

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, NegotiationError

PROTOCOLS = ["chat", "superchat"]
BASIC = "Basic " + base64.b64encode(b"alice:s3cret").decode()


def select_subprotocol(_conn, offered):
    if not offered:
        return None
    for p in PROTOCOLS:
        if p in offered:
            return p
    raise NegotiationError("no supported subprotocol among " + ", ".join(offered))


def path_of(request):
    return request.path.split("?", 1)[0]


def process_request(conn, request):
    path = path_of(request)
    if path == "/redirect":
        response = conn.respond(HTTPStatus.FOUND, "moved\n")
        response.headers["Location"] = "/echo"
        return response
    if path == "/auth" and request.headers.get("Authorization") != BASIC:
        response = conn.respond(HTTPStatus.UNAUTHORIZED, "who are you?\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="wskit"'
        return response
    return None


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def handler(ws):
    path = path_of(ws.request)
    try:
        if path == "/close":
            await ws.close(4001, "bye")
        elif path == "/info":
            await ws.send(
                json.dumps(
                    {
                        "protocol": ws.subprotocol,
                        "extensions": ws.response.headers.get("Sec-WebSocket-Extensions"),
                        "offer": ws.request.headers.get("Sec-WebSocket-Extensions"),
                        "user_agent": ws.request.headers.get("User-Agent"),
                    }
                )
            )
            await echo(ws)
        elif path == "/fragments":
            await ws.send(["frag", "men", "ted"])
            await ws.send([b"\x00\x01", b"\x02"])
            await echo(ws)
        elif path == "/ping":
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            await ws.send("pong received")
            await echo(ws)
        else:
            await echo(ws)
    except ConnectionClosed:
        pass
    code = ws.close_code if ws.close_code is not None else "none"
    print(f"closed {path} {code} {ws.close_reason or ''}", flush=True)


def exit_on_stdin_eof():
    try:
        sys.stdin.read()
    finally:
        os._exit(0)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca")
    args = ap.parse_args()
    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(args.client_ca)
    threading.Thread(target=exit_on_stdin_eof, daemon=True).start()
    async with serve(
        handler,
        "127.0.0.1",
        0,
        ssl=tls,
        select_subprotocol=select_subprotocol,
        process_request=process_request,
        max_size=64 * 1024 * 1024,
        ping_interval=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
