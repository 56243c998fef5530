# Helpers for guest init and guest test scripts (busybox sh).

log() { echo "[$ROLE] $*"; }
fail() { echo "[$ROLE] FAIL: $*"; exit 1; }

# Wait until a path exists (seconds, polled every 0.1 s).
wait_for() {
    local path=$1 secs=${2:-30} i=0
    while [ ! -e "$path" ]; do
        i=$((i + 1)); [ $i -gt $((secs * 10)) ] && return 1
        sleep 0.1
    done
}

# cxl: build a RAM region over the type-3 device's volatile capacity and bind
# its DAX device to device_dax. Each guest programs its own (emulated) HDM
# decoders; nothing is written to the shared media, so every host does this.
setup_cxl() {
    local cx=/sys/bus/cxl/devices
    wait_for $cx/decoder0.0 30 || { echo "no CXL root decoder"; return 1; }
    local ep epdec mem size region
    ep=$(ls -d $cx/endpoint* 2>/dev/null | head -n1)
    [ -n "$ep" ] || { wait_for "$cx/endpoint2" 30; ep=$(ls -d $cx/endpoint* | head -n1); }
    [ -n "$ep" ] || { echo "no CXL endpoint"; return 1; }
    epdec=$(cd "$ep" && ls -d decoder*.0 | head -n1)
    mem=$(ls -d $cx/mem* | head -n1)
    size=$(cat "$mem/ram/size")
    region=$(cat $cx/decoder0.0/create_ram_region)
    echo "$region" > $cx/decoder0.0/create_ram_region || return 1
    echo 4096 > "$cx/$region/interleave_granularity" || return 1
    echo 1 > "$cx/$region/interleave_ways" || return 1
    echo ram > "$cx/$epdec/mode" || return 1
    echo "$size" > "$cx/$epdec/dpa_size" || return 1
    echo "$size" > "$cx/$region/size" || return 1
    echo "$epdec" > "$cx/$region/target0" || return 1
    echo 1 > "$cx/$region/commit" || return 1
    [ -e /sys/bus/cxl/drivers/cxl_region/$region ] || echo "$region" > /sys/bus/cxl/drivers/cxl_region/bind 2>/dev/null
    wait_for /dev/dax0.0 30 || { echo "dax0.0 did not appear"; return 1; }
    if [ -e /sys/bus/dax/devices/dax0.0/driver ] && \
       [ "$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver)")" != device_dax ]; then
        echo dax0.0 > /sys/bus/dax/devices/dax0.0/driver/unbind
        echo dax0.0 > /sys/bus/dax/drivers/device_dax/bind
    fi
    log "cxl: $region ($size bytes) -> /dev/dax0.0"
}

# nvdimm: the primary host writes the devdax info block into the shared
# namespace; other hosts boot after it and find it when the namespace probes.
# `-M mem` keeps each host's struct pages in its own RAM: with the default
# (`-M dev`) the memmap lives on the namespace itself, i.e. in the shared pool,
# and every host's kernel would overwrite the others' struct pages (seen as an
# oops in zap_huge_pmd on munmap when two guests are up at once).
setup_nvdimm() {
    if [ ! -e /dev/dax0.0 ]; then
        if [ "$PRIMARY" = 1 ]; then
            ndctl create-namespace -f -e namespace0.0 -m devdax -a 2M -M mem >/dev/null || return 1
        else
            ndctl disable-namespace namespace0.0 >/dev/null 2>&1
            ndctl enable-namespace namespace0.0 >/dev/null 2>&1
        fi
    fi
    wait_for /dev/dax0.0 30 || { echo "dax0.0 did not appear"; return 1; }
    log "nvdimm: /dev/dax0.0 ($(cat /sys/bus/dax/devices/dax0.0/size) bytes)"
}

setup_topology() {
    case $TOPO in
        cxl) setup_cxl ;;
        nvdimm) setup_nvdimm ;;
        none) return 0 ;;
        *) echo "unknown topology $TOPO"; return 1 ;;
    esac
}

# Module parameters of the scenario (MODPARAMS, from marufs.modparams= on the
# kernel command line: e.g. the non-coherent test mode).
load_marufs() {
    grep -qw marufs /proc/filesystems && return 0
    # shellcheck disable=SC2086
    insmod /lib/modules/marufs.ko $MODPARAMS
}

# Load the module, format /dev/dax0.0 and mount it on $M with options $1.
fresh_mount() {
    M=${M:-/mnt/maru}
    mkdir -p "$M"
    load_marufs || fail "insmod"
    mkfs.marufs -q -f /dev/dax0.0 || fail "mkfs.marufs"
    mount -t marufs ${1:+-o "$1"} /dev/dax0.0 "$M" || fail "mount -o $1"
}

