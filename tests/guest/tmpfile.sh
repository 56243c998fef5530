#!/bin/sh
# O_TMPFILE + linkat publishing (with revocation of the creator's writable
# mapping), the discard ioctl and the batched
# lookup ioctl (results, errors, permission), through the real syscalls.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
fresh_mount "node=1"
as() { u=$1; shift; su -s /bin/sh "$u" -c "$*" 2>&1; }

mkdir $M/tmp $M/app || fail "mkdir"
maru-testkit tmpfile $M/tmp linked --len $((5 << 20)) --seed 11 || fail "tmpfile scenario"
maru-testkit key-verify $M/tmp/linked --len $((5 << 20)) --seed 11 || fail "linked key verify"
ls -l $M/tmp

# O_TMPFILE as an unprivileged user: only in a directory it may write.
out=$(as alice "maru-testkit tmpfile $M/app alice-key --len 4096 --seed 3") && fail "tmpfile in a directory alice may not write: $out"
echo "$out" | grep -q "Permission denied" || fail "tmpfile EACCES: $out"
mkdir $M/alice && chown alice $M/alice
as alice "maru-testkit tmpfile $M/alice alice-key --len 4096 --seed 3" || fail "tmpfile as alice"
[ "$(stat -c %U $M/alice/alice-key)" = alice ] || fail "owner $(stat -c %U $M/alice/alice-key)"

# The creator discards its unpublished key (named or unnamed).
mkdir $M/disc || fail "mkdir disc"
maru-testkit discard $M/disc || fail "discard"

# Batched lookups: one ioctl, per-name results.
echo one > $M/app/k1 && echo twotwo > $M/app/k2 || fail "keys"
out=$(maru-testkit lookup $M/app k1 nope k2) || fail "lookup ioctl: $out"
echo "$out"
echo "$out" | grep -q "^k1 0 4 100644 0$" || fail "k1 result"
echo "$out" | grep -q "^nope 2 0 " || fail "nope result (ENOENT)"
echo "$out" | grep -q "^k2 0 7 " || fail "k2 result"
echo "$out" | grep -q "^present 2$" || fail "present count"
# Presence only (LOOKUP_EXISTS): one byte per name; twice (the second is
# answered from the kept answers), then again after an unlink.
for r in 1 2; do
    out=$(maru-testkit lookup --exists $M/app k1 nope k2 | tr '\n' ' ')
    [ "$out" = "k1 1 nope 0 k2 1 present 2 " ] || fail "exists lookup $r: $out"
done
rm $M/app/k2 || fail "rm k2"
out=$(maru-testkit lookup --exists $M/app k1 nope k2 | tr '\n' ' ')
[ "$out" = "k1 1 nope 0 k2 0 present 1 " ] || fail "exists lookup after unlink: $out"
echo twotwo > $M/app/k2 || fail "k2 again"
# Hostile requests: precise errnos, nothing written.
maru-testkit lookup-hostile $M/app k1 || fail "hostile lookups"
# Search permission on the directory is required, as for a path walk.
mkdir $M/private && chmod 700 $M/private && echo s > $M/private/s || fail "private"
out=$(as bob "maru-testkit lookup $M/private s") && fail "lookup without search permission: $out"
echo "$out" | grep -q "Permission denied" || fail "lookup EACCES: $out"
# The root holds directories, not keys.
out=$(maru-testkit lookup $M app 2>&1) && fail "lookup in the root: $out"
echo "$out" | grep -q "Invalid argument" || fail "root lookup EINVAL: $out"

umount $M || fail "umount"
maru-fsck -n /dev/dax0.0 || fail "fsck after tmpfile run"
log "tmpfile: ok"
