#!/usr/bin/env bash
# Creates the two Python virtual environments that the NuCypher interoperability tests use:
#
# - target/pyenv (UMBRALD_PYENV overrides): nucypher-core 0.16 and aioquic, for the QUIC client
#   tests/python/nucypher_client.py that crates/umbrald-server/tests/nucypher_python.rs runs;
# - target/nucypher-env (UMBRALD_NUCYPHER_ENV overrides): nucypher 7.6.1 itself (which pins
#   nucypher-core 0.15), for its own HTTPS client and keystores in
#   tests/python/nucypher_https_client.py, which crates/umbrald/tests/nucypher_https.rs runs,
#   and for benches/python/ursula_reencrypt_loop.py. Kept apart: the two pin different
#   nucypher-core versions.
#
# Idempotent: an environment whose stamp lists exactly the pinned packages is left alone; any
# other is (re)installed and stamped only once its packages import. The locations are in the
# repository's target/ (whatever CARGO_TARGET_DIR says), which is where the tests look for them;
# the variables above override both, for this script and the tests. PYTHON selects the
# interpreter (default python3; nucypher 7.6.1 needs 3.10 or newer).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

# make_env VENV MIN_MINOR CHECK PACKAGE...: the environment VENV with exactly PACKAGE...
# installed, on Python 3.MIN_MINOR or newer; CHECK is Python code that imports them and prints
# what it found.
make_env() {
    local venv="$1" min_minor="$2" check="$3"
    shift 3
    local stamp="$venv/.umbrald-requirements"
    local wanted
    wanted="$(printf '%s\n' "$@")"

    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
        echo "python test environment ready: $venv"
        return 0
    fi
    "$python" -c "import sys; sys.exit(0 if sys.version_info >= (3, $min_minor) else 1)" || {
        echo "error: $python is older than 3.$min_minor (needed for $venv)" >&2
        return 1
    }
    rm -f "$stamp"
    "$python" -m venv "$venv"
    # A newer pip is welcome, not required: the one venv bundles installs these pins too.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip ||
        echo "note: could not upgrade pip in $venv; going on with the bundled one" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    "$venv/bin/python" -c "$check"
    printf '%s\n' "$@" > "$stamp"
    echo "python test environment ready: $venv"
}

# Pinned: the QUIC client's wire format is nucypher-core 0.16's.
make_env "${UMBRALD_PYENV:-$repo/target/pyenv}" 9 \
    'import nucypher_core, aioquic
print("nucypher-core", nucypher_core.__name__, "aioquic", aioquic.__version__)' \
    nucypher-core==0.16.0 aioquic==1.2.0

# Pinned: the NuCypher node software whose HTTPS client and keystores are under test.
make_env "${UMBRALD_NUCYPHER_ENV:-$repo/target/nucypher-env}" 10 \
    'from importlib.metadata import version
import nucypher.crypto.keystore, nucypher.network.middleware
print("nucypher", version("nucypher"), "nucypher-core", version("nucypher-core"))' \
    nucypher==7.6.1
