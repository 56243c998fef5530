#!/usr/bin/env bash
# Runs the cargo-fuzz target for a bounded time with the stable toolchain
# (RUSTC_BOOTSTRAP=1 enables the nightly-only flags cargo-fuzz passes).
# Usage: userspace/marufs-core/fuzz/run-fuzz.sh [seconds] [target]
#   (default 60 s of fsck_image; targets: fsck_image, entry_extents)
# Crashes land in fuzz/artifacts/fsck_image/; turn each into a regression patch
# for userspace/marufs-sim/regressions/ (offset u64 LE + byte per 9 bytes).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
target="${2:-fsck_image}"
exec cargo fuzz run "$target" -- -max_total_time="$secs" -max_len=4096
