#!/usr/bin/env bash
# The marufs Python package on the host: pip install from the tree, lint
# (ruff; cargo fmt and clippy of the extension with both toolchains), pytest
# against a temporary directory standing in for a mount.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
pyenv=$("$MARUFS_ROOT/scripts/python-env.sh")
pkg=$MARUFS_ROOT/userspace/marufs-py
cd "$pkg"
"$pyenv/bin/ruff" check .
"$pyenv/bin/ruff" format --check .
cargo fmt --check
cargo clippy -q --release --all-targets -- -D warnings
if [ -x /usr/bin/cargo ] && [ "$(command -v cargo)" != /usr/bin/cargo ]; then
    env PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" RUSTC="$KRUSTC" \
        CARGO_TARGET_DIR="$pkg/target/msrv" /usr/bin/cargo-clippy clippy -q --all-targets -- -D warnings
fi
# From outside the source tree, so `import marufs` is the installed package.
cd /
"$pyenv/bin/python" -m pytest -q -p no:cacheprovider "$pkg/tests"
