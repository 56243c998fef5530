//! Data-plane coherence policy: which data units a host writes back or
//! invalidates, and when, so that key bytes are right on memory shared
//! without coherent caches (CXL 2.0-style sharing). The kernel executes it
//! (and skips it on a `coherent` mount); the simulator checks it with its
//! cache model. Metadata coherence is `fs`'s business (every shared record
//! is invalidated before it is read and flushed after it is written).
//!
//! The hazards, and the rule against each:
//!
//! 1. *A writer's stores sit in its cache.* Bytes that reach a key through a
//!    user mapping are in the creator's cache until written back. Before the
//!    key is published (close, `linkat`) or its units are given up (abort,
//!    discard), every unit it may have dirtied is written back
//!    ([`KeyWrites::must_write_back`]); `fsync`/`msync` of a creating key too.
//!    Bytes written by `write()` (a cache-bypassing copy) or by zeroing
//!    (non-temporal stores) leave no dirty line.
//! 2. *A reader's cache holds stale lines.* A host may hold lines of a unit
//!    from a key that occupied it before (or a speculative prefetch through
//!    the kernel's linear map, at any time). Before a host first reads a
//!    unit's bytes for a key (`read()`, the first fault of each unit, the
//!    batched retrieve) it invalidates the unit, unless its [`UnitTracker`]
//!    says it already did for this very key: (entry, generation) names one
//!    immutable key instance, so a line fetched after that invalidation (and
//!    after the publish write-back) equals memory. Reopening the same key
//!    costs nothing; a reused unit is invalidated once.
//! 3. *A creator must not see a previous tenant's bytes.* A creator's units
//!    are zeroed by this host with non-temporal stores, which leave no line
//!    of them in its cache (or were zeroed ahead the same way while free):
//!    [`UnitTracker::own`] records that this host's cache holds only the new
//!    key's bytes of them.
//!
//! The tracker lives in the host's DRAM and is lost with it: a new mount
//! starts with every unit unknown (invalidated at first read).

/// What a host's cache may hold of one data unit: the bytes of key instance
/// (`entry`, `generation`), current since this host invalidated (or zeroed)
/// the unit for that key. `entry == u32::MAX`: unknown (invalidate first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    entry: u32,
    generation: u64,
}

impl Seen {
    /// Nothing known: the next read invalidates.
    pub const UNKNOWN: Seen = Seen {
        entry: u32::MAX,
        generation: 0,
    };
}

impl Default for Seen {
    fn default() -> Self {
        Seen::UNKNOWN
    }
}

/// Per host, per data unit: which key's bytes its cache may hold (see the
/// module docs). Storage is the caller's (`data_units` slots; the kernel
/// allocates it at mount), so the core needs no allocator.
pub struct UnitTracker<'a> {
    slots: &'a mut [Seen],
}

impl<'a> UnitTracker<'a> {
    /// A tracker over `slots` (one per data unit), all unknown.
    pub fn new(slots: &'a mut [Seen]) -> Self {
        slots.fill(Seen::UNKNOWN);
        UnitTracker { slots }
    }

    /// Wraps slots already initialised by [`UnitTracker::new`].
    pub fn resume(slots: &'a mut [Seen]) -> Self {
        UnitTracker { slots }
    }

    /// Whether reading unit `unit` of key (`entry`, `generation`) needs an
    /// invalidation first.
    pub fn needs_invalidate(&self, unit: u64, entry: u32, generation: u64) -> bool {
        match self.slots.get(unit as usize) {
            Some(s) => s.entry != entry || s.generation != generation || entry == u32::MAX,
            None => true,
        }
    }

    /// Before this host reads unit `unit` of key (`entry`, `generation`):
    /// runs `invalidate` (of the whole unit) unless the tracker vouches for
    /// the unit, and records the key only once `invalidate` succeeded, so a
    /// concurrent reader of the same unit (serialised by the caller's lock
    /// around this call) never skips an invalidation still under way.
    /// Returns whether it invalidated.
    pub fn before_read<E>(
        &mut self,
        unit: u64,
        entry: u32,
        generation: u64,
        invalidate: impl FnOnce() -> Result<(), E>,
    ) -> Result<bool, E> {
        if !self.needs_invalidate(unit, entry, generation) {
            return Ok(false);
        }
        invalidate()?;
        if let Some(s) = self.slots.get_mut(unit as usize) {
            *s = Seen { entry, generation };
        }
        Ok(true)
    }

