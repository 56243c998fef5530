#!/usr/bin/env bash
# Self-test of the guest-log checker: clean logs pass, logs with each kind of
# kernel report fail; the tracked-build-output check flags what it must.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
check="$here/../check-guest-log.sh"
bad=0
for f in "$here"/logs/*.log; do
    n=$(basename "$f" .log)
    "$check" "$f" >/dev/null; rc=$?
    case $n in
        good*) want=0 ;;
        boot*) want=2 ;;
        failed*) want=3 ;;
        *) want=1 ;;
    esac
    if [ $rc = $want ]; then echo "ok   $n"; else echo "FAIL $n (checker exit $rc, want $want)"; bad=1; fi
done

# tests/check-tracked.sh on scratch repositories: clean passes; a tracked
# target/ file, a tracked *.rlib and a tracked ignored file each fail.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkrepo() {  # mkrepo NAME FILE... : a repo with .gitignore "*.log" and FILEs added
    local r="$tmp/$1"; shift
    git init -q "$r" && echo '*.log' >"$r/.gitignore"
    for f in "$@"; do mkdir -p "$r/$(dirname "$f")"; echo x >"$r/$f"; done
    (cd "$r" && git add -f .gitignore "$@") || return 1
    echo "$r"
}
for case in "0 clean src/main.rs" "1 target fuzz/target/release/x" "1 rlib lib/libfoo.rlib" "1 ignored out.log"; do
    set -- $case
    r=$(mkrepo "$2" "${@:3}") || { echo "FAIL check-tracked $2 (setup)"; bad=1; continue; }
    "$here/../check-tracked.sh" "$r" >/dev/null; rc=$?
    if [ $rc = "$1" ]; then echo "ok   check-tracked $2"; else echo "FAIL check-tracked $2 (exit $rc, want $1)"; bad=1; fi
done
# tests/check-unsafe.sh on copies of kmod/: the tree passes; unsafe in fs.rs,
# an undocumented unsafe block, a bare SAFETY reference and vfs/ naming the
# filesystem each fail.
src=$(cd "$here/../.." && pwd)
for case in "0 clean" "1 fs-unsafe" "1 undocumented" "1 bare" "1 names-fs"; do
    set -- $case
    r="$tmp/u-$2"; mkdir -p "$r/userspace/marufs-core"
    cp -r "$src/kmod" "$r/kmod" && cp -r "$src/userspace/marufs-core/src" "$r/userspace/marufs-core/src"
    case $2 in
        fs-unsafe) printf 'fn x() { unsafe { core::hint::unreachable_unchecked() } }\n' >>"$r/kmod/fs.rs" ;;
        undocumented) printf 'fn x() {\n    let _ = 1;\n    unsafe { core::hint::unreachable_unchecked() }\n}\n' >>"$r/kmod/vfs/sys.rs" ;;
        bare) printf 'fn x() {\n    // SAFETY: VFS contract.\n    unsafe { core::hint::unreachable_unchecked() }\n}\n' >>"$r/kmod/vfs/sys.rs" ;;
        names-fs) printf 'use crate::fs::Marufs;\n' >>"$r/kmod/vfs/sys.rs" ;;
    esac
    "$here/../check-unsafe.sh" "$r" >/dev/null; rc=$?
    if [ $rc = "$1" ]; then echo "ok   check-unsafe $2"; else echo "FAIL check-unsafe $2 (exit $rc, want $1)"; bad=1; fi
done
exit $bad
