#!/usr/bin/env bash
# Build a guest initramfs.
#   qemu/mkinitramfs.sh OUT.cpio.gz MODULE.ko [BINARY...]
# Contents: busybox, cxl/ndctl/daxctl and every BINARY with their shared
# libraries, the marufs module, guest init + helpers, tests/guest/* scripts,
# and test users (alice, bob in group kv; carol alone).
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

out=$1 ko=$2; shift 2
root=$(mktemp -d); chmod 755 "$root"; trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,lib/modules,lib/marufs,etc,tests,proc,sys,dev,tmp,run,mnt,home,root}

copy_with_libs() {  # copy an ELF and the libraries it needs, keeping paths
    local bin=$1 dest=$2 lib
    install -m 0755 "$bin" "$root$dest"
    for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' | sort -u); do
        [ -e "$root$lib" ] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

install -m 0755 /bin/busybox "$root/bin/busybox"
for t in cxl ndctl daxctl; do copy_with_libs "$(command -v "$t")" "/usr/bin/$t"; done
# util-linux mount (next to busybox's): it runs /sbin/mount.TYPE helpers the
# way distributions do (tests/guest/mount-helper.sh).
copy_with_libs /usr/bin/mount /usr/bin/ul-mount
for b in "$@"; do copy_with_libs "$b" "/usr/bin/$(basename "$b")"; done
# Cargo binaries cannot have a dot in their name: give mkfs and the mount
# helper their usual ones (mount(8) looks for /sbin/mount.TYPE).
[ -e "$root/usr/bin/mkfs-marufs" ] && ln -s mkfs-marufs "$root/usr/bin/mkfs.marufs"
[ -e "$root/usr/bin/mount-marufs" ] && ln -s /usr/bin/mount-marufs "$root/sbin/mount.marufs"
install -m 0644 "$ko" "$root/lib/modules/marufs.ko"
# With MARUFS_INITRD_PYTHON=DIR (a site-packages holding the marufs package):
# Debian's python3.11, its standard library without tests, GUIs and build
# support, and the package, for the Python scenarios (PYTHON=1).
if [ -n "${MARUFS_INITRD_PYTHON:-}" ]; then
    copy_with_libs /usr/bin/python3.11 /usr/bin/python3.11
    ln -s python3.11 "$root/usr/bin/python3"
    mkdir -p "$root/usr/lib/python3.11" "$root/usr/lib/python3/dist-packages"
    (cd /usr/lib/python3.11 && find . -name __pycache__ -prune -o \
        \( -path ./test -o -path ./idlelib -o -path ./tkinter -o -path ./turtledemo -o -path ./ensurepip \
           -o -path ./lib2to3 -o -path ./pydoc_data -o -path './config-*' -o -path ./site-packages \
           -o -path ./dist-packages -o -path ./unittest/test -o -path ./distutils \) -prune -o -print0 \
        | cpio --null -pdm --quiet "$root/usr/lib/python3.11")
    for so in "$root"/usr/lib/python3.11/lib-dynload/*.so; do
        for lib in $(ldd "$so" 2>/dev/null | grep -oE '/[^ ]+' | sort -u); do
            [ -e "$root$lib" ] && continue
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
    done
    cp -r "$MARUFS_INITRD_PYTHON/marufs" "$root/usr/lib/python3/dist-packages/marufs"
    # marufs.lmcache stays: scenario lmcache-share runs it with LMCache's own
    # environment (scripts/lmcache-rootfs.sh), the tree's package from here.
    rm -rf "$root/usr/lib/python3/dist-packages/marufs/__pycache__"
fi
install -m 0755 "$MARUFS_ROOT/qemu/guest/init" "$root/init"
install -m 0644 "$MARUFS_ROOT/qemu/guest/guest-lib.sh" "$root/lib/marufs/guest-lib.sh"
for s in "$MARUFS_ROOT"/tests/guest/*; do
    [ -f "$s" ] && install -m 0755 "$s" "$root/tests/$(basename "$s")"
done
# What the LMCache tests share (model metadata, a CPU stand-in for vLLM's
# GPU connector), for the guests' LMCache half.
install -m 0644 "$MARUFS_ROOT/userspace/marufs-py/tests/lmc_util.py" "$root/tests/lmc_util.py"

cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
alice:x:1001:1001:alice:/home/alice:/bin/sh
bob:x:1002:1002:bob:/home/bob:/bin/sh
carol:x:1003:1003:carol:/home/carol:/bin/sh
P
cat >"$root/etc/group" <<'G'
root:x:0:
alice:x:1001:
bob:x:1002:
carol:x:1003:
kv:x:2000:alice,bob
G
mkdir -p "$root"/home/{alice,bob,carol}
chown 1001:1001 "$root/home/alice"; chown 1002:1002 "$root/home/bob"; chown 1003:1003 "$root/home/carol"

mkdir -p "$(dirname "$out")"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet 2>/dev/null) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
