//! Single-host functional tests of marufs-core over a coherent in-memory pool.

use std::cell::Cell;

use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{Fs, Tunables};
use marufs_core::fsck;
use marufs_core::layout::UNIT;
use marufs_core::Error;
use marufs_media::MemMedia;

fn clock(start: u64) -> marufs_sim::StepClock {
    marufs_sim::StepClock::new(start, 42, 100)
}

fn pool(size: u64) -> MemMedia {
    let m = MemMedia::new(size);
    let o = FormatOptions::small(size, 4, 64, 4);
    format(&m, &o, &mut |_, _| {}).expect("format");
    m
}

fn fsck_problems(m: &MemMedia, online: bool) -> Vec<fsck::Finding> {
    marufs_sim::fsck_findings(m, online)
}

fn tun() -> Tunables {
    Tunables::for_lease(1_000_000_000)
}

#[test]
fn create_publish_lookup_unlink() {
    let m = pool(64 * UNIT);
    let mut fs = Fs::open(&m, clock(1), 0, tun()).unwrap();
    fs.join().unwrap();
    let d = fs.mkdir(b"app", 1, 2, 0o755).unwrap();
    assert_eq!(fs.mkdir(b"app", 1, 2, 0o755), Err(Error::Exists));
    let h = fs.create(d, b"k1", 0, 0, 0o644).unwrap();
    assert_eq!(fs.create(d, b"k1", 0, 0, 0o644).unwrap_err(), Error::Exists);
    assert_eq!(fs.lookup(d, b"k1").unwrap_err(), Error::NotFound);
    fs.set_size(&h, 3 * UNIT + 5).unwrap();
    fs.publish(&h, Some(7)).unwrap();
    let k = fs.lookup(d, b"k1").unwrap();
    assert_eq!(k.rec.size, 3 * UNIT + 5);
    assert_eq!(k.rec.units(), 4);
    assert!(fs_ok(&m));
    let h2 = fs.create(d, b"k2", 0, 0, 0o644).unwrap();
    fs.set_size(&h2, UNIT).unwrap();
    fs.abort(&h2).unwrap();
    assert!(fs_ok(&m), "{:?}", fsck_problems(&m, true));
    fs.hold(k.entry, k.rec.generation).unwrap();
    fs.unlink(d, b"k1").unwrap();
    assert_eq!(fs.lookup(d, b"k1").unwrap_err(), Error::NotFound);
    assert_eq!(fs.drain_orphans().unwrap(), 0, "held orphan must stay");
    fs.release(k.entry).unwrap();
    assert_eq!(fs.drain_orphans().unwrap(), 1);
    assert!(fs_ok(&m), "{:?}", fsck_problems(&m, true));
    let (dd, _) = fs.readdir_dirs(0).unwrap().unwrap();
    assert_eq!(dd.rec.name.as_bytes(), b"app");
    assert_eq!(fs.rmdir(b"app"), Ok(()));
    fs.leave().unwrap();
    assert!(
        fsck_problems(&m, false).is_empty(),
        "{:?}",
        fsck_problems(&m, false)
    );
}

fn fs_ok(m: &MemMedia) -> bool {
    fsck_problems(m, true).is_empty()
}

#[test]
fn readdir_rename_statfs() {
    let m = pool(64 * UNIT);
    let mut fs = Fs::open(&m, clock(1), 1, tun()).unwrap();
    fs.join().unwrap();
    let d = fs.mkdir(b"a", 0, 0, 0o755).unwrap();
    for i in 0..10u32 {
        let h = fs
            .create(d, format!("k{i}").as_bytes(), 0, 0, 0o644)
            .unwrap();
        fs.set_size(&h, UNIT).unwrap();
        fs.publish(&h, None).unwrap();
    }
    let mut cur = 0;
    let mut n = 0;
    while let Some((_, next)) = fs.readdir(d, cur).unwrap() {
        cur = next;
        n += 1;
    }
    assert_eq!(n, 10);
    fs.rename(d, b"k1", b"z").unwrap();
    assert!(fs.lookup(d, b"k1").is_err());
    assert!(fs.lookup(d, b"z").is_ok());
    let s = fs.statfs().unwrap();
    assert_eq!(s.total_units - s.free_units, 10);
    assert!(fs_ok(&m), "{:?}", fsck_problems(&m, true));
}

