//! Media operations per metadata operation (printed; a guard against
//! regressions in the number of cache lines a create or lookup touches).

use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{Fs, Tunables};
use marufs_core::layout::UNIT;
use marufs_core::{Media, MediaError};
use marufs_media::MemMedia;
use std::cell::Cell;

#[derive(Default)]
struct Count {
    loads: Cell<u64>,
    load_bytes: Cell<u64>,
    stores: Cell<u64>,
    flushes: Cell<u64>,
    flush_bytes: Cell<u64>,
    invals: Cell<u64>,
    inval_bytes: Cell<u64>,
}
struct Counting<'a>(&'a MemMedia, &'a Count);
impl Media for Counting<'_> {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        self.1.loads.set(self.1.loads.get() + 1);
        self.1
            .load_bytes
            .set(self.1.load_bytes.get() + buf.len() as u64);
        self.0.load(off, buf)
    }
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), MediaError> {
        self.1.stores.set(self.1.stores.get() + 1);
        self.0.store(off, buf)
    }
    fn flush(&self, off: u64, len: u64) -> Result<(), MediaError> {
        self.1.flushes.set(self.1.flushes.get() + 1);
        self.1.flush_bytes.set(self.1.flush_bytes.get() + len);
        self.0.flush(off, len)
    }
    fn invalidate(&self, off: u64, len: u64) -> Result<(), MediaError> {
        self.1.invals.set(self.1.invals.get() + 1);
        self.1.inval_bytes.set(self.1.inval_bytes.get() + len);
        self.0.invalidate(off, len)
    }
}
fn clock(start: u64) -> marufs_sim::StepClock {
    marufs_sim::StepClock::new(start, 42, 100)
}

#[test]
fn media_ops_per_operation() {
    let a = counts_at(8);
    let b = counts_at(64);
    for (n, (loads, flushes, unlink)) in [(8, a), (64, b)] {
        println!(
            "max_hosts {n}: create+set_size+publish {loads} loads, {flushes} flushes; unlink {unlink} loads"
        );
    }
    println!("issue 15's targets: create+set_size+publish <= 20 loads, <= 8 flushes; unlink <= 10 loads; independent of max_hosts");
}

/// Loads and flushes of an uncontended create + set_size + publish, and
/// loads of an unlink, on a pool formatted for `max_hosts` (one host up).
fn counts_at(max_hosts: u32) -> (u64, u64, u64) {
    let size = 1024 * UNIT;
    let m = MemMedia::new(size);
    let mut o = FormatOptions::standard(size);
    o.params.max_hosts = max_hosts;
    format(&m, &o, &mut |_, _| {}).unwrap();
    let c = Count::default();
    let cm = Counting(&m, &c);
    let mut fs = Fs::open(&cm, clock(1), 0, Tunables::for_lease(1_000_000_000)).unwrap();
    fs.join().unwrap();
    let d = fs.mkdir(b"app", 0, 0, 0o755).unwrap();
    let snap = |c: &Count| {
        (
            c.loads.get(),
            c.load_bytes.get(),
            c.stores.get(),
            c.flushes.get(),
            c.flush_bytes.get(),
            c.invals.get(),
            c.inval_bytes.get(),
        )
    };
    let diff = |a: (u64, u64, u64, u64, u64, u64, u64), b: (u64, u64, u64, u64, u64, u64, u64)| {
        (
            b.0 - a.0,
            b.1 - a.1,
            b.2 - a.2,
            b.3 - a.3,
            b.4 - a.4,
            b.5 - a.5,
            b.6 - a.6,
        )
    };
    // Warm up: the first set_size acquires a chunk for this host (a locked
    // operation of its own, not counted below).
    let h = fs.create(d, b"warm", 0, 0, 0o644).unwrap();
    fs.set_size(&h, UNIT).unwrap();
    fs.publish(&h, None).unwrap();
    let mut last = (0, 0, 0);
    for i in 0..3 {
        let name = format!("k{i}");
        let s0 = snap(&c);
        let h = fs.create(d, name.as_bytes(), 0, 0, 0o644).unwrap();
        let s1 = snap(&c);
        fs.set_size(&h, UNIT).unwrap();
        let s2 = snap(&c);
        fs.publish(&h, None).unwrap();
        let s3 = snap(&c);
        fs.lookup(d, name.as_bytes()).unwrap();
        let s4 = snap(&c);
        fs.unlink(d, name.as_bytes()).unwrap();
        let s5 = snap(&c);
        fs.drain_orphans().unwrap();
        let s6 = snap(&c);
        println!(
            "max_hosts {max_hosts} (loads, load B, stores, flushes, flush B, invals, inval B)"
        );
        println!("create   {:?}", diff(s0, s1));
        println!("set_size {:?}", diff(s1, s2));
        println!("publish  {:?}", diff(s2, s3));
        println!("lookup   {:?}", diff(s3, s4));
        println!("unlink   {:?}", diff(s4, s5));
        println!("drain    {:?}", diff(s5, s6));
        // A lookup is one index line and one entry. A locked operation
        // reads the host slots twice (doorway, wait: 1 KiB per load), its
        // journal record in 512-byte windows, and each line it changes.
        assert!(diff(s3, s4).0 <= 2, "lookup loads {:?}", diff(s3, s4));
        let scans = 2 * u64::from(max_hosts.div_ceil(8));
        let loads = diff(s0, s3).0;
        let flushes = diff(s0, s3).3;
        assert!(
            loads <= 2 * scans + 30,
            "create+set_size+publish: {loads} loads"
        );
        assert!(
            diff(s4, s5).0 <= scans + 14,
            "unlink: {} loads",
            diff(s4, s5).0
        );
        last = (loads, flushes, diff(s4, s5).0);
    }
    last
}
