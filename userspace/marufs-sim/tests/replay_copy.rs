//! A replayer must never apply a mix of two records (issue 13 §1): host 1's
//! pending record is replayed by host 0 while host 1 — a stalled host that
//! resumed — writes its next record over it. At every load of the replay a
//! "zombie" rewrites one op of the record. Applying in place
//! (`journal::apply`, what replays did before) writes a mix of the two
//! records in some of those schedules; `journal::copy_record` either copies
//! exactly the record it validated or reports that it changed.

use std::cell::Cell;

use marufs_core::format::{format, FormatOptions};
use marufs_core::journal::{self, Txn};
use marufs_core::layout::{Geometry, UNIT};
use marufs_core::{Media, MediaError};
use marufs_media::MemMedia;

/// A pool whose `trigger`-th load (counting from arming) first lets the
/// zombie store `zombie` bytes at `zombie_at`.
struct Zombie<'a> {
    m: &'a MemMedia,
    loads: Cell<u64>,
    trigger: Cell<u64>,
    zombie_at: u64,
    zombie: [u8; 64],
}

impl Media for Zombie<'_> {
    fn size(&self) -> u64 {
        self.m.size()
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        let n = self.loads.get() + 1;
        self.loads.set(n);
        if n == self.trigger.get() {
            self.m.store(self.zombie_at, &self.zombie)?;
        }
        self.m.load(off, buf)
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

const OPS: u32 = 4;

/// Pool with a pending record of host 1: OPS ops of 128 bytes (value
/// `0x11 + i`) at entries 0..OPS, already applied and then overwritten with
/// 0xEE (so what a replay writes shows). Returns the pool, its geometry and
/// the record.
fn pool() -> (MemMedia, Geometry, journal::Pending) {
    let size = 64 * UNIT;
    let m = MemMedia::new(size);
    let g = format(&m, &FormatOptions::small(size, 2, 48, 4), &mut |_, _| {})
        .expect("format")
        .geo;
    let mut t = Txn::begin(&g, 1, 7);
    for i in 0..OPS {
        t.put(&m, &g, g.entry(i), &[0x11 + i as u8; 128])
            .expect("put");
    }
    let seq = t.commit(&m, &g, 1).expect("commit");
    journal::mark_applied(&m, &g, 1, seq - 1).expect("unapply");
    for i in 0..OPS {
        m.store(g.entry(i), &[0xEE; 128]).expect("store");
    }
    let p = journal::pending(&m, &g, 1)
        .expect("pending")
        .expect("a pending record");
    (m, g, p)
}

fn entry_bytes(m: &MemMedia, g: &Geometry, i: u32) -> [u8; 128] {
    let mut b = [0u8; 128];
    m.load(g.entry(i), &mut b).expect("load");
    b
}

/// What a replay left: all ops of the record (`Some(true)`), none
/// (`Some(false)`), or a mix (`None`).
fn outcome(m: &MemMedia, g: &Geometry) -> Option<bool> {
    let applied: Vec<bool> = (0..OPS)
        .map(|i| entry_bytes(m, g, i) == [0x11 + i as u8; 128])
        .collect();
    let untouched: Vec<bool> = (0..OPS)
        .map(|i| entry_bytes(m, g, i) == [0xEE; 128])
        .collect();
    if applied.iter().all(|&a| a) {
        Some(true)
    } else if untouched.iter().all(|&u| u) {
        Some(false)
    } else {
        None
    }
}

/// The zombie's next record rewrites the data of the record's last op (its
/// first 64 bytes) with 0x77: a mix shows as the last entry reading 0x77s.
fn zombie_offset(g: &Geometry, p: &journal::Pending) -> u64 {
    // Ops: 16-byte header, then 128 data bytes each.
    let last = u64::from(p.count - 1) * (16 + 128);
    g.journal(1) + journal::OPS + last + 16
}

/// The zombie over `m`, rewriting at its `trigger`-th load.
fn zombie<'a>(m: &'a MemMedia, g: &Geometry, p: &journal::Pending, trigger: u64) -> Zombie<'a> {
    Zombie {
        m,
        loads: Cell::new(0),
        trigger: Cell::new(trigger),
        zombie_at: zombie_offset(g, p),
        zombie: [0x77; 64],
    }
}

#[test]
fn replay_never_applies_a_mix_of_two_records() {
    let mut mixed_in_place = 0;
    let mut refused = 0;
    let mut copied = 0;
    for trigger in 1..200 {
        // In place, as replays did before.
        let (m, g, p) = pool();
        let z = zombie(&m, &g, &p, trigger);
        journal::apply(&z, &g, 1, &p).expect("apply");
        if outcome(&m, &g).is_none() {
            mixed_in_place += 1;
        }
        // Copied into host 0's journal with the CRC re-checked, then
        // committed from the copy.
        let (m, g, p) = pool();
        let z = zombie(&m, &g, &p, trigger);
        let mut t = Txn::begin(&g, 0, 1);
        if journal::copy_record(&z, &g, 1, &p, &mut t).expect("copy") {
            t.commit(&m, &g, 0).expect("commit the copy");
            copied += 1;
        } else {
            refused += 1;
        }
        assert!(
            outcome(&m, &g).is_some(),
            "trigger {trigger}: the copy applied a mix of two records"
        );
    }
    println!(
        "199 schedules: in place {mixed_in_place} mixed; copy_record {copied} copied exactly, {refused} refused"
    );
    assert!(mixed_in_place > 0, "the zombie never hit an in-place apply");
    assert!(refused > 0, "the zombie never hit a copy");
    assert!(copied > 0, "no copy completed");
}
