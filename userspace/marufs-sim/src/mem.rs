//! Simulated shared memory with per-host non-coherent write-back caches and a
//! deterministic baton-passing scheduler.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use marufs_core::{Env, Media, MediaError};

/// Cache line size.
pub const L: u64 = 64;

/// Small deterministic PRNG (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

#[allow(clippy::should_implement_trait)]
impl Rng {
    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `p` per million.
    pub fn ppm(&mut self, p: u64) -> bool {
        self.below(1_000_000) < p
    }
}

#[derive(Clone)]
struct CLine {
    data: [u8; 64],
    dirty: bool,
}

/// A fault to inject: drop flushes or invalidates that touch `[off, off+len)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Drop flushes overlapping this range (len 0: none).
    pub drop_flush: (u64, u64),
    /// Drop invalidates overlapping this range (len 0: none).
    pub drop_invalidate: (u64, u64),
    /// Drop invalidates of at most 16 bytes overlapping this range (the
    /// change-counter reads of name caches; len 0: none).
    pub drop_small_invalidate: (u64, u64),
}

fn overlaps(r: (u64, u64), off: u64, len: u64) -> bool {
    r.1 != 0 && off < r.0 + r.1 && r.0 < off + len
}

/// Scheduler and memory state.
pub struct Inner {
    /// Shared memory, sparse, by line index.
    pub mem: BTreeMap<u64, [u8; 64]>,
    /// Pool size.
    pub size: u64,
    caches: Vec<BTreeMap<u64, CLine>>,
    /// Scheduling / crash randomness.
    pub rng: Rng,
    /// Virtual monotonic clock (ns).
    pub clock: u64,
    turn: usize,
    runnable: Vec<bool>,
    /// Hosts that crashed (media calls fail until restarted).
    pub crashed: Vec<bool>,
    /// Crash probability per media call (ppm) for hosts in `may_crash`.
    pub crash_ppm: u64,
    /// Hosts allowed to crash this round.
    pub may_crash: Vec<bool>,
    /// Eviction probability per media call (ppm).
    pub evict_ppm: u64,
    /// Probability (ppm) of switching host at a media call.
    pub switch_ppm: u64,
    /// Media calls so far.
    pub steps: u64,
    /// Step limit of the current round (livelock detector).
    pub round_limit: u64,
    /// Set when the limit was hit.
    pub livelock: bool,
    /// Faults.
    pub faults: Faults,
    last_run: Vec<u64>,
    idle: Vec<bool>,
    /// Forced schedule for targeted scenarios: (host, media calls) segments run in
    /// order (a segment ends early when its host stops running); then random.
    pub script: VecDeque<(usize, u64)>,
    /// Crash `host` just before its next store at exactly `offset` (targeted scenarios).
    pub crash_on_store: Option<(usize, u64)>,
    /// Each host's own clock (skew, drift, standing still in a stall).
    pub clocks: Vec<HostClock>,
    /// Host `h` gets no turn before the global clock reaches `stalled_until[h]`
    /// (frozen execution: a paused VM, a suspend, a long preemption).
    pub stalled_until: Vec<u64>,
    /// Stall probability per media call (ppm) for hosts in `may_stall`.
    pub stall_ppm: u64,
    /// Hosts allowed to stall this round.
    pub may_stall: Vec<bool>,
    /// Length of an injected stall (global ns): uniform in this range.
    pub stall_len: (u64, u64),
    /// Whether an injected stall also stops the host's clock (a monotonic
    /// clock that does not count suspend), or lets it run (boottime).
    pub stall_freezes_clock: bool,
    /// While a host is stalled, probability (ppm, per media call of any
    /// host) that one of its dirty lines is written back: a zombie's cache
    /// evicting at any moment after it stopped.
    pub zombie_writeback_ppm: u64,
    /// Hosts cut off from the pool by the fabric (the fencing hook): their
    /// media calls fail and their cache is gone, never written back.
    pub cut: Vec<bool>,
    /// Times the fabric hook cut a host off.
    pub cuts: u64,
    /// Of those, hosts cut off while stalled (zombies, not crashed hosts).
    pub zombie_cuts: u64,
    /// Whether the fabric hook is available ([`Env::fence_host`] cuts).
    pub fabric: bool,
    /// A crash at a store tears it at 8-byte granularity with this
    /// probability (ppm): only a prefix of its words reaches the cache.
    pub tear_ppm: u64,
    tear: Option<u64>,
    /// Stalls injected so far.
    pub stalls: u64,
    /// Node id → simulated host, where they differ.
    pub nodes: BTreeMap<u32, usize>,
}

