// SPDX-License-Identifier: GPL-2.0

//! The marufs filesystem logic (safe Rust over [`crate::vfs`] and the core).

use crate::marufs_core::{
    abi,
    coherence::{KeyWrites, Seen, UnitTracker},
    fs::{dir_changes, mount_check, Dir, Handle, Key, Tunables},
    layout::{dir_state, entry_state, host_state, EntryRec, Geometry, MAX_EXTENTS, UNIT},
    names::{Group, NameTable},
    Error as CoreError, Fs,
};
use crate::media::{KEnv, KMedia};
use crate::vfs::{
    dax::{DaxDevice, DaxMapping, DaxOpenError},
    file::{File, Keys, Segment, SetAttr},
    fs_context::{FileSystem, Param},
    inode::{Attrs, DirEntry, Kind, Lookup, Namespace, Revalidate, Revalidating, ROOT_INO},
    ioctl::{DirFile, Ioctls},
    mm::{FaultPlan, Faults},
    super_block::{NewSuperBlock, StatFs},
    work::{Periodic, Tick},
};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::{
    alloc::{KVVec, KVec},
    new_mutex,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    str::CStr,
    sync::{Arc, Mutex, MutexGuard, SetOnce},
};

/// Pools mounted on this host, one slot per mount: device physical address
/// (2 MiB aligned) | node id + 1; 0 = free. A second mount of the same pool
/// with the same node id on this host would be two hosts claiming one slot.
static MOUNTED: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
/// Serialises scans of `MOUNTED` (mount and unmount only).
static MOUNTED_LOCK: AtomicBool = AtomicBool::new(false);

fn mounted_key(phys: u64, node: u32) -> u64 {
    phys | u64::from(node + 1)
}

/// Claims (pool, node) for this host; `EBUSY` if it is already mounted here.
fn claim_mount(phys: u64, node: u32) -> Result {
    while MOUNTED_LOCK
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        crate::vfs::sys::cond_resched();
    }
    let key = mounted_key(phys, node);
    let r = if MOUNTED.iter().any(|m| m.load(Ordering::Relaxed) == key) {
        Err(EBUSY)
    } else if let Some(slot) = MOUNTED.iter().find(|m| m.load(Ordering::Relaxed) == 0) {
        slot.store(key, Ordering::Relaxed);
        Ok(())
    } else {
        Err(EMFILE)
    };
    MOUNTED_LOCK.store(false, Ordering::Release);
    r
}

fn release_mount(phys: u64, node: u32) {
    let key = mounted_key(phys, node);
    if let Some(slot) = MOUNTED.iter().find(|m| m.load(Ordering::Relaxed) == key) {
        slot.store(0, Ordering::Release);
    }
}

/// statfs `f_type` and `s_magic` of marufs ("MARU").
pub const MARUFS_MAGIC: u64 = 0x4d41_5255;
/// Default lease of a host's membership.
const DEFAULT_LEASE_MS: u32 = 1_000;

/// The marufs filesystem type.
pub struct Marufs;

/// Mount options (see `Documentation/man/marufs.5.md`).
#[derive(Default)]
pub struct Options {
    node: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
    lease_ms: Option<u32>,
    coherent: bool,
}

type CoreFs = Fs<KMedia, KEnv>;

/// One mount of a marufs pool.
pub struct MountData {
    /// This host's view of the pool (its media owns the kernel mapping).
    /// Operations on it are serialised by the mutex.
    fs: Pin<KBox<Mutex<CoreFs>>>,
    /// The kernel mapping of the pool, for the data path (read/write/mmap).
    map: Arc<DaxMapping>,
    /// The same mapping as core media, for the lock-free reads of
    /// directory change counters (dentry revalidation, even in RCU walk).
    counters: KMedia,
    /// The pool's geometry (where the change counters are).
    geo: Geometry,
    /// The pool has `INCOMPAT_DIR_CHANGES`: cached names are trusted while
    /// their directory's change counter reads the same.
    dir_changes: bool,
    /// Start of the data area (device offset of unit 0).
    data_off: u64,
    /// Physical address of device offset 0.
    phys: u64,
    /// Keeps the device open while mounted (declared after `fs`: dropped after).
    dev: DaxDevice,
    /// Keys whose pages outlived their last file on this host (pins, pipe
    /// buffers, direct I/O): their hold, or their discard, waits for the
    /// pages to be idle (re-checked by the heartbeat). Lock order: after `fs`.
    lingering: Pin<KBox<Mutex<KVec<Lingering>>>>,
    /// Removal of the device was noticed and said.
    removal_said: AtomicBool,
    /// The slow zeroing-ahead test knob said so (once).
    slow_zero_said: AtomicBool,
    /// The unmount gave up waiting for referenced pages: the device's page
    /// map is never released (the device cannot be removed under them).
    leak_pagemap: AtomicBool,
    node: u32,
    lease_ms: u32,
    read_only: AtomicBool,
    root: Attrs,
    /// The lease was lost; said once.
    fenced: AtomicBool,
    /// Every user mapping of the pool was revoked after the lease was lost.
    revoked: AtomicBool,
    /// Takeovers of other hosts already said in dmesg.
    takeovers_said: AtomicU32,
    /// Heartbeat ticks so far.
    ticks: AtomicU32,
    /// When the last tick started (`ktime_ns`), and when a late one was
    /// last said: a tick later than half a lease is said (at most once a
    /// minute), the warning before a lease is lost to an overloaded host.
    last_tick_ns: AtomicU64,
    late_said_ns: AtomicU64,
    /// Batched lookups' answers (`marufs_core::names`), allocated by the
    /// first batched lookup: [`NAME_GROUPS`] groups of 4 slots, 1.06 MiB.
    names: Pin<KBox<Mutex<KVVec<Group>>>>,
    /// `coherent` mount option: the hosts' caches are coherent (one host,
    /// or hardware-coherent sharing): no data-plane cache maintenance.
    coherent: bool,
    /// The data-plane tracker's slots (`marufs_core::coherence`), one per
    /// data unit (16 bytes each): which key's bytes this host's cache may
    /// hold of it. Held across an invalidation so that a concurrent reader
    /// of the same unit waits for it. Empty on a `coherent` mount.
    seen: Pin<KBox<Mutex<KVVec<Seen>>>>,
}

/// Groups (4-slot buckets, 1088 bytes each) of a mount's batched-lookup
/// answer table: 4096 answers.
const NAME_GROUPS: usize = 1024;

impl MountData {
    fn fs(&self) -> FsGuard<'_> {
        FsGuard {
            d: self,
            g: self.fs.lock(),
        }
    }
}

/// The core's state, locked: when an operation finds the lease lost
/// (`Fenced`), the mount says so and stops opens and faults as the guard
/// goes, not only at the next heartbeat tick (which revokes the mappings).
struct FsGuard<'a> {
    d: &'a MountData,
    g: MutexGuard<'a, CoreFs>,
}

impl core::ops::Deref for FsGuard<'_> {
    type Target = CoreFs;
    fn deref(&self) -> &CoreFs {
        &self.g
    }
}

impl core::ops::DerefMut for FsGuard<'_> {
    fn deref_mut(&mut self) -> &mut CoreFs {
        &mut self.g
    }
}

impl Drop for FsGuard<'_> {
    fn drop(&mut self) {
        if self.g.lost_lease() && !self.d.fenced.load(Ordering::Relaxed) {
            lost_lease(self.d, ESHUTDOWN.to_errno());
        }
    }
}

/// Converts a core error to a kernel error. Metadata that failed validation
/// (`EUCLEAN`) is also said in dmesg, at most once a second.
fn kerr(e: CoreError) -> Error {
    if e == CoreError::Corrupt {
        say_corrupt(None);
    }
    Error::from_errno(-e.errno())
}

/// Last time (ns) a corruption was said in dmesg.
static CORRUPT_SAID: AtomicU64 = AtomicU64::new(0);

fn say_corrupt(entry: Option<u32>) {
    let now = crate::vfs::sys::ktime_ns();
    let last = CORRUPT_SAID.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < 1_000_000_000 {
        return;
    }
    if CORRUPT_SAID
        .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    match entry {
        Some(e) => pr_err!(
            "key entry {}: its extents lie outside the data area or across chunks: refused (EUCLEAN); run maru-fsck\n",
            e
        ),
        None => pr_err!(
            "metadata failed validation (checksum or structure, e.g. a key's extents outside the data area): refused (EUCLEAN); run maru-fsck\n"
        ),
    }
}

