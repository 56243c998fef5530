//! `marufs_core::report`: the read-only pool report against pools driven by
//! real `Fs` hosts over a coherent in-memory pool.

use std::cell::Cell;
use std::rc::Rc;

use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{mount_check, Fs, Tunables};
use marufs_core::layout::{Superblock, UNIT};
use marufs_core::report::{report, HeartbeatWatch, HostState, Liveness, PoolReport};
use marufs_core::{Env, Error, Media, MediaError};
use marufs_media::MemMedia;

/// A clock shared by the hosts of a test (advanced by hand).
#[derive(Clone)]
struct Clock(Rc<Cell<u64>>);
impl Env for Clock {
    fn now_ns(&self) -> u64 {
        self.0.set(self.0.get() + 1);
        self.0.get()
    }
    fn wall_ns(&self) -> u64 {
        1_700_000_000_000_000_000 + self.0.get()
    }
    fn relax(&self) {
        self.0.set(self.0.get() + 100);
    }
}
impl Clock {
    fn advance(&self, ns: u64) {
        self.0.set(self.0.get() + ns);
    }
}

const LEASE: u64 = 1_000_000_000;

fn pool(size: u64) -> MemMedia {
    let m = MemMedia::new(size);
    let o = FormatOptions::small(size, 4, 64, 4);
    format(&m, &o, &mut |_, _| {}).expect("format");
    m
}

fn sb<M: Media>(m: &M) -> Superblock {
    mount_check(m).expect("superblock").sb
}

fn rep<M: Media>(m: &M) -> PoolReport {
    let mut r = PoolReport::default();
    report(m, &sb(m), &mut r).expect("report");
    r
}

#[test]
fn fresh_pool() {
    let m = pool(64 * UNIT);
    let r = rep(&m);
    let g = sb(&m).geo;
    assert_eq!(r.max_hosts, 4);
    assert_eq!(r.slots().len(), 4);
    assert!(r.slots().iter().all(|h| h.state == HostState::Free));
    assert_eq!(r.total_units, g.data_units);
    assert_eq!(r.free_units, g.data_units);
    assert_eq!(r.used_units, 0);
    assert_eq!(r.free_chunks, g.chunk_count);
    assert_eq!(r.total_chunks, g.chunk_count);
    assert_eq!(r.entries_used, 0);
    assert_eq!(r.total_entries, 64);
    assert_eq!((r.dirs_used, r.dirs_total), (0, 4));
    assert_eq!(r.bad_owner_chunks, 0);
}

