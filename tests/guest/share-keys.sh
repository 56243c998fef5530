#!/bin/sh
# Two hosts (separate QEMU guests) mount the same pool. A formats it and,
# through the client library's zero-copy path, stores a set of KV chunks and
# a manifest of their CRC-32s (maru-kvdemo store-set); B mounts, waits for
# the manifest, finds every chunk in one batched lookup, maps them all
# zero-copy with 2 MiB pages and verifies each CRC-32 (maru-kvdemo
# fetch-set), then stores its own key; both race to create the same names
# (exactly one wins each); B leaves and A still reads B's key.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M
load_marufs || fail "insmod"
case $TOPO in
    cxl) N=4 LEN=$((2 << 20)) ;;   # emulated CXL memory is slow under TCG
    *) N=8 LEN=$((32 << 20)) ;;    # 256 MiB of chunks
esac
RACES=12
wait_path() { wait_for "$1" "${2:-240}" || fail "timed out waiting for $1"; }
race() {  # create race-1..RACES with O_EXCL; print how many this host won
    won=0 j=1
    while [ $j -le $RACES ]; do
        if (set -C; echo "$ROLE" > $M/kv/race-$j) 2>/dev/null; then won=$((won + 1)); fi
        j=$((j + 1))
    done
    echo $won
}
case $ROLE in
a)
    mkfs.marufs -q /dev/dax0.0 || fail "mkfs"
    mount -t marufs -o node=0 /dev/dax0.0 $M || fail "mount"
    mkdir $M/kv || fail "mkdir"
    maru-kvdemo store-set --mount $M --app kv --count $N --size $LEN --seed 42 || fail "store-set"
    log "stored $N chunks of $LEN bytes and their manifest"
    wait_path $M/kv/go
    won=$(race)
    echo $won > $M/kv/a-won
    wait_path $M/kv/b-won
    total=$((won + $(cat $M/kv/b-won)))
    [ $total = $RACES ] || fail "race: a won $won, b won $(cat $M/kv/b-won): not exactly one winner per name"
    j=1
    while [ $j -le $RACES ]; do
        v=$(cat $M/kv/race-$j)
        [ "$v" = a ] || [ "$v" = b ] || fail "race-$j holds '$v'"
        j=$((j + 1))
    done
    log "race: a won $won of $RACES, b the rest; every name has one intact winner"
    wait_path $M/kv/b-done
    sleep 1
    maru-testkit key-verify $M/kv/from-b --len $LEN --seed 77 || fail "B's key after B left"
    umount $M || fail "umount"
    ;;
b)
    i=0
    until mount -t marufs -o node=1 /dev/dax0.0 $M 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 240 ] && fail "could not mount the shared pool"
        sleep 1
    done
    # Waits for A's manifest; at most 4 page faults per 2 MiB unit read.
    maru-kvdemo fetch-set --mount $M --app kv --wait-secs 240 --max-faults-per-unit 4 || fail "fetch-set"
    log "fetched and verified A's $N chunks"
    maru-testkit key-write $M/kv/from-b --len $LEN --seed 77 || fail "key-write from b"
    touch $M/kv/go
    won=$(race)
    echo $won > $M/kv/b-won
    ls $M/kv | grep -c race- | grep -qx $RACES || fail "B sees $(ls $M/kv | grep -c race-) race keys"
    umount $M || fail "umount"
    # Tell A we are gone (remount briefly to write the marker).
    mount -t marufs -o node=1 /dev/dax0.0 $M || fail "remount"
    touch $M/kv/b-done
    umount $M || fail "umount 2"
    ;;
esac
log "share-keys: ok"
