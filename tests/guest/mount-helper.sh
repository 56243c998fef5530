#!/bin/sh
# mount.marufs, the mount(8) helper: SPEC checks before anything is loaded
# (non-dax sources, unformatted device), module loading through
# $MARUFS_MODULE (busybox modprobe finds nothing under /lib/modules/$(uname -r)),
# mounts by LABEL= and UUID=, fake mode, remount,ro through the helper, kernel
# messages relayed on failure, node= beyond the pool's host slots, corrupt
# superblocks, busybox mount(1) falling back to the helper, and an fstab line.
# Exit codes as mount(8): 1 usage/permission, 32 mount failure.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
D=/dev/dax0.0
mkdir -p $M /mnt/second

# The initramfs has the cargo binary (mount-marufs); mount(8)/busybox look for
# mount.marufs on PATH.
if ! command -v mount.marufs >/dev/null 2>&1; then
    h=$(command -v mount-marufs) || fail "mount-marufs is not in the initramfs (add it to guest_bins in tests/run.sh)"
    ln -s "$h" /sbin/mount.marufs
fi
export MARUFS_MODULE=/lib/modules/marufs.ko

# expect RC "TEXT" ARGS...: mount.marufs ARGS exits RC and says TEXT on stderr.
expect() {
    local want=$1 text=$2 out rc; shift 2
    out=$(mount.marufs "$@" 2>&1 >/dev/null); rc=$?
    [ "$rc" = "$want" ] || { echo "$out"; fail "mount.marufs $*: exit $rc, expected $want"; }
    echo "$out" | grep -qF -- "$text" || { echo "$out"; fail "mount.marufs $*: message lacks '$text'"; }
    log "mount.marufs $* -> $rc: $(echo "$out" | head -n1)"
}
mounted() { grep -q " $1 marufs " /proc/mounts; }

grep -qw marufs /proc/filesystems && fail "marufs loaded before the test"

# --- checks that come before any module loading
expect 32 "/dev/null: is a character device (1:3, subsystem mem), not a device-dax character device" /dev/null $M
: >/tmp/pool.img
expect 32 "/tmp/pool.img: is a regular file" /tmp/pool.img $M
expect 32 "/dev/nonexistent: no such device" /dev/nonexistent $M
expect 32 "$D: no marufs file system on it: run mkfs.marufs $D" $D $M -o node=1
expect 32 "no marufs device with LABEL=kv (looked at $D)" LABEL=kv $M
expect 32 "mount point does not exist" $D /mnt/nonexistent
expect 1 "unknown option 'bogus=1'" $D $M -o bogus=1
expect 1 "node=64 is out of range" $D $M -o node=64
expect 1 "not a UUID" UUID=123 $M
grep -qw marufs /proc/filesystems && fail "the helper loaded the module for a failed check"

# --- format with a label; UUID as mkfs prints it
uuid=$(mkfs.marufs -f -L kv $D | sed -n 's/^marufs \([0-9a-f-]*\) on .*/\1/p')
[ -n "$uuid" ] || fail "no UUID from mkfs.marufs"
log "formatted $D: LABEL=kv UUID=$uuid"

# Fake: every check, no module, no mount.
out=$(mount.marufs -f -v LABEL=kv $M -o node=1) || fail "mount.marufs -f"
echo "$out"
echo "$out" | grep -q "LABEL=kv is $D" || fail "-v does not name the device"
echo "$out" | grep -q "(fake: not done)" || fail "-f did not say it is fake"
mounted $M && fail "-f mounted"

# --- LABEL=: the helper loads the module (modprobe fails here: $MARUFS_MODULE)
mount.marufs -v LABEL=kv $M -o node=1,mode=1777 || fail "mount.marufs LABEL=kv"
grep -qw marufs /proc/filesystems || fail "module not loaded by the helper"
mounted $M || fail "not in /proc/mounts"
grep " $M marufs " /proc/mounts | grep -q "^$D .*node=1" || { cat /proc/mounts; fail "source/options in /proc/mounts"; }
[ "$(stat -c %a $M)" = 1777 ] || fail "mode=1777 not applied: $(stat -c %a $M)"
mkdir $M/app && echo hello >$M/app/greeting || fail "write through the helper's mount"

# Kernel messages are relayed: the same node twice on this host.
expect 32 "already mounted on this host" LABEL=kv /mnt/second -o node=1
expect 32 "kernel: marufs: $D: node 1 of this pool is already mounted" LABEL=kv /mnt/second -o node=1

# --- remount,ro through the helper (no device work)
mount.marufs -v $D $M -o remount,ro || fail "remount,ro"
grep " $M marufs " /proc/mounts | grep -q ' ro[ ,]' || { cat /proc/mounts; fail "not ro after remount"; }
touch $M/app/new 2>/dev/null && fail "created a key on a read-only mount"
[ "$(cat $M/app/greeting)" = hello ] || fail "read after remount,ro"
umount $M || fail "umount"