#[test]
fn hosts_chunks_units_and_entries() {
    let m = pool(64 * UNIT);
    let clock = Clock(Rc::new(Cell::new(1)));
    let tun = Tunables::for_lease(LEASE);
    let mut a = Fs::open(&m, clock.clone(), 0, tun).unwrap();
    a.join().unwrap();
    let mut b = Fs::open(&m, clock.clone(), 2, Tunables::for_lease(2 * LEASE)).unwrap();
    b.join().unwrap();
    let d = a.mkdir(b"app", 0, 0, 0o755).unwrap();
    // Host 0: two keys (3 + 1 units), one left creating (2 units).
    for (name, units) in [(&b"k1"[..], 3), (b"k2", 1)] {
        let h = a.create(d, name, 0, 0, 0o644).unwrap();
        a.set_size(&h, units * UNIT).unwrap();
        a.publish(&h, None).unwrap();
    }
    let hc = a.create(d, b"k3", 0, 0, 0o644).unwrap();
    a.set_size(&hc, 2 * UNIT).unwrap();
    // Host 2: one key of 5 units.
    let h = b.create(d, b"k4", 0, 0, 0o644).unwrap();
    b.set_size(&h, 5 * UNIT).unwrap();
    b.publish(&h, None).unwrap();

    let r = rep(&m);
    let st = a.statfs().unwrap();
    assert_eq!(r.free_units, st.free_units);
    assert_eq!(r.free_chunks, st.free_chunks);
    assert_eq!(r.used_units, 11);
    assert_eq!(r.used_units + r.free_units, r.total_units);
    assert_eq!(r.entries_used, 4);
    assert_eq!(r.dirs_used, 1);

    let h0 = r.hosts[0];
    assert_eq!(h0.state, HostState::Active);
    assert_eq!((h0.node, h0.epoch, h0.lease_ns), (0, 1, LEASE));
    assert_eq!(h0.units_used, 6);
    assert!(h0.chunks >= 1);
    assert_eq!(h0.chunks, h0.chunks_counted);
    assert_eq!(
        h0.units_used + h0.units_free,
        u64::from(h0.chunks) * u64::from(r.chunk_units)
    );
    assert!(h0.heartbeat >= 1);
    assert!(h0.since_wall_ns > 1_700_000_000_000_000_000);
    assert_eq!(h0.ticket, 0, "nobody holds the lock between operations");

    let h2 = r.hosts[2];
    assert_eq!(h2.state, HostState::Active);
    assert_eq!((h2.node, h2.lease_ns), (2, 2 * LEASE));
    assert_eq!(h2.units_used, 5);
    assert_eq!(h2.chunks, h2.chunks_counted);
    assert_eq!(r.hosts[1].state, HostState::Free);
    assert_eq!(r.hosts[3].state, HostState::Free);
    let per_host: u64 = r.slots().iter().map(|h| h.units_used).sum();
    assert_eq!(per_host, r.used_units);

    // Host 0 leaves: its creating key is aborted, its empty chunks released;
    // published keys keep their units (the chunks stay with their owner
    // until a peer adopts them).
    a.abort(&hc).unwrap();
    a.leave().unwrap();
    let r = rep(&m);
    assert_eq!(r.hosts[0].state, HostState::Left);
    assert_eq!(r.hosts[0].units_used, 4);
    assert_eq!(r.entries_used, 3);
    // Host 2 adopts what host 0 left behind.
    b.check_peers().unwrap();
    let r = rep(&m);
    assert_eq!(r.hosts[0].chunks, 0);
    assert_eq!(r.hosts[0].chunks_counted, 0);
    assert_eq!(r.hosts[2].units_used, 9);
}

