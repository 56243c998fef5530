#!/usr/bin/env bash
# LMCache's released code (tests/lmcache/requirements.txt) on the marufs
# plugin and L2 adapter, on the host, CPU only: pytest of
# userspace/marufs-py/tests/test_lmcache.py in the LMCache environment, then
# the benchmark (tests/lmcache/bench.py: marufs against LMCache's local-disk
# backend on tmpfs, the package against the Rust library; prints ratios).
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
env=$("$MARUFS_ROOT/scripts/lmcache-env.sh")
pkg=$MARUFS_ROOT/userspace/marufs-py
cargo build -q --release -p maru-cli --bin maru-kvdemo
cd /
"$env/bin/python" -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning "$pkg/tests/test_lmcache.py"
"$env/bin/python" "$MARUFS_ROOT/tests/lmcache/bench.py" --kvdemo "$MARUFS_ROOT/target/release/maru-kvdemo" 2>&1 \
    | grep -v -e "LMCache WARNING" -e "LMCache INFO"
