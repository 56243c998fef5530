//! Deterministic multi-host simulator and checker for marufs-core.
//!
//! Each seed builds a small pool shared by 2-4 simulated hosts. Every host has a
//! private non-coherent write-back cache ([`mem`]); hosts run as OS threads that
//! pass a baton at every media call, so interleavings, cache evictions and
//! crashes (with torn write-back at 64-byte granularity) are all decided by the
//! seed. After every round the checker compares the pool (read coherently, as
//! shared memory holds it) with a reference model and runs fsck.
//!
//! Replay a failure with `MARUFS_SIM_SEED=<seed> cargo test -p marufs-sim replay`.

// Test harness: readability over these style lints.
#![allow(
    clippy::should_implement_trait,
    clippy::needless_range_loop,
    clippy::collapsible_match,
    clippy::collapsible_if
)]

pub mod extents;
pub mod mem;
pub mod stall;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use marufs_core::coherence::{KeyWrites, Seen, UnitTracker};
use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{Fs, Handle, SlotWatch, Tunables};
use marufs_core::fsck;
use marufs_core::layout::{entry_state, Extent, GeometryParams, UNIT};
use marufs_core::{Env, Error, Media, MediaError};
use mem::{Faults, Oracle, Rng, Sim, SimMedia};

/// Simulator configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Rounds per seed.
    pub rounds: usize,
    /// Fault injection.
    pub faults: FaultKind,
    /// Enable crash injection.
    pub crashes: bool,
    /// Every host gets its own clock: an arbitrary offset and a rate error
    /// within half of `marufs_core::fs::CLOCK_RATE_PPM` either way (so two
    /// hosts differ by at most the bound).
    pub skew: bool,
    /// Hosts may stall (frozen execution and clock) for longer than a lease
    /// mid-operation; the fabric hook cuts fenced hosts off, and a stalled
    /// host's dirty lines are written back at random moments.
    pub stalls: bool,
    /// Format for 64 hosts and run the hosts as nodes spread over the slots
    /// (beyond the lock's first 8-slot scan batch), see [`WIDE_NODES`].
    pub wide: bool,
}

/// The node ids hosts run as in a [`Config::wide`] run.
pub const WIDE_NODES: [u32; 4] = [63, 9, 40, 0];

impl Default for Config {
    fn default() -> Self {
        Config {
            rounds: 24,
            faults: FaultKind::None,
            crashes: true,
            skew: true,
            stalls: true,
            wide: false,
        }
    }
}

/// Deliberate bugs to prove the checker catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// No fault.
    None,
    /// Drop every flush of the entry table (publish never reaches memory).
    DropEntryFlush,
    /// Drop every invalidate of the index (lookups see stale slots).
    DropIndexInvalidate,
    /// Drop the invalidate before each read of a directory's change counter
    /// (name caches trust a stale counter).
    DropDirChangesInvalidate,
    /// The creator skips the data write-back the coherence policy asks for
    /// before publish and abort (its stores stay in its cache).
    SkipDataWriteBack,
    /// Readers skip the data invalidations the coherence policy asks for
    /// (a reused unit's stale lines are read).
    SkipDataInvalidate,
}

type HostFs = Fs<SimMedia, SimMedia>;

const LEASE: u64 = 200_000;
const NAMES: u32 = 10;
const DIRS: u32 = 2;

fn tunables() -> Tunables {
    Tunables {
        lease_ns: LEASE,
        guard_ns: LEASE / 4,
        margin_ns: LEASE / 2,
        read_retries: 200,
    }
}

fn key_name(k: u32) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

fn pattern(_k: u32, gen: u64, unit: u64) -> [u8; 64] {
    // Depends on the generation only: renames keep the data.
    let k = 0u64;
    let mut p = [0u8; 64];
    for (j, b) in p.iter_mut().enumerate() {
        *b = (k * 31 + gen * 7 + unit * 13 + j as u64 + 1) as u8 | 1;
    }
    p
}

/// What the model knows of a key.
#[derive(Clone, Debug, PartialEq)]
enum KS {
    Absent,
    Published { entry: u32, gen: u64 },
    Unknown,
}

#[derive(Clone, Debug)]
enum Op {
    Restart,
    Heartbeat,
    /// `tmp`: create without a name, then name it at publish (`O_TMPFILE` + `linkat`).
    Create {
        dir: u32,
        k: u32,
        units: u64,
        tmp: bool,
    },
    CreateAbort {
        dir: u32,
        k: u32,
    },
    Unlink {
        dir: u32,
        k: u32,
    },
    Lookup {
        dir: u32,
        k: u32,
    },
    Hold {
        dir: u32,
        k: u32,
    },
    Release,
    Drain,
    CheckPeers,
    Rename {
        dir: u32,
        k: u32,
        to: u32,
    },
}

#[derive(Clone, Debug)]
enum Res {
    Ok,
    Created {
        entry: u32,
        gen: u64,
    },
    Found {
        entry: u32,
        gen: u64,
        data_ok: bool,
    },
    NotFound,
    Held {
        entry: u32,
        gen: u64,
        ext: Vec<Extent>,
        k: u32,
    },
    Err(Error),
    Crashed,
}

#[derive(Clone, Debug)]
struct Held {
    entry: u32,
    gen: u64,
    k: u32,
    ext: Vec<Extent>,
}

struct HostSlot {
    fs: Option<HostFs>,
    down: bool,
    holds: Vec<Held>,
    cache: HostDram,
}

/// A host's DRAM name cache, as a kernel keeps one (the dcache): lookup
/// results tagged with the directory's change counter read before the
/// lookup, trusted while the counter still reads the same. Lost with the host.
type NameCache = BTreeMap<(u32, u32), (u64, Option<(u32, u64, Vec<Extent>)>)>;

/// What a host keeps in DRAM and loses when it crashes: its name cache and
/// its data-plane tracker (`marufs_core::coherence::UnitTracker` slots).
#[derive(Default)]
struct HostDram {
    names: NameCache,
    seen: Vec<Seen>,
}

impl HostDram {
    fn clear(&mut self) {
        self.names.clear();
        self.seen.clear();
    }
}

/// Outcome of one seed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Media calls executed.
    pub steps: u64,
    /// Crashes injected.
    pub crashes: u32,
    /// Keys published.
    pub published: u32,
    /// Takeovers/recoveries performed by survivors.
    pub takeovers: u32,
    /// Stalls injected (longer than a lease, mid-operation).
    pub stalls: u64,
    /// Stalled hosts (zombies) the fabric hook cut off after a survivor
    /// fenced them.
    pub cuts: u64,
}

fn read_data_ok(
    m: &dyn Media,
    geo_data_off: u64,
    k: u32,
    gen: u64,
    ext: &[Extent],
    invalidate: bool,
) -> bool {
    let mut i = 0u64;
    for x in ext {
        for u in 0..x.count as u64 {
            let off = geo_data_off + (x.start as u64 + u) * UNIT;
            let mut b = [0u8; 64];
            if invalidate && m.invalidate(off, 64).is_err() {
                return true; // crashed: no verdict
            }
            if m.load(off, &mut b).is_err() {
                return true;
            }
            if b != pattern(k, gen, i) {
                return false;
            }
            i += 1;
        }
    }
    true
}

/// A reader's check of a key's data under the coherence policy: before the
/// first read of each unit for this key instance, the host's tracker decides
/// whether to invalidate the unit (`skip`: the fault `SkipDataInvalidate`,
/// which records without invalidating). A crash gives no verdict (true).
#[allow(clippy::too_many_arguments)]
fn read_data_tracked(
    m: &dyn Media,
    geo: &marufs_core::layout::Geometry,
    k: u32,
    entry: u32,
    gen: u64,
    ext: &[Extent],
    seen: &mut Vec<Seen>,
    skip: bool,
) -> bool {
    if seen.len() as u64 != geo.data_units {
        seen.clear();
        seen.resize(geo.data_units as usize, Seen::UNKNOWN);
    }
    let mut t = UnitTracker::resume(seen);
    let mut i = 0u64;
    for x in ext {
        for u in 0..x.count as u64 {
            let unit = x.start as u64 + u;
            let off = geo.data_off + unit * UNIT;
            let inv = t.before_read(unit, entry, gen, || {
                if skip {
                    Ok(())
                } else {
                    m.invalidate(off, UNIT)
                }
            });
            let mut b = [0u8; 64];
            if inv.is_err() || m.load(off, &mut b).is_err() {
                return true;
            }
            if b != pattern(k, gen, i) {
                return false;
            }
            i += 1;
        }
    }
    true
}

