"""Python `websockets` client of a websockify-style WebSocket-to-TCP proxy (driven by
crates/ws-proxy/tests/interop_peers.rs).

    python3 websockets_proxy_client.py echo  URL MODE [MODE...]   # TCP echo backend
    python3 websockets_proxy_client.py lines URL MODE [MODE...]   # upper-casing line backend
    python3 websockets_proxy_client.py eof   URL FILE MODE [MODE...]  # backend sends FILE, then EOF

MODE is `binary` (offer the `binary` subprotocol), `base64` (offer `base64`: text messages of
base64 both ways), `none` (offer nothing: plain binary), or `both` (offer `base64, binary`: the
proxy must pick binary). Prints `ok SCENARIO MODE ...` per mode and exits 0; any failure raises
(exit 1 with a traceback). Exits when stdin closes too, so a killed test leaves nothing behind.
"""

import asyncio
import base64
import hashlib
import os
import sys
import threading

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

BIG = 5 * 1024 * 1024
TIMEOUT = 60


def watch_stdin():
    def run():
        try:
            sys.stdin.read()
        finally:
            os._exit(3)

    threading.Thread(target=run, daemon=True).start()


OFFERS = {
    "binary": (["binary"], "binary"),
    "base64": (["base64"], "base64"),
    "none": (None, None),
    "both": (["base64", "binary"], "binary"),
}


async def open_ws(url, mode):
    offer, want = OFFERS[mode]
    ws = await connect(url, subprotocols=offer, max_size=None, open_timeout=10,
                       compression=None)
    assert ws.subprotocol == want, f"{mode}: subprotocol {ws.subprotocol!r}, expected {want!r}"
    return ws


async def send_bytes(ws, mode, data):
    if mode == "base64":
        await ws.send(base64.b64encode(data).decode("ascii"))
    else:
        await ws.send(data)


def decode(mode, msg):
    if mode == "base64":
        assert isinstance(msg, str), f"base64 mode got a binary message ({len(msg)} bytes)"
        return base64.b64decode(msg, validate=True)
    assert isinstance(msg, bytes), f"{mode} mode got a text message: {msg[:80]!r}"
    return msg


async def recv_exactly(ws, mode, n):
    """Reads messages until `n` bytes arrived; returns them and the message count."""
    got = bytearray()
    count = 0
    while len(got) < n:
        got += decode(mode, await ws.recv())
        count += 1
    assert len(got) == n, f"received {len(got)} bytes, expected {n}"
    return bytes(got), count


async def transfer(ws, mode, data, chunk, expect):
    """Sends `data` in messages of `chunk` bytes while reading `len(expect)` bytes back."""

    async def sender():
        for i in range(0, len(data), chunk):
            await send_bytes(ws, mode, data[i:i + chunk])

    (back, messages), _ = await asyncio.gather(recv_exactly(ws, mode, len(expect)), sender())
    if back != expect:
        first = next(i for i, (a, b) in enumerate(zip(back, expect)) if a != b)
        raise AssertionError(f"{mode}: bytes differ from offset {first} of {len(expect)}")
    return messages


async def close_clean(ws, mode):
    await ws.close(1000, "client done")
    assert ws.close_code == 1000, f"{mode}: close code {ws.close_code}"


async def echo(url, mode):
    ws = await open_ws(url, mode)
    # Small messages, one at a time: every byte comes back (maybe in other message sizes).
    for payload in [b"hello proxy", b"\x00\x01\x02\xff" * 3, os.urandom(1), os.urandom(70_000)]:
        await send_bytes(ws, mode, payload)
        back, _ = await recv_exactly(ws, mode, len(payload))
        assert back == payload, f"{mode}: echo of {len(payload)} bytes differs"
    # 5 MiB in 64 KiB messages, sent while the echo is read.
    data = os.urandom(BIG)
    m1 = await transfer(ws, mode, data, 64 * 1024, data)
    # 5 MiB again in one message.
    data = os.urandom(BIG)
    m2 = await transfer(ws, mode, data, BIG, data)
    await close_clean(ws, mode)
    print(f"ok echo {mode} {BIG} bytes twice, in {m1} and {m2} messages, close 1000", flush=True)


async def lines(url, mode):
    ws = await open_ws(url, mode)
    # A line cut across messages, two lines in one message, the end of a line alone.
    for parts, want in [
        ([b"hello wor", b"ld\n"], b"HELLO WORLD\n"),
        ([b"second line\nthi", b"rd\n"], b"SECOND LINE\nTHIRD\n"),
        ([b"x" * 1000, b"y" * 1000 + b"\n"], b"X" * 1000 + b"Y" * 1000 + b"\n"),
    ]:
        for p in parts:
            await send_bytes(ws, mode, p)
        back, _ = await recv_exactly(ws, mode, len(want))
        assert back == want, f"{mode}: got {back[:80]!r}, expected {want[:80]!r}"
    # 5 MiB of lines of lower-case text, in messages of 10000 bytes (cutting lines anywhere).
    alphabet = b"abcdefghijklmnopqrstuvwxyz 0123456789"
    rnd = os.urandom(BIG)
    text = bytearray(alphabet[b % len(alphabet)] for b in rnd)
    for i in range(99, len(text), 100):
        text[i] = 0x0A
    text[-1] = 0x0A
    text = bytes(text)
    m = await transfer(ws, mode, text, 10_000, text.upper())
    await close_clean(ws, mode)
    print(f"ok lines {mode} {len(text)} bytes in {m} messages, close 1000", flush=True)


async def eof(url, path, mode):
    with open(path, "rb") as f:
        want = f.read()
    ws = await open_ws(url, mode)
    got = bytearray()
    messages = 0
    try:
        while True:
            got += decode(mode, await asyncio.wait_for(ws.recv(), TIMEOUT))
            messages += 1
    except ConnectionClosed as e:
        rcvd = e.rcvd
        assert rcvd is not None, f"{mode}: no close frame received ({e!r})"
        assert rcvd.code == 1000, f"{mode}: close code {rcvd.code} {rcvd.reason!r}, expected 1000"
    assert len(got) == len(want), f"{mode}: {len(got)} bytes before the close, expected {len(want)}"
    assert hashlib.sha256(got).digest() == hashlib.sha256(want).digest(), f"{mode}: bytes differ"
    print(f"ok eof {mode} {len(got)} bytes in {messages} messages, then close 1000", flush=True)


async def main():
    watch_stdin()
    scenario, url, *rest = sys.argv[1:]
    if scenario == "eof":
        path, *modes = rest
        for mode in modes:
            await asyncio.wait_for(eof(url, path, mode), TIMEOUT)
    else:
        run = {"echo": echo, "lines": lines}[scenario]
        for mode in rest:
            await asyncio.wait_for(run(url, mode), TIMEOUT)


if __name__ == "__main__":
    asyncio.run(main())
