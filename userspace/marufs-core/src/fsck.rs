//! Offline check and repair of a pool (used by `maru-fsck` and the simulator's
//! checker). The caller provides scratch memory ([`scratch_len`]), so the module
//! needs no allocator. Repair rebuilds all derived state (index, free list,
//! allocation bitmaps, chunk ownership, counters) from the published entries and
//! directories that pass validation, and resets every host to "left".

use super::error::{Error, Result};
use super::fs::mount_check;
use super::journal;
use super::layout::{
    dir_state, entry_state, hash_tag, host_state, name_hash, slot_pack, slot_state, slot_unpack,
    ChunkRec, DirRec, EntryRec, Geometry, HostIdent, Name, NsHdr, RegRec, Superblock,
    CREATING_SLOTS, DIR_SIZE, ENTRY_SIZE, NIL, NSHDR_SIZE, REG_SIZE, ROOT_DIR, SB_BACKUP_OFF,
    SB_SIZE,
};
use super::media::Media;

/// fsck options.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Repair (rebuild) when problems are found.
    pub repair: bool,
    /// Online check (simulator): active hosts and their holds are legitimate.
    pub online: bool,
}

/// Kinds of problems.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Primary superblock bad, backup used.
    PrimarySuperblock,
    /// Backup superblock bad.
    BackupSuperblock,
    /// Host slot identity checksum bad (a = host).
    HostSlotCorrupt,
    /// Host slot still active: a dead host's leftover (a = host).
    HostActive,
    /// Lock words set on a host that is not active (a = host).
    LockWords,
    /// Holds left by a host that is not active (a = host).
    HoldsLeft,
    /// Creating-set slots left by a host that is not active (a = host).
    CreatingSetLeft,
    /// Unapplied journal record (a = host, b = seq).
    JournalPending,
    /// Fenced host not fully recovered (a = bitmask).
    PendingRecovery,
    /// Namespace header inconsistent.
    NsHdr,
    /// Free list broken (a = entry).
    FreeList,
    /// Free-list count mismatch (a = counted, b = recorded).
    FreeCount,
    /// Orphan queue broken (a = host, b = entry).
    OrphanList,
    /// Orphan count mismatch (a = host).
    OrphanCount,
    /// Entry checksum or fields bad: torn or corrupt (a = entry).
    EntryCorrupt,
    /// Free entry not on the free list (a = entry).
    FreeNotListed,
    /// Unlinked entry on no orphan queue (a = entry).
    OrphanNotListed,
    /// Creating entry left by a dead host (a = entry, b = host).
    Creating,
    /// Entry refers to a missing directory (a = entry, b = dir).
    BadDir,
    /// Extent outside the data area or across chunks (a = entry).
    BadExtent,
    /// Size larger than the allocated units (a = entry).
    SizeMismatch,
    /// Unit referenced twice (a = unit, b = entry).
    DoubleAlloc,
    /// Index slot invalid (a = slot).
    IndexBad,
    /// Entry referenced by two index slots (a = slot, b = entry).
    IndexDup,
    /// Live entry not in the index (a = entry).
    IndexMissing,
    /// Directory not in the index (a = dir).
    DirIndexMissing,
    /// Directory record corrupt (a = dir).
    DirCorrupt,
    /// Directory counters wrong (a = dir).
    DirCount,
    /// Directories-in-use count wrong.
    DirsUsed,
    /// Chunk owner invalid (a = chunk).
    ChunkOwner,
    /// Unit allocated but referenced by no entry: leaked (a = unit).
    Leak,
    /// Unit referenced but not allocated (a = unit).
    Unallocated,
    /// Chunks-owned count wrong (a = host).
    ChunkCount,
}

/// One problem found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Kind.
    pub kind: Kind,
    /// First detail (see [`Kind`]).
    pub a: u64,
    /// Second detail.
    pub b: u64,
}

