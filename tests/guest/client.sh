#!/bin/sh
# The maru CLI and the client library on a real mount: put/get round trips
# with checksums, deduplication, ls/stat/df/top and their --json output, rm
# and the space coming back, permissions between users, and maru-kvdemo
# (zero-copy stores, batched lookups through the ioctl, cached mappings
# shared by threads, pins outliving deletion, discarded allocations; a
# store-set fetched back and verified, a corrupted manifest refused).
. /lib/marufs/guest-lib.sh
M=/mnt/maru
export MARU_MOUNT=$M
fresh_mount "node=1,mode=1777"
for b in maru maru-kvdemo; do
    command -v $b >/dev/null || fail "$b is not in the initramfs"
done
as() { u=$1; shift; su -s /bin/sh "$u" -c "$*" 2>&1; }
md5() { md5sum | cut -d' ' -f1; }

# put/get round trips: a file (5 MiB and a bit: three 2 MiB units) and stdin.
dd if=/dev/urandom of=/tmp/blob bs=1M count=5 2>/dev/null
head -c 1234 /dev/urandom >>/tmp/blob
size=$(stat -c %s /tmp/blob)
sum=$(md5 </tmp/blob)
maru put app1/blob /tmp/blob || fail "put"
[ "$(maru get app1/blob | md5)" = "$sum" ] || fail "get to stdout differs"
maru get app1/blob -o /tmp/out || fail "get -o"
cmp /tmp/blob /tmp/out || fail "get -o differs"
cmp /tmp/blob $M/app1/blob || fail "the key read as a file differs"
echo hello | maru put app1/greeting - || fail "put from stdin"
[ "$(maru get app1/greeting)" = hello ] || fail "greeting: $(maru get app1/greeting)"
[ "$(cat $M/app1/greeting)" = hello ] || fail "greeting as a file"
maru --app app1 get greeting | grep -q hello || fail "--app"

# Deduplication: storing an existing key is a no-op (exit 0, says so);
# -x makes it an error. Published keys stay immutable.
out=$(echo other | maru put app1/greeting - 2>&1) || fail "dedup put failed: $out"
echo "$out" | grep -q "key exists, not stored" || fail "dedup message: $out"
[ "$(maru get app1/greeting)" = hello ] || fail "dedup changed the key"
echo other | maru put -x app1/greeting - 2>/dev/null && fail "put -x of an existing key succeeded"
maru --json put app1/blob /tmp/blob | grep -q '"stored": false' || fail "--json put of an existing key"
maru --json put app1/json /tmp/out | grep -q '"stored": true' || fail "--json put"
(echo x >>$M/app1/json) 2>/dev/null && fail "a key stored by maru is writable"
log "put/get/dedup: ok"

# ls, stat, df.
maru ls | grep -q ' app1$' || fail "ls: $(maru ls)"
maru ls app1 | grep -q ' greeting$' || fail "ls app1: $(maru ls app1)"
maru --json ls | grep -q '"keys": 3' || fail "ls --json: $(maru --json ls)"
maru --json ls app1 | grep -q '"name": "json"' || fail "ls app1 --json"
maru stat app1/blob | grep -q "^size: *$size " || fail "stat: $(maru stat app1/blob)"
st=$(maru --json stat app1/blob)
echo "$st" | grep -q "\"size\": $size," || fail "stat --json size: $st"
echo "$st" | grep -q '"allocated": 6291456,' || fail "stat --json allocated (3 units): $st"
echo "$st" | grep -q '"mode": "0644"' || fail "stat --json mode: $st"
[ "$(echo "$st" | sed -n 's/.*"ino": \([0-9]*\).*/\1/p')" = "$(stat -c %i $M/app1/blob)" ] || fail "stat --json ino: $st"
df=$(maru --json df)
echo "$df" | grep -q '"marufs": true' || fail "df --json: $df"
# blob: 3 units, greeting: 1, json: 3.
echo "$df" | grep -q '"allocated": 14680064' || fail "df --json app allocation: $df"
total=$(echo "$df" | sed -n 's/^  "total": \([0-9]*\).*/\1/p')
[ "$total" = $(($(stat -f -c %b $M) * 2097152)) ] || fail "df total $total, statfs $(stat -f -c %b $M) units"
maru df | grep -q '^app1 ' || fail "df: $(maru df)"
log "ls/stat/df: ok"

# Missing keys: exit 1 with a clear message; usage errors exit 2.
maru get app1/nope 2>/tmp/err >/dev/null; rc=$?
[ $rc = 1 ] && grep -q "^maru: app1/nope: no such key$" /tmp/err || fail "get of a missing key: rc $rc, $(cat /tmp/err)"
maru stat nosuchapp/k 2>/tmp/err; rc=$?
[ $rc = 1 ] && grep -q "^maru: nosuchapp/k: no such key$" /tmp/err || fail "stat of a missing key: rc $rc, $(cat /tmp/err)"
maru get keywithoutapp 2>/dev/null; [ $? = 2 ] || fail "usage error exit code"

