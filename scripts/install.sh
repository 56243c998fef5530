#!/usr/bin/env bash
# Install or uninstall marufs: the kernel module, the tools and the man pages.
#
#   scripts/install.sh [install|uninstall] [--destdir DIR] [--prefix /usr/local]
#                      [--kdir KERNEL_BUILD_DIR | --module marufs.ko | --no-module]
#                      [--kernelrelease REL] [--from DIR] [--build]
#
# install (default):
#   DESTDIR/lib/modules/REL/extra/marufs.ko, then depmod REL
#   DESTDIR/sbin/{mkfs.marufs,maru-fsck,mount.marufs}   (mount(8) and mkfs(8)
#                                                         look for helpers in /sbin)
#   DESTDIR/PREFIX/bin/maru                              (if it has been built)
#   DESTDIR/PREFIX/share/man/man{1,5,8}/*                (from Documentation/man/*.md)
#   DESTDIR/PREFIX/share/marufs/install-manifest         (what was installed)
# uninstall: removes exactly what the manifest lists (files, then the
#   directories install created, if empty), then runs depmod.
#
# --kdir DIR      build the module against that kernel tree (scripts/build-module.sh)
# --module FILE   install this marufs.ko (default: out/kmod-normal, else out/kmod-debug)
# --no-module     tools and man pages only
# --kernelrelease REL  (default: the module's vermagic, else DIR's kernel.release, else uname -r)
# --from DIR      where the binaries are (default: target/release)
# --build         cargo build --release the tools first
# With --destdir, depmod runs only where it can work (DESTDIR/lib/modules/REL
# already holds a modules.order, i.e. a staged system); otherwise it is skipped
# with a note. Running it twice is harmless (idempotent); uninstall without a
# manifest refuses.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

action=install destdir="" prefix=/usr/local kdir="" module="" no_module=0 rel="" from="" build=0
while [ $# -gt 0 ]; do
    case $1 in
        install|uninstall) action=$1 ;;
        --destdir) destdir=${2:?--destdir needs a directory}; shift ;;
        --destdir=*) destdir=${1#*=} ;;
        --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
        --prefix=*) prefix=${1#*=} ;;
        --kdir) kdir=${2:?--kdir needs a directory}; shift ;;
        --kdir=*) kdir=${1#*=} ;;
        --module) module=${2:?--module needs a file}; shift ;;
        --module=*) module=${1#*=} ;;
        --no-module) no_module=1 ;;
        --kernelrelease) rel=${2:?--kernelrelease needs a value}; shift ;;
        --kernelrelease=*) rel=${1#*=} ;;
        --from) from=${2:?--from needs a directory}; shift ;;
        --from=*) from=${1#*=} ;;
        --build) build=1 ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
