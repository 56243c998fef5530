//! On-media layout: constants, geometry and little-endian encode/decode of every
//! record. See `Documentation/design/format.md`.

use super::crc::crc32c;

/// Superblock magic (8 bytes at offset 0).
pub const MAGIC: [u8; 8] = *b"MARUFS\x00\x01";
/// On-media format version.
pub const VERSION: u32 = 1;
/// Known compatible features (none yet).
pub const COMPAT_KNOWN: u64 = 0;
/// Incompatible feature: every transaction that changes what a lookup or
/// stat in a directory can return bumps that directory's change counter
/// ([`DirRec::changes`]) as its last write, so hosts may cache names in DRAM
/// and revalidate them by reading one line. Older modules would change keys
/// without bumping it, so they must not mount such a pool.
pub const INCOMPAT_DIR_CHANGES: u64 = 1;
/// Known incompatible features.
pub const INCOMPAT_KNOWN: u64 = INCOMPAT_DIR_CHANGES;
/// Known read-only-compatible features (none yet).
pub const RO_COMPAT_KNOWN: u64 = 0;

/// Cache line size: the granularity of write-back, tearing and single writers.
pub const LINE: u64 = 64;
/// Metadata block alignment.
pub const BLOCK: u64 = 4096;
/// Allocation unit: 2 MiB, 2 MiB aligned.
pub const UNIT: u64 = 2 << 20;
/// Offset of the backup superblock.
pub const SB_BACKUP_OFF: u64 = 64 << 10;
/// Offset of the first area after the superblocks.
pub const AREAS_OFF: u64 = 128 << 10;
/// Encoded superblock size.
pub const SB_SIZE: usize = 512;
/// Host slots the format supports at most.
pub const MAX_HOSTS: usize = 64;
/// Encoded host slot size (two lines: identity, then heartbeat + lock words).
pub const HOST_SLOT_SIZE: u64 = 128;
/// Encoded registry record size (one line per host, lock protected).
pub const REG_SIZE: usize = 64;
/// Encoded namespace header size.
pub const NSHDR_SIZE: usize = 64;
/// Encoded directory record size.
pub const DIR_SIZE: usize = 512;
/// Encoded key entry size.
pub const ENTRY_SIZE: usize = 512;
/// Encoded chunk table record size.
pub const CHUNK_REC_SIZE: u64 = 16;
/// Per-chunk allocation bitmap size (one line: at most 512 units per chunk).
pub const BITMAP_SIZE: u64 = 64;
/// Maximum units per chunk.
pub const MAX_CHUNK_UNITS: u32 = 512;
/// Per-host journal size.
pub const JOURNAL_SIZE: u64 = 16 << 10;
/// Per-host creating-set slots (keys being created at once by one host).
pub const CREATING_SLOTS: u32 = 1024;
/// Maximum name length in bytes.
pub const NAME_MAX: usize = 255;
/// Extents per key.
pub const MAX_EXTENTS: usize = 8;
/// "No entry" link value.
pub const NIL: u32 = u32::MAX;
/// Directory id used in index slots for the directories themselves.
pub const ROOT_DIR: u32 = 0x3FFF;
/// Maximum number of directories (ids 0..MAX_DIRS).
pub const MAX_DIRS: u32 = 0x3FFF;
/// Minimum pool size accepted by mkfs for real devices.
pub const MIN_POOL: u64 = 256 << 20;
/// Maximum pool size.
pub const MAX_POOL: u64 = 16 << 40;
/// Minimum number of key entries.
pub const MIN_ENTRIES: u64 = 4096;
/// Maximum number of key entries.
pub const MAX_ENTRIES: u64 = 1 << 31;

