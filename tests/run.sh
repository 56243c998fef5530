#!/usr/bin/env bash
# Run every marufs test: set up the machine (idempotent), host-side checks
# (cargo test, clippy, fmt), the module build (warning-free, clippy), then
# every guest scenario in tests/scenarios/ inside QEMU guests.
#
#   tests/run.sh [--no-setup] [--host-only] [--guest-only] [--variant debug|normal] [NAME...]
#
# NAME selects scenarios by file name (without .scn). Prints one PASS/FAIL line
# per test with its output, and a closing "N passed, N failed" line.
set -uo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
cd "$MARUFS_ROOT"

variant=debug do_setup=1 do_host=1 do_guest=1 only=()
while [ $# -gt 0 ]; do
    case $1 in
        --no-setup) do_setup=0 ;;
        --host-only) do_guest=0 ;;
        --guest-only) do_host=0 ;;
        --variant) variant=$2; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) only+=("$1") ;;
    esac
    shift
done
[ ${#only[@]} -gt 0 ] && do_host=0

out="$MARUFS_ROOT/out/tests"
rm -rf "$out"; mkdir -p "$out"
passed=0 failed=0 failures=()
t0=$SECONDS

report() {  # report NAME STATUS SECONDS LOGFILE
    local name=$1 st=$2 secs=$3 logf=$4
    if [ "$st" = 0 ]; then
        passed=$((passed + 1)); printf 'PASS %-40s %5ss\n' "$name" "$secs"
        [ -n "${VERBOSE:-}" ] && sed 's/^/    | /' "$logf"
    else
        failed=$((failed + 1)); failures+=("$name"); printf 'FAIL %-40s %5ss  (log: %s)\n' "$name" "$secs" "$logf"
        tail -n 60 "$logf" | sed 's/^/    | /'
    fi
}

step() {  # step NAME CMD... : run a host-side command as one test
    local name=$1; shift
    local logf="$out/$(echo "$name" | tr ' /:' '___').log" s=$SECONDS
    "$@" >"$logf" 2>&1
    report "$name" $? $((SECONDS - s)) "$logf"
}

if [ $do_setup = 1 ]; then
    s=$SECONDS
    if [ "$(id -u)" = 0 ]; then "$MARUFS_ROOT/scripts/setup.sh" || die "setup failed"
    else sudo "$MARUFS_ROOT/scripts/setup.sh" || die "setup failed"; fi
    log "setup: $((SECONDS - s)) s"
fi

if [ $do_host = 1 ]; then
    step "host: cargo test" cargo test --workspace --release
    step "host: cargo clippy" cargo clippy --workspace --all-targets --release -- -D warnings
    step "host: cargo fmt" cargo fmt --all --check
    step "host: guest-log checker self-test" "$MARUFS_ROOT/tests/selftest/run.sh"
fi

# ---------------------------------------------------------------- guests

run_scenario() {  # run_scenario FILE
    local scn=$1 name TOPOLOGY=none HOSTS=a POOL_SIZE=512M SCRIPT= TIMEOUT=300 MEM=2G
    name=$(basename "$scn" .scn)
    # shellcheck disable=SC1090
    . "$scn"
    local dir="$out/$name" pool="/dev/shm/marufs-test-$$-$name.pool" s=$SECONDS
    mkdir -p "$dir"; rm -f "$pool"
    local pids=() h primary=1 st=0
    for h in $HOSTS; do
        : >"$dir/$h.log"
        "$MARUFS_ROOT/qemu/run-guest.sh" -k "$kernel" -i "$initrd" -t "$TOPOLOGY" -p "$pool" \
            -s "$POOL_SIZE" -r "$h" -P "$primary" -T "$SCRIPT" -l "$dir/$h.log" -w "$TIMEOUT" -m "$MEM" \
            >"$dir/$h.qemu" 2>&1 &
        pids+=($!)
        if [ $primary = 1 ] && [ "$(echo $HOSTS | wc -w)" -gt 1 ]; then
            # Later hosts boot once the first one has laid out the shared device.
            local waited=0
            until grep -q MARUFS-READY "$dir/$h.log" 2>/dev/null; do
                kill -0 "${pids[0]}" 2>/dev/null || break
                sleep 0.5; waited=$((waited + 1))
                [ $waited -gt $((TIMEOUT * 2)) ] && break
            done
        fi
        primary=0
    done
    local i=0
    for h in $HOSTS; do
        wait "${pids[$i]}"; local rc=$?
        i=$((i + 1))
        {
            echo "=== host $h: qemu exit $rc"
            cat "$dir/$h.qemu"
            sed -n '/MARUFS-READY/,/MARUFS-DMESG-BEGIN/p' "$dir/$h.log" | grep -v 'MARUFS-DMESG-BEGIN'
        } >>"$dir/summary.log"
        if [ $rc -ne 0 ]; then echo "host $h: QEMU exited $rc (137 = killed after ${TIMEOUT}s)" >>"$dir/summary.log"; st=1; fi
        if ! "$MARUFS_ROOT/tests/check-guest-log.sh" "$dir/$h.log" >"$dir/$h.check"; then
            sed "s/^/host $h: /" "$dir/$h.check" >>"$dir/summary.log"; st=1
        fi
    done
    rm -f "$pool"
    report "guest: $name" $st $((SECONDS - s)) "$dir/summary.log"
}

if [ $do_guest = 1 ]; then
    kdir=$("$MARUFS_ROOT/scripts/build-kernel.sh" "$variant") || die "kernel build failed"
    kernel="$kdir/arch/x86/boot/bzImage"
    step "kmod: build (warning-free, clippy)" "$MARUFS_ROOT/scripts/build-module.sh" "$variant"
    ko="$MARUFS_ROOT/out/kmod-$variant/marufs.ko"
    [ -f "$ko" ] || die "no module; cannot run guest tests"
    cargo build --release -q -p maru-testkit || die "guest tools build failed"
    bins=("$MARUFS_ROOT/target/release/maru-testkit")
    initrd=$("$MARUFS_ROOT/qemu/mkinitramfs.sh" "$MARUFS_ROOT/out/initramfs-$variant.cpio.gz" "$ko" "${bins[@]}") \
        || die "initramfs build failed"
    accel=$(MARUFS_PROBE_KERNEL=$kernel MARUFS_PROBE_INITRD=$initrd "$MARUFS_ROOT/qemu/accel.sh")
    log "guests: $variant kernel, accelerator $accel"
    for scn in "$MARUFS_ROOT"/tests/scenarios/*.scn; do
        n=$(basename "$scn" .scn)
        if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qx "$n"; then continue; fi
        run_scenario "$scn"
    done
fi

echo
[ $failed -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
log "total time $((SECONDS - t0)) s"
echo "$passed passed, $failed failed"
[ $failed = 0 ]