case $prefix in /*) ;; *) die "--prefix must be absolute: $prefix" ;; esac
prefix=${prefix%/}
if [ -n "$destdir" ]; then
    mkdir -p "$destdir"
    destdir=$(cd "$destdir" && pwd)
    [ "$destdir" = / ] && destdir=""
fi
if [ -z "$destdir" ] && [ "$(id -u)" != 0 ]; then
    die "installing into / needs root (or use --destdir DIR)"
fi

manifest_rel="$prefix/share/marufs/install-manifest"
manifest="$destdir$manifest_rel"
# Manifest lines: "f PATH" (file), "d PATH" (directory created by install),
# "k REL" (kernel release the module went to). Paths are without DESTDIR.
declare -A have=()
entries=()
record() {  # record TYPE PATH
    local key="$1 $2"
    [ -n "${have[$key]:-}" ] && return 0
    have[$key]=1; entries+=("$key")
}
if [ -f "$manifest" ]; then
    while IFS= read -r line; do
        [ -n "$line" ] && record "${line%% *}" "${line#* }"
    done <"$manifest"
fi

mkdirs() {  # mkdirs PATH: create PATH's missing ancestors and itself, recording them
    local p=$1 parts=() d
    while [ "$p" != "/" ] && [ -n "$p" ] && [ ! -d "$destdir$p" ]; do
        parts=("$p" "${parts[@]}"); p=$(dirname "$p")
    done
    for d in "${parts[@]}"; do
        mkdir "$destdir$d"; chmod 755 "$destdir$d"; record d "$d"
    done
}
put() {  # put MODE SRC DEST
    local mode=$1 src=$2 dest=$3
    mkdirs "$(dirname "$dest")"
    install -m "$mode" "$src" "$destdir$dest"
    record f "$dest"
    echo "  $dest"
}
run_depmod() {  # run_depmod REL
    local r=$1
    command -v depmod >/dev/null 2>&1 || { log "depmod not found: run depmod $r on the target"; return 0; }
    if [ -z "$destdir" ]; then
        depmod -a "$r" && log "depmod $r" || log "depmod $r failed"
    elif [ -f "$destdir/lib/modules/$r/modules.order" ]; then
        depmod -b "$destdir" -a "$r" && log "depmod -b $destdir $r" || log "depmod -b $destdir $r failed"
    else
        log "note: depmod skipped ($destdir/lib/modules/$r is not a staged kernel); run 'depmod $r' on the target"
    fi
}

if [ "$action" = uninstall ]; then
    [ -f "$manifest" ] || die "nothing to uninstall: no manifest at $manifest"
    rels=() dirs=()
    for e in "${entries[@]}"; do
        t=${e%% *} p=${e#* }
        case $t in
            f) if [ -e "$destdir$p" ] || [ -L "$destdir$p" ]; then rm -f "$destdir$p"; echo "  removed $p"; fi ;;
            d) dirs=("$p" "${dirs[@]}") ;;
            k) rels+=("$p") ;;
        esac
    done
    rm -f "$manifest"
    # Directories install created, deepest first (reverse order of creation).
    for d in "${dirs[@]}"; do
        [ -d "$destdir$d" ] || continue
        rmdir "$destdir$d" 2>/dev/null || log "kept $d (not empty)"
    done
    for r in "${rels[@]}"; do run_depmod "$r"; done
    if [ -z "$destdir" ] && grep -qw marufs /proc/filesystems 2>/dev/null; then
        log "note: the marufs module is still loaded (rmmod marufs after unmounting)"
    fi
    log "uninstalled"
    exit 0
fi

# ------------------------------------------------------------------ install
[ -n "$from" ] || from="$MARUFS_ROOT/target/release"
if [ $build = 1 ]; then
    log "building the tools (release)"
    bins=(mkfs-marufs maru-fsck mount-marufs)
    [ -d "$MARUFS_ROOT/userspace/maru" ] && bins+=(maru)
    (cd "$MARUFS_ROOT" && cargo build --release -q $(printf -- '-p %s ' "${bins[@]}"))
fi

# The module.
if [ $no_module = 0 ]; then
    if [ -n "$kdir" ]; then
        [ -z "$module" ] || die "--kdir and --module exclude each other"
        module=$(KDIR="$kdir" "$MARUFS_ROOT/scripts/build-module.sh" normal) || die "module build against $kdir failed"
    elif [ -z "$module" ]; then
        for v in normal debug; do
            [ -f "$MARUFS_ROOT/out/kmod-$v/marufs.ko" ] && { module="$MARUFS_ROOT/out/kmod-$v/marufs.ko"; break; }
        done
        [ -n "$module" ] || die "no marufs.ko: build it (scripts/build-module.sh, or --kdir DIR), give --module FILE, or use --no-module"
    fi
    [ -f "$module" ] || die "$module: no such module file"
    if [ -z "$rel" ]; then
        rel=$(modinfo -F vermagic "$module" 2>/dev/null | awk '{print $1}') || true
    fi
    if [ -z "$rel" ] && [ -n "$kdir" ] && [ -f "$kdir/include/config/kernel.release" ]; then
        rel=$(cat "$kdir/include/config/kernel.release")
    fi
    [ -n "$rel" ] || rel=$(uname -r)
fi

log "installing into ${destdir:-/} (prefix $prefix)"
if [ $no_module = 0 ]; then
    put 0644 "$module" "/lib/modules/$rel/extra/marufs.ko"
    record k "$rel"
fi

# The tools: cargo names them with dashes; mkfs(8) and mount(8) want dots.
missing=()
for pair in mkfs-marufs:/sbin/mkfs.marufs maru-fsck:/sbin/maru-fsck mount-marufs:/sbin/mount.marufs; do
    src=${pair%%:*} dest=${pair#*:}
    if [ -x "$from/$src" ]; then put 0755 "$from/$src" "$dest"; else missing+=("$src"); fi
done
[ ${#missing[@]} = 0 ] || die "not built: ${missing[*]} in $from (cargo build --release -p ${missing[*]// / -p }, or --build)"
if [ -x "$from/maru" ]; then
    put 0755 "$from/maru" "$prefix/bin/maru"
else
    log "note: maru not built ($from/maru): skipped"
fi

# Man pages: Markdown -> roff (scripts/md2man.awk).
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$MARUFS_ROOT/Cargo.toml" | head -1)
date=$(git -C "$MARUFS_ROOT" log -1 --format=%cs 2>/dev/null || date +%Y-%m-%d)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for md in "$MARUFS_ROOT"/Documentation/man/*.md; do
    [ -f "$md" ] || continue
    page=$(basename "$md" .md)          # e.g. mkfs.marufs.8
    sec=${page##*.}
    case $sec in [1-9]) ;; *) log "skipped $md (no section in its name)"; continue ;; esac
    awk -v version="$version" -v date="$date" -f "$MARUFS_ROOT/scripts/md2man.awk" "$md" >"$tmp/$page"
    put 0644 "$tmp/$page" "$prefix/share/man/man$sec/$page"
done

# The manifest last (it lists itself, so uninstall removes it too).
mkdirs "$prefix/share/marufs"
record f "$manifest_rel"
printf '%s\n' "${entries[@]}" >"$manifest.tmp"
mv "$manifest.tmp" "$manifest"; chmod 644 "$manifest"
echo "  $manifest_rel"

[ $no_module = 1 ] || run_depmod "$rel"
command -v mandb >/dev/null 2>&1 && [ -z "$destdir" ] && mandb -q 2>/dev/null || true
log "installed (uninstall: $0 uninstall${destdir:+ --destdir $destdir}${prefix:+ --prefix $prefix})"