impl Kind {
    /// A stable identifier for scripts (`--json`): the variant's name.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::PrimarySuperblock => "PrimarySuperblock",
            Kind::BackupSuperblock => "BackupSuperblock",
            Kind::HostSlotCorrupt => "HostSlotCorrupt",
            Kind::HostActive => "HostActive",
            Kind::LockWords => "LockWords",
            Kind::HoldsLeft => "HoldsLeft",
            Kind::CreatingSetLeft => "CreatingSetLeft",
            Kind::JournalPending => "JournalPending",
            Kind::PendingRecovery => "PendingRecovery",
            Kind::NsHdr => "NsHdr",
            Kind::FreeList => "FreeList",
            Kind::FreeCount => "FreeCount",
            Kind::OrphanList => "OrphanList",
            Kind::OrphanCount => "OrphanCount",
            Kind::EntryCorrupt => "EntryCorrupt",
            Kind::FreeNotListed => "FreeNotListed",
            Kind::OrphanNotListed => "OrphanNotListed",
            Kind::Creating => "Creating",
            Kind::BadDir => "BadDir",
            Kind::BadExtent => "BadExtent",
            Kind::SizeMismatch => "SizeMismatch",
            Kind::DoubleAlloc => "DoubleAlloc",
            Kind::IndexBad => "IndexBad",
            Kind::IndexDup => "IndexDup",
            Kind::IndexMissing => "IndexMissing",
            Kind::DirIndexMissing => "DirIndexMissing",
            Kind::DirCorrupt => "DirCorrupt",
            Kind::DirCount => "DirCount",
            Kind::DirsUsed => "DirsUsed",
            Kind::ChunkOwner => "ChunkOwner",
            Kind::Leak => "Leak",
            Kind::Unallocated => "Unallocated",
            Kind::ChunkCount => "ChunkCount",
        }
    }
}

/// A sentence naming the problem and the slot, entry, unit or host it concerns.
impl core::fmt::Display for Finding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (a, b) = (self.a, self.b);
        match self.kind {
            Kind::PrimarySuperblock => f.write_str("primary superblock bad; the backup was used"),
            Kind::BackupSuperblock => f.write_str("backup superblock bad"),
            Kind::HostSlotCorrupt => write!(f, "host slot {a}: identity checksum bad"),
            Kind::HostActive => write!(
                f,
                "host slot {a}: still marked active (a dead host's leftover)"
            ),
            Kind::LockWords => write!(
                f,
                "host slot {a}: lock words set on a host that is not active"
            ),
            Kind::HoldsLeft => write!(f, "host slot {a}: holds left by a host that is not active"),
            Kind::CreatingSetLeft => write!(
                f,
                "host slot {a}: creating-set slots left by a host that is not active"
            ),
            Kind::JournalPending => write!(f, "host slot {a}: journal record {b} not applied"),
            Kind::PendingRecovery => write!(f, "fenced hosts not fully recovered (mask {a:#x})"),
            Kind::NsHdr => f.write_str("namespace header inconsistent"),
            Kind::FreeList => write!(f, "free list broken at entry {a}"),
            Kind::FreeCount => write!(f, "free list holds {a} entries, the header records {b}"),
            Kind::OrphanList => write!(f, "host slot {a}: orphan queue broken at entry {b}"),
            Kind::OrphanCount => write!(f, "host slot {a}: orphan count wrong"),
            Kind::EntryCorrupt => write!(f, "entry {a}: checksum or fields bad (torn or corrupt)"),
            Kind::FreeNotListed => write!(f, "entry {a}: free but not on the free list"),
            Kind::OrphanNotListed => write!(f, "entry {a}: unlinked but on no orphan queue"),
            Kind::Creating => write!(
                f,
                "entry {a}: being created by host slot {b}, which is not active"
            ),
            Kind::BadDir => write!(
                f,
                "entry {a}: refers to directory {b}, which does not exist"
            ),
            Kind::BadExtent => write!(
                f,
                "entry {a}: an extent lies outside the data area or across chunks"
            ),
            Kind::SizeMismatch => write!(f, "entry {a}: size larger than its allocated units"),
            Kind::DoubleAlloc => write!(f, "unit {a}: referenced twice (again by entry {b})"),
            Kind::IndexBad => write!(f, "index slot {a}: invalid"),
            Kind::IndexDup => write!(
                f,
                "index slot {a}: refers to entry {b}, which another slot refers to"
            ),
            Kind::IndexMissing => write!(f, "entry {a}: live but not in the index"),
            Kind::DirIndexMissing => write!(f, "directory {a}: not in the index"),
            Kind::DirCorrupt => write!(f, "directory {a}: record corrupt"),
            Kind::DirCount => write!(f, "directory {a}: counters wrong"),
            Kind::DirsUsed => f.write_str("count of directories in use wrong"),
            Kind::ChunkOwner => write!(f, "chunk {a}: owner invalid"),
            Kind::Leak => write!(f, "unit {a}: allocated but referenced by no key (leaked)"),
            Kind::Unallocated => write!(f, "unit {a}: referenced but not allocated"),
            Kind::ChunkCount => write!(f, "host slot {a}: count of chunks owned wrong"),
        }
    }
}

/// Totals of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Problems found.
    pub problems: u64,
    /// True when a repair was written.
    pub repaired: bool,
    /// Published keys.
    pub keys: u64,
    /// Directories in use.
    pub dirs: u64,
    /// Units referenced by entries.
    pub used_units: u64,
    /// Data units.
    pub total_units: u64,
}

