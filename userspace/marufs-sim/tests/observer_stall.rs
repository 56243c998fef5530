//! An observer that stalls between reading a peer's heartbeat and reading
//! its own clock must not judge the live peer dead (issue 13 §1: time is
//! sampled before a peer's heartbeat is read, never after). Host B watches
//! host A; A renews rarely but within its lease. Taking the namespace lock,
//! B reads A's slot (the old heartbeat), then stalls for longer than A's
//! expiry while A renews. Before the fix, B's clock was read after the load,
//! so B took the stall for silence, fenced A and A's next heartbeat failed
//! with `Fenced`.

use std::cell::Cell;

use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{expiry_ns, Fs, Tunables};
use marufs_core::layout::{host_word, HOST_SLOT_SIZE};
use marufs_core::{Env, Error, Media, MediaError};
use marufs_media::MemMedia;
use marufs_sim::StepClock;

const LEASE: u64 = 1_000_000_000;

/// B's clock, which the trap below moves.
struct Clock<'a>(&'a Cell<u64>);

impl Env for Clock<'_> {
    fn now_ns(&self) -> u64 {
        self.0.set(self.0.get() + 1);
        self.0.get()
    }
    fn wall_ns(&self) -> u64 {
        1
    }
    fn relax(&self) {
        self.0.set(self.0.get() + 1_000);
    }
}

/// B's view of the pool: once armed, its next load of A's host slot returns
/// what it read and then "stalls" B (its clock jumps by `stall`) while A
/// renews (A's heartbeat word moves on).
struct Trap<'a> {
    m: &'a MemMedia,
    slot: u64,
    armed: Cell<bool>,
    clock: &'a Cell<u64>,
    stall: u64,
}

impl Media for Trap<'_> {
    fn size(&self) -> u64 {
        self.m.size()
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        self.m.load(off, buf)?;
        // A single-slot read (not the batched scan of all slots).
        if self.armed.get() && off == self.slot && buf.len() == HOST_SLOT_SIZE as usize {
            self.armed.set(false);
            self.clock.set(self.clock.get() + self.stall);
            let mut hb = [0u8; 8];
            self.m.load(self.slot + host_word::HEARTBEAT, &mut hb)?;
            let next = u64::from_le_bytes(hb).wrapping_add(1);
            self.m
                .store(self.slot + host_word::HEARTBEAT, &next.to_le_bytes())?;
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
fn a_stalled_observer_does_not_fence_a_live_peer() {
    let size = 64 << 21;
    let mem = MemMedia::new(size);
    let geo = format(&mem, &FormatOptions::small(size, 2, 64, 4), &mut |_, _| {})
        .unwrap()
        .geo;
    // A's lease is short; B's long enough to outlast its own stall (hosts
    // may mount with different lease_ms), so B's lease check cannot stop it.
    let tun = Tunables::for_lease(LEASE);
    let b_tun = Tunables::for_lease(10 * LEASE);
    let expiry = expiry_ns(LEASE, b_tun.margin_ns);
    // A: its own clock, renewed by hand below.
    let a_clock = StepClock::new(1_000, 1, 1_000);
    let mut a = Fs::open(&mem, &a_clock, 0, tun).unwrap();
    a.join().unwrap();
    // B: the trapped view and its own clock.
    let b_now = Cell::new(5_000_000_000);
    let trap = Trap {
        m: &mem,
        slot: geo.host_slot(0),
        armed: Cell::new(false),
        clock: &b_now,
        stall: expiry + LEASE,
    };
    let mut b = Fs::open(&trap, Clock(&b_now), 1, b_tun).unwrap();
    b.join().unwrap();
    // B's join took the lock and so started observing A's heartbeat. A
    // stays silent for most of its expiry on B's clock; then B takes the
    // lock again (a mkdir), reads A's slot and stalls while A renews.
    b_now.set(b_now.get() + expiry * 8 / 10);
    b.heartbeat().unwrap();
    trap.armed.set(true);
    b.mkdir(b"d", 0, 0, 0o755).unwrap();
    assert!(!trap.armed.get(), "B never read A's slot alone");
    // A is alive and was never fenced.
    match a.heartbeat() {
        Ok(()) => {}
        Err(Error::Fenced) => {
            panic!("B fenced A, which was renewing: it judged A by a clock read after the load")
        }
        Err(e) => panic!("A's heartbeat: {e:?}"),
    }
}