/// One host's clock: `offset + r + r * drift_ppm / 1e6` with `r` the global
/// time it has been running (global time minus the time it stood still).
#[derive(Clone, Copy, Debug, Default)]
pub struct HostClock {
    /// Skew: the clock's reading at global time zero.
    pub offset: u64,
    /// Rate error in parts per million (within `marufs_core`'s bound).
    pub drift_ppm: i64,
    /// Global time during which the clock stood still.
    pub frozen: u64,
}

impl HostClock {
    /// The reading at global time `global`.
    pub fn read(&self, global: u64) -> u64 {
        let r = global.saturating_sub(self.frozen) as i128;
        let v = self.offset as i128 + r + r * self.drift_ppm as i128 / 1_000_000;
        v.max(0) as u64
    }
}

/// Shared simulator state.
pub struct Sim {
    inner: Mutex<Inner>,
    cvs: Vec<Condvar>,
}

impl Sim {
    /// A new simulator for `hosts` hosts over a zeroed pool of `size` bytes.
    pub fn new(hosts: usize, size: u64, seed: u64) -> Arc<Sim> {
        Arc::new(Sim {
            inner: Mutex::new(Inner {
                mem: BTreeMap::new(),
                size,
                caches: vec![BTreeMap::new(); hosts],
                rng: Rng(seed),
                clock: 1_000_000,
                turn: 0,
                runnable: vec![false; hosts],
                crashed: vec![false; hosts],
                crash_ppm: 0,
                may_crash: vec![false; hosts],
                evict_ppm: 20_000,
                switch_ppm: 120_000,
                steps: 0,
                round_limit: u64::MAX,
                livelock: false,
                faults: Faults::default(),
                last_run: vec![0; hosts],
                idle: vec![false; hosts],
                script: VecDeque::new(),
                crash_on_store: None,
                clocks: vec![HostClock::default(); hosts],
                stalled_until: vec![0; hosts],
                stall_ppm: 0,
                may_stall: vec![false; hosts],
                stall_len: (0, 0),
                stall_freezes_clock: true,
                zombie_writeback_ppm: 0,
                cut: vec![false; hosts],
                cuts: 0,
                zombie_cuts: 0,
                fabric: false,
                tear_ppm: 0,
                tear: None,
                stalls: 0,
                nodes: BTreeMap::new(),
            }),
            cvs: (0..hosts).map(|_| Condvar::new()).collect(),
        })
    }

    /// Locks the state (for the driver between rounds).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a round in which `hosts` run.
    pub fn start_round(&self, hosts: &[usize], limit: u64) {
        let mut g = self.lock();
        for r in g.runnable.iter_mut() {
            *r = false;
        }
        for r in g.idle.iter_mut() {
            *r = false;
        }
        for &h in hosts {
            g.runnable[h] = true;
        }
        g.round_limit = g.steps + limit;
        if let Some(&first) = hosts.get(g.rng.below(hosts.len() as u64) as usize) {
            g.turn = first;
        }
        if let Some(h) = g.scripted() {
            g.turn = h;
        }
    }

