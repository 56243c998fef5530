#!/bin/sh
# The module loads, registers the filesystem type `marufs`, and unloads cleanly.
. /lib/marufs/guest-lib.sh
set -e
grep -qw marufs /proc/filesystems && fail "marufs registered before insmod"
insmod /lib/modules/marufs.ko
grep -qw marufs /proc/filesystems || fail "marufs not in /proc/filesystems after insmod"
grep -q '^marufs ' /proc/modules || fail "marufs not in /proc/modules"
dmesg | grep -q 'marufs: registering filesystem type' || fail "no registration message in dmesg"
# rmmod is refused while the module is in use, and works after.
rmmod marufs
grep -qw marufs /proc/filesystems && fail "marufs still registered after rmmod"
grep -q '^marufs ' /proc/modules && fail "marufs still loaded after rmmod"
# A second load/unload cycle works too.
insmod /lib/modules/marufs.ko && rmmod marufs
log "module-load: ok"
