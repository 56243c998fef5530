#!/bin/sh
# POSIX permissions enforced by the kernel for several unprivileged users
# (alice and bob share group kv; carol is alone), and the exact errnos of
# common mistakes.
. /lib/marufs/guest-lib.sh
M=/mnt/maru
mkdir -p $M /mnt/other
load_marufs || fail "insmod"
mkfs.marufs -q /dev/dax0.0 || fail "mkfs"
as() { u=$1; shift; su -s /bin/sh "$u" -c "$*" 2>&1; }
must_fail() {  # must_fail "ERRTEXT" user command...
    local want=$1 u=$2; shift 2
    if out=$(as "$u" "$@"); then fail "$u: '$*' succeeded, expected: $want"; fi
    echo "$out" | grep -q "$want" || fail "$u: '$*' said '$out', expected '$want'"
    log "$u: refused as expected: $* -> $want"
}
must_work() { local u=$1; shift; as "$u" "$@" >/dev/null || fail "$u: '$*' failed: $(as "$u" "$@")"; }

# Only root formats and mounts.
must_fail "[Pp]ermission denied" alice "mkfs.marufs -f /dev/dax0.0"
must_fail "permission denied\|Operation not permitted" alice "mount -t marufs /dev/dax0.0 /mnt/other"
mount -t marufs -o node=5,mode=1777 /dev/dax0.0 $M || fail "mount"

# alice: a private directory and a private key.
must_work alice "mkdir $M/alice && chmod 700 $M/alice && echo secret > $M/alice/k && chmod 600 $M/alice/k"
must_fail "Permission denied" bob "ls $M/alice"
must_fail "Permission denied" bob "cat $M/alice/k"
must_fail "Permission denied" bob "maru-testkit key-verify $M/alice/k --len 7"

# A directory shared with group kv; readable key.
must_work alice "mkdir $M/team && chgrp kv $M/team && chmod 750 $M/team"
must_work alice "echo shared > $M/team/k && chgrp kv $M/team/k && chmod 640 $M/team/k"
[ "$(as bob "cat $M/team/k")" = shared ] || fail "bob cannot read a kv-group key"
must_fail "Permission denied" carol "cat $M/team/k"
# Without write permission on the directory, no unlink and no create.
must_fail "Permission denied" bob "rm -f $M/team/k"
must_fail "Permission denied" bob "echo x > $M/team/new"
# Readable key, but a writable mapping needs a writable fd: refused.
must_fail "Permission denied" bob "echo x >> $M/team/k"
# chmod/chown only by the owner (or root).
must_fail "Operation not permitted" bob "chmod 777 $M/team/k"
must_fail "Operation not permitted" alice "chown bob $M/team/k"
# Sticky root: bob cannot remove alice's directory.
must_fail "Operation not permitted\|Permission denied" bob "rmdir $M/team"
# Group write lets bob create keys in a kv directory.
must_work alice "chmod 770 $M/team"
must_work bob "echo from-bob > $M/team/bobs"
[ "$(stat -c %U:%G $M/team/bobs)" = bob:bob ] || fail "owner of bob's key: $(stat -c %U:%G $M/team/bobs)"

# Errnos.
mkdir $M/e || fail mkdir
must_fail "File exists" root "mkdir $M/e"
echo a > $M/e/k || fail "create"
must_fail "File exists" root "set -C; echo b > $M/e/k"
must_fail "No such file or directory" root "cat $M/e/missing"
long=$(printf 'x%.0s' $(seq 1 256))
must_fail "File name too long" root "echo a > $M/e/$long"
must_fail "Is a directory" root "echo a > $M/e"
must_fail "Directory not empty" root "rmdir $M/e"
must_fail "Operation not permitted" root "echo more >> $M/e/k"
# rename(2) across directories is EXDEV, so mv copies and unlinks.
echo tomove > $M/e/m || fail "create m"
mv $M/e/m $M/team/m2 || fail "mv across directories"
[ "$(cat $M/team/m2)" = tomove ] && [ ! -e $M/e/m ] || fail "mv across directories lost data"
mv $M/e/k $M/e/k2 || fail "rename within a directory"
[ "$(cat $M/e/k2)" = a ] || fail "renamed key content"
must_fail "No such file or directory" root "cat $M/e/k"
umount $M || fail "umount"
rmmod marufs || fail "rmmod"
log "perms: ok"
