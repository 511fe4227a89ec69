#!/usr/bin/env python3
"""A NuCypher client (nucypher-core 0.16's Python package) talking to umbrald over QUIC.

Run by crates/umbrald-server/tests/nucypher_python.rs with the virtual environment that
scripts/setup-python-tests.sh creates. Argument: a JSON file describing the running nodes:

    {"threshold": 2,
     "nodes": [{"addr": "127.0.0.1:4433", "status": "127.0.0.1:9464",
                "cert_sha256": "<hex>"}, ...]}

It builds a policy whose kfrags are encrypted to the nodes' decrypting keys (read from each
node's /status), sends one ReencryptionRequest per node, checks every ReencryptionResponse with
nucypher-core's own ``ReencryptionResponse.verify``, decrypts the plaintexts with the cfrags of
``threshold`` nodes, then sends tampered requests and checks the documented error codes, and
finally checks that a valid request on the same connection still succeeds.
Prints one line per check and "N passed, 0 failed"; exits non-zero on the first failure.
"""

import asyncio
import hashlib
import json
import ssl
import struct
import sys
import urllib.request

from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration
from nucypher_core import (
    HRAC,
    Conditions,
    Context,
    EncryptedKeyFrag,
    MessageKit,
    ReencryptionRequest,
    ReencryptionResponse,
)
from nucypher_core.umbral import PublicKey, SecretKey, Signer, generate_kfrags

ALPN = "umbrald/1"
CAPSULES = 3
PASSED = 0


def check(condition, what):
    global PASSED
    if not condition:
        print(f"FAIL: {what}", flush=True)
        print(f"{PASSED} passed, 1 failed", flush=True)
        sys.exit(1)
    PASSED += 1
    print(f"ok: {what}", flush=True)


def unpack(data):
    """Decodes the small MessagePack subset of umbrald/1 error responses."""

    def value(i):
        b = data[i]
        i += 1
        if b <= 0x7F:
            return b, i
        if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
            if b <= 0x8F:
                n = b & 0x0F
            elif b == 0xDE:
                n, i = struct.unpack(">H", data[i:i + 2])[0], i + 2
            else:
                n, i = struct.unpack(">I", data[i:i + 4])[0], i + 4
            out = {}
            for _ in range(n):
                k, i = value(i)
                v, i = value(i)
                out[k] = v
            return out, i
        if 0x90 <= b <= 0x9F:
            out = []
            for _ in range(b & 0x0F):
                v, i = value(i)
                out.append(v)
            return out, i
        if 0xA0 <= b <= 0xBF:
            n = b & 0x1F
            return data[i:i + n].decode(), i + n
        if b == 0xD9:
            n = data[i]
            return data[i + 1:i + 1 + n].decode(), i + 1 + n
        if b == 0xDA:
            n = struct.unpack(">H", data[i:i + 2])[0]
            return data[i + 2:i + 2 + n].decode(), i + 2 + n
        if b == 0xC0:
            return None, i
        if b == 0xC4:
            n = data[i]
            return data[i + 1:i + 1 + n], i + 1 + n
        if b in (0xCC, 0xCD, 0xCE, 0xCF):
            w = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[b]
            return int.from_bytes(data[i:i + w], "big"), i + w
        raise ValueError(f"unexpected MessagePack marker 0x{b:02x}")

    v, _ = value(0)
    return v


def status(addr):
    with urllib.request.urlopen(f"http://{addr}/status", timeout=10) as r:
        return json.loads(r.read())


def pk(hex_key):
    return PublicKey.from_compressed_bytes(bytes.fromhex(hex_key))


class Node:
    def __init__(self, spec):
        host, port = spec["addr"].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.cert_sha256 = spec["cert_sha256"]
        st = status(spec["status"])
        check(st.get("nucypher") is not None, f"{spec['status']}/status shows node keys")
        self.decrypting_pk = pk(st["nucypher"]["decrypting_public_key"])
        self.verifying_pk = pk(st["nucypher"]["verifying_public_key"])


async def exchange(client, payload):
    reader, writer = await client.create_stream()
    writer.write(payload)
    writer.write_eof()
    return await asyncio.wait_for(reader.read(), timeout=30)


def quic_config():
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name="localhost")
    # The certificate is self-signed: pin its SHA-256 instead (checked after the handshake).
    config.verify_mode = ssl.CERT_NONE
    return config


def pinned(client, node):
    cert = getattr(getattr(client._quic, "tls", None), "_peer_certificate", None)
    if cert is None:
        return False  # the pinned aioquic exposes it; anything else is a broken setup
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest() == node.cert_sha256


def expect_error(response, code, what):
    check(not response.startswith(b"ReRs"), f"{what}: not a ReencryptionResponse")
    msg = unpack(response)
    err = msg.get("error") or {}
    check(
        msg.get("v") == 1 and err.get("code") == code and err.get("message"),
        f"{what}: error {code} ({err.get('message')!r})",
    )


