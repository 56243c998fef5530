#!/bin/sh
# A host stops for longer than its lease (SIGSTOP of its QEMU: vCPUs and
# devices stop; its clock jumps on resume) while it stores keys. The
# survivor A keeps storing, fences B and takes it over. When B resumes it
# must write nothing more: its mount says it lost its lease, its mappings
# are revoked (SIGBUS), opens and stores fail cleanly. B's published keys
# stay byte-exact, no unpublished name is visible, fsck is clean.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
LEASE=3000
STOP=12
mkdir -p $M
load_marufs || fail "insmod"
case $ROLE in
a)
    start_pool lease_ms=$LEASE
    wait_pool $M/app/stopping-b 300
    dmesg -c >/dev/null
    t0=$(now_ms)
    # Store while B is stopped, until A has taken B over (and a few more).
    store_loop a 0 1000 &
    sl=$!
    wait_takeover $t0
    log "took B over ${TOOK} ms after B asked to be stopped (lease ${LEASE} ms)"
    # B resumes STOP s after it asked; give it time to check itself.
    sleep $((STOP + 15))
    stop_stores a $sl

    # Every b-* name visible is a published key of B's, byte-exact.
    nb=$(verify_visible b)
    [ "$nb" -ge 3 ] || peer_fail "only $nb of B's keys are visible (B stored 3 before the stop)"
    na=$(verify_visible a)
    log "after the takeover: $nb keys of B and $na of A visible, all byte-exact"
    maru-testkit key-write $M/app/last --len $((2 << 20)) --seed 7 >/dev/null || fail "store after B resumed"
    fsck_clean "after the takeover"
    cat /tmp/fsck
    # The fenced host never writes its slot again (not even at its umount):
    # its node is taken back by a new incarnation, here a second mount.
    mkdir -p /mnt/b
    mount -t marufs -o node=1,lease_ms=$LEASE /dev/dax0.0 /mnt/b || fail "remount of node 1"
    dmesg | grep "as node 1" | tail -1
    umount /mnt/b || fail "umount node 1"
    umount $M || fail "umount"
    fsck_clean "after umount"
    tail -3 /tmp/fsck
    ;;
b)
    wait_peer_ready
    mount -t marufs -o node=1,lease_ms=$LEASE /dev/dax0.0 $M || fail "mount"
    store_loop b 0 3 || fail "stores before the stop: $(cat /tmp/store.err)"
    # A mapping of a published key, held across the stop.
    maru-testkit map-hold $M/app/b-0 --map-len $((2 << 20)) --wait /tmp/go > /tmp/hold 2>&1 &
    hold=$!
    until grep -q mapped /tmp/hold; do sleep 0.1; done
    dmesg -c >/dev/null
    touch $M/app/stopping-b
    echo "MARUFS-CTL stop b $STOP"
    # Go on storing: the stop lands somewhere in here.
    if store_loop b 3 1000; then fail "B stored 1000 keys: never stopped?"; fi
    log "a store failed after the stop ($STORED stored first): $(cat /tmp/store.err)"
    # The next heartbeat tick (lease/4) says so and revokes the mappings.
    i=0
    until dmesg | grep -q "mapping of the pool on this host is revoked"; do
        i=$((i + 1)); [ $i -gt 100 ] && { dmesg | tail; fail "mappings were not revoked"; }
        sleep 0.1
    done
    dmesg | grep marufs | tail -5
    dmesg | grep -q "lost its lease" || fail "the mount did not report the lost lease"
    touch /tmp/go
    wait $hold; rc=$?
    cat /tmp/hold
    [ $rc = 135 ] || fail "the held mapping read on after the fence (exit $rc, want 135: SIGBUS)"
    if cat $M/app/b-1 > /dev/null 2>/tmp/open.err; then fail "open after the fence succeeded"; fi
    log "open after the fence: $(cat /tmp/open.err)"
    if maru-testkit key-write $M/app/zombie --len $((2 << 20)) --seed 9 >/dev/null 2>&1; then
        fail "a store after the fence succeeded"
    fi
    log "resumed host: lease lost, mapping revoked (SIGBUS), open and store refused"
    umount $M || fail "umount"
    ;;
esac
log "stall: ok"
