#!/usr/bin/env bash
# The marufs demo: set up the machine, build everything, then boot two guests
# (two QEMU processes = two hosts) on one emulated CXL memory device, both
# mounting it with marufs (tests/guest/share-keys.sh). Host A formats the pool
# and stores a set of KV chunks through the client library's zero-copy path,
# with a manifest of their CRC-32s (`maru-kvdemo store-set`: per-chunk store
# time, GB/s); host B mounts the same pool, waits for the manifest, finds every
# chunk in one batched lookup, maps them zero-copy (2 MiB mappings) and checks
# every CRC-32 (`maru-kvdemo fetch-set`: retrieval latency, verify GB/s, mmap
# and ioctl counters), then stores its own key; both race to create the same
# names (exactly one wins each); A still reads B's key after B unmounted.
# cxl: 4 chunks of 2 MiB (emulated CXL memory is slow); nvdimm: 8 of 32 MiB.
#   scripts/demo.sh [cxl|nvdimm]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
topo=${1:-cxl}
if [ "$(id -u)" = 0 ]; then "$MARUFS_ROOT/scripts/setup.sh"; else sudo "$MARUFS_ROOT/scripts/setup.sh"; fi
kdir=$("$MARUFS_ROOT/scripts/build-kernel.sh" normal)
ko=$("$MARUFS_ROOT/scripts/build-module.sh" normal)
cargo build --release -q -p maru-testkit -p mkfs-marufs -p maru-fsck -p maru-cli -p mount-marufs
bins=()
for b in maru-testkit mkfs-marufs maru-fsck maru maru-kvdemo mount-marufs; do bins+=("$MARUFS_ROOT/target/release/$b"); done
initrd=$("$MARUFS_ROOT/qemu/mkinitramfs.sh" "$MARUFS_ROOT/out/initramfs-normal.cpio.gz" "$ko" "${bins[@]}")
pool=/dev/shm/marufs-demo-$$.pool
dir="$MARUFS_ROOT/out/demo"; mkdir -p "$dir"
trap 'rm -f "$pool"' EXIT
run() { "$MARUFS_ROOT/qemu/run-guest.sh" -k "$kdir/arch/x86/boot/bzImage" -i "$initrd" -t "$topo" \
    -p "$pool" -s 512M -r "$1" -P "$2" -T share-keys.sh -l "$dir/$1.log" -w 900 -c 1; }
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
log "demo ok: two hosts shared KV keys through marufs on one shared $topo memory device"
