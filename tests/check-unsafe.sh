#!/usr/bin/env bash
# The module's unsafe-confinement rules (Documentation/design/kernel.md,
# "Structure"), checked on the source:
#  1. only kmod/vfs/ has `unsafe` (fs.rs, batch.rs, media.rs, marufs_main.rs
#     and the compiled-in core have none);
#  2. kmod/vfs/ never names the filesystem above it (`crate::fs`,
#     `crate::batch`): the layer is generic over the filesystem traits;
#  3. every `unsafe` block, impl and fn body in kmod/vfs/ has a `// SAFETY:`
#     comment on its line or in the comment block right above it, and no
#     SAFETY comment is a bare reference ("VFS contract.", "as above", ...).
# (The kernel's clippy lint undocumented_unsafe_blocks checks blocks too, but
# only when the module is built; this runs in a second, and checks 1-3.)
#   tests/check-unsafe.sh [ROOT]    (default: this checkout)
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root/kmod" || exit 2
bad=0
for f in fs.rs batch.rs media.rs marufs_main.rs; do
    [ -f "$f" ] || continue
    if grep -nE '\bunsafe\b' "$f" | grep -vE '^\s*[0-9]+:\s*//' >/tmp/check-unsafe.$$; then
        echo "kmod/$f has unsafe (only kmod/vfs/ may):"; sed 's/^/  /' /tmp/check-unsafe.$$; bad=1
    fi
done
if grep -rnE '\bunsafe\b' "$root/userspace/marufs-core/src" | grep -vE ':\s*//|forbid\(unsafe_code\)' >/tmp/check-unsafe.$$; then
    echo "marufs-core has unsafe:"; sed 's/^/  /' /tmp/check-unsafe.$$; bad=1
fi
if grep -rnE 'crate::(fs|batch)\b' vfs/ >/tmp/check-unsafe.$$; then
    echo "kmod/vfs/ names the filesystem above it:"; sed 's/^/  /' /tmp/check-unsafe.$$; bad=1
fi
rm -f /tmp/check-unsafe.$$
# Rule 3: scan each vfs file; a comment block (consecutive // lines) that
# contains "SAFETY:" documents the unsafe on the line right after it.
for f in vfs/*.rs; do
    awk -v F="kmod/$f" '
        function flag(msg) { printf "%s:%d: %s\n", F, NR, msg; bad = 1 }
        /^[[:space:]]*\/\// {
            if ($0 ~ /SAFETY:/) {
                safety = 1
                t = $0; sub(/.*SAFETY:[[:space:]]*/, "", t)
                if (tolower(t) ~ /^(vfs contract|mm contract|function contract|as above|see above|same as above|ditto)\.?[[:space:]]*$/)
                    flag("SAFETY comment gives no argument: " t)
            }
            next
        }
        {
            line = $0; sub(/\/\/.*/, "", line)
            if (line ~ /(^|[^_[:alnum:]])unsafe[[:space:]]*(\{|impl)/ && line !~ /SAFETY:/ && !safety)
                flag("unsafe without a SAFETY comment")
            if (line !~ /^[[:space:]]*(#\[|$)/) safety = 0
        }
        END { exit bad }' "$f" || bad=1
done
[ $bad = 0 ] && echo "unsafe confined to kmod/vfs/, every block argued ($(grep -rhoE '(^|[^_[:alnum:]])unsafe[[:space:]]*(\{|impl)' vfs/ | wc -l) unsafe blocks/impls)"
exit $bad
