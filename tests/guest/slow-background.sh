#!/bin/sh
# Zeroing ahead of use runs beside the heartbeat, not in it: with every unit
# zeroed ahead taking 2.5 leases (test_skip=32), the mount renews its lease
# throughout and keeps writing. Fails if the heartbeat waits for the zeroing
# (its renewal then comes 2.5 leases late and the host judges its own lease
# lost).
. /lib/marufs/guest-lib.sh
M=/mnt/maru
LEASE=1000
fresh_mount "node=0,lease_ms=$LEASE"
mkdir $M/app || fail "mkdir"
dmesg -c >/dev/null
# A key takes this host's first chunk: its free units are zeroed ahead.
maru-testkit key-write $M/app/k0 --len $((2 << 20)) --seed 1 || fail "k0"
i=0
until dmesg | grep -q "zeroing ahead takes"; do
    i=$((i + 1)); [ $i -gt 600 ] && fail "zeroing ahead never ran"
    sleep 0.1
done
t0=$(now_ms)
# Four slowed units, ten leases.
sleep 10
dmesg | grep marufs
dmesg | grep -q "lost its lease" && fail "the mount lost its lease while zeroing ahead ($(( $(now_ms) - t0 )) ms)"
maru-testkit key-write $M/app/k1 --len $((4 << 20)) --seed 2 || fail "k1 after 10 leases of slow zeroing"
maru-testkit key-verify $M/app/k0 --len $((2 << 20)) --seed 1 || fail "k0 verify"
maru-testkit key-verify $M/app/k1 --len $((4 << 20)) --seed 2 || fail "k1 verify"
umount $M || fail "umount"
maru-fsck -n /dev/dax0.0 || fail "fsck"
log "slow-background: ok"
