#!/usr/bin/env python3
"""NuCypher's own HTTPS client (nucypher 7.6.1, nucypher-core 0.15) against umbrald's
``POST /reencrypt``.

Run by crates/umbrald/tests/nucypher_https.rs with the virtual environment that
scripts/setup-python-tests.sh creates in target/nucypher-env (``nucypher==7.6.1``). Two
subcommands:

``keystores OUT_DIR N PASSWORD``
    Makes N node keystores with nucypher's own ``Keystore.generate`` (as an Ursula's
    ``nucypher ursula init`` does) and writes, for i in 0..N-1, ``OUT_DIR/node-{i}.priv`` (the
    file nucypher wrote, byte for byte) and ``OUT_DIR/node-{i}.json``: the public keys nucypher
    derives for that node (``Keystore.derive_crypto_power`` of ``DecryptingPower`` and
    ``SigningPower``, compressed SEC1 hex, as tests/python/make_keystore_vectors.py takes them),
    from the seed words ``Keystore.generate`` returned (``Keystore.from_mnemonic``: the secret
    ``Keystore.unlock`` would recover, without a second 2^20 scrypt).

``run SPEC_JSON``
    SPEC = {"threshold": m, "nodes": [{"https": "127.0.0.1:PORT", "decrypting_pk": hex,
    "verifying_pk": hex}, ...]}. Alice makes an m-of-n policy over the nodes' decrypting keys
    and encrypts messages; Bob has nucypher's ``NucypherMiddlewareClient`` post
    ``ReencryptionRequest``s of 1 and 64 capsules to every node, as nucypher's
    ``PRERetrievalClient`` builds them, checks every ``ReencryptionResponse`` with
    nucypher-core's ``verify`` and decrypts with m of the n nodes' cfrags. Node 0 also gets a
    request without the (optional) conditions and context, then bad requests, each of which
    must get its status code (403, 401, 400, 400 with ``conditions_unsupported``, 413, 405,
    404), and must still serve a good request afterwards.

Both print one JSON object on the last line of stdout; ``run`` prints
``{"ok": true, "checked": [...], "statuses": {...}, "bodies": {...}}`` (``bodies``: the text of
each error answer, for the record). On a failure, the reason goes to stderr,
the last stdout line is ``{"ok": false, "error": ..., "checked": [...]}`` and the exit status
is 1 (2 for a usage error).

Every key here is a throwaway test key.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Loopback only: a proxy from the environment must not carry the test's requests.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"

# Bob's read timeout: nucypher's PRERetrievalClient.DEFAULT_RETRIEVAL_TIMEOUT.
TIMEOUT_S = 10
# Capsules per request: one, and a batch.
BATCH = 64
# umbrald's default [limits] max_request_bytes (4 MiB); a body one KiB larger must get 413.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Stands in for the chain endpoint NucypherMiddlewareClient requires; with host and port given
# (no node object) the client never contacts it.
NO_CHAIN = "http://127.0.0.1:9/no-chain-needed"


class Failure(Exception):
    pass


CHECKED = []
# The text of each error answer, by what was sent (reported, not checked).
BODIES = {}


def check(condition, what, detail=None):
    """Records `what` as checked; fails with `what` and `detail` (a callable) when it is not."""
    if not condition:
        raise Failure(f"{what} ({detail()})" if detail else what)
    CHECKED.append(what)


def report_and_exit(error):
    print(f"FAIL: {error}", file=sys.stderr, flush=True)
    print(json.dumps({"ok": False, "error": str(error), "checked": CHECKED}), flush=True)
    sys.exit(1)


# --- keystores ------------------------------------------------------------------------------


def make_keystore(out_dir, index, password):
    """One keystore, made by nucypher; its public keys as nucypher derives them."""
    from nucypher.crypto.keystore import Keystore

    # Its sibling, imported without leaving bytecode in the source tree.
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_keystore_vectors import public_keys

    with tempfile.TemporaryDirectory() as work:
        # One scrypt of cost 2^20 (1 GiB, a few seconds on one core).
        keystore, words = Keystore.generate(
            password=password, keystore_dir=Path(work), interactive=False
        )
        target = Path(out_dir) / f"node-{index}.priv"
        shutil.copyfile(keystore.keystore_path, target)
    # The seed the keystore seals, from the words nucypher returned: what Keystore.unlock
    # recovers from the file, without a second scrypt. umbrald must derive the same keys from
    # the file and the password.
    keys = public_keys(Keystore.from_mnemonic(words))
    node = {"keystore": target.name, "keystore_id": keystore.id, **keys}
    (Path(out_dir) / f"node-{index}.json").write_text(json.dumps(node, indent=2) + "\n")
    return node


def keystores(out_dir, count, password):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Imported once, before the workers fork.
    import nucypher.crypto.keystore  # noqa: F401

    # One scrypt (1 GiB) per worker; it waits on memory as much as on its core, hence one worker
    # more than there are cores.
    workers = max(1, min(count, (os.cpu_count() or 1) + 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        nodes = list(pool.map(make_keystore, [out] * count, range(count), [password] * count))
    print(json.dumps({"ok": True, "nodes": nodes, "seconds": round(time.monotonic() - started, 2)}))


# --- run ------------------------------------------------------------------------------------


class Node:
    def __init__(self, index, spec):
        from nucypher_core.umbral import PublicKey

        self.index = index
        self.host, port = spec["https"].rsplit(":", 1)
        self.port = int(port)
        self.decrypting_pk = PublicKey.from_compressed_bytes(bytes.fromhex(spec["decrypting_pk"]))
        self.verifying_pk = PublicKey.from_compressed_bytes(bytes.fromhex(spec["verifying_pk"]))

    def __str__(self):
        return f"node {self.index} (https://{self.host}:{self.port})"


class Answer:
    """What Bob's middleware call gave: the status code, and the body or the error's text."""

    def __init__(self, status, body, content_type=None):
        self.status, self.body, self.content_type = status, body, content_type

    @property
    def text(self):
        if isinstance(self.body, bytes):
            return self.body.decode("utf-8", "replace")
        return self.body


class Bob:
    """Alice's policy and Bob's side of it, with nucypher's own HTTPS middleware."""

    def __init__(self, nodes, threshold):
        from nucypher.network.middleware import NucypherMiddlewareClient
        from nucypher_core import HRAC, EncryptedKeyFrag, MessageKit
        from nucypher_core.umbral import SecretKey, Signer, generate_kfrags

        self.nodes, self.threshold = nodes, threshold
        self.client = NucypherMiddlewareClient(eth_endpoint=NO_CHAIN)
        # Alice: the policy's delegating key and her signing key (she publishes the policy).
        self.policy_sk = SecretKey.random()
        self.policy_pk = self.policy_sk.public_key()
        self.publisher = Signer(SecretKey.random())
        self.publisher_vk = self.publisher.verifying_key()
        # Bob: his encrypting key (the re-encryption target) and his verifying key.
        self.bob_sk = SecretKey.random()
        self.bob_pk = self.bob_sk.public_key()
        self.bob_vk = Signer(SecretKey.random()).verifying_key()
        self.hrac = HRAC(self.publisher_vk, self.bob_vk, b"umbrald-https-interop")
        # As nucypher's Alice makes them (DelegatingPower.generate_kfrags).
        self.kfrags = generate_kfrags(
            delegating_sk=self.policy_sk,
            receiving_pk=self.bob_pk,
            signer=self.publisher,
            threshold=threshold,
            shares=len(nodes),
            sign_delegating_key=False,
            sign_receiving_key=False,
        )
        # The treasure map's destinations: each node's kfrag, encrypted to it, signed by Alice.
        self.ekfrags = [
            EncryptedKeyFrag(self.publisher, node.decrypting_pk, self.hrac, kfrag)
            for node, kfrag in zip(nodes, self.kfrags)
        ]
        self.plaintexts = [f"peace at dawn, message {i}".encode() for i in range(BATCH + 1)]
        self.kits = [MessageKit(self.policy_pk, p, None) for p in self.plaintexts]
        self.plaintext_of = {id(kit): p for kit, p in zip(self.kits, self.plaintexts)}

    def request(self, node, kits, ekfrag=None, publisher_vk=None, lingos=None, no_conditions=False):
        """A ReencryptionRequest as PRERetrievalClient.retrieve_cfrags builds it."""
        from nucypher_core import Conditions, Context, ReencryptionRequest

        if no_conditions:
            conditions = context = None
        else:
            lingos = lingos if lingos is not None else [None] * len(kits)
            conditions = Conditions(json.dumps(lingos))
            context = Context(json.dumps({}))
        return bytes(
            ReencryptionRequest(
                capsules=[kit.capsule for kit in kits],
                hrac=self.hrac,
                encrypted_kfrag=ekfrag or self.ekfrags[node.index],
                publisher_verifying_key=publisher_vk or self.publisher_vk,
                bob_verifying_key=self.bob_vk,
                conditions=conditions,
                context=context,
            )
        )

    def call(self, node, method, path, data=None):
        """Bob's middleware call; its exceptions for status codes >= 300 become answers."""
        from nucypher.network.middleware import RestMiddleware
        from requests.exceptions import RequestException

        kwargs = {"data": data} if data is not None else {}
        try:
            response = getattr(self.client, method)(
                node_or_sprout=None,
                host=node.host,
                port=node.port,
                path=path,
                timeout=TIMEOUT_S,
                **kwargs,
            )
        except RestMiddleware.UnexpectedResponse as e:
            return Answer(e.status, str(e))
        except (RequestException, OSError) as e:
            # OSError: P2PSession's certificate fetch (ssl.get_server_certificate) failed.
            raise Failure(
                f"{node}: {method.upper()} /{path} got no HTTP answer "
                f"({type(e).__name__}: {e})"
            ) from e
        return Answer(response.status_code, response.content, response.headers.get("Content-Type"))

    def reencrypt(self, node, kits, what, **request_args):
        """Posts a good request; returns the verified cfrags, one per kit."""
        from nucypher_core import ReencryptionResponse

        answer = self.call(node, "post", "reencrypt", self.request(node, kits, **request_args))
        check(
            answer.status == 200,
            f"{node}: {what}: 200",
            lambda: f"got {answer.status}: {answer.text[:300]!r}",
        )
        check(
            (answer.content_type or "").split(";")[0].strip() == "application/octet-stream",
            f"{node}: {what}: Content-Type application/octet-stream",
            lambda: f"got {answer.content_type!r}",
        )
        try:
            response = ReencryptionResponse.from_bytes(answer.body)
        except Exception as e:
            raise Failure(f"{node}: {what}: not a ReencryptionResponse: {e}") from e
        capsules = [kit.capsule for kit in kits]
        try:
            vcfrags = response.verify(
                capsules=capsules,
                alice_verifying_key=self.publisher_vk,
                ursula_verifying_key=node.verifying_pk,
                policy_encrypting_key=self.policy_pk,
                bob_encrypting_key=self.bob_pk,
            )
        except Exception as e:
            raise Failure(f"{node}: {what}: ReencryptionResponse.verify refused it: {e}") from e
        check(
            len(vcfrags) == len(kits),
            f"{node}: {what}: ReencryptionResponse.verify accepts {len(kits)} cfrags",
        )
        # Signed by this node's key and no other.
        other = (self.nodes[(node.index + 1) % len(self.nodes)].verifying_pk
                 if len(self.nodes) > 1 else self.publisher_vk)
        try:
            response.verify(capsules, self.publisher_vk, other, self.policy_pk, self.bob_pk)
            verifies_under_other = True
        except Exception:
            verifies_under_other = False
        check(not verifies_under_other, f"{node}: {what}: does not verify under another node's key")
        return list(vcfrags)

    def expect(self, node, method, path, data, status, what, body_contains=None):
        try:
            answer = self.call(node, method, path, data)
        except Failure as e:
            if status != 413:
                raise
            raise Failure(
                f"{e}; the client sends the whole body before it reads the answer, so a server "
                "that answers 413 and closes the connection without reading the body loses "
                "the answer"
            ) from e
        check(
            answer.status == status,
            f"{node}: {what}: {status}",
            lambda: f"got {answer.status}: {answer.text[:300]!r}",
        )
        if body_contains is not None:
            check(
                body_contains in answer.text,
                f"{node}: {what}: the body names {body_contains!r}",
                lambda: f"got {answer.text[:300]!r}",
            )
        BODIES[what] = answer.text[:200]
        return answer.status

    def decrypt(self, kits, cfrag_sets, chosen):
        """Bob decrypts every kit with the cfrags of the nodes in `chosen`."""
        for j, kit in enumerate(kits):
            vcfrags = [cfrag_sets[i][j] for i in chosen]
            plain = kit.decrypt_reencrypted(self.bob_sk, self.policy_pk, vcfrags)
            if plain != self.plaintext_of[id(kit)]:
                raise Failure(f"capsule {j}: wrong plaintext with the cfrags of nodes {chosen}")
        CHECKED.append(f"{len(kits)} capsule(s) decrypt with the cfrags of nodes {list(chosen)}")


