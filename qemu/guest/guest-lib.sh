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
