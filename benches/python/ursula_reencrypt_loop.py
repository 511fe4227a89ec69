#!/usr/bin/env python3
"""Baseline: what a nucypher 7.6.1 Ursula does for one ``POST /reencrypt``, without its web stack.

Run with the virtual environment that scripts/setup-python-tests.sh creates (nucypher==7.6.1,
which pins nucypher-core 0.15):

    target/nucypher-env/bin/python benches/python/ursula_reencrypt_loop.py \\
        [--capsules 64] [--requests 200] [--rounds 5] [--flask] [--out FILE.json]

Times, on one core (the process pins itself to one CPU unless --no-pin), the body of
nucypher/network/server.py's ``reencrypt()`` after Flask handed it the bytes, for requests
without conditions (as PRERetrievalClient sends them: a list of nulls, context ``{}``):

1. ``ReencryptionRequest.from_bytes`` and the conditions and context parsed from JSON;
2. the EncryptedKeyFrag decrypted with the node's key, the publisher's signature checked:
   ``Ursula._decrypt_kfrag``, nucypher's own function, on a stand-in node that holds a
   ``DecryptingPower``;
3. ``Ursula._reencrypt`` (characters/lawful.py), nucypher's own function: per capsule
   ``reencrypt(capsule, kfrag)`` and the log event Ursula emits for it, then a
   ``ReencryptionResponse`` signed with the node's ``SigningPower`` stamp;
4. the response serialised (``bytes(response)``).

Left out, as not part of the cryptographic work: ``Bob.from_public_keys`` (a Character made for
the log line) and the payment check (an on-chain call on a real node). ``--flask`` also times
the whole Flask handler (``make_rest_app`` with a stand-in node whose payment check always
passes, through Flask's test client: routing, Werkzeug request and response objects and
``Bob.from_public_keys`` included; no sockets, TLS or Twisted). Stock nucypher 7.6.1 does not
register the ``:temporary-domain:`` that ``Bob.from_public_keys`` puts its Character in, so its
handler answers 500 (``UnrecognizedTacoDomain``) to every request; the benchmark registers that
domain first. Rounds alternate between the timed paths.

The log events go to nucypher's Logger with no observer attached (nothing is written), so the
figures are a lower bound for a running Ursula. The first answer is checked with
nucypher-core's ``ReencryptionResponse.verify``.

Prints one JSON object (also written to --out): µs per capsule and capsules per second for
the loop, and the time of each step per request.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version


def pin_to_one_cpu():
    """Pins the process to the last CPU it may run on; returns that CPU (None if not possible)."""
    try:
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (AttributeError, OSError):
        return None


class StandInNode:
    """What Ursula's ``_decrypt_kfrag``, ``_reencrypt`` and REST handler use of an Ursula."""

    def __init__(self):
        from nucypher.crypto.keypairs import DecryptingKeypair, SigningKeypair
        from nucypher.crypto.powers import CryptoPower, DecryptingPower, SigningPower
        from nucypher.utilities.logging import Logger
        from nucypher_core.umbral import SecretKey

        decrypting = DecryptingPower(keypair=DecryptingKeypair(private_key=SecretKey.random()))
        signing = SigningPower(keypair=SigningKeypair(private_key=SecretKey.random()))
        self._crypto_power = CryptoPower(power_ups=[decrypting, signing])
        self.stamp = signing.get_signature_stamp()
        self.log = Logger("ursula")
        self.decrypting_pk = decrypting.public_key()
        self.verifying_pk = signing.public_key()
        # For the Flask handler: the payment check passes, and no conditions are evaluated.
        self.checksum_address = "0x" + "00" * 20
        self.pre_payment_method = type("FreePayment", (), {"verify": lambda *a, **k: True})()
        self.condition_provider_manager = None

    # nucypher's own code, bound to this stand-in.
    def _decrypt_kfrag(self, encrypted_kfrag, hrac, publisher_verifying_key):
        from nucypher.characters.lawful import Ursula

        return Ursula._decrypt_kfrag(self, encrypted_kfrag, hrac, publisher_verifying_key)

    def _reencrypt(self, kfrag, capsules):
        from nucypher.characters.lawful import Ursula

        return Ursula._reencrypt(self, kfrag=kfrag, capsules=capsules)


