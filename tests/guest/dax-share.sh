#!/bin/sh
# Host A writes a pattern through /dev/dax0.0; host B, a separate QEMU
# process on the same pool, waits for A's marker and reads it back byte-exact.
. /lib/marufs/guest-lib.sh
case $TOPO in
    cxl) LEN=$((4 << 20)) ;;       # emulated CXL memory is MMIO: ~5 MB/s under TCG
    *) LEN=$((64 << 20)) ;;
esac
OFF=$((8 << 20))
case $ROLE in
    a) maru-testkit dax-write /dev/dax0.0 --offset $OFF --len $LEN --seed 4242 || fail "write" ;;
    b) maru-testkit dax-verify /dev/dax0.0 --offset $OFF --len $LEN --seed 4242 --wait 240 || fail "verify" ;;
    *) fail "unknown role $ROLE" ;;
esac
log "dax-share ($TOPO): ok"
