//! The media and environment traits every marufs operation runs over.
//!
//! Offsets are byte offsets from the start of the pool. Memory is shared by up to
//! 64 hosts whose caches are not coherent: a `store` may stay in this host's cache
//! until `flush`, and a `load` may return this host's stale cached copy unless the
//! range was `invalidate`d first.

/// Failure of a media call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaError {
    /// The range lies outside the device.
    OutOfBounds,
    /// The host crashed (simulator only): the operation must stop at once.
    Crashed,
    /// Any other I/O failure.
    Io,
}

impl core::fmt::Display for MediaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MediaError::OutOfBounds => "access beyond the end of the device",
            MediaError::Crashed => "the host crashed (simulated)",
            MediaError::Io => "I/O error on the device",
        })
    }
}

/// Byte-addressed access to the shared pool.
pub trait Media {
    /// Size of the pool in bytes.
    fn size(&self) -> u64;
    /// Reads `buf.len()` bytes at `off` (possibly from this host's cache).
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError>;
    /// Writes `buf` at `off` (possibly only into this host's cache).
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), MediaError>;
    /// Writes back this host's cached copy of the range to shared memory and waits:
    /// a later `load` on any host that invalidated the range sees the data.
    fn flush(&self, off: u64, len: u64) -> Result<(), MediaError>;
    /// Drops this host's cached copy of the range (dirty lines are written back
    /// first, like `clflush`), so that the next `load` reads shared memory.
    fn invalidate(&self, off: u64, len: u64) -> Result<(), MediaError>;
}

/// The host environment: clocks and waiting.
pub trait Env {
    /// Monotonic time in nanoseconds (leases and heartbeats).
    fn now_ns(&self) -> u64;
    /// Wall-clock time in nanoseconds since the Unix epoch (timestamps).
    fn wall_ns(&self) -> u64;
    /// Called in every wait loop (spin, yield or sleep briefly).
    fn relax(&self);
    /// Waits about `ns` (sleeping where the environment can); `false` if
    /// the wait was interrupted and the caller should give up. The default
    /// relaxes once.
    fn pause(&self, ns: u64) -> bool {
        let _ = ns;
        self.relax();
        true
    }
    /// The fabric-fencing hook: called by a survivor that judged host
    /// `node`'s incarnation `epoch` dead, before it replays that host's
    /// journal or takes anything of it over. An environment with a way to
    /// cut a host off the shared memory (a fabric manager unbinding its
    /// port, a device access-control table) does so here and returns `true`
    /// once the host can no longer write, `false` if it could not (the
    /// takeover is then postponed). Without such a way (the default) it
    /// returns `true`: fencing is then software only, safe under the timing
    /// bound `protocol.md` states.
    fn fence_host(&self, node: u32, epoch: u64) -> bool {
        let _ = (node, epoch);
        true
    }
}

impl<T: Media + ?Sized> Media for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        (**self).load(off, buf)
    }
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), MediaError> {
        (**self).store(off, buf)
    }
    fn flush(&self, off: u64, len: u64) -> Result<(), MediaError> {
        (**self).flush(off, len)
    }
    fn invalidate(&self, off: u64, len: u64) -> Result<(), MediaError> {
        (**self).invalidate(off, len)
    }
}

impl<T: Env + ?Sized> Env for &T {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
    fn wall_ns(&self) -> u64 {
        (**self).wall_ns()
    }
    fn relax(&self) {
        (**self).relax()
    }
    fn pause(&self, ns: u64) -> bool {
        (**self).pause(ns)
    }
    fn fence_host(&self, node: u32, epoch: u64) -> bool {
        (**self).fence_host(node, epoch)
    }
}
