#!/bin/sh
# Entries whose checksums are right but whose extents are not (a buggy or
# hostile peer kernel, a torn write the CRC missed): an extent past the data
# area, at unit 2^32-1, across a chunk, of 2^32-1 units, or a size beyond the
# units. Forged while mounted and again across a remount: open/read/mmap of
# the key get EUCLEAN (never a mapping of anything else, never an oops: the
# harness checks dmesg), the kernel says so in dmesg, the other key is intact,
# and maru-fsck reports and repairs it.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
LEN=$((3 << 20))
OLEN=$((1 << 20))
refused() {  # refused WHAT: every access to the victim fails cleanly
    if cat $M/app/victim >/dev/null 2>/tmp/cat.err; then fail "$1: cat of the forged key succeeded"; fi
    grep -q "Structure needs cleaning" /tmp/cat.err || { cat /tmp/cat.err; fail "$1: cat: not EUCLEAN"; }
    # Touch the first and the last byte through a mapping: the open or the
    # mmap fails with EUCLEAN, or the fault is SIGBUS (exit 135); a byte read
    # back would be memory the key does not own.
    for off in 0 $((LEN - 1)); do
        maru-testkit touch $M/app/victim --map-len $LEN --offset $off >/tmp/t.out 2>&1; rc=$?
        case $rc in
            135) ;;
            0) cat /tmp/t.out; fail "$1: byte $off of the forged key was mapped" ;;
            *) grep -q "Structure needs cleaning" /tmp/t.out || { cat /tmp/t.out; fail "$1: touch $off exit $rc"; } ;;
        esac
    done
    maru-testkit key-verify $M/app/other --len $OLEN --seed 6 >/dev/null || fail "$1: the other key is damaged"
}
for case in past-end u32-max across-chunk huge-count big-size; do
    fresh_mount "node=3"
    mkdir $M/app || fail "mkdir"
    maru-testkit key-write $M/app/victim --len $LEN --seed 5 >/dev/null || fail "key-write victim"
    maru-testkit key-write $M/app/other --len $OLEN --seed 6 >/dev/null || fail "key-write other"
    dmesg -c >/dev/null
    maru-testkit entry-forge /dev/dax0.0 --key $M/app/victim --case $case || fail "$case: forge"
    refused "$case (live)"
    dmesg | grep -q "marufs.*run maru-fsck" || { dmesg | tail; fail "$case: nothing said in dmesg"; }
    umount $M || fail "$case: umount"
    mount -t marufs -o node=3 /dev/dax0.0 $M || fail "$case: remount"
    refused "$case (remounted)"
    umount $M || fail "$case: umount 2"
    maru-fsck -n /dev/dax0.0 >/tmp/fsck.out 2>&1; rc=$?
    [ $rc = 4 ] || { cat /tmp/fsck.out; fail "$case: maru-fsck -n exit $rc, want 4"; }
    grep -q "outside the data area or across chunks\|size larger than its allocated units" /tmp/fsck.out ||
        { cat /tmp/fsck.out; fail "$case: fsck did not name the bad extent"; }
    maru-fsck -y /dev/dax0.0 >/tmp/fsck.out 2>&1; rc=$?
    [ $rc -le 1 ] || { cat /tmp/fsck.out; fail "$case: maru-fsck -y exit $rc"; }
    maru-fsck -n /dev/dax0.0 >/tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; fail "$case: not clean after repair"; }
    mount -t marufs -o node=3 /dev/dax0.0 $M || fail "$case: mount after repair"
    maru-testkit key-verify $M/app/other --len $OLEN --seed 6 >/dev/null || fail "$case: other key after repair"
    [ ! -e $M/app/victim ] || [ "$(stat -c %s $M/app/victim 2>/dev/null)" != "" ] || fail "$case: victim half-there"
    umount $M || fail "$case: umount 3"
    log "badextent $case: refused (EUCLEAN), said in dmesg, fsck repaired"
done
rmmod marufs || fail "rmmod"
log "badextent: ok"