/// How the bytes of creating key `k` arrived (`marufs_core::coherence`).
fn key_writes(k: &KeyState) -> KeyWrites {
    let mut w = KeyWrites::default();
    if k.mapped_writable.load(Ordering::Acquire) {
        w.note_writable_mapping();
    }
    w
}

/// Writes back every unit of creating key `k` (record `rec`) when the
/// coherence policy asks for it: before publish, before its units are given
/// up, at `fsync`. No mutex is held: the units are the creator's alone.
fn write_back_key(d: &MountData, k: &KeyState, rec: &EntryRec) -> Result {
    if d.coherent || !key_writes(k).must_write_back() || test_skips(TEST_SKIP_WRITE_BACK) {
        return Ok(());
    }
    for x in rec.used_extents() {
        d.map.flush(d.geo.unit(u64::from(x.start)), u64::from(x.count) * UNIT)?;
    }
    Ok(())
}

/// After this host published key `k`: its cache holds only the key's bytes
/// of its units (NT-zeroed here, written back): reads need no invalidation.
fn own_units(d: &MountData, k: &KeyState, rec: &EntryRec) {
    if d.coherent {
        return;
    }
    let mut seen = d.seen.lock();
    let mut t = UnitTracker::resume(&mut seen);
    for x in rec.used_extents() {
        for u in u64::from(x.start)..u64::from(x.start) + u64::from(x.count) {
            t.own(u, k.entry, k.generation);
        }
    }
}

/// Before this host reads bytes of unit `unit` of published key `k`:
/// invalidates the unit unless the tracker vouches for it.
fn before_read(d: &MountData, k: &KeyState, unit: u64) -> Result {
    if d.coherent {
        return Ok(());
    }
    let mut seen = d.seen.lock();
    UnitTracker::resume(&mut seen).before_read(unit, k.entry, k.generation, || {
        if test_skips(TEST_SKIP_INVALIDATE) {
            return Ok(());
        }
        d.map.flush(d.geo.unit(unit), UNIT)
    })?;
    Ok(())
}

/// A key whose last hold on this host, or whose discard, waits until no page
/// of it is referenced any more: a long-term pin (RDMA or GPU registration),
/// a pipe buffer filled by `vmsplice`, direct I/O in flight — references
/// that outlive every mapping and file of the key. Until then its units must
/// not be reused: DMA may still read or write them.
struct Lingering {
    handle: Handle,
    /// Unpublished: discarded once idle (else its hold is released).
    abort: bool,
    ranges: KeyRanges,
}

/// The device ranges `(offset, length)` of a key's units.
#[derive(Clone, Copy)]
struct KeyRanges {
    r: [(u64, u64); MAX_EXTENTS],
    n: usize,
}

impl KeyRanges {
    /// Units `[from, ..)` of the key (in key order).
    fn of(geo: &Geometry, rec: &EntryRec, from: u64) -> Self {
        let mut k = KeyRanges { r: [(0, 0); MAX_EXTENTS], n: 0 };
        let mut skip = from;
        for x in rec.used_extents() {
            let c = u64::from(x.count);
            if skip >= c {
                skip -= c;
                continue;
            }
            if let Some(slot) = k.r.get_mut(k.n) {
                *slot = (geo.unit(u64::from(x.start) + skip), (c - skip) * UNIT);
                k.n += 1;
            }
            skip = 0;
        }
        k
    }

    /// Whether a page of these ranges is referenced on this host.
    fn busy(&self, d: &MountData) -> bool {
        if test_skips(TEST_SKIP_PINS) {
            return false;
        }
        self.r.iter().take(self.n).any(|&(off, len)| d.map.busy(off, len))
    }
}

/// Queues key `h` (ranges `r`) to be released or discarded when its pages
/// are idle. Caller holds the fs mutex (lock order).
fn linger(d: &MountData, h: Handle, abort: bool, r: KeyRanges) {
    let mut l = d.lingering.lock();
    if l.push(Lingering { handle: h, abort, ranges: r }, GFP_KERNEL).is_err() {
        // No memory to remember it: keep the hold (or the unpublished key)
        // for good rather than free units DMA may reach; fsck or the next
        // mount of this node reclaims them.
        pr_err!("key entry {}: its pages are still referenced and it cannot be queued; its units stay allocated\n", h.entry);
        return;
    }
    if l.len() == 1 || l.len() % 64 == 0 {
        pr_info!("key entry {}: pages still referenced after its last close (pinned or in a pipe): its units stay allocated until they are released ({} such keys)\n", h.entry, l.len());
    }
}

/// Releases or discards the lingering keys whose pages are idle now.
/// Returns how many are still referenced.
fn retry_lingering(d: &MountData, fs: &mut CoreFs) -> usize {
    let mut l = d.lingering.lock();
    let mut i = 0;
    let mut freed = false;
    while let Some(x) = l.get(i) {
        if x.ranges.busy(d) {
            i += 1;
            continue;
        }
        let (h, abort) = (x.handle, x.abort);
        let _ = l.remove(i);
        // A discarded key may also carry the hold taken for its publish.
        let r = if abort {
            fs.abort(&h).and_then(|()| fs.release(h.entry))
        } else {
            fs.release(h.entry)
        };
        if let Err(e) = r {
            pr_warn!("key entry {}: giving up its units after their pages went idle failed: error {}\n", h.entry, e.errno());
        }
        freed = true;
    }
    let left = l.len();
    drop(l);
    if freed {
        let _ = fs.drain_orphans();
    }
    left
}

/// Test-only knobs (module parameter `test_skip`, see `marufs_main.rs`):
/// the negative controls of the non-coherent test mode.
pub(crate) const TEST_SKIP_WRITE_BACK: u32 = 1;
/// Skip readers' data invalidations.
pub(crate) const TEST_SKIP_INVALIDATE: u32 = 2;
/// Ignore page references (pins) when giving up a key's units.
pub(crate) const TEST_SKIP_PINS: u32 = 4;
/// Allow `IOC_TEST_HOLD_LOCK` (a host that holds the cross-host lock for a
/// while, to be killed holding it).
pub(crate) const TEST_HOLD_LOCK: u32 = 8;
/// Sleep 500 ms after zeroing each unit of a growing key, so that a test can
/// stop the host in the middle of a long zeroing.
pub(crate) const TEST_SLOW_ZEROING: u32 = 16;
/// Sleep 2.5 leases after zeroing each unit ahead of use (as an emulated
/// CXL window may take): the heartbeat must renew meanwhile.
pub(crate) const TEST_SLOW_ZERO_AHEAD: u32 = 32;

fn test_skips(what: u32) -> bool {
    crate::test_skip() & what != 0
}

/// A key's record that passed its checksum but not `locate`: `EUCLEAN`.
fn corrupt_entry(entry: u32) -> Error {
    say_corrupt(Some(entry));
    Error::from_errno(-CoreError::Corrupt.errno())
}

fn source_str(s: Option<&CStr>) -> &str {
    s.and_then(|c| c.to_str().ok()).unwrap_or("(none)")
}

// Inode numbers: 1 is the root; directories and keys carry their slot and the
// low bits of the slot's generation, so a reused slot is a new inode.
const INO_KEY: u64 = 1 << 63;
const INO_DIR: u64 = 1 << 62;

fn dir_ino(id: u32, generation: u64) -> u64 {
    INO_DIR | ((generation & 0x3fff_ffff) << 32) | u64::from(id)
}

fn key_ino(entry: u32, generation: u64) -> u64 {
    INO_KEY | ((generation & 0x7fff_ffff) << 32) | u64::from(entry)
}

enum Ino {
    Root,
    Dir(u32, u64),
    Key(u32, u64),
}

fn decode_ino(ino: u64) -> Option<Ino> {
    if ino == ROOT_INO {
        Some(Ino::Root)
    } else if ino & INO_KEY != 0 {
        Some(Ino::Key(ino as u32, (ino >> 32) & 0x7fff_ffff))
    } else if ino & INO_DIR != 0 {
        Some(Ino::Dir(ino as u32, (ino >> 32) & 0x3fff_ffff))
    } else {
        None
    }
}