class Policy:
    """Alice's policy for the node, and Bob's request body."""

    def __init__(self, node, capsules):
        from nucypher_core import (
            HRAC,
            Conditions,
            Context,
            EncryptedKeyFrag,
            MessageKit,
            ReencryptionRequest,
        )
        from nucypher_core.umbral import SecretKey, Signer, generate_kfrags

        policy_sk = SecretKey.random()
        self.policy_pk = policy_sk.public_key()
        publisher = Signer(SecretKey.random())
        self.publisher_vk = publisher.verifying_key()
        self.bob_pk = SecretKey.random().public_key()
        bob_vk = Signer(SecretKey.random()).verifying_key()
        hrac = HRAC(self.publisher_vk, bob_vk, b"ursula-reencrypt-baseline")
        kfrag = generate_kfrags(policy_sk, self.bob_pk, publisher, 1, 1, False, False)[0]
        ekfrag = EncryptedKeyFrag(publisher, node.decrypting_pk, hrac, kfrag)
        self.capsules = [
            MessageKit(self.policy_pk, f"message {i}".encode(), None).capsule
            for i in range(capsules)
        ]
        self.body = bytes(
            ReencryptionRequest(
                self.capsules,
                hrac,
                ekfrag,
                self.publisher_vk,
                bob_vk,
                Conditions(json.dumps([None] * capsules)),
                Context(json.dumps({})),
            )
        )

    def verify(self, node, response_bytes):
        from nucypher_core import ReencryptionResponse

        response = ReencryptionResponse.from_bytes(response_bytes)
        vcfrags = response.verify(
            self.capsules, self.publisher_vk, node.verifying_pk, self.policy_pk, self.bob_pk
        )
        if len(vcfrags) != len(self.capsules):
            raise SystemExit(f"verify gave {len(vcfrags)} cfrags for {len(self.capsules)}")


def serve_one(node, body, clock, steps):
    """server.py's reencrypt() from the request bytes on (no conditions), step by step."""
    from nucypher_core import ReencryptionRequest

    t0 = clock()
    request = ReencryptionRequest.from_bytes(body)
    lingo_list = json.loads(str(request.conditions))
    context = json.loads(str(request.context)) or dict()  # noqa: F841 (as server.py)
    capsules = []
    for capsule, lingo in zip(request.capsules, lingo_list):
        if lingo:
            raise SystemExit("the baseline's requests carry no conditions")
        capsules.append(capsule)
    t1 = clock()
    kfrag = node._decrypt_kfrag(
        request.encrypted_kfrag, request.hrac, request.publisher_verifying_key
    )
    t2 = clock()
    response = node._reencrypt(kfrag=kfrag, capsules=capsules)
    t3 = clock()
    out = bytes(response)
    t4 = clock()
    steps[0] += t1 - t0
    steps[1] += t2 - t1
    steps[2] += t3 - t2
    steps[3] += t4 - t3
    return out


def register_temporary_domain():
    """Lets ``Bob.from_public_keys`` run in the Flask handler: it makes a Character in nucypher's
    ``:temporary-domain:``, which stock nucypher 7.6.1 does not register (there the handler
    raises ``UnrecognizedTacoDomain`` and answers 500); registered here for the measurement."""
    from nucypher.blockchain.eth import domains
    from nucypher.config.constants import TEMPORARY_DOMAIN_NAME

    domains.SUPPORTED_DOMAINS[TEMPORARY_DOMAIN_NAME] = domains.TACoDomain(
        name=TEMPORARY_DOMAIN_NAME,
        eth_chain=domains.EthChain.SEPOLIA,
        polygon_chain=domains.PolygonChain.AMOY,
    )
    domains.get_domain.cache_clear()


STEPS = ["parse_request", "decrypt_kfrag", "reencrypt_and_sign", "serialize_response"]


