#!/bin/sh
# Benchmark (not a pass/fail on speed): a 32 MiB key through a marufs mapping
# vs the raw /dev/dax0.0 mapping, faults per mapping, and metadata latency vs
# tmpfs, measured in the same run. Under TCG absolute numbers are inflated;
# the ratios are what to read.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M /tmp/tmpfs-bench
maru-testkit bench --raw-only --raw /dev/dax0.0 --maru x --tmpfs x || fail "raw bench"
# The core alone, in userspace on the unmounted pool: what a metadata
# operation costs without the kernel around it.
mkfs.marufs -q /dev/dax0.0 || fail "mkfs"
maru-testkit core-bench /dev/dax0.0 --iters 100 || fail "core bench"
load_marufs || fail "insmod"
mkfs.marufs -q -f /dev/dax0.0 || fail "mkfs"
mount -t marufs /dev/dax0.0 $M || fail "mount"
mkdir $M/bench
maru-testkit bench --raw /dev/dax0.0 --maru $M/bench --tmpfs /tmp/tmpfs-bench --iters ${BENCH_ITERS:-200} --settle-secs 8 || fail "bench"
# Faults of a published 32 MiB key: the publish (write-back) cost; after a
# remount the first map invalidates each unit; then faults during a
# create/unlink storm (they must not wait for the metadata mutex).
maru-testkit fault-bench $M/bench || fail "fault bench (publish)"
umount $M || fail "umount"
mount -t marufs /dev/dax0.0 $M || fail "remount"
maru-testkit fault-bench $M/bench --storm || fail "fault bench"
umount $M
log "bench: ok"
