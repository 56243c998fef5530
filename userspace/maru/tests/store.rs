//! The library against an ordinary directory standing in for a mount: every
//! API path (no publish semantics here; those are tested in guests by
//! tests/guest/client.sh).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use maru::{BatchedLookup, Coherence, Error, LookupMode, Pool, Store, StoreOptions};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// A store of application "app" in `t` with a quota of `quota` bytes and
/// watermarks `high`/`low` percent.
fn quota_store(t: &tempfile::TempDir, quota: u64, high: u8, low: u8) -> Store {
    let opts = StoreOptions::default().eviction(maru::EvictionPolicy {
        quota: Some(quota),
        high_pct: high,
        low_pct: low,
    });
    Store::open_with(t.path(), "app", &opts).unwrap()
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn store_retrieve_round_trip() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let data = pattern(1, 3 << 20);
    assert!(s.store_bytes("k1", &data).unwrap());
    let m = s.retrieve("k1").unwrap().expect("present");
    assert_eq!(&m[..], &data[..]);
    assert_eq!(m.len(), data.len());
    // On disk under the application directory.
    assert_eq!(std::fs::read(t.path().join("app/k1")).unwrap(), data);
    assert_eq!(s.counters().stored, 1);
}

#[test]
fn dedup_is_a_noop() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    assert!(s.store_bytes("k", b"first").unwrap());
    assert!(!s.store_bytes("k", b"second, longer").unwrap());
    assert_eq!(&s.retrieve("k").unwrap().unwrap()[..], b"first");
    assert!(matches!(s.alloc("k", 10), Err(Error::Exists(_))));
    let c = s.counters();
    assert_eq!((c.stored, c.deduplicated), (1, 1));
}

#[test]
fn alloc_fill_store() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let mut h = s.alloc("zc", 5 << 20).unwrap();
    assert_eq!(h.key(), "zc");
    assert_eq!(h.len(), 5 << 20);
    assert!(h.iter().all(|&b| b == 0), "new space is zero-filled");
    h[..5].copy_from_slice(b"hello");
    let last = h.len() - 1;
    h[last] = 0xee;
    s.store(h).unwrap();
    let m = s.retrieve("zc").unwrap().unwrap();
    assert_eq!(&m[..5], b"hello");
    assert_eq!(m[m.len() - 1], 0xee);
}

#[test]
fn free_and_drop_discard() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let mut h = s.alloc("gone", 4096).unwrap();
    h.fill(1);
    s.free(h).unwrap();
    assert!(!s.exists("gone").unwrap());
    assert!(!t.path().join("app/gone").exists());
    {
        let _h = s.alloc("dropped", 100).unwrap();
    }
    assert!(!s.exists("dropped").unwrap());
    assert_eq!(s.counters().discarded, 2);
    // The name is free again.
    assert!(s.store_bytes("gone", b"x").unwrap());
}

#[test]
fn empty_key() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    assert!(s.store_bytes("empty", b"").unwrap());
    let m = s.retrieve("empty").unwrap().unwrap();
    assert!(m.is_empty());
    assert_eq!(s.stat("empty").unwrap().unwrap().size, 0);
    assert_eq!(s.counters().mmaps, 0, "an empty key needs no mapping");
}

#[test]
fn missing_and_delete() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    assert!(s.retrieve("nope").unwrap().is_none());
    assert!(!s.exists("nope").unwrap());
    assert!(s.stat("nope").unwrap().is_none());
    assert!(!s.delete("nope").unwrap());
    assert!(matches!(s.pin("nope"), Err(Error::NotFound(_))));
    s.store_bytes("k", b"v").unwrap();
    let m = s.retrieve("k").unwrap().unwrap();
    assert!(s.delete("k").unwrap());
    assert!(!s.exists("k").unwrap());
    assert!(
        s.retrieve("k").unwrap().is_none(),
        "deleted key served from cache"
    );
    // The earlier view is still valid.
    assert_eq!(&m[..], b"v");
    assert_eq!(s.counters().deleted, 1);
}