# Milliseconds since boot (busybox date has no %N).
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

# Multi-host scripts: a host that fails leaves peer-failed in the shared
# directory $PEER_DIR (default $M/app; when it still can) so that the others
# stop waiting; wait_pool waits for a path on the pool and gives up on the
# peer's failure or after SECS (default 240).
peer_fail() {
    local d=${PEER_DIR:-$M/app}
    [ -d "$d" ] && touch "$d/peer-failed" 2>/dev/null
    echo "[$ROLE] FAIL: $*"; exit 1
}
wait_pool() {  # wait_pool PATH [SECS]
    local i=0 d=${PEER_DIR:-$M/app}
    while [ ! -e "$1" ]; do
        [ -e "$d/peer-failed" ] && { echo "[$ROLE] FAIL: the other host failed"; exit 1; }
        i=$((i + 1)); [ $i -gt $((${2:-240} * 10)) ] && peer_fail "timed out waiting for $1"
        sleep 0.1
    done
}

# Host B of a two-host scenario: wait until A's pool is formatted and A made
# $M/app/ready (peeking with read-only mounts, which write nothing).
wait_peer_ready() {
    local i=0
    until mount -t marufs -o ro /dev/dax0.0 "$M" 2>/dev/null && [ -e "$M/app/ready" ]; do
        umount "$M" 2>/dev/null
        i=$((i + 1)); [ $i -gt 240 ] && fail "A never got ready"
        sleep 1
    done
    umount "$M" || fail "umount ro"
}

# Stores keys $M/app/PREFIX-N (2 MiB, seed 100+N) from N=FIRST on until one
# fails, COUNT are stored or /tmp/stop-PREFIX exists; prints each store's
# time and at the end the slowest; sets STORED and SLOWEST (ms).
store_loop() {  # store_loop PREFIX FIRST COUNT
    local n=$2 t0 ms
    STORED=0 SLOWEST=0
    while [ $STORED -lt "$3" ] && [ ! -e "/tmp/stop-$1" ]; do
        t0=$(now_ms)
        maru-testkit key-write "$M/app/$1-$n" --len $((2 << 20)) --seed $((100 + n)) >/dev/null 2>/tmp/store.err || return 1
        ms=$(($(now_ms) - t0))
        [ $ms -gt $SLOWEST ] && SLOWEST=$ms
        echo "[$ROLE] stored $1-$n in $ms ms"
        n=$((n + 1)); STORED=$((STORED + 1))
        echo "[$ROLE] slowest store so far: $SLOWEST ms" > "/tmp/slowest-$1"
    done
}

# Verifies every key $M/app/PREFIX-N visible (its seed is 100+N): a name is
# visible only once its key is published, so each must be byte-exact.
verify_visible() {  # verify_visible PREFIX -> prints the count
    local f n c=0
    for f in "$M/app/$1"-*; do
        [ -e "$f" ] || continue
        n=${f##*-}
        case $n in *[!0-9]*|'') continue ;; esac
        maru-testkit key-verify "$f" --len $((2 << 20)) --seed $((100 + n)) >/dev/null \
            || peer_fail "visible key $f is not byte-exact"
        c=$((c + 1))
    done
    echo $c
}

# Host A of the takeover scenarios (kill, stall, takeover): formats the
# pool, mounts it on $M as node 0 (extra mount options OPTS), makes $M/app
# and says ready.
start_pool() {  # start_pool [OPTS]
    mkfs.marufs -q /dev/dax0.0 || fail "mkfs"
    mount -t marufs -o "node=0${1:+,$1}" /dev/dax0.0 "$M" || fail "mount"
    mkdir "$M/app" || fail "mkdir"
    touch "$M/app/ready"
}

# Waits (60 s at most) until dmesg says this host took a host over; sets
# TOOK to the milliseconds since T0 (from now_ms).
wait_takeover() {  # wait_takeover T0
    local i=0
    until dmesg | grep -q "took over 1 host"; do
        i=$((i + 1)); [ $i -gt 600 ] && peer_fail "A never took B over"
        sleep 0.1
    done
    TOOK=$(($(now_ms) - $1))
}

# Ends a store_loop of PREFIX running in the background as PID.
stop_stores() {  # stop_stores PREFIX PID
    touch "/tmp/stop-$1"; wait "$2"
    cat "/tmp/slowest-$1"
}

# Fails unless maru-fsck -n finds the pool clean (WHEN names the moment).
fsck_clean() {  # fsck_clean WHEN
    maru-fsck -n /dev/dax0.0 > /tmp/fsck 2>&1 || { cat /tmp/fsck; fail "maru-fsck -n $1"; }
}