    fn wait_turn(&self, h: usize) -> Result<MutexGuard<'_, Inner>, MediaError> {
        let mut g = self.lock();
        loop {
            if g.cut[h] {
                // Cut off by the fabric (and out of the schedule since, as
                // a crashed host): its accesses fail.
                if g.turn == h {
                    self.pass(&mut g, h, true);
                }
                return Err(MediaError::Crashed);
            }
            if g.crashed[h] || g.livelock {
                return Err(MediaError::Crashed);
            }
            if g.turn == h {
                if g.stalled_until[h] <= g.clock {
                    return Ok(g);
                }
                // Stalled: the others run meanwhile.
                self.pass(&mut g, h, true);
                if g.turn == h {
                    // Nobody else can run (a forced schedule): time passes.
                    let t = g.stalled_until[h];
                    g.clock = g.clock.max(t);
                    continue;
                }
            }
            g = self.cvs[h].wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn pass(&self, g: &mut Inner, h: usize, force: bool) {
        if let Some(next) = g.scripted() {
            g.turn = next;
            if next != h {
                self.cvs[next].notify_one();
            }
            return;
        }
        let n = g.runnable.len();
        let steps = g.steps;
        g.last_run[h] = steps;
        let sp = g.switch_ppm;
        let me_stalled = g.stalled_until[h] > g.clock;
        if !force && !me_stalled && g.runnable[h] && !g.rng.ppm(sp) {
            // fairness: do not starve a runnable host for long
            let starving = (0..n).any(|j| j != h && g.runnable[j] && steps - g.last_run[j] > 16);
            if !starving {
                return;
            }
        }
        let clock = g.clock;
        let mut cands: Vec<usize> = (0..n)
            .filter(|&j| g.runnable[j] && g.stalled_until[j] <= clock)
            .collect();
        if cands.is_empty() {
            // Every runnable host is stalled: time passes until the first
            // of them resumes.
            let Some(t) = (0..n)
                .filter(|&j| g.runnable[j])
                .map(|j| g.stalled_until[j])
                .min()
            else {
                return;
            };
            g.clock = g.clock.max(t);
            let clock = g.clock;
            cands = (0..n)
                .filter(|&j| g.runnable[j] && g.stalled_until[j] <= clock)
                .collect();
        }
        // prefer a starving host, else random
        let starving: Vec<usize> = cands
            .iter()
            .copied()
            .filter(|&j| steps - g.last_run[j] > 16)
            .collect();
        let next = if !starving.is_empty() && g.rng.ppm(500_000) {
            starving[g.rng.below(starving.len() as u64) as usize]
        } else {
            cands[g.rng.below(cands.len() as u64) as usize]
        };
        g.turn = next;
        if next != h {
            self.cvs[next].notify_one();
        }
    }

    /// True while another host still runs this round (a scheduling point).
    pub fn others_running(&self, h: usize) -> bool {
        let Ok(mut g) = self.wait_turn(h) else {
            return false;
        };
        g.idle[h] = true;
        let r = (0..g.runnable.len()).any(|j| j != h && g.runnable[j] && !g.idle[j]);
        self.pass(&mut g, h, true);
        r
    }

    /// Host `h` finished its round.
    pub fn finish(&self, h: usize) {
        let Ok(mut g) = self.wait_turn(h) else {
            return;
        };
        g.runnable[h] = false;
        self.pass(&mut g, h, true);
    }

    fn crash_locked(&self, g: &mut Inner, h: usize) {
        let cache = std::mem::take(&mut g.caches[h]);
        for (l, c) in cache {
            if c.dirty && g.rng.below(2) == 0 {
                g.watch("crash-writeback", h, l, &c.data);
                g.mem.insert(l, c.data);
            }
        }
        g.crashed[h] = true;
        g.runnable[h] = false;
        self.pass(g, h, true);
    }

    /// Restarts crashed host `h` (empty cache; the fabric lets it in again).
    pub fn restart(&self, h: usize) {
        let mut g = self.lock();
        g.crashed[h] = false;
        g.cut[h] = false;
        g.stalled_until[h] = 0;
        g.caches[h].clear();
    }

    fn stall_locked(&self, g: &mut Inner, h: usize, len: u64, freeze: Option<bool>) {
        let until = g.clock.saturating_add(len);
        g.stalled_until[h] = until;
        if freeze.unwrap_or(g.stall_freezes_clock) {
            g.clocks[h].frozen = g.clocks[h].frozen.saturating_add(len);
        }
        g.stalls += 1;
        if std::env::var("MARUFS_SIM_TRACE").is_ok() {
            eprintln!("  host {h} stalls at step {} for {len} ns", g.steps);
        }
    }

    /// Records that simulated host `h` runs as node `node` (by default a
    /// host's node id is its index).
    pub fn set_node(&self, h: usize, node: u32) {
        self.lock().nodes.insert(node, h);
    }

    /// The simulated host running as node `node`.
    pub fn host_of(&self, node: u32) -> Option<usize> {
        let g = self.lock();
        match g.nodes.get(&node) {
            Some(&h) => Some(h),
            None => ((node as usize) < g.caches.len()).then_some(node as usize),
        }
    }

    /// Stalls host `h` (called from its own thread or the driver) for `len`
    /// ns of global time: no turn meanwhile; with `freeze_clock` its clock
    /// stands still too (it resumes believing no time passed).
    pub fn stall(&self, h: usize, len: u64, freeze_clock: bool) {
        let mut g = self.lock();
        self.stall_locked(&mut g, h, len, Some(freeze_clock));
    }

    /// The fabric cuts host `h` off: its dirty lines are lost, every later
    /// media call of it fails.
    fn cut_locked(&self, g: &mut Inner, h: usize) {
        if !g.cut[h] {
            g.caches[h].clear();
            g.cut[h] = true;
            g.runnable[h] = false;
            g.cuts += 1;
            if g.stalled_until[h] > g.clock {
                g.zombie_cuts += 1;
            }
            self.cvs[h].notify_one();
            if std::env::var("MARUFS_SIM_TRACE").is_ok() {
                eprintln!("  fabric cuts host {h} off at step {}", g.steps);
            }
        }
    }

    /// Drops host `h`'s cache entirely, writing back dirty lines (clean shutdown).
    pub fn writeback_all(&self, h: usize) {
        let mut g = self.lock();
        let cache = std::mem::take(&mut g.caches[h]);
        for (l, c) in cache {
            if c.dirty {
                g.mem.insert(l, c.data);
            }
        }
    }

    fn op<T>(
        &self,
        h: usize,
        store_at: Option<u64>,
        f: impl FnOnce(&mut Inner) -> Result<T, MediaError>,
    ) -> Result<T, MediaError> {
        let mut g = self.wait_turn(h)?;
        g.steps += 1;
        g.clock += 1;
        if let Some(seg) = g.script.front_mut() {
            if seg.0 == h {
                seg.1 = seg.1.saturating_sub(1);
            }
        }
        if let (Some(at), Some(c)) = (store_at, g.crash_on_store) {
            if c == (h, at) {
                g.crash_on_store = None;
                self.crash_locked(&mut g, h);
                return Err(MediaError::Crashed);
            }
        }
        if g.steps > g.round_limit {
            g.livelock = true;
            for cv in &self.cvs {
                cv.notify_all();
            }
            return Err(MediaError::Crashed);
        }
        let cp = g.crash_ppm;
        if g.may_crash[h] && g.rng.ppm(cp) {
            let tp = g.tear_ppm;
            if store_at.is_some() && tp > 0 && g.rng.ppm(tp) {
                // The crash lands inside this store: a prefix of its 8-byte
                // words reaches the cache, then the host is gone.
                let words = g.rng.below(8);
                g.tear = Some(words);
                let _ = f(&mut g);
                g.tear = None;
            }
            self.crash_locked(&mut g, h);
            return Err(MediaError::Crashed);
        }
        let zp = g.zombie_writeback_ppm;
        if zp > 0 && g.rng.ppm(zp) {
            let clock = g.clock;
            let zombies: Vec<usize> = (0..g.caches.len())
                .filter(|&j| g.stalled_until[j] > clock && !g.cut[j])
                .collect();
            if let Some(&z) = zombies.get(g.rng.below(zombies.len().max(1) as u64) as usize) {
                let dirty: Vec<u64> = g.caches[z]
                    .iter()
                    .filter(|(_, c)| c.dirty)
                    .map(|(k, _)| *k)
                    .collect();
                if let Some(&l) = dirty.get(g.rng.below(dirty.len().max(1) as u64) as usize) {
                    if let Some(c) = g.caches[z].remove(&l) {
                        g.watch("zombie-writeback", z, l, &c.data);
                        g.mem.insert(l, c.data);
                    }
                }
            }
        }
        let sp = g.stall_ppm;
        if sp > 0 && g.may_stall[h] && g.rng.ppm(sp) {
            let (lo, hi) = g.stall_len;
            let len = lo + g.rng.below(hi.saturating_sub(lo).max(1));
            self.stall_locked(&mut g, h, len, None);
            // One stall per arming.
            g.may_stall[h] = false;
        }
        let ep = g.evict_ppm;
        if g.rng.ppm(ep) {
            let n = g.caches[h].len() as u64;
            if n > 0 {
                let k = g.rng.below(n) as usize;
                let key = g.caches[h].keys().nth(k).copied();
                if let Some(key) = key {
                    if let Some(c) = g.caches[h].remove(&key) {
                        if c.dirty {
                            g.watch("evict", h, key, &c.data);
                            g.mem.insert(key, c.data);
                        }
                    }
                }
            }
        }
        let r = f(&mut g);
        self.pass(&mut g, h, false);
        r
    }
}

fn lines(off: u64, len: u64) -> std::ops::Range<u64> {
    if len == 0 {
        return 0..0;
    }
    off / L..(off + len - 1) / L + 1
}

impl Inner {
    /// The host the script says runs next (drops finished segments).
    fn scripted(&mut self) -> Option<usize> {
        while let Some(&(sh, left)) = self.script.front() {
            if left == 0 || !self.runnable.get(sh).copied().unwrap_or(false) {
                self.script.pop_front();
                continue;
            }
            return Some(sh);
        }
        None
    }
    fn watch(&self, what: &str, h: usize, l: u64, d: &[u8; 64]) {
        if let Ok(w) = std::env::var("MARUFS_SIM_WATCH") {
            if w.parse::<u64>().ok() == Some(l) {
                eprintln!(
                    "  watch line {l}: {what} by host {h} step {} data {:02x?}",
                    self.steps,
                    &d[..]
                );
            }
        }
    }
    fn fetch(&mut self, h: usize, l: u64) -> &mut CLine {
        let mem = &self.mem;
        self.caches[h].entry(l).or_insert_with(|| CLine {
            data: mem.get(&l).copied().unwrap_or([0; 64]),
            dirty: false,
        })
    }
    /// Reads shared memory directly (oracle).
    pub fn read_mem(&self, off: u64, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = off + i as u64;
            *b = self
                .mem
                .get(&(a / L))
                .map(|d| d[(a % L) as usize])
                .unwrap_or(0);
        }
    }
    /// Writes shared memory directly (oracle).
    pub fn write_mem(&mut self, off: u64, buf: &[u8]) {
        let mut i = 0usize;
        while i < buf.len() {
            let a = off + i as u64;
            let l = a / L;
            let o = (a % L) as usize;
            let k = (64 - o).min(buf.len() - i);
            let mut line = self.mem.get(&l).copied().unwrap_or([0; 64]);
            line[o..o + k].copy_from_slice(&buf[i..i + k]);
            if line == [0; 64] {
                self.mem.remove(&l);
            } else {
                self.mem.insert(l, line);
            }
            i += k;
        }
    }
}

