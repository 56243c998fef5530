#!/bin/sh
# Takeover time with the default mount options: B takes the cross-host lock
# (test knob, module parameter test_skip=8) and is killed holding it (SIGKILL
# of its QEMU). A, storing keys meanwhile, is blocked by the dead holder
# until it judges B dead (B's lease plus half of it) and takes it over: its
# slowest store is reported and must stay within 2 s of its typical one.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M
load_marufs || fail "insmod"
case $ROLE in
a)
    start_pool
    # A few stores first: the typical store time.
    store_loop t 0 5 || fail "warm-up stores: $(cat /tmp/store.err)"
    typical=$SLOWEST
    wait_pool $M/app/holding-b 300
    dmesg -c >/dev/null
    store_loop a 0 1000 &
    sl=$!
    wait_takeover "$(now_ms)"
    sleep 2
    stop_stores a $sl
    slowest=$(sed 's/.*: \([0-9]*\) ms/\1/' /tmp/slowest-a)
    blocked=$((slowest - typical))
    log "survivor: slowest store ${slowest} ms, warm-up stores at most ${typical} ms: blocked ${blocked} ms by the dead lock holder (default lease; includes up to 0.5 s while B still lived, until the harness killed it)"
    [ $blocked -le 2000 ] || fail "blocked ${blocked} ms by a dead lock holder (more than 2 s)"
    nb=$(verify_visible b)
    na=$(verify_visible a)
    log "$nb keys of B, $na of A visible, all byte-exact"
    fsck_clean "after the takeover"
    mkdir -p /mnt/b
    mount -t marufs -o node=1 /dev/dax0.0 /mnt/b || fail "remount of node 1"
    umount /mnt/b || fail "umount node 1"
    umount $M || fail "umount"
    fsck_clean "after both left"
    tail -2 /tmp/fsck
    ;;
b)
    wait_peer_ready
    mount -t marufs -o node=1 /dev/dax0.0 $M || fail "mount"
    store_loop b 0 2 || fail "stores: $(cat /tmp/store.err)"
    touch $M/app/holding-b
    echo "MARUFS-CTL kill b"
    maru-testkit hold-lock $M/app --ms 600000
    fail "still alive after asking to be killed"
    ;;
esac
log "takeover: ok"