#[test]
fn mappings_are_cached_and_shared() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    s.store_bytes("k", &pattern(2, 8192)).unwrap();
    let a = s.retrieve("k").unwrap().unwrap();
    let b = s.retrieve("k").unwrap().unwrap();
    let c = s.batch_retrieve(&["k"]).unwrap().pop().unwrap().unwrap();
    assert!(a.same_mapping(&b) && a.same_mapping(&c));
    let n = s.counters();
    assert_eq!((n.mmaps, n.misses, n.hits), (1, 1, 2));
    drop((a, b, c));
    // The cache still holds it.
    assert_eq!(s.counters().munmaps, 0);
    assert_eq!(s.clear_cache(), 1);
    assert_eq!(s.counters().munmaps, 1);
}

#[test]
fn recreated_key_is_not_served_stale() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let other = Store::open(t.path(), "app").unwrap();
    s.store_bytes("k", b"old").unwrap();
    let old = s.retrieve("k").unwrap().unwrap();
    // Another client deletes and re-creates it.
    assert!(other.delete("k").unwrap());
    assert!(other.store_bytes("k", b"new!").unwrap());
    let new = s.retrieve("k").unwrap().unwrap();
    assert_eq!(&new[..], b"new!");
    assert_ne!(old.ino(), new.ino());
    assert_eq!(&old[..], b"old");
    // Batched path: ino from the lookup decides.
    other.delete("k").unwrap();
    other.store_bytes("k", b"newer").unwrap();
    let v = s.batch_retrieve(&["k"]).unwrap();
    assert_eq!(&v[0].as_ref().unwrap()[..], b"newer");
}

#[test]
fn unvalidated_hits_and_trim() {
    let t = tmp();
    let opts = StoreOptions::default().validate_hits(false);
    let s = Store::open_with(t.path(), "app", &opts).unwrap();
    let other = Store::open(t.path(), "app").unwrap();
    s.store_bytes("k", b"v1").unwrap();
    s.retrieve("k").unwrap().unwrap();
    other.delete("k").unwrap();
    // Without validation the cached (still valid) mapping is served.
    assert_eq!(&s.retrieve("k").unwrap().unwrap()[..], b"v1");
    assert_eq!(s.trim_cache().unwrap(), 1);
    assert!(s.retrieve("k").unwrap().is_none());
}

#[test]
fn cache_is_bounded() {
    let t = tmp();
    let opts = StoreOptions::default().cache_capacity(16);
    let s = Store::open_with(t.path(), "app", &opts).unwrap();
    for i in 0..100 {
        s.store_bytes(&format!("k{i}"), &pattern(i as u8, 100))
            .unwrap();
    }
    for i in 0..100 {
        let m = s.retrieve(&format!("k{i}")).unwrap().unwrap();
        assert_eq!(&m[..], &pattern(i as u8, 100)[..]);
    }
    let st = s.stats().unwrap();
    assert!(st.cached_mappings <= 16, "{} cached", st.cached_mappings);
    assert!(st.counters.evictions >= 84);
    assert_eq!(
        st.counters.mmaps - st.counters.munmaps,
        st.cached_mappings as u64
    );
}

#[test]
fn no_cache() {
    let t = tmp();
    let opts = StoreOptions::default().cache_capacity(0);
    let s = Store::open_with(t.path(), "app", &opts).unwrap();
    s.store_bytes("k", b"abc").unwrap();
    for _ in 0..3 {
        assert_eq!(&s.retrieve("k").unwrap().unwrap()[..], b"abc");
    }
    let c = s.counters();
    assert_eq!((c.mmaps, c.munmaps, c.hits), (3, 3, 0));
}

#[test]
fn pin_keeps_bytes_after_delete() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let data = pattern(7, 1 << 20);
    s.store_bytes("k", &data).unwrap();
    let pin = s.pin("k").unwrap();
    assert_eq!(pin.key(), "k");
    assert_eq!(pin.info().size, data.len() as u64);
    assert!(s.delete("k").unwrap());
    assert!(!s.exists("k").unwrap());
    let m = pin.map().unwrap();
    assert_eq!(&m[..], &data[..]);
    s.unpin(pin);
    // The mapping outlives the pin too.
    assert_eq!(&m[..], &data[..]);
}

#[test]
fn mapping_outlives_store() {
    let t = tmp();
    let m = {
        let s = Store::open(t.path(), "app").unwrap();
        s.store_bytes("k", b"still here").unwrap();
        s.retrieve("k").unwrap().unwrap()
    };
    assert_eq!(&m[..], b"still here");
}

