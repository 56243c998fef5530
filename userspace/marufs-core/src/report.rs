//! Read-only pool report: who is in the pool and what it holds (for
//! `maru top` / `maru df` and other observers).
//!
//! [`report`] only loads (every load preceded by an `invalidate`); it never
//! stores, takes no lock and joins nothing, so it can run while hosts have the
//! pool mounted, including from userspace on a host whose kernel has it
//! mounted. What it returns is a snapshot assembled from many separate reads
//! while other hosts keep writing: every number is exact for an idle pool and
//! approximate for a busy one (the same as `statfs`). See
//! `Documentation/design/format.md`, "Reading a mounted pool".
//!
//! Heartbeats are counters stamped with the *writer's* monotonic clock, which
//! no other host can interpret (clocks of different hosts are neither
//! synchronised nor even of the same epoch: each starts at that host's boot).
//! The only sound measure of a host's silence is the one the protocol itself
//! uses: note on the reader's own clock when the counter was last seen to
//! change. [`HeartbeatWatch`] does that over successive reports.

use super::error::{Error, Result};
use super::layout::{
    host_state, host_word, ChunkRec, HostIdent, NsHdr, RegRec, Superblock, BITMAP_SIZE,
    CHUNK_REC_SIZE, HOST_SLOT_SIZE, MAX_HOSTS, NSHDR_SIZE, REG_SIZE,
};
use super::media::Media;

/// Bounded re-reads of a host identity line whose checksum fails (a joining
/// host mid-write), before the slot is reported [`HostState::Unreadable`].
pub const READ_RETRIES: u32 = 1000;

/// What a host slot says about its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HostState {
    /// Never used.
    #[default]
    Free,
    /// Joined (mounted read-write) and not fenced.
    Active,
    /// Left cleanly (unmounted).
    Left,
    /// Its identity says active, but a survivor judged it dead and fenced its
    /// epoch (`recovery_pending` tells whether the takeover is complete). The
    /// host must mount again (a new epoch) to take part.
    Fenced,
    /// The identity line failed its checksum through every retry: a host
    /// writing it right now, or damage (`maru-fsck` tells which).
    Unreadable,
}

impl HostState {
    /// A short lower-case name (`free`, `active`, `left`, `fenced`, `unreadable`).
    pub fn name(&self) -> &'static str {
        match self {
            HostState::Free => "free",
            HostState::Active => "active",
            HostState::Left => "left",
            HostState::Fenced => "fenced",
            HostState::Unreadable => "unreadable",
        }
    }
}

/// One host slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HostReport {
    /// State (see [`HostState`]).
    pub state: HostState,
    /// Node id stored in the identity (equals the slot index on a sane pool).
    pub node: u32,
    /// Epoch: bumped at every join (mount) of this node.
    pub epoch: u64,
    /// The host's lease in ns (its `lease_ms=` mount option).
    pub lease_ns: u64,
    /// Wall-clock time (ns since the Unix epoch, the *writer's* clock) of the
    /// last identity change: the join for an active or fenced host, the leave
    /// for a host that left. The format stores no host name: the node id is
    /// the host's only identity in the pool.
    pub since_wall_ns: u64,
    /// Heartbeat counter (incremented at every renewal; never reset by a
    /// rejoin). Only its *changes* mean anything to another host.
    pub heartbeat: u64,
    /// The writer's monotonic clock at its last renewal (ns since that host
    /// booted): informational, not comparable with any other host's clock.
    pub hb_time_ns: u64,
    /// Bakery ticket: non-zero while the host competes for or holds the
    /// namespace lock.
    pub ticket: u64,
    /// Epochs up to this one are fenced (registry).
    pub fenced_epoch: u64,
    /// Highest fenced epoch whose takeover completed (registry).
    pub recovered_epoch: u64,
    /// Fenced, takeover not complete yet (namespace header).
    pub recovery_pending: bool,
    /// Unlinked keys queued on this host until no host holds them (registry).
    pub orphans: u32,
    /// Chunks owned according to the registry's counter.
    pub chunks_counted: u32,
    /// Chunks owned according to the chunk table (the truth; differs from
    /// `chunks_counted` only transiently or on a damaged pool).
    pub chunks: u32,
    /// Allocated 2 MiB units in the chunks this host owns.
    pub units_used: u64,
    /// Free units in the chunks this host owns (only this host allocates them).
    pub units_free: u64,
}

