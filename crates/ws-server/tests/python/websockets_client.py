"""Drives a wskit server with the Python `websockets` client (a peer nobody here wrote).

usage: websockets_client.py PLAIN_BASE_URL TLS_BASE_URL CA_FILE
Prints one "ok <check>" line per passed check; exits non-zero on the first failure.
"""
import asyncio
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def ok(name):
    print("ok", name, flush=True)


async def echo_checks(base, ssl_ctx, label):
    async with connect(base + "/echo", ssl=ssl_ctx, max_size=None) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\x01\x02")
        assert await ws.recv() == b"\x00\x01\x02"
        big = bytes(range(256)) * (16 * 1024)  # 4 MiB
        await ws.send(big)
        assert await ws.recv() == big
        text = "x" * (1024 * 1024 + 3)
        await ws.send(text)
        assert await ws.recv() == text
        # Fragmented message from an iterable.
        await ws.send(["frag", "mented"])
        assert await ws.recv() == "fragmented"
        # Ping / pong.
        pong = await ws.ping(b"p")
        await asyncio.wait_for(pong, 10)
    ok(label + " echo")


async def deflate_checks(base, ssl_ctx, label):
    async with connect(base + "/echo", ssl=ssl_ctx, compression="deflate") as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert ext.startswith("permessage-deflate"), ext
        payload = "compress me " * 10000
        for _ in range(3):  # context takeover across messages
            await ws.send(payload)
            assert await ws.recv() == payload
    async with connect(base + "/echo", ssl=ssl_ctx, compression=None) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        await ws.send("plain")
        assert await ws.recv() == "plain"
    ok(label + " deflate")


async def subprotocol_checks(base, ssl_ctx, label):
    async with connect(base + "/echo", ssl=ssl_ctx, subprotocols=["nope", "chat"]) as ws:
        assert ws.subprotocol == "chat", ws.subprotocol
    async with connect(base + "/echo", ssl=ssl_ctx, subprotocols=["superchat", "chat"]) as ws:
        assert ws.subprotocol == "superchat", ws.subprotocol
    ok(label + " subprotocols")


async def close_checks(base, ssl_ctx, label):
    # The client closes with a code and reason; the server echoes them.
    ws = await connect(base + "/echo", ssl=ssl_ctx)
    await ws.close(code=4000, reason="client bye")
    assert ws.close_code == 4000, ws.close_code
    # The server closes with 4001 (path /close).
    async with connect(base + "/close", ssl=ssl_ctx) as ws:
        try:
            await ws.recv()
            raise AssertionError("expected a close")
        except ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 4001, e
            assert e.rcvd.reason == "server bye", e.rcvd.reason
    # An invalid UTF-8 text frame is refused with 1007.
    async with connect(base + "/echo", ssl=ssl_ctx) as ws:
        await ws.send(b"\xff\xfe", text=True)
        try:
            await ws.recv()
            raise AssertionError("expected a close")
        except ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1007, e
    ok(label + " close codes")


async def main():
    plain, tls, ca = sys.argv[1], sys.argv[2], sys.argv[3]
    ctx = ssl.create_default_context(cafile=ca)
    for base, ssl_ctx, label in [(plain, None, "ws"), (tls, ctx, "wss")]:
        await echo_checks(base, ssl_ctx, label)
        await deflate_checks(base, ssl_ctx, label)
        await subprotocol_checks(base, ssl_ctx, label)
        await close_checks(base, ssl_ctx, label)


asyncio.run(main())