/// One host's view of the simulated pool.
#[derive(Clone)]
pub struct SimMedia {
    /// The simulator.
    pub sim: Arc<Sim>,
    /// Host index.
    pub host: usize,
}

impl Media for SimMedia {
    fn size(&self) -> u64 {
        self.sim.lock().size
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        let h = self.host;
        self.sim.op(h, None, |g| {
            if off.checked_add(buf.len() as u64).is_none_or(|e| e > g.size) {
                return Err(MediaError::OutOfBounds);
            }
            let mut i = 0usize;
            while i < buf.len() {
                let a = off + i as u64;
                let o = (a % L) as usize;
                let k = (64 - o).min(buf.len() - i);
                let c = g.fetch(h, a / L);
                buf[i..i + k].copy_from_slice(&c.data[o..o + k]);
                i += k;
            }
            Ok(())
        })
    }
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), MediaError> {
        let h = self.host;
        self.sim.op(h, Some(off), |g| {
            if off.checked_add(buf.len() as u64).is_none_or(|e| e > g.size) {
                return Err(MediaError::OutOfBounds);
            }
            // A torn store (crash inside it) lands only its first words.
            let n = match g.tear {
                Some(w) => ((w * 8) as usize).min(buf.len()),
                None => buf.len(),
            };
            let buf = &buf[..n];
            let mut i = 0usize;
            while i < buf.len() {
                let a = off + i as u64;
                let o = (a % L) as usize;
                let k = (64 - o).min(buf.len() - i);
                let c = g.fetch(h, a / L);
                c.data[o..o + k].copy_from_slice(&buf[i..i + k]);
                c.dirty = true;
                i += k;
            }
            Ok(())
        })
    }
    fn flush(&self, off: u64, len: u64) -> Result<(), MediaError> {
        let h = self.host;
        self.sim.op(h, None, |g| {
            if overlaps(g.faults.drop_flush, off, len) {
                return Ok(());
            }
            let keys: Vec<u64> = g.caches[h]
                .range(lines(off, len))
                .filter(|(_, c)| c.dirty)
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                if let Some(c) = g.caches[h].get_mut(&k) {
                    c.dirty = false;
                    let d = c.data;
                    g.watch("flush", h, k, &d);
                    g.mem.insert(k, d);
                }
            }
            Ok(())
        })
    }
    fn invalidate(&self, off: u64, len: u64) -> Result<(), MediaError> {
        let h = self.host;
        self.sim.op(h, None, |g| {
            if overlaps(g.faults.drop_invalidate, off, len)
                || (len <= 16 && overlaps(g.faults.drop_small_invalidate, off, len))
            {
                return Ok(());
            }
            let keys: Vec<u64> = g.caches[h]
                .range(lines(off, len))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                if let Some(c) = g.caches[h].remove(&k) {
                    if c.dirty {
                        g.watch("invalidate-writeback", h, k, &c.data);
                        g.mem.insert(k, c.data);
                    }
                }
            }
            Ok(())
        })
    }
}