#[test]
fn fenced_host_and_heartbeat_watch() {
    let m = pool(64 * UNIT);
    let clock = Clock(Rc::new(Cell::new(1)));
    let tun = Tunables::for_lease(LEASE);
    let mut a = Fs::open(&m, clock.clone(), 0, tun).unwrap();
    a.join().unwrap();
    let mut b = Fs::open(&m, clock.clone(), 1, tun).unwrap();
    b.join().unwrap();
    let d = b.mkdir(b"app", 0, 0, 0o755).unwrap();
    let h = b.create(d, b"k", 0, 0, 0o644).unwrap();
    b.set_size(&h, UNIT).unwrap();
    b.publish(&h, None).unwrap();

    // The observer's clock is its own (here: an unrelated origin).
    let mut w = HeartbeatWatch::new();
    let mut reader_now = 7_000_000_000u64;
    let r = rep(&m);
    w.observe(&r, reader_now);
    assert_eq!(w.liveness(&r, 1, reader_now), Liveness::Unknown);
    assert_eq!(w.liveness(&r, 3, reader_now), Liveness::NotActive);

    // Both beat for a while: live.
    for _ in 0..3 {
        clock.advance(LEASE / 4);
        reader_now += LEASE / 4;
        a.heartbeat().unwrap();
        b.heartbeat().unwrap();
        w.observe(&rep(&m), reader_now);
    }
    let r = rep(&m);
    assert_eq!(w.liveness(&r, 0, reader_now), Liveness::Live);
    assert_eq!(w.liveness(&r, 1, reader_now), Liveness::Live);
    let p = w.period_ns(1).expect("period");
    assert!((LEASE / 4..LEASE / 4 + 1000).contains(&p), "period {p}");

    // Host 1 goes silent; host 0 keeps beating and eventually fences it.
    let mut fenced = false;
    for _ in 0..12 {
        clock.advance(LEASE / 4);
        reader_now += LEASE / 4;
        a.heartbeat().unwrap();
        let r = rep(&m);
        w.observe(&r, reader_now);
        if r.hosts[1].state == HostState::Active {
            let l = w.liveness(&r, 1, reader_now);
            let silent = w.silent_ns(1, reader_now).unwrap();
            match l {
                Liveness::Live => assert!(silent <= LEASE),
                Liveness::Late => assert!(silent > LEASE && silent <= LEASE * 3 / 2),
                Liveness::Expired => assert!(silent > LEASE * 3 / 2),
                other => panic!("unexpected {other:?}"),
            }
        }
        a.check_peers().unwrap();
        if rep(&m).hosts[1].state == HostState::Fenced {
            fenced = true;
            break;
        }
    }
    assert!(fenced, "host 1 was never fenced");
    let r = rep(&m);
    let h1 = r.hosts[1];
    assert_eq!(h1.state, HostState::Fenced);
    assert_eq!(h1.fenced_epoch, h1.epoch);
    assert!(
        !h1.recovery_pending,
        "takeover completes in the same lock hold"
    );
    assert_eq!(h1.recovered_epoch, h1.epoch);
    assert_eq!(h1.chunks, 0, "chunks taken over");
    assert_eq!(r.hosts[0].units_used, 1);
    assert_eq!(w.liveness(&r, 1, reader_now), Liveness::NotActive);
    assert_eq!(r.pending_recovery, 0);
}

/// Media wrapper whose host-slot identity lines read torn a number of times.
struct Torn<'a> {
    m: &'a MemMedia,
    host_off: u64,
    torn_reads: Cell<u32>,
}
impl Media for Torn<'_> {
    fn size(&self) -> u64 {
        self.m.size()
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        self.m.load(off, buf)?;
        if off == self.host_off && self.torn_reads.get() > 0 {
            self.torn_reads.set(self.torn_reads.get() - 1);
            buf[9] ^= 0x5a; // inside the epoch: the CRC no longer matches
        }
        Ok(())
    }
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), MediaError> {
        self.m.store(off, buf)
    }
    fn flush(&self, off: u64, len: u64) -> Result<(), MediaError> {
        self.m.flush(off, len)
    }
    fn invalidate(&self, off: u64, len: u64) -> Result<(), MediaError> {
        self.m.invalidate(off, len)
    }
}

#[test]
fn torn_identity_is_retried_then_reported() {
    let m = pool(64 * UNIT);
    let clock = Clock(Rc::new(Cell::new(1)));
    let mut a = Fs::open(&m, clock, 0, Tunables::for_lease(LEASE)).unwrap();
    a.join().unwrap();
    let s = sb(&m);
    let t = Torn {
        m: &m,
        host_off: s.geo.host_slot(0),
        torn_reads: Cell::new(5),
    };
    let mut r = PoolReport::default();
    report(&t, &s, &mut r).unwrap();
    assert_eq!(
        r.hosts[0].state,
        HostState::Active,
        "retried past 5 torn reads"
    );
    assert_eq!(t.torn_reads.get(), 0);
    t.torn_reads.set(u32::MAX);
    report(&t, &s, &mut r).unwrap();
    assert_eq!(r.hosts[0].state, HostState::Unreadable);
    assert_eq!(r.hosts[0].node, 0);
    assert_eq!(r.hosts[1].state, HostState::Free);
}

#[test]
fn wrong_geometry_is_refused() {
    let m = pool(64 * UNIT);
    let mut s = sb(&m);
    s.geo.total_size *= 2; // does not fit the media
    let mut r = PoolReport::default();
    assert_eq!(report(&m, &s, &mut r), Err(Error::Corrupt));
}
