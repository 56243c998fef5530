#!/bin/sh
# Two hosts (separate QEMU guests) mount the same pool. A formats it and,
# through the client library's zero-copy path, stores a set of KV chunks and
# a manifest of their CRC-32s (maru-kvdemo store-set); B mounts, waits for
# the manifest, finds every chunk in one batched lookup, maps them all
# zero-copy with 2 MiB pages and verifies each CRC-32 (maru-kvdemo
# fetch-set), then stores its own key; both race to create the same names
# (exactly one wins each); names B has cached (positive, negative, in the
# dcache and through the batched lookup) follow A's unlink, chmod, rename and
# create at once; B leaves and A still reads B's key. Before the set, A
# also publishes one key by O_TMPFILE + writable mmap + linkat, which B
# verifies through its own mapping (in the non-coherent mode: the linkat
# write-back of A's mapped stores and B's invalidate at fault).
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M
load_marufs || fail "insmod"
case $TOPO in
    cxl) N=4 LEN=$((2 << 20)) TLEN=$((2 << 20)) ;;   # emulated CXL memory is slow under TCG
    *) N=8 LEN=$((32 << 20)) TLEN=$((5 << 20)) ;;    # 256 MiB of chunks
esac
RACES=12
# Under the non-coherent test mode faults are 4 KiB (the cache model has no
# huge pages): 512 per unit.
FAULTS=4
case " $MODPARAMS " in *" noncoherent_test=1 "*) FAULTS=520 ;; esac
# A host that fails says so on the pool, so the other stops waiting (the
# negative controls fail fast).
PEER_DIR=$M/kv
fail() { peer_fail "$@"; }
wait_path() { wait_pool "$@"; }
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
    maru-testkit tmpfile $M/kv tmp-linked --len $TLEN --seed 11 >/dev/null || fail "tmpfile + linkat"
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
    # Cached names: B looks these up, then A changes each of them.
    for c in c1 c2 c3; do echo one > $M/kv/$c || fail "$c"; done
    touch $M/kv/cache-ready
    wait_path $M/kv/cached
    rm $M/kv/c1 && chmod 600 $M/kv/c2 && mv $M/kv/c3 $M/kv/c5 && echo four > $M/kv/c4 \
        || fail "changing cached names"
    touch $M/kv/changed
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
    # (fetch-set fails at once if A failed before writing it: no wait.)
    maru-kvdemo fetch-set --mount $M --app kv --wait-secs 240 --max-faults-per-unit $FAULTS || fail "fetch-set"
    log "fetched and verified A's $N chunks"
    maru-testkit key-verify $M/kv/tmp-linked --len $TLEN --seed 11 || fail "A's O_TMPFILE key, linked"
    maru-testkit key-write $M/kv/from-b --len $LEN --seed 77 || fail "key-write from b"
    touch $M/kv/go
    won=$(race)
    echo $won > $M/kv/b-won
    ls $M/kv | grep -c race- | grep -qx $RACES || fail "B sees $(ls $M/kv | grep -c race-) race keys"
    # Cache names (twice: the second walk is served by the dcache), then
    # check that A's changes show at once.
    wait_path $M/kv/cache-ready
    for r in 1 2; do
        for c in c1 c2 c3; do [ "$(cat $M/kv/$c)" = one ] || fail "$c before"; done
        [ -e $M/kv/c4 ] && fail "c4 exists before"
        maru-testkit lookup $M/kv c1 c2 c3 c4 | grep -q "^present 3$" || fail "batched lookup before"
        maru-testkit lookup --exists $M/kv c1 c2 c3 c4 | tr '\n' ' ' \
            | grep -q "^c1 1 c2 1 c3 1 c4 0 present 3 $" || fail "batched exists before"
    done
    touch $M/kv/cached
    wait_path $M/kv/changed
    # The batched lookup's kept answers first (no path walk in between).
    out=$(maru-testkit lookup --exists $M/kv c1 c2 c3 c4 c5 | tr '\n' ' ')
    [ "$out" = "c1 0 c2 1 c3 0 c4 1 c5 1 present 3 " ] || fail "batched exists after: $out"
    out=$(maru-testkit lookup $M/kv c1 c2 c3 c4 c5)
    echo "$out" | grep -q "^c2 0 4 100600 " || fail "batched c2 after (kept answers): $out"
    [ -e $M/kv/c1 ] && fail "B still sees unlinked c1"
    [ "$(stat -c %a $M/kv/c2)" = 600 ] || fail "B sees c2 mode $(stat -c %a $M/kv/c2), not 600"
    [ -e $M/kv/c3 ] && fail "B still sees renamed c3"
    [ "$(cat $M/kv/c5)" = one ] || fail "B does not see c5"
    [ "$(cat $M/kv/c4)" = four ] || fail "B does not see new c4"
    out=$(maru-testkit lookup $M/kv c1 c2 c3 c4 c5)
    echo "$out" | grep -q "^present 3$" || fail "batched lookup after: $out"
    echo "$out" | grep -q "^c2 0 4 100600 " || fail "batched c2 after: $out"
    echo "$out" | grep -q "^c3 2 " || fail "batched c3 after: $out"
    log "cached names follow the other host's unlink, chmod, rename and create"
    umount $M || fail "umount"
    # Tell A we are gone (remount briefly to write the marker).
    mount -t marufs -o node=1 /dev/dax0.0 $M || fail "remount"
    touch $M/kv/b-done
    umount $M || fail "umount 2"
    ;;
esac
log "share-keys: ok"
