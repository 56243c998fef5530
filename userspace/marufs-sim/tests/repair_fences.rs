//! `maru-fsck -y` over a pool with a host that only stalled (a repair forced
//! over a live pool, or a host silent when the repair checked): the repair
//! fences every incarnation it resets, so the stalled host, resuming with a
//! clock that says its lease is good, writes nothing into the rebuilt pool.
//! Before, the repair reset the slot to LEFT with no fence and the host's
//! next create went through (the bakery skips a LEFT slot: two lock holders).
//! And a journal record a fenced host wrote after its fence is not applied.

use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{mount_check, Fs, Tunables};
use marufs_core::fsck::{self, Options};
use marufs_core::layout::UNIT;
use marufs_core::Error;
use marufs_media::MemMedia;

fn tun() -> Tunables {
    Tunables {
        lease_ns: 1_000_000_000,
        guard_ns: 250_000_000,
        margin_ns: 500_000_000,
        read_retries: 4,
    }
}

/// Runs fsck over `m` (offline; with `repair`, rebuilding it); returns
/// the findings.
fn fsck(m: &MemMedia, repair: bool) -> Vec<String> {
    let info = mount_check(m).unwrap();
    let mut s = vec![0u8; fsck::scratch_len(&info.sb.geo)];
    let mut found = vec![];
    let o = Options {
        repair,
        online: false,
    };
    fsck::run(m, &o, &mut s, &mut |f| found.push(format!("{f:?}"))).unwrap();
    found
}

/// A formatted 16-unit pool (4 hosts).
fn pool(uuid: u8) -> MemMedia {
    let size = 16 * UNIT;
    let m = MemMedia::new(size);
    let o = FormatOptions {
        uuid: [uuid; 16],
        ..FormatOptions::small(size, 4, 64, 4)
    };
    format(&m, &o, &mut |_, _| {}).unwrap();
    m
}

/// Node 0 joined on `m`. Its clock barely moves: its lease looks good
/// throughout.
fn host(m: &MemMedia) -> Fs<&MemMedia, marufs_sim::StepClock> {
    let mut a = Fs::open(m, marufs_sim::StepClock::new(1, 7, 10_000), 0, tun()).unwrap();
    a.join().unwrap();
    a
}

#[test]
fn a_repaired_pool_fences_a_stalled_host() {
    let m = pool(3);
    let mut a = host(&m);
    let d = a.mkdir(b"app", 0, 0, 0o755).unwrap();
    let h = a.create(d, b"before", 0, 0, 0o644).unwrap();
    a.set_size(&h, UNIT).unwrap();
    a.publish(&h, None).unwrap();
    let f = a.lookup(d, b"before").unwrap();
    // A stalls; the repair runs over the pool.
    fsck(&m, true);
    // A resumes: every write is refused, reads of the rebuilt pool still work.
    assert!(matches!(
        a.create(d, b"after", 0, 0, 0o644),
        Err(Error::Fenced)
    ));
    assert!(a.lost_lease());
    assert!(matches!(
        a.hold(f.entry, f.rec.generation),
        Err(Error::Fenced) | Err(Error::NotJoined)
    ));
    // The repaired pool is clean and usable by the next incarnation.
    let found = fsck(&m, false);
    assert!(found.is_empty(), "a second check: {found:?}");
    let mut b = host(&m);
    assert!(b.epoch() > 1);
    assert!(b.lookup(d, b"before").is_ok());
    let h = b.create(d, b"after", 0, 0, 0o644).unwrap();
    b.publish(&h, None).unwrap();
}

/// A host slot whose identity line is damaged (a crash in the middle of a
/// join, a torn 8-byte store): the first lock acquisition waits a patience
/// period (it may be a host writing its line), later ones pass the slot at
/// once while it reads the same. Before, every acquisition waited the whole
/// patience period (1.5 leases per create, for as long as the slot stayed
/// torn).
#[test]
fn a_torn_slot_is_waited_for_once() {
    use marufs_core::media::Env;
    use marufs_core::Media;
    let m = pool(4);
    let mut a = host(&m);
    let d = a.mkdir(b"app", 0, 0, 0o755).unwrap();
    let slot = a.geometry().host_slot(2);
    m.store(slot, &[0x5a; 64]).unwrap();
    let patience = tun().lease_ns + tun().margin_ns;
    let t0 = a.env().now_ns();
    a.create(d, b"k0", 0, 0, 0o644).unwrap();
    let first = a.env().now_ns() - t0;
    assert!(
        first > patience,
        "the first acquisition waited only {first} ns"
    );
    let t1 = a.env().now_ns();
    for i in 1..10u32 {
        a.heartbeat().unwrap();
        a.create(d, format!("k{i}").as_bytes(), 0, 0, 0o644)
            .unwrap();
    }
    let rest = a.env().now_ns() - t1;
    assert!(rest < patience / 10, "9 more creates took {rest} ns");
    // A line that changes is looked at again (a host may be writing it).
    m.store(slot, &[0x5b; 64]).unwrap();
    let t2 = a.env().now_ns();
    a.heartbeat().unwrap();
    a.create(d, b"k10", 0, 0, 0o644).unwrap();
    assert!(a.env().now_ns() - t2 > patience);
}

/// The same slot does not keep deleted keys' space forever: once judged
/// damage, its (unreadable) holds no longer count, and an unlinked key is
/// reclaimed.
#[test]
fn a_torn_slot_does_not_pin_orphans() {
    use marufs_core::Media;
    let m = pool(5);
    let mut a = host(&m);
    let d = a.mkdir(b"app", 0, 0, 0o755).unwrap();
    let h = a.create(d, b"k", 0, 0, 0o644).unwrap();
    a.set_size(&h, UNIT).unwrap();
    a.publish(&h, None).unwrap();
    m.store(a.geometry().host_slot(2), &[0x5a; 64]).unwrap();
    assert_eq!(
        a.unlink_reclaim(d, b"k").unwrap(),
        1,
        "the orphan was not freed"
    );
}