/// Media that fails every call after `budget` calls (a crash at that point).
struct Failing<'a> {
    inner: &'a MemMedia,
    budget: Cell<u64>,
}
impl marufs_core::Media for Failing<'_> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), marufs_core::MediaError> {
        self.tick()?;
        self.inner.load(off, buf)
    }
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), marufs_core::MediaError> {
        self.tick()?;
        self.inner.store(off, buf)
    }
    fn flush(&self, off: u64, len: u64) -> Result<(), marufs_core::MediaError> {
        self.tick()?;
        self.inner.flush(off, len)
    }
    fn invalidate(&self, off: u64, len: u64) -> Result<(), marufs_core::MediaError> {
        self.tick()?;
        self.inner.invalidate(off, len)
    }
}
impl Failing<'_> {
    fn tick(&self) -> Result<(), marufs_core::MediaError> {
        if self.budget.get() == 0 {
            return Err(marufs_core::MediaError::Crashed);
        }
        self.budget.set(self.budget.get() - 1);
        Ok(())
    }
}

/// Crash at every media call of a create/set_size/publish/unlink/abort sequence,
/// rejoin, and require a consistent pool (fsck clean after leave).
#[test]
fn crash_at_every_point_then_rejoin() {
    for budget in 0..4000u64 {
        let m = pool(64 * UNIT);
        {
            let mut fs = Fs::open(&m, clock(1), 0, tun()).unwrap();
            fs.join().unwrap();
            let d = fs.mkdir(b"app", 0, 0, 0o755).unwrap();
            let h = fs.create(d, b"old", 0, 0, 0o644).unwrap();
            fs.set_size(&h, UNIT).unwrap();
            fs.publish(&h, None).unwrap();
        }
        let f = Failing {
            inner: &m,
            budget: Cell::new(budget),
        };
        let done = {
            let Ok(mut fs) = Fs::open(&f, clock(10), 0, tun()) else {
                continue;
            };
            let r = (|| {
                fs.join()?;
                let d = fs.lookup_dir(b"app")?.id;
                let h = fs.create(d, b"k", 0, 0, 0o644)?;
                fs.set_size(&h, 2 * UNIT)?;
                fs.publish(&h, None)?;
                let h2 = fs.create(d, b"k2", 0, 0, 0o644)?;
                fs.set_size(&h2, UNIT)?;
                fs.abort(&h2)?;
                fs.unlink(d, b"old")?;
                fs.drain_orphans()?;
                Ok::<(), Error>(())
            })();
            r.is_ok()
        };
        let mut fs = Fs::open(&m, clock(1_000), 0, tun()).unwrap();
        fs.join()
            .unwrap_or_else(|e| panic!("rejoin after crash at call {budget}: {e:?}"));
        let p = fsck_problems(&m, true);
        assert!(p.is_empty(), "crash at call {budget}: {p:?}");
        fs.leave().unwrap();
        let p = fsck_problems(&m, false);
        assert!(p.is_empty(), "crash at call {budget}, after leave: {p:?}");
        if done {
            println!("sequence completes after {budget} calls");
            break;
        }
    }
}

#[test]
fn fs_context_size() {
    // The kernel allocates Fs with the mount; keep it small.
    let n = std::mem::size_of::<Fs<&MemMedia, marufs_sim::StepClock>>();
    println!("size_of Fs = {n}");
    assert!(n < 3072, "Fs grew to {n} bytes");
}