/// Reads a little-endian u16 (0 when out of range).
pub fn rd16(b: &[u8], o: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(o..o.saturating_add(2)) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}
/// Reads a little-endian u32 (0 when out of range).
pub fn rd32(b: &[u8], o: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(o..o.saturating_add(4)) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}
/// Reads a little-endian u64 (0 when out of range).
pub fn rd64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(o..o.saturating_add(8)) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}
/// Writes a little-endian u16 (ignored when out of range).
pub fn wr16(b: &mut [u8], o: usize, v: u16) {
    if let Some(s) = b.get_mut(o..o.saturating_add(2)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}
/// Writes a little-endian u32 (ignored when out of range).
pub fn wr32(b: &mut [u8], o: usize, v: u32) {
    if let Some(s) = b.get_mut(o..o.saturating_add(4)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}
/// Writes a little-endian u64 (ignored when out of range).
pub fn wr64(b: &mut [u8], o: usize, v: u64) {
    if let Some(s) = b.get_mut(o..o.saturating_add(8)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}
fn copy_in(b: &mut [u8], o: usize, src: &[u8]) {
    if let Some(s) = b.get_mut(o..o.saturating_add(src.len())) {
        s.copy_from_slice(src);
    }
}
fn copy_out(b: &[u8], o: usize, dst: &mut [u8]) {
    if let Some(s) = b.get(o..o.saturating_add(dst.len())) {
        dst.copy_from_slice(s);
    }
}
/// CRC32C of `b` with the 4 bytes at `crc_off` treated as zero.
pub fn crc_with_hole(b: &[u8], crc_off: usize) -> u32 {
    let head = b.get(..crc_off).unwrap_or(&[]);
    let tail = b.get(crc_off.saturating_add(4)..).unwrap_or(&[]);
    let s = super::crc::update(super::crc::INIT, head);
    let s = super::crc::update(s, &[0u8; 4]);
    super::crc::finish(super::crc::update(s, tail))
}

/// Rounds `v` up to a multiple of `a` (a power of two); saturates.
pub const fn align_up(v: u64, a: u64) -> u64 {
    match v.checked_add(a - 1) {
        Some(x) => x & !(a - 1),
        None => !(a - 1),
    }
}

/// Pool geometry: sizes and offsets of every area (all derived at mkfs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Geometry {
    /// Pool size in bytes.
    pub total_size: u64,
    /// Host slots in use (1..=64).
    pub max_hosts: u32,
    /// Number of key entries.
    pub entry_count: u64,
    /// Index slots (power of two).
    pub index_slots: u64,
    /// Directory slots.
    pub dir_count: u32,
    /// Units per chunk (power of two, <= 512).
    pub chunk_units: u32,
    /// Number of chunks covering the data area.
    pub chunk_count: u32,
    /// Per-host hold bitmap bytes (multiple of 64).
    pub holds_bytes: u64,
    /// Host table offset.
    pub host_off: u64,
    /// Registry offset.
    pub reg_off: u64,
    /// Namespace header offset.
    pub nshdr_off: u64,
    /// Journals offset.
    pub journal_off: u64,
    /// Creating sets offset.
    pub creating_off: u64,
    /// Hold bitmaps offset.
    pub holds_off: u64,
    /// Directory table offset.
    pub dir_off: u64,
    /// Chunk table offset.
    pub chunk_off: u64,
    /// Chunk bitmaps offset.
    pub bitmap_off: u64,
    /// Index offset.
    pub index_off: u64,
    /// Entry table offset.
    pub entry_off: u64,
    /// End of metadata (unaligned).
    pub meta_end: u64,
    /// Data area offset (2 MiB aligned).
    pub data_off: u64,
    /// Number of data units.
    pub data_units: u64,
}

/// Inputs to [`Geometry::compute`].
#[derive(Clone, Copy, Debug)]
pub struct GeometryParams {
    /// Pool size in bytes.
    pub total_size: u64,
    /// Host slots (1..=64).
    pub max_hosts: u32,
    /// Key entries (0: one per `bytes_per_entry`).
    pub entries: u64,
    /// Bytes of pool per key entry when `entries` is 0.
    pub bytes_per_entry: u64,
    /// Directory slots.
    pub dirs: u32,
    /// Accept pools below [`MIN_POOL`] (tests and simulator).
    pub allow_small: bool,
}

impl Geometry {
    /// The chunk holding data unit `u` (no division by a zero `chunk_units`
    /// of a corrupt geometry: that would be a kernel panic).
    pub fn chunk_of(&self, u: u32) -> u32 {
        u.checked_div(self.chunk_units).unwrap_or(0)
    }

    /// The index of data unit `u` within its chunk.
    pub fn unit_in_chunk(&self, u: u32) -> u32 {
        u.checked_rem(self.chunk_units).unwrap_or(0)
    }

    /// Derives the geometry; `None` when the parameters are impossible.
    pub fn compute(p: &GeometryParams) -> Option<Geometry> {
        if p.max_hosts == 0 || p.max_hosts as usize > MAX_HOSTS {
            return None;
        }
        if p.dirs == 0 || p.dirs > MAX_DIRS || p.total_size > MAX_POOL {
            return None;
        }
        if !p.allow_small && p.total_size < MIN_POOL {
            return None;
        }
        let entries = if p.entries != 0 {
            p.entries
        } else {
            let bpe = if p.bytes_per_entry == 0 {
                65536
            } else {
                p.bytes_per_entry
            };
            p.total_size
                .checked_div(bpe)
                .unwrap_or(0)
                .max(if p.allow_small { 64 } else { MIN_ENTRIES })
        };
        if entries == 0 || entries > MAX_ENTRIES {
            return None;
        }
        let index_slots = entries
            .checked_mul(4)?
            .div_ceil(3)
            .checked_next_power_of_two()?;
        let total_units = p.total_size / UNIT;
        let mut chunk_units: u32 = 8;
        while chunk_units < MAX_CHUNK_UNITS && u64::from(chunk_units) * 2 * 16 <= total_units {
            chunk_units *= 2;
        }
        let chunk_max = total_units.div_ceil(u64::from(chunk_units.max(1)));
        let hosts = u64::from(p.max_hosts);
        let holds_bytes = align_up(entries.div_ceil(8), LINE);
        let mut off = AREAS_OFF;
        let mut take = |size: u64| -> Option<u64> {
            let at = off;
            off = align_up(off.checked_add(size)?, BLOCK);
            Some(at)
        };
        let host_off = take(hosts * HOST_SLOT_SIZE)?;
        let reg_off = take(hosts * REG_SIZE as u64)?;
        let nshdr_off = take(NSHDR_SIZE as u64)?;
        let journal_off = take(hosts * JOURNAL_SIZE)?;
        let creating_off = take(hosts * u64::from(CREATING_SLOTS) * 4)?;
        let holds_off = take(hosts.checked_mul(holds_bytes)?)?;
        let dir_off = take(u64::from(p.dirs) * DIR_SIZE as u64)?;
        let chunk_off = take(chunk_max * CHUNK_REC_SIZE)?;
        let bitmap_off = take(chunk_max * BITMAP_SIZE)?;
        let index_off = take(index_slots.checked_mul(8)?)?;
        let entry_off = take(entries.checked_mul(ENTRY_SIZE as u64)?)?;
        let meta_end = off;
        let data_off = align_up(meta_end, UNIT);
        if data_off >= p.total_size {
            return None;
        }
        let data_units = (p.total_size - data_off) / UNIT;
        if data_units < 2 {
            return None;
        }
        let chunk_count = data_units.div_ceil(u64::from(chunk_units.max(1)));
        Some(Geometry {
            total_size: p.total_size,
            max_hosts: p.max_hosts,
            entry_count: entries,
            index_slots,
            dir_count: p.dirs,
            chunk_units,
            chunk_count: u32::try_from(chunk_count).ok()?,
            holds_bytes,
            host_off,
            reg_off,
            nshdr_off,
            journal_off,
            creating_off,
            holds_off,
            dir_off,
            chunk_off,
            bitmap_off,
            index_off,
            entry_off,
            meta_end,
            data_off,
            data_units,
        })
    }

    /// Checks that the geometry is self-consistent and fits `media_size`.
    pub fn validate(&self, media_size: u64) -> bool {
        let p = GeometryParams {
            total_size: self.total_size,
            max_hosts: self.max_hosts,
            entries: self.entry_count,
            bytes_per_entry: 0,
            dirs: self.dir_count,
            allow_small: true,
        };
        match Geometry::compute(&p) {
            Some(g) => g == *self && self.total_size <= media_size,
            None => false,
        }
    }

    /// Offset of host `h`'s slot.
    pub fn host_slot(&self, h: u32) -> u64 {
        self.host_off + u64::from(h) * HOST_SLOT_SIZE
    }
    /// Offset of host `h`'s registry record.
    pub fn reg(&self, h: u32) -> u64 {
        self.reg_off + u64::from(h) * REG_SIZE as u64
    }
    /// Offset of host `h`'s journal.
    pub fn journal(&self, h: u32) -> u64 {
        self.journal_off + u64::from(h) * JOURNAL_SIZE
    }
    /// Offset of host `h`'s creating-set slot `i`.
    pub fn creating(&self, h: u32, i: u32) -> u64 {
        self.creating_off + (u64::from(h) * u64::from(CREATING_SLOTS) + u64::from(i)) * 4
    }
    /// Offset of host `h`'s hold bitmap.
    pub fn holds(&self, h: u32) -> u64 {
        self.holds_off + u64::from(h) * self.holds_bytes
    }
    /// Offset of directory record `d`.
    pub fn dir(&self, d: u32) -> u64 {
        self.dir_off + u64::from(d) * DIR_SIZE as u64
    }
    /// Offset of chunk table record `c`.
    pub fn chunk(&self, c: u32) -> u64 {
        self.chunk_off + u64::from(c) * CHUNK_REC_SIZE
    }
    /// Offset of chunk `c`'s bitmap line.
    pub fn bitmap(&self, c: u32) -> u64 {
        self.bitmap_off + u64::from(c) * BITMAP_SIZE
    }
    /// Offset of index slot `i`.
    pub fn slot(&self, i: u64) -> u64 {
        self.index_off + i * 8
    }
    /// Offset of entry `e`.
    pub fn entry(&self, e: u32) -> u64 {
        self.entry_off + u64::from(e) * ENTRY_SIZE as u64
    }
    /// Byte offset of data unit `u`.
    pub fn unit(&self, u: u64) -> u64 {
        self.data_off + u * UNIT
    }
    /// Number of valid units in chunk `c`.
    pub fn units_in_chunk(&self, c: u32) -> u32 {
        let start = u64::from(c) * u64::from(self.chunk_units);
        let left = self.data_units.saturating_sub(start);
        left.min(u64::from(self.chunk_units)) as u32
    }
}

/// Decoded superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Format version.
    pub version: u32,
    /// Compatible feature flags.
    pub compat: u64,
    /// Incompatible feature flags.
    pub incompat: u64,
    /// Read-only compatible feature flags.
    pub ro_compat: u64,
    /// File system UUID.
    pub uuid: [u8; 16],
    /// Label (NUL padded).
    pub label: [u8; 64],
    /// mkfs wall time in ns.
    pub mkfs_time: u64,
    /// Geometry.
    pub geo: Geometry,
}

const _: () = assert!(SB_SIZE == 512);
const _: () = assert!(AREAS_OFF > SB_BACKUP_OFF + SB_SIZE as u64);

impl Superblock {
    /// Encodes into `b` (with CRC at 508).
    pub fn encode(&self, b: &mut [u8; SB_SIZE]) {
        *b = [0; SB_SIZE];
        let g = &self.geo;
        copy_in(b, 0, &MAGIC);
        wr32(b, 8, self.version);
        wr32(b, 12, SB_SIZE as u32);
        wr64(b, 16, self.compat);
        wr64(b, 24, self.incompat);
        wr64(b, 32, self.ro_compat);
        copy_in(b, 40, &self.uuid);
        copy_in(b, 56, &self.label);
        wr64(b, 120, g.total_size);
        wr32(b, 128, UNIT as u32);
        wr32(b, 132, g.max_hosts);
        wr64(b, 136, g.entry_count);
        wr64(b, 144, g.index_slots);
        wr32(b, 152, g.dir_count);
        wr32(b, 156, g.chunk_units);
        wr32(b, 160, g.chunk_count);
        wr32(b, 164, JOURNAL_SIZE as u32);
        wr64(b, 168, g.host_off);
        wr64(b, 176, g.reg_off);
        wr64(b, 184, g.nshdr_off);
        wr64(b, 192, g.journal_off);
        wr64(b, 200, g.creating_off);
        wr64(b, 208, g.holds_off);
        wr64(b, 216, g.holds_bytes);
        wr64(b, 224, g.dir_off);
        wr64(b, 232, g.chunk_off);
        wr64(b, 240, g.bitmap_off);
        wr64(b, 248, g.index_off);
        wr64(b, 256, g.entry_off);
        wr64(b, 264, g.meta_end);
        wr64(b, 272, g.data_off);
        wr64(b, 280, g.data_units);
        wr64(b, 288, self.mkfs_time);
        wr32(b, 296, CREATING_SLOTS);
        wr32(b, 300, ENTRY_SIZE as u32);
        let c = crc_with_hole(b, 508);
        wr32(b, 508, c);
    }

    /// True when `b` starts with the marufs magic.
    pub fn has_magic(b: &[u8]) -> bool {
        b.get(0..8) == Some(&MAGIC[..])
    }

    /// True when the CRC matches.
    pub fn crc_ok(b: &[u8; SB_SIZE]) -> bool {
        crc_with_hole(b, 508) == rd32(b, 508)
    }

    /// Decodes (no validation beyond field extraction).
    pub fn decode(b: &[u8; SB_SIZE]) -> Superblock {
        let mut uuid = [0u8; 16];
        copy_out(b, 40, &mut uuid);
        let mut label = [0u8; 64];
        copy_out(b, 56, &mut label);
        Superblock {
            version: rd32(b, 8),
            compat: rd64(b, 16),
            incompat: rd64(b, 24),
            ro_compat: rd64(b, 32),
            uuid,
            label,
            mkfs_time: rd64(b, 288),
            geo: Geometry {
                total_size: rd64(b, 120),
                max_hosts: rd32(b, 132),
                entry_count: rd64(b, 136),
                index_slots: rd64(b, 144),
                dir_count: rd32(b, 152),
                chunk_units: rd32(b, 156),
                chunk_count: rd32(b, 160),
                host_off: rd64(b, 168),
                reg_off: rd64(b, 176),
                nshdr_off: rd64(b, 184),
                journal_off: rd64(b, 192),
                creating_off: rd64(b, 200),
                holds_off: rd64(b, 208),
                holds_bytes: rd64(b, 216),
                dir_off: rd64(b, 224),
                chunk_off: rd64(b, 232),
                bitmap_off: rd64(b, 240),
                index_off: rd64(b, 248),
                entry_off: rd64(b, 256),
                meta_end: rd64(b, 264),
                data_off: rd64(b, 272),
                data_units: rd64(b, 280),
            },
        }
    }
}

/// Host slot state (written only by the host itself).
pub mod host_state {
    /// Never used.
    pub const FREE: u32 = 0;
    /// Joined (mounted).
    pub const ACTIVE: u32 = 1;
    /// Left cleanly.
    pub const LEFT: u32 = 2;
}

/// Line 0 of a host slot: identity (written at join/leave only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HostIdent {
    /// One of [`host_state`].
    pub state: u32,
    /// Node id (equals the slot index).
    pub node: u32,
    /// Epoch, bumped on every join.
    pub epoch: u64,
    /// Lease duration in ns.
    pub lease_ns: u64,
    /// Wall time of the join.
    pub join_time: u64,
}

