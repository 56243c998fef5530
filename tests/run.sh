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
    step "host: no tracked build outputs" "$MARUFS_ROOT/tests/check-tracked.sh"
    step "host: unsafe confined to kmod/vfs/" "$MARUFS_ROOT/tests/check-unsafe.sh"
    # Two toolchains (Documentation/testing.md, "Toolchains"): the cargo first
    # on PATH (the newest stable where rustup is installed; Debian's on a plain
    # Debian 12) and Debian's cargo-web/rustc-web 1.85 with its own clippy and
    # rustfmt (the kernel's rustc; setup.sh installs it). Lint sets differ
    # between versions, so the tree is linted with both. Debian's subcommands
    # are run by path, with rustup's directory off PATH: `cargo clippy` would
    # find the rustup proxy in ~/.cargo/bin first and lint with the newest.
    tc=$(cargo --version | awk '{print $2}')
    step "host: cargo test ($tc)" cargo test --workspace --release
    step "host: cargo clippy ($tc)" cargo clippy --workspace --all-targets --release -- -D warnings
    step "host: cargo fmt ($tc)" cargo fmt --all --check
    if [ -x /usr/bin/cargo ] && [ "$(command -v cargo)" != /usr/bin/cargo ]; then
        deb=(env PATH="$LLVM_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" RUSTC="$KRUSTC"
             RUSTFMT=/usr/bin/rustfmt CARGO_TARGET_DIR="$MARUFS_ROOT/target/msrv")
        dtc=$("${deb[@]}" /usr/bin/cargo --version | awk '{print $2}')
        step "host: cargo build ($dtc, Debian)" "${deb[@]}" /usr/bin/cargo build -q --workspace --all-targets
        step "host: cargo clippy ($dtc, Debian)" "${deb[@]}" /usr/bin/cargo-clippy clippy -q --workspace --all-targets -- -D warnings
        step "host: cargo fmt ($dtc, Debian)" "${deb[@]}" /usr/bin/cargo-fmt fmt --all --check
    fi
    step "host: guest-log checker self-test" "$MARUFS_ROOT/tests/selftest/run.sh"
    step "host: install/uninstall self-test" "$MARUFS_ROOT/tests/install-selftest.sh"
    step "host: python package (pip install, ruff, clippy, pytest)" "$MARUFS_ROOT/tests/python.sh"
    step "host: LMCache 0.5.6 on marufs (pytest, benchmark)" "$MARUFS_ROOT/tests/lmcache.sh"
fi

# ---------------------------------------------------------------- guests

# Boot every guest of a scenario (the first one, the primary, lays out the
# shared device; the others start once it printed MARUFS-READY), watch them, and
# judge each log. A guest that does not reach MARUFS-READY within BOOT_TIMEOUT
# is killed; when a guest failed while booting (a hang, or a kernel splat
# before its init started the test — both seen under TCG on a loaded host, with
# marufs not yet loaded), the scenario is run once more and the retry reported.
launch_guest() {  # launch_guest HOST PRIMARY
    : >"$dir/$1.log"
    MARUFS_MODPARAMS="$MODPARAMS" "$MARUFS_ROOT/qemu/run-guest.sh" -k "$kernel" -i "$initrd" -t "$TOPOLOGY" -p "$pool" \
        -s "$POOL_SIZE" -r "$1" -P "$2" -T "$SCRIPT" -l "$dir/$1.log" -w "$TIMEOUT" -m "$MEM" \
        -c "$CPUS" ${DISK:+-d "$DISK"} >"$dir/$1.qemu" 2>&1 &
    pids+=($!); started+=($SECONDS)
}
ready() { grep -aq MARUFS-READY "$dir/$1.log" 2>/dev/null; }

