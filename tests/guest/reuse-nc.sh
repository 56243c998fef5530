#!/bin/sh
# A reused unit on another host (run in the non-coherent test mode): B reads
# key X (its cache now holds X's lines), X is deleted, A stores key Y into
# X's units; B reads Y by cat (read()), by read() at an offset (dd) and by
# mmap: B sees Y's bytes, never X's.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M
load_marufs || fail "insmod"
LEN=$((4 << 20))
fail() { peer_fail "$@"; }
wait_path() { wait_pool "$@"; }
case $ROLE in
a)
    mkfs.marufs -q /dev/dax0.0 || fail "mkfs"
    mount -t marufs -o node=0 /dev/dax0.0 $M || fail "mount"
    mkdir $M/app || fail "mkdir"
    maru-testkit key-write $M/app/x --len $LEN --seed 1 >/dev/null || fail "write x"
    md5sum < $M/app/x | cut -d' ' -f1 > $M/app/sum-x || fail "sum x"
    maru-testkit key-units /dev/dax0.0 --key $M/app/x > /tmp/units-x || fail "units x"
    touch $M/app/ready-x
    wait_path $M/app/b-read-x
    rm $M/app/x || fail "rm x"
    maru-testkit key-write $M/app/y --len $LEN --seed 2 >/dev/null || fail "write y"
    maru-testkit key-units /dev/dax0.0 --key $M/app/y > /tmp/units-y || fail "units y"
    shared=$(sort /tmp/units-x /tmp/units-y | uniq -d | wc -l)
    [ "$shared" -gt 0 ] || fail "y got none of x's units ($(tr '\n' ' ' </tmp/units-x) / $(tr '\n' ' ' </tmp/units-y)): nothing shown"
    log "y reuses $shared of x's units"
    md5sum < $M/app/y | cut -d' ' -f1 > $M/app/sum-y || fail "sum y"
    touch $M/app/ready-y
    wait_path $M/app/b-done
    umount $M || fail "umount"
    ;;
b)
    i=0
    until mount -t marufs -o node=1 /dev/dax0.0 $M 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 240 ] && fail "could not mount the shared pool"
        sleep 1
    done
    wait_path $M/app/ready-x
    [ "$(md5sum < $M/app/x | cut -d' ' -f1)" = "$(cat $M/app/sum-x)" ] || fail "x by read()"
    maru-testkit key-verify $M/app/x --len $LEN --seed 1 >/dev/null || fail "x by mmap"
    touch $M/app/b-read-x
    wait_path $M/app/ready-y
    cat $M/app/y > /tmp/y || fail "cat y"
    [ "$(md5sum < /tmp/y | cut -d' ' -f1)" = "$(cat $M/app/sum-y)" ] || fail "y by read(): not y's bytes"
    # read() at an offset, in the middle of the second unit.
    dd if=/tmp/y bs=4096 skip=700 count=8 2>/dev/null > /tmp/y-ref
    dd if=$M/app/y bs=4096 skip=700 count=8 2>/dev/null | cmp - /tmp/y-ref || fail "y by dd at an offset"
    maru-testkit key-verify $M/app/y --len $LEN --seed 2 >/dev/null || fail "y by mmap: not y's bytes"
    log "B reads y's bytes (cat, dd, mmap) in the units it had cached for x"
    touch $M/app/b-done
    umount $M || fail "umount"
    ;;
esac
log "reuse-nc: ok"
