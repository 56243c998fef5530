#!/bin/sh
# Zero-copy mappings: a 32 MiB key is written through a shared writable
# mapping by its creator, published on close, then read through a read-only
# mapping with at most 16 (+slack) faults (2 MiB mappings), resident, pinnable
# (process_vm_readv = get_user_pages). Refusals: write-open, MAP_PRIVATE,
# SIGBUS past the end.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
fresh_mount "node=2"
mkdir $M/kv || fail "mkdir"
LEN=$((32 << 20))
maru-testkit key-write $M/kv/chunk0 --len $LEN --seed 11 || fail "key-write"
maru-testkit key-verify $M/kv/chunk0 --len $LEN --seed 11 --max-faults 20 --expect-resident || fail "key-verify"
# read() path agrees with the mapping.
maru-testkit key-write $M/kv/small --len $((1 << 20)) --seed 12 || fail "key-write small"
maru-testkit key-verify $M/kv/small --len $((1 << 20)) --seed 12 || fail "key-verify small"
maru-testkit key-refusals $M/kv/small || fail "refusals"
# A second key reuses nothing of the first; both still verify.
maru-testkit key-verify $M/kv/chunk0 --len $LEN --seed 11 || fail "re-verify"
rm $M/kv/chunk0 $M/kv/small
# Space comes back once the last open/mapping is gone.
used=$(df -k $M | tail -1 | awk '{print $3}')
[ "$used" = 0 ] || { df -k $M; fail "space not returned after unlink: $used kB used"; }
umount $M || fail "umount"
rmmod marufs || fail "rmmod"
log "mmap: ok"