#[test]
fn batch_operations() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let stored = s
        .batch_store(&[("a", b"1".as_slice()), ("b", b"22"), ("a", b"333")])
        .unwrap();
    assert_eq!(stored, [true, true, false]);
    assert_eq!(
        s.batch_exists(&["a", "x", "b"]).unwrap(),
        [true, false, true]
    );
    let v = s.batch_retrieve(&["b", "x", "a"]).unwrap();
    assert_eq!(&v[0].as_ref().unwrap()[..], b"22");
    assert!(v[1].is_none());
    assert_eq!(&v[2].as_ref().unwrap()[..], b"1");
    let infos = s.batch_stat(&["a", "b"]).unwrap();
    assert_eq!(infos[1].as_ref().unwrap().size, 2);
    assert!(s.batch_exists(&[]).unwrap().is_empty());
    assert!(s.batch_exists(&["ok", "bad/name"]).is_err());
    // Not marufs: per-name fstatat, decided without trying the ioctl.
    assert_eq!(s.lookup_mode(), LookupMode::Fallback);
    assert_eq!(s.counters().ioctl_lookups, 0);
    assert!(s.counters().stat_lookups >= 8);
}

#[test]
fn lookup_ioctl_fallback_is_detected_once() {
    let t = tmp();
    let opts = StoreOptions::default().batched_lookup(BatchedLookup::Always);
    let s = Store::open_with(t.path(), "app", &opts).unwrap();
    assert_eq!(s.lookup_mode(), LookupMode::Unknown);
    s.store_bytes("a", b"x").unwrap();
    // The host filesystem does not know MARUFS_IOC_LOOKUP (ENOTTY).
    assert_eq!(s.batch_exists(&["a", "b"]).unwrap(), [true, false]);
    assert_eq!(s.lookup_mode(), LookupMode::Fallback);
    assert_eq!(s.batch_exists(&["a"]).unwrap(), [true]);
    assert_eq!(s.counters().ioctl_lookups, 0);
    assert_eq!(s.counters().stat_lookups, 3);
    // Never: no decision needed.
    let t2 = tmp();
    let opts = StoreOptions::default().batched_lookup(BatchedLookup::Never);
    let s = Store::open_with(t2.path(), "app", &opts).unwrap();
    s.batch_exists(&["a"]).unwrap();
    assert_eq!(s.lookup_mode(), LookupMode::Unknown);
}

