#!/bin/sh
# A fence helper that fails its first call (exit 1: "could not cut the host
# off") and succeeds after: the kernel must postpone the takeover, say so,
# and take the host over at a later try.
echo "$*" >> /tmp/fence-calls
n=$(wc -l < /tmp/fence-calls)
[ "$n" -ge 2 ] || exit 1
exit 0
