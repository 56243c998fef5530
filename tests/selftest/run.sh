#!/usr/bin/env bash
# Self-test of the guest-log checker: clean logs pass, logs with each kind of
# kernel report fail.
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
        *) want=1 ;;
    esac
    if [ $rc = $want ]; then echo "ok   $n"; else echo "FAIL $n (checker exit $rc, want $want)"; bad=1; fi
done
exit $bad