/// The whole pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolReport {
    /// Host slots of this pool (`hosts[..max_hosts]` are meaningful).
    pub max_hosts: u32,
    /// One report per host slot.
    pub hosts: [HostReport; MAX_HOSTS],
    /// Data units (2 MiB) in the pool.
    pub total_units: u64,
    /// Units allocated to keys (sum over owned chunks).
    pub used_units: u64,
    /// Units not allocated: in unowned chunks plus free units of owned chunks.
    pub free_units: u64,
    /// Chunks in the pool.
    pub total_chunks: u32,
    /// Chunks owned by no host.
    pub free_chunks: u32,
    /// Units per chunk.
    pub chunk_units: u32,
    /// Chunks whose owner field names no host slot (damage; `maru-fsck`).
    pub bad_owner_chunks: u32,
    /// Key entries in the pool.
    pub total_entries: u64,
    /// Key entries in use (being created, published, or unlinked and still
    /// held): the entries ever used minus those on the free list.
    pub entries_used: u64,
    /// Directory slots.
    pub dirs_total: u32,
    /// Directories in use.
    pub dirs_used: u32,
    /// Hosts fenced whose takeover is not complete (bit per host).
    pub pending_recovery: u64,
}

impl Default for PoolReport {
    fn default() -> Self {
        PoolReport {
            max_hosts: 0,
            hosts: [HostReport::default(); MAX_HOSTS],
            total_units: 0,
            used_units: 0,
            free_units: 0,
            total_chunks: 0,
            free_chunks: 0,
            chunk_units: 0,
            bad_owner_chunks: 0,
            total_entries: 0,
            entries_used: 0,
            dirs_total: 0,
            dirs_used: 0,
            pending_recovery: 0,
        }
    }
}

impl PoolReport {
    /// The meaningful host slots (`hosts[..max_hosts]`).
    pub fn slots(&self) -> &[HostReport] {
        self.hosts
            .get(..self.max_hosts as usize)
            .unwrap_or(&self.hosts)
    }
}

fn ld<M: Media, const N: usize>(m: &M, off: u64) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    m.invalidate(off, N as u64)?;
    m.load(off, &mut b)?;
    Ok(b)
}

fn rd64(b: &[u8], o: u64) -> u64 {
    super::layout::rd64(b, o as usize)
}

/// Reads the pool into `out` (overwriting all of it).
///
/// `sb` is the superblock in use (from [`super::fs::mount_check`], or the
/// mount's own). Errors: `Corrupt` when the geometry does not fit the media,
/// `Media` on a failed load. A host identity that stays torn is not an
/// error: the slot is reported [`HostState::Unreadable`].
pub fn report<M: Media>(m: &M, sb: &Superblock, out: &mut PoolReport) -> Result<()> {
    let geo = &sb.geo;
    if !geo.validate(m.size()) {
        return Err(Error::Corrupt);
    }
    *out = PoolReport::default();
    out.max_hosts = geo.max_hosts.min(MAX_HOSTS as u32);
    out.total_units = geo.data_units;
    out.total_chunks = geo.chunk_count;
    out.chunk_units = geo.chunk_units;
    out.total_entries = geo.entry_count;
    out.dirs_total = geo.dir_count;

    let ns = NsHdr::decode(&ld::<M, NSHDR_SIZE>(m, geo.nshdr_off)?);
    out.pending_recovery = ns.pending_recovery;
    out.dirs_used = ns.dirs_used;
    out.entries_used = u64::from(ns.hwm)
        .saturating_sub(u64::from(ns.free_count))
        .min(geo.entry_count);

    for (h, r) in (0u32..).zip(out.hosts.iter_mut()) {
        if h >= out.max_hosts {
            break;
        }
        read_host(m, sb, h, ns.pending_recovery, r)?;
    }

    // Chunk table: records are 16 B, four to a line; read a line at a time.
    let per_line = (64 / CHUNK_REC_SIZE) as u32;
    let mut c = 0u32;
    while c < geo.chunk_count {
        let line = ld::<M, 64>(m, geo.chunk(c))?;
        for k in 0..per_line {
            let cc = c.saturating_add(k);
            if cc >= geo.chunk_count {
                break;
            }
            let mut rb = [0u8; 16];
            let at = (k as usize).saturating_mul(16);
            if let Some(s) = line.get(at..at.saturating_add(16)) {
                rb.copy_from_slice(s);
            }
            account_chunk(m, sb, cc, &ChunkRec::decode(&rb), out)?;
        }
        c = c.saturating_add(per_line);
    }
    Ok(())
}