async def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    nodes = [Node(n) for n in spec["nodes"]]
    threshold = spec["threshold"]

    # Alice (the publisher), her policy key, and Bob.
    policy_sk = SecretKey.random()
    policy_pk = policy_sk.public_key()
    publisher = Signer(SecretKey.random())
    publisher_vk = publisher.verifying_key()
    bob_sk = SecretKey.random()
    bob_pk = bob_sk.public_key()
    bob_vk = Signer(SecretKey.random()).verifying_key()
    hrac = HRAC(publisher_vk, bob_vk, b"umbrald-interop")
    kfrags = generate_kfrags(policy_sk, bob_pk, publisher, threshold, len(nodes), False, False)

    plaintexts = [f"peace at dawn #{i}".encode() for i in range(CAPSULES)]
    kits = [MessageKit(policy_pk, p, None) for p in plaintexts]
    capsules = [k.capsule for k in kits]
    no_conditions = Conditions(json.dumps([None] * CAPSULES))

    def request(node_index, **over):
        ekfrag = over.get("ekfrag") or EncryptedKeyFrag(
            publisher, nodes[node_index].decrypting_pk, hrac, kfrags[node_index]
        )
        conditions = over.get("conditions", None if node_index == 0 else no_conditions)
        context = Context("{}") if conditions is not None else None
        req = ReencryptionRequest(
            over.get("capsules", capsules), hrac, ekfrag, publisher_vk, bob_vk, conditions, context
        )
        return bytes(req)

    cfrags_per_node = []
    clients = []
    try:
        for i, node in enumerate(nodes):
            cm = connect(node.host, node.port, configuration=quic_config())
            client = await cm.__aenter__()
            clients.append(cm)
            check(pinned(client, node), f"node {i}: certificate fingerprint pinned")
            raw = await exchange(client, request(i))
            check(raw.startswith(b"ReRs\x00\x03\x00\x00"), f"node {i}: ReRs 3.0 header")
            resp = ReencryptionResponse.from_bytes(raw)
            vcfrags = resp.verify(capsules, publisher_vk, node.verifying_pk, policy_pk, bob_pk)
            check(len(vcfrags) == CAPSULES, f"node {i}: ReencryptionResponse.verify accepts the answer")
            # Signed by this node and no other.
            try:
                resp.verify(capsules, publisher_vk, publisher_vk, policy_pk, bob_pk)
                check(False, f"node {i}: response must not verify under another key")
            except Exception:
                check(True, f"node {i}: response does not verify under another key")
            cfrags_per_node.append(list(vcfrags))

            if i == 0:
                await tampered(client, request, nodes, hrac, kfrags, publisher_vk, bob_vk,
                               capsules, policy_pk, bob_pk, node)

        for j, kit in enumerate(kits):
            chosen = [cfrags_per_node[i][j] for i in range(threshold)]
            plain = kit.decrypt_reencrypted(bob_sk, policy_pk, chosen)
            check(plain == plaintexts[j], f"capsule {j}: decrypts with cfrags from {threshold} nodes")
    finally:
        for cm in clients:
            await cm.__aexit__(None, None, None)
    print(f"{PASSED} passed, 0 failed", flush=True)


async def tampered(client, request, nodes, hrac, kfrags, publisher_vk, bob_vk, capsules,
                   policy_pk, bob_pk, node):
    good = request(0)

    # Unknown major version.
    v4 = good[:4] + b"\x00\x04" + good[6:]
    expect_error(await exchange(client, v4), "unsupported_version", "ReRq version 4")
    # A header and garbage.
    expect_error(await exchange(client, good[:8] + b"\xc1"), "malformed", "garbage after the header")
    # Too short for a header.
    expect_error(await exchange(client, b"ReRq\x00"), "malformed", "truncated header")
    # A kfrag encrypted for another node.
    other = EncryptedKeyFrag(
        Signer(SecretKey.random()), SecretKey.random().public_key(), hrac, kfrags[0]
    )
    expect_error(await exchange(client, request(0, ekfrag=other)), "invalid_kfrag",
                 "kfrag for another node")
    # Signed by someone other than the publisher.
    forged = EncryptedKeyFrag(Signer(SecretKey.random()), nodes[0].decrypting_pk, hrac, kfrags[0])
    expect_error(await exchange(client, request(0, ekfrag=forged)), "kfrag_verification_failed",
                 "publisher signature does not verify")
    # Real conditions.
    conditions = Conditions(json.dumps([{"conditionType": "time", "chain": 1,
                                         "method": "blocktime",
                                         "returnValueTest": {"comparator": ">", "value": 0}}]
                                       + [None] * (len(capsules) - 1)))
    expect_error(await exchange(client, request(0, conditions=conditions)),
                 "conditions_unsupported", "conditions")
    # An invalid capsule: flip the last byte of the second capsule's scalar.
    cap = bytes(capsules[1])
    at = good.index(cap)
    bad = bytearray(good)
    bad[at + len(cap) - 1] ^= 0x01
    expect_error(await exchange(client, bytes(bad)), "invalid_capsule", "invalid capsule")

    # The connection is undisturbed: a valid request still works on it.
    raw = await exchange(client, good)
    resp = ReencryptionResponse.from_bytes(raw)
    vcfrags = resp.verify(capsules, publisher_vk, node.verifying_pk, policy_pk, bob_pk)
    check(len(vcfrags) == len(capsules), "valid request after the errors, same connection")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: nucypher_client.py SPEC.json", file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(sys.argv[1]))
