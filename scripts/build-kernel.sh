#!/usr/bin/env bash
# Build the guest kernel (bzImage + the Rust artifacts out-of-tree modules need).
#   scripts/build-kernel.sh [normal|debug]   -> prints the build directory
# Cached in $MARUFS_CACHE/kernel/<variant>-<key>, key = source version + config
# fragments + rustc + bindgen versions, so a second run takes seconds.
# KDIR=DIR: use your own built, Rust-enabled kernel tree instead (nothing is built).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

variant=${1:-normal}
case $variant in normal|debug) ;; *) die "usage: build-kernel.sh [normal|debug]";; esac

if [ -n "${KDIR:-}" ]; then
    [ -f "$KDIR/.config" ] || die "KDIR=$KDIR has no .config (not a built kernel tree)"
    grep -q '^CONFIG_RUST=y' "$KDIR/.config" || die "KDIR=$KDIR is not built with CONFIG_RUST=y"
    echo "$KDIR"; exit 0
fi

src=$("$MARUFS_ROOT/scripts/kernel-source.sh")
frags=("$MARUFS_ROOT/qemu/kernel.config")
[ "$variant" = debug ] && frags+=("$MARUFS_ROOT/qemu/kernel-debug.config")
[ "$variant" = normal ] && frags+=("$MARUFS_ROOT/qemu/kernel-normal.config")
command -v bindgen >/dev/null || die "bindgen not found: run scripts/setup.sh"
key=$( { cat "$src/.marufs-version"; cat "${frags[@]}"; "$KRUSTC" --version; bindgen --version;
         clang --version | head -1; } | sha256sum | cut -c1-16)
out="$MARUFS_CACHE/kernel/$variant-$key"
if [ -f "$out/.marufs-built" ]; then echo "$out"; exit 0; fi

mkdir -p "$out"
mk=(make -s -C "$src" O="$out" LLVM=1 RUSTC="$KRUSTC" BINDGEN="$(command -v bindgen)")
log "configuring $variant kernel in $out"
"${mk[@]}" tinyconfig >/dev/null
(cd "$out" && KCONFIG_CONFIG=.config "$src/scripts/kconfig/merge_config.sh" -m -O "$out" .config "${frags[@]}" >/dev/null)
"${mk[@]}" olddefconfig >/dev/null
# Every option the fragments ask for must have survived olddefconfig.
missing=$(cat "${frags[@]}" | grep -E '^CONFIG_[A-Z0-9_]+=' | while IFS= read -r line; do
    grep -qx "$line" "$out/.config" || echo "$line"; done)
for line in $(cat "${frags[@]}" | sed -n 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1/p'); do
    grep -q "^$line=" "$out/.config" && missing+=" $line=n"
done
[ -z "$missing" ] || die "kernel config options not satisfied: $missing"
"${mk[@]}" rustavailable >/dev/null || die "Rust is not available for this kernel build"

log "building $variant kernel (fresh build takes 10-15 min on 2 cores)"
start=$SECONDS
"${mk[@]}" -j"$(nproc)" bzImage modules >"$out/build.log" 2>&1 || { tail -40 "$out/build.log" >&2; die "kernel build failed (log: $out/build.log)"; }
log "kernel built in $((SECONDS - start)) s"
touch "$out/.marufs-built"
echo "$out"
