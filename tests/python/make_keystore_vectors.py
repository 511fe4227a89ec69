#!/usr/bin/env python3
"""Makes NuCypher keystore test vectors with the nucypher 7.6.1 Python package.

Writes into OUT_DIR (default crates/umbrald-nucypher/tests/fixtures/keystore):

- ``keystore-N.priv``: a keystore made by nucypher's own ``Keystore.generate``, byte for byte
  as nucypher writes it (only the file name is made stable);
- ``keystore-N.expected.json``: its password, its seed (the 32 bytes sealed inside, hex, and
  the 24 words nucypher shows for it) and the public keys nucypher derives from it:
  ``DecryptingPower`` and ``SigningPower`` public keys, compressed SEC1 hex as umbral-pre
  serialises them, taken from ``Keystore.derive_crypto_power`` after ``Keystore.unlock``;
  and the SHA-256 of the DER SubjectPublicKeyInfo of its ``TLSHostingPower`` certificate's key
  (the key an Ursula made from this keystore presents, whatever its host);
- ``short-seed.priv`` / ``short-seed.expected.json``: a well-formed keystore whose sealed
  secret is 31 bytes instead of 32, sealed with nucypher's own ``secret_box_encrypt``
  (unlocking succeeds, deriving keys must fail).

Every key here is a throwaway test key. Run with the virtual environment that holds
nucypher==7.6.1:

    python3 -m venv target/nucypher-env
    target/nucypher-env/bin/pip install nucypher==7.6.1
    target/nucypher-env/bin/python tests/python/make_keystore_vectors.py
"""

import json
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from secrets import token_bytes

from mnemonic import Mnemonic
from nucypher.crypto import keystore as nucypher_keystore
from nucypher.crypto.keystore import Keystore
from nucypher.crypto.passwords import derive_key_material_from_password, secret_box_encrypt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hashlib import sha256
from nucypher.crypto.powers import DecryptingPower, SigningPower, TLSHostingPower

DEFAULT_OUT_DIR = Path("crates/umbrald-nucypher/tests/fixtures/keystore")

# Passwords of the generated keystores (nucypher requires at least 8 characters; the last one
# is not ASCII, to pin down that nucypher hashes the UTF-8 bytes of the password).
PASSWORDS = [
    "correct horse battery staple",
    "password-2-for-tests",
    "pässwörd-três-🔑",
]
SHORT_SEED_PASSWORD = "short seed password"


def public_keys(keystore: Keystore) -> dict:
    """The node's public keys as nucypher derives them."""
    decrypting = keystore.derive_crypto_power(DecryptingPower).public_key()
    signing = keystore.derive_crypto_power(SigningPower).public_key()
    tls = keystore.derive_crypto_power(TLSHostingPower, host="127.0.0.1").keypair.certificate
    spki = tls.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return {
        "decrypting_public_key": bytes(decrypting.to_compressed_bytes()).hex(),
        "verifying_public_key": bytes(signing.to_compressed_bytes()).hex(),
        "tls_public_key_sha256": sha256(spki).hexdigest(),
    }


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def make_generated(out_dir: Path, work_dir: Path, index: int, password: str) -> None:
    keystore, words = Keystore.generate(
        password=password, keystore_dir=work_dir, interactive=False
    )
    keystore.unlock(password)
    expected = {
        "made_by": f"nucypher {version('nucypher')}, nucypher-core {version('nucypher-core')}",
        "password": password,
        "keystore_id": keystore.id,
        "seed": bytes(Mnemonic("english").to_entropy(words)).hex(),
        "mnemonic": words,
        **public_keys(keystore),
    }
    shutil.copyfile(keystore.keystore_path, out_dir / f"keystore-{index}.priv")
    write_json(out_dir / f"keystore-{index}.expected.json", expected)


def make_short_seed(out_dir: Path) -> None:
    # The same steps as nucypher's Keystore.__save, with a 31-byte secret.
    password_salt = token_bytes(32)
    wrapper_salt = token_bytes(32)
    key_material = derive_key_material_from_password(
        password=SHORT_SEED_PASSWORD.encode(), salt=password_salt
    )
    sealed = secret_box_encrypt(
        plaintext=token_bytes(31), key_material=key_material, salt=wrapper_salt
    )
    payload = nucypher_keystore._assemble_keystore(
        encrypted_secret=sealed, password_salt=password_salt, wrapper_salt=wrapper_salt
    )
    (out_dir / "short-seed.priv").write_bytes(nucypher_keystore._serialize_keystore(payload))
    write_json(out_dir / "short-seed.expected.json", {"password": SHORT_SEED_PASSWORD})


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for index, password in enumerate(PASSWORDS, start=1):
            make_generated(out_dir, Path(work), index, password)
            print(f"keystore-{index}.priv")
    make_short_seed(out_dir)
    print("short-seed.priv")


if __name__ == "__main__":
    main()