fn read_host<M: Media>(
    m: &M,
    sb: &Superblock,
    h: u32,
    pending: u64,
    r: &mut HostReport,
) -> Result<()> {
    let geo = &sb.geo;
    let base = geo.host_slot(h);
    let mut ident: Option<HostIdent> = None;
    let mut slot = [0u8; HOST_SLOT_SIZE as usize];
    for _ in 0..READ_RETRIES {
        slot = ld::<M, { HOST_SLOT_SIZE as usize }>(m, base)?;
        let mut l0 = [0u8; 64];
        if let Some(s) = slot.get(..64) {
            l0.copy_from_slice(s);
        }
        ident = HostIdent::decode(&l0);
        if ident.is_some() {
            break;
        }
    }
    r.heartbeat = rd64(&slot, host_word::HEARTBEAT);
    r.hb_time_ns = rd64(&slot, host_word::HB_TIME);
    r.ticket = rd64(&slot, host_word::TICKET);
    let reg = RegRec::decode(&ld::<M, REG_SIZE>(m, geo.reg(h))?);
    r.fenced_epoch = reg.fenced_epoch;
    r.recovered_epoch = reg.recovered_epoch;
    r.orphans = reg.orphan_count;
    r.chunks_counted = reg.chunks_owned;
    r.recovery_pending = h < 64 && pending & (1u64 << h) != 0;
    let Some(id) = ident else {
        r.state = HostState::Unreadable;
        r.node = h;
        return Ok(());
    };
    r.node = id.node;
    r.epoch = id.epoch;
    r.lease_ns = id.lease_ns;
    r.since_wall_ns = id.join_time;
    r.state = match id.state {
        host_state::ACTIVE if reg.fenced_epoch >= id.epoch => HostState::Fenced,
        host_state::ACTIVE => HostState::Active,
        host_state::LEFT => HostState::Left,
        host_state::FREE => HostState::Free,
        _ => HostState::Unreadable,
    };
    Ok(())
}

fn account_chunk<M: Media>(
    m: &M,
    sb: &Superblock,
    c: u32,
    rec: &ChunkRec,
    out: &mut PoolReport,
) -> Result<()> {
    let geo = &sb.geo;
    let valid = geo.units_in_chunk(c);
    if rec.owner == 0 {
        out.free_chunks = out.free_chunks.saturating_add(1);
        out.free_units = out.free_units.saturating_add(u64::from(valid));
        return Ok(());
    }
    let line = ld::<M, { BITMAP_SIZE as usize }>(m, geo.bitmap(c))?;
    let used = (0..valid)
        .filter(|&u| {
            line.get((u / 8) as usize)
                .is_some_and(|b| b & (1 << (u % 8)) != 0)
        })
        .count() as u64;
    let free = u64::from(valid).saturating_sub(used);
    out.used_units = out.used_units.saturating_add(used);
    out.free_units = out.free_units.saturating_add(free);
    let h = rec.owner.wrapping_sub(1);
    match out.hosts.get_mut(h as usize) {
        Some(r) if h < out.max_hosts => {
            r.chunks = r.chunks.saturating_add(1);
            r.units_used = r.units_used.saturating_add(used);
            r.units_free = r.units_free.saturating_add(free);
        }
        _ => out.bad_owner_chunks = out.bad_owner_chunks.saturating_add(1),
    }
    Ok(())
}