    /// This host zeroed `unit` with non-temporal stores (or it was zeroed
    /// ahead that way while free) for its new key (`entry`, `generation`):
    /// its cache holds no other key's line of it.
    pub fn own(&mut self, unit: u64, entry: u32, generation: u64) {
        if let Some(s) = self.slots.get_mut(unit as usize) {
            *s = Seen { entry, generation };
        }
    }

    /// This host can no longer vouch for `unit` (its content changed in a
    /// way the tracker did not see).
    pub fn forget(&mut self, unit: u64) {
        if let Some(s) = self.slots.get_mut(unit as usize) {
            *s = Seen::UNKNOWN;
        }
    }

    /// Forgets every unit (after the mount lost its lease, say).
    pub fn forget_all(&mut self) {
        self.slots.fill(Seen::UNKNOWN);
    }
}

/// How the bytes of one creating key arrived on this host, which decides
/// whether its units must be written back before publish or abort.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyWrites {
    mapped_writable: bool,
}

impl KeyWrites {
    /// A user mapping of the key was made writable (a write fault or
    /// `page_mkwrite`): its stores may sit in this host's cache.
    pub fn note_writable_mapping(&mut self) {
        self.mapped_writable = true;
    }

    /// Whether every unit of the key must be written back before it is
    /// published or its units are given up (whole units: a PMD mapping
    /// exposes the last unit past the size, and a dirty line left behind
    /// there could be evicted later onto the unit's next owner). Bytes from
    /// `write()` (cache-bypassing copy) and zeroing need none.
    pub fn must_write_back(&self) -> bool {
        self.mapped_writable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_invalidates_once_per_key_instance() {
        let mut s = [Seen::default(); 4];
        let mut t = UnitTracker::new(&mut s);
        let mut n = 0;
        let mut inv = || -> Result<(), ()> {
            n += 1;
            Ok(())
        };
        assert_eq!(t.before_read(1, 7, 3, &mut inv), Ok(true));
        assert_eq!(
            t.before_read(1, 7, 3, &mut inv),
            Ok(false),
            "same key: vouched"
        );
        assert_eq!(t.before_read(1, 7, 4, &mut inv), Ok(true), "slot reused");
        assert_eq!(t.before_read(1, 8, 4, &mut inv), Ok(true), "unit reused");
        assert_eq!(
            t.before_read(9, 8, 4, &mut inv),
            Ok(true),
            "out of range: always"
        );
        assert_eq!(t.before_read(9, 8, 4, &mut inv), Ok(true));
        t.own(2, 5, 1);
        assert_eq!(t.before_read(2, 5, 1, &mut inv), Ok(false), "own key");
        t.forget(2);
        assert_eq!(t.before_read(2, 5, 1, &mut inv), Ok(true));
        t.forget_all();
        assert!(t.needs_invalidate(1, 8, 4));
        assert_eq!(n, 6);
    }

    #[test]
    fn failed_invalidate_is_not_recorded() {
        let mut s = [Seen::default(); 2];
        let mut t = UnitTracker::new(&mut s);
        assert_eq!(t.before_read(0, 1, 1, || Err(())), Err(()));
        assert!(t.needs_invalidate(0, 1, 1));
    }

    #[test]
    fn unknown_entry_never_vouched() {
        let mut s = [Seen::default(); 1];
        let t = UnitTracker::new(&mut s);
        assert!(t.needs_invalidate(0, u32::MAX, 0));
    }

    #[test]
    fn writes_through_mappings_need_write_back() {
        let mut w = KeyWrites::default();
        assert!(
            !w.must_write_back(),
            "write() and zeroing leave no dirty line"
        );
        w.note_writable_mapping();
        assert!(w.must_write_back());
    }
}
