#!/usr/bin/env bash
# The LMCache environment of the integration tests and benchmark (root,
# idempotent): a venv under the cache, made with Debian's python3, holding
# LMCache 0.5.6 as released on PyPI (unmodified, with torch: CPU only here,
# the CUDA libraries are needed for its import) from the exact wheels pinned
# in tests/lmcache/requirements.txt, downloaded once into the cache; then the
# marufs package, by one `pip install` of the repo's userspace/marufs-py.
#   scripts/lmcache-env.sh          # prints the venv's directory
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ENV=$MARUFS_CACHE/lmcache-env
WHEELS=$MARUFS_CACHE/wheels/lmcache
REQ=$MARUFS_ROOT/tests/lmcache/requirements.txt
mkdir -p "$WHEELS"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ "$(cat "$ENV/.req" 2>/dev/null)" != "$want" ]; then
    rm -rf "$ENV"
    log "lmcache: downloading the pinned wheels into $WHEELS (about 3.2 GB the first time)"
    t0=$(date +%s)
    /usr/bin/python3 -m venv "$ENV" >&2
    "$ENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        -d "$WHEELS" -r "$REQ" >&2
    log "lmcache: installing into $ENV"
    "$ENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-index \
        --find-links "$WHEELS" -r "$REQ" >&2
    echo "$want" >"$ENV/.req"
    log "lmcache: environment ready in $(($(date +%s) - t0)) s"
fi
log "lmcache: pip install userspace/marufs-py"
PATH="$ENV/bin:$PATH" "$ENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation \
    --force-reinstall --no-deps "$MARUFS_ROOT/userspace/marufs-py" >&2
echo "$ENV"
