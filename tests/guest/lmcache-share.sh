#!/bin/sh
# LMCache in two guests (tests/guest/lmcache_share.py, run by LMCache's own
# environment from /dev/vda): A stores chunks, B retrieves and checks them and
# stores its own, A retrieves B's. fsck clean at the end.
. /lib/marufs/guest-lib.sh
M=/mnt/maru R=/sysroot
mkdir -p $M $R
load_marufs || fail "insmod"
mount -t ext4 -o ro /dev/vda $R || fail "mount LMCache's root image (/dev/vda)"
mount -t proc proc $R/proc && mount -t sysfs sysfs $R/sys && mount -o bind /dev $R/dev \
    && mount -t tmpfs tmpfs $R/tmp || fail "mounts in LMCache's root"
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm || fail "/dev/shm"
busybox ifconfig lo 127.0.0.1 up || fail "loopback"
# The tree's marufs package (from the initramfs) and the test.
mkdir -p $R/tmp/py && cp -r /usr/lib/python3/dist-packages/marufs $R/tmp/py/ \
    && cp /tests/lmcache_share.py /tests/lmc_util.py $R/tmp/py/ || fail "copy the test into LMCache's root"
# LMCache's log goes to a file, shown when the step fails: its "WARNING:"
# lines would read as kernel warnings to the log checker, so they are
# shown as "WARNING -". PYTHONHASHSEED: LMCache's token hashes must agree
# between processes (and hosts); it asks for a fixed seed.
lmc() {  # lmc STEP: the Python half, chrooted into LMCache's root
    env -i PATH=/usr/bin HOME=/tmp PYTHONPATH=/tmp/py PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
        PYTHONHASHSEED=0 LMCACHE_LOG_LEVEL=WARNING ROLE=$ROLE \
        chroot $R /venv/bin/python /tmp/py/lmcache_share.py "$1" /mnt 2>/tmp/lmc-$1.log && return 0
    sed 's/WARNING:/WARNING -/g; s/^/    | /' /tmp/lmc-$1.log
    return 1
}
case $ROLE in
a)
    start_pool
    mount -o bind $M $R/mnt || fail "bind the pool into LMCache's root"
    lmc store || peer_fail "LMCache store"
    touch $M/app/a-stored
    wait_pool $M/app/b-done 1200 || fail "B never finished"
    lmc readback || fail "LMCache readback"
    umount $R/mnt && umount $M || fail "umount"
    maru-fsck -n /dev/dax0.0 || fail "fsck"
    ;;
b)
    wait_peer_ready
    mount -t marufs -o node=1 /dev/dax0.0 $M || fail "mount"
    mount -o bind $M $R/mnt || fail "bind the pool into LMCache's root"
    wait_pool $M/app/a-stored 1200 || fail "A never stored"
    lmc fetch || peer_fail "LMCache fetch"
    touch $M/app/b-done
    umount $R/mnt && umount $M || fail "umount"
    ;;
esac
log "lmcache-share: ok"