#[test]
fn names_are_checked() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let long = "x".repeat(256);
    for bad in ["", ".", "..", "a/b", long.as_str()] {
        assert!(
            matches!(s.store_bytes(bad, b"v"), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(s.retrieve(bad).is_err());
        assert!(s.exists(bad).is_err());
    }
    assert!(s.store_bytes(&"y".repeat(255), b"v").unwrap());
    assert!(matches!(
        Store::open(t.path(), "a/b"),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn app_directories() {
    let t = tmp();
    let opts = StoreOptions::default().create(false);
    assert!(matches!(
        Store::open_with(t.path(), "new", &opts),
        Err(Error::NoApp(_))
    ));
    let opts = StoreOptions::default().dir_mode(0o750).key_mode(0o600);
    let s = Store::open_with(t.path(), "new", &opts).unwrap();
    s.store_bytes("k", b"v").unwrap();
    let info = s.stat("k").unwrap().unwrap();
    assert_eq!(info.permissions() & 0o077, 0, "mode {:o}", info.mode);
    let pool = Pool::open(t.path()).unwrap();
    assert!(!pool.is_marufs());
    assert!(!pool.create_app("new", 0o755).unwrap());
    assert!(pool.create_app("other", 0o755).unwrap());
    assert!(pool.remove_app("other").unwrap());
    assert!(!pool.remove_app("other").unwrap());
    assert!(pool.remove_app("new").is_err(), "not empty");
    assert!(Pool::open(t.path().join("missing")).is_err());
}

#[test]
fn list_and_stats() {
    let t = tmp();
    let a = Store::open(t.path(), "a").unwrap();
    let b = Store::open(t.path(), "b").unwrap();
    a.store_bytes("k2", &[0; 300]).unwrap();
    a.store_bytes("k1", &[0; 100]).unwrap();
    b.store_bytes("only", &[0; 5]).unwrap();
    // A file in the root is not an application.
    std::fs::write(t.path().join("stray"), b"x").unwrap();
    let keys = a.list().unwrap();
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["k1", "k2"]);
    assert_eq!(keys[1].size, 300);
    assert!(keys[0].mtime() > std::time::UNIX_EPOCH);
    let st = a.stats().unwrap();
    assert_eq!(st.app.name, "a");
    assert_eq!((st.app.keys, st.app.bytes), (Some(2), Some(400)));
    let apps: Vec<(&str, Option<u64>)> =
        st.apps.iter().map(|x| (x.name.as_str(), x.bytes)).collect();
    assert_eq!(apps, [("a", Some(400)), ("b", Some(5))]);
    assert!(st.pool.total > 0 && st.pool.used <= st.pool.total);
    let pool = a.pool();
    assert_eq!(pool.apps().unwrap().len(), 2);
    assert_eq!(pool.usage_by_app().unwrap()[1].keys, Some(1));
    assert_eq!(pool.list("b").unwrap()[0].name, "only");
    assert!(matches!(pool.list("zzz"), Err(Error::NoApp(_))));
}

#[test]
fn hardware_coherence_option() {
    let t = tmp();
    let opts = StoreOptions::default().coherence(Coherence::Hardware);
    let s = Store::open_with(t.path(), "app", &opts).unwrap();
    s.store_bytes("k", b"abc").unwrap();
    assert_eq!(&s.retrieve("k").unwrap().unwrap()[..], b"abc");
}

#[test]
fn concurrent_clients() {
    const THREADS: usize = 8;
    const KEYS: usize = 40;
    let t = tmp();
    let s = Arc::new(Store::open(t.path(), "app").unwrap());
    let barrier = Arc::new(Barrier::new(THREADS));
    let winners = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|id| {
            let (s, barrier, winners) = (s.clone(), barrier.clone(), winners.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // Everyone races for the same key: exactly one stores it.
                if s.store_bytes("shared", &pattern(9, 10_000)).unwrap() {
                    winners.fetch_add(1, Ordering::Relaxed);
                }
                for k in 0..KEYS {
                    let key = format!("t{id}-{k}");
                    assert!(s
                        .store_bytes(&key, &pattern((id * KEYS + k) as u8, 4096))
                        .unwrap());
                }
                barrier.wait();
                // Read everybody's keys, many times: cache hits from all threads.
                for round in 0..3 {
                    for other in 0..THREADS {
                        let k = (id + round) % KEYS;
                        let m = s.retrieve(&format!("t{other}-{k}")).unwrap().unwrap();
                        assert_eq!(&m[..], &pattern((other * KEYS + k) as u8, 4096)[..]);
                    }
                    let m = s.retrieve("shared").unwrap().unwrap();
                    assert_eq!(&m[..], &pattern(9, 10_000)[..]);
                }
                // Mappings cross threads.
                s.retrieve("shared").unwrap().unwrap()
            })
        })
        .collect();
    let maps: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(winners.load(Ordering::Relaxed), 1);
    assert!(maps.windows(2).all(|w| w[0].same_mapping(&w[1])));
    let c = s.counters();
    assert_eq!(c.stored as usize, THREADS * KEYS + 1);
    assert_eq!(c.deduplicated as usize, THREADS - 1);
    assert!(c.hits > 0);
    assert_eq!(s.list().unwrap().len(), THREADS * KEYS + 1);
}

#[test]
fn alloc_handle_moves_across_threads() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let mut h = s.alloc("k", 1000).unwrap();
    let h2 = std::thread::spawn(move || {
        h.fill(7);
        h
    })
    .join()
    .unwrap();
    s.store(h2).unwrap();
    assert!(s.retrieve("k").unwrap().unwrap().iter().all(|&b| b == 7));
}

#[test]
fn errors_carry_errno() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    s.store_bytes("k", b"v").unwrap();
    let e = s.alloc("k", 1).unwrap_err();
    assert_eq!(e.errno(), Some(libc_eexist()));
    assert!(e.to_string().contains("already exists"));
    assert!(!e.is_permission_denied());
}