impl HostIdent {
    /// Encodes into one line with CRC at 60.
    pub fn encode(&self, b: &mut [u8; 64]) {
        *b = [0; 64];
        wr32(b, 0, self.state);
        wr32(b, 4, self.node);
        wr64(b, 8, self.epoch);
        wr64(b, 16, self.lease_ns);
        wr64(b, 24, self.join_time);
        let c = crc_with_hole(b, 60);
        wr32(b, 60, c);
    }
    /// Decodes; `None` on CRC mismatch (an all-zero line decodes as FREE).
    pub fn decode(b: &[u8; 64]) -> Option<HostIdent> {
        if b.iter().all(|&x| x == 0) {
            return Some(HostIdent::default());
        }
        if crc_with_hole(b, 60) != rd32(b, 60) {
            return None;
        }
        Some(HostIdent {
            state: rd32(b, 0),
            node: rd32(b, 4),
            epoch: rd64(b, 8),
            lease_ns: rd64(b, 16),
            join_time: rd64(b, 24),
        })
    }
}

/// Offsets of the 8-byte words in line 1 of a host slot.
pub mod host_word {
    /// Heartbeat counter.
    pub const HEARTBEAT: u64 = 64;
    /// Heartbeat monotonic timestamp (informational).
    pub const HB_TIME: u64 = 72;
    /// Bakery "choosing" flag.
    pub const CHOOSING: u64 = 80;
    /// Bakery ticket (0: not competing).
    pub const TICKET: u64 = 88;
}