#[test]
fn tmpfile_publish_as() {
    let m = pool(64 * UNIT);
    let mut fs = Fs::open(&m, clock(1), 0, tun()).unwrap();
    fs.join().unwrap();
    let d = fs.mkdir(b"app", 0, 0, 0o755).unwrap();
    let t = fs.create_tmp(d, 5, 6, 0o600).unwrap();
    fs.set_size(&t, UNIT).unwrap();
    // Invisible, unlisted, and no user name is taken.
    assert_eq!(fs.readdir(d, 0).unwrap().map(|x| x.0.entry), None);
    let h = fs.create(d, b"taken", 0, 0, 0o644).unwrap();
    fs.publish(&h, None).unwrap();
    assert_eq!(fs.publish_as(&t, b"taken", None), Err(Error::Exists));
    assert_eq!(fs.publish_as(&t, b"a/b", None), Err(Error::InvalidName));
    fs.publish_as(&t, b"named", Some(9)).unwrap();
    let k = fs.lookup(d, b"named").unwrap();
    assert_eq!(
        (k.entry, k.rec.size, k.rec.uid, k.rec.mode),
        (t.entry, UNIT, 5, 0o600)
    );
    assert!(fs.publish_as(&t, b"again", None).is_err());
    assert!(fs_ok(&m), "{:?}", fsck_problems(&m, true));
    // A second unnamed key that is abandoned leaves nothing behind.
    let t2 = fs.create_tmp(d, 0, 0, 0o644).unwrap();
    fs.set_size(&t2, 2 * UNIT).unwrap();
    fs.abort(&t2).unwrap();
    let s = fs.statfs().unwrap();
    assert_eq!(s.total_units - s.free_units, 1);
    assert!(fs_ok(&m), "{:?}", fsck_problems(&m, true));
}

fn changed_since(fs: &Fs<&MemMedia, marufs_sim::StepClock>, d: u32, c: u64) -> bool {
    fs.dir_changes(d) != Some(c)
}

/// Every operation that can change what a lookup or stat in a directory
/// returns bumps the directory's change counter; reads and operations on
/// other directories don't. rmdir + mkdir of the slot never restart it.
#[test]
fn dir_change_counter() {
    let m = pool(64 * UNIT);
    let mut fs = Fs::open(&m, clock(1), 0, tun()).unwrap();
    fs.join().unwrap();
    assert!(fs.has_dir_changes());
    let d = fs.mkdir(b"app", 0, 0, 0o755).unwrap();
    let other = fs.mkdir(b"other", 0, 0, 0o755).unwrap();
    let mut last = fs.dir_changes(d).expect("counter");
    let mut bumped = |fs: &Fs<&MemMedia, marufs_sim::StepClock>, what: &str| {
        let now = fs.dir_changes(d).expect("counter");
        assert!(now > last, "{what} did not bump ({last} -> {now})");
        last = now;
        now
    };
    let h = fs.create(d, b"k", 0, 0, 0o644).unwrap();
    bumped(&fs, "create");
    fs.set_size(&h, UNIT).unwrap();
    fs.publish(&h, None).unwrap();
    bumped(&fs, "publish");
    fs.rename(d, b"k", b"k2").unwrap();
    bumped(&fs, "rename");
    fs.setattr(d, b"k2", Some(5), None, Some(0o600)).unwrap();
    bumped(&fs, "setattr");
    let t = fs.create_tmp(d, 0, 0, 0o644).unwrap();
    bumped(&fs, "create_tmp");
    fs.publish_as(&t, b"k3", None).unwrap();
    bumped(&fs, "publish_as");
    let a = fs.create(d, b"gone", 0, 0, 0o644).unwrap();
    bumped(&fs, "create");
    fs.abort(&a).unwrap();
    bumped(&fs, "abort");
    fs.unlink(d, b"k2").unwrap();
    bumped(&fs, "unlink");
    fs.unlink_reclaim(d, b"k3").unwrap();
    bumped(&fs, "unlink_reclaim");
    fs.setattr_dir(d, None, None, Some(0o700)).unwrap();
    let last = bumped(&fs, "setattr_dir");
    // Lookups, stat and another directory's changes leave it alone.
    let _ = fs.lookup(d, b"k2");
    let _ = fs.readdir(d, 0).unwrap();
    let h = fs.create(other, b"x", 0, 0, 0o644).unwrap();
    fs.publish(&h, None).unwrap();
    assert!(!changed_since(&fs, d, last));
    fs.rmdir(b"app").unwrap();
    bumped(&fs, "rmdir");
    let d2 = fs.mkdir(b"again", 0, 0, 0o755).unwrap();
    assert_eq!(d2, d, "slot reused");
    bumped(&fs, "mkdir of a reused slot");
    assert!(fs_ok(&m));
}

