#!/bin/sh
# A host dies (SIGKILL of its QEMU: whatever its caches held is lost) while it
# stores keys in a loop. The survivor A keeps storing (its slowest store is
# reported), takes B over, and finds every visible key of B's byte-exact (a
# name is visible only once published); remounting B's node recovers, and
# maru-fsck -n is clean (no leaked units). The fence helper (module
# parameter) is run for B before A takes it over.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
LEASE=3000
mkdir -p $M
load_marufs || fail "insmod"
case $ROLE in
a)
    start_pool lease_ms=$LEASE
    wait_pool $M/app/dying-b 300
    dmesg -c >/dev/null
    t0=$(now_ms)
    store_loop a 0 1000 &
    sl=$!
    wait_takeover $t0
    log "took B over ${TOOK} ms after B asked to be killed (lease ${LEASE} ms)"
    # The fabric-fencing hook ran first (module parameter fence_helper).
    grep -q "^fence 1 1$" /tmp/fence-calls 2>/dev/null || fail "the fence helper was not run for node 1 epoch 1"
    dmesg | grep -q "fence helper cut node 1 (epoch 1) off the pool" || fail "no dmesg line for the fence helper"
    case $MODPARAMS in
    *fence-helper-flaky*)
        # Its first call failed: the takeover waited for a later one.
        dmesg | grep -q "fence helper failed for node 1 (epoch 1" || fail "no dmesg line for the failed helper"
        [ "$(grep -c "^fence 1 1$" /tmp/fence-calls)" -ge 2 ] || fail "the helper was not called again"
        log "the failed fence helper postponed the takeover: $(grep -c . /tmp/fence-calls) calls"
        ;;
    esac
    sleep 3
    stop_stores a $sl

    nb=$(verify_visible b)
    [ "$nb" -ge 3 ] || fail "only $nb of B's keys are visible (B stored 3 before it was killed)"
    na=$(verify_visible a)
    log "after the takeover: $nb keys of B and $na of A visible, all byte-exact"
    fsck_clean "after the takeover"
    cat /tmp/fsck
    # The dead host's node mounts again (here, as a second mount of this
    # host): it watches its slot for a lease and margin, then rejoins.
    mkdir -p /mnt/b
    t0=$(now_ms)
    mount -t marufs -o node=1,lease_ms=$LEASE /dev/dax0.0 /mnt/b || fail "remount of node 1"
    log "node 1 mounted again after $(($(now_ms) - t0)) ms"
    [ "$(verify_visible b)" = "$nb" ] || fail "B's keys changed at its remount"
    maru-testkit key-write /mnt/b/app/b-again --len $((2 << 20)) --seed 5 >/dev/null || fail "store as node 1"
    umount /mnt/b || fail "umount node 1"
    umount $M || fail "umount"
    fsck_clean "after both left"
    tail -3 /tmp/fsck
    ;;
b)
    wait_peer_ready
    mount -t marufs -o node=1,lease_ms=$LEASE /dev/dax0.0 $M || fail "mount"
    store_loop b 0 3 || fail "stores before the kill: $(cat /tmp/store.err)"
    touch $M/app/dying-b
    echo "MARUFS-CTL kill b"
    store_loop b 3 100000
    fail "still alive after asking to be killed"
    ;;
esac
log "kill: ok"
