# Common helpers for marufs scripts. Source it; do not run it.
# shellcheck shell=bash

MARUFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything heavy (kernel source, kernel builds, apt state for other suites,
# guest images, pool files' directory) lives outside the repo, here:
MARUFS_CACHE=${MARUFS_CACHE:-/var/cache/marufs}
# Debian's kernel source package and the exact rustc the kernel needs.
LINUX_SOURCE_PKG=${LINUX_SOURCE_PKG:-linux-source-7.3}
RUST_WEB_VERSION=${RUST_WEB_VERSION:-1.85.0+dfsg3-1~deb12u3}
KRUSTC=${KRUSTC:-/usr/bin/rustc}
LLVM_BIN=/usr/lib/llvm-19/bin
export PATH="$LLVM_BIN:$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m[marufs]\033[0m %s\n' "$*" >&2; }
die() { printf '[marufs] error: %s\n' "$*" >&2; exit 1; }

# The Debian mirror this machine is configured with (no host names in the repo).
debian_mirror() {
    local uri=""
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        uri=$(awk '
            /^URIs:/ {u=$2}
            /^Suites:/ { for (i=2;i<=NF;i++) if ($i ~ /^(bookworm|trixie|stable)$/) {print u; exit} }
        ' /etc/apt/sources.list.d/*.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || die "cannot find the Debian mirror in the apt configuration"
    echo "${uri%/}"
}

# apt-get with a private source list and state (the machine's release is untouched).
# usage: apt_private NAME "suite1 suite2" with-system|alone apt-get-args...
# with-system: the machine's own sources are used too (to resolve dependencies).
apt_private() {
    local name=$1 suites=$2 mode=$3; shift 3
    local dir="$MARUFS_CACHE/apt/$name"
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    if [ ! -f "$dir/sources.list" ]; then
        local m; m=$(debian_mirror)
        : >"$dir/sources.list"
        for s in $suites; do echo "deb $m $s main" >>"$dir/sources.list"; done
    fi
    local opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache::Archives=$dir/archives"
                -o "APT::Get::List-Cleanup=0")
    [ "$mode" = with-system ] || opts+=(-o "Dir::Etc::SourceParts=/dev/null")
    if [ ! -f "$dir/updated" ] || [ -n "$(find "$dir/updated" -mmin +1440)" ]; then
        apt-get "${opts[@]}" update -qq >&2 && touch "$dir/updated"
    fi
    apt-get "${opts[@]}" "$@"
}

# Kernel variant directories. usage: kernel_build_dir normal|debug
kernel_version_file() { echo "$MARUFS_CACHE/kernel/source-version"; }
