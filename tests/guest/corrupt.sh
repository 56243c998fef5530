#!/bin/sh
# Corrupted media: random bytes over each metadata area in turn (superblock
# copies, host table, registry, journals, holds, directories, chunks, index,
# entries), before mount and while mounted. Mount refuses cleanly or the
# damage stays confined: every operation returns an error or works, the
# kernel never oopses (the harness checks dmesg), and maru-fsck -y repairs
# the pool so that a second maru-fsck -n is clean.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M
load_marufs || fail "insmod"

populate() {
    mkfs.marufs -q -f /dev/dax0.0 || fail "mkfs"
    mount -t marufs -o node=6,lease_ms=1000 /dev/dax0.0 $M || fail "mount fresh"
    mkdir $M/app
    for k in 0 1 2; do maru-testkit key-write $M/app/k$k --len 65536 --seed $k >/dev/null || fail "key $k"; done
}
exercise() {  # every call may fail; none may crash the kernel
    ls -la $M $M/app >/dev/null 2>&1
    for k in 0 1 2; do cat $M/app/k$k >/dev/null 2>&1; maru-testkit key-verify $M/app/k$k --len 65536 --seed $k >/dev/null 2>&1; done
    echo new > $M/app/new 2>/dev/null
    rm -f $M/app/k0 2>/dev/null
    mkdir $M/x 2>/dev/null; rmdir $M/x 2>/dev/null
    df $M >/dev/null 2>&1
}
repair() {
    maru-fsck -y /dev/dax0.0 >/tmp/fsck.out 2>&1; rc=$?
    [ $rc -le 1 ] || { cat /tmp/fsck.out; fail "maru-fsck -y exit $rc at $1"; }
    maru-fsck -n /dev/dax0.0 >/tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; fail "not clean after repair at $1"; }
}

for off in 128 4096 $((64 << 10)) $((128 << 10)) $((256 << 10)) $((512 << 10)) \
           $((1 << 20)) $((2 << 20)) $((3 << 20)) $((4 << 20)) $((6 << 20)) $((8 << 20)); do
    populate
    umount $M
    maru-testkit dax-write /dev/dax0.0 --offset $off --len 4096 --seed $off --no-marker >/dev/null
    dmesg -c >/dev/null
    if mount -t marufs -o node=6,lease_ms=1000 /dev/dax0.0 $M 2>/dev/null; then
        exercise
        umount $M || fail "umount after corruption at $off"
        log "corruption at $off: mounted, damage confined"
    else
        log "corruption at $off: mount refused: $(dmesg | grep marufs | tail -1)"
    fi
    repair $off
done

# Corruption while mounted: the next operations fail or work, nothing crashes.
for off in $((1 << 20)) $((4 << 20)); do
    populate
    maru-testkit dax-write /dev/dax0.0 --offset $off --len 65536 --seed 3 --no-marker >/dev/null
    exercise
    umount $M || fail "umount after live corruption at $off"
    repair "live $off"
    log "live corruption at $off: confined"
done
rmmod marufs || fail "rmmod"
log "corrupt: ok"
