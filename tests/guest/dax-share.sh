#!/bin/sh
# Two running hosts talk through /dev/dax0.0 in both directions: B announces
# itself with a small pattern that A waits for; then A writes a large pattern
# that B, a separate QEMU process on the same pool, reads back byte-exact.
. /lib/marufs/guest-lib.sh
case $TOPO in
    cxl) LEN=$((4 << 20)) ;;       # emulated CXL memory is MMIO: ~5 MB/s under TCG
    *) LEN=$((64 << 20)) ;;
esac
HELLO="--offset $((2 << 20)) --len 65536 --seed 7"
DATA="--offset $((8 << 20)) --len $LEN --seed 4242"
case $ROLE in
    a)
        maru-testkit dax-verify /dev/dax0.0 $HELLO --wait 240 || fail "B's hello not seen"
        maru-testkit dax-write /dev/dax0.0 $DATA || fail "write"
        ;;
    b)
        maru-testkit dax-write /dev/dax0.0 $HELLO || fail "hello"
        maru-testkit dax-verify /dev/dax0.0 $DATA --wait 240 || fail "verify"
        ;;
    *) fail "unknown role $ROLE" ;;
esac
log "dax-share ($TOPO): ok"
