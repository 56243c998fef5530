#!/bin/sh
# Benchmark of the client library's lookups and retrievals (maru-kvdemo
# bench; not a pass/fail on speed): 512 keys of 4 KiB (one 2 MiB unit each),
# per-key latency (p50/p99) of exists and retrieve one key at a time and
# batched at 1/8/32/128/512 keys, retrievals with a cold and a warm mapping
# cache, and MARUFS_IOC_LOOKUP issued bare (the kernel's share of a batch),
# all in one run. Prints the table, the ratio of 512 single exists to
# one batch_exists of 512 against the 10x target (PASS/MISS), the
# accelerator, and Maru remote mode's ~20 us/key RPC for reference. Fails
# only on errors (or if the batched lookup ioctl is not used).
. /lib/marufs/guest-lib.sh
M=/mnt/maru
fresh_mount "node=0"
# The accelerator, as the guest sees it: under TCG `-cpu max` is named
# "QEMU TCG CPU"; under KVM the CPU is the host's.
if [ -z "${MARUFS_ACCEL:-}" ]; then
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
    case $model in
        *TCG*) MARUFS_ACCEL="tcg (guest CPU: $model)" ;;
        ?*) MARUFS_ACCEL="kvm (guest CPU: $model)" ;;
    esac
fi
export MARUFS_ACCEL
log "accelerator: ${MARUFS_ACCEL:-unknown}"
maru-kvdemo bench --mount $M --app kvbench --json >/tmp/kvbench 2>&1 \
    || { cat /tmp/kvbench; fail "maru-kvdemo bench"; }
grep -v '^{' /tmp/kvbench
grep '^{' /tmp/kvbench | grep -q '"lookup_mode":"ioctl"' || fail "batched lookups did not use the marufs ioctl"
log "$(grep 'target >=' /tmp/kvbench | sed 's/^kvbench: //')"
log "json: $(grep '^{' /tmp/kvbench)"
[ "$(ls $M/kvbench | wc -l)" = 0 ] || fail "keys left behind: $(ls $M/kvbench | head)"
umount $M || fail "umount"
log "kvbench: ok"