impl Env for SimMedia {
    fn now_ns(&self) -> u64 {
        // A scheduling point, so that reading the clock is deterministic.
        match self.sim.wait_turn(self.host) {
            Ok(mut g) => {
                let c = g.clocks[self.host].read(g.clock);
                self.sim.pass(&mut g, self.host, false);
                c
            }
            Err(_) => u64::MAX / 2,
        }
    }
    fn wall_ns(&self) -> u64 {
        1_700_000_000_000_000_000
    }
    fn relax(&self) {
        if let Ok(mut g) = self.sim.wait_turn(self.host) {
            g.clock += 300;
            self.sim.pass(&mut g, self.host, true);
        }
    }
    fn fence_host(&self, node: u32, _epoch: u64) -> bool {
        let Some(h) = self.sim.host_of(node).filter(|&h| h != self.host) else {
            return true;
        };
        // At a scheduling point of this host (its turn), so that schedules
        // stay deterministic.
        match self.sim.wait_turn(self.host) {
            Ok(mut g) => {
                if g.fabric {
                    self.sim.cut_locked(&mut g, h);
                }
                self.sim.pass(&mut g, self.host, false);
                true
            }
            Err(_) => false,
        }
    }
    fn pause(&self, ns: u64) -> bool {
        // A sleep, in relax-sized steps: the others run meanwhile, and a
        // forced schedule's step counts keep meaning short stretches of time.
        let mut left = ns;
        loop {
            self.relax();
            left = left.saturating_sub(300);
            if left == 0 {
                return true;
            }
        }
    }
}

