#!/usr/bin/env bash
# Fails when git tracks a build output: a path under a target/ directory, an
# object or Rust library (*.o, *.ko, *.rlib, *.rmeta, *.so, *.a), or any file
# that a .gitignore ignores (`git ls-files -ci --exclude-standard`).
#   tests/check-tracked.sh [REPO]     (default: this checkout)
# Outside a git checkout (a tarball of the tree) there is nothing to check.
set -uo pipefail
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$repo" || exit 2
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "not a git checkout: nothing to check"; exit 0
fi
bad=$( { git ls-files -ci --exclude-standard
         git ls-files | grep -E '(^|/)target/|\.(o|ko|rlib|rmeta|so|a)$'; } | sort -u)
if [ -n "$bad" ]; then
    n=$(printf '%s\n' "$bad" | wc -l)
    echo "git tracks $n build output(s) or ignored file(s); untrack them with git rm -r --cached:"
    printf '%s\n' "$bad" | head -40 | sed 's/^/  /'
    exit 1
fi
echo "no tracked build outputs ($(git ls-files | wc -l) files tracked)"