/// Registry record of a host (one line, written only under the namespace lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RegRec {
    /// Epochs `<=` this are fenced.
    pub fenced_epoch: u64,
    /// Highest fenced epoch whose recovery completed.
    pub recovered_epoch: u64,
    /// Highest journal sequence of this host applied by someone else.
    pub replayed_seq: u64,
    /// Head of this host's orphan queue (entry index or NIL).
    pub orphan_head: u32,
    /// Number of queued orphans.
    pub orphan_count: u32,
    /// Chunks owned by this host.
    pub chunks_owned: u32,
    /// Highest epoch of this node that completed the locked part of its
    /// join: the epoch floor when the identity line is torn (0 on pools
    /// from before this field; compatible, as zero was its value).
    pub joined_epoch: u64,
}

impl RegRec {
    /// Encodes.
    pub fn encode(&self, b: &mut [u8; REG_SIZE]) {
        *b = [0; REG_SIZE];
        wr64(b, 0, self.fenced_epoch);
        wr64(b, 8, self.recovered_epoch);
        wr64(b, 16, self.replayed_seq);
        wr32(b, 24, self.orphan_head ^ NIL);
        wr32(b, 28, self.orphan_count);
        wr32(b, 32, self.chunks_owned);
        wr64(b, 40, self.joined_epoch);
    }
    /// Decodes (the head is stored xor NIL so that zeroed media means "empty").
    pub fn decode(b: &[u8; REG_SIZE]) -> RegRec {
        RegRec {
            fenced_epoch: rd64(b, 0),
            recovered_epoch: rd64(b, 8),
            replayed_seq: rd64(b, 16),
            orphan_head: rd32(b, 24) ^ NIL,
            orphan_count: rd32(b, 28),
            chunks_owned: rd32(b, 32),
            joined_epoch: rd64(b, 40),
        }
    }
}

