#!/bin/sh
# The device under a mount (Documentation/design/kernel.md, "The device").
# 1. Unbinding device_dax from a mounted pool's device waits for the
#    unmount (the mount holds the device's page map, so no struct page that
#    user mappings use is freed under them), the mount says so in dmesg and
#    keeps serving, and the removal completes after umount; rebound, the
#    pool mounts again with its keys intact.
# 2. A namespace aligned to 4 KiB (no 2 MiB folios) mounts with a note in
#    dmesg and maps keys with 4 KiB pages: bytes intact, no oops.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
LEN=$((8 << 20))
fresh_mount
mkdir $M/app || fail "mkdir"
maru-testkit key-write $M/app/k --len $LEN --seed 5 >/dev/null || fail "write k"
drv=/sys/bus/dax/drivers/device_dax
echo dax0.0 > $drv/unbind &
unbind=$!
i=0
until dmesg | grep -q "marufs.*the device is being removed"; do
    i=$((i + 1)); [ $i -gt 100 ] && { dmesg | tail; fail "no word in dmesg of the device's removal"; }
    sleep 0.1
done
sleep 1
kill -0 $unbind 2>/dev/null || fail "the unbind finished while the pool is mounted"
maru-testkit key-verify $M/app/k --len $LEN --seed 5 >/dev/null || fail "k while the removal waits"
log "unbind waits for the mount; the mount still serves k"
umount $M || fail "umount"
i=0
while kill -0 $unbind 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && fail "the unbind did not finish after umount"
    sleep 0.1
done
wait $unbind || fail "unbind failed"
[ -e /sys/bus/dax/devices/dax0.0/driver ] && fail "dax0.0 still bound after the unbind"
mount -t marufs /dev/dax0.0 $M 2>/dev/null && fail "mounted an unbound device"
echo dax0.0 > $drv/bind || fail "bind"
wait_for /sys/bus/dax/devices/dax0.0/driver 30 || fail "dax0.0 did not come back"
mount -t marufs /dev/dax0.0 $M || fail "mount after rebind"
maru-testkit key-verify $M/app/k --len $LEN --seed 5 >/dev/null || fail "k after rebind"
umount $M || fail "umount after rebind"
log "unbind finished after umount; rebound, k intact"

# 2. A 4 KiB-aligned namespace.
ndctl destroy-namespace -f namespace0.0 >/dev/null 2>&1 || fail "destroy-namespace"
ndctl create-namespace -f -e namespace0.0 -m devdax -a 4K -M mem >/dev/null || fail "create-namespace -a 4K"
wait_for /dev/dax0.0 30 || fail "dax0.0 (4K) did not appear"
mkfs.marufs -q -f /dev/dax0.0 || fail "mkfs 4K"
dmesg -c >/dev/null
mount -t marufs /dev/dax0.0 $M || fail "mount 4K"
dmesg | grep -q "marufs.*4 KiB" || { dmesg | tail; fail "no note of 4 KiB mappings in dmesg"; }
mkdir $M/app || fail "mkdir 4K"
maru-testkit key-write $M/app/k --len $LEN --seed 6 > /tmp/w || fail "write 4K"
maru-testkit key-verify $M/app/k --len $LEN --seed 6 > /tmp/v || fail "verify 4K"
faults=$(sed -n 's/.* \([0-9]*\) faults.*/\1/p' /tmp/v)
[ "$faults" -ge $((LEN / 4096)) ] || fail "4K namespace: $faults faults for $LEN bytes: not 4 KiB mappings?"
umount $M || fail "umount 4K"
log "4K-aligned namespace: mounted, $faults faults of 4 KiB for $LEN bytes, bytes intact"
rmmod marufs
log "device: ok"
