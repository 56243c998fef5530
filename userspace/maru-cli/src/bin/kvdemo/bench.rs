//! `bench`: what a lookup and a retrieval cost per key, single and batched,
//! measured in one run on one set of small keys:
//!
//! - `exists` of each key, one call per key;
//! - `batch_exists` at several batch sizes (one `MARUFS_IOC_LOOKUP` per
//!   call on marufs);
//! - `retrieve` of each key with a cold mapping cache (the cache cleared
//!   before each call: open, fstat, mmap, close) and a warm one (a cache hit
//!   validated by one `fstatat`);
//! - `batch_retrieve` at the same batch sizes, cold and warm;
//! - on marufs, `MARUFS_IOC_LOOKUP` issued directly with the names packed
//!   beforehand: the kernel's share of a `batch_exists`.
//!
//! Mappings are not touched: the figures are the lookup and mapping costs,
//! not the data's. Prints a table of per-key p50/p99, the ratio of N single
//! `exists` to one `batch_exists` of N (target: >= 10) and Maru remote
//! mode's ~20 us/key RPC as the reference.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use maru::{LookupMode, Store, StoreOptions};
use serde_json::json;

/// Per-key latency of a metadata RPC in Maru's remote mode (the figure the
/// batched path is set beside).
const MARU_RPC_US: f64 = 20.0;

/// Options of `bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Mount point of the pool.
    #[arg(long, env = "MARU_MOUNT", default_value = "/mnt/maru")]
    pub mount: PathBuf,
    /// Application directory (its keys key-000... are replaced).
    #[arg(long, default_value = "kvbench")]
    pub app: String,
    /// Number of keys (each takes one 2 MiB unit on marufs).
    #[arg(long, default_value_t = 512)]
    pub keys: usize,
    /// Bytes per key.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    /// Batch sizes (a batch of every key is always measured).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512")]
    pub batches: Vec<usize>,
    /// Passes over every key for the single-key operations.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Pairs (a pass of single exists over every key, then one
    /// batch_exists of every key) the target ratio is the median of.
    #[arg(long, default_value_t = 15)]
    pub pairs: usize,
    /// Keys looked up per batch size (at least 20 calls each).
    #[arg(long, default_value_t = 4096)]
    pub lookups: usize,
    /// Required ratio of N single exists to one batch_exists of N.
    #[arg(long, default_value_t = 10.0)]
    pub target: f64,
    /// Leave the keys in place at the end.
    #[arg(long)]
    pub keep: bool,
    /// Print a JSON summary as the last line.
    #[arg(long)]
    pub json: bool,
    /// Only repeat this operation for N seconds, printing nothing (a
    /// workload for a profiler, e.g. scripts/guest-profile.py): `exists`
    /// or `batch_exists` of every key.
    #[arg(long, value_names = ["OP", "SECONDS"], num_args = 2)]
    pub only: Option<Vec<String>>,
}

/// Microseconds.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The `p` quantile (0..=1) of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One row of the table: per-call latencies of calls of `batch` keys each.
struct Row {
    op: &'static str,
    batch: usize,
    calls: Vec<f64>,
}

impl Row {
    fn new(op: &'static str, batch: usize, mut calls: Vec<f64>) -> Row {
        calls.sort_by(f64::total_cmp);
        Row { op, batch, calls }
    }
    fn per_key(&self, p: f64) -> f64 {
        percentile(&self.calls, p) / self.batch as f64
    }
    fn call(&self, p: f64) -> f64 {
        percentile(&self.calls, p)
    }
    fn json(&self) -> serde_json::Value {
        json!({
            "op": self.op,
            "batch": self.batch,
            "calls": self.calls.len(),
            "per_key_p50_us": self.per_key(0.5),
            "per_key_p99_us": self.per_key(0.99),
            "call_p50_us": self.call(0.5),
        })
    }
}

/// Calls of `bs` consecutive names (wrapping), enough for `lookups` names
/// and at least `min` calls.
fn batches_of<'a>(names: &[&'a str], bs: usize, lookups: usize, min: usize) -> Vec<Vec<&'a str>> {
    let calls = (lookups / bs).max(min);
    (0..calls)
        .map(|c| (0..bs).map(|j| names[(c * bs + j) % names.len()]).collect())
        .collect()
}