/// Namespace header (one line, lock protected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NsHdr {
    /// Entries below this index have been used at least once.
    pub hwm: u32,
    /// Head of the free entry list (NIL: empty).
    pub free_head: u32,
    /// Entries on the free list.
    pub free_count: u32,
    /// Directories in use.
    pub dirs_used: u32,
    /// Generation counter for new entries and directories.
    pub next_gen: u64,
    /// Hosts fenced whose recovery is not complete (bit per host).
    pub pending_recovery: u64,
    /// Next chunk to try when acquiring one.
    pub chunk_hint: u32,
}

impl NsHdr {
    /// Encodes.
    pub fn encode(&self, b: &mut [u8; NSHDR_SIZE]) {
        *b = [0; NSHDR_SIZE];
        wr32(b, 0, self.hwm);
        wr32(b, 4, self.free_head ^ NIL);
        wr32(b, 8, self.free_count);
        wr32(b, 12, self.dirs_used);
        wr64(b, 16, self.next_gen);
        wr64(b, 24, self.pending_recovery);
        wr32(b, 32, self.chunk_hint);
    }
    /// Decodes.
    pub fn decode(b: &[u8; NSHDR_SIZE]) -> NsHdr {
        NsHdr {
            hwm: rd32(b, 0),
            free_head: rd32(b, 4) ^ NIL,
            free_count: rd32(b, 8),
            dirs_used: rd32(b, 12),
            next_gen: rd64(b, 16),
            pending_recovery: rd64(b, 24),
            chunk_hint: rd32(b, 32),
        }
    }
}

/// A validated name (1..=255 bytes, no `/` or NUL, not `.` or `..`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Name {
    /// Bytes (only the first `len` are meaningful; the rest are zero).
    pub bytes: [u8; NAME_MAX],
    /// Length.
    pub len: u8,
}

impl Default for Name {
    fn default() -> Self {
        Name {
            bytes: [0; NAME_MAX],
            len: 0,
        }
    }
}