class Loop:
    """The loop of server.py's reencrypt() on the stand-in node."""

    def __init__(self, node, policy):
        self.node, self.policy = node, policy
        self.steps = [0.0] * len(STEPS)
        policy.verify(node, serve_one(node, policy.body, time.perf_counter, [0.0] * 4))

    def run(self, requests):
        clock, body, node, steps = time.perf_counter, self.policy.body, self.node, self.steps
        start = clock()
        for _ in range(requests):
            serve_one(node, body, clock, steps)
        return clock() - start


class FlaskHandler:
    """Ursula's whole Flask handler (make_rest_app) through Flask's test client."""

    def __init__(self, node, policy):
        import logging

        from nucypher.network.server import make_rest_app

        register_temporary_domain()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.client = make_rest_app(node).test_client()
        self.body = policy.body
        policy.verify(node, self.post())

    def post(self):
        r = self.client.post("/reencrypt", data=self.body)
        if r.status_code != 200:
            raise SystemExit(f"Flask handler answered {r.status_code}: {r.data[:300]!r}")
        return r.data

    def run(self, requests):
        clock = time.perf_counter
        start = clock()
        for _ in range(requests):
            self.post()
        return clock() - start


def summary(round_seconds, per_round, capsules):
    """The median round's µs per capsule (and capsules/s), and the range over the rounds."""
    us = sorted(s / (per_round * capsules) * 1e6 for s in round_seconds)
    median = statistics.median(us)
    return {
        "us_per_capsule": round(median, 2),
        "capsules_per_s": round(1e6 / median, 1),
        "us_per_request": round(median * capsules, 1),
        "us_per_capsule_range": [round(us[0], 2), round(us[-1], 2)],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capsules", type=int, default=64, help="capsules per request")
    parser.add_argument("--requests", type=int, default=200, help="requests timed, per path")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (paths alternate)")
    parser.add_argument("--warmup", type=int, default=10, help="requests before timing")
    parser.add_argument("--flask", action="store_true", help="also time the Flask handler")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if min(args.capsules, args.requests, args.rounds) < 1:
        parser.error("--capsules, --requests and --rounds must be at least 1")

    # The largest body Ursula's Flask app takes.
    from nucypher.config.constants import MAX_UPLOAD_CONTENT_LENGTH

    cpu = None if args.no_pin else pin_to_one_cpu()
    node = StandInNode()
    policy = Policy(node, args.capsules)
    timed = {"loop": Loop(node, policy)}
    if args.flask and len(policy.body) > MAX_UPLOAD_CONTENT_LENGTH:
        timed_note = f"skipped: the request exceeds Ursula's {MAX_UPLOAD_CONTENT_LENGTH} bytes"
    elif args.flask:
        timed["flask_handler"] = FlaskHandler(node, policy)
    for runner in timed.values():
        runner.run(args.warmup)
    timed["loop"].steps[:] = [0.0] * len(STEPS)

    # Rounds alternate between the timed paths, so that each sees the same machine.
    per_round = max(1, args.requests // args.rounds)
    seconds = {name: [] for name in timed}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(args.rounds):
        for name, runner in timed.items():
            seconds[name].append(runner.run(per_round))
    busy = (time.process_time() - cpu0) / (time.perf_counter() - wall0)

    timed_requests = per_round * args.rounds
    result = {
        "benchmark": "ursula_reencrypt_loop",
        "what": "nucypher 7.6.1 Ursula's /reencrypt after the HTTP request is read: "
        "ReencryptionRequest.from_bytes, Ursula._decrypt_kfrag, Ursula._reencrypt, "
        "bytes(response); one core",
        "nucypher": version("nucypher"),
        "nucypher_core": version("nucypher-core"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_pinned": cpu,
        "cpu_s_per_wall_s": round(busy, 3),
        "capsules_per_request": args.capsules,
        "request_bytes": len(policy.body),
        "rounds": args.rounds,
        "requests_per_round": per_round,
        "loop": {
            **summary(seconds["loop"], per_round, args.capsules),
            "us_per_request_by_step": {
                name: round(s / timed_requests * 1e6, 1)
                for name, s in zip(STEPS, timed["loop"].steps)
            },
        },
    }
    if "flask_handler" in timed:
        result["flask_handler"] = summary(seconds["flask_handler"], per_round, args.capsules)
    elif args.flask:
        result["flask_handler"] = timed_note
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
