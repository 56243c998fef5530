#!/usr/bin/env bash
# Build kmod/ against the project's kernel build (or KDIR=...).
#   scripts/build-module.sh [normal|debug]   -> prints the path of marufs.ko
# Fails on any compiler or clippy warning (the kernel's own lint flags apply;
# CLIPPY=1 is always on). Objects go to out/kmod-<variant>/, not kmod/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

variant=${1:-debug}
kdir=$("$MARUFS_ROOT/scripts/build-kernel.sh" "$variant")
mo="$MARUFS_ROOT/out/kmod-$variant"
mkdir -p "$mo"
logf="$mo/build.log"
if ! make -C "$kdir" M="$MARUFS_ROOT/kmod" MO="$mo" LLVM=1 RUSTC="$KRUSTC" \
        BINDGEN="$(command -v bindgen)" CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver \
        -j"$(nproc)" modules >"$logf" 2>&1; then
    cat "$logf" >&2; die "module build failed"
fi
if grep -qiE '(^|[^a-z_])(warning|error)(\[|:)' "$logf"; then
    cat "$logf" >&2; die "module build produced warnings"
fi
[ -f "$mo/marufs.ko" ] || die "no marufs.ko produced"
echo "$mo/marufs.ko"