impl Name {
    /// Validates and copies a name.
    pub fn new(s: &[u8]) -> Result<Name, super::error::Error> {
        if s.is_empty() || s == b"." || s == b".." || s.iter().any(|&c| c == 0 || c == b'/') {
            return Err(super::error::Error::InvalidName);
        }
        if s.len() > NAME_MAX {
            return Err(super::error::Error::NameTooLong);
        }
        let mut n = Name::default();
        copy_in(&mut n.bytes, 0, s);
        n.len = s.len() as u8;
        Ok(n)
    }
    /// The name bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
    /// The placeholder name of a key created without a name (`O_TMPFILE`)
    /// until [`publish_as`](super::fs::Fs::publish_as) names it: a NUL byte,
    /// `tmp` and `tag` in hex. No user name can equal it ([`Name::new`]
    /// refuses NUL), so it can neither be looked up nor squatted.
    pub fn temporary(tag: u64) -> Name {
        let mut n = Name::default();
        copy_in(&mut n.bytes, 0, b"\0tmp");
        for i in 0..16 {
            let nib = ((tag >> (60 - 4 * i)) & 0xf) as u8;
            if let Some(b) = n.bytes.get_mut(4 + i) {
                *b = if nib < 10 {
                    b'0' + nib
                } else {
                    b'a' + nib - 10
                };
            }
        }
        n.len = 20;
        n
    }
    /// Whether this is a [`Name::temporary`] placeholder.
    pub fn is_temporary(&self) -> bool {
        self.len > 0 && self.bytes[0] == 0
    }
}

/// Directory record state.
pub mod dir_state {
    /// Free slot.
    pub const FREE: u32 = 0;
    /// In use.
    pub const USED: u32 = 1;
}

/// Directory (application namespace) record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DirRec {
    /// One of [`dir_state`].
    pub state: u32,
    /// Generation (changes when the slot is reused).
    pub generation: u64,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Mode bits (permission bits; type is implied).
    pub mode: u32,
    /// Change time (ns).
    pub ctime: u64,
    /// Modification time (ns).
    pub mtime: u64,
    /// Keys in the directory (creating + published).
    pub key_count: u64,
    /// Sum of the sizes of published keys.
    pub bytes: u64,
    /// Name.
    pub name: Name,
    /// Change counter: bumped by every transaction that changes the
    /// directory or what a lookup in it returns (see
    /// [`INCOMPAT_DIR_CHANGES`]); never goes back, not even across
    /// rmdir/mkdir of the slot. Stored at [`DIR_CHANGES_OFF`] with a check word.
    pub changes: u64,
}

/// Offset of the change counter in a directory record: the counter, then
/// `counter ^ DIR_CHANGES_CHECK`, in one line so that one invalidate + one
/// 16-byte load reads it ([`dir_changes_decode`]).
pub const DIR_CHANGES_OFF: u64 = 320;
/// Check pattern of the change counter ("MARUCHGS"): an all-zero record or a
/// torn or damaged pair never validates.
pub const DIR_CHANGES_CHECK: u64 = 0x5347_4843_5552_414d;

/// Decodes the 16 bytes at [`DIR_CHANGES_OFF`]: the counter when its check
/// word matches.
pub fn dir_changes_decode(b: &[u8; 16]) -> Option<u64> {
    let c = rd64(b, 0);
    (rd64(b, 8) == c ^ DIR_CHANGES_CHECK).then_some(c)
}

impl DirRec {
    /// Encodes with CRC at 508.
    pub fn encode(&self, b: &mut [u8; DIR_SIZE]) {
        *b = [0; DIR_SIZE];
        wr32(b, 0, self.state);
        wr16(b, 4, u16::from(self.name.len));
        wr64(b, 8, self.generation);
        wr32(b, 16, self.uid);
        wr32(b, 20, self.gid);
        wr32(b, 24, self.mode);
        wr64(b, 32, self.ctime);
        wr64(b, 40, self.mtime);
        wr64(b, 48, self.key_count);
        wr64(b, 56, self.bytes);
        copy_in(b, 64, &self.name.bytes);
        wr64(b, DIR_CHANGES_OFF as usize, self.changes);
        wr64(
            b,
            DIR_CHANGES_OFF as usize + 8,
            self.changes ^ DIR_CHANGES_CHECK,
        );
        let c = crc_with_hole(b, 508);
        wr32(b, 508, c);
    }
    /// Decodes; `None` on CRC mismatch or bad field (all-zero decodes as free).
    pub fn decode(b: &[u8; DIR_SIZE]) -> Option<DirRec> {
        let mut d = DirRec::default();
        if d.decode_from(b) {
            Some(d)
        } else {
            None
        }
    }
    /// Decodes into `self` without temporaries; false on CRC mismatch or bad field.
    pub fn decode_from(&mut self, b: &[u8; DIR_SIZE]) -> bool {
        if rd32(b, 508) == 0 && b.iter().all(|&x| x == 0) {
            *self = DirRec::default();
            return true;
        }
        if crc_with_hole(b, 508) != rd32(b, 508) {
            return false;
        }
        let len = rd16(b, 4);
        let state = rd32(b, 0);
        if usize::from(len) > NAME_MAX || state > dir_state::USED {
            return false;
        }
        self.state = state;
        self.generation = rd64(b, 8);
        self.uid = rd32(b, 16);
        self.gid = rd32(b, 20);
        self.mode = rd32(b, 24);
        self.ctime = rd64(b, 32);
        self.mtime = rd64(b, 40);
        self.key_count = rd64(b, 48);
        self.bytes = rd64(b, 56);
        self.name.len = len as u8;
        copy_out(b, 64, &mut self.name.bytes);
        // A pool formatted without the feature has zeros here: counter 0.
        self.changes = rd64(b, DIR_CHANGES_OFF as usize);
        true
    }
}

