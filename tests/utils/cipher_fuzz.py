"""Mutated bodies for the eight cipher endpoints of a PW_ENCRYPT server that has admitted no device: whatever a
mutation produces, the reply must be the round's reply table (or the 500 JSON of an empty body) and never
SUCCEED, since no requester is a member of any round. Used by tests/st/test_secagg_fuzz.py (a few hundred
per endpoint) and bench/secagg_fuzz.py (--count 10000)."""
import asyncio
import json
import random
import struct

import aiohttp

from mindspore_federated.client.messages import cipher as c
from mindspore_federated.client.messages.replies import PlainTextReply

SUCCEED = 200
K32, IV, SALT = b"\x11" * 32, b"\x22" * 16, b"\x33" * 32
EMPTY_BODY_JSON = {"error_message": "Get post message failed", "code": "1"}


def seeds(iteration=1):
    shares = [("peer-a", b"\x01" * 80, 1), ("peer-b", b"\x02" * 80, 2)]
    return {
        "exchangeKeys": [c.build_exchange_keys("fz-a", iteration, K32, K32, IV, IV, SALT),
                         c.build_exchange_keys("fz-b", iteration + 3, K32, K32, IV, IV, SALT),
                         c.build_exchange_keys("fz-c", iteration, b"", K32, b"", IV, SALT[:5])],
        "getKeys": [c.build_get_keys("fz-a", iteration), c.build_get_keys("", iteration)],
        "shareSecrets": [c.build_share_secrets("fz-a", iteration, shares),
                         c.build_share_secrets("fz-b", iteration, [("fz-b", b"x", 1)])],
        "getSecrets": [c.build_get_secrets("fz-a", iteration), c.build_get_secrets("fz-a", 0)],
        "getClientList": [c.build_get_client_list("fz-a", iteration)],
        "reconstructSecrets": [c.build_reconstruct_secrets("fz-a", iteration, [("o", b"\x05" * 33, 1)]),
                               c.build_reconstruct_secrets("fz-a", iteration, [("o", b"\x05" * 99, 0)])],
        "pushListSign": [c.build_push_list_sign("fz-a", iteration, b"\x07" * 64)],
        "getListSign": [c.build_get_list_sign("fz-a", iteration)],
    }


EXTREMES = (0, 1, 2, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 65535, 65536)


def mutate(body, rng):
    """One random mutation: bit flips, an extreme 32-bit word, truncation, extension, a spliced slice, or b""."""
    data = bytearray(body)
    kind = rng.randrange(7)
    if kind == 0 or not data:
        for _ in range(rng.randint(1, 4)):
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1 and len(data) >= 4:
        pos = rng.randrange(0, len(data) - 3) & ~3
        struct.pack_into("<I", data, pos, rng.choice(EXTREMES))
    elif kind == 2:
        del data[rng.randrange(len(data)):]
    elif kind == 3:
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 4:
        start = rng.randrange(len(data))
        data[start:start] = data[rng.randrange(len(data)):][:rng.randint(1, 32)]
    elif kind == 5:
        data = bytearray()
    else:
        pos = rng.randrange(len(data))
        data[pos] = rng.randrange(256)
    return bytes(data)


def check(round_name, status, payload):
    """None when the reply is an acceptable error reply, else what is wrong with it."""
    if status == 500:
        return None if json.loads(payload) == EMPTY_BODY_JSON else f"HTTP 500 {payload[:100]!r}"
    if status != 200:
        return f"HTTP {status}"
    reply = c.CIPHER_PARSERS[round_name](payload)
    if isinstance(reply, PlainTextReply):
        return f"plain text {reply.text[:100]!r}"
    if reply.retcode == SUCCEED:
        return f"SUCCEED {reply.reason!r}"
    return None


async def fuzz(base_url, count, seed=1, concurrency=16):
    """Sends `count` mutated bodies to each cipher endpoint; returns (sent, [problems])."""
    rng = random.Random(seed)
    problems, sent = [], 0
    jobs = [(name, mutate(rng.choice(bodies), rng)) for name, bodies in seeds().items() for _ in range(count)]
    rng.shuffle(jobs)
    queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def worker():
            nonlocal sent
            while not queue.empty():
                name, body = queue.get_nowait()
                async with session.post(f"{base_url}/{name}", data=body) as resp:
                    payload = await resp.read()
                    problem = check(name, resp.status, payload)
                sent += 1
                if problem:
                    problems.append((name, body.hex(), problem))
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent, problems
