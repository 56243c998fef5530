#!/usr/bin/env bash
# The Python environment of the marufs package's tests (root, idempotent):
# a venv under the cache, made with Debian's python3, holding the pinned test
# tools, and the package itself installed by one `pip install` of the repo's
# userspace/marufs-py (a wheel built by maturin with the cargo on PATH).
#   scripts/python-env.sh          # prints the venv's directory
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PYENV=$MARUFS_CACHE/pyenv
# Pinned: what the tests were last run with.
PY_TOOLS=("maturin==1.16.0" "pytest==9.2.0" "ruff==0.17.6" "numpy==2.4.6")

mkdir -p "$MARUFS_CACHE"
if [ ! -x "$PYENV/bin/python" ]; then
    log "python: creating $PYENV"
    /usr/bin/python3 -m venv "$PYENV" >&2
fi
want=$(printf '%s\n' "${PY_TOOLS[@]}" | sort | tr '\n' ' ')
if [ "$(cat "$PYENV/.tools" 2>/dev/null)" != "$want" ]; then
    log "python: installing ${PY_TOOLS[*]}"
    "$PYENV/bin/pip" install -q --disable-pip-version-check "${PY_TOOLS[@]}" >&2
    echo "$want" >"$PYENV/.tools"
fi
# The package, built from the tree as a user would (`pip install`), with the
# build tools above (no isolated download of maturin each time).
log "python: pip install userspace/marufs-py"
PATH="$PYENV/bin:$PATH" "$PYENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation \
    --force-reinstall --no-deps "$MARUFS_ROOT/userspace/marufs-py" >&2
echo "$PYENV"
