//! Every metadata operation of marufs over a [`Media`] and an [`Env`].
//!
//! One [`Fs`] value is one host's view of the pool (one mount). Mutating
//! operations take `&mut self` (callers serialise them locally); lookups, stat and
//! readdir take `&self` and are lock-free. See `Documentation/design/protocol.md`.

use super::error::{Error, Result};
use super::journal::{self, Txn};
use super::layout::{
    dir_changes_decode, dir_state, entry_state, hash_tag, host_state, host_word, name_hash,
    slot_pack, slot_state, slot_unpack, ChunkRec, DirRec, EntryRec, Extent, Geometry, HostIdent,
    Name, NsHdr, RegRec, Superblock, BITMAP_SIZE, CREATING_SLOTS, DIR_CHANGES_OFF, DIR_SIZE,
    EF_DATA_CRC, ENTRY_SIZE, HOST_SLOT_SIZE, INCOMPAT_DIR_CHANGES, MAX_EXTENTS, MAX_HOSTS, NIL,
    NSHDR_SIZE, REG_SIZE, ROOT_DIR, SB_BACKUP_OFF, SB_SIZE, UNIT, VERSION,
};
use super::media::{Env, Media};

/// Reads directory `dir`'s change counter from shared memory (invalidating
/// its line first): `None` when `dir` is out of range, the read fails or the
/// check word doesn't match. Needs no [`Fs`]: a kernel can call it on its
/// lock-free path (dentry revalidation) with its own handle on the media.
pub fn dir_changes<M: Media>(m: &M, g: &Geometry, dir: u32) -> Option<u64> {
    if dir >= g.dir_count {
        return None;
    }
    let off = g.dir(dir) + DIR_CHANGES_OFF;
    let mut b = [0u8; 16];
    m.invalidate(off, 16).ok()?;
    m.load(off, &mut b).ok()?;
    dir_changes_decode(&b)
}

/// Result of [`mount_check`].
#[derive(Clone, Copy, Debug)]
pub struct MountInfo {
    /// The superblock in use.
    pub sb: Superblock,
    /// The primary superblock was bad and the backup was used.
    pub used_backup: bool,
}

fn read_sb<M: Media>(m: &M, off: u64) -> Result<Option<[u8; SB_SIZE]>> {
    if m.size() < off + SB_SIZE as u64 {
        return Ok(None);
    }
    let mut b = [0u8; SB_SIZE];
    m.invalidate(off, SB_SIZE as u64)?;
    m.load(off, &mut b)?;
    Ok(Some(b))
}

fn check_sb<M: Media>(m: &M, b: &[u8; SB_SIZE]) -> Result<Superblock> {
    if !Superblock::has_magic(b) {
        return Err(Error::NotFormatted);
    }
    if !Superblock::crc_ok(b) {
        return Err(Error::Corrupt);
    }
    let sb = Superblock::decode(b);
    if sb.version != VERSION {
        return Err(Error::BadVersion(sb.version));
    }
    let unknown = sb.incompat & !super::layout::INCOMPAT_KNOWN;
    if unknown != 0 {
        return Err(Error::IncompatibleFeatures(unknown));
    }
    if sb.geo.total_size > m.size() {
        return Err(Error::TooSmall);
    }
    if !sb.geo.validate(m.size()) {
        return Err(Error::Corrupt);
    }
    Ok(sb)
}

/// Validates the superblock: the primary, else the backup.
///
/// Errors: `NotFormatted` (no marufs magic anywhere), `BadVersion`,
/// `IncompatibleFeatures`, `TooSmall` (device smaller than the superblock says),
/// `Corrupt` (magic present but no valid copy).
pub fn mount_check<M: Media>(m: &M) -> Result<MountInfo> {
    let primary = match read_sb(m, 0)? {
        Some(b) => check_sb(m, &b),
        None => return Err(Error::NotFormatted),
    };
    let first_err = match primary {
        Ok(sb) => {
            return Ok(MountInfo {
                sb,
                used_backup: false,
            })
        }
        Err(e) => e,
    };
    // Version and feature errors are authoritative when the primary is intact.
    if matches!(
        first_err,
        Error::BadVersion(_) | Error::IncompatibleFeatures(_) | Error::TooSmall
    ) {
        return Err(first_err);
    }
    match read_sb(m, SB_BACKUP_OFF)? {
        Some(b) => match check_sb(m, &b) {
            Ok(sb) => Ok(MountInfo {
                sb,
                used_backup: true,
            }),
            Err(Error::NotFormatted) => Err(first_err),
            Err(e) => Err(if first_err == Error::NotFormatted {
                e
            } else {
                first_err
            }),
        },
        None => Err(first_err),
    }
}

/// What this host has observed of a peer's heartbeat (local, not shared).
#[derive(Clone, Copy, Debug, Default)]
struct Obs {
    epoch: u64,
    hb: u64,
    since: u64,
}

/// A peer's host slot as read (invalidated) from media.
#[derive(Clone, Copy, Debug)]
struct PeerView {
    ident: Option<HostIdent>,
    /// For an unreadable identity line, FNV-1a of its bytes (never 0):
    /// tells a line that changed (a host writing it) from one that stays as
    /// it is. 1 for a readable line.
    line_sum: u32,
    hb: u64,
    choosing: u64,
    ticket: u64,
}

/// Index slots after a removed name looked at for tombstone reclamation
/// (see [`Fs::vacate_slot`]).
pub const RECLAIM_FWD: u64 = 32;
/// Tombstones before a removed name's slot turned empty with it.
pub const RECLAIM_BACK: u64 = 63;

/// One index line (8 slot words) as last read, for scans of nearby slots.
#[derive(Default)]
struct SlotLine {
    /// Line number + 1 (0: none read).
    at: u64,
    words: [u64; 8],
}

impl SlotLine {
    /// Slot `s`'s word, reading (invalidated) its line when it is not the
    /// one held.
    fn get<M: Media, E: Env>(&mut self, fs: &Fs<M, E>, s: u64) -> Result<u64> {
        let line = s / 8;
        if self.at != line + 1 {
            let b = fs.ld::<64>(fs.geo.slot(line * 8))?;
            for (k, w) in self.words.iter_mut().enumerate() {
                *w = super::layout::rd64(&b, k * 8);
            }
            self.at = line + 1;
        }
        Ok(self.words.get((s % 8) as usize).copied().unwrap_or(0))
    }
}

/// Host slots read per media call when scanning all hosts.
const PEER_BATCH: usize = 8;

impl PeerView {
    const EMPTY: PeerView = PeerView {
        ident: None,
        line_sum: 1,
        hb: 0,
        choosing: 0,
        ticket: 0,
    };

    /// Decodes one host slot (`HOST_SLOT_SIZE` bytes).
    fn decode(b: &[u8]) -> PeerView {
        let mut l0 = [0u8; 64];
        if let Some(s) = b.get(..64) {
            l0.copy_from_slice(s);
        }
        let ident = HostIdent::decode(&l0);
        // Only an unreadable line needs telling apart (the lock's scan
        // decodes every slot: the readable ones are not hashed).
        let line_sum = if ident.is_some() {
            1
        } else {
            let mut sum = 0xcbf2_9ce4_8422_2325u64;
            for x in l0 {
                sum = (sum ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
            }
            ((sum ^ (sum >> 32)) as u32) | 1
        };
        PeerView {
            ident,
            line_sum,
            hb: super::layout::rd64(b, host_word::HEARTBEAT as usize),
            choosing: super::layout::rd64(b, host_word::CHOOSING as usize),
            ticket: super::layout::rd64(b, host_word::TICKET as usize),
        }
    }
}

/// What [`Fs::watch_node`] saw of this host's slot: the heartbeat that
/// stood still (or the slot's, if no host was active on it).
#[derive(Debug)]
pub struct SlotWatch {
    hb: u64,
}

/// The largest relative rate difference assumed between two hosts'
/// monotonic clocks, in parts per million (crystal oscillators are within
/// 100 ppm; NTP-disciplined clocks within 500). Clocks that advance through
/// suspend are assumed (see protocol.md, "Leases and fencing").
pub const CLOCK_RATE_PPM: u64 = 1000;

/// How long a peer's heartbeat must be seen unchanged, on the observer's
/// clock, before the peer is judged dead: the peer's own lease plus the
/// margin (the larger of the observer's margin and half the peer's lease),
/// stretched by [`CLOCK_RATE_PPM`] so that a peer whose clock runs slower
/// than the observer's still sees its own lease expire first.
pub fn expiry_ns(peer_lease_ns: u64, margin_ns: u64) -> u64 {
    let base = peer_lease_ns.saturating_add(margin_ns.max(peer_lease_ns / 2));
    base.saturating_add(base / 1_000_000 * CLOCK_RATE_PPM)
}

/// Which hosts use a pool right now, as a tool that is not a host (mkfs,
/// fsck) can tell from the heartbeats ([`watch_hosts`]). Bit `j` is node `j`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Liveness {
    /// Slots whose heartbeat advanced while watched: hosts using the pool.
    pub live: u64,
    /// Slots that say a host is active (or are torn) but whose heartbeat
    /// stood still for that host's lease and margin: crashed hosts.
    pub silent: u64,
}

/// Watches the heartbeat of every host slot that says a host is active (or
/// whose identity line is torn) until each has advanced or stood still for
/// 1.5 of its lease (the margin hosts use), whichever comes first; nothing
/// is written. Time is sampled before each read, as in [`Fs::watch_node`].
/// A pool with no such slot answers at once; one with live hosts as soon as
/// each renewed (a quarter lease, typically); crashed hosts cost 1.5 leases.
/// `waiting` is told, before any wait, which slots are watched and for at
/// most how long (ns).
pub fn watch_hosts<M: Media, E: Env>(
    m: &M,
    env: &E,
    geo: &Geometry,
    waiting: &mut dyn FnMut(u64, u64),
) -> Result<Liveness> {
    const SLOT: usize = HOST_SLOT_SIZE as usize;
    let hosts = geo.max_hosts.min(MAX_HOSTS as u32);
    let read = |h: u32| -> Result<(Option<HostIdent>, u64)> {
        let mut b = [0u8; SLOT];
        let off = geo.host_slot(h);
        m.invalidate(off, HOST_SLOT_SIZE)?;
        m.load(off, &mut b)?;
        let mut l0 = [0u8; 64];
        l0.copy_from_slice(b.get(..64).ok_or(Error::Corrupt)?);
        Ok((
            HostIdent::decode(&l0),
            super::layout::rd64(&b, host_word::HEARTBEAT as usize),
        ))
    };
    let mut hb = [0u64; MAX_HOSTS];
    let mut watch = 0u64;
    let mut lease = 0u64;
    for h in 0..hosts {
        let (id, beat) = read(h)?;
        if id.is_none_or(|i| i.state == host_state::ACTIVE) {
            watch |= 1 << h;
            if let Some(x) = hb.get_mut(h as usize) {
                *x = beat;
            }
            lease = lease.max(id.map_or(0, |i| i.lease_ns));
        }
    }
    let mut out = Liveness::default();
    if watch == 0 {
        return Ok(out);
    }
    // A torn identity has no lease: assume 10 s (ten of the default mount
    // option's), erring on the side of waiting.
    if lease == 0 {
        lease = 10_000_000_000;
    }
    let limit = lease.saturating_add(lease / 2);
    waiting(watch, limit);
    let start = env.now_ns();
    loop {
        if !env.pause(lease / 16) {
            return Err(Error::Interrupted);
        }
        let t = env.now_ns();
        for h in 0..hosts {
            if watch & !out.live & (1 << h) == 0 {
                continue;
            }
            if read(h)?.1 != hb.get(h as usize).copied().unwrap_or(0) {
                out.live |= 1 << h;
            }
        }
        if out.live == watch || t.saturating_sub(start) > limit {
            out.silent = watch & !out.live;
            return Ok(out);
        }
    }
}

/// A key being created by this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    /// Entry index.
    pub entry: u32,
    /// Entry generation.
    pub generation: u64,
}

/// A key as returned by lookups.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// Entry index (the inode number is derived from it).
    pub entry: u32,
    /// The entry record.
    pub rec: EntryRec,
}

/// A directory as returned by lookups.
#[derive(Clone, Copy, Debug)]
pub struct Dir {
    /// Directory id.
    pub id: u32,
    /// The directory record.
    pub rec: DirRec,
}

/// Pool usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    /// Data units in the pool.
    pub total_units: u64,
    /// Free units (in free chunks and free bits of owned chunks).
    pub free_units: u64,
    /// Chunks in the pool.
    pub total_chunks: u32,
    /// Unowned chunks.
    pub free_chunks: u32,
    /// Key entries in the pool.
    pub total_entries: u64,
    /// Free key entries.
    pub free_entries: u64,
    /// Directories in use.
    pub dirs_used: u32,
    /// Directory slots.
    pub dirs_total: u32,
}

/// Timing parameters (ns); defaults derive from the lease.
#[derive(Clone, Copy, Debug)]
pub struct Tunables {
    /// Lease duration.
    pub lease_ns: u64,
    /// A mutation starts only with at least this much lease left (else renew).
    pub guard_ns: u64,
    /// Extra time survivors wait beyond a peer's lease before fencing it.
    pub margin_ns: u64,
    /// Bounded retries of a read that fails its checksum.
    pub read_retries: u32,
}