/// Key entry state.
pub mod entry_state {
    /// Free (on the free list).
    pub const FREE: u32 = 0;
    /// Being created: name reserved, invisible to lookups.
    pub const CREATING: u32 = 1;
    /// Published: visible and immutable.
    pub const PUBLISHED: u32 = 2;
    /// Unlinked, queued as an orphan until no host holds it.
    pub const UNLINKED: u32 = 3;
}

/// Entry flag: `data_crc` is valid.
pub const EF_DATA_CRC: u32 = 1;

/// One extent: `count` units starting at data unit `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Extent {
    /// First unit.
    pub start: u32,
    /// Unit count.
    pub count: u32,
}

/// Key entry record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EntryRec {
    /// One of [`entry_state`].
    pub state: u32,
    /// Flags (`EF_*`).
    pub flags: u32,
    /// Generation (unique per use of the slot).
    pub generation: u64,
    /// Directory id.
    pub dir: u32,
    /// Size in bytes.
    pub size: u64,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Mode bits.
    pub mode: u32,
    /// Link: free list or orphan queue (NIL: end).
    pub next: u32,
    /// Change time (ns).
    pub ctime: u64,
    /// Modification time (ns).
    pub mtime: u64,
    /// Creation time (ns).
    pub crtime: u64,
    /// Creating host.
    pub creator: u32,
    /// Creating host's slot in its creating set.
    pub cslot: u32,
    /// Creating host's epoch.
    pub creator_epoch: u64,
    /// Data CRC32C (valid with [`EF_DATA_CRC`]).
    pub data_crc: u32,
    /// Extents in use.
    pub nextents: u32,
    /// Extents.
    pub extents: [Extent; MAX_EXTENTS],
    /// Name.
    pub name: Name,
}

const _: () = assert!(96 + MAX_EXTENTS * 8 == 160);
const _: () = assert!(160 + NAME_MAX <= 508);

impl EntryRec {
    /// Encodes with CRC at 508.
    pub fn encode(&self, b: &mut [u8; ENTRY_SIZE]) {
        *b = [0; ENTRY_SIZE];
        wr32(b, 0, self.state);
        wr32(b, 4, self.flags);
        wr64(b, 8, self.generation);
        wr32(b, 16, self.dir);
        wr16(b, 20, u16::from(self.name.len));
        wr64(b, 24, self.size);
        wr32(b, 32, self.uid);
        wr32(b, 36, self.gid);
        wr32(b, 40, self.mode);
        wr32(b, 44, self.next ^ NIL);
        wr64(b, 48, self.ctime);
        wr64(b, 56, self.mtime);
        wr64(b, 64, self.crtime);
        wr32(b, 72, self.creator);
        wr32(b, 76, self.cslot);
        wr64(b, 80, self.creator_epoch);
        wr32(b, 88, self.data_crc);
        wr32(b, 92, self.nextents);
        for (i, e) in self.extents.iter().enumerate() {
            wr32(b, 96 + i * 8, e.start);
            wr32(b, 100 + i * 8, e.count);
        }
        copy_in(b, 160, &self.name.bytes);
        let c = crc_with_hole(b, 508);
        wr32(b, 508, c);
    }
    /// Decodes; `None` on CRC mismatch or out-of-range fields.
    pub fn decode(b: &[u8; ENTRY_SIZE]) -> Option<EntryRec> {
        let mut e = EntryRec::default();
        if e.decode_from(b) {
            Some(e)
        } else {
            None
        }
    }
    /// Decodes into `self` without temporaries; false (and `self` unspecified) on
    /// CRC mismatch or out-of-range fields.
    pub fn decode_from(&mut self, b: &[u8; ENTRY_SIZE]) -> bool {
        if crc_with_hole(b, 508) != rd32(b, 508) {
            return false;
        }
        let len = rd16(b, 20);
        let state = rd32(b, 0);
        let nextents = rd32(b, 92);
        if usize::from(len) > NAME_MAX
            || state > entry_state::UNLINKED
            || nextents as usize > MAX_EXTENTS
        {
            return false;
        }
        self.state = state;
        self.flags = rd32(b, 4);
        self.generation = rd64(b, 8);
        self.dir = rd32(b, 16);
        self.size = rd64(b, 24);
        self.uid = rd32(b, 32);
        self.gid = rd32(b, 36);
        self.mode = rd32(b, 40);
        self.next = rd32(b, 44) ^ NIL;
        self.ctime = rd64(b, 48);
        self.mtime = rd64(b, 56);
        self.crtime = rd64(b, 64);
        self.creator = rd32(b, 72);
        self.cslot = rd32(b, 76);
        self.creator_epoch = rd64(b, 80);
        self.data_crc = rd32(b, 88);
        self.nextents = nextents;
        for (i, x) in self.extents.iter_mut().enumerate() {
            x.start = rd32(b, 96 + i * 8);
            x.count = rd32(b, 100 + i * 8);
        }
        self.name.len = len as u8;
        copy_out(b, 160, &mut self.name.bytes);
        true
    }
    /// Units held by the extents in use (saturating).
    pub fn units(&self) -> u64 {
        self.extents
            .iter()
            .take(self.nextents as usize)
            .fold(0u64, |a, e| a.saturating_add(u64::from(e.count)))
    }
    /// The extents in use.
    pub fn used_extents(&self) -> &[Extent] {
        self.extents.get(..self.nextents as usize).unwrap_or(&[])
    }
    /// Whether the extents may be trusted with `g`: each is non-empty, lies
    /// inside the data area and inside one chunk, and the size fits in the
    /// units they hold (unless the record is free). A record whose checksum
    /// matches can still fail this (a
    /// bug, a torn write the CRC did not catch, a hostile peer); nothing may
    /// be mapped, read, freed or zeroed through its extents then.
    pub fn extents_valid(&self, g: &Geometry) -> bool {
        if self.nextents as usize > self.extents.len() {
            return false;
        }
        // A freed record keeps its last size (and no extents): nothing is
        // ever located through it.
        if self.state != entry_state::FREE && self.size > self.units().saturating_mul(UNIT) {
            return false;
        }
        self.used_extents().iter().all(|x| {
            let end = u64::from(x.start) + u64::from(x.count);
            x.count > 0
                && end <= g.data_units
                && g.chunk_of(x.start) == g.chunk_of((end - 1) as u32)
        })
    }
    /// Where byte `pos` of the key lies: its pool offset and how many bytes
    /// from there are the key's, contiguously (to the end of the extent or of
    /// the key). `None` at or past the end, or when the extents are not
    /// [valid](EntryRec::extents_valid) for `g`: every offset returned lies in
    /// the data area, inside one of the key's own units.
    pub fn locate(&self, g: &Geometry, pos: u64) -> Option<Located> {
        if pos >= self.size || self.state == entry_state::FREE || !self.extents_valid(g) {
            return None;
        }
        let mut file_off = 0u64;
        for x in self.used_extents() {
            let len = u64::from(x.count) * UNIT;
            if pos < file_off + len {
                let within = pos - file_off;
                let end = core::cmp::min(file_off + len, self.size);
                return Some(Located {
                    off: g.unit(u64::from(x.start)) + within,
                    len: end - pos,
                });
            }
            file_off += len;
        }
        None
    }
}