/// `MARUFS_IOC_LOOKUP` with `LOOKUP_EXISTS` (what `batch_exists` issues) on
/// `dir` for each call of pre-packed names, timing the system call alone;
/// checks every name is found.
fn raw_ioctl(dir: &std::fs::File, calls: &[Vec<&str>]) -> Result<Vec<f64>> {
    use marufs_core::abi::{lookup_results_len, pack_name, LookupReq, IOC_LOOKUP, LOOKUP_EXISTS};
    use std::os::fd::AsRawFd;
    let mut lat = Vec::with_capacity(calls.len());
    for c in calls {
        let mut packed = vec![0u8; c.iter().map(|n| 1 + n.len()).sum()];
        let mut at = 0;
        for n in c {
            at = pack_name(&mut packed, at, n.as_bytes()).context("pack a name")?;
        }
        let flags = LOOKUP_EXISTS;
        let mut res = vec![0u8; lookup_results_len(c.len() as u32, flags)];
        let mut wire = LookupReq {
            names: packed.as_ptr() as u64,
            names_len: packed.len() as u32,
            count: c.len() as u32,
            results: res.as_mut_ptr() as u64,
            flags,
        }
        .encode();
        let t = Instant::now();
        // SAFETY: `wire` is a LookupReq pointing at `packed` (names_len
        // bytes) and `res` (count records), both live across the call.
        let r = unsafe { libc::ioctl(dir.as_raw_fd(), IOC_LOOKUP as _, wire.as_mut_ptr()) };
        lat.push(us(t.elapsed()));
        ensure!(
            r == c.len() as i32,
            "MARUFS_IOC_LOOKUP: {r} of {} found ({})",
            c.len(),
            std::io::Error::last_os_error()
        );
    }
    Ok(lat)
}

/// The accelerator the guest runs under, as told by the environment.
fn accelerator() -> String {
    match std::env::var("MARUFS_ACCEL") {
        Ok(a) if !a.is_empty() => a,
        _ => "see guest log".to_string(),
    }
}