impl Tunables {
    /// Defaults for a lease.
    pub fn for_lease(lease_ns: u64) -> Tunables {
        Tunables {
            lease_ns,
            guard_ns: lease_ns / 4,
            margin_ns: lease_ns / 2,
            read_retries: 1000,
        }
    }
}

const OWN_CACHE: usize = 32;
/// Units known to be zero, at most (256 MiB of pool zeroed ahead).
const ZEROED_MAX: usize = 128;

/// Probe result: the match (slot, target) and the first reusable slot.
type Probe = (Option<(u64, u32)>, Option<u64>);

/// One host's handle on a pool.
pub struct Fs<M: Media, E: Env> {
    m: M,
    env: E,
    sb: Superblock,
    geo: Geometry,
    used_backup: bool,
    node: u32,
    epoch: u64,
    tun: Tunables,
    lease_until: u64,
    joined: bool,
    /// Set when this incarnation found its lease expired or its epoch
    /// fenced (then `joined` is false): it writes nothing more.
    lost_lease: bool,
    /// Other hosts' incarnations this one recovered (took over), in all.
    takeovers: u32,
    locked: bool,
    next_seq: u64,
    obs: [Obs; MAX_HOSTS],
    /// Per peer, the checksum ([`PeerView::line_sum`]) of an identity line
    /// found unreadable for a whole patience period: while the line still
    /// reads exactly so, the slot is damage (a crash mid-join), passed at
    /// once instead of being waited for by every acquisition. 0: none.
    torn: [u32; MAX_HOSTS],
    own: [u32; OWN_CACHE],
    own_n: usize,
    /// Units of cached own chunks this host zeroed while free and hasn't
    /// allocated since (see [`Fs::begin_zeroing`]); `NIL` = empty. DRAM only.
    zeroed: [u32; ZEROED_MAX],
    /// A free unit being zeroed outside the mount's lock: never allocated.
    zeroing: Option<u32>,
    cslot_hint: u32,
    /// Counter for placeholder names of [`Fs::create_tmp`].
    tmp_seq: u32,
}

fn bit_get(line: &[u8; 64], i: u32) -> bool {
    line.get((i / 8) as usize)
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}
fn bit_set(line: &mut [u8; 64], i: u32, v: bool) {
    if let Some(b) = line.get_mut((i / 8) as usize) {
        if v {
            *b |= 1 << (i % 8);
        } else {
            *b &= !(1 << (i % 8));
        }
    }
}

impl<M: Media, E: Env> Fs<M, E> {
    /// Validates the superblock and prepares host `node` (not joined yet).
    pub fn open(m: M, env: E, node: u32, tun: Tunables) -> Result<Self> {
        let info = mount_check(&m)?;
        if node >= info.sb.geo.max_hosts || tun.lease_ns == 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(Fs {
            m,
            env,
            sb: info.sb,
            geo: info.sb.geo,
            used_backup: info.used_backup,
            node,
            epoch: 0,
            tun,
            lease_until: 0,
            joined: false,
            lost_lease: false,
            takeovers: 0,
            locked: false,
            next_seq: 1,
            obs: [Obs::default(); MAX_HOSTS],
            torn: [0; MAX_HOSTS],
            own: [0; OWN_CACHE],
            own_n: 0,
            zeroed: [NIL; ZEROED_MAX],
            zeroing: None,
            cslot_hint: 0,
            tmp_seq: 0,
        })
    }

    /// The superblock in use.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }
    /// The geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }
    /// True when the backup superblock was used.
    pub fn used_backup(&self) -> bool {
        self.used_backup
    }
    /// This host's node id.
    pub fn node(&self) -> u32 {
        self.node
    }
    /// This host's current epoch (0 before join).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// The identity line of this host's slot (`None` if torn), as read now.
    pub fn node_ident(&self) -> Result<Option<HostIdent>> {
        self.ident(self.node)
    }
    /// True between a successful join and leave/fencing.
    pub fn is_joined(&self) -> bool {
        self.joined
    }
    /// How many incarnations of other hosts this one has taken over (fenced
    /// and recovered) since it joined, in any operation's lock acquisition.
    pub fn takeovers(&self) -> u32 {
        self.takeovers
    }
    /// Whether this incarnation lost its lease (expired on its clock, or a
    /// survivor fenced its epoch) since it joined: it writes nothing more,
    /// and the environment should revoke what it handed out (mappings).
    pub fn lost_lease(&self) -> bool {
        self.lost_lease
    }
    /// The media.
    pub fn media(&self) -> &M {
        &self.m
    }
    /// The environment.
    pub fn env(&self) -> &E {
        &self.env
    }

    // ---------------------------------------------------------------- raw access

