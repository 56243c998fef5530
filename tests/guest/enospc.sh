#!/bin/sh
# Filling the pool: the key that does not fit fails with ENOSPC and leaves
# nothing behind; every earlier key still reads back intact.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
fresh_mount
mkdir $M/fill
i=0
while maru-testkit key-write $M/fill/k$i --len $((32 << 20)) --seed $i >/tmp/out 2>&1; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "pool never filled"
done
grep -q "No space left on device" /tmp/out || fail "key $i failed without ENOSPC: $(cat /tmp/out)"
log "pool full after $i keys of 32 MiB"
[ -e $M/fill/k$i ] && fail "the failed key is visible"
j=0
while [ $j -lt $i ]; do
    maru-testkit key-verify $M/fill/k$j --len $((32 << 20)) --seed $j >/dev/null || fail "key $j damaged"
    j=$((j + 1))
done
rm $M/fill/k0
maru-testkit key-write $M/fill/again --len $((32 << 20)) --seed 99 || fail "space not reusable after unlink"
umount $M || fail "umount"
rmmod marufs
log "enospc: ok"