fn libc_eexist() -> i32 {
    17
}

#[test]
fn unnamed_allocations() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let mut h = s.alloc_unnamed(3 << 20).unwrap();
    assert!(!h.is_named() && h.key().is_empty());
    h[..4].copy_from_slice(b"late");
    // Nothing visible before it is named.
    assert!(std::fs::read_dir(t.path().join("app"))
        .unwrap()
        .next()
        .is_none());
    assert!(s.store_as(h, "named-later").unwrap());
    let m = s.retrieve("named-later").unwrap().unwrap();
    assert_eq!((&m[..4], m.len()), (b"late".as_slice(), 3 << 20));
    // A taken name: a no-op, the allocation is discarded.
    let mut h = s.alloc_unnamed(10).unwrap();
    h.fill(9);
    assert!(!s.store_as(h, "named-later").unwrap());
    assert_eq!(&s.retrieve("named-later").unwrap().unwrap()[..4], b"late");
    // Dropped or freed: nothing appears.
    drop(s.alloc_unnamed(100).unwrap());
    s.free(s.alloc_unnamed(0).unwrap()).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
    // An unnamed allocation needs store_as; a named one keeps its name.
    assert!(matches!(
        s.store(s.alloc_unnamed(1).unwrap()),
        Err(Error::InvalidName { .. })
    ));
    assert!(s.store_as(s.alloc("a", 1).unwrap(), "b").is_err());
    assert!(s.store_as(s.alloc("c", 1).unwrap(), "c").unwrap());
    let c = s.counters();
    assert_eq!((c.stored, c.deduplicated), (2, 1));
}

#[test]
fn publish_mapped_keeps_the_view() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    let data = pattern(7, (2 << 20) + 5);
    let mut h = s.alloc_unnamed(data.len() as u64).unwrap();
    h.copy_from_slice(&data);
    let addr = h.as_ptr();
    let m = s.publish_mapped(h, "kept").unwrap();
    // The same memory, now the published key's read-only view.
    assert_eq!((m.as_ptr(), &m[..]), (addr, &data[..]));
    let r = s.retrieve("kept").unwrap().unwrap();
    assert_eq!(&r[..], &data[..]);
    assert!(!r.same_mapping(&m));
    // A taken name gives the allocation back, unchanged and still writable;
    // so does a bad name.
    let mut h = s.alloc_unnamed(16).unwrap();
    h.fill(3);
    let addr = h.as_ptr();
    let u = s.publish_mapped(h, "kept").unwrap_err();
    assert!(matches!(u.error, Error::Exists(_)), "{:?}", u.error);
    let u = s.publish_mapped(u.handle, "a/b").unwrap_err();
    assert!(
        matches!(u.error, Error::InvalidName { .. }),
        "{:?}",
        u.error
    );
    let mut h = u.handle;
    assert_eq!((h.as_ptr(), &h[..]), (addr, &[3u8; 16][..]));
    h[0] = 4;
    // ... and can still be published under another name.
    let m2 = s.publish_mapped(h, "other").unwrap();
    assert_eq!((m2.as_ptr(), m2[0]), (addr, 4));
    assert_eq!(&s.retrieve("kept").unwrap().unwrap()[..], &data[..]);
    // The mapping outlives the store and survives a delete of the key.
    assert!(s.delete("kept").unwrap());
    drop(s);
    assert_eq!(&m[..], &data[..]);
    // Named allocations publish at release: not this way.
    let s = Store::open(t.path(), "app").unwrap();
    let u = s.publish_mapped(s.alloc("n", 1).unwrap(), "n").unwrap_err();
    assert!(matches!(u.error, Error::InvalidName { .. }));
    drop(u);
    let c = s.counters();
    assert_eq!((c.stored, c.discarded), (0, 1));
}

#[test]
fn types_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
    send_sync::<Pool>();
    send_sync::<maru::Mapping>();
    send_sync::<maru::Pin>();
    send_sync::<maru::AllocHandle>();
    send_sync::<Error>();
}