fn dir_attrs(d: &Dir) -> Attrs {
    Attrs {
        ino: dir_ino(d.id, d.rec.generation),
        kind: Kind::Dir,
        mode: (d.rec.mode & 0o7777) as u16,
        uid: d.rec.uid,
        gid: d.rec.gid,
        size: d.rec.key_count,
        blocks: 0,
        mtime_ns: d.rec.mtime,
        ctime_ns: d.rec.ctime,
        generation: d.rec.generation,
    }
}

fn key_attrs(entry: u32, r: &EntryRec) -> Attrs {
    let units: u64 = r
        .extents
        .iter()
        .take(r.nextents as usize)
        .map(|e| u64::from(e.count))
        .sum();
    Attrs {
        ino: key_ino(entry, r.generation),
        kind: Kind::Key,
        mode: (r.mode & 0o7777) as u16,
        uid: r.uid,
        gid: r.gid,
        size: r.size,
        blocks: units * (UNIT / 512),
        mtime_ns: r.mtime,
        ctime_ns: r.ctime,
        generation: r.generation,
    }
}

/// Maps "not found" to `None`.
fn found<T>(r: core::result::Result<T, CoreError>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(CoreError::NotFound) => Ok(None),
        Err(e) => Err(kerr(e)),
    }
}

impl FileSystem for Marufs {
    const NAME: &'static CStr = c"marufs";
    type Options = Options;
    type Data = MountData;

    fn parse_param(o: &mut Options, p: Param) -> Result {
        match p {
            Param::Node(n) => {
                if n >= 64 {
                    pr_err!("node={} is out of range: node ids are 0..63\n", n);
                    return Err(EINVAL);
                }
                o.node = Some(n);
            }
            Param::Uid(u) => o.uid = Some(u),
            Param::Gid(g) => o.gid = Some(g),
            Param::Mode(m) => {
                if m > 0o7777 {
                    pr_err!("mode={:o} is not a permission mode (at most 07777)\n", m);
                    return Err(EINVAL);
                }
                o.mode = Some(m);
            }
            Param::LeaseMs(ms) => {
                if !(100..=600_000).contains(&ms) {
                    pr_err!("lease_ms={} is out of range (100..600000)\n", ms);
                    return Err(EINVAL);
                }
                o.lease_ms = Some(ms);
            }
            Param::Coherent => o.coherent = true,
        }
        Ok(())
    }

