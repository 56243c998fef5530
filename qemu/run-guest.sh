#!/usr/bin/env bash
# Boot one guest and run one test script in it; the guest powers off itself.
#   qemu/run-guest.sh -k KERNEL -i INITRD -t cxl|nvdimm|none -p POOLFILE [-s SIZE]
#                     [-r ROLE] [-P 0|1] [-T TEST] [-l LOG] [-w TIMEOUT] [-m MEM] [-c CPUS]
#                     [-d DISK]
# Exits with QEMU's status (124/137: killed after TIMEOUT seconds).
# Every guest given the same POOLFILE shares it as /dev/dax0.0 (share=on).
# DISK: a raw image attached read-only by virtio-blk (/dev/vda; several
# guests may share it).
# MARUFS_QEMU_ARGS: extra QEMU arguments (e.g. -s: gdb stub on :1234 for
# scripts/guest-profile.py). MARUFS_MODPARAMS: marufs module parameters the
# guest passes to insmod (space-separated, e.g. "noncoherent_test=1").
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

kernel= initrd= topo=none pool= size=512M role=a primary=1 test= logf=/dev/stdout timeout=300 mem=2G cpus=2 disk=
while getopts k:i:t:p:s:r:P:T:l:w:m:c:d: o; do
    case $o in
        k) kernel=$OPTARG ;; i) initrd=$OPTARG ;; t) topo=$OPTARG ;; p) pool=$OPTARG ;;
        s) size=$OPTARG ;; r) role=$OPTARG ;; P) primary=$OPTARG ;; T) test=$OPTARG ;;
        l) logf=$OPTARG ;; w) timeout=$OPTARG ;; m) mem=$OPTARG ;; c) cpus=$OPTARG ;;
        d) disk=$OPTARG ;;
        *) die "bad option" ;;
    esac
done
[ -f "$kernel" ] && [ -f "$initrd" ] || die "need -k KERNEL and -i INITRD"

accel=$("$MARUFS_ROOT/qemu/accel.sh")
case $accel in
    kvm) accel_args=(-accel kvm -cpu host,-arch-capabilities) ;;
    *) accel_args=(-accel tcg,thread=multi -cpu max) ;;
esac

mach=q35
dev_args=()
case $topo in
    cxl)
        mach=q35,cxl=on
        dev_args=(-object "memory-backend-file,id=cxl-mem0,share=on,mem-path=$pool,size=$size"
            -device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1
            -device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2
            -device cxl-type3,bus=root_port13,volatile-memdev=cxl-mem0,id=cxl-vmem0
            -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G)
        mem="$mem,maxmem=8G,slots=4" ;;
    nvdimm)
        mach=q35,nvdimm=on
        dev_args=(-object "memory-backend-file,id=nv0,share=on,mem-path=$pool,size=$size"
            -device nvdimm,memdev=nv0,id=nvdimm0)
        mem="$mem,maxmem=8G,slots=4" ;;
    none) ;;
    *) die "unknown topology $topo" ;;
esac
if [ -n "$pool" ] && [ ! -e "$pool" ]; then truncate -s "$size" "$pool"; fi
if [ -n "$disk" ]; then
    [ -f "$disk" ] || die "no disk image $disk"
    dev_args+=(-drive "file=$disk,format=raw,if=virtio,readonly=on")
fi

cmdline="console=ttyS0 panic=-1 oops=panic loglevel=7 marufs.topo=$topo marufs.role=$role marufs.primary=$primary"
[ -n "$test" ] && cmdline+=" marufs.test=$test"
[ -n "${MARUFS_MODPARAMS:-}" ] && cmdline+=" marufs.modparams=$(echo "$MARUFS_MODPARAMS" | tr ' ' ',')"
exec timeout --signal=KILL "$timeout" qemu-system-x86_64 -M "$mach" "${accel_args[@]}" \
    -smp "$cpus" -m "$mem" -nodefaults -display none -no-reboot \
    -serial "file:$logf" -monitor none \
    -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
    "${dev_args[@]}" ${MARUFS_QEMU_ARGS:-}
