#!/bin/sh
# Mounting: clear, distinct failures for a wrong source, unformatted media,
# bad options and corrupt superblocks; a good mount shows in /proc/mounts and
# df; remount,ro; clean umount and rmmod.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M
load_marufs || fail "insmod"

expect_mount_fail() {  # expect_mount_fail "ERRNO TEXT" "DMESG TEXT" mount-args...
    local err=$1 msg=$2; shift 2
    dmesg -c >/dev/null
    if out=$(mount -t marufs "$@" $M 2>&1); then
        umount $M; fail "mount $* succeeded, expected: $err"
    fi
    echo "$out" | grep -q "$err" || fail "mount $*: got '$out', expected '$err'"
    dmesg | grep -q "$msg" || { dmesg | tail -5; fail "mount $*: dmesg lacks '$msg'"; }
    log "refused as expected: mount $* -> $err"
}

expect_mount_fail "No such device" "not a device-dax character device" /dev/null
expect_mount_fail "No such file or directory" "cannot open the device" /dev/nonexistent
expect_mount_fail "Invalid argument" "run mkfs.marufs" /dev/dax0.0
mkfs.marufs -q /dev/dax0.0 || fail "mkfs.marufs"
expect_mount_fail "Invalid argument" "node=99 is out of range" -o node=99 /dev/dax0.0
expect_mount_fail "Invalid argument" "lease_ms=5 is out of range" -o lease_ms=5 /dev/dax0.0
expect_mount_fail "Invalid argument" "marufs: Unknown parameter" -o bogus=1 /dev/dax0.0

mount -t marufs -o node=3,mode=0750,uid=1001,gid=2000 /dev/dax0.0 $M || fail "mount"
grep " $M marufs " /proc/mounts | grep -q 'node=3' || { cat /proc/mounts; fail "/proc/mounts"; }
stat -c '%a %u %g' $M | grep -qx '750 1001 2000' || fail "root attributes: $(stat -c '%a %u %g' $M)"
df -k $M | tail -1 | awk '{ if ($2 < 100000) exit 1 }' || { df -k $M; fail "df size"; }
stat -f -c '%T %S' $M; df -h $M
# The same pool with the same node id twice on one host: refused; with
# another node id it is a second host on this machine.
mkdir -p /mnt/second
expect_mount_fail "Device or resource busy" "already mounted on this host" -o node=3 /dev/dax0.0
mount -t marufs -o node=4 /dev/dax0.0 /mnt/second || fail "second mount as node 4"
umount /mnt/second || fail "umount second"
mount -o remount,ro $M || fail "remount,ro"
grep " $M marufs " /proc/mounts | grep -q ' ro[ ,]' || fail "not ro after remount"
umount $M || fail "umount"

# Primary superblock corrupted (magic intact, checksum wrong): the backup
# mounts, and dmesg says so.
maru-testkit dax-write /dev/dax0.0 --offset 128 --len 64 --seed 9 --no-marker
dmesg -c >/dev/null
mount -t marufs /dev/dax0.0 $M || fail "mount with the backup superblock"
dmesg | grep -q 'mounted with the backup copy' || fail "no backup-superblock message"
umount $M
# Both copies corrupted: refused, "Structure needs cleaning".
maru-testkit dax-write /dev/dax0.0 --offset $(((64 << 10) + 128)) --len 64 --seed 9 --no-marker
expect_mount_fail "Structure needs cleaning" "run maru-fsck" /dev/dax0.0
# Both copies overwritten entirely: no marufs here any more.
maru-testkit dax-write /dev/dax0.0 --offset 0 --len 512 --seed 9 --no-marker
maru-testkit dax-write /dev/dax0.0 --offset $((64 << 10)) --len 512 --seed 9 --no-marker
expect_mount_fail "Invalid argument" "run mkfs.marufs" /dev/dax0.0

rmmod marufs || fail "rmmod"
log "mount: ok"
