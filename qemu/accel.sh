#!/usr/bin/env bash
# Print the QEMU accelerator to use: kvm if a KVM guest boots on this machine,
# tcg otherwise. MARUFS_ACCEL=kvm|tcg forces it. The verdict of the (slow)
# probe boot is cached per machine, QEMU version and kernel.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

if [ -n "${MARUFS_ACCEL:-}" ]; then echo "$MARUFS_ACCEL"; exit 0; fi
if [ ! -w /dev/kvm ]; then echo tcg; exit 0; fi
key=$( { qemu-system-x86_64 --version | head -1; uname -r; cat /proc/cpuinfo | grep -m1 'model name'; } | sha256sum | cut -c1-16)
cache="$MARUFS_CACHE/accel-$key"
if [ -f "$cache" ]; then cat "$cache"; exit 0; fi
# Probe: boot a tiny guest under KVM and wait for its init to speak.
kernel=${MARUFS_PROBE_KERNEL:-}
initrd=${MARUFS_PROBE_INITRD:-}
verdict=tcg
if [ -f "$kernel" ] && [ -f "$initrd" ]; then
    logf=$(mktemp)
    (MARUFS_ACCEL=kvm "$MARUFS_ROOT/qemu/run-guest.sh" -k "$kernel" -i "$initrd" -t none -l "$logf" -w 60) >/dev/null 2>&1 || true
    grep -q 'MARUFS-RESULT rc=0' "$logf" && verdict=kvm
    rm -f "$logf"
    echo "$verdict" >"$cache"
    log "KVM probe: using $verdict"
fi
echo "$verdict"