# Guest-driven faults: a guest prints "MARUFS-CTL stop HOST SECS" (SIGSTOP
# that host's QEMU, SIGCONT after SECS: its vCPUs and devices stop; its
# clock jumps forward on resume, as after a suspend) or "MARUFS-CTL kill
# HOST" (SIGKILL: the host dies with whatever its caches held). A killed
# host's exit status and log are not checked; the other hosts' are.
control() {  # control J: acts on host J's MARUFS-CTL lines not acted on yet
    local j=$1 lines k cmd tgt secs t qp i
    mapfile -t lines < <(grep -a 'MARUFS-CTL ' "$dir/${hosts[$j]}.log" 2>/dev/null | sed 's/.*MARUFS-CTL //' | tr -d '\r')
    for ((k = ${ctl_done[$j]:-0}; k < ${#lines[@]}; k++)); do
        read -r cmd tgt secs <<<"${lines[$k]}"
        t=-1
        for i in "${!hosts[@]}"; do [ "${hosts[$i]}" = "$tgt" ] && t=$i; done
        qp=
        [ $t -ge 0 ] && [ -n "${pids[$t]:-}" ] && qp=$(pgrep -P "${pids[$t]}" | head -n1)
        if [ -z "$qp" ]; then
            echo "harness: ${hosts[$j]} asked \"$cmd $tgt\": no such running host" >>"$dir/summary.log"
            continue
        fi
        case $cmd in
        stop)
            echo "harness: SIGSTOP of host $tgt's QEMU for ${secs}s (asked by ${hosts[$j]} at ${SECONDS}s)" >>"$dir/summary.log"
            kill -STOP "$qp"; (sleep "$secs"; kill -CONT "$qp") & ;;
        kill)
            echo "harness: SIGKILL of host $tgt's QEMU (asked by ${hosts[$j]} at ${SECONDS}s)" >>"$dir/summary.log"
            touch "$dir/$tgt.killed"; kill -KILL "$qp" ;;
        *) echo "harness: unknown MARUFS-CTL \"${lines[$k]}\" from ${hosts[$j]}" >>"$dir/summary.log" ;;
        esac
    done
    ctl_done[$j]=${#lines[@]}
}

run_scenario_once() {
    rm -f "$pool"; rm -rf "$dir"; mkdir -p "$dir"
    pids=() started=() ctl_done=()
    local hosts=($HOSTS) i h alive boot_hang=0
    launch_guest "${hosts[0]}" 1
    i=1
    while :; do
        alive=0
        for j in "${!pids[@]}"; do
            kill -0 "${pids[$j]}" 2>/dev/null || continue
            alive=1
            control "$j"
            if ! ready "${hosts[$j]}" && [ $((SECONDS - started[j])) -gt "$BOOT_TIMEOUT" ]; then
                echo "host ${hosts[$j]}: no MARUFS-READY after ${BOOT_TIMEOUT}s: killed (boot hang)" >>"$dir/summary.log"
                pkill -KILL -P "${pids[$j]}" 2>/dev/null; kill -KILL "${pids[$j]}" 2>/dev/null
                boot_hang=1
            fi
        done
        # Start the next host once the previous one is ready (or gone).
        if [ $i -lt ${#hosts[@]} ] && { ready "${hosts[$((i - 1))]}" || ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; }; then
            launch_guest "${hosts[$i]}" 0; i=$((i + 1)); continue
        fi
        [ $alive = 0 ] && [ $i -ge ${#hosts[@]} ] && break
        sleep 0.5
    done
    local st=0 failed_clean=0
    for j in "${!hosts[@]}"; do
        h=${hosts[$j]}
        wait "${pids[$j]}"; local rc=$?
        if [ -e "$dir/$h.killed" ]; then
            echo "=== host $h: killed by the harness as asked (qemu exit $rc); its log is not checked" >>"$dir/summary.log"
            continue
        fi
        {
            echo "=== host $h: qemu exit $rc"
            cat "$dir/$h.qemu"
            sed -n '/MARUFS-READY/,/MARUFS-DMESG-BEGIN/p' "$dir/$h.log" | grep -av 'MARUFS-DMESG-BEGIN'
        } >>"$dir/summary.log"
        if [ $rc -ne 0 ]; then echo "host $h: QEMU exited $rc (137 = killed after ${TIMEOUT}s)" >>"$dir/summary.log"; st=1; fi
        "$MARUFS_ROOT/tests/check-guest-log.sh" "$dir/$h.log" >"$dir/$h.check"
        case $? in
            0) ;;
            2) sed "s/^/host $h: /" "$dir/$h.check" >>"$dir/summary.log"; st=1; boot_hang=1 ;;
            3) sed "s/^/host $h: /" "$dir/$h.check" >>"$dir/summary.log"
               if [ "$EXPECT" = fail ]; then failed_clean=$((failed_clean + 1)); else st=1; fi ;;
            *) sed "s/^/host $h: /" "$dir/$h.check" >>"$dir/summary.log"; st=1 ;;
        esac
    done
    # A negative control passes when some host's test failed cleanly (no
    # kernel splat anywhere): the test bed saw the missing maintenance.
    if [ "$EXPECT" = fail ]; then
        if [ $failed_clean = 0 ]; then
            echo "negative control: every host passed; the test bed cannot see what this scenario disables" >>"$dir/summary.log"
            st=1
        elif [ -n "$EXPECT_MARKER" ] && ! grep -aq -e "$EXPECT_MARKER" "$dir"/*.log; then
            echo "negative control: a host failed, but not with \"$EXPECT_MARKER\" (the failure it must show)" >>"$dir/summary.log"
            st=1
        else
            echo "negative control: $failed_clean host(s) failed as expected" >>"$dir/summary.log"
        fi
    fi
    rm -f "$pool"
    [ $st = 0 ] && return 0
    [ $boot_hang = 1 ] && return 2
    return 1
}

# The initramfs with Python and the marufs package (scenarios with
# PYTHON=1), built on first use.
initrd_py=
python_initrd() {
    [ -n "$initrd_py" ] && return 0
    local pyenv
    pyenv=$("$MARUFS_ROOT/scripts/python-env.sh") || return 1
    initrd_py=$(MARUFS_INITRD_PYTHON="$pyenv/lib/python3.11/site-packages" "$MARUFS_ROOT/qemu/mkinitramfs.sh" \
        "$MARUFS_ROOT/out/initramfs-$variant-py.cpio.gz" "$ko" "${bins[@]}")
}

# The read-only root of LMCache's environment for the guests (scenarios with
# ROOTFS=lmcache, attached as /dev/vda), built on first use.
rootfs_lmcache=
lmcache_rootfs() {
    [ -n "$rootfs_lmcache" ] && return 0
    rootfs_lmcache=$("$MARUFS_ROOT/scripts/lmcache-rootfs.sh")
}

run_scenario() {  # run_scenario FILE
    local scn=$1 name TOPOLOGY=none HOSTS=a POOL_SIZE=512M SCRIPT= TIMEOUT=300 MEM=2G CPUS= BOOT_TIMEOUT=180 \
        MODPARAMS= EXPECT=pass EXPECT_MARKER= PYTHON= ROOTFS= DISK=
    name=$(basename "$scn" .scn)
    # shellcheck disable=SC1090
    . "$scn"
    local initrd=$initrd
    if [ "$PYTHON" = 1 ]; then
        python_initrd || { report "guest: $name" 1 0 /dev/null; return; }
        initrd=$initrd_py
    fi
    case $ROOTFS in
        "") ;;
        lmcache)
            lmcache_rootfs >"$out/rootfs-lmcache.log" 2>&1 \
                || { report "guest: $name (LMCache root image)" 1 0 "$out/rootfs-lmcache.log"; return; }
            DISK=$rootfs_lmcache ;;
        *) report "guest: $name (unknown ROOTFS=$ROOTFS)" 1 0 /dev/null; return ;;
    esac
    # One vCPU per guest when several guests share the 2-core machine.
    [ -n "$CPUS" ] || { [ "$(echo $HOSTS | wc -w)" -gt 1 ] && CPUS=1 || CPUS=2; }
    local dir="$out/$name" pool="/dev/shm/marufs-test-$$-$name.pool" s=$SECONDS st pids started
    run_scenario_once; st=$?
    # A guest that fails while booting (a hang, or a kernel report before its
    # init started the test: marufs is not loaded then) is an environment
    # failure: seen here under TCG on a loaded machine, e.g. KASAN in
    # handle_edge_irq at 0.008 s. Up to two more attempts, each reported.
    local try=1
    while [ $st = 2 ] && [ $try -le 2 ]; do
        rm -rf "$dir.boot-hang.$try"; mv "$dir" "$dir.boot-hang.$try"
        echo "note: $name: a guest failed while booting (hang or kernel splat before its test started); attempt $((try + 1))"
        run_scenario_once; st=$?
        cat "$dir.boot-hang.$try/summary.log" >>"$dir/summary.log"
        try=$((try + 1))
    done
    report "guest: $name" $st $((SECONDS - s)) "$dir/summary.log"
}

if [ $do_guest = 1 ]; then
    kdir=$("$MARUFS_ROOT/scripts/build-kernel.sh" "$variant") || die "kernel build failed"
    kernel="$kdir/arch/x86/boot/bzImage"
    step "kmod: build (warning-free, clippy)" "$MARUFS_ROOT/scripts/build-module.sh" "$variant"
    ko="$MARUFS_ROOT/out/kmod-$variant/marufs.ko"
    [ -f "$ko" ] || die "no module; cannot run guest tests"
    guest_pkgs=(maru-testkit mkfs-marufs maru-fsck maru-cli mount-marufs)
    guest_bins=(maru-testkit mkfs-marufs maru-fsck maru maru-kvdemo mount-marufs)
    cargo build --release -q $(printf -- '-p %s ' "${guest_pkgs[@]}") || die "guest tools build failed"
    bins=()
    for b in "${guest_bins[@]}"; do bins+=("$MARUFS_ROOT/target/release/$b"); done
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