/// `bench`.
pub fn bench(a: &BenchArgs) -> Result<()> {
    ensure!(a.keys >= 1, "--keys must be at least 1");
    ensure!(a.rounds >= 1, "--rounds must be at least 1");
    let mut sizes: Vec<usize> = a.batches.iter().map(|&b| b.clamp(1, a.keys)).collect();
    sizes.push(a.keys);
    sizes.sort_unstable();
    sizes.dedup();
    let opts = StoreOptions::default().cache_capacity(a.keys.max(1024));
    let store = Store::open_with(&a.mount, &a.app, &opts).context("open the store")?;
    let marufs = store.pool().is_marufs();
    let owned: Vec<String> = (0..a.keys).map(|i| format!("key-{i:03}")).collect();
    let names: Vec<&str> = owned.iter().map(String::as_str).collect();

    // The keys: zero-copy stores of `size` bytes each.
    let t = Instant::now();
    for (i, n) in names.iter().enumerate() {
        store.delete(n)?;
        let mut h = store
            .alloc(n, a.size as u64)
            .with_context(|| format!("alloc {n}"))?;
        crate::set::fill(&mut h, 0xbe, i as u64);
        store.store(h).with_context(|| format!("store {n}"))?;
    }
    let created = t.elapsed();
    // Warm the kernel's name lookup path and learn the lookup mode.
    for n in &names {
        ensure!(store.exists(n)?, "{n} missing after store");
    }
    ensure!(
        store.batch_exists(&names)?.iter().all(|&x| x),
        "batch_exists: keys missing"
    );
    let mode = store.lookup_mode();
    let accel = accelerator();
    println!(
        "kvbench: {} ({}), app {}: {} keys of {} bytes created in {:.1} ms ({:.1} us/key)",
        a.mount.display(),
        if marufs { "marufs" } else { "not marufs" },
        a.app,
        a.keys,
        a.size,
        us(created) / 1e3,
        us(created) / a.keys as f64
    );
    println!("kvbench: batched lookups: {mode}; accelerator: {accel}");
    if let Some(only) = &a.only {
        let secs: f64 = only[1].parse().context("--only OP SECONDS")?;
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed().as_secs_f64() < secs {
            match only[0].as_str() {
                "exists" => {
                    for k in &names {
                        ensure!(store.exists(k)?, "exists {k}: false");
                    }
                }
                "batch_exists" => ensure!(
                    store.batch_exists(&names)?.iter().all(|&x| x),
                    "keys missing"
                ),
                op => anyhow::bail!("--only {op}: exists or batch_exists"),
            }
            n += 1;
        }
        println!(
            "kvbench: {} x {} of {} keys in {secs} s",
            n, only[0], a.keys
        );
        return Ok(());
    }

    let mut rows = Vec::new();

    // exists, one call per key; the total of each pass.
    let mut lat = Vec::new();
    let mut totals = Vec::new();
    for _ in 0..a.rounds {
        let mut total = 0.0;
        for n in &names {
            let t = Instant::now();
            let r = store.exists(n)?;
            let el = us(t.elapsed());
            ensure!(r, "exists {n}: false");
            lat.push(el);
            total += el;
        }
        totals.push(total);
    }
    totals.sort_by(f64::total_cmp);
    let single_total = percentile(&totals, 0.5);
    let single_best = totals[0];
    rows.push(Row::new("exists", 1, lat));

    // batch_exists at each size.
    let (mut full_batch, mut full_best) = (0.0, 0.0);
    for &bs in &sizes {
        let calls = batches_of(&names, bs, a.lookups, 20);
        let mut lat = Vec::with_capacity(calls.len());
        for c in &calls {
            let t = Instant::now();
            let r = store.batch_exists(c)?;
            lat.push(us(t.elapsed()));
            ensure!(r.iter().all(|&x| x), "batch_exists: keys missing");
        }
        let row = Row::new("batch_exists", bs, lat);
        if bs == a.keys {
            full_batch = row.call(0.5);
            full_best = row.call(0.0);
        }
        rows.push(row);
    }

    // The same lookups as the raw ioctl: the kernel's part.
    if mode == LookupMode::Ioctl {
        let dir = std::fs::File::open(a.mount.join(&a.app)).context("open the app directory")?;
        for &bs in &sizes {
            let calls = batches_of(&names, bs, a.lookups, 20);
            rows.push(Row::new("ioctl (raw)", bs, raw_ioctl(&dir, &calls)?));
        }
    }

    // retrieve with a cold cache (cleared before each call, not timed).
    let mut lat = Vec::new();
    for _ in 0..a.rounds {
        for n in &names {
            store.clear_cache();
            let t = Instant::now();
            let m = store.retrieve(n)?;
            lat.push(us(t.elapsed()));
            ensure!(m.is_some(), "retrieve {n}: missing");
        }
    }
    rows.push(Row::new("retrieve cold", 1, lat));

    // retrieve with every key's mapping cached.
    store.clear_cache();
    for n in &names {
        store.retrieve(n)?.with_context(|| format!("{n} missing"))?;
    }
    let mut lat = Vec::new();
    for _ in 0..a.rounds {
        for n in &names {
            let t = Instant::now();
            let m = store.retrieve(n)?;
            lat.push(us(t.elapsed()));
            ensure!(m.is_some(), "retrieve {n}: missing");
        }
    }
    rows.push(Row::new("retrieve warm", 1, lat));

    // batch_retrieve, cold then warm, at each size.
    for &bs in &sizes {
        let calls = batches_of(&names, bs, a.lookups / 2, 10);
        let mut cold = Vec::with_capacity(calls.len());
        let mut warm = Vec::with_capacity(calls.len());
        for c in &calls {
            store.clear_cache();
            let t = Instant::now();
            let r = store.batch_retrieve(c)?;
            cold.push(us(t.elapsed()));
            ensure!(
                r.iter().all(Option::is_some),
                "batch_retrieve: keys missing"
            );
            drop(r);
            let t = Instant::now();
            let r = store.batch_retrieve(c)?;
            warm.push(us(t.elapsed()));
            ensure!(
                r.iter().all(Option::is_some),
                "batch_retrieve: keys missing"
            );
        }
        rows.push(Row::new("batch_retrieve cold", bs, cold));
        rows.push(Row::new("batch_retrieve warm", bs, warm));
    }
    store.clear_cache();

    // The table.
    println!(
        "kvbench: {:<20} {:>5} {:>6} {:>15} {:>15} {:>15}",
        "operation", "batch", "calls", "per-key p50 us", "per-key p99 us", "per-call p50 us"
    );
    let order = [
        "exists",
        "batch_exists",
        "ioctl (raw)",
        "retrieve cold",
        "batch_retrieve cold",
        "retrieve warm",
        "batch_retrieve warm",
    ];
    for op in order {
        for r in rows.iter().filter(|r| r.op == op) {
            println!(
                "kvbench: {:<20} {:>5} {:>6} {:>15.2} {:>15.2} {:>15.1}",
                r.op,
                r.batch,
                r.calls.len(),
                r.per_key(0.5),
                r.per_key(0.99),
                r.call(0.5)
            );
        }
    }

    // The target: N single exists vs one batch_exists of N, measured in
    // pairs, one right after the other, so that a change of load on the
    // machine between the phases above cannot tilt it; the median ratio.
    let mut ratios = Vec::with_capacity(a.pairs.max(1));
    let (mut singles, mut batches) = (Vec::new(), Vec::new());
    for _ in 0..a.pairs.max(1) {
        let t = Instant::now();
        for n in &names {
            ensure!(store.exists(n)?, "exists {n}: false");
        }
        let single = us(t.elapsed());
        let t = Instant::now();
        let r = store.batch_exists(&names)?;
        let batch = us(t.elapsed());
        ensure!(r.iter().all(|&x| x), "batch_exists: keys missing");
        ratios.push(single / batch.max(1e-3));
        singles.push(single);
        batches.push(batch);
    }
    for v in [&mut ratios, &mut singles, &mut batches] {
        v.sort_by(f64::total_cmp);
    }
    let ratio = percentile(&ratios, 0.5);
    let verdict = if ratio >= a.target { "PASS" } else { "MISS" };
    let phases = if full_batch > 0.0 {
        single_total / full_batch
    } else {
        0.0
    };
    let best = if full_best > 0.0 {
        single_best / full_best
    } else {
        0.0
    };
    println!(
        "kvbench: {n} single exists: {:.1} us; one batch_exists of {n}: {:.1} us (medians of {} pairs); ratio {ratio:.1}x (median of the pairs' ratios), target >= {:.0}x: {verdict}",
        percentile(&singles, 0.5),
        percentile(&batches, 0.5),
        ratios.len(),
        a.target,
        n = a.keys
    );
    println!(
        "kvbench: the same from the table's phases: {single_total:.1} us / {full_batch:.1} us = {phases:.1}x (best pass / fastest call: {best:.1}x; pairs' ratios from {:.1}x to {:.1}x)",
        ratios[0],
        ratios[ratios.len() - 1]
    );
    let per_key = |op: &str, bs: usize| {
        rows.iter()
            .find(|r| r.op == op && r.batch == bs)
            .map(|r| r.per_key(0.5))
            .unwrap_or(0.0)
    };
    let (bx, br) = (
        per_key("batch_exists", a.keys),
        per_key("batch_retrieve cold", a.keys),
    );
    println!(
        "kvbench: reference: Maru remote mode ~{MARU_RPC_US:.0} us/key (metadata RPC); here per key (p50), as a multiple of it: exists {:.2} us ({:.2}x), batch_exists of {n} {bx:.2} us ({:.2}x), retrieve cold {:.2} us ({:.2}x), batch_retrieve cold of {n} {br:.2} us ({:.2}x); accelerator: {accel}",
        per_key("exists", 1),
        per_key("exists", 1) / MARU_RPC_US,
        bx / MARU_RPC_US,
        per_key("retrieve cold", 1),
        per_key("retrieve cold", 1) / MARU_RPC_US,
        br / MARU_RPC_US,
        n = a.keys
    );
    if mode != LookupMode::Ioctl {
        println!("kvbench: note: batched lookups are {mode} (no marufs ioctl): batches are one fstatat per key");
    }
    let c = store.counters();
    println!(
        "kvbench: counters: mmaps {} munmaps {} ioctl_lookups {} stat_lookups {} hits {} misses {}",
        c.mmaps, c.munmaps, c.ioctl_lookups, c.stat_lookups, c.hits, c.misses
    );

    if !a.keep {
        for n in &names {
            store.delete(n)?;
        }
    }
    if a.json {
        println!(
            "{}",
            json!({
                "keys": a.keys,
                "size": a.size,
                "marufs": marufs,
                "lookup_mode": mode.name(),
                "accelerator": accel,
                "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
                "single_exists_total_us": percentile(&singles, 0.5),
                "batch_exists_full_us": percentile(&batches, 0.5),
                "ratio": ratio,
                "ratio_phases": phases,
                "ratio_best": best,
                "pairs": ratios.len(),
                "target": a.target,
                "pass": ratio >= a.target,
                "maru_rpc_us_per_key": MARU_RPC_US,
            })
        );
    }
    println!("kvbench: ok");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn batches_wrap_and_count() {
        let names = ["a", "b", "c"];
        let b = batches_of(&names, 2, 6, 1);
        assert_eq!(b, vec![vec!["a", "b"], vec!["c", "a"], vec!["b", "c"]]);
        assert_eq!(batches_of(&names, 3, 3, 5).len(), 5);
    }
}
