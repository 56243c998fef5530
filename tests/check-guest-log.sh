#!/usr/bin/env bash
# Judge one guest's serial log: exit 0 only if the guest's script reported
# success (MARUFS-RESULT rc=0) and the log holds no kernel splat. Prints why not.
# Exit 2: the first splat came while the guest kernel was still booting, before
# its init started the test (marufs is not loaded then): an environment failure
# the harness retries once and reports. Exit 3: the guest's script reported a
# failure (MARUFS-RESULT rc=N, N != 0) and the kernel stayed clean — what a
# negative control (a scenario with EXPECT=fail) needs. Exit 1: anything else.
#   tests/check-guest-log.sh LOG
set -uo pipefail
logf=$1
# Real reports only: lockdep's informational lines ("RCU lockdep checking is
# enabled", "MAX_LOCKDEP_KEYS") must not match.
splat='BUG:|WARNING:|Oops|Kernel panic|general protection fault|possible circular locking|possible recursive locking|inconsistent lock state|DEBUG_LOCKS_WARN_ON|KASAN:|UBSAN:|INFO: task .* blocked|Call Trace:'
st=0
ready_at=$(grep -an 'MARUFS-READY' "$logf" | head -n1 | cut -d: -f1)
splat_at=$(grep -aEn "$splat" "$logf" | head -n1 | cut -d: -f1)
if [ -n "$splat_at" ] && { [ -z "$ready_at" ] || [ "$splat_at" -lt "$ready_at" ]; }; then
    echo "kernel splat while the guest was booting (before its test started):"
    grep -aEn -A12 "$splat" "$logf" | head -n 30
    exit 2
fi
if ! grep -aq 'MARUFS-RESULT rc=0' "$logf"; then
    if grep -aq 'MARUFS-RESULT rc=' "$logf"; then
        grep -a 'MARUFS-RESULT' "$logf"; st=3
    else
        echo 'no result: the guest crashed, hung or was killed'; st=1
    fi
fi
if grep -aEn "$splat" "$logf" >/dev/null; then
    echo "kernel splat in the guest log:"
    grep -aEn -A12 "$splat" "$logf" | head -n 60
    st=1
fi
exit $st