/// Units zeroed ahead of time (begin/finish_zeroing) are vouched for by
/// take_zeroed when set_size hands them out, and only while they stayed free;
/// a unit being zeroed is never allocated.
#[test]
fn zeroing_ahead() {
    use marufs_core::Media;
    let m = pool(64 * UNIT);
    let mut fs = Fs::open(&m, clock(1), 0, tun()).unwrap();
    fs.join().unwrap();
    let data_off = fs.geometry().data_off;
    let fill = |unit: u32, b: u8| {
        m.store(data_off + u64::from(unit) * UNIT, &vec![b; UNIT as usize])
            .unwrap()
    };
    let first = |unit: u32| {
        let mut x = [0u8; 64];
        m.load(data_off + u64::from(unit) * UNIT, &mut x).unwrap();
        x
    };
    let d = fs.mkdir(b"app", 0, 0, 0o755).unwrap();
    // Nothing owned yet: nothing to zero.
    assert_eq!(fs.begin_zeroing().unwrap(), None);
    let mut known = vec![];
    let h = fs.create(d, b"a", 0, 0, 0o644).unwrap();
    fs.set_size_with(&h, 2 * UNIT, |u| known.push(u)).unwrap();
    assert!(known.is_empty(), "never zeroed ahead");
    let a: Vec<u32> = fs
        .extents(&h)
        .unwrap()
        .used_extents()
        .iter()
        .flat_map(|x| x.start..x.start + x.count)
        .collect();
    for &u in &a {
        fill(u, 0xAB);
    }
    fs.publish(&h, None).unwrap();
    fs.unlink_reclaim(d, b"a").unwrap();
    // Zero every free unit of the chunk ahead of time.
    let mut zeroed = vec![];
    while let Some(u) = fs.begin_zeroing().unwrap() {
        assert_eq!(fs.begin_zeroing().unwrap(), None, "one at a time");
        fill(u, 0);
        fs.finish_zeroing(u, true);
        zeroed.push(u);
        assert!(zeroed.len() < 10_000);
    }
    assert!(
        a.iter().all(|u| zeroed.contains(u)),
        "freed units get zeroed"
    );
    // A new key gets known-zero units: they read as zero.
    let h = fs.create(d, b"b", 0, 0, 0o644).unwrap();
    fs.set_size_with(&h, UNIT, |u| known.push(u)).unwrap();
    let b = fs.extents(&h).unwrap().used_extents()[0].start;
    assert_eq!(known, [b]);
    assert_eq!(first(b), [0u8; 64]);
    // A freed unit is no longer known zero (it held a key's bytes).
    fill(b, 0xCD);
    fs.publish(&h, None).unwrap();
    fs.unlink_reclaim(d, b"b").unwrap();
    known.clear();
    let h = fs.create(d, b"c", 0, 0, 0o644).unwrap();
    fs.set_size_with(&h, UNIT, |u| known.push(u)).unwrap();
    let c = fs.extents(&h).unwrap().used_extents()[0].start;
    assert_eq!(c, b, "first free unit again");
    assert!(known.is_empty(), "a freed unit is not known zero");
    fs.publish(&h, None).unwrap();
    fs.unlink_reclaim(d, b"c").unwrap();
    // The unit being zeroed is skipped by allocation.
    let z = fs.begin_zeroing().unwrap().expect("a unit to zero");
    let h = fs.create(d, b"d", 0, 0, 0o644).unwrap();
    fs.set_size(&h, 3 * UNIT).unwrap();
    let got: Vec<u32> = fs
        .extents(&h)
        .unwrap()
        .used_extents()
        .iter()
        .flat_map(|x| x.start..x.start + x.count)
        .collect();
    assert!(
        !got.contains(&z),
        "allocated {z} while it was being zeroed: {got:?}"
    );
    fs.finish_zeroing(z, false);
    // An abandoned zeroing vouches for nothing.
    known.clear();
    let h = fs.create(d, b"e", 0, 0, 0o644).unwrap();
    fs.set_size_with(&h, 64 * UNIT / 2, |u| known.push(u))
        .unwrap();
    let got: Vec<u32> = fs
        .extents(&h)
        .unwrap()
        .used_extents()
        .iter()
        .flat_map(|x| x.start..x.start + x.count)
        .collect();
    assert!(
        got.contains(&z) && !known.contains(&z),
        "{z}: {got:?} {known:?}"
    );
    assert!(fs_ok(&m));
}