def run(spec_path):
    from nucypher.utilities.certs import Address
    from nucypher_core import EncryptedKeyFrag
    from nucypher_core.umbral import SecretKey, Signer

    spec = json.loads(Path(spec_path).read_text())
    threshold = int(spec["threshold"])
    nodes = [Node(i, n) for i, n in enumerate(spec["nodes"])]
    check(1 <= threshold <= len(nodes), f"{threshold}-of-{len(nodes)} policy")
    bob = Bob(nodes, threshold)
    single, batch = bob.kits[:1], bob.kits[1:]
    statuses = {}

    # Every node re-encrypts one capsule and a batch.
    singles, batches = [], []
    for node in nodes:
        singles.append(bob.reencrypt(node, single, "1 capsule"))
        batches.append(bob.reencrypt(node, batch, f"{BATCH} capsules"))
        # P2PSession fetched the node's self-signed certificate and verified TLS against it.
        cached = bob.client.library.certificate_cache.get(Address(node.host, node.port))
        check(cached is not None and "BEGIN CERTIFICATE" in cached,
              f"{node}: certificate fetched and trusted by nucypher's P2PSession")

    # Bob decrypts with the first `threshold` nodes, and with the last `threshold` nodes.
    first = list(range(threshold))
    last = list(range(len(nodes) - threshold, len(nodes)))
    for chosen in ([first, last] if first != last else [first]):
        bob.decrypt(single, singles, chosen)
        bob.decrypt(batch, batches, chosen)
    if threshold > 1:
        try:
            single[0].decrypt_reencrypted(
                bob.bob_sk, bob.policy_pk, [singles[i][0] for i in first[:-1]]
            )
            below_threshold = True
        except Exception:
            below_threshold = False
        check(not below_threshold, f"{threshold - 1} cfrags are not enough to decrypt")

    # Node 0: a request without the conditions and context fields (nucypher-core's Option).
    node = nodes[0]
    bob.reencrypt(node, single, "request without conditions or context", no_conditions=True)

    # Node 0: bad requests, each with its status code.
    other_node_key = SecretKey.random().public_key()
    statuses["kfrag_for_another_node"] = bob.expect(
        node, "post", "reencrypt",
        bob.request(node, single, ekfrag=EncryptedKeyFrag(
            bob.publisher, other_node_key, bob.hrac, bob.kfrags[0])),
        403, "EncryptedKeyFrag encrypted for another node")
    statuses["wrong_publisher_verifying_key"] = bob.expect(
        node, "post", "reencrypt",
        bob.request(node, single, publisher_vk=Signer(SecretKey.random()).verifying_key()),
        401, "publisher verifying key that did not sign the kfrag")
    statuses["kfrag_signed_by_another"] = bob.expect(
        node, "post", "reencrypt",
        bob.request(node, single, ekfrag=EncryptedKeyFrag(
            Signer(SecretKey.random()), node.decrypting_pk, bob.hrac, bob.kfrags[0])),
        401, "EncryptedKeyFrag signed by someone other than the publisher")
    statuses["garbage"] = bob.expect(
        node, "post", "reencrypt", b"this is not a ReencryptionRequest", 400, "garbage body")
    good = bob.request(node, single)
    statuses["truncated"] = bob.expect(
        node, "post", "reencrypt", good[: len(good) // 2], 400, "truncated ReencryptionRequest")
    lingo = {
        "version": "1.0.0",
        "condition": {
            "conditionType": "time",
            "chain": 1,
            "method": "blocktime",
            "returnValueTest": {"comparator": ">", "value": 0},
        },
    }
    statuses["conditions"] = bob.expect(
        node, "post", "reencrypt", bob.request(node, batch, lingos=[lingo] + [None] * (BATCH - 1)),
        400, "request with conditions", body_contains="conditions_unsupported")
    statuses["too_large"] = bob.expect(
        node, "post", "reencrypt", good + bytes(MAX_REQUEST_BYTES + 1024 - len(good)),
        413, f"body of {MAX_REQUEST_BYTES + 1024} bytes")
    statuses["get_reencrypt"] = bob.expect(node, "get", "reencrypt", None, 405, "GET /reencrypt")
    statuses["unknown_path"] = bob.expect(
        node, "get", "no-such-endpoint", None, 404, "unknown path (no upstream)")

    # Node 0 still serves.
    after = bob.reencrypt(node, batch, f"{BATCH} capsules after the bad requests")
    bob.decrypt(batch, [after] + batches[1:], [0] + list(range(1, threshold)))

    print(
        json.dumps({"ok": True, "checked": CHECKED, "statuses": statuses, "bodies": BODIES}),
        flush=True,
    )


def main(argv):
    usage = (
        "usage: nucypher_https_client.py keystores OUT_DIR N PASSWORD\n"
        "       nucypher_https_client.py run SPEC_JSON"
    )
    try:
        if len(argv) == 5 and argv[1] == "keystores":
            keystores(argv[2], int(argv[3]), argv[4])
        elif len(argv) == 3 and argv[1] == "run":
            run(argv[2])
        else:
            print(usage, file=sys.stderr)
            sys.exit(2)
    except Failure as e:
        report_and_exit(e)
    except Exception as e:  # anything unexpected: still one JSON line and a clear reason
        import traceback

        traceback.print_exc()
        report_and_exit(f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main(sys.argv)