    fn fill_super(
        source: Option<&CStr>,
        o: &Options,
        read_only: bool,
        sb: &mut NewSuperBlock<'_, Self>,
    ) -> Result<KBox<MountData>> {
        let src = source_str(source);
        let path = source.ok_or_else(|| {
            pr_err!("no source device: mount -t marufs /dev/daxX.Y DIR\n");
            EINVAL
        })?;
        let dev = DaxDevice::open(path).map_err(|e| match e {
            DaxOpenError::Open(err) => {
                pr_err!("{}: cannot open the device: error {}\n", src, err.to_errno());
                err
            }
            DaxOpenError::NotDax => {
                pr_err!("{}: not a device-dax character device (marufs mounts /dev/daxX.Y)\n", src);
                ENODEV
            }
            DaxOpenError::NoRange => {
                pr_err!("{}: the device-dax range is not addressable\n", src);
                ENXIO
            }
            DaxOpenError::Gone => {
                pr_err!("{}: the device is being removed\n", src);
                ENXIO
            }
        })?;
        if crate::test_skip() != 0 {
            pr_warn!("{}: TEST MODE test_skip={:#x}: safety measures are disabled (negative controls); never in production\n", src, crate::test_skip());
        }
        let shadowed = crate::noncoherent_test();
        if shadowed {
            pr_warn!("{}: TEST MODE noncoherent_test=1: this host sees the pool through a simulated non-coherent cache\n", src);
        }
        let map = dev.map(dev.size(), shadowed).inspect_err(|_| {
            pr_err!("{}: cannot map {} bytes of device memory\n", src, dev.size());
        })?;
        let map = Arc::new(map, GFP_KERNEL)?;
        let media = KMedia::new(map.clone());
        let info = mount_check(&media).map_err(|e| {
            match e {
                CoreError::NotFormatted => pr_err!("{}: no marufs superblock: run mkfs.marufs {}\n", src, src),
                CoreError::BadVersion(v) => pr_err!("{}: unsupported marufs format version {}: use a newer marufs module\n", src, v),
                CoreError::IncompatibleFeatures(f) => pr_err!("{}: unsupported incompatible features {:#x}: use a newer marufs module\n", src, f),
                CoreError::TooSmall => pr_err!("{}: the device ({} bytes) is smaller than the filesystem on it: wrong device or region?\n", src, dev.size()),
                CoreError::Corrupt => pr_err!("{}: both superblocks are corrupt: run maru-fsck {}\n", src, src),
                other => pr_err!("{}: cannot read the superblock: error {}\n", src, other.errno()),
            }
            kerr(e)
        })?;
        if info.used_backup {
            pr_warn!("{}: primary superblock is bad, mounted with the backup copy: run maru-fsck -y {}\n", src, src);
        }
        let node = o.node.unwrap_or(0);
        claim_mount(dev.phys(), node).inspect_err(|e| {
            if *e == EBUSY {
                pr_err!("{}: node {} of this pool is already mounted on this host: use another node= (each mount is a host)\n", src, node);
            }
        })?;
        let claim = ClaimGuard { phys: dev.phys(), node, armed: true };
        let lease_ms = o.lease_ms.unwrap_or(DEFAULT_LEASE_MS);
        let tun = Tunables::for_lease(u64::from(lease_ms) * 1_000_000);
        let fs = Fs::open(media, KEnv, node, tun).map_err(|e| {
            pr_err!("{}: cannot use node={}: error {}\n", src, node, e.errno());
            kerr(e)
        })?;
        let mkfs_time = fs.superblock().mkfs_time;
        let data_off = fs.geometry().data_off;
        let geo = *fs.geometry();
        let has_dir_changes = fs.has_dir_changes();
        map.set_data_start(data_off)?;
        if dev.folio_order(data_off).is_some_and(|o| o > dev.pmd_order()) {
            // Folios larger than a unit (a namespace aligned to 1 GiB): a
            // reference to any page pins the whole folio, so keys sharing
            // it would be kept alive by each other's pins.
            pr_err!("{}: the device's pages are larger than 2 MiB (a namespace aligned to 1 GiB?): recreate it with align=2M (ndctl create-namespace -a 2M)\n", src);
            return Err(EINVAL);
        }
        if geo.data_units > 0 && !dev.huge_at(data_off) {
            pr_info!("{}: the device has no 2 MiB pages (a namespace aligned to 4 KiB?): keys are mapped with 4 KiB pages; align it to 2 MiB for huge mappings\n", src);
        }
        // The tracker: 16 bytes per data unit (8 MiB for a 1 TiB pool).
        let mut seen = KVVec::new();
        if !o.coherent {
            seen.extend_with(geo.data_units as usize, Seen::UNKNOWN, GFP_KERNEL)?;
        }
        let data = KBox::new(
            MountData {
                fs: KBox::pin_init(new_mutex!(fs), GFP_KERNEL)?,
                names: KBox::pin_init(new_mutex!(KVVec::new()), GFP_KERNEL)?,
                coherent: o.coherent,
                seen: KBox::pin_init(new_mutex!(seen), GFP_KERNEL)?,
                counters: KMedia::new(map.clone()),
                geo,
                dir_changes: has_dir_changes,
                map,
                data_off,
                phys: dev.phys(),
                dev,
                lingering: KBox::pin_init(new_mutex!(KVec::new()), GFP_KERNEL)?,
                removal_said: AtomicBool::new(false),
                slow_zero_said: AtomicBool::new(false),
                leak_pagemap: AtomicBool::new(false),
                node,
                lease_ms,
                read_only: AtomicBool::new(read_only),
                root: Attrs {
                    ino: ROOT_INO,
                    kind: Kind::Root,
                    mode: o.mode.unwrap_or(0o755) as u16,
                    uid: o.uid.unwrap_or(0),
                    gid: o.gid.unwrap_or(0),
                    size: 0,
                    blocks: 0,
                    mtime_ns: mkfs_time,
                    ctime_ns: mkfs_time,
                    generation: 0,
                },
                fenced: AtomicBool::new(false),
                revoked: AtomicBool::new(false),
                takeovers_said: AtomicU32::new(0),
                ticks: AtomicU32::new(0),
                last_tick_ns: AtomicU64::new(0),
                late_said_ns: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?;
        // From here the mount data releases the claim when it goes away,
        // and leaves the pool if it joined: a failure after the join below
        // (no root inode...) leaves no active slot behind.
        claim.disarm();
        if !read_only {
            if let Ok(Some(id)) = data.fs().node_ident() {
                if id.state == host_state::ACTIVE {
                    pr_info!(
                        "{}: node {}'s slot says a host is active: watching its heartbeat for {} ms before taking it (a crashed host, or another host with the same node=)\n",
                        src,
                        node,
                        crate::marufs_core::fs::expiry_ns(
                            id.lease_ns.max(tun.lease_ns),
                            tun.margin_ns
                        ) / 1_000_000
                    );
                }
            }
            data.fs().join().map_err(|e| {
                pr_err!("{}: node {} cannot join the pool: {} (error {})\n", src, node, core::format_args!("{}", e), e.errno());
                kerr(e)
            })?;
        }
        let epoch = data.fs().epoch();
        // The largest key: MAX_EXTENTS extents, each inside one chunk.
        let max_units = geo.data_units.min(MAX_EXTENTS as u64 * u64::from(geo.chunk_units));
        sb.setup(MARUFS_MAGIC, 21, i64::try_from(max_units * UNIT).unwrap_or(i64::MAX));
        sb.make_root(&data.root)?;
        pr_info!(
            "{}: mounted pool of {} MiB as node {} (epoch {}){}\n",
            src,
            info.sb.geo.total_size >> 20,
            node,
            epoch,
            if read_only { ", read-only" } else { "" }
        );
        Ok(data)
    }

    fn reconfigure(d: &MountData, o: &Options, read_only: bool) -> Result {
        if o.node.is_some_and(|n| n != d.node) {
            pr_err!("remount cannot change node= (umount and mount again)\n");
            return Err(EINVAL);
        }
        if !read_only && d.read_only.load(Ordering::Relaxed) && !d.fs().is_joined() {
            pr_err!("remount read-write of a read-only mount is not supported: umount and mount again\n");
            return Err(EROFS);
        }
        d.read_only.store(read_only, Ordering::Relaxed);
        Ok(())
    }

    fn statfs(d: &MountData) -> Result<StatFs> {
        let fs = d.fs();
        let s = fs.statfs().map_err(kerr)?;
        let uuid = fs.superblock().uuid;
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&uuid[..8]);
        b.copy_from_slice(&uuid[8..]);
        Ok(StatFs {
            bsize: UNIT as u32,
            blocks: s.total_units,
            bfree: s.free_units,
            files: s.total_entries,
            ffree: s.free_entries,
            namelen: 255,
            fsid: u64::from_le_bytes(a) ^ u64::from_le_bytes(b),
        })
    }

    fn show_options(d: &MountData, m: &SeqFile) {
        seq_print!(m, ",node={},lease_ms={}", d.node, d.lease_ms);
        if d.coherent {
            seq_print!(m, ",coherent");
        }
    }

    /// Leaving the pool drops every hold of this host, so the unmount first
    /// waits (the heartbeat keeps the lease) until no lingering key's pages
    /// are referenced. Only a fatal signal ends the wait early; then the
    /// device's page map is kept forever, so that at least the device can
    /// never be removed under the pages.
    fn shutdown(d: &MountData) {
        let mut waited = 0u32;
        loop {
            let mut left = retry_lingering(d, &mut d.fs());
            // A backstop for references no lingering key stands for (a
            // read-only mount takes no holds; a key that could not be
            // queued): any referenced page of the data area waits too, as
            // the page map must outlive it.
            if left == 0 && d.map.busy(d.data_off, d.geo.data_units * UNIT) {
                left = 1;
            }
            if left == 0 {
                return;
            }
            if waited % 100 == 0 {
                pr_warn!(
                    "node {}: unmount waits for {} keys whose pages are still referenced (DMA registrations, pipe buffers): release them, or kill the unmount\n",
                    d.node,
                    left
                );
            }
            waited += 1;
            if crate::vfs::sys::sleep_killable(100) {
                pr_err!(
                    "node {}: unmount killed while {} keys' pages are still referenced: other hosts may reuse their units; the device can no longer be removed\n",
                    d.node,
                    left
                );
                d.leak_pagemap.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

impl Marufs {
    /// The change counter vouching for a name in directory `dir` (`child`:
    /// the name's inode, `None` for an absent name), if the pool keeps
    /// them: a dentry looked up or revalidated after reading value `c`
    /// stays valid while this returns `Some(c)`. Never 0. Does not sleep
    /// (one invalidated line: used in RCU walk).
    pub(crate) fn changes(d: &MountData, dir: u64, child: Option<u64>) -> Option<u64> {
        if !d.dir_changes {
            return None;
        }
        let id = match (decode_ino(dir), child.and_then(decode_ino)) {
            // A key (or a key's absence) in an application directory: its
            // directory's counter.
            (Some(Ino::Dir(id, _)), _) => id,
            // An application directory under the root: its own counter.
            (Some(Ino::Root), Some(Ino::Dir(id, _))) => id,
            _ => return None,
        };
        dir_changes(&d.counters, &d.geo, id)
    }

    /// Current attributes of inode `ino` named `name` in `dir`, or `None` if
    /// that incarnation is gone.
    fn revalidate(d: &MountData, dir: u64, name: &[u8], ino: u64) -> Result<Option<Attrs>> {
        let same_name = |bytes: &[u8], len: u8| bytes.get(..usize::from(len)) == Some(name);
        match decode_ino(ino) {
            Some(Ino::Root) => Ok(Some(d.root)),
            Some(Ino::Dir(id, generation)) => {
                let Some(x) = found(d.fs().stat_dir(id))? else {
                    return Ok(None);
                };
                let ok = x.rec.state == dir_state::USED
                    && x.rec.generation & 0x3fff_ffff == generation
                    && same_name(&x.rec.name.bytes, x.rec.name.len);
                Ok(ok.then(|| dir_attrs(&x)))
            }
            Some(Ino::Key(entry, generation)) => {
                let Some(Ino::Dir(dir_id, _)) = decode_ino(dir) else {
                    return Ok(None);
                };
                let Some(k) = found(d.fs().stat_entry(entry))? else {
                    return Ok(None);
                };
                let ok = k.rec.state == entry_state::PUBLISHED
                    && k.rec.generation & 0x7fff_ffff == generation
                    && k.rec.dir == dir_id
                    && same_name(&k.rec.name.bytes, k.rec.name.len);
                Ok(ok.then(|| key_attrs(entry, &k.rec)))
            }
            None => Ok(None),
        }
    }
}

impl Namespace for Marufs {
    /// The dentry is tagged with the directory's change counter, read
    /// before the lookup: a change after it makes the counter differ.
    fn lookup(d: &MountData, dir: u64, name: &[u8]) -> Result<Lookup> {
        let tag = Self::changes(d, dir, None).unwrap_or(0);
        let attrs = match decode_ino(dir) {
            Some(Ino::Root) => found(d.fs().lookup_dir(name))?.map(|x| dir_attrs(&x)),
            Some(Ino::Dir(id, _)) => found(d.fs().lookup(id, name))?.map(|k: Key| key_attrs(k.entry, &k.rec)),
            _ => return Err(ENOTDIR),
        };
        Ok(Lookup { attrs, tag })
    }

    fn mkdir(d: &MountData, dir: u64, name: &[u8], mode: u16, uid: u32, gid: u32) -> Result<Attrs> {
        if !matches!(decode_ino(dir), Some(Ino::Root)) {
            // Application directories hold keys, not directories.
            return Err(EPERM);
        }
        if d.read_only.load(Ordering::Relaxed) {
            return Err(EROFS);
        }
        let mut fs = d.fs();
        let id = fs.mkdir(name, uid, gid, u32::from(mode)).map_err(kerr)?;
        let dir = fs.stat_dir(id).map_err(kerr)?;
        Ok(dir_attrs(&dir))
    }

    fn rmdir(d: &MountData, dir: u64, name: &[u8]) -> Result {
        if !matches!(decode_ino(dir), Some(Ino::Root)) {
            return Err(ENOTDIR);
        }
        if d.read_only.load(Ordering::Relaxed) {
            return Err(EROFS);
        }
        d.fs().rmdir(name).map_err(kerr)
    }

    fn readdir(d: &MountData, dir: u64, cursor: u64) -> Result<Option<(DirEntry, u64)>> {
        let mut e = DirEntry {
            name: [0; 255],
            len: 0,
            ino: 0,
            kind: Kind::Dir,
        };
        let fill = |e: &mut DirEntry, bytes: &[u8], len: u8| {
            let n = usize::from(len).min(255);
            if let (Some(dst), Some(src)) = (e.name.get_mut(..n), bytes.get(..n)) {
                dst.copy_from_slice(src);
            }
            e.len = n as u8;
        };
        match decode_ino(dir) {
            Some(Ino::Root) => {
                let c = u32::try_from(cursor).map_err(|_| EINVAL)?;
                match d.fs().readdir_dirs(c).map_err(kerr)? {
                    Some((x, next)) => {
                        fill(&mut e, &x.rec.name.bytes, x.rec.name.len);
                        e.ino = dir_ino(x.id, x.rec.generation);
                        Ok(Some((e, u64::from(next))))
                    }
                    None => Ok(None),
                }
            }
            Some(Ino::Dir(id, _)) => match d.fs().readdir(id, cursor).map_err(kerr)? {
                Some((k, next)) => {
                    fill(&mut e, &k.rec.name.bytes, k.rec.name.len);
                    e.ino = key_ino(k.entry, k.rec.generation);
                    e.kind = Kind::Key;
                    Ok(Some((e, next)))
                }
                None => Ok(None),
            },
            _ => Err(ENOTDIR),
        }
    }

    /// A dentry tagged with a change counter that still reads the same is
    /// valid (one invalidated line per path component, in RCU walk).
    /// Otherwise a positive dentry is checked against the media (not in RCU
    /// walk) and a negative one looked up again.
    fn d_revalidate(d: &MountData, r: &Revalidating<'_>) -> Result<Revalidate> {
        let now = Self::changes(d, r.dir, r.child);
        if r.tag != 0 && now == Some(r.tag) {
            // Nothing in the directory changed since the dentry was checked.
            return Ok(Revalidate::Valid);
        }
        if r.rcu {
            // Checking against the media may sleep.
            return Ok(Revalidate::NeedsBlocking);
        }
        let Some(ino) = r.child else {
            // A stale negative dentry: look the name up again.
            return Ok(Revalidate::Invalid);
        };
        Ok(match Self::revalidate(d, r.dir, r.name, ino)? {
            // Read before the check, like a lookup's tag.
            Some(a) => Revalidate::Refreshed(a, now.unwrap_or(0)),
            None => Revalidate::Invalid,
        })
    }
}

/// Per-inode state of a key.
pub struct KeyState {
    entry: u32,
    generation: u64,
    /// Unpublished, created by this host; cleared when published.
    creating: AtomicBool,
    /// The creating file was opened (only one file may be the creator).
    creator_open: AtomicBool,
    /// Open files of this key on this host holding it (the host-wide hold
    /// bit is set while this is non-zero; changed under the fs mutex).
    holders: AtomicU32,
    /// Growing the unpublished key failed (ENOSPC...) or its creator
    /// discarded it (`IOC_DISCARD`): discarded at release, never published.
    failed: AtomicBool,
    /// Published by `linkat` while its creating file is still open: that file
    /// counts as a holder (in `holders`) until it is released.
    creator_holds: AtomicBool,
    /// A user mapping of the unpublished key was made writable: its stores
    /// may sit in this host's cache (`KeyWrites`).
    mapped_writable: AtomicBool,
    /// The published record (size, extents), read once when a file of the
    /// key is first opened with a hold (joined mounts): a published key's
    /// record never changes while held, and a later hold of the same
    /// generation is of the same record. Reads and faults use it without
    /// the mount mutex, so they never wait behind a metadata operation that
    /// waits for the cross-host lock.
    published: SetOnce<EntryRec>,
}

impl KeyState {
    fn handle(&self) -> Handle {
        Handle {
            entry: self.entry,
            generation: self.generation,
        }
    }
}

/// Per-open-file state of a key.
pub struct OpenKey {
    creator: bool,
    held: bool,
}

fn units(r: &EntryRec) -> u64 {
    r.extents
        .iter()
        .take(r.nextents as usize)
        .map(|e| u64::from(e.count))
        .sum()
}

/// Sets the size of an unpublished key; units it newly allocates are zeroed
/// before anyone can read them (they may hold a deleted key's bytes).
/// `shrink`: the size may also go down (truncate).
fn set_size_zeroed(d: &MountData, k: &KeyState, size: u64, shrink: bool) -> Result {
    // A truncate refused because given-up units are still referenced
    // (EBUSY) changed nothing: the key stays intact.
    set_size_inner(d, k, size, shrink).inspect_err(|e| {
        if *e != EBUSY {
            k.failed.store(true, Ordering::Release)
        }
    })
}

/// The metadata change runs under the mount mutex; the zeroing (slow: 2 MiB
/// per unit) runs after it is dropped, so the heartbeat is never starved by
/// the data path. Nobody else can see the new units meanwhile: the key is
/// unpublished and the caller is its creator.
fn set_size_inner(d: &MountData, k: &KeyState, size: u64, shrink: bool) -> Result {
    // Units the heartbeat zeroed ahead (at most ZEROED_AHEAD of them).
    let mut known = [0u32; ZEROED_AHEAD];
    let mut nknown = 0usize;
    let (had, after) = {
        let mut fs = d.fs();
        let before = fs.extents(&k.handle()).map_err(kerr)?;
        if size == before.size || (size < before.size && !shrink) {
            return Ok(());
        }
        if size < before.size {
            // The vfs layer zapped the mappings past `size`; a page of the
            // units given up that is still referenced (pinned, in a pipe)
            // keeps them: refused, nothing changes.
            if KeyRanges::of(&d.geo, &before, size.div_ceil(UNIT)).busy(d) {
                return Err(EBUSY);
            }
        }
        fs.set_size_with(&k.handle(), size, |u| {
            if let Some(x) = known.get_mut(nknown) {
                *x = u;
                nknown += 1;
            }
        })
        .map_err(kerr)?;
        (units(&before), fs.extents(&k.handle()).map_err(kerr)?)
    };
    let known = known.get(..nknown).unwrap_or(&[]);
    let mut skip = had;
    for e in after.extents.iter().take(after.nextents as usize) {
        let n = u64::from(e.count);
        if skip >= n {
            skip -= n;
            continue;
        }
        for u in u64::from(e.start) + skip..u64::from(e.start) + n {
            if !known.contains(&(u as u32)) {
                // Zeroing a large key takes long (2 MiB per unit), and its
                // units are the pool's only while this host's lease holds:
                // a host that stalled mid-way and was taken over would zero
                // units the survivor has since given to other keys. Checked
                // before each unit (a check and one unit's stores are the
                // window software fencing bounds); a failure fails the key.
                d.fs().check_live().map_err(kerr)?;
                d.map.zero(d.data_off + u * UNIT, UNIT)?;
                if test_skips(TEST_SLOW_ZEROING) {
                    crate::vfs::sys::sleep_killable(500);
                }
            }
        }
        skip = 0;
    }
    Ok(())
}

/// How many units the core may know to be zero (its `ZEROED_MAX`).
const ZEROED_AHEAD: usize = 128;

/// Zeroes free units of this host's chunks ahead of time (background, from
/// the heartbeat), for at most `budget_ns`, so that new keys needn't: a unit
/// is reserved under the mutex, zeroed without it, then recorded as known
/// zero (the core's `begin_zeroing`/`finish_zeroing`). Returns units zeroed.
fn zero_ahead(d: &MountData, budget_ns: u64) -> u32 {
    let start = crate::vfs::sys::ktime_ns();
    let mut n = 0;
    while crate::vfs::sys::ktime_ns().saturating_sub(start) < budget_ns {
        if d.read_only.load(Ordering::Relaxed) {
            break;
        }
        let u = {
            let mut fs = d.fs();
            match fs.begin_zeroing() {
                Ok(Some(u)) => u,
                // Nothing left to zero: take another chunk if the core
                // wants more zeroed units (a growing set of keys).
                Ok(None) if fs.grow_for_zeroing().unwrap_or(false) => continue,
                _ => break,
            }
        };
        let ok = d.map.zero(d.data_off + u64::from(u) * UNIT, UNIT).is_ok();
        if test_skips(TEST_SLOW_ZERO_AHEAD) {
            let ms = d.lease_ms.saturating_mul(5) / 2;
            if !d.slow_zero_said.swap(true, Ordering::Relaxed) {
                pr_info!("node {}: test: zeroing ahead takes {} ms per unit\n", d.node, ms);
            }
            crate::vfs::sys::sleep_killable(ms);
        }
        d.fs().finish_zeroing(u, ok);
        if !ok {
            break;
        }
        n += 1;
        crate::vfs::sys::cond_resched();
    }
    n
}

/// Creates an unpublished key in application directory `dir` with `make`
/// (named or unnamed) and returns its attributes.
fn new_key(
    d: &MountData,
    dir: u64,
    make: impl FnOnce(&mut CoreFs, u32) -> core::result::Result<Handle, CoreError>,
) -> Result<Attrs> {
    let Some(Ino::Dir(id, _)) = decode_ino(dir) else {
        // The root holds application directories only.
        return Err(EPERM);
    };
    ensure_rw(d)?;
    let mut fs = d.fs();
    let h = make(&mut fs, id).map_err(kerr)?;
    let rec = fs.extents(&h).map_err(kerr)?;
    Ok(key_attrs(h.entry, &rec))
}

fn ensure_rw(d: &MountData) -> Result {
    if d.read_only.load(Ordering::Relaxed) {
        Err(EROFS)
    } else {
        Ok(())
    }
}

impl Keys for Marufs {
    type KeyState = KeyState;
    type OpenKey = OpenKey;

    fn key_state(a: &Attrs, creating: bool) -> KeyState {
        KeyState {
            entry: a.ino as u32,
            generation: a.generation,
            creating: AtomicBool::new(creating),
            creator_open: AtomicBool::new(false),
            holders: AtomicU32::new(0),
            failed: AtomicBool::new(false),
            creator_holds: AtomicBool::new(false),
            mapped_writable: AtomicBool::new(false),
            published: SetOnce::new(),
        }
    }

    fn create(d: &MountData, dir: u64, name: &[u8], mode: u16, uid: u32, gid: u32) -> Result<Attrs> {
        new_key(d, dir, |fs, id| fs.create(id, name, uid, gid, u32::from(mode)))
    }

    fn create_tmp(d: &MountData, dir: u64, mode: u16, uid: u32, gid: u32) -> Result<Attrs> {
        new_key(d, dir, |fs, id| fs.create_tmp(id, uid, gid, u32::from(mode)))
    }

    fn link(d: &MountData, dir: u64, k: &KeyState, name: &[u8]) -> Result {
        let Some(Ino::Dir(id, _)) = decode_ino(dir) else {
            return Err(EPERM);
        };
        ensure_rw(d)?;
        if !k.creating.load(Ordering::Acquire) {
            // Keys have one name: no hard links.
            return Err(EPERM);
        }
        if k.failed.load(Ordering::Acquire) {
            // Its data is incomplete (a failed write or truncate).
            return Err(EIO);
        }
        let rec = d.fs().extents(&k.handle()).map_err(kerr)?;
        if !rec.name.is_temporary() {
            return Err(EPERM);
        }
        if rec.dir != id {
            return Err(EXDEV);
        }
        // The vfs layer zapped the key's mappings first: every store made
        // through them is in this host's cache or in memory; written back
        // before the key becomes visible.
        write_back_key(d, k, &rec)?;
        let mut fs = d.fs();
        // The creating file keeps the bytes alive like any reader: hold the
        // key before it becomes visible (and unlinkable) to others.
        let fresh_hold = k.holders.load(Ordering::Relaxed) == 0;
        if fresh_hold {
            fs.hold_creating(&k.handle()).map_err(kerr)?;
        }
        if let Err(e) = fs.publish_as(&k.handle(), name, None) {
            if fresh_hold {
                let _ = fs.release(k.entry);
            }
            return Err(kerr(e));
        }
        k.creating.store(false, Ordering::Release);
        k.holders.fetch_add(1, Ordering::Relaxed);
        k.creator_holds.store(true, Ordering::Release);
        drop(fs);
        own_units(d, k, &rec);
        Ok(())
    }

    fn unlink(d: &MountData, dir: u64, name: &[u8]) -> Result {
        let Some(Ino::Dir(id, _)) = decode_ino(dir) else {
            return Err(EPERM);
        };
        ensure_rw(d)?;
        // Reclaimed in the same lock acquisition if no host holds it
        // (otherwise the last release or the heartbeat does).
        d.fs().unlink_reclaim(id, name).map_err(kerr)?;
        Ok(())
    }

    fn rename(d: &MountData, dir: u64, old: &[u8], new: &[u8]) -> Result {
        let Some(Ino::Dir(id, _)) = decode_ino(dir) else {
            // Application directories are not renamed.
            return Err(EPERM);
        };
        ensure_rw(d)?;
        d.fs().rename(id, old, new).map_err(kerr)
    }

    fn open(d: &MountData, k: &KeyState, write: bool, vouch: Option<(u64, u64)>) -> Result<OpenKey> {
        if d.fenced.load(Ordering::Relaxed) {
            // No holds can be taken any more: a key read now could be
            // reclaimed under the reader.
            return Err(ESHUTDOWN);
        }
        if k.creating.load(Ordering::Acquire) {
            if k.creator_open.swap(true, Ordering::AcqRel) {
                // Unpublished keys are visible only through their creating file.
                return Err(ENOENT);
            }
            return Ok(OpenKey {
                creator: true,
                held: false,
            });
        }
        if write {
            // Published keys are immutable.
            return Err(EPERM);
        }
        let mut fs = d.fs();
        if !fs.is_joined() {
            // A read-only mount has not joined the pool: it reads without
            // holds (see Documentation/design/security.md).
            return Ok(OpenKey {
                creator: false,
                held: false,
            });
        }
        let lingering = k.holders.load(Ordering::Relaxed) == 0
            && d.lingering.lock().iter().any(|l| !l.abort && l.handle.entry == k.entry);
        if lingering {
            // This host's hold bit has stayed set since the key's pages
            // lingered, so the entry was never reclaimed: still published
            // at this generation means this file may take the hold over
            // (its release checks the pages again). Otherwise the hold stays
            // with the lingering pages, untouched.
            let ok = fs
                .stat_entry(k.entry)
                .is_ok_and(|e| e.rec.state == entry_state::PUBLISHED && e.rec.generation == k.generation);
            if !ok {
                return Err(ENOENT);
            }
            d.lingering.lock().retain(|l| l.abort || l.handle.entry != k.entry);
        } else if k.holders.load(Ordering::Relaxed) == 0 {
            // The dentry's tag, if its directory's counter still reads it,
            // spares the hold a re-read of the entry.
            let vouch = vouch.and_then(|(dir, tag)| match decode_ino(dir) {
                Some(Ino::Dir(id, _)) if d.dir_changes => Some((id, tag)),
                _ => None,
            });
            fs.hold_vouched(k.entry, k.generation, vouch).map_err(|e| match e {
                CoreError::Stale | CoreError::NotFound => ENOENT,
                e => kerr(e),
            })?;
        }
        k.holders.fetch_add(1, Ordering::Relaxed);
        if k.published.as_ref().is_none() {
            if let Ok(e) = fs.stat_entry(k.entry) {
                if e.rec.state == entry_state::PUBLISHED && e.rec.generation == k.generation {
                    k.published.populate(e.rec);
                }
            }
        }
        Ok(OpenKey {
            creator: false,
            held: true,
        })
    }

    fn release(d: &MountData, k: &KeyState, f: OpenKey) {
        // The creator's stores reach memory before anyone can see the key,
        // or before its units are given up (no mapping is left: each one
        // holds the file). Outside the mutex: the units are this key's.
        let mut written = None;
        if f.creator && k.creating.load(Ordering::Acquire) {
            let rec = d.fs().extents(&k.handle());
            if let Ok(rec) = rec {
                if let Err(e) = write_back_key(d, k, &rec) {
                    pr_err!("key entry {}: writing back its bytes failed: error {}; the key is discarded\n", k.entry, e.to_errno());
                    k.failed.store(true, Ordering::Release);
                }
                written = Some(rec);
            }
        }
        let mut fs = d.fs();
        let unnamed = f.creator
            && k.creating.load(Ordering::Acquire)
            && fs.extents(&k.handle()).is_ok_and(|r| r.name.is_temporary());
        let held = f.held || (f.creator && k.creator_holds.swap(false, Ordering::AcqRel));
        // Pages of the creator's units still referenced after its last
        // mapping went (pinned, in a pipe): the units stay allocated.
        let creating = f.creator && k.creating.load(Ordering::Acquire);
        let ranges = if creating {
            fs.extents(&k.handle()).ok().map(|r| KeyRanges::of(&d.geo, &r, 0))
        } else {
            None
        };
        let pinned = ranges.filter(|r| r.busy(d));
        if creating && (k.failed.load(Ordering::Acquire) || unnamed) {
            // A write or truncate failed, or an O_TMPFILE was never
            // linked: never publish it.
            k.creating.store(false, Ordering::Release);
            if let Some(r) = pinned {
                linger(d, k.handle(), true, r);
            } else if let Err(e) = fs.abort(&k.handle()) {
                pr_warn!("key entry {}: discarding failed key: error {}\n", k.entry, e.errno());
            }
        } else if creating {
            // Still-referenced pages hold the key from before it becomes
            // visible (and unlinkable) to other hosts.
            let hold = pinned.is_some() && fs.hold_creating(&k.handle()).is_ok();
            let publish = if pinned.is_some() && !hold {
                // Without the hold, publishing would let another host
                // unlink and reuse the units under the references.
                Err(CoreError::Busy)
            } else {
                fs.publish(&k.handle(), None)
            };
            match publish {
                Ok(()) => {
                    k.creating.store(false, Ordering::Release);
                    if let Some(rec) = &written {
                        own_units(d, k, rec);
                    }
                    if let (true, Some(r)) = (hold, pinned) {
                        linger(d, k.handle(), false, r);
                    }
                }
                Err(e) => {
                    pr_err!("key entry {}: publish failed: error {}; the key is discarded\n", k.entry, e.errno());
                    if let Some(r) = pinned {
                        linger(d, k.handle(), true, r);
                    } else {
                        let _ = fs.abort(&k.handle());
                    }
                }
            }
        }
        if held && k.holders.fetch_sub(1, Ordering::Relaxed) == 1 {
            // The last file of the key on this host: the hold goes unless
            // its pages are still referenced (then when they are idle).
            let r = match k.published.as_ref() {
                Some(rec) => Some(KeyRanges::of(&d.geo, rec, 0)),
                None => fs
                    .stat_entry(k.entry)
                    .ok()
                    .filter(|e| e.rec.generation == k.generation)
                    .map(|e| KeyRanges::of(&d.geo, &e.rec, 0)),
            };
            if let Some(r) = r.filter(|r| r.busy(d)) {
                linger(d, k.handle(), false, r);
            } else {
                // After a lost lease the hold is gone with the incarnation
                // (survivors ignore a fenced host's holds): nothing to say.
                if let Err(e) = fs.release(k.entry) {
                    if !d.fenced.load(Ordering::Relaxed) && !fs.lost_lease() {
                        pr_warn!("key entry {}: release failed: error {}\n", k.entry, e.errno());
                    }
                }
                let _ = fs.drain_orphans();
            }
        }
    }

    fn evict(d: &MountData, k: &KeyState) {
        if k.creating.load(Ordering::Acquire) && !k.creator_open.load(Ordering::Acquire) {
            // Created but never opened (the open failed): discard it.
            let _ = d.fs().abort(&k.handle());
        }
    }

    fn segment(d: &MountData, k: &KeyState, pos: u64) -> Result<Option<Segment>> {
        let owned;
        let rec = match k.published.as_ref() {
            // Published and held (the file being read or mapped holds it).
            Some(r) if !k.creating.load(Ordering::Acquire) => r,
            _ => {
                owned = {
                    let fs = d.fs();
                    if k.creating.load(Ordering::Acquire) {
                        fs.extents(&k.handle()).map_err(kerr)?
                    } else {
                        fs.stat_entry(k.entry).map_err(kerr)?.rec
                    }
                };
                &owned
            }
        };
        if rec.generation != k.generation {
            return Err(ESTALE);
        }
        if pos >= rec.size {
            return Ok(None);
        }
        // The core only hands out records whose extents lie in the data
        // area (`EntryRec::extents_valid`); `locate` checks it again.
        let Some(l) = rec.locate(&d.geo, pos) else {
            return Err(corrupt_entry(k.entry));
        };
        // One unit at a time: each is checked against the tracker before
        // its bytes are read or mapped (the creator's own units need not).
        let unit = (l.off - d.geo.data_off) / UNIT;
        let len = l.len.min(d.geo.unit(unit) + UNIT - l.off);
        if !k.creating.load(Ordering::Acquire) {
            before_read(d, k, unit)?;
        }
        Ok(Some(Segment { dev_off: l.off, len }))
    }

    fn immutable(k: &KeyState) -> bool {
        !k.creating.load(Ordering::Acquire)
    }

    fn fsync(d: &MountData, k: &KeyState) -> Result {
        if !k.creating.load(Ordering::Acquire) {
            // Published: written back at publish, immutable since.
            return Ok(());
        }
        let rec = d.fs().extents(&k.handle()).map_err(kerr)?;
        write_back_key(d, k, &rec)
    }

    fn discard(_d: &MountData, k: &KeyState, f: &OpenKey) -> Result {
        if !f.creator || !k.creating.load(Ordering::Acquire) {
            return Err(EPERM);
        }
        // Released as a failed key: aborted, never published.
        k.failed.store(true, Ordering::Release);
        Ok(())
    }

    fn grow(d: &MountData, k: &KeyState, f: &OpenKey, size: u64) -> Result {
        if !f.creator || !k.creating.load(Ordering::Acquire) {
            return Err(EPERM);
        }
        ensure_rw(d)?;
        set_size_zeroed(d, k, size, false)
    }

    fn setattr(d: &MountData, ino: u64, k: Option<&KeyState>, a: &SetAttr) -> Result<Attrs> {
        ensure_rw(d)?;
        let mode = a.mode.map(u32::from);
        let mut fs = d.fs();
        match decode_ino(ino) {
            Some(Ino::Root) => {
                pr_warn!("the root directory's owner and mode come from the mount options (uid=, gid=, mode=)\n");
                Err(EPERM)
            }
            Some(Ino::Dir(id, _)) => {
                if a.size.is_some() {
                    return Err(EISDIR);
                }
                fs.setattr_dir(id, a.uid, a.gid, mode).map_err(kerr)?;
                Ok(dir_attrs(&fs.stat_dir(id).map_err(kerr)?))
            }
            Some(Ino::Key(entry, _)) => {
                let k = k.ok_or(EINVAL)?;
                if k.creating.load(Ordering::Acquire) {
                    if let Some(size) = a.size {
                        drop(fs);
                        set_size_zeroed(d, k, size, true)?;
                        fs = d.fs();
                    }
                    if mode.is_some() || a.uid.is_some() || a.gid.is_some() {
                        // Attributes of an unpublished key are set at publish
                        // from the creating record; changing them now is not
                        // supported.
                        return Err(EOPNOTSUPP);
                    }
                    return Ok(key_attrs(entry, &fs.extents(&k.handle()).map_err(kerr)?));
                }
                if a.size.is_some() {
                    // Published keys are immutable.
                    return Err(EPERM);
                }
                let rec = fs.stat_entry(entry).map_err(kerr)?.rec;
                if rec.generation != k.generation {
                    return Err(ESTALE);
                }
                let name = rec.name.bytes.get(..usize::from(rec.name.len)).ok_or(EIO)?;
                fs.setattr(rec.dir, name, a.uid, a.gid, mode).map_err(kerr)?;
                Ok(key_attrs(entry, &fs.stat_entry(entry).map_err(kerr)?.rec))
            }
            None => Err(EINVAL),
        }
    }

    fn mapping(d: &MountData) -> &DaxMapping {
        &d.map
    }
}

impl Marufs {
    /// Whether directory `dir` takes batched lookups (an error otherwise).
    pub(crate) fn batch_dir(dir: u64) -> Result {
        match decode_ino(dir) {
            Some(Ino::Dir(..)) => Ok(()),
            // Batched lookups are of keys, in application directories.
            _ => Err(EINVAL),
        }
    }

    /// Runs `f` on the mount's table of batched-lookup answers (held locked
    /// meanwhile; `None` if it has none, and has none to make unless
    /// `make`).
    pub(crate) fn with_answers<R>(d: &MountData, make: bool, f: impl FnOnce(Option<&mut NameTable<'_>>) -> R) -> R {
        let mut slots = d.names.lock();
        if make && slots.is_empty() {
            // The first batched lookup of this mount; without memory for
            // the table, every name is looked up.
            if let Ok(v) = KVVec::from_elem(Group::default(), NAME_GROUPS, GFP_KERNEL) {
                *slots = v;
            }
        }
        f(NameTable::new(&mut slots).as_mut())
    }
}

impl Ioctls for Marufs {
    fn dir_ioctl(d: &MountData, dir: &DirFile<Self>, cmd: u32, arg: usize) -> Result<u32> {
        match cmd {
            abi::IOC_LOOKUP => crate::batch::lookup(d, dir, arg),
            abi::IOC_TEST_HOLD_LOCK if test_skips(TEST_HOLD_LOCK) => {
                ensure_rw(d)?;
                let ms = u64::try_from(arg).unwrap_or(u64::MAX).min(600_000);
                d.fs().hold_lock_for(ms * 1_000_000).map_err(kerr)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }

    fn key_ioctl(d: &MountData, f: &File<Self>, cmd: u32, _arg: usize) -> Result<u32> {
        match cmd {
            abi::IOC_DISCARD => {
                let (_, k, of) = f.args()?;
                Self::discard(d, k, of).map(|()| 0)
            }
            _ => Err(ENOTTY),
        }
    }
}

impl Faults for Marufs {
    fn plan(d: &MountData, k: &KeyState, pos: u64, order: u32, write: bool) -> FaultPlan {
        if d.fenced.load(Ordering::Relaxed) {
            // Lost the lease: the units may belong to another host's keys
            // by now (checked under the invalidate lock the revocation
            // takes, so no fault planned before it maps after it).
            return FaultPlan::SigBus;
        }
        if write && !k.creating.load(Ordering::Acquire) {
            // Published keys are immutable: no writable mapping of them.
            return FaultPlan::SigBus;
        }
        if write {
            // Stores through this mapping may sit in this host's cache.
            k.mapped_writable.store(true, Ordering::Release);
        }
        match Self::segment(d, k, pos) {
            // A PMD needs its whole unit: units are 2 MiB aligned on the
            // device and in the file, so a segment at an aligned position is
            // the start of a unit of this key.
            Ok(Some(seg)) if order == 0 || pos % UNIT == 0 => FaultPlan::Map(seg.dev_off),
            Ok(Some(_)) => FaultPlan::Fallback,
            _ => FaultPlan::SigBus,
        }
    }

    fn mkwrite(d: &MountData, k: &KeyState) -> bool {
        let ok = k.creating.load(Ordering::Acquire) && !d.fenced.load(Ordering::Relaxed);
        if ok {
            k.mapped_writable.store(true, Ordering::Release);
        }
        ok
    }

    /// Shared mappings only: a private (copy-on-write) mapping of shared
    /// device memory is refused with `EINVAL`, as device-dax does.
    fn mmap(_d: &MountData, _k: &KeyState, shared: bool) -> Result {
        if shared {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }
}

impl Periodic for Marufs {
    /// The heartbeat: four renewals per lease on a read-write mount.
    fn period_ms(d: &MountData) -> Option<u32> {
        if d.read_only.load(Ordering::Relaxed) {
            None
        } else {
            Some((d.lease_ms / 4).max(25))
        }
    }

    fn tick(d: &MountData) -> Tick {
        let now = crate::vfs::sys::ktime_ns();
        let last = d.last_tick_ns.swap(now, Ordering::Relaxed);
        let period = u64::from((d.lease_ms / 4).max(25)) * 1_000_000;
        let late = now.saturating_sub(last).saturating_sub(period);
        if last != 0
            && late > u64::from(d.lease_ms) * 500_000
            && (d.late_said_ns.load(Ordering::Relaxed) == 0
                || now.saturating_sub(d.late_said_ns.load(Ordering::Relaxed)) > 60_000_000_000)
        {
            d.late_said_ns.store(now, Ordering::Relaxed);
            pr_warn!(
                "node {}: the heartbeat ran {} ms late (lease {} ms): this host is overloaded or stalled; a renewal a lease late loses the lease\n",
                d.node,
                late / 1_000_000,
                d.lease_ms
            );
        }
        // TEST ONLY: the simulated cache evicts lines (dirty ones reach
        // memory) at any moment; here, a few hundred per tick.
        d.map.evict_some(512);
        if d.fenced.load(Ordering::Relaxed) {
            return if d.revoked.load(Ordering::Relaxed) {
                Tick::Done
            } else {
                Tick::RevokeMappings
            };
        }
        let mut fs = d.fs();
        if !fs.lost_lease() {
            if !fs.is_joined() {
                return Tick::Done;
            }
            if let Err(e) = fs.heartbeat() {
                if !fs.lost_lease() {
                    // Not a lost lease (a media error): tried again next tick.
                    pr_warn!("node {}: heartbeat failed: error {}\n", d.node, e.errno());
                    return Tick::Done;
                }
            }
        }
        if fs.lost_lease() {
            // The heartbeat or an operation found the lease expired or the
            // epoch fenced: the guard's drop turns the mount read-only and
            // says so; the mappings go now.
            return Tick::RevokeMappings;
        }
        // Renewal is cheap and comes first on every tick; scanning the peers
        // and reclaiming orphans (reads of every host slot) every 4th tick,
        // so that slow media never delays a renewal past the lease.
        if d.dev.removal_pending() && !d.removal_said.swap(true, Ordering::Relaxed) {
            pr_warn!("node {}: the device is being removed: its removal waits until this pool is unmounted\n", d.node);
        }
        retry_lingering(d, &mut fs);
        if d.ticks.fetch_add(1, Ordering::Relaxed) % 4 == 0 {
            if let Err(e) = fs.check_peers() {
                pr_warn!("node {}: checking peers failed: error {}\n", d.node, e.errno());
            }
            // Takeovers happen in whichever lock acquisition first sees a
            // peer silent past its expiry; said here, once per takeover.
            let t = fs.takeovers();
            let said = d.takeovers_said.swap(t, Ordering::Relaxed);
            if t != said {
                pr_info!(
                    "node {}: took over {} host(s) that stopped renewing their lease\n",
                    d.node,
                    t.wrapping_sub(said)
                );
            }
            let _ = fs.drain_orphans();
        }
        Tick::Done
    }

    /// Zeroing ahead runs beside the heartbeat, never in its way: one unit
    /// on slow media (an emulated CXL window) can take longer than a lease.
    fn background_period_ms(d: &MountData) -> Option<u32> {
        Self::period_ms(d)
    }

    /// At most a twentieth of the lease per lease/4 (and at least one unit)
    /// on zeroing free units ahead of use.
    fn background(d: &MountData) {
        if !d.fenced.load(Ordering::Relaxed) {
            zero_ahead(d, u64::from(d.lease_ms) * 50_000);
        }
    }

    fn revoked(d: &MountData, done: bool) {
        if done && !d.revoked.swap(true, Ordering::Relaxed) {
            pr_err!("node {}: every mapping of the pool on this host is revoked (faults get SIGBUS)\n", d.node);
        }
    }
}

/// This host lost its lease (its clock says it expired, or a survivor
/// fenced its epoch): from now on the mount writes nothing to the pool,
/// opens fail with `ESHUTDOWN`, faults get `SIGBUS`, zeroing stops, and the
/// next tick revokes every user mapping. Said once in dmesg. Only a new
/// mount (a new incarnation) writes again.
fn lost_lease(d: &MountData, errno: i32) {
    d.read_only.store(true, Ordering::Relaxed);
    if !d.fenced.swap(true, Ordering::Relaxed) {
        pr_err!(
            "node {}: lost its lease (error {}): this host may have been fenced and taken over; it writes nothing more to the pool, its mappings are revoked and opens fail; umount and mount again\n",
            d.node,
            errno
        );
    }
}

/// Releases a mount claim if mounting fails before the mount data exists.
struct ClaimGuard {
    phys: u64,
    node: u32,
    armed: bool,
}

impl ClaimGuard {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.armed {
            release_mount(self.phys, self.node);
        }
    }
}

impl Drop for MountData {
    fn drop(&mut self) {
        let mut fs = self.fs.lock();
        if fs.is_joined() {
            if let Err(e) = fs.leave() {
                pr_warn!("node {}: leaving the pool failed: error {}\n", self.node, e.errno());
            }
        }
        drop(fs);
        release_mount(self.phys, self.node);
        if *self.leak_pagemap.get_mut() {
            self.dev.leak_pagemap();
        }
    }
}
