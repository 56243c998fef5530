#!/bin/sh
# Pages referenced past their key's last mapping and file keep the key's
# units (Documentation/design/kernel.md, "Pinned pages"). vmsplice puts
# pages of a key in a pipe (get_user_pages references, which outlive the
# mapping and the file as a DMA registration's pins do); then the key is
# unlinked and host A fills the pool: no new key may get those units, and
# the pipe must still show the key's own bytes. Host A pins key x it
# creates itself (a truncate of x must fail with EBUSY, the publish at
# close keeps its hold); host B pins key z that A stored. Writable
# long-term pins (io_uring fixed buffers) of key mappings are refused with
# EFAULT. After the pipes are read, the space returns; fsck is clean.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M
load_marufs || fail "insmod"
LEN=$((8 << 20))
fail() { peer_fail "$@"; }
wait_path() { wait_pool "$@"; }
free_blocks() { stat -f -c %f $M; }
# The negative control (test_skip=4) skips the truncate check, so that what
# must fail is the reuse of pinned units itself.
TRUNC=
case " $MODPARAMS " in *" test_skip=4 "*) TRUNC=--no-truncate ;; esac
wait_pin() {  # wait_pin FILE PID LOG
    i=0
    while [ ! -e "$1" ]; do
        kill -0 $2 2>/dev/null || { cat $3; fail "pin-hold died"; }
        i=$((i + 1)); [ $i -gt 1200 ] && fail "timed out waiting for $1"
        sleep 0.1
    done
}
case $ROLE in
a)
    mkfs.marufs -q /dev/dax0.0 || fail "mkfs"
    mount -t marufs -o node=0 /dev/dax0.0 $M || fail "mount"
    mkdir $M/app || fail "mkdir"
    # Writable long-term pins: refused (the key mappings are write-notify).
    maru-testkit uring-register $M/app/u --create $LEN || fail "io_uring on a creating key"
    maru-testkit uring-register $M/app/u || fail "io_uring on a published key"
    rm $M/app/u
    # x: created, pinned by A itself, published at close.
    maru-testkit pin-hold $M/app/x --create $LEN $TRUNC --seed 1 --ready /tmp/x-pinned --until $M/app/release \
        > /tmp/pin-x 2>&1 &
    pin_x=$!
    wait_pin /tmp/x-pinned $pin_x /tmp/pin-x
    cat /tmp/pin-x
    maru-testkit key-verify $M/app/x --len $LEN --seed 1 >/dev/null || fail "x as stored"
    maru-testkit key-units /dev/dax0.0 --key $M/app/x > /tmp/units-pinned || fail "units x"
    # z: stored by A, pinned by B.
    maru-testkit key-write $M/app/z --len $LEN --seed 3 >/dev/null || fail "write z"
    maru-testkit key-units /dev/dax0.0 --key $M/app/z >> /tmp/units-pinned || fail "units z"
    touch $M/app/z-ready
    wait_path $M/app/b-pinned
    rm $M/app/x $M/app/z || fail "rm x z"
    [ -e $M/app/x ] && fail "x still visible after rm"
    # Fill the pool: nothing may land in the pinned units.
    mkdir $M/fill
    n=0
    while maru-testkit key-write $M/fill/k$n --len $LEN --seed $((100 + n)) >/tmp/out 2>&1; do
        maru-testkit key-units /dev/dax0.0 --key $M/fill/k$n >> /tmp/units-new || fail "units k$n"
        n=$((n + 1))
        [ $n -gt 200 ] && fail "the pool never filled"
    done
    grep -q "No space left on device" /tmp/out || fail "k$n failed without ENOSPC: $(cat /tmp/out)"
    reused=$(sort /tmp/units-pinned /tmp/units-new | uniq -d | wc -l)
    log "pool full after $n keys of $LEN bytes; pinned units reused: $reused of $(wc -l < /tmp/units-pinned)"
    [ "$reused" = 0 ] || fail "units of unlinked but pinned keys were reused ($reused)"
    full=$(free_blocks)
    # Release: both pipes must still hold their key's bytes.
    touch $M/app/release
    wait $pin_x || { cat /tmp/pin-x; fail "pin of x"; }
    cat /tmp/pin-x
    wait_path $M/app/b-released
    # The space comes back (A's heartbeat frees x; z once B's hold is gone).
    want=$((full + 2 * LEN / $(stat -f -c %S $M)))
    i=0
    while [ "$(free_blocks)" -lt $want ]; do
        i=$((i + 1)); [ $i -gt 300 ] && fail "space of the released keys never returned ($(free_blocks) free, want $want)"
        sleep 0.1
    done
    log "space returned after the pipes were read: $full -> $(free_blocks) free blocks"
    maru-testkit key-write $M/fill/again --len $LEN --seed 9 >/dev/null || fail "store after release"
    j=0
    while [ $j -lt $n ]; do
        maru-testkit key-verify $M/fill/k$j --len $LEN --seed $((100 + j)) >/dev/null || fail "k$j damaged"
        j=$((j + 1))
    done
    touch $M/app/a-done
    wait_path $M/app/b-leaving
    umount $M || fail "umount"
    # B unmounts meanwhile: fsck -n is clean once B's slot says it left.
    i=0
    until maru-fsck -n /dev/dax0.0 > /tmp/fsck 2>&1; do
        i=$((i + 1)); [ $i -gt 30 ] && { cat /tmp/fsck; fail "fsck -n after the pins"; }
        sleep 1
    done
    ;;
b)
    i=0
    until mount -t marufs -o node=1 /dev/dax0.0 $M 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 240 ] && fail "could not mount the shared pool"
        sleep 1
    done
    wait_path $M/app/z-ready
    maru-testkit pin-hold $M/app/z --seed 3 --ready /tmp/z-pinned --until $M/app/release > /tmp/pin-z 2>&1 &
    pin_z=$!
    wait_pin /tmp/z-pinned $pin_z /tmp/pin-z
    cat /tmp/pin-z
    touch $M/app/b-pinned
    while kill -0 $pin_z 2>/dev/null; do
        [ -e $M/app/peer-failed ] && { kill $pin_z; echo "[$ROLE] FAIL: the other host failed"; exit 1; }
        sleep 0.2
    done
    wait $pin_z || { cat /tmp/pin-z; fail "pin of z"; }
    cat /tmp/pin-z
    touch $M/app/b-released
    wait_path $M/app/a-done
    touch $M/app/b-leaving
    umount $M || fail "umount"
    ;;
esac
log "pins: ok"
