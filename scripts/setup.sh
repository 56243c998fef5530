#!/usr/bin/env bash
# Install everything marufs needs to build and test on Debian 12 (root, idempotent).
#   scripts/setup.sh            # packages, kernel toolchain, QEMU, kernel source
# Packages from other suites come from this machine's own mirror through a
# private apt state, so the machine's release is never upgraded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (it installs packages)"
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$MARUFS_CACHE"

# procps: pgrep/pkill, with which tests/run.sh finds, stops and kills a
# guest's QEMU (not in a minimal Debian 12).
BOOKWORM_PKGS=(clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev libssl-dev
    cpio xz-utils make busybox-static ndctl daxctl kmod gzip file python3 python3-venv procps)
# Debian's Rust 1.85 with its own clippy and rustfmt: the kernel's toolchain, and
# the one tests/run.sh lints with (also the only cargo on a plain Debian 12).
RUST_WEB_PKGS=(rustc-web libstd-rust-web-dev libstd-rust-web-1.85 rust-web-src cargo-web rust-web-clippy rustfmt-web)

need=()
for p in "${BOOKWORM_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
for p in "${RUST_WEB_PKGS[@]}"; do
    [ "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null)" = "$RUST_WEB_VERSION" ] || need+=("$p=$RUST_WEB_VERSION")
done
if [ ${#need[@]} -gt 0 ]; then
    log "apt: installing ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ "$("$KRUSTC" --version | awk '{print $2}')" = 1.85.0 ] || die "$KRUSTC is not rustc 1.85.0"

# The cargo first on PATH (a rustup toolchain where there is one) runs the
# tests too: it needs clippy and rustfmt as well.
if ! { cargo clippy --version && cargo fmt --version; } >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then
        log "rustup: adding clippy and rustfmt to $(cargo --version)"
        rustup component add clippy rustfmt >/dev/null 2>&1 || true
    fi
    { cargo clippy --version && cargo fmt --version; } >/dev/null 2>&1 ||
        die "$(command -v cargo) has no clippy or rustfmt (rustup component add clippy rustfmt)"
fi

# QEMU >= 10 (CXL type-3 volatile memory) from bookworm-backports.
qemu_ok() { command -v qemu-system-x86_64 >/dev/null &&
    [ "$(qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\).*/\1/p')" -ge 10 ]; }
if ! qemu_ok; then
    log "apt: installing qemu-system-x86 from bookworm-backports"
    apt_private bookworm-backports "bookworm-backports" with-system \
        install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
    qemu_ok || die "qemu-system-x86_64 >= 10 not installed"
fi

# bindgen >= 0.71.1 for the kernel's Rust bindings.
if ! bindgen --version 2>/dev/null | grep -q '^bindgen 0\.7[1-9]'; then
    log "cargo: installing bindgen-cli 0.71 (about 1.5 min)"
    LIBCLANG_PATH=$LLVM_BIN/../lib cargo install -q bindgen-cli --version '^0.71' --locked
fi

# Debian's kernel source (a tarball), unpacked into the cache.
"$MARUFS_ROOT/scripts/kernel-source.sh" >/dev/null
log "setup complete"