struct Bits<'a> {
    b: &'a mut [u8],
}
impl Bits<'_> {
    fn get(&self, i: u64) -> bool {
        self.b
            .get((i / 8) as usize)
            .is_some_and(|x| x & (1 << (i % 8)) != 0)
    }
    fn set(&mut self, i: u64, v: bool) {
        if let Some(x) = self.b.get_mut((i / 8) as usize) {
            if v {
                *x |= 1 << (i % 8)
            } else {
                *x &= !(1 << (i % 8))
            }
        }
    }
}

fn bytes_for(bits: u64) -> usize {
    bits.div_ceil(8) as usize
}

/// Scratch bytes [`run`] needs for `g`.
pub fn scratch_len(g: &Geometry) -> usize {
    bytes_for(g.data_units)
        + 4 * bytes_for(g.entry_count)
        + g.dir_count as usize * 24
        + g.entry_count as usize * 12
}

struct Scratch<'a> {
    units: Bits<'a>,
    eref: Bits<'a>,
    elist: Bits<'a>,
    keep: Bits<'a>,
    live: Bits<'a>,
    dirs: &'a mut [u8],
    /// Per entry: name hash u64, directory u32.
    ehash: &'a mut [u8],
}

fn split<'a>(s: &'a mut [u8], g: &Geometry) -> Result<Scratch<'a>> {
    if s.len() < scratch_len(g) {
        return Err(Error::InvalidArgument);
    }
    s.iter_mut().for_each(|x| *x = 0);
    let (u, r) = s.split_at_mut(bytes_for(g.data_units));
    let (a, r) = r.split_at_mut(bytes_for(g.entry_count));
    let (b, r) = r.split_at_mut(bytes_for(g.entry_count));
    let (c, r) = r.split_at_mut(bytes_for(g.entry_count));
    let (l, r) = r.split_at_mut(bytes_for(g.entry_count));
    let (d, h) = r.split_at_mut(g.dir_count as usize * 24);
    Ok(Scratch {
        units: Bits { b: u },
        eref: Bits { b: a },
        elist: Bits { b },
        keep: Bits { b: c },
        live: Bits { b: l },
        dirs: d,
        ehash: h,
    })
}

// dir stats: keys u64, bytes u64, refs u64
fn dstat(d: &[u8], i: u32, f: usize) -> u64 {
    super::layout::rd64(d, i as usize * 24 + f * 8)
}
fn dstat_add(d: &mut [u8], i: u32, f: usize, v: u64) {
    let o = i as usize * 24 + f * 8;
    let x = super::layout::rd64(d, o).wrapping_add(v);
    super::layout::wr64(d, o, x);
}

fn ld<M: Media, const N: usize>(m: &M, off: u64) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    m.invalidate(off, N as u64)?;
    m.load(off, &mut b)?;
    Ok(b)
}
fn st<M: Media>(m: &M, off: u64, b: &[u8]) -> Result<()> {
    m.store(off, b)?;
    m.flush(off, b.len() as u64)?;
    Ok(())
}

