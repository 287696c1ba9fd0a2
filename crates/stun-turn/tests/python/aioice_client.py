#!/usr/bin/env python3
"""aioice as a TURN client of wskit's server (driven by tests/interop_aioice.rs).

Allocates a UDP relay with `aioice.turn.create_turn_endpoint` over UDP or TCP, sends datagrams
to one or more UDP echo peers through the relay (aioice binds a channel per peer on the first
send and then sends ChannelData only), checks the echoes, waits past the channel refresh time
and sends again (aioice then re-binds the same channel), and finally deletes the allocation.

The wire traffic of aioice's inner protocol is counted by wrapping its send and receive
methods, so the test can tell channels from indications.

Prints exactly one JSON line on stdout, also on failure ("ok": false with "error_type",
"error" and, for an error response, "error_code"), and exits 0 when it could print it.
"""

import argparse
import asyncio
import json
import struct
import sys
import time
from collections import Counter

from aioice import stun, turn

STATS = {
    "stun_sent": Counter(),
    "stun_received": Counter(),
    "channel_data_sent": 0,
    "channel_data_received": 0,
    "channels_sent": set(),
}


def describe(data):
    """'METHOD/CLASS' of a STUN message, or None."""
    try:
        m = stun.parse_message(data)
    except ValueError:
        return None
    try:
        method = stun.Method(m.message_method).name
    except ValueError:
        method = hex(int(m.message_method))
    return f"{method}/{stun.Class(m.message_class).name}"


def wrap_send(cls):
    original = cls._send

    def _send(self, data):
        if turn.is_channel_data(data):
            STATS["channel_data_sent"] += 1
            STATS["channels_sent"].add(struct.unpack("!H", data[0:2])[0])
        else:
            STATS["stun_sent"][describe(data) or "unparsable"] += 1
        return original(self, data)

    cls._send = _send


wrap_send(turn.TurnClientUdpProtocol)
wrap_send(turn.TurnClientTcpProtocol)

_original_received = turn.TurnClientMixin.datagram_received


def _datagram_received(self, data, addr):
    if len(data) >= 4 and turn.is_channel_data(data):
        STATS["channel_data_received"] += 1
    else:
        STATS["stun_received"][describe(data) or "unparsable"] += 1
    return _original_received(self, data, addr)


turn.TurnClientMixin.datagram_received = _datagram_received


class Receiver(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()
        self.errors = []
        self.lost = asyncio.get_running_loop().create_future()

    def datagram_received(self, data, addr):
        self.queue.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.append(f"{type(exc).__name__}: {exc}")

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


def hostport(s):
    host, port = s.rsplit(":", 1)
    return (host, int(port))


def fmt(addr):
    return None if addr is None else f"{addr[0]}:{addr[1]}"


def payload(tag, i):
    # Lengths that are and are not multiples of 4 (ChannelData padding over TCP), up to 1200.
    size = [1, 2, 3, 4, 5, 7, 31, 100, 170, 333, 512, 1000, 1199, 1200][i % 14]
    head = f"{tag}-{i}:".encode()
    body = bytes((i * 7 + k) & 0xFF for k in range(size))
    return (head + body)[: max(size, len(head))]


async def expect(receiver, wanted, timeout):
    """Collects echoes until every (payload, peer) in `wanted` has come back or time runs out."""
    got = []
    missing = Counter(wanted)
    deadline = time.monotonic() + timeout
    while sum(missing.values()) > 0:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            data, addr = await asyncio.wait_for(receiver.queue.get(), left)
        except asyncio.TimeoutError:
            break
        key = (data, tuple(addr))
        got.append(key)
        if missing[key] > 0:
            missing[key] -= 1
    return got, sum(missing.values()) == 0


async def run(args, result):
    peers = [hostport(p) for p in args.peer]
    transport, receiver = await turn.create_turn_endpoint(
        Receiver,
        server_addr=hostport(args.server),
        username=args.username,
        password=args.password,
        lifetime=args.lifetime,
        channel_refresh_time=args.channel_refresh_time,
        ssl=None,
        transport=args.transport,
    )
    inner = getattr(transport, "_TurnTransport__inner_protocol", None)
    result["relayed"] = fmt(transport.get_extra_info("sockname"))
    result["mapped"] = fmt(transport.get_extra_info("related_address"))
    if inner is not None:
        result["local"] = fmt(inner.transport.get_extra_info("sockname"))

    sent = received = 0
    all_match = True

    # Phase 1: a burst, every peer at once: the first send binds a channel per peer and the
    # others wait for that binding.
    wanted = []
    for i in range(args.count):
        for n, peer in enumerate(peers):
            data = payload(f"burst{n}", i)
            transport.sendto(data, peer)
            wanted.append((data, peer))
    sent += len(wanted)
    got, ok = await expect(receiver, wanted, args.echo_timeout)
    received += len(got)
    all_match &= ok
    result["channels"] = {fmt(p): c for p, c in getattr(inner, "peer_to_channel", {}).items()}

    # Phase 2: ping-pong over the bound channels.
    for i in range(args.count):
        for n, peer in enumerate(peers):
            data = payload(f"ping{n}", i)
            transport.sendto(data, peer)
            sent += 1
            got, ok = await expect(receiver, [(data, peer)], args.echo_timeout)
            received += len(got)
            all_match &= ok

    # Phase 3: past channel_refresh_time the next send re-binds the same channel first.
    await asyncio.sleep(args.channel_refresh_time + 0.3)
    wanted = []
    for n, peer in enumerate(peers):
        data = payload(f"after-refresh{n}", n)
        transport.sendto(data, peer)
        wanted.append((data, peer))
    sent += len(wanted)
    got, ok = await expect(receiver, wanted, args.echo_timeout)
    received += len(got)
    all_match &= ok

    result["sent"] = sent
    result["received"] = received
    result["payloads_match"] = all_match and sent == received
    result["send_errors"] = receiver.errors

    # Delete the allocation (Refresh with LIFETIME 0), then the inner transport closes.
    transport.close()
    try:
        await asyncio.wait_for(receiver.lost, 5)
        result["closed"] = True
    except asyncio.TimeoutError:
        result["closed"] = False


async def main_async(args):
    result = {"transport": args.transport, "ok": False}
    try:
        await asyncio.wait_for(run(args, result), args.overall_timeout)
        result["ok"] = True
    except Exception as exc:  # reported to the Rust test, which decides
        result["error_type"] = type(exc).__name__
        result["error"] = str(exc) or repr(exc)
        response = getattr(exc, "response", None)
        if response is not None:
            result["error_code"] = response.error_code
    result["channel_data_sent"] = STATS["channel_data_sent"]
    result["channel_data_received"] = STATS["channel_data_received"]
    result["channel_numbers_sent"] = sorted(STATS["channels_sent"])
    result["stun_sent"] = dict(STATS["stun_sent"])
    result["stun_received"] = dict(STATS["stun_received"])
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="HOST:PORT of the TURN server")
    p.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--peer", action="append", required=True, help="HOST:PORT of a UDP echo peer")
    p.add_argument("--count", type=int, default=10, help="datagrams per peer and phase")
    p.add_argument("--lifetime", type=int, default=600)
    p.add_argument("--channel-refresh-time", type=float, default=1.0)
    p.add_argument("--echo-timeout", type=float, default=5.0)
    p.add_argument("--overall-timeout", type=float, default=60.0)
    args = p.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    sys.exit(main())