#[test]
fn eviction_oldest_first_skipping_pins() {
    let t = tmp();
    let q = 10 * 4096;
    let s = quota_store(&t, q, 90, 50);
    // Eight 4 KiB keys, published in order (distinct mtimes).
    for i in 0..8u8 {
        assert!(s.store_bytes(&format!("k{i}"), &[i; 4096]).unwrap());
        let f = std::fs::File::open(t.path().join(format!("app/k{i}"))).unwrap();
        let mtime =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + u64::from(i));
        f.set_modified(mtime).unwrap();
    }
    let pinned = s.pin("k1").unwrap();
    let view = s.retrieve("k0").unwrap().unwrap();
    // 8 keys + 2 more would pass 90 % of 10: evict down to 50 % minus the new.
    let ev = s.make_room(2 * 4096).unwrap();
    let left: Vec<String> = {
        let mut v: Vec<String> = s.list().unwrap().into_iter().map(|k| k.name).collect();
        v.sort();
        v
    };
    // Oldest first (k0, k2, k3, ...), k1 kept: it is pinned.
    assert_eq!(ev.keys, 5, "{left:?}");
    assert_eq!(left, ["k1", "k6", "k7"]);
    // Deleted keys stay readable for whoever holds them.
    assert_eq!(&view[..], &[0u8; 4096][..]);
    assert_eq!(&pinned.map().unwrap()[..], &[1u8; 4096][..]);
    assert_eq!(s.counters().evicted, 5);
    // Unpinned, it is the oldest.
    drop(pinned);
    let ev = s.evict(1).unwrap();
    assert_eq!((ev.keys, ev.bytes >= 4096), (1, true));
    assert!(!s.exists("k1").unwrap());
    // Below the watermark, nothing goes.
    assert_eq!(s.make_room(4096).unwrap().keys, 0);
    let h = s.alloc_evicting(4096, None).unwrap();
    assert!(s.store_as(h, "new").unwrap());
    assert_eq!(s.list().unwrap().len(), 3);
}

#[test]
fn allocations_in_flight_count_against_the_quota() {
    let t = tmp();
    let s = quota_store(&t, 6 * 4096, 100, 50);
    for i in 0..2u8 {
        assert!(s.store_bytes(&format!("old{i}"), &[i; 4096]).unwrap());
    }
    // A batch allocated before any of it is published (as LMCache does):
    // the unnamed allocations are in no listing, yet they take space.
    let batch: Vec<_> = (0..5)
        .map(|_| s.alloc_evicting(4096, None).unwrap())
        .collect();
    // Two keys and five allocations would pass the quota: the old keys
    // went when the fifth was made (down to the low watermark).
    assert!(!s.exists("old0").unwrap() && !s.exists("old1").unwrap());
    for (i, mut h) in batch.into_iter().enumerate() {
        h.fill(7);
        assert!(s.store_as(h, &format!("new{i}")).unwrap());
    }
    let used: u64 = s.list().unwrap().iter().map(|k| k.allocated).sum();
    assert!(used <= 6 * 4096, "{used}");
    // Five keys: one more allocation fits exactly, and a dropped one gives
    // its reservation back (else the next would evict).
    let h = s.alloc_evicting(4096, None).unwrap();
    drop(h);
    let h = s.alloc_evicting(4096, None).unwrap();
    assert_eq!(s.list().unwrap().len(), 5);
    drop(h);
}

#[test]
fn the_quota_is_a_limit_when_pins_leave_nothing_to_evict() {
    let t = tmp();
    let s = quota_store(&t, 4 * 4096, 100, 50);
    for i in 0..3u8 {
        assert!(s.store_bytes(&format!("k{i}"), &[i; 4096]).unwrap());
    }
    let pins: Vec<_> = (0..3).map(|i| s.pin(&format!("k{i}")).unwrap()).collect();
    let one = s.alloc_evicting(4096, None).unwrap();
    // Three pinned keys and one allocation fill the quota: no more.
    match s.alloc_evicting(4096, None) {
        Err(Error::NoSpace { .. }) => {}
        r => panic!("{r:?}"),
    }
    assert_eq!(s.list().unwrap().len(), 3);
    drop(one);
    drop(pins);
    // Unpinned, the oldest go to make room.
    let h = s.alloc_evicting(2 * 4096, None).unwrap();
    assert!(!s.exists("k0").unwrap());
    drop(h);
}

