#!/usr/bin/env bash
# Creates the Python virtual environment that the NuCypher interoperability test uses
# (crates/umbrald/tests/nucypher_python.rs runs tests/python/nucypher_client.py with it).
#
# Idempotent: an existing, complete environment is left alone. The location is
# target/pyenv in the repository (whatever CARGO_TARGET_DIR says), which is
# where the test looks for it (UMBRALD_PYENV overrides both, for the script and the test).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${UMBRALD_PYENV:-$repo/target/pyenv}"
python="${PYTHON:-python3}"

# Pinned: the wire format under test is nucypher-core 0.16's.
packages=(nucypher-core==0.16.0 aioquic==1.2.0)
stamp="$venv/.umbrald-requirements"
wanted="$(printf '%s\n' "${packages[@]}")"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    echo "python test environment ready: $venv"
    exit 0
fi

"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || {
    echo "error: $python is older than 3.9" >&2
    exit 1
}
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "${packages[@]}"
"$venv/bin/python" -c 'import nucypher_core, aioquic; print("nucypher-core", nucypher_core.__name__, "aioquic", aioquic.__version__)'
printf '%s\n' "${packages[@]}" > "$stamp"
echo "python test environment ready: $venv"
