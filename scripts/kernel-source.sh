#!/usr/bin/env bash
# Fetch Debian's linux-source-7.3 (trixie-backports) and unpack it into the cache.
# Prints the path of the unpacked source tree. KERNEL_SRC=DIR uses your own tree.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -n "${KERNEL_SRC:-}" ]; then
    [ -f "$KERNEL_SRC/Makefile" ] || die "KERNEL_SRC=$KERNEL_SRC is not a kernel source tree"
    echo "$KERNEL_SRC"; exit 0
fi
src_root="$MARUFS_CACHE/src"
mkdir -p "$src_root"
if [ ! -f "$src_root/current" ] || [ ! -f "$(cat "$src_root/current")/.marufs-unpacked" ]; then
    log "fetching $LINUX_SOURCE_PKG from trixie-backports"
    tmp=$(mktemp -d); chmod 755 "$tmp"; trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt_private trixie-backports "trixie-backports" alone download -q "$LINUX_SOURCE_PKG" >&2)
    deb=$(ls "$tmp"/*.deb)
    ver=$(dpkg-deb -f "$deb" Version)
    dpkg-deb -x "$deb" "$tmp/x"
    tarball=$(ls "$tmp"/x/usr/src/linux-source-*.tar.*)
    dest="$src_root/$ver"
    rm -rf "$dest"; mkdir -p "$dest"
    log "unpacking $(basename "$tarball") ($ver)"
    tar -xf "$tarball" -C "$dest" --strip-components=1
    echo "$ver" >"$dest/.marufs-version"
    touch "$dest/.marufs-unpacked"
    echo "$dest" >"$src_root/current"
fi
cat "$src_root/current"
