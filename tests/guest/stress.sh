#!/bin/sh
# Several processes create (write() and mmap), publish, read (read() and
# mmap) and unlink keys concurrently, verifying every byte; then the pool
# checks clean with maru-fsck -n.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
fresh_mount "node=4"
mkdir $M/stress || fail "mkdir"
maru-testkit stress $M/stress --procs 4 --ops 150 --max-len $((3 << 20)) --seed 7 || fail "stress"
n=$(ls $M/stress | wc -l)
log "stress: $n keys left"
umount $M || fail "umount"
maru-fsck -n /dev/dax0.0 || fail "maru-fsck -n reported problems (exit $?)"
rmmod marufs || fail "rmmod"
log "stress: ok"