/// A host's liveness as judged from successive reports on the reader's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Not an active host (free, left, fenced, unreadable).
    NotActive,
    /// Seen once: no judgement possible until a later report.
    Unknown,
    /// Its heartbeat changed within its lease.
    Live,
    /// Silent for more than its lease (a host renews every lease/4): late.
    Late,
    /// Silent for more than lease + lease/2: what survivors wait before
    /// fencing it, so it is dead or about to be fenced.
    Expired,
}

impl Liveness {
    /// A short lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Liveness::NotActive => "-",
            Liveness::Unknown => "?",
            Liveness::Live => "live",
            Liveness::Late => "late",
            Liveness::Expired => "expired",
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    epoch: u64,
    hb: u64,
    /// Reader's clock when `hb` was first seen (0: never).
    since: u64,
    /// Writer's clock at the first sample of this epoch, and its counter.
    first_hb_time: u64,
    first_hb: u64,
    last_hb_time: u64,
}

/// Heartbeat ages from successive [`PoolReport`]s.
///
/// Feed it every report with the reader's own monotonic time
/// ([`HeartbeatWatch::observe`]). A host's *silence* is the time, on the
/// reader's clock, since its counter (or epoch) was last seen to change: this
/// is exactly how survivors judge a peer (protocol.md, "Leases and fencing"),
/// it needs no clock synchronisation, and it errs by at most one sampling
/// interval (the counter may have changed just after the previous report).
/// The writer's own renewal period can be measured in the writer's clock
/// ([`HeartbeatWatch::period_ns`]): differences of its timestamps are
/// meaningful, absolute values are not.
#[derive(Clone, Copy, Debug)]
pub struct HeartbeatWatch {
    seen: [Seen; MAX_HOSTS],
}

impl Default for HeartbeatWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl HeartbeatWatch {
    /// No observations yet.
    pub const fn new() -> Self {
        HeartbeatWatch {
            seen: [Seen {
                epoch: 0,
                hb: 0,
                since: 0,
                first_hb_time: 0,
                first_hb: 0,
                last_hb_time: 0,
            }; MAX_HOSTS],
        }
    }

    /// Records report `r`, taken at `now_ns` on the reader's monotonic clock.
    pub fn observe(&mut self, r: &PoolReport, now_ns: u64) {
        let now = now_ns.max(1);
        for (h, s) in r.slots().iter().zip(self.seen.iter_mut()) {
            if h.state != HostState::Active {
                *s = Seen::default();
                continue;
            }
            if s.since == 0 || s.epoch != h.epoch {
                *s = Seen {
                    epoch: h.epoch,
                    hb: h.heartbeat,
                    since: now,
                    first_hb_time: h.hb_time_ns,
                    first_hb: h.heartbeat,
                    last_hb_time: h.hb_time_ns,
                };
            } else if s.hb != h.heartbeat {
                s.hb = h.heartbeat;
                s.since = now;
                s.last_hb_time = h.hb_time_ns;
            }
        }
    }

    /// How long host `h` has been silent, on the reader's clock: the time
    /// since its heartbeat was last seen to change (or since it was first
    /// seen). `None` unless it was active in the last observed report.
    pub fn silent_ns(&self, h: u32, now_ns: u64) -> Option<u64> {
        let s = self.seen.get(h as usize)?;
        if s.since == 0 {
            return None;
        }
        Some(now_ns.saturating_sub(s.since))
    }

    /// True once host `h`'s heartbeat has been seen to change at least once
    /// (two reports with different counters in the same epoch).
    pub fn seen_beating(&self, h: u32) -> bool {
        self.seen
            .get(h as usize)
            .is_some_and(|s| s.since != 0 && s.hb != s.first_hb)
    }

