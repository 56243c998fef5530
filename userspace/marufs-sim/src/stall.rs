//! Stalled hosts (issue 13 §1, §3): a host stops — frozen execution, and
//! with `freeze_clock` a clock that stands still too (a monotonic clock
//! across a suspend, a paused VM) — for longer than its lease; a survivor
//! fences it and takes it over; then it resumes in the middle of whatever
//! it was doing and believes its lease is still good.
//!
//! The pool must come out consistent: the resumed host's operation fails
//! with `Fenced` (or completed before the fence), the survivor's keys are
//! byte-exact, no entry is handed out twice, fsck finds nothing — once the
//! zombie's dirty lines have landed too.

use super::*;

/// Where the stalled host stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallAt {
    /// Just before it starts a create (the review's reproduction: the clock
    /// stood still across the takeover, then the host creates).
    BeforeCreate,
    /// At a random media call inside its create, set_size or publish.
    InsideCreate,
    /// After publishing a key, before it takes a hold on it (an open); the
    /// clock as `freeze_clock` says. The outcome's `create` is the hold's.
    BeforeHold,
}

/// One stall scenario.
#[derive(Clone, Copy, Debug)]
pub struct StallCase {
    /// Schedule seed.
    pub seed: u64,
    /// Where the stall hits.
    pub at: StallAt,
    /// The stalled host's clock stands still through the stall.
    pub freeze_clock: bool,
    /// The fabric hook cuts a fenced host off (see `Env::fence_host`).
    pub fabric: bool,
    /// While stalled, its dirty lines are written back at random moments.
    pub zombie_writeback: bool,
}

/// What happened.
#[derive(Debug)]
pub struct StallOutcome {
    /// The stalled host's create: `Ok` or the error.
    pub create: Result<(), Error>,
    /// Whether a stall was injected at all (`InsideCreate` may finish first).
    pub stalled: bool,
    /// Whether the fabric cut the stalled host off.
    pub cut: bool,
    /// Keys the survivor published meanwhile.
    pub survivor_keys: u32,
}

/// Global time the stalled host stands still: three leases and margins.
pub const STALL_NS: u64 = 3 * (LEASE + LEASE / 2);

fn write_key(fs: &mut HostFs, d: u32, k: u32) -> Result<(u32, u64), Error> {
    let h = fs.create(d, &key_name(k), 0, 0, 0o644)?;
    let r = (|| {
        fs.set_size(&h, UNIT)?;
        let off = fs.geometry().data_off;
        let e = fs.extents(&h)?;
        let mut i = 0u64;
        for x in e.used_extents() {
            for u in 0..u64::from(x.count) {
                let a = off + (u64::from(x.start) + u) * UNIT;
                fs.media().store(a, &pattern(k, h.generation, i))?;
                fs.media().flush(a, 64)?;
                i += 1;
            }
        }
        fs.publish(&h, None)
    })();
    match r {
        Ok(()) => Ok((h.entry, h.generation)),
        Err(x) => {
            if !is_crash(&x) {
                let _ = fs.abort(&h);
            }
            Err(x)
        }
    }
}