/// A position of a key in the pool (see [`EntryRec::locate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    /// Pool offset of the byte.
    pub off: u64,
    /// Bytes of the key from there on, contiguous in the pool (> 0).
    pub len: u64,
}

/// Index slot states (top two bits).
pub mod slot_state {
    /// Never used: ends a probe sequence.
    pub const EMPTY: u64 = 0;
    /// Refers to an entry (or a directory when the dir field is ROOT_DIR).
    pub const USED: u64 = 1;
    /// Deleted: probing continues.
    pub const TOMB: u64 = 2;
}

/// Encodes an index slot word.
pub const fn slot_pack(state: u64, dir: u32, tag: u16, target: u32) -> u64 {
    (state << 62) | (((dir & 0x3FFF) as u64) << 48) | ((tag as u64) << 32) | target as u64
}
/// Decodes an index slot word into (state, dir, tag, target).
pub const fn slot_unpack(w: u64) -> (u64, u32, u16, u32) {
    (
        w >> 62,
        ((w >> 48) & 0x3FFF) as u32,
        ((w >> 32) & 0xFFFF) as u16,
        w as u32,
    )
}

/// Chunk table record (lock protected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChunkRec {
    /// Owner node + 1 (0: free).
    pub owner: u32,
    /// Owner's epoch when it got (or re-stamped) the chunk.
    pub epoch: u64,
}

impl ChunkRec {
    /// Encodes.
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        wr32(&mut b, 0, self.owner);
        wr64(&mut b, 8, self.epoch);
        b
    }
    /// Decodes.
    pub fn decode(b: &[u8; 16]) -> ChunkRec {
        ChunkRec {
            owner: rd32(b, 0),
            epoch: rd64(b, 8),
        }
    }
}

/// Hash of (directory, name) for the index.
pub fn name_hash(dir: u32, name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in dir.to_le_bytes().iter().chain(name.iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Index tag of a hash.
pub const fn hash_tag(h: u64) -> u16 {
    (h >> 40) as u16
}

/// Checks a CRC over a full record (used by fsck).
pub fn record_crc_ok(b: &[u8]) -> bool {
    let n = b.len();
    n >= 4 && crc_with_hole(b, n - 4) == rd32(b, n - 4)
}

/// CRC32C of a byte slice (re-export for callers of the layout module).
pub fn checksum(b: &[u8]) -> u32 {
    crc32c(b)
}