/// Writes back every unit of a creating key when the policy asks for it
/// (before publish or abort), unless the fault `SkipDataWriteBack` is on.
fn data_write_back(
    fs: &HostFs,
    h: &Handle,
    writes: &KeyWrites,
    fault: FaultKind,
) -> Result<(), Error> {
    if !writes.must_write_back() || fault == FaultKind::SkipDataWriteBack {
        return Ok(());
    }
    let data_off = fs.geometry().data_off;
    let e = fs.extents(h)?;
    for x in e.used_extents() {
        fs.media().flush(
            data_off + u64::from(x.start) * UNIT,
            u64::from(x.count) * UNIT,
        )?;
    }
    Ok(())
}

fn is_crash(e: &Error) -> bool {
    matches!(e, Error::Media(MediaError::Crashed))
}

fn run_op(
    fs: &mut HostFs,
    op: &Op,
    holds: &mut Vec<Held>,
    cache: &mut HostDram,
    rng: &mut Rng,
    fault: FaultKind,
) -> Res {
    let data_off = fs.geometry().data_off;
    let data_units = fs.geometry().data_units as usize;
    if cache.seen.len() != data_units {
        cache.seen = vec![Seen::UNKNOWN; data_units];
    }
    let r: Result<Res, Error> = (|| match op {
        Op::Restart => Ok(Res::Ok),
        Op::Heartbeat => fs.heartbeat().map(|_| Res::Ok),
        Op::Create { dir, k, units, tmp } => {
            let h: Handle = if *tmp {
                fs.create_tmp(*dir, 0, 0, 0o644)?
            } else {
                fs.create(*dir, &key_name(*k), 0, 0, 0o644)?
            };
            let size = units * UNIT - rng.below(UNIT / 2);
            // Half the keys are written through a writable mapping (stores
            // stay in this host's cache until written back), half through
            // write() (a cache-bypassing copy: stored and flushed at once).
            let mapped = rng.below(2) == 0;
            let mut writes = KeyWrites::default();
            if mapped {
                writes.note_writable_mapping();
            }
            let go = (|| {
                // Units the host zeroed ahead (see the heartbeat loop) must
                // still read as zero when set_size vouches for them.
                let mut known = vec![];
                fs.set_size_with(&h, size, |u| known.push(u))?;
                for u in known {
                    let off = data_off + u64::from(u) * UNIT;
                    let mut b = [0u8; 64];
                    fs.media().invalidate(off, 64)?;
                    fs.media().load(off, &mut b)?;
                    if b != [0u8; 64] {
                        return Err(Error::Corrupt);
                    }
                }
                let e = fs.extents(&h)?;
                let mut i = 0u64;
                for x in e.used_extents() {
                    for u in 0..x.count as u64 {
                        let unit = x.start as u64 + u;
                        let off = data_off + unit * UNIT;
                        fs.media().store(off, &pattern(*k, h.generation, i))?;
                        if !mapped {
                            fs.media().flush(off, 64)?;
                        }
                        // The kernel zeroed the unit with non-temporal stores
                        // for this key: the creator's cache has no other key's
                        // line of it.
                        UnitTracker::resume(&mut cache.seen).own(unit, h.entry, h.generation);
                        i += 1;
                    }
                }
                data_write_back(fs, &h, &writes, fault)?;
                if *tmp {
                    fs.publish_as(&h, &key_name(*k), None)
                } else {
                    fs.publish(&h, None)
                }
            })();
            match go {
                Ok(()) => Ok(Res::Created {
                    entry: h.entry,
                    gen: h.generation,
                }),
                Err(e) if is_crash(&e) => Err(e),
                Err(e) => {
                    // Units given up: written back first, so no dirty line of
                    // this key is evicted later onto their next owner.
                    if data_write_back(fs, &h, &writes, fault).is_ok() {
                        let _ = fs.abort(&h);
                    }
                    Err(e)
                }
            }
        }
        Op::CreateAbort { dir, k } => {
            let h = fs.create(*dir, &key_name(*k), 0, 0, 0o644)?;
            match fs.set_size(&h, UNIT) {
                Err(e) if is_crash(&e) => return Err(e),
                _ => {}
            }
            fs.abort(&h)?;
            Ok(Res::Ok)
        }
        // Half of the unlinks reclaim in the same lock acquisition.
        Op::Unlink { dir, k } => {
            if rng.below(2) == 0 {
                fs.unlink(*dir, &key_name(*k)).map(|_| Res::Ok)
            } else {
                fs.unlink_reclaim(*dir, &key_name(*k)).map(|_| Res::Ok)
            }
        }
        Op::Rename { dir, k, to } => fs
            .rename(*dir, &key_name(*k), &key_name(*to))
            .map(|_| Res::Ok),
        // Half of the lookups go through the host's name cache: the
        // directory's change counter, read first, vouches for a cached
        // result; a miss looks up and caches under that counter.
        Op::Lookup { dir, k } => {
            let tag = if fs.has_dir_changes() && rng.below(2) == 0 {
                fs.dir_changes(*dir)
            } else {
                None
            };
            let hit = tag.and_then(|t| {
                cache
                    .names
                    .get(&(*dir, *k))
                    .filter(|c| c.0 == t)
                    .map(|c| c.1.clone())
            });
            let found = match hit {
                Some(v) => v,
                None => {
                    let v = match fs.lookup(*dir, &key_name(*k)) {
                        Ok(key) => Some((
                            key.entry,
                            key.rec.generation,
                            key.rec.used_extents().to_vec(),
                        )),
                        Err(Error::NotFound) => None,
                        Err(e) => return Err(e),
                    };
                    if let Some(t) = tag {
                        cache.names.insert((*dir, *k), (t, v.clone()));
                    }
                    v
                }
            };
            match found {
                Some((entry, gen, ext)) => Ok(Res::Found {
                    entry,
                    gen,
                    data_ok: read_data_tracked(
                        fs.media(),
                        fs.geometry(),
                        *k,
                        entry,
                        gen,
                        &ext,
                        &mut cache.seen,
                        fault == FaultKind::SkipDataInvalidate,
                    ),
                }),
                None => Ok(Res::NotFound),
            }
        }
        // Half of the holds are vouched for by the directory's change
        // counter, read before the lookup (as the kernel's dentry tags).
        Op::Hold { dir, k } => {
            let tag = if fs.has_dir_changes() && rng.below(2) == 0 {
                fs.dir_changes(*dir)
            } else {
                None
            };
            let key = match fs.lookup(*dir, &key_name(*k)) {
                Ok(key) => key,
                Err(Error::NotFound) => return Ok(Res::NotFound),
                Err(e) => return Err(e),
            };
            match fs.hold_vouched(key.entry, key.rec.generation, tag.map(|t| (*dir, t))) {
                Ok(()) => Ok(Res::Held {
                    entry: key.entry,
                    gen: key.rec.generation,
                    ext: key.rec.used_extents().to_vec(),
                    k: *k,
                }),
                Err(Error::Stale) => Ok(Res::NotFound),
                Err(e) => Err(e),
            }
        }
        Op::Release => {
            if let Some(hd) = holds.pop() {
                if !holds.iter().any(|x| x.entry == hd.entry) {
                    fs.release(hd.entry)?;
                }
            }
            Ok(Res::Ok)
        }
        Op::Drain => fs.drain_orphans().map(|_| Res::Ok),
        Op::CheckPeers => fs.check_peers().map(|_| Res::Ok),
    })();
    match r {
        Ok(x) => x,
        Err(e) if is_crash(&e) => Res::Crashed,
        Err(e) => Res::Err(e),
    }
}

