#!/usr/bin/env bash
# A read-only ext4 image holding LMCache's environment for the guests
# (scenario lmcache-share): Debian's python3.11 with its whole standard
# library and shared libraries, and the LMCache venv of scripts/lmcache-env.sh
# (LMCache 0.5.6, torch and the CUDA libraries its import loads) at its own
# path, with /venv pointing at it. The marufs package is left out: the guest
# brings the tree's own from its initramfs (PYTHONPATH), so the image changes
# only with the pinned wheels.
#   scripts/lmcache-rootfs.sh       # prints the image's path
# Cached as $MARUFS_CACHE/lmcache-rootfs-KEY.img (about 8 GB, sparse), KEY =
# the pinned requirements + Python's version; an older image is removed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The key needs no venv (scripts/lmcache-env.sh rebuilds the package each
# time): the venv is made from exactly these requirements, at this path.
venv=$MARUFS_CACHE/lmcache-env
req=$(sha256sum "$MARUFS_ROOT/tests/lmcache/requirements.txt" | cut -d' ' -f1)
key=$( { echo "$req"; /usr/bin/python3.11 --version; echo "$venv"; echo layout-1; } | sha256sum | cut -c1-16)
img=$MARUFS_CACHE/lmcache-rootfs-$key.img
if [ -f "$img.done" ]; then echo "$img"; exit 0; fi
[ "$("$MARUFS_ROOT/scripts/lmcache-env.sh")" = "$venv" ] || die "the LMCache venv is not at $venv"
[ "$(cat "$venv/.req")" = "$req" ] || die "the LMCache venv does not match the requirements"
command -v mke2fs >/dev/null || PATH=$PATH:/sbin:/usr/sbin
command -v mke2fs >/dev/null || die "mke2fs not found (e2fsprogs)"

rm -f "$MARUFS_CACHE"/lmcache-rootfs-*.img "$MARUFS_CACHE"/lmcache-rootfs-*.img.done
stage=$MARUFS_CACHE/lmcache-rootfs.stage
rm -rf "$stage"
# Nothing half made is left behind (a full disk, a failed mke2fs).
trap 'rm -rf "$stage" "$img.tmp"' EXIT
t0=$(date +%s)
log "lmcache rootfs: staging in $stage"
mkdir -p "$stage"/{proc,sys,dev,tmp,mnt,root,etc,usr/bin,usr/lib}
ln -s usr/bin "$stage/bin"; ln -s usr/lib "$stage/lib"
# Hard links where the cache and /usr share a filesystem (nothing is copied
# twice: mke2fs reads the files once), copies otherwise.
link() { cp -al "$1" "$2" 2>/dev/null || { rm -rf "$2/$(basename "$1")"; cp -a "$1" "$2"; }; }
link /usr/bin/python3.11 "$stage/usr/bin/"
ln -s python3.11 "$stage/usr/bin/python3"
link /usr/lib/python3.11 "$stage/usr/lib/"
link /usr/lib/x86_64-linux-gnu "$stage/usr/lib/"
cp -a /usr/lib64 "$stage/usr/"
ln -s usr/lib64 "$stage/lib64"
mkdir -p "$stage$(dirname "$venv")"
link "$venv" "$stage$(dirname "$venv")/"
rm -rf "$stage$venv"/lib/python3.11/site-packages/marufs "$stage$venv"/lib/python3.11/site-packages/marufs-*
ln -s "$venv" "$stage/venv"
cp /etc/ld.so.cache "$stage/etc/" 2>/dev/null || true
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\n' >"$stage/etc/group"
printf '127.0.0.1 localhost\n' >"$stage/etc/hosts"

# Room for the files, their inodes and ext4's own metadata.
bytes=$(du -sb "$stage" | cut -f1)
size_mb=$((bytes * 11 / 10 / 1048576 + 512))
log "lmcache rootfs: writing a ${size_mb} MiB ext4 image (no journal: mounted read-only)"
rm -f "$img.tmp"
mke2fs -q -F -t ext4 -O ^has_journal -L lmcache -E root_owner=0:0 -d "$stage" "$img.tmp" "${size_mb}M" >&2 \
    || die "mke2fs failed"
rm -rf "$stage"
mv "$img.tmp" "$img"
touch "$img.done"
log "lmcache rootfs: $img in $(($(date +%s) - t0)) s"
echo "$img"