# --- UUID=, in the printed form and in upper case without dashes
mount.marufs UUID=$uuid $M -o node=2 || fail "mount.marufs UUID=$uuid"
[ "$(cat $M/app/greeting)" = hello ] || fail "key not found after UUID mount"
umount $M
U=$(echo "$uuid" | tr -d - | tr a-f A-F)
mount.marufs -r UUID=$U $M || fail "mount.marufs -r UUID=$U"
grep " $M marufs " /proc/mounts | grep -q ' ro[ ,]' || fail "-r did not mount read-only"
umount $M
expect 32 "no marufs device with UUID=00000000-0000-0000-0000-000000000000" UUID=00000000000000000000000000000000 $M

# --- busybox mount(1): its own mount(2) of LABEL=kv fails, then it runs the helper
mount -t marufs -o node=3 LABEL=kv $M || fail "busybox mount -t marufs LABEL=kv (helper fallback)"
grep " $M marufs " /proc/mounts | grep -q 'node=3' || { cat /proc/mounts; fail "busybox mount via helper"; }
umount $M
# fstab, with the lower-case tag util-linux would pass through to the helper.
echo "label=kv $M marufs node=4,mode=0750 0 0" >/etc/fstab
mount $M || fail "mount $M from /etc/fstab"
grep " $M marufs " /proc/mounts | grep -q 'node=4' || { cat /proc/mounts; fail "fstab mount"; }
[ "$(stat -c %a $M)" = 750 ] || fail "fstab mode=0750 not applied"
umount $M
rm /etc/fstab

# --- util-linux mount(8), when the initramfs has it (as /usr/bin/ul-mount; the
# busybox applet keeps the name mount): it runs /sbin/mount.marufs *before* any
# mount(2) and passes every option; it resolves upper-case LABEL= itself
# (libblkid, which does not know marufs) and fails, the lower-case tag passes.
if [ -x /usr/bin/ul-mount ]; then
    out=$(ul-mount -t marufs -o node=5 LABEL=kv $M 2>&1) && fail "util-linux resolved LABEL=kv: $out"
    log "util-linux LABEL=kv (expected failure): $out"
    ul-mount -t marufs -o node=5,noatime label=kv $M || fail "util-linux mount label=kv"
    grep " $M marufs " /proc/mounts | grep -q 'noatime.*node=5' || { cat /proc/mounts; fail "util-linux options"; }
    ul-mount -o remount,ro $M || fail "util-linux remount,ro"
    grep " $M marufs " /proc/mounts | grep -q ' ro[ ,]' || fail "util-linux: not ro after remount"
    umount $M
    echo "label=kv $M marufs node=6 0 0" >/etc/fstab
    ul-mount $M || fail "util-linux mount $M from /etc/fstab"
    grep " $M marufs " /proc/mounts | grep -q 'node=6' || fail "util-linux fstab mount"
    umount $M
    rm /etc/fstab
    out=$(ul-mount -t marufs /dev/null $M 2>&1); rc=$?
    [ $rc = 32 ] && echo "$out" | grep -q "not a device-dax character device" \
        || { echo "$out"; fail "util-linux: helper error not passed through (exit $rc)"; }
else
    log "util-linux mount not in the initramfs: its checks are skipped"
fi

# --- a pool with 4 host slots: node=5 is refused before mount(2)
mkfs.marufs -q -f --max-hosts 4 -L small $D || fail "mkfs --max-hosts 4"
expect 1 "node=5 is out of range for this pool: it has 4 host slots (node=0..3)" LABEL=small $M -o node=5
mount.marufs LABEL=small $M -o node=3 || fail "node=3 of 4"
umount $M

# --- damaged superblocks (as in mount.sh): primary only -> warning and mount;
# both -> refused with "run maru-fsck".
maru-testkit dax-write $D --offset 128 --len 64 --seed 9 --no-marker
out=$(mount.marufs $D $M 2>&1) || { echo "$out"; fail "mount with the backup superblock"; }
echo "$out" | grep -q "primary superblock is damaged" || { echo "$out"; fail "no backup-superblock warning"; }
umount $M
maru-testkit dax-write $D --offset $(((64 << 10) + 128)) --len 64 --seed 9 --no-marker
expect 32 "both superblocks are corrupt: run maru-fsck $D" $D $M
expect 32 "no marufs device with LABEL=small (looked at $D)" LABEL=small $M
expect 32 "not readable: $D: both superblocks are corrupt" LABEL=small $M

# --- the module cannot be loaded: a clear error
mkfs.marufs -q -f $D || fail "mkfs"
rmmod marufs || fail "rmmod"
MARUFS_MODULE=/nonexistent.ko expect 32 "cannot load the marufs module: /nonexistent.ko" $D $M
(unset MARUFS_MODULE; expect 32 "MARUFS_MODULE is not set" $D $M) || exit 1
grep -qw marufs /proc/filesystems && fail "module loaded unexpectedly"
log "mount-helper: ok"