fn touched(op: &Op) -> Vec<(u32, u32)> {
    match op {
        Op::Create { dir, k, .. } | Op::CreateAbort { dir, k } | Op::Unlink { dir, k } => {
            vec![(*dir, *k)]
        }
        Op::Rename { dir, k, to } => vec![(*dir, *k), (*dir, *to)],
        _ => vec![],
    }
}

/// Runs one seed; `Err` describes the first violated invariant.
pub fn run_seed(seed: u64, cfg: &Config) -> Result<Outcome, String> {
    let mut rng = Rng(seed ^ 0x5EED_0000_0000_0001);
    let nhosts = 2 + rng.below(3) as usize;
    let size = (40 + rng.below(40)) * UNIT;
    let sim = Sim::new(nhosts, size, seed);
    let oracle = Oracle(sim.clone());
    let opts = FormatOptions {
        uuid: [7; 16],
        ..FormatOptions::small(size, if cfg.wide { 64 } else { nhosts as u32 }, 48, 4)
    };
    let node_of = |h: usize| -> u32 {
        if cfg.wide {
            WIDE_NODES[h]
        } else {
            h as u32
        }
    };
    for h in 0..nhosts {
        sim.set_node(h, node_of(h));
    }
    let sb = format(&oracle, &opts, &mut |_, _| {}).map_err(|e| format!("format: {e:?}"))?;
    let geo = sb.geo;
    {
        let mut g = sim.lock();
        g.faults = match cfg.faults {
            FaultKind::None => Faults::default(),
            FaultKind::DropEntryFlush => Faults {
                drop_flush: (geo.entry_off, geo.entry_count * 512),
                ..Faults::default()
            },
            FaultKind::DropIndexInvalidate => Faults {
                drop_invalidate: (geo.index_off, geo.index_slots * 8),
                ..Faults::default()
            },
            FaultKind::DropDirChangesInvalidate => Faults {
                drop_small_invalidate: (geo.dir(0), u64::from(geo.dir_count) * 512),
                ..Faults::default()
            },
            FaultKind::SkipDataWriteBack | FaultKind::SkipDataInvalidate => Faults::default(),
        };
        g.crash_ppm = 4000;
        // A crash at a store tears a third of the time inside it, at 8-byte
        // granularity.
        g.tear_ppm = 330_000;
        if cfg.skew {
            let half = marufs_core::fs::CLOCK_RATE_PPM as i64 / 2;
            for c in g.clocks.iter_mut() {
                c.offset = rng.below(1 << 40);
                c.drift_ppm = rng.below(2 * half as u64 + 1) as i64 - half;
            }
        }
        if cfg.stalls {
            // Stalls in a quarter of the seeds: a stalled host is a zombie
            // the fabric hook cuts off once a survivor fences it.
            g.fabric = true;
            g.stall_len = (LEASE * 2, LEASE * 5);
            g.zombie_writeback_ppm = 20_000;
        }
        if std::env::var("MARUFS_SIM_TRACE").is_ok() {
            eprintln!(
                "entry_off line {} bitmap line {}",
                geo.entry_off / 64,
                geo.bitmap_off / 64
            );
        }
    }
    let mut hosts: Vec<HostSlot> = (0..nhosts)
        .map(|_| HostSlot {
            fs: None,
            down: true,
            holds: vec![],
            cache: HostDram::default(),
        })
        .collect();
    let mut model: BTreeMap<(u32, u32), KS> = BTreeMap::new();
    for d in 0..DIRS {
        for k in 0..NAMES {
            model.insert((d, k), KS::Absent);
        }
    }
    let mut out = Outcome::default();
    // crashed-and-not-yet-recovered hosts
    let mut unrecovered: Vec<bool> = vec![false; nhosts];

    // Bring every host up; host 0 makes the directories.
    let all: Vec<usize> = (0..nhosts).collect();
    let mut first = true;
    for round in 0..cfg.rounds + 3 {
        let closing = round >= cfg.rounds;
        // ---- plan
        let mut plans: Vec<(usize, Vec<Op>)> = vec![];
        for h in 0..nhosts {
            let mut ops = vec![];
            if hosts[h].down {
                if first || closing || rng.below(100) < 20 {
                    ops.push(Op::Restart);
                } else {
                    continue;
                }
            } else {
                ops.push(Op::Heartbeat);
            }
            if !first && !closing {
                let n = 1 + rng.below(3);
                for _ in 0..n {
                    let dir = rng.below(DIRS as u64) as u32;
                    let k = rng.below(NAMES as u64) as u32;
                    let op = match rng.below(100) {
                        0..=34 => Op::Create {
                            dir,
                            k,
                            units: 1 + rng.below(3),
                            tmp: rng.below(4) == 0,
                        },
                        35..=39 => Op::CreateAbort { dir, k },
                        40..=54 => Op::Unlink { dir, k },
                        55..=69 => Op::Lookup { dir, k },
                        70..=77 => Op::Hold { dir, k },
                        78..=84 => Op::Release,
                        85..=89 => Op::Drain,
                        90..=95 => Op::CheckPeers,
                        _ => Op::Rename {
                            dir,
                            k,
                            to: rng.below(NAMES as u64) as u32,
                        },
                    };
                    ops.push(op);
                }
            }
            if closing && round == cfg.rounds + 2 {
                ops.push(Op::Drain);
            }
            plans.push((h, ops));
        }
        let mut touched_now: Vec<(u32, u32)> = vec![];
        for (_, ops) in &plans {
            for op in ops {
                touched_now.extend(touched(op));
            }
        }
        // ---- crash arming
        {
            let mut g = sim.lock();
            for c in g.may_crash.iter_mut() {
                *c = false;
            }
            if cfg.crashes && !first && !closing && rng.below(100) < 35 {
                let h = rng.below(nhosts as u64) as usize;
                g.may_crash[h] = true;
            }
            for st in g.may_stall.iter_mut() {
                *st = false;
            }
            g.stall_ppm = 0;
            if cfg.stalls && !first && !closing && seed % 4 == 0 && rng.below(100) < 25 {
                let h = rng.below(nhosts as u64) as usize;
                g.may_stall[h] = true;
                g.stall_ppm = 2_000;
            }
        }
        if std::env::var("MARUFS_SIM_TRACE").is_ok() {
            eprintln!("round {round} steps {} plans {plans:?}", sim.lock().steps);
        }
        let participants: Vec<usize> = plans.iter().map(|p| p.0).collect();
        sim.start_round(&participants, 3_000_000);
        let mut results: Vec<(usize, Vec<(Op, Res)>)> = vec![];
        std::thread::scope(|s| {
            let mut handles = vec![];
            for (h, ops) in plans.iter().cloned() {
                let fs_opt = hosts[h].fs.take();
                let mut holds = std::mem::take(&mut hosts[h].holds);
                let mut cache = std::mem::take(&mut hosts[h].cache);
                let sim2 = sim.clone();
                let mut trng = Rng(rng.next());
                let fault = cfg.faults;
                handles.push(s.spawn(move || {
                    let mut fs_opt = fs_opt;
                    let mut res = vec![];
                    for op in ops {
                        if let Op::Restart = op {
                            sim2.restart(h);
                            let m = SimMedia {
                                sim: sim2.clone(),
                                host: h,
                            };
                            let r = Fs::open(m.clone(), m, node_of(h), tunables()).and_then(
                                |mut fs| {
                                    fs.join()?;
                                    Ok(fs)
                                },
                            );
                            match r {
                                Ok(fs) => {
                                    fs_opt = Some(fs);
                                    holds.clear();
                                    cache.clear();
                                    res.push((op, Res::Ok));
                                }
                                Err(e) => {
                                    let crashed = is_crash(&e);
                                    res.push((
                                        op,
                                        if crashed { Res::Crashed } else { Res::Err(e) },
                                    ));
                                    fs_opt = None;
                                    break;
                                }
                            }
                            continue;
                        }
                        let Some(fs) = fs_opt.as_mut() else { break };
                        let r = run_op(fs, &op, &mut holds, &mut cache, &mut trng, fault);
                        if let Res::Held { entry, gen, ext, k } = &r {
                            holds.push(Held {
                                entry: *entry,
                                gen: *gen,
                                k: *k,
                                ext: ext.clone(),
                            });
                        }
                        let stop = matches!(
                            r,
                            Res::Crashed | Res::Err(Error::Fenced) | Res::Err(Error::NotJoined)
                        );
                        res.push((op, r));
                        if stop {
                            break;
                        }
                    }
                    // The heartbeat thread keeps running while others work.
                    if let Some(fs) = fs_opt.as_mut() {
                        if !matches!(
                            res.last(),
                            Some((
                                _,
                                Res::Crashed | Res::Err(Error::Fenced) | Res::Err(Error::NotJoined)
                            ))
                        ) {
                            let mut tick = 0u32;
                            let data_off_h = fs.geometry().data_off;
                            while sim2.others_running(h) {
                                tick += 1;
                                if tick % 8 != 1 {
                                    fs.env().relax();
                                    continue;
                                }
                                // Now and then zero a free unit ahead (its
                                // first line stands for the whole unit).
                                let r = fs.heartbeat().and_then(|()| {
                                    if tick % 32 != 17 {
                                        return Ok(());
                                    }
                                    if let Some(u) = fs.begin_zeroing()? {
                                        let off = data_off_h + u64::from(u) * UNIT;
                                        let r = fs
                                            .media()
                                            .store(off, &[0u8; 64])
                                            .and_then(|()| fs.media().flush(off, 64));
                                        fs.finish_zeroing(u, r.is_ok());
                                        r?;
                                    } else {
                                        fs.grow_for_zeroing()?;
                                    }
                                    Ok(())
                                });
                                match r {
                                    Ok(()) => fs.env().relax(),
                                    Err(e) => {
                                        res.push((
                                            Op::Heartbeat,
                                            if is_crash(&e) {
                                                Res::Crashed
                                            } else {
                                                Res::Err(e)
                                            },
                                        ));
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    sim2.finish(h);
                    (h, fs_opt, holds, cache, res)
                }));
            }
            for hd in handles {
                let (h, fs, holds, cache, res) = hd.join().expect("host thread panicked");
                hosts[h].fs = fs;
                hosts[h].holds = holds;
                hosts[h].cache = cache;
                results.push((h, res));
            }
        });
        if sim.lock().livelock {
            return Err(format!("round {round}: livelock (step limit)"));
        }
        results.sort_by_key(|r| r.0);
        if std::env::var("MARUFS_SIM_TRACE").is_ok() {
            eprintln!("  results {results:?} crashed {:?}", sim.lock().crashed);
        }
        // ---- apply results to the model
        let mut creates: BTreeMap<(u32, u32), u32> = BTreeMap::new();
        for (h, res) in &results {
            let h = *h;
            // Cut off by the fabric: as good as crashed.
            let crashed = {
                let g = sim.lock();
                g.crashed[h] || g.cut[h]
            };
            let fenced = res
                .iter()
                .any(|(_, r)| matches!(r, Res::Err(Error::Fenced) | Res::Err(Error::NotJoined)));
            for (op, r) in res {
                match (op, r) {
                    (Op::Create { dir, k, .. }, Res::Created { entry, gen }) => {
                        *creates.entry((*dir, *k)).or_default() += 1;
                        out.published += 1;
                        if model.get(&(*dir, *k)) == Some(&KS::Absent)
                            || touched_now.iter().filter(|t| **t == (*dir, *k)).count() == 1
                        {
                            model.insert(
                                (*dir, *k),
                                KS::Published {
                                    entry: *entry,
                                    gen: *gen,
                                },
                            );
                        } else {
                            model.insert((*dir, *k), KS::Unknown);
                        }
                    }
                    (Op::Create { dir, k, .. }, Res::Err(Error::Exists)) => {
                        if model.get(&(*dir, *k)) == Some(&KS::Absent)
                            && touched_now.iter().filter(|t| **t == (*dir, *k)).count() == 1
                            && !unrecovered.iter().any(|&u| u)
                        {
                            return Err(format!(
                                "round {round}: host {h} create {dir}/{k}: EEXIST but key absent"
                            ));
                        }
                    }
                    (
                        Op::Lookup { dir, k },
                        Res::Found {
                            entry,
                            gen,
                            data_ok,
                        },
                    ) => {
                        if !data_ok {
                            return Err(format!("round {round}: host {h} lookup {dir}/{k}: visible key with incomplete data (entry {entry} gen {gen})"));
                        }
                        if !touched_now.contains(&(*dir, *k)) {
                            match model.get(&(*dir, *k)) {
                                Some(KS::Published { entry: e, gen: g })
                                    if e == entry && g == gen => {}
                                Some(KS::Unknown) => {}
                                other => {
                                    return Err(format!("round {round}: host {h} lookup {dir}/{k} found entry {entry} gen {gen}, model {other:?}"));
                                }
                            }
                        }
                    }
                    (Op::Lookup { dir, k }, Res::NotFound) => {
                        if !touched_now.contains(&(*dir, *k)) {
                            if let Some(KS::Published { .. }) = model.get(&(*dir, *k)) {
                                return Err(format!("round {round}: host {h} lookup {dir}/{k}: not found, model says published"));
                            }
                        }
                    }
                    (Op::Unlink { dir, k }, Res::Ok) => {
                        model.insert(
                            (*dir, *k),
                            if touched_now.iter().filter(|t| **t == (*dir, *k)).count() == 1 {
                                KS::Absent
                            } else {
                                KS::Unknown
                            },
                        );
                    }
                    (Op::Rename { dir, k, to }, Res::Ok) => {
                        if k != to {
                            let once = |x: (u32, u32)| {
                                touched_now.iter().filter(|t| **t == x).count() == 1
                            };
                            // Alone on both names this round: the key moved.
                            match model.get(&(*dir, *k)) {
                                Some(&KS::Published { entry, gen })
                                    if once((*dir, *k)) && once((*dir, *to)) =>
                                {
                                    model.insert((*dir, *k), KS::Absent);
                                    model.insert((*dir, *to), KS::Published { entry, gen });
                                }
                                _ => {
                                    model.insert((*dir, *k), KS::Unknown);
                                    model.insert((*dir, *to), KS::Unknown);
                                }
                            }
                        }
                    }
                    (_, Res::Err(e)) if matches!(e, Error::Corrupt) => {
                        return Err(format!("round {round}: host {h} {op:?}: {e:?}"));
                    }
                    (_, Res::Crashed)
                    | (_, Res::Err(Error::Fenced))
                    | (_, Res::Err(Error::NotJoined)) => {
                        for t in touched(op) {
                            model.insert(t, KS::Unknown);
                        }
                    }
                    _ => {}
                }
            }
            if crashed || fenced {
                // Everything this host touched this round is uncertain.
                for (op, _) in res {
                    for t in touched(op) {
                        model.insert(t, KS::Unknown);
                    }
                }
                hosts[h].fs = None;
                hosts[h].down = true;
                hosts[h].holds.clear();
                hosts[h].cache.clear();
                if crashed {
                    out.crashes += 1;
                }
                unrecovered[h] = true;
            } else if res
                .iter()
                .any(|(op, r)| matches!(op, Op::Restart) && matches!(r, Res::Ok))
            {
                hosts[h].down = false;
                unrecovered[h] = false;
            }
        }
        // Removals of each name this round: each lets one more create of
        // it succeed. An unlink or rename that crashed (or was fenced)
        // midway counts too: it may have taken effect (a survivor replays
        // its record).
        let mut removed: Vec<(u32, u32)> = vec![];
        for (_, res) in &results {
            for (op, r) in res {
                let done = matches!(r, Res::Ok | Res::Crashed | Res::Err(Error::Fenced));
                match (op, done) {
                    (Op::Unlink { dir, k }, true) => removed.push((*dir, *k)),
                    (Op::Rename { dir, k, .. }, true) => removed.push((*dir, *k)),
                    _ => {}
                }
            }
        }
        for ((dir, k), n) in &creates {
            let gone = removed.iter().filter(|x| **x == (*dir, *k)).count();
            if *n as usize > 1 + gone {
                return Err(format!(
                    "round {round}: {n} hosts created {dir}/{k} at once"
                ));
            }
        }
        if first {
            // make the directories with host 0 in a dedicated round
            sim.start_round(&[0], 1_000_000);
            let fs = hosts[0].fs.as_mut().ok_or("host 0 did not come up")?;
            let mk = std::thread::scope(|s| {
                s.spawn(|| {
                    let r = fs.heartbeat().and_then(|_| {
                        (0..DIRS).try_for_each(|d| {
                            fs.mkdir(format!("app{d}").as_bytes(), 0, 0, 0o755)
                                .map(|_| ())
                        })
                    });
                    sim.finish(0);
                    r
                })
                .join()
                .expect("mkdir thread")
            });
            mk.map_err(|e| format!("mkdir: {e:?}"))?;
            first = false;
            let _ = &all;
        }
        // Survivors' takeovers resolve hosts that stay down.
        {
            let ns = read_nshdr(&oracle, &geo);
            let regs: Vec<u64> = (0..nhosts)
                .map(|j| read_reg_recovered(&oracle, &geo, node_of(j)))
                .collect();
            for j in 0..nhosts {
                if unrecovered[j]
                    && hosts[j].down
                    && ns & (1 << node_of(j)) == 0
                    && regs[j] > 0
                    && recovered_current(&oracle, &geo, node_of(j))
                {
                    unrecovered[j] = false;
                    out.takeovers += 1;
                }
            }
        }
        // ---- check
        if std::env::var("MARUFS_SIM_TRACE").is_ok() {
            dump(&oracle, &geo);
            let mut b = [0u8; 64];
            let _ = oracle.load(geo.nshdr_off, &mut b);
            eprintln!("nshdr {:?}", marufs_core::layout::NsHdr::decode(&b));
            for j in (0..nhosts).map(node_of) {
                let _ = oracle.load(geo.host_slot(j), &mut b);
                eprintln!(
                    "host {j}: {:?} reg {:?}",
                    marufs_core::layout::HostIdent::decode(&b),
                    read_reg(&oracle, &geo, j)
                );
                eprintln!(
                    "  journal applied {:?} record {:?}",
                    marufs_core::journal::applied_seq(&oracle, &geo, j),
                    marufs_core::journal::read_record(&oracle, &geo, j)
                );
            }
        }
        check(&oracle, &geo, &mut model, &hosts, &unrecovered)
            .map_err(|e| format!("round {round}: {e}"))?;
        // ---- time passes
        let mut g = sim.lock();
        let dt = rng.below(LEASE / 3);
        g.clock += dt;
        out.steps = g.steps;
    }
    // Final: every host left; strict fsck must be clean. A host that went
    // down in the last round (its lease ran out while the others worked)
    // mounts again first, as its next boot would.
    let all_up: Vec<usize> = (0..nhosts).collect();
    for h in 0..nhosts {
        if hosts[h].fs.is_none() {
            sim.restart(h);
        }
    }
    sim.start_round(&all_up, 3_000_000);
    let mut g = sim.lock();
    for c in g.may_crash.iter_mut() {
        *c = false;
    }
    drop(g);
    std::thread::scope(|s| {
        let mut hs = vec![];
        for h in all_up.iter().copied() {
            let mut fs = hosts[h].fs.take();
            let sim2 = sim.clone();
            let node = node_of(h);
            hs.push(s.spawn(move || {
                if fs.is_none() {
                    let m = SimMedia {
                        sim: sim2.clone(),
                        host: h,
                    };
                    match Fs::open(m.clone(), m, node, tunables()) {
                        Ok(f) => fs = Some(f),
                        Err(e) => {
                            sim2.finish(h);
                            return Some(Err(e));
                        }
                    }
                }
                let r = fs.as_mut().map(|f| match f.heartbeat() {
                    Err(Error::Fenced | Error::NotJoined) => f.join().and_then(|_| f.leave()),
                    _ => f.leave(),
                });
                sim2.finish(h);
                r
            }));
        }
        let mut errs = vec![];
        for hd in hs {
            if let Some(Err(e)) = hd.join().expect("leave thread") {
                errs.push(e);
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(format!("leave: {errs:?}"))
        }
    })?;
    for h in 0..nhosts {
        sim.writeback_all(h);
    }
    let rep = run_fsck(&oracle, false);
    if rep.errors != 0 {
        return Err(format!(
            "final fsck (all hosts left): {} problems: {:?}",
            rep.errors, rep.findings
        ));
    }
    {
        let g = sim.lock();
        out.steps = g.steps;
        out.stalls = g.stalls;
        out.cuts = g.zombie_cuts;
    }
    Ok(out)
}

fn read_nshdr(o: &Oracle, geo: &marufs_core::layout::Geometry) -> u64 {
    let mut b = [0u8; 64];
    let _ = o.load(geo.nshdr_off, &mut b);
    marufs_core::layout::NsHdr::decode(&b).pending_recovery
}
fn read_reg(
    o: &Oracle,
    geo: &marufs_core::layout::Geometry,
    j: u32,
) -> marufs_core::layout::RegRec {
    let mut b = [0u8; 64];
    let _ = o.load(geo.reg(j), &mut b);
    marufs_core::layout::RegRec::decode(&b)
}
fn read_reg_recovered(o: &Oracle, geo: &marufs_core::layout::Geometry, j: u32) -> u64 {
    read_reg(o, geo, j).recovered_epoch
}
fn recovered_current(o: &Oracle, geo: &marufs_core::layout::Geometry, j: u32) -> bool {
    let mut b = [0u8; 64];
    let _ = o.load(geo.host_slot(j), &mut b);
    let id = marufs_core::layout::HostIdent::decode(&b).unwrap_or_default();
    let r = read_reg(o, geo, j);
    r.recovered_epoch >= id.epoch && r.fenced_epoch >= id.epoch
}

/// Result of fsck in the simulator.
#[derive(Debug)]
pub struct FsckRep {
    /// Problems that count as errors.
    pub errors: u32,
    /// Descriptions.
    pub findings: Vec<String>,
}

/// fsck's findings (no repair) on a pool that mounts, for tests over any
/// media (panics if the superblock is unusable).
pub fn fsck_findings<M: Media>(m: &M, online: bool) -> Vec<fsck::Finding> {
    let g = marufs_core::fs::mount_check(m).expect("mount_check").sb.geo;
    let mut s = vec![0u8; fsck::scratch_len(&g)];
    let mut v = vec![];
    fsck::run(
        m,
        &fsck::Options {
            repair: false,
            online,
        },
        &mut s,
        &mut |f: &fsck::Finding| v.push(*f),
    )
    .expect("fsck");
    v
}

fn run_fsck(o: &Oracle, online: bool) -> FsckRep {
    let info = match marufs_core::fs::mount_check(o) {
        Ok(i) => i,
        Err(e) => {
            return FsckRep {
                errors: 1,
                findings: vec![format!("mount_check: {e:?}")],
            }
        }
    };
    let mut scratch = vec![0u8; fsck::scratch_len(&info.sb.geo)];
    let mut findings = vec![];
    let mut errors = 0;
    let opts = fsck::Options {
        repair: false,
        online,
    };
    let r = fsck::run(o, &opts, &mut scratch, &mut |f: &fsck::Finding| {
        errors += 1;
        findings.push(format!("{f:?}"));
    });
    if let Err(e) = r {
        errors += 1;
        findings.push(format!("fsck failed: {e:?}"));
    }
    FsckRep { errors, findings }
}

fn dump(o: &Oracle, geo: &marufs_core::layout::Geometry) {
    {
        for i in 0..geo.entry_count as u32 {
            let mut b = [0u8; 512];
            let _ = o.load(geo.entry(i), &mut b);
            if i < geo.chunk_count {
                let mut c = [0u8; 16];
                let _ = o.load(geo.chunk(i), &mut c);
                let mut l = [0u8; 8];
                let _ = o.load(geo.bitmap(i), &mut l);
                eprintln!(
                    "chunk {i}: {:?} bits {:x}",
                    marufs_core::layout::ChunkRec::decode(&c),
                    u64::from_le_bytes(l)
                );
            }
            if let Some(e) = marufs_core::layout::EntryRec::decode(&b) {
                eprintln!(
                        "entry {i}: size {} ext {:?} st {} gen {} dir {} name {:?} creator {} ep {} next {}",
                        e.size,
                        e.used_extents(),
                        e.state,
                        e.generation,
                        e.dir,
                        String::from_utf8_lossy(e.name.as_bytes()),
                        e.creator,
                        e.creator_epoch,
                        e.next
                    );
            }
        }
    }
}

fn check(
    o: &Oracle,
    geo: &marufs_core::layout::Geometry,
    model: &mut BTreeMap<(u32, u32), KS>,
    hosts: &[HostSlot],
    unrecovered: &[bool],
) -> Result<(), String> {
    let any_unrecovered = unrecovered.iter().any(|&u| u);
    let fs = Fs::open(o, o, 0, tunables()).map_err(|e| format!("oracle open: {e:?}"))?;
    let dir_ids: Vec<u32> = match (0..DIRS)
        .map(|d| fs.lookup_dir(format!("app{d}").as_bytes()).map(|x| x.id))
        .collect::<Result<Vec<u32>, Error>>()
    {
        Ok(v) => v,
        Err(Error::Again) if any_unrecovered => return Ok(()),
        Err(e) => return Err(format!("dir lookup: {e:?}")),
    };
    for ((d, k), st) in model.iter_mut() {
        let dir = dir_ids[*d as usize];
        let found = fs.lookup(dir, &key_name(*k));
        match (&*st, &found) {
            (_, Err(Error::Again)) if any_unrecovered => continue, // torn by a dead host, pending replay
            (_, Err(e)) if *e != Error::NotFound => {
                return Err(format!("oracle lookup {d}/{k}: {e:?}"))
            }
            (_, Ok(key)) => {
                if !read_data_ok(
                    o,
                    geo.data_off,
                    *k,
                    key.rec.generation,
                    key.rec.used_extents(),
                    false,
                ) {
                    return Err(format!(
                        "key {d}/{k} visible with incomplete/damaged data (entry {})",
                        key.entry
                    ));
                }
            }
            _ => {}
        }
        match (&*st, found) {
            (KS::Absent, Ok(key)) => {
                return Err(format!(
                    "key {d}/{k} visible but model says absent (entry {})",
                    key.entry
                ))
            }
            (KS::Published { entry, gen }, Ok(key))
                if (key.entry, key.rec.generation) != (*entry, *gen) =>
            {
                return Err(format!(
                    "key {d}/{k}: entry {} gen {} but model {entry}/{gen}",
                    key.entry, key.rec.generation
                ))
            }
            (KS::Published { .. }, Err(_)) => return Err(format!("published key {d}/{k} lost")),
            (KS::Unknown, r) if !any_unrecovered => {
                *st = match r {
                    Ok(key) => KS::Published {
                        entry: key.entry,
                        gen: key.rec.generation,
                    },
                    Err(_) => KS::Absent,
                };
            }
            _ => {}
        }
    }
    // Held keys keep their data, even unlinked.
    for h in hosts.iter().filter(|h| h.fs.is_some()) {
        for hd in &h.holds {
            let mut b = [0u8; 512];
            let _ = o.load(geo.entry(hd.entry), &mut b);
            let e = marufs_core::layout::EntryRec::decode(&b);
            // A record torn by a host that died mid-update is pending replay.
            let same = e
                .map(|e| e.generation == hd.gen && e.state != entry_state::FREE)
                .unwrap_or(any_unrecovered);
            if !same {
                return Err(format!(
                    "held entry {} (gen {}) was freed while held",
                    hd.entry, hd.gen
                ));
            }
            if !read_data_ok(o, geo.data_off, hd.k, hd.gen, &hd.ext, false) {
                return Err(format!("held entry {} data reused while held", hd.entry));
            }
        }
    }
    if any_unrecovered {
        return Ok(()); // a dead host's half-done work is legitimately pending
    }
    let rep = run_fsck(o, true);
    if rep.errors != 0 {
        return Err(format!("fsck (online): {:?}", rep.findings));
    }
    Ok(())
}

/// Seeds for the current run: `MARUFS_SIM_SEEDS` (count) or `default`.
pub fn seed_count(default: u64) -> u64 {
    std::env::var("MARUFS_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Keep `Arc` in the public API surface used by tests.
pub type SimRef = Arc<Sim>;

// ---------------------------------------------------------------- targeted scenarios

type Job<'a> = Box<dyn FnOnce() -> Result<(), String> + Send + 'a>;

fn e(w: &'static str) -> impl Fn(Error) -> String {
    move |x| format!("{w}: {x:?}")
}

/// Runs one job per host concurrently under the baton scheduler.
fn run_jobs(sim: &Arc<Sim>, jobs: Vec<(usize, Job<'_>)>) -> Vec<Result<(), String>> {
    let hosts: Vec<usize> = jobs.iter().map(|j| j.0).collect();
    sim.start_round(&hosts, 3_000_000);
    std::thread::scope(|s| {
        let hs: Vec<_> = jobs
            .into_iter()
            .map(|(h, job)| {
                let sim2 = sim.clone();
                s.spawn(move || {
                    let r = job();
                    sim2.finish(h);
                    r
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("job panicked".into())))
            .collect()
    })
}

fn open_join(sim: &Arc<Sim>, h: usize) -> Result<HostFs, Error> {
    open_join_as(sim, h, h as u32)
}

/// Rejoin race (targeted): host 1 dies inside `unlink`, holding the namespace
/// lock, and restarts and rejoins while host 0 works. Schedule: host 0 runs
/// `a_first` media calls, host 1 runs `j_ops`, host 0 runs to the end of its
/// work, then both freely. The pool must then pass an online fsck, lookups must
/// match, and after both hosts leave a strict fsck must be clean.
///
/// - `quick == false` (takeover): host 1 dies after applying its record, before
///   marking it applied; host 0 has watched it silent past lease + margin and
///   judges it dead, replays its journal and takes it over (`check_peers`,
///   then `drain_orphans`) while host 1 rejoins.
/// - `quick == true`: host 1 dies halfway through applying its record and
///   rejoins at once; host 0, which never judged it dead, waits for the lock
///   and unlinks another key of the same directory.
pub fn rejoin_race(quick: bool, a_first: u64, j_ops: u64) -> Result<(), String> {
    let size = 64 * UNIT;
    let sim = Sim::new(2, size, 7);
    let oracle = Oracle(sim.clone());
    let opts = FormatOptions {
        params: GeometryParams {
            total_size: size,
            max_hosts: 2,
            entries: 48,
            bytes_per_entry: 0,
            dirs: 4,
            allow_small: true,
        },
        uuid: [7; 16],
        label: [0; 64],
        now: 1,
    };
    let geo = format(&oracle, &opts, &mut |_, _| {})
        .map_err(|e| format!("format: {e:?}"))?
        .geo;
    sim.lock().evict_ppm = 0;
    // Both hosts up; host 0 makes the directory, host 1 publishes three keys.
    let mut a: Option<HostFs> = None;
    let mut j: Option<HostFs> = None;
    run_jobs(
        &sim,
        vec![(
            0,
            Box::new(|| {
                let mut fs = open_join(&sim, 0).map_err(e("join 0"))?;
                fs.mkdir(b"d", 0, 0, 0o755).map_err(e("mkdir"))?;
                a = Some(fs);
                Ok(())
            }),
        )],
    )
    .remove(0)?;
    run_jobs(
        &sim,
        vec![(
            1,
            Box::new(|| {
                let mut fs = open_join(&sim, 1).map_err(e("join 1"))?;
                let d = fs.lookup_dir(b"d").map_err(e("lookup_dir"))?.id;
                for k in 0..3 {
                    let h = fs
                        .create(d, &key_name(k), 0, 0, 0o644)
                        .map_err(e("create"))?;
                    fs.set_size(&h, UNIT).map_err(e("set_size"))?;
                    fs.publish(&h, None).map_err(e("publish"))?;
                }
                j = Some(fs);
                Ok(())
            }),
        )],
    )
    .remove(0)?;
    // Host 1 dies inside unlink, holding the lock, after applying its record
    // and before marking it applied.
    sim.lock().crash_on_store = Some((1, if quick { geo.reg(1) } else { geo.journal(1) }));
    let mut jfs = j.take().ok_or("host 1 missing")?;
    let r = run_jobs(
        &sim,
        vec![(
            1,
            Box::new(|| match jfs.unlink(0, &key_name(0)) {
                Err(x) if is_crash(&x) => Ok(()),
                other => Err(format!("unlink did not crash: {other:?}")),
            }),
        )],
    );
    drop(jfs);
    r.into_iter().collect::<Result<Vec<()>, String>>()?;
    // Host 0 starts observing host 1; then host 1 stays silent past its lease.
    let mut afs = a.take().ok_or("host 0 missing")?;
    if !quick {
        run_jobs(
            &sim,
            vec![(
                0,
                Box::new(|| afs.check_peers().map(|_| ()).map_err(e("check_peers"))),
            )],
        )
        .remove(0)?;
        for _ in 0..15 {
            sim.lock().clock += LEASE / 5;
            run_jobs(
                &sim,
                vec![(0, Box::new(|| afs.heartbeat().map_err(e("heartbeat"))))],
            )
            .remove(0)?;
        }
    }
    // Host 1's rejoin first watches its silent slot for a lease and margin
    // (the join's check that no other host uses the node id), writing
    // nothing; host 0 renews its lease meanwhile, as its heartbeat would.
    let watched = AtomicBool::new(false);
    let mut pre: Option<(HostFs, SlotWatch)> = None;
    let res = run_jobs(
        &sim,
        vec![
            (0, Box::new(|| keep_alive(&mut afs, &watched))),
            (
                1,
                Box::new(|| {
                    sim.restart(1);
                    let m = SimMedia {
                        sim: sim.clone(),
                        host: 1,
                    };
                    let r = Fs::open(m.clone(), m, 1, tunables()).and_then(|fs| {
                        let w = fs.watch_node()?;
                        Ok((fs, w))
                    });
                    watched.store(true, SeqCst);
                    pre = Some(r.map_err(e("watch"))?);
                    Ok(())
                }),
            ),
        ],
    );
    for r in res {
        r?;
    }
    // The race.
    {
        let mut g = sim.lock();
        g.script.push_back((0, a_first));
        g.script.push_back((1, j_ops));
        // Then host 0 alone for a while, less than it takes to judge host 1
        // dead from here (a wait round is about 4 media calls and 300 ns;
        // expiry needs 1.5 leases, 300 µs, of silence): host 1 is held back
        // but never stalls past its lease. A stall inside host 1's locked
        // section long enough to be fenced is the fencing model's case
        // (`stall.rs`, with and without the fabric hook), not this test's.
        g.script.push_back((0, 1_500));
    }
    let mut jnew: Option<HostFs> = None;
    // Host 1's rejoin first watches its silent slot for a lease and margin
    // (the join's check for a node id in use): host 0 keeps renewing its
    // lease meanwhile, as its heartbeat would.
    let joined = AtomicBool::new(false);
    let res = run_jobs(
        &sim,
        vec![
            (
                0,
                Box::new(|| {
                    if quick {
                        afs.unlink(0, &key_name(1)).map_err(e("unlink 1"))?;
                    } else {
                        afs.check_peers().map_err(e("check_peers"))?;
                    }
                    afs.drain_orphans().map_err(e("drain"))?;
                    keep_alive(&mut afs, &joined)
                }),
            ),
            (
                1,
                Box::new(|| {
                    // A stall long enough to be fenced again is legitimate.
                    let r = match pre.take() {
                        Some((mut fs, w)) => fs.join_watched(w).map(|()| fs),
                        None => Err(Error::NotJoined),
                    };
                    joined.store(true, SeqCst);
                    match r {
                        Ok(fs) => jnew = Some(fs),
                        Err(Error::Fenced | Error::Again) => {}
                        Err(x) => return Err(format!("rejoin: {x:?}")),
                    }
                    Ok(())
                }),
            ),
        ],
    );
    sim.lock().script.clear();
    for r in res {
        r?;
    }
    for h in 0..2 {
        sim.writeback_all(h);
    }
    let rep = run_fsck(&oracle, true);
    if rep.errors != 0 {
        return Err(format!("online fsck after the race: {:?}", rep.findings));
    }
    // Keys 1 and 2 are still published, key 0 is gone.
    let mut jfs = jnew.take();
    let left = AtomicBool::new(false);
    let res = run_jobs(
        &sim,
        vec![
            (
                0,
                Box::new(|| {
                    for k in 0..3 {
                        let r = afs.lookup(0, &key_name(k));
                        match (k, r) {
                            (0, Err(Error::NotFound)) | (2, Ok(_)) => {}
                            (1, Err(Error::NotFound)) if quick => {}
                            (1, Ok(_)) if !quick => {}
                            (_, r) => return Err(format!("lookup key {k}: {r:?}")),
                        }
                    }
                    keep_alive(&mut afs, &left)?;
                    afs.leave().map_err(e("leave 0"))
                }),
            ),
            (
                1,
                Box::new(|| {
                    let r = (|| {
                        let mut fs = match jfs.take() {
                            Some(mut fs) => match fs.heartbeat() {
                                Err(Error::Fenced) => {
                                    fs.join().map_err(e("join again"))?;
                                    fs
                                }
                                _ => fs,
                            },
                            None => open_join(&sim, 1).map_err(e("join again"))?,
                        };
                        fs.leave().map_err(e("leave 1"))
                    })();
                    left.store(true, SeqCst);
                    r
                }),
            ),
        ],
    );
    for r in res {
        r?;
    }
    for h in 0..2 {
        sim.writeback_all(h);
    }
    let rep = run_fsck(&oracle, false);
    if rep.errors != 0 {
        return Err(format!("final fsck: {:?}", rep.findings));
    }
    Ok(())
}

/// Renews `fs`'s lease (as its heartbeat would) until `until` is set.
fn keep_alive(fs: &mut HostFs, until: &AtomicBool) -> Result<(), String> {
    while !until.load(SeqCst) {
        fs.heartbeat().map_err(e("heartbeat"))?;
        fs.env().relax();
    }
    Ok(())
}

fn open_join_as(sim: &Arc<Sim>, h: usize, node: u32) -> Result<HostFs, Error> {
    sim.restart(h);
    let m = SimMedia {
        sim: sim.clone(),
        host: h,
    };
    sim.set_node(h, node);
    let mut fs = Fs::open(m.clone(), m, node, tunables())?;
    fs.join()?;
    Ok(fs)
}

/// A small two-host pool for the node-identity scenarios.
fn node_pool(seed: u64) -> Result<(Arc<Sim>, Oracle, marufs_core::layout::Geometry), String> {
    let size = 64 * UNIT;
    let sim = Sim::new(2, size, seed);
    let oracle = Oracle(sim.clone());
    let opts = FormatOptions {
        params: GeometryParams {
            total_size: size,
            max_hosts: 2,
            entries: 48,
            bytes_per_entry: 0,
            dirs: 4,
            allow_small: true,
        },
        uuid: [9; 16],
        label: [0; 64],
        now: 1,
    };
    let geo = format(&oracle, &opts, &mut |_, _| {})
        .map_err(|e| format!("format: {e:?}"))?
        .geo;
    sim.lock().evict_ppm = 0;
    Ok((sim, oracle, geo))
}

/// Two hosts claim one node id (a copied fstab line): host 0 joined as node
/// 0 and keeps renewing its lease; then host 1 mounts with node 0 too. Its
/// join must fail with [`Error::NodeInUse`] having taken nothing: host 0
/// still holds its epoch, creates and publishes, and the pool checks clean.
/// Returns the sim time host 1 spent before it was refused.
pub fn duplicate_node() -> Result<u64, String> {
    let (sim, oracle, geo) = node_pool(11)?;
    let mut a: Option<HostFs> = None;
    run_jobs(
        &sim,
        vec![(
            0,
            Box::new(|| {
                let mut fs = open_join_as(&sim, 0, 0).map_err(e("join 0"))?;
                fs.mkdir(b"d", 0, 0, 0o755).map_err(e("mkdir"))?;
                a = Some(fs);
                Ok(())
            }),
        )],
    )
    .remove(0)?;
    let mut afs = a.take().ok_or("host 0 missing")?;
    let epoch = afs.epoch();
    let done = AtomicBool::new(false);
    let t0 = sim.lock().clock;
    let spent = std::sync::atomic::AtomicU64::new(0);
    let res = run_jobs(
        &sim,
        vec![
            (
                0,
                Box::new(|| {
                    while !done.load(SeqCst) {
                        afs.heartbeat().map_err(e("heartbeat 0"))?;
                        afs.env().relax();
                    }
                    Ok(())
                }),
            ),
            (
                1,
                Box::new(|| {
                    let r = open_join_as(&sim, 1, 0);
                    spent.store(sim.lock().clock - t0, SeqCst);
                    done.store(true, SeqCst);
                    match r {
                        Err(Error::NodeInUse { node: 0, .. }) => Ok(()),
                        Err(x) => Err(format!("second join as node 0: {x:?}")),
                        Ok(fs) => Err(format!(
                            "second join as node 0 succeeded (epoch {}, the first host's {epoch})",
                            fs.epoch()
                        )),
                    }
                }),
            ),
        ],
    );
    for r in res {
        r?;
    }
    // Host 0 is intact and works on.
    let res = run_jobs(
        &sim,
        vec![(
            0,
            Box::new(|| {
                if afs.epoch() != epoch {
                    return Err(format!(
                        "host 0's epoch changed: {} -> {}",
                        epoch,
                        afs.epoch()
                    ));
                }
                let d = afs.lookup_dir(b"d").map_err(e("lookup_dir"))?.id;
                let h = afs
                    .create(d, &key_name(0), 0, 0, 0o644)
                    .map_err(e("create"))?;
                afs.set_size(&h, UNIT).map_err(e("set_size"))?;
                afs.publish(&h, None).map_err(e("publish"))?;
                Ok(())
            }),
        )],
    );
    for r in res {
        r?;
    }
    let id = read_ident(&oracle, &geo, 0);
    if id.map(|i| i.epoch) != Some(epoch) {
        return Err(format!(
            "node 0's identity after the refusal: {id:?}, want epoch {epoch}"
        ));
    }
    for h in 0..2 {
        sim.writeback_all(h);
    }
    let rep = run_fsck(&oracle, true);
    if rep.errors != 0 {
        return Err(format!("fsck after the refused join: {:?}", rep.findings));
    }
    Ok(spent.load(SeqCst))
}

fn read_ident(
    o: &Oracle,
    geo: &marufs_core::layout::Geometry,
    h: u32,
) -> Option<marufs_core::layout::HostIdent> {
    let mut b = [0u8; 64];
    o.0.lock().read_mem(geo.host_slot(h), &mut b);
    marufs_core::layout::HostIdent::decode(&b)
}

/// Node 1 joins, leaves an unpublished key, and dies; `tear` then tears its
/// identity line (a crash in the middle of writing it). Its rejoin must wait
/// out a lease and margin on the silent slot (returned: the sim time it
/// took), come back with a higher epoch than the dead incarnation's, and
/// recover it: the unpublished key is gone, nothing leaks (fsck clean).
pub fn crashed_node_rejoins(tear: bool) -> Result<u64, String> {
    let (sim, oracle, geo) = node_pool(13)?;
    let mut j: Option<HostFs> = None;
    run_jobs(
        &sim,
        vec![(
            1,
            Box::new(|| {
                let mut fs = open_join_as(&sim, 1, 1).map_err(e("join 1"))?;
                let d = fs.mkdir(b"d", 0, 0, 0o755).map_err(e("mkdir"))?;
                let h = fs
                    .create(d, &key_name(0), 0, 0, 0o644)
                    .map_err(e("create"))?;
                fs.set_size(&h, 2 * UNIT).map_err(e("set_size"))?;
                let p = fs
                    .create(d, &key_name(1), 0, 0, 0o644)
                    .map_err(e("create 1"))?;
                fs.set_size(&p, UNIT).map_err(e("set_size 1"))?;
                fs.publish(&p, None).map_err(e("publish 1"))?;
                j = Some(fs);
                Ok(())
            }),
        )],
    )
    .remove(0)?;
    let old_epoch = j.as_ref().map(|f| f.epoch()).ok_or("host 1 missing")?;
    // Dies: no leave.
    drop(j.take());
    sim.writeback_all(1);
    if tear {
        let mut g = sim.lock();
        let mut b = [0u8; 64];
        g.read_mem(geo.host_slot(1), &mut b);
        // The first 8 bytes of a new identity landed, the rest did not.
        b[..8].copy_from_slice(&[0x5a; 8]);
        g.write_mem(geo.host_slot(1), &b);
    }
    let t0 = sim.lock().clock;
    let mut took = 0;
    let mut new_epoch = 0;
    let res = run_jobs(
        &sim,
        vec![(
            1,
            Box::new(|| {
                let mut fs = open_join_as(&sim, 1, 1).map_err(e("rejoin"))?;
                took = sim.lock().clock - t0;
                new_epoch = fs.epoch();
                let d = fs.lookup_dir(b"d").map_err(e("lookup_dir"))?.id;
                match fs.lookup(d, &key_name(0)) {
                    Err(Error::NotFound) => {}
                    r => return Err(format!("the dead incarnation's unpublished key: {r:?}")),
                }
                fs.lookup(d, &key_name(1)).map_err(e("published key"))?;
                fs.leave().map_err(e("leave"))
            }),
        )],
    );
    for r in res {
        r?;
    }
    if new_epoch <= old_epoch {
        return Err(format!(
            "rejoined with epoch {new_epoch}, the dead incarnation had {old_epoch}"
        ));
    }
    sim.writeback_all(1);
    let rep = run_fsck(&oracle, false);
    if rep.errors != 0 {
        return Err(format!("fsck after the rejoin: {:?}", rep.findings));
    }
    Ok(took)
}

/// A deterministic clock for single-host tests: every reading advances it by
/// 1 ns, `relax` by `relax_ns`; wall time is a constant.
pub struct StepClock {
    now: std::cell::Cell<u64>,
    wall: u64,
    relax_ns: u64,
}

impl StepClock {
    /// Starts at `start` ns.
    pub fn new(start: u64, wall: u64, relax_ns: u64) -> StepClock {
        StepClock {
            now: std::cell::Cell::new(start),
            wall,
            relax_ns,
        }
    }
}

impl Env for StepClock {
    fn now_ns(&self) -> u64 {
        self.now.set(self.now.get() + 1);
        self.now.get()
    }
    fn wall_ns(&self) -> u64 {
        self.wall
    }
    fn relax(&self) {
        self.now.set(self.now.get() + self.relax_ns);
    }
    fn pause(&self, ns: u64) -> bool {
        self.now.set(self.now.get() + ns.max(self.relax_ns));
        true
    }
}