/// Runs one stall scenario: host 0 stalls, host 1 survives.
pub fn stalled_host_resumes(c: StallCase) -> Result<StallOutcome, String> {
    let (sim, oracle, geo) = node_pool(c.seed)?;
    let mut a: Option<HostFs> = None;
    let mut b: Option<HostFs> = None;
    let mut dir = 0u32;
    for r in run_jobs(
        &sim,
        vec![
            (
                0,
                Box::new(|| {
                    let mut fs = open_join_as(&sim, 0, 0).map_err(e("join 0"))?;
                    dir = fs.mkdir(b"d", 0, 0, 0o755).map_err(e("mkdir"))?;
                    a = Some(fs);
                    Ok(())
                }),
            ),
            (
                1,
                Box::new(|| {
                    b = Some(open_join_as(&sim, 1, 1).map_err(e("join 1"))?);
                    Ok(())
                }),
            ),
        ],
    ) {
        r?;
    }
    let mut afs = a.take().ok_or("host 0 missing")?;
    let mut bfs = b.take().ok_or("host 1 missing")?;
    {
        let mut g = sim.lock();
        g.evict_ppm = 20_000;
        g.fabric = c.fabric;
        g.stall_freezes_clock = c.freeze_clock;
        g.stall_len = (STALL_NS, STALL_NS + 1);
        if c.zombie_writeback {
            g.zombie_writeback_ppm = 50_000;
        }
    }
    let a_done = AtomicBool::new(false);
    let mut create: Result<(), Error> = Ok(());
    let mut published: Vec<(u32, u32, u64)> = vec![];
    let res = run_jobs(
        &sim,
        vec![
            (
                0,
                Box::new(|| {
                    let mine = match c.at {
                        StallAt::BeforeHold => {
                            Some(write_key(&mut afs, dir, 0).map_err(e("key 0"))?)
                        }
                        _ => None,
                    };
                    // A heartbeat first: the lease is fresh when the stall hits.
                    afs.heartbeat().map_err(e("heartbeat 0"))?;
                    match c.at {
                        StallAt::BeforeCreate | StallAt::BeforeHold => {
                            sim.stall(0, STALL_NS, c.freeze_clock)
                        }
                        StallAt::InsideCreate => {
                            let mut g = sim.lock();
                            g.may_stall[0] = true;
                            g.stall_ppm = 60_000;
                        }
                    }
                    let r = match mine {
                        // Its hold would be ignored by the survivor (it is
                        // fenced): the key may be reclaimed under it.
                        Some((entry, gen)) => afs.hold(entry, gen).map(|()| (entry, gen)),
                        None => write_key(&mut afs, dir, 0),
                    };
                    {
                        let mut g = sim.lock();
                        g.may_stall[0] = false;
                        g.stall_ppm = 0;
                    }
                    create = r.map(|_| ());
                    a_done.store(true, SeqCst);
                    Ok(())
                }),
            ),
            (
                1,
                Box::new(|| {
                    let mut k = 1u32;
                    let mut spins = 0u64;
                    // Work until the stalled host has resumed and finished,
                    // and at least two keys are in.
                    while !a_done.load(SeqCst) || published.len() < 2 {
                        spins += 1;
                        if spins > 200_000 {
                            return Err("survivor made no progress".into());
                        }
                        bfs.heartbeat().map_err(e("heartbeat 1"))?;
                        match bfs.check_peers() {
                            Ok(_) | Err(Error::Again) => {}
                            Err(x) => return Err(format!("check_peers: {x:?}")),
                        }
                        if k < NAMES {
                            match write_key(&mut bfs, dir, k) {
                                Ok((entry, gen)) => {
                                    published.push((k, entry, gen));
                                    k += 1;
                                }
                                Err(Error::Again | Error::NoSpace) => {}
                                Err(x) => return Err(format!("survivor create {k}: {x:?}")),
                            }
                        }
                        bfs.env().relax();
                    }
                    Ok(())
                }),
            ),
        ],
    );
    for r in res {
        r?;
    }
    let (stalled, cut) = {
        let g = sim.lock();
        (g.stalls > 0, g.cut[0])
    };
    // The zombie's remaining dirty lines land (unless the fabric cut it off).
    if !cut {
        sim.writeback_all(0);
    }
    // The survivor finishes any takeover, then every key it published must
    // read back exactly, with the entry and generation it was given.
    let mut finish = vec![];
    let res = run_jobs(
        &sim,
        vec![(
            1,
            Box::new(|| {
                bfs.check_peers().map_err(e("final check_peers"))?;
                for &(k, entry, gen) in &published {
                    let f = bfs.lookup(dir, &key_name(k)).map_err(e("lookup"))?;
                    if (f.entry, f.rec.generation) != (entry, gen) {
                        return Err(format!(
                            "key {k}: entry {} gen {}, published as entry {entry} gen {gen}",
                            f.entry, f.rec.generation
                        ));
                    }
                    finish.push((k, entry, gen, f.rec.used_extents().to_vec()));
                }
                Ok(())
            }),
        )],
    );
    for r in res {
        r?;
    }
    sim.writeback_all(1);
    for (k, entry, gen, ext) in &finish {
        if !read_data_ok(&oracle, geo.data_off, *k, *gen, ext, false) {
            return Err(format!(
                "survivor's key {k} (entry {entry} gen {gen}) lost its bytes"
            ));
        }
    }
    let rep = run_fsck(&oracle, true);
    if rep.errors != 0 {
        return Err(format!(
            "fsck after the stalled host resumed (create {create:?}): {:?}",
            rep.findings
        ));
    }
    Ok(StallOutcome {
        create,
        stalled,
        cut,
        survivor_keys: finish.len() as u32,
    })
}