#[test]
fn concurrent_allocations_never_pass_the_quota() {
    let t = tmp();
    let s = Arc::new(quota_store(&t, 16 * 4096, 100, 50));
    // Eight threads race for 32 allocations that are all held (unnamed:
    // nothing can be evicted); the quota has room for 16.
    let go = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (s, go) = (s.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                (0..4)
                    .filter_map(|_| s.alloc_evicting(4096, None).ok())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let held: Vec<_> = threads
        .into_iter()
        .flat_map(|j| j.join().unwrap())
        .collect();
    assert_eq!(held.len(), 16);
}

#[test]
fn the_quota_counts_what_the_pool_gives() {
    let t = tmp();
    let s = quota_store(&t, 2 * 4096, 100, 50);
    // A 1-byte key takes a page here (a 2 MiB unit on marufs).
    let a = s.alloc_evicting(1, None).unwrap();
    let b = s.alloc_evicting(1, None).unwrap();
    match s.alloc_evicting(1, None) {
        Err(Error::NoSpace { .. }) => {}
        r => panic!("{r:?}"),
    }
    drop((a, b));
}

#[test]
fn a_quotad_store_counts_its_usage_without_listing_each_time() {
    let t = tmp();
    let s = quota_store(&t, 64 * 4096, 50, 25);
    for i in 0..24 {
        let mut h = s.alloc_evicting(4096, None).unwrap();
        h.fill(1);
        assert!(s.store_as(h, &format!("k{i}")).unwrap());
    }
    // One listing for 24 allocations below the high watermark (32 keys),
    // or two or three on a machine too loaded to make them within
    // USAGE_REFRESH (33 if every allocation listed)...
    assert!(s.counters().usage_listings <= 3, "{:?}", s.counters());
    assert_eq!(s.counters().evicted, 0);
    // ... and its own keys counted: the 33rd takes the application past it
    // and lists, evicting down to the low watermark.
    for i in 24..33 {
        let mut h = s.alloc_evicting(4096, None).unwrap();
        h.fill(1);
        assert!(s.store_as(h, &format!("k{i}")).unwrap());
    }
    let c = s.counters();
    assert!((2..=5).contains(&c.usage_listings), "{c:?}");
    assert_eq!(c.evicted, 32 - 15, "{c:?}");
    // Another process's keys are counted once the figure is refreshed.
    let other = Store::open(t.path(), "app").unwrap();
    for i in 0..40 {
        assert!(other.store_bytes(&format!("o{i}"), &[2; 4096]).unwrap());
    }
    std::thread::sleep(maru::USAGE_REFRESH + std::time::Duration::from_millis(50));
    drop(s.alloc_evicting(4096, None).unwrap());
    let used: u64 = s.list().unwrap().iter().map(|k| k.allocated).sum();
    assert!(used <= 16 * 4096, "{used}");
}

#[test]
fn names_of_the_librarys_own_entries_are_refused() {
    let t = tmp();
    let s = Store::open(t.path(), "app").unwrap();
    for bad in [".marufs-eviction.quota=1.high=90.low=5", ".marufs-x"] {
        match s.store_bytes(bad, b"x") {
            Err(Error::InvalidName { .. }) => {}
            r => panic!("{bad}: {r:?}"),
        }
        assert!(s.alloc_evicting(1, Some(bad)).is_err());
    }
    assert!(s.store_bytes(".marufs", b"x").unwrap());
}

#[test]
fn an_emptied_quotad_application_can_be_removed() {
    use maru::EvictionPolicy;
    let t = tmp();
    let opts = StoreOptions::default().eviction(EvictionPolicy {
        quota: Some(1 << 30),
        ..EvictionPolicy::default()
    });
    let pool = maru::Pool::open(t.path()).unwrap();
    {
        let s = pool.store_with("app", &opts).unwrap();
        assert!(s.store_bytes("k", b"x").unwrap());
    }
    // A key keeps it (and its marker).
    assert!(pool.remove_app("app").is_err());
    assert_eq!(
        pool.app_policy("app").unwrap().unwrap().quota,
        Some(1 << 30)
    );
    pool.store("app").unwrap().delete("k").unwrap();
    assert!(pool.remove_app("app").unwrap());
    assert!(!t.path().join("app").exists());
}