/// True when every slot from the probe start of `h` up to `i` is non-empty.
fn reachable<M: Media>(m: &M, g: &Geometry, h: u64, i: u64) -> Result<bool> {
    let mask = g.index_slots - 1;
    let mut p = h & mask;
    let mut n = 0u64;
    while p != i {
        let (s, _, _, _) = slot_unpack(u64::from_le_bytes(ld::<M, 8>(m, g.slot(p))?));
        if s == slot_state::EMPTY {
            return Ok(false);
        }
        p = (p + 1) & mask;
        n += 1;
        if n > g.index_slots {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks (and with `repair`, rebuilds) the pool. Each problem is passed to
/// `report`. Errors: superblock unusable (`NotFormatted`, `Corrupt`...), media.
pub fn run<M: Media>(
    m: &M,
    o: &Options,
    scratch: &mut [u8],
    report: &mut dyn FnMut(&Finding),
) -> Result<Summary> {
    let info = mount_check(m)?;
    let g = info.sb.geo;
    let mut sum = Summary {
        total_units: g.data_units,
        ..Summary::default()
    };
    let mut problem = |k: Kind, a: u64, b: u64, sum: &mut Summary| {
        sum.problems += 1;
        report(&Finding { kind: k, a, b });
    };
    if info.used_backup {
        problem(Kind::PrimarySuperblock, 0, 0, &mut sum);
    } else {
        let b = ld::<M, SB_SIZE>(m, SB_BACKUP_OFF)?;
        if !Superblock::crc_ok(&b) || Superblock::decode(&b) != info.sb {
            problem(Kind::BackupSuperblock, 0, 0, &mut sum);
        }
    }
    let mut sc = split(scratch, &g)?;
    // ---- hosts
    let mut active: u64 = 0;
    for j in 0..g.max_hosts {
        let id = HostIdent::decode(&ld::<M, 64>(m, g.host_slot(j))?);
        let reg = RegRec::decode(&ld::<M, REG_SIZE>(m, g.reg(j))?);
        let live = match id {
            // Online, a torn identity line is a host that crashed in the
            // middle of writing it (a crash inside a multi-word store): its
            // next join takes the slot with a newer epoch (`Fs::join`). Not
            // a problem while the pool is in use; offline it is reported.
            None if o.online => false,
            None => {
                problem(Kind::HostSlotCorrupt, u64::from(j), 0, &mut sum);
                false
            }
            Some(id) => id.state == host_state::ACTIVE && reg.fenced_epoch < id.epoch,
        };
        if live {
            active |= 1 << j;
        }
        if !o.online && id.is_some_and(|i| i.state == host_state::ACTIVE) {
            problem(Kind::HostActive, u64::from(j), 0, &mut sum);
        }
        if !o.online {
            if let Some(p) = journal::pending(m, &g, j)? {
                if p.seq > reg.replayed_seq {
                    problem(Kind::JournalPending, u64::from(j), p.seq, &mut sum);
                }
            }
        }
        let fenced_active = id.is_none_or(|i| i.state == host_state::ACTIVE);
        if !(live || o.online && fenced_active) {
            let w = ld::<M, 32>(m, g.host_slot(j) + 64)?;
            if super::layout::rd64(&w, 16) != 0 || super::layout::rd64(&w, 24) != 0 {
                problem(Kind::LockWords, u64::from(j), 0, &mut sum);
            }
            let mut off = 0u64;
            while off < g.holds_bytes {
                if ld::<M, 64>(m, g.holds(j) + off)?.iter().any(|&x| x != 0) {
                    problem(Kind::HoldsLeft, u64::from(j), 0, &mut sum);
                    break;
                }
                off += 64;
            }
            let mut i = 0u32;
            while i < CREATING_SLOTS {
                if ld::<M, 64>(m, g.creating(j, i))?.iter().any(|&x| x != 0) {
                    problem(Kind::CreatingSetLeft, u64::from(j), 0, &mut sum);
                    break;
                }
                i += 16;
            }
        }
    }
    // ---- namespace header and lists
    let ns = NsHdr::decode(&ld::<M, NSHDR_SIZE>(m, g.nshdr_off)?);
    let hwm = u64::from(ns.hwm).min(g.entry_count);
    if u64::from(ns.hwm) > g.entry_count {
        problem(Kind::NsHdr, 0, 0, &mut sum);
    }
    if ns.pending_recovery != 0 && !o.online {
        problem(Kind::PendingRecovery, ns.pending_recovery, 0, &mut sum);
    }
    let mut max_gen = ns.next_gen;
    {
        let mut cur = ns.free_head;
        let mut n = 0u64;
        while cur != NIL {
            if u64::from(cur) >= hwm || sc.elist.get(u64::from(cur)) {
                problem(Kind::FreeList, u64::from(cur), 0, &mut sum);
                break;
            }
            let e = EntryRec::decode(&ld::<M, ENTRY_SIZE>(m, g.entry(cur))?);
            match e {
                Some(e) if e.state == entry_state::FREE => {
                    sc.elist.set(u64::from(cur), true);
                    n += 1;
                    cur = e.next;
                }
                _ => {
                    problem(Kind::FreeList, u64::from(cur), 1, &mut sum);
                    break;
                }
            }
        }
        if n != u64::from(ns.free_count) {
            problem(Kind::FreeCount, n, u64::from(ns.free_count), &mut sum);
        }
    }
    for j in 0..g.max_hosts {
        let reg = RegRec::decode(&ld::<M, REG_SIZE>(m, g.reg(j))?);
        let mut cur = reg.orphan_head;
        let mut n = 0u64;
        while cur != NIL {
            if u64::from(cur) >= hwm || sc.elist.get(u64::from(cur)) {
                problem(Kind::OrphanList, u64::from(j), u64::from(cur), &mut sum);
                break;
            }
            match EntryRec::decode(&ld::<M, ENTRY_SIZE>(m, g.entry(cur))?) {
                Some(e) if e.state == entry_state::UNLINKED => {
                    sc.elist.set(u64::from(cur), true);
                    n += 1;
                    cur = e.next;
                }
                _ => {
                    problem(Kind::OrphanList, u64::from(j), u64::from(cur), &mut sum);
                    break;
                }
            }
        }
        if n != u64::from(reg.orphan_count) {
            problem(Kind::OrphanCount, u64::from(j), n, &mut sum);
        }
    }
    // ---- entries
    for i in 0..hwm as u32 {
        let Some(e) = EntryRec::decode(&ld::<M, ENTRY_SIZE>(m, g.entry(i))?) else {
            problem(Kind::EntryCorrupt, u64::from(i), 0, &mut sum);
            continue;
        };
        max_gen = max_gen.max(e.generation);
        match e.state {
            entry_state::FREE => {
                if !sc.elist.get(u64::from(i)) {
                    problem(Kind::FreeNotListed, u64::from(i), 0, &mut sum);
                }
                continue;
            }
            entry_state::UNLINKED if !sc.elist.get(u64::from(i)) => {
                problem(Kind::OrphanNotListed, u64::from(i), 0, &mut sum);
            }
            entry_state::CREATING if !o.online || active & (1u64 << (e.creator % 64)) == 0 => {
                problem(Kind::Creating, u64::from(i), u64::from(e.creator), &mut sum);
            }
            _ => {}
        }
        if e.state == entry_state::CREATING || e.state == entry_state::PUBLISHED {
            sc.live.set(u64::from(i), true);
            let o = i as usize * 12;
            super::layout::wr64(sc.ehash, o, name_hash(e.dir, e.name.as_bytes()));
            super::layout::wr32(sc.ehash, o + 8, e.dir);
        }
        if e.state != entry_state::UNLINKED {
            let dir_ok = e.dir < g.dir_count
                && DirRec::decode(&ld::<M, DIR_SIZE>(m, g.dir(e.dir))?)
                    .is_some_and(|d| d.state == dir_state::USED);
            if !dir_ok {
                problem(Kind::BadDir, u64::from(i), u64::from(e.dir), &mut sum);
            } else {
                dstat_add(sc.dirs, e.dir, 0, 1);
                if e.state == entry_state::PUBLISHED {
                    dstat_add(sc.dirs, e.dir, 1, e.size);
                    sum.keys += 1;
                }
            }
        }
        if !e.extents_valid(&g) {
            problem(Kind::BadExtent, u64::from(i), 0, &mut sum);
            continue;
        }
        for x in e.used_extents() {
            for u in u64::from(x.start)..u64::from(x.start) + u64::from(x.count) {
                if sc.units.get(u) {
                    problem(Kind::DoubleAlloc, u, u64::from(i), &mut sum);
                }
                sc.units.set(u, true);
                sum.used_units += 1;
            }
        }
    }
    // ---- index
    let mask = g.index_slots - 1;
    let mut line = [0u8; 64];
    for i in 0..g.index_slots {
        if i % 8 == 0 {
            line = ld::<M, 64>(m, g.slot(i))?;
        }
        let (s, d, tag, target) = slot_unpack(super::layout::rd64(&line, (i % 8) as usize * 8));
        if s != slot_state::USED {
            if s > slot_state::TOMB {
                problem(Kind::IndexBad, i, 0, &mut sum);
            }
            continue;
        }
        let ok = if d == ROOT_DIR {
            match (target < g.dir_count).then(|| ld::<M, DIR_SIZE>(m, g.dir(target))) {
                Some(b) => match DirRec::decode(&b?) {
                    Some(r) if r.state == dir_state::USED => {
                        let h = name_hash(ROOT_DIR, r.name.as_bytes());
                        if dstat(sc.dirs, target, 2) != 0 {
                            problem(Kind::IndexDup, i, u64::from(target), &mut sum);
                        }
                        dstat_add(sc.dirs, target, 2, 1);
                        hash_tag(h) == tag && reachable(m, &g, h & mask, i)?
                    }
                    _ => false,
                },
                None => false,
            }
        } else if u64::from(target) < hwm && sc.live.get(u64::from(target)) {
            let o = target as usize * 12;
            let h = super::layout::rd64(sc.ehash, o);
            if super::layout::rd32(sc.ehash, o + 8) == d {
                if sc.eref.get(u64::from(target)) {
                    problem(Kind::IndexDup, i, u64::from(target), &mut sum);
                }
                sc.eref.set(u64::from(target), true);
                hash_tag(h) == tag && reachable(m, &g, h & mask, i)?
            } else {
                false
            }
        } else {
            false
        };
        if !ok {
            problem(Kind::IndexBad, i, u64::from(target), &mut sum);
        }
    }
    for i in 0..hwm {
        if sc.live.get(i) && !sc.eref.get(i) {
            problem(Kind::IndexMissing, i, 0, &mut sum);
        }
    }
    // ---- directories
    let mut used = 0u32;
    for d in 0..g.dir_count {
        match DirRec::decode(&ld::<M, DIR_SIZE>(m, g.dir(d))?) {
            None => problem(Kind::DirCorrupt, u64::from(d), 0, &mut sum),
            Some(r) if r.state == dir_state::USED => {
                used += 1;
                sum.dirs += 1;
                max_gen = max_gen.max(r.generation);
                if r.key_count != dstat(sc.dirs, d, 0) || r.bytes != dstat(sc.dirs, d, 1) {
                    problem(Kind::DirCount, u64::from(d), r.key_count, &mut sum);
                }
                if dstat(sc.dirs, d, 2) == 0 {
                    problem(Kind::DirIndexMissing, u64::from(d), 0, &mut sum);
                }
            }
            Some(_) => {}
        }
    }
    if used != ns.dirs_used {
        problem(
            Kind::DirsUsed,
            u64::from(used),
            u64::from(ns.dirs_used),
            &mut sum,
        );
    }
    // ---- chunks and bitmaps
    let mut owned = [0u32; super::layout::MAX_HOSTS];
    for c in 0..g.chunk_count {
        let rec = ChunkRec::decode(&ld::<M, 16>(m, g.chunk(c))?);
        let line = ld::<M, 64>(m, g.bitmap(c))?;
        if rec.owner > g.max_hosts {
            problem(
                Kind::ChunkOwner,
                u64::from(c),
                u64::from(rec.owner),
                &mut sum,
            );
        } else if rec.owner > 0 {
            if let Some(x) = owned.get_mut((rec.owner - 1) as usize) {
                *x += 1;
            }
        }
        let base = u64::from(c) * u64::from(g.chunk_units);
        for u in 0..g.chunk_units {
            let bit = line
                .get((u / 8) as usize)
                .is_some_and(|b| b & (1 << (u % 8)) != 0);
            let valid = u < g.units_in_chunk(c);
            let r = valid && sc.units.get(base + u64::from(u));
            if bit && !r {
                problem(Kind::Leak, base + u64::from(u), u64::from(c), &mut sum);
            } else if r && (!bit || rec.owner == 0) {
                problem(
                    Kind::Unallocated,
                    base + u64::from(u),
                    u64::from(c),
                    &mut sum,
                );
            }
        }
    }
    for j in 0..g.max_hosts {
        let reg = RegRec::decode(&ld::<M, REG_SIZE>(m, g.reg(j))?);
        if owned.get(j as usize).copied().unwrap_or(0) != reg.chunks_owned {
            problem(
                Kind::ChunkCount,
                u64::from(j),
                u64::from(reg.chunks_owned),
                &mut sum,
            );
        }
    }
    let _ = max_gen;
    if o.repair && sum.problems > 0 {
        rebuild(m, &info.sb, info.used_backup, &mut sc)?;
        sum.repaired = true;
    }
    Ok(sum)
}

fn recovered_name(d: u32) -> Name {
    let mut b = *b"recovered-0000000000";
    let mut v = d;
    let mut i = b.len();
    while i > 10 {
        i -= 1;
        if let Some(x) = b.get_mut(i) {
            *x = b'0' + (v % 10) as u8;
        }
        v /= 10;
    }
    Name::new(&b).unwrap_or_default()
}

/// Inserts (dir, name) -> target into the index being rebuilt; false if present.
fn insert<M: Media>(
    m: &M,
    g: &Geometry,
    dir: u32,
    name: &[u8],
    target: u32,
    root: bool,
) -> Result<bool> {
    let h = name_hash(dir, name);
    let mask = g.index_slots - 1;
    let mut p = h & mask;
    for _ in 0..g.index_slots {
        let w = u64::from_le_bytes(ld::<M, 8>(m, g.slot(p))?);
        let (s, d, tag, t) = slot_unpack(w);
        if s == slot_state::EMPTY {
            st(
                m,
                g.slot(p),
                &slot_pack(slot_state::USED, dir, hash_tag(h), target).to_le_bytes(),
            )?;
            return Ok(true);
        }
        if d == (dir & 0x3FFF) && tag == hash_tag(h) {
            let same = if root {
                DirRec::decode(&ld::<M, DIR_SIZE>(m, g.dir(t))?)
                    .is_some_and(|r| r.name.as_bytes() == name)
            } else {
                EntryRec::decode(&ld::<M, ENTRY_SIZE>(m, g.entry(t))?)
                    .is_some_and(|r| r.name.as_bytes() == name)
            };
            if same {
                return Ok(false);
            }
        }
        p = (p + 1) & mask;
    }
    Err(Error::NoEntries)
}

fn rebuild<M: Media>(
    m: &M,
    sb: &Superblock,
    used_backup: bool,
    sc: &mut Scratch<'_>,
) -> Result<()> {
    let g = sb.geo;
    let _ = used_backup;
    let mut b = [0u8; SB_SIZE];
    sb.encode(&mut b);
    st(m, 0, &b)?;
    st(m, SB_BACKUP_OFF, &b)?;
    // 1. journals
    for j in 0..g.max_hosts {
        let reg = RegRec::decode(&ld::<M, REG_SIZE>(m, g.reg(j))?);
        let id = HostIdent::decode(&ld::<M, 64>(m, g.host_slot(j))?);
        // A fenced incarnation's record was replayed (or found empty) before
        // its fence was committed: one pending now was written by it after
        // the fence, against a pool the survivor has changed since, and is
        // never applied (quarantine, as the hosts do).
        let fenced =
            id.is_some_and(|i| i.state == host_state::ACTIVE && reg.fenced_epoch >= i.epoch);
        if let Some(p) = journal::pending(m, &g, j)? {
            if p.seq > reg.replayed_seq && !fenced {
                journal::apply(m, &g, j, &p)?;
            }
            journal::mark_applied(m, &g, j, p.seq)?;
        }
    }
    let ns = NsHdr::decode(&ld::<M, NSHDR_SIZE>(m, g.nshdr_off)?);
    let hwm = ns.hwm.min(g.entry_count as u32);
    sc.units.b.iter_mut().for_each(|x| *x = 0);
    sc.keep.b.iter_mut().for_each(|x| *x = 0);
    sc.dirs.iter_mut().for_each(|x| *x = 0);
    let mut max_gen = ns.next_gen;
    // 2. keep valid published entries with disjoint units
    for i in 0..hwm {
        let Some(e) = EntryRec::decode(&ld::<M, ENTRY_SIZE>(m, g.entry(i))?) else {
            continue;
        };
        max_gen = max_gen.max(e.generation);
        if e.state != entry_state::PUBLISHED
            || e.dir >= g.dir_count
            || e.name.len == 0
            || !e.extents_valid(&g)
        {
            continue;
        }
        if Name::new(e.name.as_bytes()).is_err() {
            continue;
        }
        let clash = e.used_extents().iter().any(|x| {
            (u64::from(x.start)..u64::from(x.start) + u64::from(x.count)).any(|u| sc.units.get(u))
        });
        if clash {
            continue;
        }
        for x in e.used_extents() {
            for u in u64::from(x.start)..u64::from(x.start) + u64::from(x.count) {
                sc.units.set(u, true);
            }
        }
        sc.keep.set(u64::from(i), true);
        dstat_add(sc.dirs, e.dir, 0, 1);
    }
    // 3. directories
    let zero = [0u8; 64];
    for i in 0..g.index_slots.div_ceil(8) {
        st(m, g.index_off + i * 64, &zero)?;
    }
    let mut dirs_used = 0u32;
    for d in 0..g.dir_count {
        let rec = DirRec::decode(&ld::<M, DIR_SIZE>(m, g.dir(d))?);
        let mut r = match rec {
            Some(r) if r.state == dir_state::USED => r,
            _ if dstat(sc.dirs, d, 0) > 0 => DirRec {
                state: dir_state::USED,
                generation: max_gen.wrapping_add(1),
                mode: 0o755,
                name: recovered_name(d),
                ..DirRec::default()
            },
            _ => DirRec::default(),
        };
        if r.state == dir_state::USED {
            max_gen = max_gen.max(r.generation);
            if !insert(m, &g, ROOT_DIR, r.name.as_bytes(), d, true)? {
                r.name = recovered_name(d);
                let _ = insert(m, &g, ROOT_DIR, r.name.as_bytes(), d, true)?;
            }
            dirs_used += 1;
        }
        let mut b = [0u8; DIR_SIZE];
        r.encode(&mut b);
        st(m, g.dir(d), &b)?;
    }
    // 4. entries into the index; everything else to the free list
    for d in 0..g.dir_count {
        super::layout::wr64(sc.dirs, d as usize * 24, 0);
    }
    let mut free_head = NIL;
    let mut free_count = 0u32;
    let mut i = hwm;
    while i > 0 {
        i -= 1;
        let dec = EntryRec::decode(&ld::<M, ENTRY_SIZE>(m, g.entry(i))?);
        let mut keep = sc.keep.get(u64::from(i));
        if let (true, Some(e)) = (keep, dec.as_ref()) {
            if insert(m, &g, e.dir, e.name.as_bytes(), i, false)? {
                dstat_add(sc.dirs, e.dir, 0, 1);
                dstat_add(sc.dirs, e.dir, 1, e.size);
            } else {
                keep = false;
                for x in e.used_extents() {
                    for u in u64::from(x.start)..u64::from(x.start) + u64::from(x.count) {
                        sc.units.set(u, false);
                    }
                }
            }
        }
        if !keep {
            let f = EntryRec {
                state: entry_state::FREE,
                generation: dec.map(|e| e.generation).unwrap_or(max_gen),
                next: free_head,
                ..EntryRec::default()
            };
            let mut b = [0u8; ENTRY_SIZE];
            f.encode(&mut b);
            st(m, g.entry(i), &b)?;
            free_head = i;
            free_count += 1;
        }
    }
    for d in 0..g.dir_count {
        let b = ld::<M, DIR_SIZE>(m, g.dir(d))?;
        if let Some(mut r) = DirRec::decode(&b) {
            if r.state == dir_state::USED {
                r.key_count = dstat(sc.dirs, d, 0);
                r.bytes = dstat(sc.dirs, d, 1);
                let mut b = [0u8; DIR_SIZE];
                r.encode(&mut b);
                st(m, g.dir(d), &b)?;
            }
        }
    }
    // 5. hosts
    let mut owned = [0u32; super::layout::MAX_HOSTS];
    let mut epochs = [0u64; super::layout::MAX_HOSTS];
    let mut free = [false; super::layout::MAX_HOSTS];
    for j in 0..g.max_hosts {
        let reg = RegRec::decode(&ld::<M, REG_SIZE>(m, g.reg(j))?);
        let id = HostIdent::decode(&ld::<M, 64>(m, g.host_slot(j))?);
        // A torn identity's epoch is unknown: the registry's floor keeps the
        // repaired slot's epoch monotonic (the next join goes above it).
        let epoch = id
            .map(|i| i.epoch)
            .unwrap_or(0)
            .max(reg.fenced_epoch)
            .max(reg.joined_epoch);
        if let Some(e) = epochs.get_mut(j as usize) {
            *e = epoch;
        }
        let state = match id {
            Some(i) if i.state == host_state::FREE => host_state::FREE,
            _ => host_state::LEFT,
        };
        if let Some(f) = free.get_mut(j as usize) {
            *f = state == host_state::FREE;
        }
        let nid = HostIdent {
            state,
            node: j,
            epoch,
            ..id.unwrap_or_default()
        };
        let mut b = [0u8; 64];
        nid.encode(&mut b);
        st(m, g.host_slot(j), &b)?;
        st(m, g.host_slot(j) + 64 + 16, &[0u8; 16])?;
        let mut off = 0u64;
        while off < g.holds_bytes {
            st(m, g.holds(j) + off, &zero)?;
            off += 64;
        }
        let mut c = 0u32;
        while c < CREATING_SLOTS {
            st(m, g.creating(j, c), &zero)?;
            c += 16;
        }
    }
    // 6. chunks and bitmaps
    for c in 0..g.chunk_count {
        let mut rec = ChunkRec::decode(&ld::<M, 16>(m, g.chunk(c))?);
        let base = u64::from(c) * u64::from(g.chunk_units);
        let mut line = [0u8; 64];
        let mut any = false;
        for u in 0..g.units_in_chunk(c) {
            if sc.units.get(base + u64::from(u)) {
                any = true;
                if let Some(x) = line.get_mut((u / 8) as usize) {
                    *x |= 1 << (u % 8);
                }
            }
        }
        if !any {
            rec = ChunkRec::default();
        } else if rec.owner == 0 || rec.owner > g.max_hosts {
            rec = ChunkRec {
                owner: 1,
                epoch: epochs.first().copied().unwrap_or(0),
            };
        }
        if rec.owner > 0 {
            if let Some(x) = owned.get_mut((rec.owner - 1) as usize) {
                *x += 1;
            }
        }
        st(m, g.chunk(c), &rec.encode())?;
        st(m, g.bitmap(c), &line)?;
    }
    for j in 0..g.max_hosts {
        let mut reg = RegRec::decode(&ld::<M, REG_SIZE>(m, g.reg(j))?);
        let e = epochs.get(j as usize).copied().unwrap_or(0);
        // Every incarnation that was here is fenced: one that only stalled
        // (a repair forced over a live pool, or a host silent at the check)
        // finds its fence at its next check and writes nothing more, instead
        // of resuming in a pool rebuilt without it. The next join goes above.
        if !free.get(j as usize).copied().unwrap_or(true) {
            reg.fenced_epoch = reg.fenced_epoch.max(e);
        }
        reg.recovered_epoch = reg.fenced_epoch;
        reg.orphan_head = NIL;
        reg.orphan_count = 0;
        reg.chunks_owned = owned.get(j as usize).copied().unwrap_or(0);
        let mut b = [0u8; REG_SIZE];
        reg.encode(&mut b);
        st(m, g.reg(j), &b)?;
    }
    // 7. namespace header
    let nns = NsHdr {
        hwm,
        free_head,
        free_count,
        dirs_used,
        next_gen: max_gen.wrapping_add(2),
        pending_recovery: 0,
        chunk_hint: 0,
    };
    let mut b = [0u8; NSHDR_SIZE];
    nns.encode(&mut b);
    st(m, g.nshdr_off, &b)?;
    Ok(())
}