/// A hold vouched for by the directory's change counter skips re-reading the
/// entry only while the counter is unchanged: a key unlinked and reclaimed by
/// another host after the lookup is refused (`Stale`), and a key held first
/// survives another host's unlink until released.
#[test]
fn vouched_hold() {
    let m = pool(64 * UNIT);
    let mut a = Fs::open(&m, clock(1), 0, tun()).unwrap();
    a.join().unwrap();
    let mut b = Fs::open(&m, clock(1), 1, tun()).unwrap();
    b.join().unwrap();
    let d = a.mkdir(b"app", 0, 0, 0o755).unwrap();
    for name in [b"k1", b"k2"] {
        let h = b.create(d, name, 0, 0, 0o644).unwrap();
        b.set_size(&h, UNIT).unwrap();
        b.publish(&h, None).unwrap();
    }
    // A looks k1 up under tag t; B unlinks and reclaims it; A's vouched hold
    // must notice (the counter moved) and fail.
    let t = a.dir_changes(d).unwrap();
    let k1 = a.lookup(d, b"k1").unwrap();
    b.unlink_reclaim(d, b"k1").unwrap();
    assert_eq!(
        a.hold_vouched(k1.entry, k1.rec.generation, Some((d, t))),
        Err(Error::Stale)
    );
    // With the counter unchanged the vouched hold succeeds without the entry,
    // and then B's unlink can't reclaim the key while A holds it.
    let t = a.dir_changes(d).unwrap();
    let k2 = a.lookup(d, b"k2").unwrap();
    a.hold_vouched(k2.entry, k2.rec.generation, Some((d, t)))
        .unwrap();
    assert_eq!(
        b.unlink_reclaim(d, b"k2").unwrap(),
        0,
        "reclaimed while held"
    );
    let e = a.stat_entry(k2.entry).unwrap();
    assert_eq!(e.rec.generation, k2.rec.generation);
    a.release(k2.entry).unwrap();
    assert_eq!(b.drain_orphans().unwrap(), 1);
    assert!(fs_ok(&m));
}

/// Out of units to zero, with room to remember more, zeroing ahead takes
/// another free chunk; it stops once it knows half of what it can remember.
#[test]
fn zeroing_ahead_grows() {
    let m = pool(64 * UNIT);
    let mut fs = Fs::open(&m, clock(1), 0, tun()).unwrap();
    fs.join().unwrap();
    let d = fs.mkdir(b"app", 0, 0, 0o755).unwrap();
    let h = fs.create(d, b"a", 0, 0, 0o644).unwrap();
    fs.set_size(&h, UNIT).unwrap();
    fs.publish(&h, None).unwrap();
    let mut known = 0;
    let mut grew = 0;
    let mut before_growing = None;
    loop {
        match fs.begin_zeroing().unwrap() {
            Some(u) => {
                fs.finish_zeroing(u, true);
                known += 1;
            }
            None if fs.grow_for_zeroing().unwrap() => {
                before_growing.get_or_insert(known);
                grew += 1;
            }
            None => break,
        }
        assert!(known < 1000);
    }
    assert!(grew >= 1, "took more chunks to zero ({known} known)");
    assert!(known > before_growing.unwrap(), "zeroed the new chunks");
    // It stops at half of what it remembers, or leaving an eighth of the
    // pool's chunks free.
    assert!(known <= 64 + 64, "{known}");
    assert!(!fs.grow_for_zeroing().unwrap());
    // The units are free and zeroed: a new key uses them without a memset.
    let mut vouched = vec![];
    let h = fs.create(d, b"b", 0, 0, 0o644).unwrap();
    fs.set_size_with(&h, 4 * UNIT, |u| vouched.push(u)).unwrap();
    assert_eq!(vouched.len(), 4);
    assert!(fs_ok(&m));
}
