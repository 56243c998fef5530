#!/bin/sh
# Two hosts with the same node= (a copied fstab line): A mounts node 0 and
# stores a key; B's mount with node=0 must be refused with EBUSY and a dmesg
# line naming the node, having written nothing (A's keys and epoch intact,
# fsck clean); B then mounts with node=1 and reads A's key. While both are
# mounted, maru-fsck -y and mkfs.marufs -f refuse the live pool and
# maru-fsck -n reports both hosts as in use.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M
load_marufs || fail "insmod"
fail() { peer_fail "$@"; }
wait_path() { wait_pool "$@"; }
case $ROLE in
a)
    mkfs.marufs -q /dev/dax0.0 || fail "mkfs"
    mount -t marufs -o node=0 /dev/dax0.0 $M || fail "mount"
    mkdir $M/app || fail "mkdir"
    maru-testkit key-write $M/app/k --len $((4 << 20)) --seed 5 >/dev/null || fail "write k"
    touch $M/app/ready
    wait_path $M/app/b-done 300
    # Tools respect the live pool (A and B are mounted): no repair, no
    # format; a check reports both hosts as in use, not as problems.
    maru-fsck -y /dev/dax0.0 > /tmp/fsck 2>&1; rc=$?
    cat /tmp/fsck
    [ $rc = 8 ] || fail "maru-fsck -y on a live pool: exit $rc, want 8"
    grep -q "node 0, node 1 are using the pool" /tmp/fsck || fail "fsck -y did not name the live nodes"
    maru-fsck -n /dev/dax0.0 > /tmp/fsck 2>&1 || { cat /tmp/fsck; fail "maru-fsck -n on a live pool"; }
    cat /tmp/fsck
    grep -q "in use by node 0, node 1" /tmp/fsck || fail "fsck -n did not report the live hosts"
    grep -q -- "-y" /tmp/fsck && fail "fsck -n on a live pool suggests -y"
    mkfs.marufs -q -f /dev/dax0.0 > /tmp/mkfs 2>&1 && fail "mkfs -f formatted a live pool"
    cat /tmp/mkfs
    grep -q "in use by node 0, node 1" /tmp/mkfs || fail "mkfs did not name the live nodes"
    log "fsck -y, fsck -n and mkfs -f respect the live pool"
    # Still node 0, same epoch, keys intact; a create still works.
    dmesg | grep "mounted pool" | tail -1
    maru-testkit key-verify $M/app/k --len $((4 << 20)) --seed 5 >/dev/null || fail "k after B's refused mount"
    maru-testkit key-write $M/app/k2 --len $((2 << 20)) --seed 6 >/dev/null || fail "create after B's refused mount"
    maru-testkit key-verify $M/app/from-b --len $((2 << 20)) --seed 8 >/dev/null || fail "B's key"
    touch $M/app/a-done
    wait_path $M/app/b-leaving 120
    umount $M || fail "umount"
    # B unmounts meanwhile: fsck -n is clean once B's slot says it left.
    i=0
    until maru-fsck -n /dev/dax0.0 > /tmp/fsck 2>&1; do
        i=$((i + 1)); [ $i -gt 30 ] && { cat /tmp/fsck; fail "fsck -n"; }
        sleep 1
    done
    ;;
b)
    # Wait for A's mount to be visible (read-only peeks are fine).
    i=0
    until mount -t marufs -o ro /dev/dax0.0 $M 2>/dev/null && [ -e $M/app/ready ]; do
        umount $M 2>/dev/null
        i=$((i + 1)); [ $i -gt 240 ] && fail "A never got ready"
        sleep 1
    done
    umount $M || fail "umount ro"
    dmesg -c >/dev/null
    t0=$(cut -d' ' -f1 /proc/uptime)
    if out=$(mount -t marufs -o node=0 /dev/dax0.0 $M 2>&1); then
        fail "a second host mounted node=0 while A uses it"
    fi
    ms=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%d", (b - a) * 1000 }')
    echo "$out"
    echo "$out" | grep -qi "busy" || fail "mount error is not EBUSY: $out"
    echo "$out" | grep -q "another host is using node=0" || echo "$out" | grep -qi "resource busy" \
        || fail "mount's message does not say another host may use node=0: $out"
    dmesg | grep "marufs" | tail -3
    dmesg | grep -q "node 0 is in use by another host" || fail "no dmesg line naming node 0"
    log "second mount with node=0 refused after $ms ms (EBUSY)"
    mount -t marufs -o node=1 /dev/dax0.0 $M || fail "mount node=1"
    maru-testkit key-verify $M/app/k --len $((4 << 20)) --seed 5 >/dev/null || fail "A's key from B"
    maru-testkit key-write $M/app/from-b --len $((2 << 20)) --seed 8 >/dev/null || fail "write from b"
    touch $M/app/b-done
    wait_path $M/app/a-done 120
    touch $M/app/b-leaving
    umount $M || fail "umount"
    ;;
esac
log "dup-node: ok"