    fn ld<const N: usize>(&self, off: u64) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.m.invalidate(off, N as u64)?;
        self.m.load(off, &mut b)?;
        Ok(b)
    }
    fn ld64(&self, off: u64) -> Result<u64> {
        Ok(u64::from_le_bytes(self.ld::<8>(off)?))
    }
    fn st_flush(&self, off: u64, b: &[u8]) -> Result<()> {
        self.m.store(off, b)?;
        self.m.flush(off, b.len() as u64)?;
        Ok(())
    }
    #[inline(never)]
    fn ident(&self, h: u32) -> Result<Option<HostIdent>> {
        Ok(HostIdent::decode(&self.ld::<64>(self.geo.host_slot(h))?))
    }
    #[inline(never)]
    fn peer(&self, h: u32) -> Result<PeerView> {
        let b = self.ld::<{ HOST_SLOT_SIZE as usize }>(self.geo.host_slot(h))?;
        Ok(PeerView::decode(&b))
    }
    /// Reads host slots `first..` (up to [`PEER_BATCH`], within `max_hosts`)
    /// with one invalidate and one load: the slots are contiguous, so the
    /// cache misses overlap instead of being paid one after another. Returns
    /// how many were read (at least one while `first < max_hosts`).
    #[inline(never)]
    fn peers(&self, first: u32, out: &mut [PeerView; PEER_BATCH]) -> Result<usize> {
        let n = (PEER_BATCH as u32).min(self.geo.max_hosts.saturating_sub(first)) as usize;
        let mut b = [0u8; PEER_BATCH * HOST_SLOT_SIZE as usize];
        let len = n * HOST_SLOT_SIZE as usize;
        let buf = b.get_mut(..len).ok_or(Error::Corrupt)?;
        let off = self.geo.host_slot(first);
        self.m.invalidate(off, len as u64)?;
        self.m.load(off, buf)?;
        const SLOT: usize = HOST_SLOT_SIZE as usize;
        for (i, o) in out.iter_mut().take(n).enumerate() {
            if let Some(slot) = buf.get(i * SLOT..(i + 1) * SLOT) {
                *o = PeerView::decode(slot);
            }
        }
        Ok(n)
    }
    #[inline(never)]
    fn reg(&self, h: u32) -> Result<RegRec> {
        Ok(RegRec::decode(&self.ld::<REG_SIZE>(self.geo.reg(h))?))
    }
    #[inline(never)]
    fn nshdr(&self) -> Result<NsHdr> {
        Ok(NsHdr::decode(&self.ld::<NSHDR_SIZE>(self.geo.nshdr_off)?))
    }
    #[inline(never)]
    fn chunk_rec(&self, c: u32) -> Result<ChunkRec> {
        Ok(ChunkRec::decode(&self.ld::<16>(self.geo.chunk(c))?))
    }
    /// One attempt at reading entry `e` into `out`; false on checksum failure.
    #[inline(never)]
    fn entry_once(&self, e: u32, out: &mut EntryRec) -> Result<bool> {
        if u64::from(e) >= self.geo.entry_count {
            return Err(Error::Corrupt);
        }
        let off = self.geo.entry(e);
        let mut b = [0u8; ENTRY_SIZE];
        self.m.invalidate(off, ENTRY_SIZE as u64)?;
        self.m.load(off, &mut b)?;
        if !out.decode_from(&b) {
            return Ok(false);
        }
        // Checksummed but pointing outside the data area, across chunks, or
        // smaller than its size: not torn (no retry), never to be used.
        if !out.extents_valid(&self.geo) {
            return Err(Error::Corrupt);
        }
        Ok(true)
    }
    /// Reads entry `e` into `out`, retrying while its checksum fails (a writer
    /// mid-update); `EAGAIN` after the bound.
    #[inline(never)]
    fn entry_into(&self, e: u32, out: &mut EntryRec) -> Result<()> {
        for _ in 0..self.tun.read_retries {
            if self.entry_once(e, out)? {
                return Ok(());
            }
            self.env.relax();
        }
        Err(Error::Again)
    }
    /// Reads entry `e` (see [`Fs::entry_into`]).
    fn entry(&self, e: u32) -> Result<EntryRec> {
        let mut r = EntryRec::default();
        self.entry_into(e, &mut r)?;
        Ok(r)
    }
    /// Reads directory `d` into `out`, retrying while its checksum fails.
    #[inline(never)]
    fn dir_into(&self, d: u32, out: &mut DirRec) -> Result<()> {
        if d >= self.geo.dir_count {
            return Err(Error::NotFound);
        }
        let off = self.geo.dir(d);
        let mut b = [0u8; DIR_SIZE];
        for _ in 0..self.tun.read_retries {
            self.m.invalidate(off, DIR_SIZE as u64)?;
            self.m.load(off, &mut b)?;
            if out.decode_from(&b) {
                return Ok(());
            }
            self.env.relax();
        }
        Err(Error::Again)
    }
    /// Reads directory `d` into `out`; `NotFound` unless it is in use.
    fn dir_used_into(&self, d: u32, out: &mut DirRec) -> Result<()> {
        self.dir_into(d, out)?;
        if out.state != dir_state::USED {
            return Err(Error::NotFound);
        }
        Ok(())
    }
    fn dir_rec(&self, d: u32) -> Result<DirRec> {
        let mut r = DirRec::default();
        self.dir_into(d, &mut r)?;
        Ok(r)
    }
    fn slot(&self, i: u64) -> Result<u64> {
        self.ld64(self.geo.slot(i))
    }

    fn txn(&self) -> Txn {
        Txn::begin(&self.geo, self.node, self.next_seq)
    }
    fn commit(&mut self, t: Txn) -> Result<()> {
        if t.seq() != self.next_seq {
            return Err(Error::InvalidArgument); // a transaction interleaved with another
        }
        self.ensure_lease()?;
        self.check_fence()?;
        let seq = t.commit(&self.m, &self.geo, self.node)?;
        self.next_seq = seq + 1;
        Ok(())
    }
    #[inline(never)]
    fn put_entry(&self, t: &mut Txn, e: u32, r: &EntryRec) -> Result<()> {
        let mut b = [0u8; ENTRY_SIZE];
        r.encode(&mut b);
        t.put(&self.m, &self.geo, self.geo.entry(e), &b)
    }
    /// Writes directory record `r` (as read under the lock, then changed)
    /// with its change counter bumped, as the transaction's last op: a host
    /// that reads the new counter sees every other write of the transaction
    /// (the ordering DRAM name caches rely on, see `protocol.md`).
    #[inline(never)]
    fn put_dir(&self, t: &mut Txn, d: u32, r: &DirRec) -> Result<()> {
        let mut b = [0u8; DIR_SIZE];
        let mut r = *r;
        r.changes = r.changes.wrapping_add(1);
        r.encode(&mut b);
        t.put_last(&self.m, &self.geo, self.geo.dir(d), &b)
    }
    /// Ends `t` with a bump of directory `d`'s change counter (for
    /// transactions that change a key's name or attributes but nothing else
    /// of the directory).
    fn touch_dir(&self, t: &mut Txn, d: u32) -> Result<()> {
        let mut r = DirRec::default();
        self.dir_used_into(d, &mut r)?;
        self.put_dir(t, d, &r)
    }

    /// Directory `dir`'s change counter (one invalidated line), `None` when
    /// it doesn't validate (pool without [`INCOMPAT_DIR_CHANGES`], a torn or
    /// damaged record, `dir` out of range). Lock-free.
    pub fn dir_changes(&self, dir: u32) -> Option<u64> {
        dir_changes(&self.m, &self.geo, dir)
    }

    /// Whether the pool has [`INCOMPAT_DIR_CHANGES`]: only then may a
    /// validated [`dir_changes`](Self::dir_changes) vouch for cached names.
    pub fn has_dir_changes(&self) -> bool {
        self.sb.incompat & INCOMPAT_DIR_CHANGES != 0
    }
    #[inline(never)]
    fn put_reg(&self, t: &mut Txn, h: u32, r: &RegRec) -> Result<()> {
        let mut b = [0u8; REG_SIZE];
        r.encode(&mut b);
        t.put(&self.m, &self.geo, self.geo.reg(h), &b)
    }
    #[inline(never)]
    fn put_nshdr(&self, t: &mut Txn, r: &NsHdr) -> Result<()> {
        let mut b = [0u8; NSHDR_SIZE];
        r.encode(&mut b);
        t.put(&self.m, &self.geo, self.geo.nshdr_off, &b)
    }
    fn put_slot(&self, t: &mut Txn, i: u64, w: u64) -> Result<()> {
        t.put(&self.m, &self.geo, self.geo.slot(i), &w.to_le_bytes())
    }

    // ---------------------------------------------------------------- lease

    fn renew(&mut self, now: u64) -> Result<()> {
        let base = self.geo.host_slot(self.node);
        let hb = self.ld64(base + host_word::HEARTBEAT)?.wrapping_add(1);
        self.m
            .store(base + host_word::HEARTBEAT, &hb.to_le_bytes())?;
        self.m
            .store(base + host_word::HB_TIME, &now.to_le_bytes())?;
        self.m.flush(base + host_word::HEARTBEAT, 16)?;
        self.lease_until = now.saturating_add(self.tun.lease_ns);
        Ok(())
    }

    /// Checks this host's lease before a write to shared memory: renews it when
    /// less than `guard_ns` is left; fails with `Fenced` once it has expired.
    fn ensure_lease(&mut self) -> Result<()> {
        if !self.joined {
            return Err(Error::NotJoined);
        }
        let now = self.env.now_ns();
        if now >= self.lease_until {
            self.joined = false;
            self.lost_lease = true;
            return Err(Error::Fenced);
        }
        if now.saturating_add(self.tun.guard_ns) >= self.lease_until {
            self.renew(now)?;
        }
        Ok(())
    }

    /// Re-reads this host's own fence: once a survivor recorded
    /// `fenced_epoch >= epoch` this incarnation is dead, whatever this host's
    /// clock says (it may have stood still through a stall), and it never
    /// writes shared memory again. Called after the lock is acquired and
    /// before every commit, zeroing pass and replay.
    /// Returns the `fenced_epoch` it read (below this epoch).
    fn check_fence(&mut self) -> Result<u64> {
        let fenced = self.reg(self.node)?.fenced_epoch;
        if fenced >= self.epoch {
            self.joined = false;
            self.lost_lease = true;
            return Err(Error::Fenced);
        }
        Ok(fenced)
    }

    /// Whether this incarnation may still write shared memory: its lease has
    /// not run out on its own clock (renewed if it is close) and no survivor
    /// has fenced it. For a long write of pool memory outside the core (the
    /// kernel's zeroing of a key's new units): call it before each part.
    pub fn check_live(&mut self) -> Result<()> {
        self.ensure_lease()?;
        self.check_fence().map(|_| ())
    }

    /// Renews the heartbeat (call at least every lease/4). Fails with `Fenced`
    /// when the lease already expired or a survivor fenced this epoch.
    pub fn heartbeat(&mut self) -> Result<()> {
        if !self.joined {
            return Err(Error::NotJoined);
        }
        let now = self.env.now_ns();
        if now >= self.lease_until || self.reg(self.node)?.fenced_epoch >= self.epoch {
            self.joined = false;
            self.lost_lease = true;
            return Err(Error::Fenced);
        }
        self.renew(now)
    }

    /// Updates the observation of peer `j` from a heartbeat value `hb` read
    /// after this host's clock read `t_read`; true once the heartbeat has been
    /// seen unchanged for longer than [`expiry_ns`] of the peer.
    ///
    /// Time sides (a stall of this host can fall anywhere): a new value's
    /// observation starts at a clock reading taken *after* its load (the
    /// value was there by then), and expiry is judged at `t_read`, taken
    /// *before* the load that saw the value still unchanged. So the silence
    /// judged, `t_read - since`, lies inside the real interval between the
    /// two loads: a stall after a load only makes it shorter.
    fn observe_expired(&mut self, j: u32, ident: &HostIdent, hb: u64, t_read: u64) -> bool {
        let margin = self.tun.margin_ns;
        let same = self
            .obs
            .get(j as usize)
            .is_some_and(|o| o.since != 0 && o.epoch == ident.epoch && o.hb == hb);
        if !same {
            let now = self.env.now_ns();
            if let Some(o) = self.obs.get_mut(j as usize) {
                *o = Obs {
                    epoch: ident.epoch,
                    hb,
                    since: now.max(1),
                };
            }
            return false;
        }
        let since = self.obs.get(j as usize).map_or(u64::MAX, |o| o.since);
        t_read.saturating_sub(since) > expiry_ns(ident.lease_ns, margin)
    }

    fn wait(&mut self) -> Result<()> {
        self.env.relax();
        self.ensure_lease()
    }

    // ---------------------------------------------------------------- bakery lock

    fn set_lock_word(&self, word: u64, v: u64) -> Result<()> {
        self.st_flush(self.geo.host_slot(self.node) + word, &v.to_le_bytes())
    }

    /// Acquires the namespace lock (Lamport's bakery over the host slots), then
    /// fences expired peers and completes pending recoveries.
    fn lock(&mut self) -> Result<()> {
        let r = self.lock_inner();
        if r.is_err() {
            self.locked = false;
            // A host that lost its lease writes nothing, not even its own
            // lock words: its slot may belong to another host by now (a
            // duplicate node id that joined over this dead incarnation), and
            // survivors ignore a fenced host's words anyway.
            if !self.lost_lease {
                let _ = self.set_lock_word(host_word::CHOOSING, 0);
                let _ = self.set_lock_word(host_word::TICKET, 0);
            }
        }
        r
    }

    #[inline(never)]
    fn lock_inner(&mut self) -> Result<()> {
        // Fenced already (the lock words of a fenced slot may be another
        // host's by now): nothing is written, not even the doorway.
        self.check_live()?;
        self.set_lock_word(host_word::CHOOSING, 1)?;
        let mut max = 0u64;
        let mut pv = [PeerView::EMPTY; PEER_BATCH];
        let mut first = 0u32;
        while first < self.geo.max_hosts {
            let n = self.peers(first, &mut pv)?;
            for (j, v) in (first..).zip(pv.iter().take(n)) {
                if j != self.node {
                    max = max.max(v.ticket);
                }
            }
            first += n as u32;
        }
        let mine = max.saturating_add(1);
        self.set_lock_word(host_word::TICKET, mine)?;
        self.set_lock_word(host_word::CHOOSING, 0)?;
        let mut expired: u64 = 0;
        // Slots seen free or departed in this scan (see `after_lock`).
        let mut passive: u64 = 0;
        // A peer's identity line that stays unreadable longer than a lease
        // plus the margin is not a joining host (that writes it in one line)
        // but damage: it is not waited for. And no acquisition waits forever:
        // past the deadline the caller gets `Again` instead of a hang.
        let patience = self.tun.lease_ns.saturating_add(self.tun.margin_ns);
        let deadline = self.env.now_ns().saturating_add(patience.saturating_mul(4));
        // One patience period for all torn slots of this acquisition.
        let mut torn_since = 0u64;
        // Every slot is read once in batches: free, departed and fenced slots
        // are passed on that read; an active peer is read again alone (and
        // until it lets us pass).
        let mut first = 0u32;
        let mut n = 0usize;
        for j in 0..self.geo.max_hosts {
            if j >= first + n as u32 {
                first = j;
                n = self.peers(first, &mut pv)?;
            }
            if j == self.node {
                continue;
            }
            let mut batched = pv.get((j - first) as usize).copied();
            loop {
                let (v, fresh, t_read) = match batched.take() {
                    Some(v) => (v, false, 0),
                    None => {
                        let t = self.env.now_ns();
                        if t > deadline {
                            return Err(Error::Again);
                        }
                        (self.peer(j)?, true, t)
                    }
                };
                let Some(id) = v.ident else {
                    if !fresh {
                        continue;
                    }
                    let judged = self.torn.get(j as usize).copied().unwrap_or(0);
                    if judged == v.line_sum {
                        // Judged damage before, and unchanged since.
                        break;
                    }
                    let now = self.env.now_ns();
                    if torn_since == 0 {
                        torn_since = now.max(1);
                    } else if now.saturating_sub(torn_since) > patience {
                        if let Some(t) = self.torn.get_mut(j as usize) {
                            *t = v.line_sum;
                        }
                        break;
                    }
                    // Torn identity line: the peer is joining; look again.
                    self.wait()?;
                    continue;
                };
                if id.state != host_state::ACTIVE {
                    passive |= 1 << j;
                    break;
                }
                if self.reg(j)?.fenced_epoch >= id.epoch {
                    break;
                }
                if !fresh {
                    // An active peer is judged on a fresh read: its expiry is
                    // timed on this host's clock against the heartbeat seen
                    // now, not the one seen when the batch was read.
                    continue;
                }
                if self.observe_expired(j, &id, v.hb, t_read) {
                    expired |= 1 << j;
                    break;
                }
                if v.choosing != 0 {
                    self.wait()?;
                    continue;
                }
                if v.ticket == 0 || (v.ticket, j) > (mine, self.node) {
                    break;
                }
                self.wait()?;
            }
        }
        self.locked = true;
        self.after_lock(expired, passive)
    }

    fn unlock(&mut self) -> Result<()> {
        self.locked = false;
        if self.lost_lease {
            // As in `lock`: nothing more is written.
            return Err(Error::Fenced);
        }
        self.set_lock_word(host_word::TICKET, 0)
    }

    /// TEST ONLY (the kernel's `IOC_TEST_HOLD_LOCK`): takes the namespace
    /// lock and keeps it for `ns` of this host's clock, renewing the lease
    /// meanwhile, so that a test can kill a host while it holds the lock.
    pub fn hold_lock_for(&mut self, ns: u64) -> Result<()> {
        self.locked(|fs| {
            let t0 = fs.env.now_ns();
            while fs.env.now_ns().saturating_sub(t0) < ns {
                fs.ensure_lease()?;
                if !fs.env.pause(fs.tun.guard_ns / 2) {
                    return Err(Error::Interrupted);
                }
            }
            Ok(())
        })
    }

    /// Runs `f` under the namespace lock.
    fn locked<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.lock()?;
        let r = f(self);
        let u = self.unlock();
        let v = r?;
        u?;
        Ok(v)
    }

    // ---------------------------------------------------------------- recovery

    /// Replays host `j`'s journal record if it is valid and neither applied by `j`
    /// nor replayed by a survivor. Returns the sequence to record.
    #[inline(never)]
    fn replay_journal_of(&mut self, j: u32) -> Result<Option<u64>> {
        let reg = self.reg(j)?;
        match journal::pending(&self.m, &self.geo, j)? {
            Some(p) if p.seq > reg.replayed_seq && j == self.node => {
                // Our own dead incarnation's record: nobody else writes it.
                // Checked again right before it is applied: reading it took
                // a while, and a host that stalled since the last check may
                // have been fenced and taken over meanwhile (the rejoin sweep
                // found such a stall applying this record over the takeover).
                self.check_live()?;
                journal::apply(&self.m, &self.geo, j, &p)?;
                Ok(Some(p.seq))
            }
            Some(p) if p.seq > reg.replayed_seq => {
                // Another host's: copied into our own journal and re-checked
                // there, then applied from our copy, so that a stalled host
                // that resumes and rewrites its record meanwhile cannot make
                // us apply a mix of two records.
                let mut t = self.txn();
                if !journal::copy_record(&self.m, &self.geo, j, &p, &mut t)? {
                    // Its host is alive and writing: not taken over now.
                    return Err(Error::Again);
                }
                self.commit(t)?;
                Ok(Some(p.seq))
            }
            _ => Ok(None),
        }
    }

    /// [`replay_journal_of`](Self::replay_journal_of) `j`, then records the
    /// replayed sequence in `j`'s registry line (a transaction of this host).
    fn replay_and_record(&mut self, j: u32) -> Result<()> {
        self.ensure_lease()?;
        self.check_fence()?;
        if let Some(seq) = self.replay_journal_of(j)? {
            let mut t = self.txn();
            let mut reg = self.reg(j)?;
            reg.replayed_seq = seq;
            self.put_reg(&mut t, j, &reg)?;
            self.commit(t)?;
        }
        Ok(())
    }

    #[inline(never)]
    fn after_lock(&mut self, expired: u64, passive: u64) -> Result<()> {
        // Phase 0: this host rejoining with its previous epoch's record still
        // pending: replay it before anything below commits a transaction,
        // which would overwrite it (one record per host). Such a record is
        // either lock-free (set_size: own bitmap lines and own creating
        // entry, which no other host's record touches) or the last locked
        // transaction (nobody took the lock after it without fencing that
        // epoch, and then this host doesn't replay), so replaying it first
        // never reorders it after a newer write to the same lines.
        // A host that stalled past its lease may still believe in it (its
        // clock may have stood still): the fence survivors record is what
        // decides, read now that this host holds the lock.
        // Rejoining (`rejoining_as`) judged from what this host knows of
        // its own slot: only it writes its identity (active, `self.epoch`).
        let fenced = self.check_fence()?;
        let me = self.node;
        if fenced.saturating_add(1) < self.epoch {
            self.replay_and_record(me)?;
        }
        // Phase 1: journals first, before any new mutation (replay is idempotent).
        let mut fence: [u64; MAX_HOSTS] = [0; MAX_HOSTS];
        let mut any = false;
        // Every slot but the passive ones is read again now: a host may be
        // rejoining right now, and its pending record must be seen by this
        // lock holder. A slot seen free or departed in the acquisition's
        // scan (`passive`, read after this host's doorway) has no pending
        // record: its previous incarnation applied everything or never was,
        // and a host joining on it since wrote its identity after that read,
        // so its doorway came after ours and its ticket is behind ours: it
        // has committed nothing yet.
        for j in 0..self.geo.max_hosts {
            let bit = 1u64 << j;
            if j == me || passive & bit != 0 {
                // This host: phase 0 did it (it is never expired to itself).
                continue;
            }
            let ident = self.ident(j)?;
            let mut fenced_now = false;
            if let (true, Some(id)) = (expired & bit != 0, ident) {
                let reg = self.reg(j)?;
                let seen = self.obs.get(j as usize).map(|o| o.epoch).unwrap_or(0);
                // Fence only the epoch observed expired: the host may have
                // rejoined since (then it is not fenced, but its dead
                // incarnation's record is still replayed below: skipping
                // that let this holder mutate lines the record holds, which
                // the rejoining host then replayed over them).
                if id.state == host_state::ACTIVE && reg.fenced_epoch < id.epoch && id.epoch == seen
                {
                    // The fabric cuts the dead host off (where it can) before
                    // anything of it is replayed or taken over: a host that
                    // only stalled can then write nothing when it resumes.
                    // The hook may take a while (a fabric manager's round
                    // trip): the lease is renewed first and checked after
                    // (the helper must return well within it).
                    // Checked, not merely renewed: this host may itself have
                    // stalled since its last check, and renewing an expired
                    // lease would bring a fenced incarnation back to life.
                    self.ensure_lease()?;
                    let now = self.env.now_ns();
                    self.renew(now)?;
                    if !self.env.fence_host(j, id.epoch) {
                        return Err(Error::Again);
                    }
                    self.ensure_lease()?;
                    if let Some(f) = fence.get_mut(j as usize) {
                        *f = id.epoch;
                    }
                    any = true;
                    fenced_now = true;
                }
            }
            // A host whose fence is already recorded (pending recovery) had
            // its record replayed before the fence was committed: a record
            // of it appearing since was written by a zombie after its fence
            // and is never applied (quarantine).
            if fenced_now || self.rejoining_as(j, ident)? {
                self.replay_and_record(j)?;
            }
        }
        // Phase 2: record fencing decisions (in lock-protected areas only).
        if any {
            let mut ns = self.nshdr()?;
            let mut t = self.txn();
            for j in 0..self.geo.max_hosts {
                let e = fence.get(j as usize).copied().unwrap_or(0);
                if e != 0 {
                    let mut reg = self.reg(j)?;
                    reg.fenced_epoch = e;
                    self.put_reg(&mut t, j, &reg)?;
                    ns.pending_recovery |= 1 << j;
                }
            }
            self.put_nshdr(&mut t, &ns)?;
            self.commit(t)?;
        }
        // Phase 3: finish recoveries.
        let ns = self.nshdr()?;
        for j in 0..self.geo.max_hosts {
            if ns.pending_recovery & (1 << j) != 0 {
                self.recover_host(j)?;
            }
        }
        Ok(())
    }

    /// True while host `j` is inside `join` (new epoch written, previous epoch not
    /// yet fenced by its own join): its journal is quiescent, and a record still
    /// pending there is its dead incarnation's, which the lock holder replays.
    /// `id` is `j`'s identity line, read after the lock was taken.
    #[inline(never)]
    fn rejoining_as(&self, j: u32, id: Option<HostIdent>) -> Result<bool> {
        let Some(id) = id else {
            return Ok(false);
        };
        Ok(
            id.state == host_state::ACTIVE
                && self.reg(j)?.fenced_epoch.saturating_add(1) < id.epoch,
        )
    }

    /// Takes over fenced host `j` (possibly this host's own previous epoch): removes
    /// its creating entries, moves its chunks and orphans to this host.
    #[inline(never)]
    fn recover_host(&mut self, j: u32) -> Result<()> {
        let reg = self.reg(j)?;
        let upto = reg.fenced_epoch;
        self.take_chunks(j, upto)?;
        self.remove_creating_of(j, upto)?;
        self.splice_orphans(j)?;
        let mut t = self.txn();
        let mut reg = self.reg(j)?;
        reg.recovered_epoch = upto;
        self.put_reg(&mut t, j, &reg)?;
        let mut ns = self.nshdr()?;
        ns.pending_recovery &= !(1u64 << j);
        self.put_nshdr(&mut t, &ns)?;
        self.commit(t)?;
        if j != self.node {
            self.takeovers = self.takeovers.wrapping_add(1);
        }
        Ok(())
    }

    /// Moves the chunks owned by `j` with epoch `<= upto` to this host.
    #[inline(never)]
    fn take_chunks(&mut self, j: u32, upto: u64) -> Result<()> {
        let mut c = 0u32;
        while c < self.geo.chunk_count {
            let rec = self.chunk_rec(c)?;
            if rec.owner == j + 1
                && rec.epoch <= upto
                && !(j == self.node && rec.epoch == self.epoch)
            {
                let mut t = self.txn();
                let new = ChunkRec {
                    owner: self.node + 1,
                    epoch: self.epoch,
                };
                t.put(&self.m, &self.geo, self.geo.chunk(c), &new.encode())?;
                if j != self.node {
                    let mut rj = self.reg(j)?;
                    rj.chunks_owned = rj.chunks_owned.saturating_sub(1);
                    self.put_reg(&mut t, j, &rj)?;
                    let mut rm = self.reg(self.node)?;
                    rm.chunks_owned = rm.chunks_owned.saturating_add(1);
                    self.put_reg(&mut t, self.node, &rm)?;
                }
                self.commit(t)?;
                self.cache_own(c);
            }
            c += 1;
        }
        Ok(())
    }

    #[inline(never)]
    fn remove_creating_of(&mut self, j: u32, upto: u64) -> Result<()> {
        let mut i = 0u32;
        while i < CREATING_SLOTS {
            let line = self.ld::<64>(self.geo.creating(j, i))?;
            for k in 0..16u32 {
                let v = super::layout::rd32(&line, (k * 4) as usize);
                if v == 0 {
                    continue;
                }
                let idx = v - 1;
                if u64::from(idx) >= self.geo.entry_count {
                    continue;
                }
                let mut e = EntryRec::default();
                self.entry_into(idx, &mut e)?;
                if e.state == entry_state::CREATING && e.creator == j && e.creator_epoch <= upto {
                    self.remove_entry(idx, &mut e)?;
                }
            }
            i += 16;
        }
        if j == self.node {
            // This host is the writer of its own creating set: clear it.
            let z = [0u8; 64];
            let mut i = 0u32;
            while i < CREATING_SLOTS {
                self.st_flush(self.geo.creating(j, i), &z)?;
                i += 16;
            }
        }
        Ok(())
    }

    #[inline(never)]
    fn splice_orphans(&mut self, j: u32) -> Result<()> {
        if j == self.node {
            return Ok(());
        }
        let rj = self.reg(j)?;
        if rj.orphan_head == NIL {
            return Ok(());
        }
        // Find the tail of j's queue (bounded walk).
        let mut tail = rj.orphan_head;
        let mut n = 0u64;
        loop {
            let mut e = EntryRec::default();
            self.entry_into(tail, &mut e)?;
            if e.next == NIL {
                break;
            }
            n += 1;
            if n > self.geo.entry_count {
                return Err(Error::Corrupt);
            }
            tail = e.next;
        }
        let mut rm = self.reg(self.node)?;
        let mut te = EntryRec::default();
        self.entry_into(tail, &mut te)?;
        te.next = rm.orphan_head;
        let mut t = self.txn();
        self.put_entry(&mut t, tail, &te)?;
        rm.orphan_head = rj.orphan_head;
        rm.orphan_count = rm.orphan_count.saturating_add(rj.orphan_count);
        self.put_reg(&mut t, self.node, &rm)?;
        let mut rj2 = rj;
        rj2.orphan_head = NIL;
        rj2.orphan_count = 0;
        self.put_reg(&mut t, j, &rj2)?;
        self.commit(t)
    }

    /// Frees an entry that is creating (abort/recovery): its units, its index slot,
    /// its directory count. The caller holds the lock and owns the units' chunks.
    #[inline(never)]
    fn remove_entry(&mut self, idx: u32, e: &mut EntryRec) -> Result<()> {
        let slot = self.find_slot_of(e.dir, e.name.as_bytes(), idx)?;
        let (dir, creator, cslot) = (e.dir, e.creator, e.cslot);
        let mut t = self.txn();
        self.put_free_units(&mut t, e)?;
        let mut ns = self.nshdr()?;
        // `e` becomes the free record (no second copy on the stack).
        e.state = entry_state::FREE;
        e.next = ns.free_head;
        e.nextents = 0;
        e.extents = [Extent::default(); MAX_EXTENTS];
        ns.free_head = idx;
        ns.free_count = ns.free_count.saturating_add(1);
        self.put_entry(&mut t, idx, e)?;
        self.put_nshdr(&mut t, &ns)?;
        if let Some(s) = slot {
            self.vacate_slot(&mut t, s)?;
        }
        if creator == self.node && cslot < CREATING_SLOTS {
            t.put(
                &self.m,
                &self.geo,
                self.geo.creating(self.node, cslot),
                &[0u8; 4],
            )?;
        }
        if dir < self.geo.dir_count {
            let mut d = DirRec::default();
            self.dir_into(dir, &mut d)?;
            if d.state == dir_state::USED {
                d.key_count = d.key_count.saturating_sub(1);
                self.put_dir(&mut t, dir, &d)?;
            }
        }
        self.commit(t)
    }

    /// Adds the bitmap lines that free `e`'s units to `t` (chunks this host owns).
    #[inline(never)]
    fn put_free_units(&self, t: &mut Txn, e: &EntryRec) -> Result<()> {
        let ex = e.used_extents();
        for (i, x) in ex.iter().enumerate() {
            let c = self.geo.chunk_of(x.start);
            if ex.iter().take(i).any(|y| self.geo.chunk_of(y.start) == c) {
                continue; // chunk already handled
            }
            if c >= self.geo.chunk_count {
                continue;
            }
            let mut line = self.ld::<64>(self.geo.bitmap(c))?;
            for y in ex.iter().filter(|y| self.geo.chunk_of(y.start) == c) {
                for u in 0..y.count {
                    bit_set(
                        &mut line,
                        self.geo.unit_in_chunk(y.start).saturating_add(u),
                        false,
                    );
                }
            }
            t.put(&self.m, &self.geo, self.geo.bitmap(c), &line)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- join/leave

    /// Joins the pool: new epoch, then (under the lock) recovery of this host's
    /// previous epoch if it did not leave cleanly.
    ///
    /// Rejoin rule: until it holds the namespace lock, a joining host writes only
    /// its own lines (heartbeat, holds, identity, lock words), never its journal's
    /// targets. A survivor that judged the previous epoch dead may be replaying
    /// and taking it over right now; under the lock this host sees that work
    /// complete (`fenced_epoch`) and defers to it. The new identity is written
    /// before the old lock words are cleared: from then on every lock holder
    /// treats a pending record of this host as its dead incarnation's and
    /// replays it before mutating (`rejoining`), so a lock the previous
    /// incarnation died holding is not entered over a half-applied record.
    pub fn join(&mut self) -> Result<()> {
        let w = self.watch_node()?;
        self.join_watched(w)
    }

    /// The first step of [`Fs::join`], which writes nothing: when this
    /// host's slot says a host is active (or its identity line is torn), it
    /// watches the slot's heartbeat for that host's lease (at least this
    /// host's) plus the margin. A host using the slot renews it within its
    /// lease, so an advance means the node id is taken (a copied fstab
    /// line): [`Error::NodeInUse`]. Otherwise the slot is a dead
    /// incarnation's (ours) and [`Fs::join_watched`] may take it.
    pub fn watch_node(&self) -> Result<SlotWatch> {
        let me = self.node;
        let ident = self.ident(me)?;
        let hb = self.peer(me)?.hb;
        if ident.is_some_and(|i| i.state != host_state::ACTIVE) {
            return Ok(SlotWatch { hb });
        }
        let (lease_ns, join_time) = ident.map_or((0, 0), |i| (i.lease_ns, i.join_time));
        let lease = lease_ns.max(self.tun.lease_ns);
        // The same silence as a survivor's judgement (`expiry_ns`: the
        // holder's lease, the larger margin, the clock-rate allowance).
        let limit = expiry_ns(lease, self.tun.margin_ns);
        // Time is sampled before each read, so a stall of this host between
        // a read and the clock only shortens what it believes it watched.
        let start = self.env.now_ns();
        loop {
            if !self.env.pause(lease / 8) {
                return Err(Error::Interrupted);
            }
            let t = self.env.now_ns();
            if self.peer(me)?.hb != hb {
                return Err(Error::NodeInUse {
                    node: me,
                    join_time,
                });
            }
            if t.saturating_sub(start) > limit {
                return Ok(SlotWatch { hb });
            }
        }
    }

    /// The rest of [`Fs::join`], after [`Fs::watch_node`]: refused with
    /// [`Error::NodeInUse`] if the slot's heartbeat moved since the watch.
    pub fn join_watched(&mut self, w: SlotWatch) -> Result<()> {
        let r = self.join_inner(w);
        if r.is_err() {
            self.joined = false;
        }
        r
    }

    fn join_inner(&mut self, w: SlotWatch) -> Result<()> {
        let me = self.node;
        let decoded = self.ident(me)?;
        if self.peer(me)?.hb != w.hb {
            return Err(Error::NodeInUse {
                node: me,
                join_time: decoded.map_or(0, |i| i.join_time),
            });
        }
        // A torn identity line (a crash in the middle of writing it) is not a
        // free slot: its epoch is unknown, so the registry's record of the
        // last join that took the lock stands in for it.
        let torn = decoded.is_none();
        let old = decoded.unwrap_or_default();
        let reg = self.reg(me)?;
        let applied = journal::applied_seq(&self.m, &self.geo, me)?;
        let rec = journal::read_record(&self.m, &self.geo, me)?
            .map(|p| p.seq)
            .unwrap_or(0);
        self.next_seq = applied.max(rec).max(reg.replayed_seq).saturating_add(1);
        if torn || old.state == host_state::ACTIVE {
            // Our previous incarnation died: show we are alive (survivors that
            // have not judged it yet restart their expiry observation).
            let now = self.env.now_ns();
            self.renew(now)?;
        }
        // Drop the holds of the previous incarnation.
        let z = [0u8; 64];
        let mut o = 0u64;
        while o < self.geo.holds_bytes {
            self.m.store(self.geo.holds(me) + o, &z)?;
            o += 64;
        }
        self.m.flush(self.geo.holds(me), self.geo.holds_bytes)?;
        // The previous incarnation that may have changed the pool: the
        // identity's, or (torn) the last one recorded under the lock.
        let old_epoch = old.epoch.max(reg.joined_epoch);
        self.epoch = old_epoch.max(reg.fenced_epoch).saturating_add(1);
        let now = self.env.now_ns();
        let id = HostIdent {
            state: host_state::ACTIVE,
            node: me,
            epoch: self.epoch,
            lease_ns: self.tun.lease_ns,
            join_time: self.env.wall_ns(),
        };
        let mut b = [0u8; 64];
        id.encode(&mut b);
        self.st_flush(self.geo.host_slot(me), &b)?;
        // Only now may the old ticket go (see the rejoin rule above).
        self.set_lock_word(host_word::CHOOSING, 0)?;
        self.set_lock_word(host_word::TICKET, 0)?;
        self.joined = true;
        self.lost_lease = false;
        self.renew(now)?;
        self.obs = [Obs::default(); MAX_HOSTS];
        self.own_n = 0;
        self.locked(|fs| {
            if fs.reg(me)?.fenced_epoch < old_epoch {
                // Nobody fenced our previous epoch (it crashed, or left
                // cleanly): replay its journal if still pending.
                fs.replay_and_record(me)?;
            }
            // Read after the replay (its record may hold this line).
            let mut r = fs.reg(me)?;
            let recover = r.fenced_epoch < old_epoch;
            if recover {
                // Fence the previous epoch and take it over.
                r.fenced_epoch = old_epoch;
            }
            // Recorded in the first commit under the lock: before it, this
            // epoch changed nothing but its own slot, so a later join that
            // finds the identity torn may reuse it; after it, never.
            r.joined_epoch = r.joined_epoch.max(fs.epoch);
            let mut t = fs.txn();
            fs.put_reg(&mut t, me, &r)?;
            if recover {
                let mut ns = fs.nshdr()?;
                ns.pending_recovery |= 1 << me;
                fs.put_nshdr(&mut t, &ns)?;
            }
            fs.commit(t)?;
            if recover {
                fs.recover_host(me)?;
            }
            // Chunks still owned by an older epoch of ours are re-stamped.
            let upto = fs.epoch - 1;
            fs.take_chunks(me, upto)?;
            fs.remove_creating_of(me, upto)?;
            fs.refresh_own()
        })
    }

    /// Leaves the pool cleanly: aborts this host's unpublished keys, frees what it
    /// can, releases its holds and marks its slot left.
    pub fn leave(&mut self) -> Result<()> {
        let me = self.node;
        self.drain_orphans()?;
        self.locked(|fs| {
            fs.remove_creating_of(me, fs.epoch)?;
            fs.release_free_chunks()
        })?;
        let z = [0u8; 64];
        let mut o = 0u64;
        while o < self.geo.holds_bytes {
            self.m.store(self.geo.holds(me) + o, &z)?;
            o += 64;
        }
        self.m.flush(self.geo.holds(me), self.geo.holds_bytes)?;
        let id = HostIdent {
            state: host_state::LEFT,
            node: me,
            epoch: self.epoch,
            lease_ns: self.tun.lease_ns,
            join_time: self.env.wall_ns(),
        };
        let mut b = [0u8; 64];
        id.encode(&mut b);
        self.st_flush(self.geo.host_slot(me), &b)?;
        self.joined = false;
        Ok(())
    }

    #[inline(never)]
    fn release_free_chunks(&mut self) -> Result<()> {
        let mut c = 0u32;
        while c < self.geo.chunk_count {
            let rec = self.chunk_rec(c)?;
            if rec.owner == self.node + 1 {
                let line = self.ld::<64>(self.geo.bitmap(c))?;
                if line.iter().all(|&b| b == 0) {
                    let mut t = self.txn();
                    t.put(
                        &self.m,
                        &self.geo,
                        self.geo.chunk(c),
                        &ChunkRec::default().encode(),
                    )?;
                    let mut r = self.reg(self.node)?;
                    r.chunks_owned = r.chunks_owned.saturating_sub(1);
                    self.put_reg(&mut t, self.node, &r)?;
                    self.commit(t)?;
                }
            }
            c += 1;
        }
        self.own_n = 0;
        Ok(())
    }

    /// Looks at every peer: fences and recovers peers whose lease expired, and
    /// adopts the chunks and orphans of hosts that left. Call periodically.
    /// Returns the number of hosts recovered or adopted.
    pub fn check_peers(&mut self) -> Result<u32> {
        self.ensure_lease()?;
        let mut need = false;
        for j in 0..self.geo.max_hosts {
            if j == self.node {
                continue;
            }
            // The clock is read before the heartbeat (see `observe_expired`).
            let t_read = self.env.now_ns();
            let v = self.peer(j)?;
            let Some(id) = v.ident else { continue };
            let reg = self.reg(j)?;
            if id.state == host_state::ACTIVE {
                if reg.fenced_epoch < id.epoch && self.observe_expired(j, &id, v.hb, t_read) {
                    need = true;
                }
                if reg.fenced_epoch >= id.epoch && reg.recovered_epoch < reg.fenced_epoch {
                    need = true;
                }
            } else if reg.chunks_owned > 0 || reg.orphan_head != NIL {
                need = true;
            }
        }
        if !need {
            return Ok(0);
        }
        let before = self.takeovers;
        self.locked(|fs| {
            // Hosts fenced and recovered in this acquisition (`after_lock`).
            let mut n = fs.takeovers.wrapping_sub(before);
            for j in 0..fs.geo.max_hosts {
                if j == fs.node {
                    continue;
                }
                let Some(id) = fs.ident(j)? else { continue };
                let reg = fs.reg(j)?;
                if id.state != host_state::ACTIVE
                    && (reg.chunks_owned > 0 || reg.orphan_head != NIL)
                {
                    fs.take_chunks(j, id.epoch)?;
                    fs.splice_orphans(j)?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    // ---------------------------------------------------------------- index

    fn probe_start(&self, dir: u32, name: &[u8]) -> (u64, u16) {
        let h = name_hash(dir, name);
        (h & (self.geo.index_slots - 1), hash_tag(h))
    }

    /// Finds the used slot of (dir, name) whose target is `idx`.
    #[inline(never)]
    fn find_slot_of(&self, dir: u32, name: &[u8], idx: u32) -> Result<Option<u64>> {
        let (pos, tag) = self.probe_start(dir, name);
        let mask = self.geo.index_slots - 1;
        for p in 0..self.geo.index_slots {
            let i = (pos + p) & mask;
            let (st, d, tg, target) = slot_unpack(self.slot(i)?);
            match st {
                slot_state::EMPTY => return Ok(None),
                slot_state::USED if d == (dir & 0x3FFF) && tg == tag && target == idx => {
                    return Ok(Some(i))
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// Linear probe of the index for `name` in `dir`: `hit(target)` decides
    /// whether a used slot with the right directory and tag is the match.
    /// Returns the matching (slot, target) and the first reusable slot.
    #[inline(always)]
    fn probe(
        &self,
        dir: u32,
        name: &[u8],
        mut hit: impl FnMut(&Self, u32) -> Result<bool>,
    ) -> Result<Probe> {
        let (pos, tag) = self.probe_start(dir, name);
        let mask = self.geo.index_slots - 1;
        let mut free: Option<u64> = None;
        for p in 0..self.geo.index_slots {
            let i = (pos + p) & mask;
            let (st, d, tg, target) = slot_unpack(self.slot(i)?);
            match st {
                slot_state::EMPTY => return Ok((None, free.or(Some(i)))),
                slot_state::USED if d == dir && tg == tag => {
                    if hit(self, target)? {
                        return Ok((Some((i, target)), free));
                    }
                }
                slot_state::USED => {}
                _ => {
                    if free.is_none() {
                        free = Some(i);
                    }
                }
            }
        }
        Ok((None, free))
    }

    /// Probes for a key. Returns the matching (slot, entry index) whose state is
    /// creating or published (its record in `out`), and the first reusable slot.
    #[inline(never)]
    fn probe_key(&self, dir: u32, name: &Name, out: &mut EntryRec) -> Result<Probe> {
        self.probe(dir, name.as_bytes(), |fs, target| {
            if u64::from(target) >= fs.geo.entry_count {
                return Ok(false);
            }
            fs.entry_into(target, out)?;
            Ok(
                (out.state == entry_state::CREATING || out.state == entry_state::PUBLISHED)
                    && out.dir == dir
                    && out.name.as_bytes() == name.as_bytes(),
            )
        })
    }

    /// The home slot (probe start) of what used index slot word (`d`,
    /// `target`) refers to: a key's entry or, under the root, a directory's
    /// record, read now. `None` when that can't be told (a record being
    /// rewritten, out of range, or not what the slot says): the caller then
    /// assumes the worst.
    #[inline(never)]
    fn home_of(&self, d: u32, target: u32) -> Result<Option<u64>> {
        let mask = self.geo.index_slots - 1;
        let name_home = |dir: u32, name: &[u8]| name_hash(dir, name) & mask;
        if d == ROOT_DIR & 0x3FFF {
            let mut r = DirRec::default();
            match self.dir_into(target, &mut r) {
                Ok(()) if r.state == dir_state::USED => {
                    Ok(Some(name_home(ROOT_DIR, r.name.as_bytes())))
                }
                Ok(()) | Err(Error::NotFound | Error::Again) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            if u64::from(target) >= self.geo.entry_count {
                return Ok(None);
            }
            let mut e = EntryRec::default();
            match self.entry_into(target, &mut e) {
                Ok(()) if e.dir & 0x3FFF == d => Ok(Some(name_home(e.dir, e.name.as_bytes()))),
                Ok(()) | Err(Error::Again) => Ok(None),
                Err(x) => Err(x),
            }
        }
    }

    /// Adds to `t` the removal of index slot `i`'s name (under the lock; the
    /// slot is used now and `t` frees what it refers to). Linear probing
    /// stops at an empty slot, so a removed name normally leaves a tombstone
    /// that probes pass over; left alone, tombstones pile up under churn and
    /// misses probe ever longer. A slot p (the removed one, or a tombstone
    /// near it) becomes empty instead when no name stored after it, up to the
    /// next empty slot, has its home at or before p: then no probe sequence
    /// runs through p (an insert stops at the first empty slot, so every used
    /// slot is reachable from its home through non-empty slots, and stays so).
    /// Looked at: up to [`RECLAIM_FWD`] slots after `i` (each used one's
    /// record is read for its home; one that can't be read counts as homed
    /// before `i`), and, once `i` is empty, up to [`RECLAIM_BACK`] tombstones
    /// right before it. Each slot turned empty is safe on its own, so a lookup
    /// that sees some of the writes and not others (they are applied one by
    /// one) probes correctly either way.
    #[inline(never)]
    fn vacate_slot(&self, t: &mut Txn, i: u64) -> Result<()> {
        let mask = self.geo.index_slots - 1;
        let fwd = RECLAIM_FWD.min(self.geo.index_slots / 4);
        let back = RECLAIM_BACK.min(self.geo.index_slots / 4);
        let tomb = slot_pack(slot_state::TOMB, 0, 0, 0);
        let empty = slot_pack(slot_state::EMPTY, 0, 0, 0);
        let mut line = SlotLine::default();
        // Slots i+1.. up to the first empty one: states, and for used ones
        // the home's distance from i (-1: before i, or unknown).
        let mut used = [false; RECLAIM_FWD as usize];
        let mut rel = [-1i16; RECLAIM_FWD as usize];
        let mut end = None;
        for k in 1..=fwd {
            let s = (i + k) & mask;
            let (st, d, _, target) = slot_unpack(line.get(self, s)?);
            let at = (k - 1) as usize;
            if st == slot_state::EMPTY {
                end = Some(k);
                break;
            }
            if st == slot_state::USED {
                if let Some(x) = used.get_mut(at) {
                    *x = true;
                }
                let r = match self.home_of(d, target)?.map(|h| h.wrapping_sub(i) & mask) {
                    Some(r) if r <= k => r as i16,
                    _ => -1,
                };
                if let Some(x) = rel.get_mut(at) {
                    *x = r;
                }
            } else if st != slot_state::TOMB {
                // Not a state this code writes (damage): kept, and nothing
                // before it is reclaimed.
                if let Some(x) = used.get_mut(at) {
                    *x = true;
                }
            }
        }
        let Some(end) = end else {
            // No empty slot near: a tombstone.
            return self.put_slot(t, i, tomb);
        };
        // From the run's end back to i: p may go empty when every used slot
        // after it is homed after it.
        let mut min_after = i16::MAX;
        for k in (1..end).rev() {
            let at = (k - 1) as usize;
            if used.get(at).copied().unwrap_or(true) {
                min_after = min_after.min(rel.get(at).copied().unwrap_or(-1));
            } else if min_after > k as i16 {
                // A tombstone (the run holds no empty slot before `end`).
                self.put_slot(t, (i + k) & mask, empty)?;
            }
        }
        if min_after <= 0 {
            return self.put_slot(t, i, tomb);
        }
        self.put_slot(t, i, empty)?;
        // The tombstones right before i: nothing stored after them is
        // homed at or before them any more.
        for b in 1..=back {
            let s = i.wrapping_sub(b) & mask;
            let (st, _, _, _) = slot_unpack(line.get(self, s)?);
            if st != slot_state::TOMB {
                break;
            }
            self.put_slot(t, s, empty)?;
        }
        Ok(())
    }

    /// Probes for a directory (index slots of the root), its record in `out`.
    #[inline(never)]
    fn probe_dir(&self, name: &Name, out: &mut DirRec) -> Result<Probe> {
        self.probe(ROOT_DIR, name.as_bytes(), |fs, target| {
            if target >= fs.geo.dir_count {
                return Ok(false);
            }
            fs.dir_into(target, out)?;
            Ok(out.state == dir_state::USED && out.name.as_bytes() == name.as_bytes())
        })
    }

    // ---------------------------------------------------------------- directories

    /// Looks a directory up by name (lock-free).
    pub fn lookup_dir(&self, name: &[u8]) -> Result<Dir> {
        let n = Name::new(name)?;
        let mut rec = DirRec::default();
        match self.probe_dir(&n, &mut rec)?.0 {
            Some((_, id)) => Ok(Dir { id, rec }),
            None => Err(Error::NotFound),
        }
    }

    /// Reads directory `id`.
    pub fn stat_dir(&self, id: u32) -> Result<Dir> {
        let rec = self.dir_rec(id)?;
        if rec.state != dir_state::USED {
            return Err(Error::NotFound);
        }
        Ok(Dir { id, rec })
    }

    /// Creates a directory.
    pub fn mkdir(&mut self, name: &[u8], uid: u32, gid: u32, mode: u32) -> Result<u32> {
        let n = Name::new(name)?;
        self.locked(|fs| {
            let mut scratch = DirRec::default();
            let (found, free) = fs.probe_dir(&n, &mut scratch)?;
            if found.is_some() {
                return Err(Error::Exists);
            }
            let slot = free.ok_or(Error::NoEntries)?;
            let mut ns = fs.nshdr()?;
            let mut id = None;
            for d in 0..fs.geo.dir_count {
                let st = fs.ld::<4>(fs.geo.dir(d))?;
                if u32::from_le_bytes(st) == dir_state::FREE {
                    id = Some(d);
                    break;
                }
            }
            let id = id.ok_or(Error::NoEntries)?;
            let now = fs.env.wall_ns();
            // The counter continues from the slot's last directory, so a
            // name cached for that one can never validate against this one.
            let changes = match dir_changes(&fs.m, &fs.geo, id) {
                Some(c) => c,
                None if fs.dir_rec(id).is_ok_and(|r| r == DirRec::default()) => 0,
                None => now,
            };
            ns.next_gen = ns.next_gen.wrapping_add(1);
            ns.dirs_used = ns.dirs_used.saturating_add(1);
            let rec = DirRec {
                changes,
                state: dir_state::USED,
                generation: ns.next_gen,
                uid,
                gid,
                mode,
                ctime: now,
                mtime: now,
                key_count: 0,
                bytes: 0,
                name: n,
            };
            let tag = hash_tag(name_hash(ROOT_DIR, name));
            let mut t = fs.txn();
            fs.put_nshdr(&mut t, &ns)?;
            fs.put_slot(&mut t, slot, slot_pack(slot_state::USED, ROOT_DIR, tag, id))?;
            fs.put_dir(&mut t, id, &rec)?;
            fs.commit(t)?;
            Ok(id)
        })
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, name: &[u8]) -> Result<()> {
        let n = Name::new(name)?;
        self.locked(|fs| {
            let mut rec = DirRec::default();
            let (slot, id) = fs.probe_dir(&n, &mut rec)?.0.ok_or(Error::NotFound)?;
            if rec.key_count != 0 {
                return Err(Error::NotEmpty);
            }
            let mut ns = fs.nshdr()?;
            ns.dirs_used = ns.dirs_used.saturating_sub(1);
            rec.state = dir_state::FREE;
            let mut t = fs.txn();
            fs.put_nshdr(&mut t, &ns)?;
            fs.vacate_slot(&mut t, slot)?;
            fs.put_dir(&mut t, id, &rec)?;
            fs.commit(t)
        })
    }

    /// Lists directories: the first used directory at or after `cursor`, and the
    /// cursor to continue from.
    pub fn readdir_dirs(&self, cursor: u32) -> Result<Option<(Dir, u32)>> {
        let mut d = cursor;
        while d < self.geo.dir_count {
            let rec = self.dir_rec(d)?;
            if rec.state == dir_state::USED {
                return Ok(Some((Dir { id: d, rec }, d + 1)));
            }
            d += 1;
        }
        Ok(None)
    }

    /// Changes a directory's owner and/or mode.
    pub fn setattr_dir(
        &mut self,
        id: u32,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
    ) -> Result<()> {
        self.locked(|fs| {
            let mut rec = DirRec::default();
            fs.dir_used_into(id, &mut rec)?;
            rec.uid = uid.unwrap_or(rec.uid);
            rec.gid = gid.unwrap_or(rec.gid);
            rec.mode = mode.unwrap_or(rec.mode);
            rec.ctime = fs.env.wall_ns();
            let mut t = fs.txn();
            fs.put_dir(&mut t, id, &rec)?;
            fs.commit(t)
        })
    }

    // ---------------------------------------------------------------- keys

    /// Looks a published key up (lock-free). Creating keys are not found.
    pub fn lookup(&self, dir: u32, name: &[u8]) -> Result<Key> {
        let n = Name::new(name)?;
        if dir >= self.geo.dir_count {
            return Err(Error::NotFound);
        }
        let mut rec = EntryRec::default();
        match self.probe_key(dir, &n, &mut rec)?.0 {
            Some((_, entry)) if rec.state == entry_state::PUBLISHED => Ok(Key { entry, rec }),
            _ => Err(Error::NotFound),
        }
    }

    /// Reads entry `entry` (any state).
    pub fn stat_entry(&self, entry: u32) -> Result<Key> {
        Ok(Key {
            entry,
            rec: self.entry(entry)?,
        })
    }

    /// Reserves `name` in `dir` and returns a handle to the new, invisible key.
    /// A concurrent or existing key of that name (creating or published): `Exists`.
    pub fn create(
        &mut self,
        dir: u32,
        name: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<Handle> {
        let n = Name::new(name)?;
        self.create_name(dir, n, uid, gid, mode)
    }

    /// Creates an invisible key without a name (`O_TMPFILE`): like
    /// [`create`](Self::create) under a placeholder name no lookup can match;
    /// [`publish_as`](Self::publish_as) names and publishes it, or
    /// [`abort`](Self::abort) discards it (recovery does, after a crash).
    pub fn create_tmp(&mut self, dir: u32, uid: u32, gid: u32, mode: u32) -> Result<Handle> {
        for _ in 0..16 {
            self.tmp_seq = self.tmp_seq.wrapping_add(1);
            let tag = (u64::from(self.node) << 56) ^ (self.epoch << 32) ^ u64::from(self.tmp_seq);
            match self.create_name(dir, Name::temporary(tag), uid, gid, mode) {
                // A leftover of an earlier incarnation: try the next tag.
                Err(Error::Exists) => continue,
                r => return r,
            }
        }
        Err(Error::Busy)
    }

    fn create_name(&mut self, dir: u32, n: Name, uid: u32, gid: u32, mode: u32) -> Result<Handle> {
        let name = n;
        let me = self.node;
        let cslot = self.free_cslot()?;
        self.locked(|fs| {
            let mut d = DirRec::default();
            fs.dir_used_into(dir, &mut d)?;
            let mut scratch = EntryRec::default();
            let (found, free) = fs.probe_key(dir, &n, &mut scratch)?;
            if found.is_some() {
                return Err(Error::Exists);
            }
            let slot = free.ok_or(Error::NoEntries)?;
            let mut ns = fs.nshdr()?;
            let idx;
            let old_gen;
            if ns.free_head != NIL {
                idx = ns.free_head;
                fs.entry_into(idx, &mut scratch)?;
                if scratch.state != entry_state::FREE {
                    return Err(Error::Corrupt);
                }
                ns.free_head = scratch.next;
                ns.free_count = ns.free_count.saturating_sub(1);
                old_gen = scratch.generation;
            } else if u64::from(ns.hwm) < fs.geo.entry_count {
                idx = ns.hwm;
                ns.hwm += 1;
                old_gen = 0;
            } else {
                return Err(Error::NoEntries);
            }
            ns.next_gen = ns.next_gen.wrapping_add(1).max(old_gen.wrapping_add(1));
            let now = fs.env.wall_ns();
            // The scratch record becomes the new entry (one record on the stack).
            let rec = &mut scratch;
            *rec = EntryRec {
                state: entry_state::CREATING,
                generation: ns.next_gen,
                dir,
                uid,
                gid,
                mode,
                next: NIL,
                ctime: now,
                mtime: now,
                crtime: now,
                creator: me,
                cslot,
                creator_epoch: fs.epoch,
                name: n,
                ..EntryRec::default()
            };
            d.key_count = d.key_count.saturating_add(1);
            d.mtime = now;
            let tag = hash_tag(name_hash(dir, name.as_bytes()));
            let mut t = fs.txn();
            fs.put_entry(&mut t, idx, rec)?;
            fs.put_nshdr(&mut t, &ns)?;
            t.put(
                &fs.m,
                &fs.geo,
                fs.geo.creating(me, cslot),
                &(idx + 1).to_le_bytes(),
            )?;
            fs.put_slot(&mut t, slot, slot_pack(slot_state::USED, dir, tag, idx))?;
            fs.put_dir(&mut t, dir, &d)?;
            fs.commit(t)?;
            fs.cslot_hint = cslot + 1;
            Ok(Handle {
                entry: idx,
                generation: rec.generation,
            })
        })
    }

    #[inline(never)]
    fn free_cslot(&mut self) -> Result<u32> {
        for k in 0..CREATING_SLOTS {
            let i = (self.cslot_hint + k) % CREATING_SLOTS;
            let v = self.ld::<4>(self.geo.creating(self.node, i))?;
            if u32::from_le_bytes(v) == 0 {
                return Ok(i);
            }
        }
        Err(Error::Busy)
    }

    #[inline(never)]
    fn my_creating(&self, h: &Handle, e: &mut EntryRec) -> Result<()> {
        self.entry_into(h.entry, e)?;
        if e.generation != h.generation || e.creator != self.node || e.creator_epoch != self.epoch {
            return Err(Error::Stale);
        }
        if e.state != entry_state::CREATING {
            return Err(Error::NotPermitted);
        }
        Ok(())
    }

    /// Data units backing the key (for writing its data before publish).
    pub fn extents(&self, h: &Handle) -> Result<EntryRec> {
        let mut e = EntryRec::default();
        self.my_creating(h, &mut e)?;
        Ok(e)
    }

    /// Sets the size of a creating key, allocating 2 MiB units from this host's
    /// chunks (lock-free; takes the lock only to acquire a new chunk). Never frees.
    pub fn set_size(&mut self, h: &Handle, size: u64) -> Result<()> {
        self.set_size_with(h, size, |_| {})
    }

    /// [`set_size`](Self::set_size), calling `known_zero(unit)` for each
    /// newly allocated unit that was zeroed ahead of time
    /// ([`begin_zeroing`](Self::begin_zeroing)): the caller needn't zero
    /// those (the others may hold a deleted key's bytes).
    pub fn set_size_with(
        &mut self,
        h: &Handle,
        size: u64,
        mut known_zero: impl FnMut(u32),
    ) -> Result<()> {
        self.ensure_lease()?;
        let mut e = EntryRec::default();
        self.my_creating(h, &mut e)?;
        let need = size.div_ceil(UNIT);
        let have = e.units();
        if need > (MAX_EXTENTS as u64) * u64::from(self.geo.chunk_units) {
            return Err(Error::TooLarge);
        }
        if need > have {
            let want = need - have;
            let mut tries = 0;
            while self.own_free_units()? < want {
                tries += 1;
                if self.acquire_chunk().is_err() {
                    if tries > 1 {
                        return Err(Error::NoSpace);
                    }
                    self.drain_orphans()?;
                }
                if tries > 64 {
                    return Err(Error::NoSpace);
                }
            }
        }
        // The transaction starts only now: acquiring a chunk commits its own.
        let mut t = self.txn();
        if need > have {
            let mut want = need - have;
            let mut k = 0usize;
            while want > 0 && k < self.own_n {
                let c = self.own.get(k).copied().unwrap_or(0);
                k += 1;
                let mut line = self.ld::<64>(self.geo.bitmap(c))?;
                let valid = self.geo.units_in_chunk(c);
                let base = c * self.geo.chunk_units;
                let mut changed = false;
                let mut u = 0u32;
                while u < valid && want > 0 {
                    if bit_get(&line, u) || self.is_zeroing(base + u) {
                        u += 1;
                        continue;
                    }
                    let start = u;
                    while u < valid && want > 0 && !bit_get(&line, u) && !self.is_zeroing(base + u)
                    {
                        if self.take_zeroed(base + u) {
                            known_zero(base + u);
                        }
                        bit_set(&mut line, u, true);
                        u += 1;
                        want -= 1;
                    }
                    changed = true;
                    let x = Extent {
                        start: base + start,
                        count: u - start,
                    };
                    let n = e.nextents as usize;
                    let merged = match n.checked_sub(1).and_then(|l| e.extents.get_mut(l)) {
                        Some(last)
                            if last.start.checked_add(last.count) == Some(x.start)
                                && self.geo.chunk_of(last.start) == c =>
                        {
                            last.count = last.count.saturating_add(x.count);
                            true
                        }
                        _ => false,
                    };
                    if !merged {
                        let slot = e.extents.get_mut(n).ok_or(Error::TooLarge)?;
                        *slot = x;
                        e.nextents += 1;
                    }
                }
                if changed {
                    t.put(&self.m, &self.geo, self.geo.bitmap(c), &line)?;
                }
            }
            if want > 0 {
                return Err(Error::NoSpace);
            }
        }
        e.size = size;
        e.mtime = self.env.wall_ns();
        self.put_entry(&mut t, h.entry, &e)?;
        self.commit(t)
    }

    fn cache_own(&mut self, c: u32) {
        if self.own.iter().take(self.own_n).any(|&x| x == c) {
            return;
        }
        if let Some(s) = self.own.get_mut(self.own_n) {
            *s = c;
            self.own_n += 1;
            // Nothing is known of a chunk that (re)enters the cache.
            let g = self.geo;
            for z in self.zeroed.iter_mut() {
                if *z != NIL && g.chunk_of(*z) == c {
                    *z = NIL;
                }
            }
        }
    }

    fn is_zeroing(&self, unit: u32) -> bool {
        self.zeroing == Some(unit)
    }

    /// The cache slot of own chunk `c`.
    fn own_slot(&self, c: u32) -> Option<usize> {
        self.own.iter().take(self.own_n).position(|&x| x == c)
    }

    /// Picks a free unit of this host's chunks that isn't known to be zero
    /// and reserves it (allocation skips it) so the caller can zero it
    /// without holding anything; then [`finish_zeroing`](Self::finish_zeroing).
    /// `None`: every free own unit is known zero, one is being zeroed, or the
    /// known-zero set is full (128 units). Zeroing ahead of time takes the
    /// memset off key creation (see [`set_size_with`](Self::set_size_with)).
    /// Needs a valid lease (renewed if close to expiry): zeroing a unit takes
    /// far less than the lease's guard time, so no survivor can have taken
    /// the chunk over before the caller is done.
    pub fn begin_zeroing(&mut self) -> Result<Option<u32>> {
        if self.zeroing.is_some() {
            return Ok(None);
        }
        self.ensure_lease()?;
        self.check_fence()?;
        if !self.zeroed.contains(&NIL) {
            // Full: forget units of chunks no longer cached as ours.
            for i in 0..ZEROED_MAX {
                let z = self.zeroed.get(i).copied().unwrap_or(NIL);
                if z != NIL && self.own_slot(self.geo.chunk_of(z)).is_none() {
                    if let Some(x) = self.zeroed.get_mut(i) {
                        *x = NIL;
                    }
                }
            }
            if !self.zeroed.contains(&NIL) {
                return Ok(None);
            }
        }
        for k in 0..self.own_n {
            let c = self.own.get(k).copied().unwrap_or(0);
            let line = self.ld::<64>(self.geo.bitmap(c))?;
            for u in 0..self.geo.units_in_chunk(c) {
                let unit = c * self.geo.chunk_units + u;
                if !bit_get(&line, u) && !self.zeroed.contains(&unit) {
                    self.zeroing = Some(unit);
                    return Ok(Some(unit));
                }
            }
        }
        Ok(None)
    }

    /// When zeroing ahead has run out of work — every free unit of this
    /// host's chunks is known zero, yet fewer than half of the 128 the core
    /// can remember — acquires one more free chunk (under the lock) so that
    /// a growing set of keys finds zeroed units too. Leaves at least an
    /// eighth of the pool's chunks to other hosts. True if it acquired one.
    pub fn grow_for_zeroing(&mut self) -> Result<bool> {
        let known = self.zeroed.iter().filter(|&&z| z != NIL).count();
        if self.zeroing.is_some() || known >= ZEROED_MAX / 2 || self.own_n >= OWN_CACHE {
            return Ok(false);
        }
        if self.own_free_units()? > known as u64 {
            return Ok(false); // still free units to zero
        }
        let mut free = 0u32;
        for c in 0..self.geo.chunk_count {
            if self.chunk_rec(c)?.owner == 0 {
                free += 1;
            }
        }
        if free == 0 || free <= self.geo.chunk_count / 8 {
            return Ok(false);
        }
        self.ensure_lease()?;
        self.acquire_chunk()?;
        Ok(true)
    }

    /// Ends [`begin_zeroing`](Self::begin_zeroing) of `unit`: `done` = its
    /// bytes are zero and written back; it is then known zero while it stays
    /// free and its chunk stays cached as this host's.
    pub fn finish_zeroing(&mut self, unit: u32, done: bool) {
        if self.zeroing != Some(unit) {
            return;
        }
        self.zeroing = None;
        if done && self.own_slot(self.geo.chunk_of(unit)).is_some() {
            if let Some(z) = self.zeroed.iter_mut().find(|z| **z == NIL) {
                *z = unit;
            }
        }
    }

    /// Whether `unit` (being allocated) is known to be zero; forgets it.
    fn take_zeroed(&mut self, unit: u32) -> bool {
        match self.zeroed.iter_mut().find(|z| **z == unit) {
            Some(z) => {
                *z = NIL;
                true
            }
            None => false,
        }
    }

    #[inline(never)]
    fn refresh_own(&mut self) -> Result<()> {
        self.own_n = 0;
        let mut c = 0u32;
        while c < self.geo.chunk_count && self.own_n < OWN_CACHE {
            let r = self.chunk_rec(c)?;
            if r.owner == self.node + 1 && r.epoch == self.epoch {
                self.cache_own(c);
            }
            c += 1;
        }
        Ok(())
    }

    #[inline(never)]
    fn own_free_units(&self) -> Result<u64> {
        let mut n = 0u64;
        for &c in self.own.iter().take(self.own_n) {
            let line = self.ld::<64>(self.geo.bitmap(c))?;
            for u in 0..self.geo.units_in_chunk(c) {
                if !bit_get(&line, u) && !self.is_zeroing(c * self.geo.chunk_units + u) {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    #[inline(never)]
    fn acquire_chunk(&mut self) -> Result<()> {
        let c = self.locked(|fs| {
            let mut ns = fs.nshdr()?;
            let n = fs.geo.chunk_count;
            for k in 0..n {
                let c = ns.chunk_hint.wrapping_add(k).checked_rem(n).unwrap_or(0);
                if fs.chunk_rec(c)?.owner == 0 {
                    let mut t = fs.txn();
                    let rec = ChunkRec {
                        owner: fs.node + 1,
                        epoch: fs.epoch,
                    };
                    t.put(&fs.m, &fs.geo, fs.geo.chunk(c), &rec.encode())?;
                    t.put(
                        &fs.m,
                        &fs.geo,
                        fs.geo.bitmap(c),
                        &[0u8; BITMAP_SIZE as usize],
                    )?;
                    let mut r = fs.reg(fs.node)?;
                    r.chunks_owned = r.chunks_owned.saturating_add(1);
                    fs.put_reg(&mut t, fs.node, &r)?;
                    ns.chunk_hint = c.wrapping_add(1).checked_rem(n).unwrap_or(0);
                    fs.put_nshdr(&mut t, &ns)?;
                    fs.commit(t)?;
                    return Ok(c);
                }
            }
            Err(Error::NoSpace)
        })?;
        if self.own_n >= OWN_CACHE {
            // Forget a full chunk to make room.
            self.own_n = 0;
            self.refresh_own()?;
        }
        self.cache_own(c);
        Ok(())
    }

    /// Publishes a creating key: from now on it is visible and immutable. The
    /// caller must have written and flushed its data first.
    pub fn publish(&mut self, h: &Handle, data_crc: Option<u32>) -> Result<()> {
        let me = self.node;
        self.locked(|fs| {
            let mut e = EntryRec::default();
            fs.my_creating(h, &mut e)?;
            let mut d = DirRec::default();
            fs.dir_used_into(e.dir, &mut d)?;
            e.state = entry_state::PUBLISHED;
            if let Some(c) = data_crc {
                e.flags |= EF_DATA_CRC;
                e.data_crc = c;
            }
            e.mtime = fs.env.wall_ns();
            d.bytes = d.bytes.saturating_add(e.size);
            let mut t = fs.txn();
            fs.put_entry(&mut t, h.entry, &e)?;
            if e.cslot < CREATING_SLOTS {
                t.put(&fs.m, &fs.geo, fs.geo.creating(me, e.cslot), &[0u8; 4])?;
            }
            fs.put_dir(&mut t, e.dir, &d)?;
            fs.commit(t)
        })
    }

    /// Names and publishes a creating key in one transaction (`linkat` of an
    /// `O_TMPFILE`): `name` must be free in the key's directory (`Exists`
    /// otherwise, and the key stays unpublished). Data as for
    /// [`publish`](Self::publish).
    pub fn publish_as(&mut self, h: &Handle, name: &[u8], data_crc: Option<u32>) -> Result<()> {
        let n = Name::new(name)?;
        let me = self.node;
        self.locked(|fs| {
            let mut e = EntryRec::default();
            fs.my_creating(h, &mut e)?;
            let mut scratch = EntryRec::default();
            let (found, free) = fs.probe_key(e.dir, &n, &mut scratch)?;
            if found.is_some() {
                return Err(Error::Exists);
            }
            let nslot = free.ok_or(Error::NoEntries)?;
            let old = e.name;
            let oslot = match fs.probe_key(e.dir, &old, &mut scratch)?.0 {
                Some((slot, idx)) if idx == h.entry => slot,
                _ => return Err(Error::Corrupt),
            };
            let mut d = DirRec::default();
            fs.dir_used_into(e.dir, &mut d)?;
            e.state = entry_state::PUBLISHED;
            e.name = n;
            if let Some(c) = data_crc {
                e.flags |= EF_DATA_CRC;
                e.data_crc = c;
            }
            e.mtime = fs.env.wall_ns();
            e.ctime = e.mtime;
            d.bytes = d.bytes.saturating_add(e.size);
            let tag = hash_tag(name_hash(e.dir, name));
            let mut t = fs.txn();
            fs.put_entry(&mut t, h.entry, &e)?;
            if e.cslot < CREATING_SLOTS {
                t.put(&fs.m, &fs.geo, fs.geo.creating(me, e.cslot), &[0u8; 4])?;
            }
            fs.put_slot(&mut t, oslot, slot_pack(slot_state::TOMB, 0, 0, 0))?;
            fs.put_slot(
                &mut t,
                nslot,
                slot_pack(slot_state::USED, e.dir, tag, h.entry),
            )?;
            fs.put_dir(&mut t, e.dir, &d)?;
            fs.commit(t)
        })
    }

    /// Abandons a creating key: frees its name, entry and units.
    pub fn abort(&mut self, h: &Handle) -> Result<()> {
        self.locked(|fs| {
            let mut e = EntryRec::default();
            fs.my_creating(h, &mut e)?;
            fs.remove_entry(h.entry, &mut e)
        })
    }

    /// Unlinks a published key: invisible at once; its space is reclaimed by the
    /// owner of its units once no host holds it.
    pub fn unlink(&mut self, dir: u32, name: &[u8]) -> Result<()> {
        let n = Name::new(name)?;
        self.locked(|fs| fs.unlink_in(dir, &n).map(|_| ()))
    }

    /// [`unlink`](Self::unlink), then, in the same lock acquisition, frees
    /// this host's orphans that no host holds (as
    /// [`drain_orphans`](Self::drain_orphans)): a deleted key nobody has open
    /// is reclaimed at once, for one cross-host lock instead of two.
    /// Returns how many orphans were freed.
    pub fn unlink_reclaim(&mut self, dir: u32, name: &[u8]) -> Result<u32> {
        let n = Name::new(name)?;
        self.locked(|fs| {
            let q = fs.unlink_in(dir, &n)?;
            if q == fs.node {
                fs.drain_locked()
            } else {
                Ok(0)
            }
        })
    }

    /// The body of [`unlink`](Self::unlink), under the lock; returns the host
    /// whose orphan queue took the entry.
    fn unlink_in(&mut self, dir: u32, n: &Name) -> Result<u32> {
        let fs = self;
        let mut e = EntryRec::default();
        let (slot, idx) = match fs.probe_key(dir, n, &mut e)?.0 {
            Some(x) if e.state == entry_state::PUBLISHED => x,
            _ => return Err(Error::NotFound),
        };
        let q = match e.used_extents().first() {
            Some(x) => {
                let r = fs.chunk_rec(fs.geo.chunk_of(x.start))?;
                if r.owner != 0 && r.owner <= fs.geo.max_hosts {
                    r.owner - 1
                } else {
                    fs.node
                }
            }
            None => fs.node,
        };
        let mut rq = fs.reg(q)?;
        let mut d = DirRec::default();
        fs.dir_used_into(dir, &mut d)?;
        e.state = entry_state::UNLINKED;
        e.next = rq.orphan_head;
        e.ctime = fs.env.wall_ns();
        rq.orphan_head = idx;
        rq.orphan_count = rq.orphan_count.saturating_add(1);
        d.key_count = d.key_count.saturating_sub(1);
        d.bytes = d.bytes.saturating_sub(e.size);
        d.mtime = e.ctime;
        let mut t = fs.txn();
        fs.put_entry(&mut t, idx, &e)?;
        fs.put_reg(&mut t, q, &rq)?;
        fs.vacate_slot(&mut t, slot)?;
        fs.put_dir(&mut t, dir, &d)?;
        fs.commit(t)?;
        Ok(q)
    }

    /// Renames a published key within its directory (fails with `Exists` if the
    /// new name is taken; never replaces).
    pub fn rename(&mut self, dir: u32, old: &[u8], new: &[u8]) -> Result<()> {
        let o = Name::new(old)?;
        let n = Name::new(new)?;
        self.locked(|fs| {
            let mut e = EntryRec::default();
            let (found, free) = fs.probe_key(dir, &n, &mut e)?;
            if found.is_some() {
                return Err(Error::Exists);
            }
            let nslot = free.ok_or(Error::NoEntries)?;
            let (slot, idx) = match fs.probe_key(dir, &o, &mut e)?.0 {
                Some(x) if e.state == entry_state::PUBLISHED => x,
                _ => return Err(Error::NotFound),
            };
            e.name = n;
            e.ctime = fs.env.wall_ns();
            let tag = hash_tag(name_hash(dir, new));
            let mut t = fs.txn();
            fs.put_entry(&mut t, idx, &e)?;
            fs.put_slot(&mut t, slot, slot_pack(slot_state::TOMB, 0, 0, 0))?;
            fs.put_slot(&mut t, nslot, slot_pack(slot_state::USED, dir, tag, idx))?;
            fs.touch_dir(&mut t, dir)?;
            fs.commit(t)
        })
    }

    /// Changes a published key's owner and/or mode.
    pub fn setattr(
        &mut self,
        dir: u32,
        name: &[u8],
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
    ) -> Result<()> {
        let n = Name::new(name)?;
        self.locked(|fs| {
            let mut e = EntryRec::default();
            let idx = match fs.probe_key(dir, &n, &mut e)?.0 {
                Some((_, idx)) if e.state == entry_state::PUBLISHED => idx,
                _ => return Err(Error::NotFound),
            };
            e.uid = uid.unwrap_or(e.uid);
            e.gid = gid.unwrap_or(e.gid);
            e.mode = mode.unwrap_or(e.mode);
            e.ctime = fs.env.wall_ns();
            let mut t = fs.txn();
            fs.put_entry(&mut t, idx, &e)?;
            fs.touch_dir(&mut t, dir)?;
            fs.commit(t)
        })
    }

    /// Lists published keys of `dir`: the first at or after index slot `cursor`,
    /// and the cursor to continue from. Stable across calls and concurrent changes.
    pub fn readdir(&self, dir: u32, cursor: u64) -> Result<Option<(Key, u64)>> {
        let mut i = cursor;
        while i < self.geo.index_slots {
            let line = self.ld::<64>(self.geo.slot(i & !7))?;
            let mut k = i & 7;
            while k < 8 {
                let w = super::layout::rd64(&line, (k * 8) as usize);
                let (st, d, _, target) = slot_unpack(w);
                let at = (i & !7) + k;
                if st == slot_state::USED
                    && d == dir
                    && dir != ROOT_DIR
                    && u64::from(target) < self.geo.entry_count
                {
                    let mut e = EntryRec::default();
                    self.entry_into(target, &mut e)?;
                    if e.state == entry_state::PUBLISHED && e.dir == dir {
                        return Ok(Some((
                            Key {
                                entry: target,
                                rec: e,
                            },
                            at + 1,
                        )));
                    }
                }
                k += 1;
            }
            i = (i & !7) + 8;
        }
        Ok(None)
    }

    // ---------------------------------------------------------------- holds

    fn hold_word(&self, entry: u32) -> u64 {
        self.geo.holds(self.node) + u64::from(entry / 64) * 8
    }

    /// Takes this host's hold on a published key (it stays allocated while held).
    /// Fails with `Stale` when the key is no longer that generation or published.
    pub fn hold(&mut self, entry: u32, generation: u64) -> Result<()> {
        self.hold_vouched(entry, generation, None)
    }

    /// [`hold`](Self::hold) of a key found published with `generation`
    /// after directory `dir`'s change counter read `tag` (`vouch` =
    /// `Some((dir, tag))`, e.g. from a name cache): once the hold bit is
    /// visible, a counter still reading `tag` shows that no transaction
    /// changed the directory since, so the key is still published; an
    /// unlink that commits later is followed by a reclaim that sees the bit.
    /// Then the entry isn't read again; otherwise as `hold`.
    pub fn hold_vouched(
        &mut self,
        entry: u32,
        generation: u64,
        vouch: Option<(u32, u64)>,
    ) -> Result<()> {
        if u64::from(entry) >= self.geo.entry_count {
            return Err(Error::InvalidArgument);
        }
        // A fenced host's holds are ignored by the survivors, which may
        // reclaim the key: it must not believe it holds one.
        self.check_live()?;
        let off = self.hold_word(entry);
        let w = self.ld64(off)? | (1u64 << (entry % 64));
        self.st_flush(off, &w.to_le_bytes())?;
        if let Some((dir, tag)) = vouch {
            if self.has_dir_changes() && self.dir_changes(dir) == Some(tag) {
                return Ok(());
            }
        }
        let mut e = EntryRec::default();
        self.entry_into(entry, &mut e)?;
        if e.state == entry_state::PUBLISHED && e.generation == generation {
            return Ok(());
        }
        let w = self.ld64(off)? & !(1u64 << (entry % 64));
        self.st_flush(off, &w.to_le_bytes())?;
        Err(Error::Stale)
    }

    /// Holds a key this host is creating, so that the hold is in place before
    /// [`publish_as`](Self::publish_as) makes it visible (and unlinkable) to
    /// other hosts: a creator that keeps its file open after naming the key
    /// keeps its bytes. Undone by [`release`](Self::release).
    pub fn hold_creating(&mut self, h: &Handle) -> Result<()> {
        self.check_live()?;
        let mut e = EntryRec::default();
        self.my_creating(h, &mut e)?;
        let off = self.hold_word(h.entry);
        let w = self.ld64(off)? | (1u64 << (h.entry % 64));
        self.st_flush(off, &w.to_le_bytes())
    }

    /// Drops this host's hold on a key.
    pub fn release(&mut self, entry: u32) -> Result<()> {
        if u64::from(entry) >= self.geo.entry_count {
            return Err(Error::InvalidArgument);
        }
        self.check_live()?;
        let off = self.hold_word(entry);
        let w = self.ld64(off)? & !(1u64 << (entry % 64));
        self.st_flush(off, &w.to_le_bytes())
    }

    #[inline(never)]
    fn held_by_anyone(&self, entry: u32) -> Result<bool> {
        // Identities in batches: a slot free or departed at that read is
        // skipped (a host joining after it cannot hold the entry: its hold
        // re-checks the entry, which is already unlinked); an active or torn
        // one is read again when its turn comes, then its hold word.
        let mut pv = [PeerView::EMPTY; PEER_BATCH];
        let mut first = 0u32;
        while first < self.geo.max_hosts {
            let n = self.peers(first, &mut pv)?;
            for (j, v) in (first..).zip(pv.iter().take(n)) {
                if v.ident.is_some_and(|id| id.state != host_state::ACTIVE) {
                    continue;
                }
                let fresh = self.peer(j)?;
                let Some(id) = fresh.ident else {
                    // Unreadable: a host may be joining, and may hold it;
                    // unless this host judged the line damage (unchanged
                    // through a whole patience period, see `lock_inner`).
                    if self.torn.get(j as usize).copied().unwrap_or(0) == fresh.line_sum {
                        continue;
                    }
                    return Ok(true);
                };
                if id.state != host_state::ACTIVE || self.reg(j)?.fenced_epoch >= id.epoch {
                    continue;
                }
                let off = self.geo.holds(j) + u64::from(entry / 64) * 8;
                if self.ld64(off)? & (1u64 << (entry % 64)) != 0 {
                    return Ok(true);
                }
            }
            first += n as u32;
        }
        Ok(false)
    }

    /// Frees this host's queued orphans that no live host holds. Returns how many.
    pub fn drain_orphans(&mut self) -> Result<u32> {
        if self.reg(self.node)?.orphan_head == NIL {
            return Ok(0);
        }
        self.locked(|fs| fs.drain_locked())
    }

    /// The body of [`drain_orphans`](Self::drain_orphans), under the lock.
    fn drain_locked(&mut self) -> Result<u32> {
        {
            let fs = self;
            let me = fs.node;
            let mut freed = 0u32;
            let mut prev = NIL;
            let mut cur = fs.reg(me)?.orphan_head;
            let mut steps = 0u64;
            while cur != NIL {
                steps += 1;
                if steps > fs.geo.entry_count {
                    return Err(Error::Corrupt);
                }
                let mut e = EntryRec::default();
                fs.entry_into(cur, &mut e)?;
                if e.state != entry_state::UNLINKED {
                    return Err(Error::Corrupt);
                }
                let owned = e.used_extents().iter().all(|x| {
                    fs.chunk_rec(fs.geo.chunk_of(x.start))
                        .map(|r| r.owner == me + 1)
                        .unwrap_or(false)
                });
                if !owned || fs.held_by_anyone(cur)? {
                    prev = cur;
                    cur = e.next;
                    continue;
                }
                let mut t = fs.txn();
                fs.put_free_units(&mut t, &e)?;
                let mut ns = fs.nshdr()?;
                let mut r = fs.reg(me)?;
                if prev == NIL {
                    r.orphan_head = e.next;
                } else {
                    let mut p = EntryRec::default();
                    fs.entry_into(prev, &mut p)?;
                    p.next = e.next;
                    fs.put_entry(&mut t, prev, &p)?;
                }
                r.orphan_count = r.orphan_count.saturating_sub(1);
                fs.put_reg(&mut t, me, &r)?;
                let mut f = e;
                f.state = entry_state::FREE;
                f.next = ns.free_head;
                f.nextents = 0;
                f.extents = [Extent::default(); MAX_EXTENTS];
                ns.free_head = cur;
                ns.free_count = ns.free_count.saturating_add(1);
                fs.put_entry(&mut t, cur, &f)?;
                fs.put_nshdr(&mut t, &ns)?;
                fs.commit(t)?;
                freed += 1;
                cur = e.next;
            }
            Ok(freed)
        }
    }

    // ---------------------------------------------------------------- statfs

    /// Pool usage (lock-free, approximate while others allocate).
    pub fn statfs(&self) -> Result<StatFs> {
        let ns = self.nshdr()?;
        let mut s = StatFs {
            total_units: self.geo.data_units,
            total_chunks: self.geo.chunk_count,
            total_entries: self.geo.entry_count,
            free_entries: self.geo.entry_count.saturating_sub(u64::from(ns.hwm))
                + u64::from(ns.free_count),
            dirs_used: ns.dirs_used,
            dirs_total: self.geo.dir_count,
            ..StatFs::default()
        };
        for c in 0..self.geo.chunk_count {
            let valid = self.geo.units_in_chunk(c);
            if self.chunk_rec(c)?.owner == 0 {
                s.free_chunks += 1;
                s.free_units += u64::from(valid);
            } else {
                let line = self.ld::<64>(self.geo.bitmap(c))?;
                s.free_units += (0..valid).filter(|&u| !bit_get(&line, u)).count() as u64;
            }
        }
        Ok(s)
    }
}