/// Coherent direct access to shared memory (checker, fsck, mkfs in the sim).
/// Use only while no host thread runs.
pub struct Oracle(pub Arc<Sim>);

impl Media for Oracle {
    fn size(&self) -> u64 {
        self.0.lock().size
    }
    fn load(&self, off: u64, buf: &mut [u8]) -> Result<(), MediaError> {
        let g = self.0.lock();
        if off.checked_add(buf.len() as u64).is_none_or(|e| e > g.size) {
            return Err(MediaError::OutOfBounds);
        }
        g.read_mem(off, buf);
        Ok(())
    }
    fn store(&self, off: u64, buf: &[u8]) -> Result<(), MediaError> {
        let mut g = self.0.lock();
        if off.checked_add(buf.len() as u64).is_none_or(|e| e > g.size) {
            return Err(MediaError::OutOfBounds);
        }
        g.write_mem(off, buf);
        Ok(())
    }
    fn flush(&self, _off: u64, _len: u64) -> Result<(), MediaError> {
        Ok(())
    }
    fn invalidate(&self, _off: u64, _len: u64) -> Result<(), MediaError> {
        Ok(())
    }
}

impl Env for Oracle {
    fn now_ns(&self) -> u64 {
        self.0.lock().clock
    }
    fn wall_ns(&self) -> u64 {
        1_700_000_000_000_000_000
    }
    fn relax(&self) {}
}