# top: one refresh as JSON and text; two refreshes give rates.
top=$(maru top --once --json)
echo "$top" | grep -q '"marufs":true' || fail "top --json: $top"
echo "$top" | grep -q '"name":"app1"' || fail "top --json apps: $top"
# The host table, read from the device (root): this host is node 1, active.
maru top --once | grep -q '^1  *active' || fail "top text hosts: $(maru top --once)"
echo "$top" | grep -q '"node":1,[^}]*"state":"active"' || fail "top --json hosts: $top"
(sleep 0.3; echo new | maru put app1/during -) &
maru top -n 2 -d 2 --json >/tmp/top || fail "top -n 2"
wait
[ "$(wc -l </tmp/top)" = 2 ] || fail "top -n 2 printed $(wc -l </tmp/top) lines"
# Some created_per_s (pool-wide or app1's) is not 0.0.
tail -1 /tmp/top | grep -o '"created_per_s":[^,}]*' | grep -qv ':0\.0$' || fail "top rates: $(tail -1 /tmp/top)"
maru top --once --csv | head -1 | grep -q '^time,scope,name,keys' || fail "top --csv"
log "top: ok"

# Permissions: alice's private key, bob refused by the kernel.
as alice "echo secret | maru --mount $M put --mode 600 alice/secret -" || fail "alice put"
[ "$(stat -c %a $M/alice/secret)" = 600 ] || fail "mode of alice's key: $(stat -c %a $M/alice/secret)"
[ "$(as alice "maru --mount $M get alice/secret")" = secret ] || fail "alice get"
out=$(as bob "maru --mount $M get alice/secret") && fail "bob read alice's 0600 key: $out"
echo "$out" | grep -q "Permission denied" || fail "bob get: $out"
out=$(as bob "maru --mount $M rm alice/secret") && fail "bob removed alice's key"
echo "$out" | grep -q "Permission denied" || fail "bob rm: $out"
out=$(as bob "echo x | maru --mount $M put alice/bobs -") && fail "bob wrote in alice's directory"
echo "$out" | grep -q "Permission denied" || fail "bob put: $out"
as bob "maru --mount $M ls alice" | grep -q -- '-rw------- *alice .* secret$' || fail "bob ls alice: $(as bob "maru --mount $M ls alice")"
as alice "maru --mount $M rm alice/secret" || fail "alice rm"
log "permissions: ok"

# The library: maru-kvdemo check as root, and as an unprivileged user (no
# subcommand: the same check).
maru-kvdemo check --mount $M --keys 6 --size $((3 << 20 | 123)) --threads 3 --expect-ioctl --json >/tmp/kv 2>&1 \
    || { cat /tmp/kv; fail "maru-kvdemo"; }
cat /tmp/kv
grep -q '"lookup_mode":"ioctl"' /tmp/kv || fail "kvdemo lookup mode"
out=$(as alice "maru-kvdemo --mount $M --app alice --keys 3 --size 4096 --threads 2") || fail "kvdemo as alice: $out"
# A set stored zero-copy and fetched back: lookups through the ioctl only,
# 2 MiB mappings (4 KiB ones for the last, partial unit of these 3 MiB keys).
# A manifest whose CRC-32s are another set's: fetch-set exits 1.
maru-kvdemo store-set --app set1 --count 3 --size $((3 << 20)) --seed 3 >/tmp/set || { cat /tmp/set; fail "store-set"; }
maru-kvdemo fetch-set --app set1 --wait-secs 5 --max-faults-per-unit 4 >/tmp/set 2>&1 || { cat /tmp/set; fail "fetch-set"; }
grep -q 'ioctl_lookups [1-9][0-9]* stat_lookups 0 ' /tmp/set || fail "fetch-set lookups: $(grep counters /tmp/set)"
grep -q '^fetch-set: ok: 3 chunks verified$' /tmp/set || fail "fetch-set: $(cat /tmp/set)"
maru-kvdemo store-set --app set2 --count 3 --size $((3 << 20)) --seed 4 >/dev/null || fail "store-set 2"
maru rm set2/manifest || fail "rm set2/manifest"
maru get set1/manifest | maru put set2/manifest - || fail "put a wrong manifest"
maru-kvdemo fetch-set --app set2 --wait-secs 5 >/tmp/set 2>&1 && fail "fetch-set accepted wrong CRC-32s: $(cat /tmp/set)"
[ "$(grep -c ' MISMATCH' /tmp/set)" = 3 ] || fail "fetch-set of a wrong manifest: $(cat /tmp/set)"
for a in set1 set2; do
    maru rm $a/manifest $a/chunk-000 $a/chunk-001 $a/chunk-002 || fail "rm $a"
done
log "kvdemo: ok"

# rm, and every unit comes back.
maru rm app1/blob app1/greeting app1/json app1/during || fail "rm"
maru get app1/blob 2>/dev/null && fail "removed key still readable"
[ "$(maru --json ls app1)" = "[]" ] || fail "app1 not empty: $(maru --json ls app1)"
maru rm app1/blob 2>/dev/null && fail "rm of a missing key succeeded"
used=$(maru --json df | sed -n 's/^  "used": \([0-9]*\).*/\1/p')
[ "$used" = 0 ] || fail "space not returned: $used bytes used"
maru man | grep -q '^\.TH maru 1' || fail "maru man"
umount $M || fail "umount"
rmmod marufs || fail "rmmod"
log "client: ok"
