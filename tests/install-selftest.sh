#!/usr/bin/env bash
# Host self-test of scripts/install.sh (no root needed): install into a
# temporary DESTDIR puts every file where it belongs and lists it in the
# manifest; a second install changes nothing; uninstall leaves nothing behind
# (and keeps what was there before); the man pages render without warnings.
# Uses fake binaries, and a fake module unless out/kmod-*/marufs.ko exists.
#   tests/install-selftest.sh        (ends with "install-selftest: N passed, N failed")
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
inst="$root/scripts/install.sh"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() {  # check DESCRIPTION CMD...
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# Fake binaries.
bin="$work/bin"; mkdir -p "$bin"
for b in mkfs-marufs maru-fsck mount-marufs maru; do
    printf '#!/bin/sh\necho %s\n' "$b" >"$bin/$b"; chmod 755 "$bin/$b"
done
module=""
for v in normal debug; do
    [ -f "$root/out/kmod-$v/marufs.ko" ] && { module="$root/out/kmod-$v/marufs.ko"; break; }
done
real_module=1
if [ -z "$module" ]; then
    real_module=0 module="$work/marufs.ko"; echo "fake module" >"$module"
fi
rel=9.9.9-marufs-selftest
d="$work/dest"
run_install() { "$inst" install --destdir "$d" --prefix /usr/local --from "$bin" --module "$module" --kernelrelease "$rel" "$@"; }

pages=()
for md in "$root"/Documentation/man/*.md; do pages+=("$(basename "$md" .md)"); done
expected=(
    "/lib/modules/$rel/extra/marufs.ko"
    /sbin/mkfs.marufs /sbin/maru-fsck /sbin/mount.marufs
    /usr/local/bin/maru
    /usr/local/share/marufs/install-manifest
)
for p in "${pages[@]}"; do expected+=("/usr/local/share/man/man${p##*.}/$p"); done

listing() { (cd "$1" && find . -mindepth 1 \( -type f -o -type l \) | sed 's|^\.||' | sort); }

# 1. install
out=$(run_install 2>&1); rc=$?
check "install exits 0" [ $rc = 0 ]
[ $rc = 0 ] || echo "$out"
missing=0
for f in "${expected[@]}"; do [ -f "$d$f" ] || { echo "  missing $f"; missing=1; }; done
check "every file installed (${#expected[@]}: module, 4 tools, ${#pages[@]} man pages, manifest)" [ $missing = 0 ]
check "nothing else installed" [ "$(listing "$d")" = "$(printf '%s\n' "${expected[@]}" | sort)" ]
man="$d/usr/local/share/marufs/install-manifest"
check "manifest lists exactly the installed files" \
    [ "$(sed -n 's/^f //p' "$man" | sort)" = "$(listing "$d")" ]
check "manifest records the kernel release" grep -qx "k $rel" "$man"
check "modes: tools 0755, module and pages 0644" [ \
    "$(stat -c %a "$d/sbin/mount.marufs") $(stat -c %a "$d/lib/modules/$rel/extra/marufs.ko") $(stat -c %a "$d/usr/local/share/man/man8/mount.marufs.8")" = "755 644 644" ]
check "cargo names become mkfs.marufs / mount.marufs" [ "$("$d/sbin/mount.marufs")" = mount-marufs ]
check "module copied byte for byte" cmp -s "$module" "$d/lib/modules/$rel/extra/marufs.ko"
check "depmod skipped with a note for an unstaged DESTDIR" grep -q "depmod skipped" <<<"$out"

# 2. the man pages are valid roff
if command -v groff >/dev/null 2>&1; then
    warn=""
    for p in "${pages[@]}"; do
        w=$(groff -man -Tutf8 -ww -z "$d/usr/local/share/man/man${p##*.}/$p" 2>&1)
        [ -z "$w" ] || warn+="$p: $w"$'\n'
        groff -man -Tutf8 -P-cbou "$d/usr/local/share/man/man${p##*.}/$p" 2>/dev/null | grep -q '^NAME' || warn+="$p: no NAME section"$'\n'
    done
    [ -z "$warn" ] || printf '%s' "$warn"
    check "man pages render without warnings and have NAME" [ -z "$warn" ]
    check "mount.marufs(8) renders its options" \
        grep -q 'MARUFS_MODULE' <(groff -man -Tutf8 -P-cbou "$d/usr/local/share/man/man8/mount.marufs.8" 2>/dev/null)
else
    echo "skip man page rendering (no groff)"
fi

# 3. a second install is idempotent
before=$(listing "$d"); mbefore=$(sort "$man")
out=$(run_install 2>&1); rc=$?
check "second install exits 0" [ $rc = 0 ]
check "second install: same files, same manifest" [ "$(listing "$d")" = "$before" ] && [ "$(sort "$man")" = "$mbefore" ]
check "manifest has no duplicate lines" [ "$(sort "$man" | uniq -d)" = "" ]

# 4. uninstall leaves nothing behind
out=$("$inst" uninstall --destdir "$d" --prefix /usr/local 2>&1); rc=$?
check "uninstall exits 0" [ $rc = 0 ]
left=$(cd "$d" && find . -mindepth 1)
[ -z "$left" ] || echo "$left"
check "uninstall leaves nothing behind" [ -z "$left" ]
"$inst" uninstall --destdir "$d" --prefix /usr/local >/dev/null 2>&1
check "uninstall without a manifest refuses" [ $? != 0 ]

# 5. what was there before stays; maru is optional; another prefix
d="$work/dest2"
mkdir -p "$d/usr/share/man/man8" "$d/sbin"
echo keep >"$d/usr/share/man/man8/other.8"; echo keep >"$d/sbin/other"
rm "$bin/maru"
out=$("$inst" install --destdir "$d" --prefix /usr --from "$bin" --module "$module" --kernelrelease "$rel" 2>&1); rc=$?
check "install without maru exits 0" [ $rc = 0 ]
check "maru skipped with a note" [ ! -e "$d/usr/bin/maru" ]
check "maru skip is said" grep -q 'maru not built' <<<"$out"
check "--prefix /usr puts pages in /usr/share/man" [ -f "$d/usr/share/man/man8/mkfs.marufs.8" ]
"$inst" uninstall --destdir "$d" --prefix /usr >/dev/null 2>&1
check "uninstall keeps pre-existing files and directories" \
    [ "$(cd "$d" && find . -mindepth 1 | sort | tr '\n' ' ')" = "./sbin ./sbin/other ./usr ./usr/share ./usr/share/man ./usr/share/man/man8 ./usr/share/man/man8/other.8 " ]

# 6. missing tools are an error that says what to build
rm "$bin/mount-marufs"
out=$("$inst" install --destdir "$work/dest3" --from "$bin" --no-module 2>&1); rc=$?
check "a missing tool fails the install" [ $rc != 0 ]
check "the missing tool is named" grep -q 'not built: mount-marufs' <<<"$out"

# 7. a staged kernel tree gets depmod -b (needs the real module and depmod)
if [ $real_module = 1 ] && command -v depmod >/dev/null 2>&1; then
    printf '#!/bin/sh\n' >"$bin/mount-marufs"; chmod 755 "$bin/mount-marufs"
    d="$work/staged"; mkdir -p "$d/lib/modules/$rel"; : >"$d/lib/modules/$rel/modules.order"
    : >"$d/lib/modules/$rel/modules.builtin"
    out=$(run_install 2>&1)
    check "staged DESTDIR: depmod -b lists the module" grep -q "extra/marufs.ko" "$d/lib/modules/$rel/modules.dep"
else
    echo "skip depmod -b (no real module or no depmod)"
fi

echo "install-selftest: $passed passed, $failed failed"
[ $failed = 0 ]
