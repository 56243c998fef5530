#!/bin/sh
# Two hosts, the marufs Python package on each (tests/guest/py_share.py):
# A stores 12 KV chunks of 2-6 MiB zero copy (allocations of pool memory,
# written in place, published in place) and a manifest of their SHA-256s;
# B, on its own host, looks them up in one batch, retrieves each zero copy
# (a read-only mapping: the hash reads pool memory) and checks every byte,
# then stores a key of its own that A reads back. fsck clean at the end.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M
load_marufs || fail "insmod"
python3 -c "import marufs" || fail "import marufs"
case $ROLE in
a)
    start_pool
    python3 /tests/py_share.py store $M || peer_fail "python store"
    wait_pool $M/app/b-done 400 || fail "B never finished"
    python3 /tests/py_share.py readback $M || fail "python readback"
    umount $M || fail "umount"
    maru-fsck -n /dev/dax0.0 || fail "fsck"
    ;;
b)
    wait_peer_ready
    mount -t marufs -o node=1 /dev/dax0.0 $M || fail "mount"
    wait_pool $M/app/manifest 400 || fail "no manifest from A"
    python3 /tests/py_share.py fetch $M || peer_fail "python fetch"
    touch $M/app/b-done
    umount $M || fail "umount"
    ;;
esac
log "py-share: ok"