    /// The host's average renewal period measured on its own clock between
    /// the first and the latest observed change (`None` before two distinct
    /// counters were seen).
    pub fn period_ns(&self, h: u32) -> Option<u64> {
        let s = self.seen.get(h as usize)?;
        let beats = s.hb.wrapping_sub(s.first_hb);
        if s.since == 0 || beats == 0 {
            return None;
        }
        s.last_hb_time
            .saturating_sub(s.first_hb_time)
            .checked_div(beats)
    }

    /// Liveness of host `h` of report `r` at `now_ns` (reader's clock).
    /// `Unknown` until the host has been watched for longer than its lease
    /// without a verdict being possible either way.
    pub fn liveness(&self, r: &PoolReport, h: u32, now_ns: u64) -> Liveness {
        let Some(hr) = r.slots().get(h as usize) else {
            return Liveness::NotActive;
        };
        if hr.state != HostState::Active {
            return Liveness::NotActive;
        }
        let Some(silent) = self.silent_ns(h, now_ns) else {
            return Liveness::Unknown;
        };
        let lease = hr.lease_ns;
        if silent > lease.saturating_add(lease / 2) {
            Liveness::Expired
        } else if silent > lease {
            Liveness::Late
        } else if self.seen_beating(h) {
            Liveness::Live
        } else {
            Liveness::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(hb: u64, epoch: u64) -> PoolReport {
        let mut r = PoolReport {
            max_hosts: 2,
            ..PoolReport::default()
        };
        if let Some(h) = r.hosts.get_mut(1) {
            h.state = HostState::Active;
            h.epoch = epoch;
            h.lease_ns = 1000;
            h.heartbeat = hb;
            h.hb_time_ns = 5_000_000 + hb * 250;
        }
        r
    }

    #[test]
    fn silence_is_measured_on_the_readers_clock() {
        let mut w = HeartbeatWatch::new();
        let r = active(10, 1);
        w.observe(&r, 100);
        assert_eq!(w.liveness(&r, 1, 100), Liveness::Unknown);
        assert_eq!(w.liveness(&r, 0, 100), Liveness::NotActive);
        assert_eq!(w.silent_ns(0, 100), None);
        // The counter moves: live, silence restarts.
        let r = active(12, 1);
        w.observe(&r, 600);
        assert_eq!(w.silent_ns(1, 700), Some(100));
        assert_eq!(w.liveness(&r, 1, 700), Liveness::Live);
        // Writer's clock: 2 beats over 500 ns of its clock.
        assert_eq!(w.period_ns(1), Some(250));
        // Silent: late after the lease, expired after lease + lease/2.
        w.observe(&r, 1500);
        assert_eq!(w.liveness(&r, 1, 1500), Liveness::Live);
        assert_eq!(w.liveness(&r, 1, 1700), Liveness::Late);
        assert_eq!(w.liveness(&r, 1, 2101), Liveness::Expired);
        // A new epoch (the host rejoined) starts a new observation.
        let r2 = active(12, 2);
        w.observe(&r2, 3000);
        assert_eq!(w.silent_ns(1, 3000), Some(0));
        assert!(!w.seen_beating(1));
        assert_eq!(w.liveness(&r2, 1, 3100), Liveness::Unknown);
        // A silent host never seen beating is still judged by its silence.
        assert_eq!(w.liveness(&r2, 1, 4100), Liveness::Late);
        assert_eq!(w.liveness(&r2, 1, 4600), Liveness::Expired);
    }

    #[test]
    fn leaving_forgets() {
        let mut w = HeartbeatWatch::new();
        w.observe(&active(1, 1), 10);
        let mut r = active(1, 1);
        if let Some(h) = r.hosts.get_mut(1) {
            h.state = HostState::Left;
        }
        w.observe(&r, 20);
        assert_eq!(w.silent_ns(1, 30), None);
        assert_eq!(w.liveness(&r, 1, 30), Liveness::NotActive);
        assert_eq!(HostState::Fenced.name(), "fenced");
    }
}
