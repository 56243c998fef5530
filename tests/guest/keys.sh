#!/bin/sh
# Namespace and keys on one host: application directories, keys created by
# shell redirection and cp, publish on close, immutability, read back,
# stat/ls/df, unlink, rmdir, and the errnos of the common mistakes.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
fresh_mount "node=1"

mkdir $M/app1 || fail "mkdir app1"
mkdir $M/app2 || fail "mkdir app2"
mkdir $M/app1 2>/dev/null && fail "mkdir of an existing directory succeeded"
ls $M | tr '\n' ' ' | grep -q 'app1 app2' || fail "ls root: $(ls $M)"
mkdir $M/app1/sub 2>/dev/null && fail "nested directory accepted"
echo x > $M/rootkey 2>/dev/null && fail "key created in the root"

# Shell redirection and cp create keys; they are published on close.
echo "hello marufs" > $M/app1/greeting || fail "redirect"
[ "$(cat $M/app1/greeting)" = "hello marufs" ] || fail "read back: $(cat $M/app1/greeting)"
dd if=/dev/urandom of=/tmp/blob bs=1M count=5 2>/dev/null
cp /tmp/blob $M/app1/blob || fail "cp"
cmp /tmp/blob $M/app1/blob || fail "blob differs"
[ "$(stat -c %s $M/app1/blob)" = 5242880 ] || fail "size $(stat -c %s $M/app1/blob)"
ls -l $M/app1

# A read-only mount (another mount = another node) reads published keys.
mkdir -p /mnt/ro
mount -t marufs -o ro,node=9 /dev/dax0.0 /mnt/ro || fail "read-only mount"
cmp /tmp/blob /mnt/ro/app1/blob || fail "read-only mount reads differently"
echo x > /mnt/ro/app1/new 2>/dev/null && fail "create on a read-only mount"
umount /mnt/ro || fail "umount ro"

# Published keys are immutable.
echo more >> $M/app1/greeting 2>/dev/null && fail "append to a published key"
echo again > $M/app1/greeting 2>/dev/null && fail "overwrite of a published key"
truncate -s 0 $M/app1/greeting 2>/dev/null && fail "truncate of a published key"
[ "$(cat $M/app1/greeting)" = "hello marufs" ] || fail "published key changed"

# fallocate sizes a new key (zero-filled); a published key cannot grow.
fallocate -l $((3 << 20)) $M/app1/prealloc || fail "fallocate"
[ "$(stat -c %s $M/app1/prealloc)" = $((3 << 20)) ] || fail "fallocate size $(stat -c %s $M/app1/prealloc)"
head -c $((3 << 20)) /dev/zero | cmp - $M/app1/prealloc || fail "fallocated key not zero-filled"
fallocate -l $((4 << 20)) $M/app1/prealloc 2>/dev/null && fail "fallocate grew a published key"
rm $M/app1/prealloc

# Empty key via touch; O_EXCL on an existing name.
touch $M/app1/empty || fail "touch"
[ "$(stat -c %s $M/app1/empty)" = 0 ] || fail "empty size"

# Directory errors and unlink.
rmdir $M/app1 2>/dev/null && fail "rmdir of a non-empty directory"
rm $M/app1/greeting $M/app1/blob $M/app1/empty || fail "rm"
[ -z "$(ls $M/app1)" ] || fail "app1 not empty: $(ls $M/app1)"
cat $M/app1/greeting 2>/dev/null && fail "unlinked key still readable"
rmdir $M/app1 || fail "rmdir"
rmdir $M/app2 || fail "rmdir app2"
used=$(df -k $M | tail -1 | awk '{print $3}')
[ "$used" = 0 ] || { df -k $M; fail "space not returned: $used kB used"; }
umount $M || fail "umount"

# write() honours RLIMIT_FSIZE (generic_write_checks): a key written under
# `ulimit -f 4` (2048 bytes) stops there (SIGXFSZ/EFBIG) and is published
# with what was written; O_APPEND writes go to the end.
mount -t marufs /dev/dax0.0 $M || fail "mount for write checks"
mkdir $M/wc || fail "mkdir wc"
(ulimit -f 4; dd if=/dev/zero of=$M/wc/fsz bs=4096 count=2 2>/dev/null) && fail "a write past RLIMIT_FSIZE succeeded"
[ "$(stat -c %s $M/wc/fsz)" = 2048 ] || fail "RLIMIT_FSIZE: size $(stat -c %s $M/wc/fsz), want 2048"
maru-testkit append-check $M/wc/ap || fail "O_APPEND"
rm -r $M/wc || fail "rm wc"
umount $M || fail "umount after write checks"

# The heartbeat keeps the lease: changes still work after several leases.
mount -t marufs -o node=1,lease_ms=2000 /dev/dax0.0 $M || fail "mount lease_ms=2000"
sleep 7
mkdir $M/later || fail "mkdir after 3.5 leases: $(dmesg | tail -3)"
echo late > $M/later/k || fail "key after 3.5 leases: $(dmesg | tail -3)"
rm $M/later/k && rmdir $M/later || fail "cleanup"
umount $M || fail "umount"
rmmod marufs || fail "rmmod"
log "keys: ok"
