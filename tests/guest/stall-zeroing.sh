#!/bin/sh
# A host stops (SIGSTOP of its QEMU, longer than its lease) in the middle of
# zeroing a large new key (the test knob test_skip=16 makes each 2 MiB unit
# take 500 ms, so the stop lands inside the loop, and almost always in the
# sleep between two units rather than inside one unit's zeroing: software
# fencing cannot stop the rest of a unit whose zeroing the stop interrupted
# (protocol.md, "The timing bound"); at 100 ms per unit a run failed that
# way, A's key zeroed from the middle of one unit). The survivor A takes it
# over, which frees the key's units, and fills the pool with its own keys,
# reusing them. When B resumes, its zeroing must stop at once (the lease and
# fence are checked before each unit) and its truncate fail: every key of
# A's stays byte-exact. Without the per-unit check B zeroed the rest of the
# key's units, now A's keys.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
LEASE=3000
STOP=75
FILL=$((32 << 20))
BIG=$((128 << 20))
mkdir -p $M
load_marufs || fail "insmod"
case $ROLE in
a)
    start_pool lease_ms=$LEASE
    wait_pool $M/app/stopping-b 300
    dmesg -c >/dev/null
    t0=$(now_ms)
    wait_takeover $t0
    log "took B over ${TOOK} ms after B asked to be stopped (lease ${LEASE} ms)"
    df -m $M | tail -1
    # Fill the pool, all of it before B resumes: B's big key's units are
    # reused by A's keys (32 MiB each; the last ones smaller).
    n=0 len=$FILL
    while [ $len -ge $((2 << 20)) ]; do
        if maru-testkit key-write $M/app/fill-$n --len $len --seed $((100 + n)) >/dev/null 2>/tmp/store.err; then
            echo "$n $len" >> /tmp/fills; n=$((n + 1))
        else
            grep -qi "space" /tmp/store.err || fail "the fill stopped with: $(cat /tmp/store.err)"
            len=$((len / 2))
        fi
    done
    el=$(($(now_ms) - t0))
    log "filled the pool with $n keys of A's, $el ms after B asked to be stopped"
    [ $el -lt $((STOP * 1000 - 5000)) ] || fail "the fill took $el ms: B may have resumed during it (inconclusive; raise STOP)"
    # B resumes STOP s after it asked; give it time to run on (a zombie
    # zeroing would go on for half a minute: 15 s of it reach 30 units).
    sleep $(( (STOP * 1000 - el) / 1000 + 15 ))
    while read -r i len; do
        maru-testkit key-verify $M/app/fill-$i --len $len --seed $((100 + i)) >/dev/null \
            || peer_fail "A's key fill-$i is not byte-exact after B resumed"
    done < /tmp/fills
    log "after B resumed: all $n of A's keys byte-exact"
    fsck_clean "after the takeover"
    umount $M || fail "umount"
    ;;
b)
    wait_peer_ready
    mount -t marufs -o node=1,lease_ms=$LEASE /dev/dax0.0 $M || fail "mount"
    dmesg -c >/dev/null
    # The zeroing of a 64-unit key takes 32 s here; the stop lands in it.
    ( truncate -s $BIG $M/app/big 2>/tmp/trunc.err; echo $? > /tmp/trunc.rc ) &
    sleep 1
    touch $M/app/stopping-b
    echo "MARUFS-CTL stop b $STOP"
    wait
    rc=$(cat /tmp/trunc.rc)
    log "truncate of the big key: exit $rc: $(cat /tmp/trunc.err)"
    [ "$rc" != 0 ] || fail "the truncate finished: its zeroing ran on after the fence"
    i=0
    until dmesg | grep -q "lost its lease"; do
        i=$((i + 1)); [ $i -gt 100 ] && { dmesg | tail; fail "the mount did not report the lost lease"; }
        sleep 0.1
    done
    dmesg | grep marufs | tail -3
    log "resumed host: the zeroing stopped, the truncate failed"
    umount $M || fail "umount"
    ;;
esac
log "stall-zeroing: ok"
