#!/usr/bin/env bash
# The marufs demo: set up the machine, build everything, then boot two guests
# (two QEMU processes = two hosts) on one emulated CXL memory device.
# Host A writes a pattern into the shared memory through /dev/dax0.0; host B
# reads it back byte-exact, with no network between them.
#   scripts/demo.sh [cxl|nvdimm]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
topo=${1:-cxl}
if [ "$(id -u)" = 0 ]; then "$MARUFS_ROOT/scripts/setup.sh"; else sudo "$MARUFS_ROOT/scripts/setup.sh"; fi
kdir=$("$MARUFS_ROOT/scripts/build-kernel.sh" normal)
ko=$("$MARUFS_ROOT/scripts/build-module.sh" normal)
cargo build --release -q -p maru-testkit
initrd=$("$MARUFS_ROOT/qemu/mkinitramfs.sh" "$MARUFS_ROOT/out/initramfs-normal.cpio.gz" "$ko" \
    "$MARUFS_ROOT/target/release/maru-testkit")
pool=/dev/shm/marufs-demo-$$.pool
dir="$MARUFS_ROOT/out/demo"; mkdir -p "$dir"
trap 'rm -f "$pool"' EXIT
run() { "$MARUFS_ROOT/qemu/run-guest.sh" -k "$kdir/arch/x86/boot/bzImage" -i "$initrd" -t "$topo" \
    -p "$pool" -s 512M -r "$1" -P "$2" -T dax-share.sh -l "$dir/$1.log" -w 600; }
log "booting host A and host B on one shared $topo device ($pool)"
: >"$dir/a.log"
run a 1 & pa=$!
until grep -q MARUFS-READY "$dir/a.log"; do sleep 0.5; kill -0 $pa 2>/dev/null || break; done
run b 0 & pb=$!
wait $pa; wait $pb
for h in a b; do
    echo "---- host $h"
    sed -n '/MARUFS-READY/,/MARUFS-DMESG-BEGIN/p' "$dir/$h.log" | grep -v MARUFS-DMESG
done
grep -q 'MARUFS-RESULT rc=0' "$dir/a.log" && grep -q 'MARUFS-RESULT rc=0' "$dir/b.log" \
    || die "demo failed (logs in $dir)"
log "demo ok: host B read host A's bytes through shared CXL memory"
