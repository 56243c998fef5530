//! `maru-kvdemo`: exercises the `maru` library on a mounted pool the way a
//! KV-cache client does.
//!
//! - `check` (also with no subcommand): checks every result of zero-copy
//!   stores, deduplication, batched lookups (the marufs ioctl when the module
//!   has it), zero-copy retrievals from several threads through the shared
//!   mapping cache, pins that outlive deletion, discarded allocations, usage
//!   stats. Prints one line per step and exits 1 at the first failure.
//! - `store-set` / `fetch-set`: one host stores a set of KV chunks and a
//!   manifest of their CRC-32s; another finds, maps and verifies them
//!   ([`set`]).
//! - `bench`: per-key latency of single and batched lookups and retrievals
//!   ([`bench`]).

#[path = "kvdemo/bench.rs"]
mod bench;
#[path = "kvdemo/set.rs"]
mod set;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use maru::{Error, LookupMode, Store};
use serde_json::json;

/// Exercise the maru client library on a mounted pool.
///
/// Without a subcommand: the same as `check`.
#[derive(Parser, Debug)]
#[command(name = "maru-kvdemo", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    check: Args,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Check the library step by step (the default).
    Check(Args),
    /// Store N chunks of a seeded pattern zero-copy, then a manifest of their
    /// sizes and CRC-32s.
    StoreSet(set::StoreSetArgs),
    /// Wait for a manifest, look its chunks up, map them zero-copy and
    /// verify their CRC-32s; exit 1 on any mismatch.
    FetchSet(set::FetchSetArgs),
    /// Latency of single and batched exists/retrieve, per key.
    Bench(bench::BenchArgs),
}

/// Options of `check`.
#[derive(clap::Args, Debug)]
struct Args {
    /// Mount point of the pool.
    #[arg(long, env = "MARU_MOUNT", default_value = "/mnt/maru")]
    mount: PathBuf,
    /// Application directory to use.
    #[arg(long, default_value = "kvdemo")]
    app: String,
    /// Number of keys.
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// Bytes per key.
    #[arg(long, default_value_t = (4 << 20) + 123)]
    size: usize,
    /// Reader threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Fail unless batched lookups use the marufs ioctl.
    #[arg(long)]
    expect_ioctl: bool,
    /// Leave the keys in place at the end.
    #[arg(long)]
    keep: bool,
    /// Print a JSON summary as the last line.
    #[arg(long)]
    json: bool,
}

fn byte(seed: usize, i: usize) -> u8 {
    let mut x = ((seed as u64) << 32) ^ (i as u64 / 8);
    x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    (x >> ((i % 8) * 8)) as u8
}

fn fill(buf: &mut [u8], seed: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte(seed, i);
    }
}

fn check(buf: &[u8], seed: usize, len: usize) -> Result<()> {
    ensure!(buf.len() == len, "length {} instead of {len}", buf.len());
    if let Some(i) = (0..len).find(|&i| buf[i] != byte(seed, i)) {
        bail!("byte {i} of key {seed} differs");
    }
    Ok(())
}

fn step(name: &str, t: Instant) {
    println!(
        "kvdemo: {name}: ok ({:.1} ms)",
        t.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    let cli = Cli::parse();
    let r = match &cli.cmd {
        None => run(&cli.check),
        Some(Cmd::Check(a)) => run(a),
        Some(Cmd::StoreSet(a)) => set::store_set(a),
        Some(Cmd::FetchSet(a)) => set::fetch_set(a),
        Some(Cmd::Bench(a)) => bench::bench(a),
    };
    if let Err(e) = r {
        eprintln!("kvdemo: FAIL: {e:#}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> Result<()> {
    ensure!(a.keys >= 2, "--keys must be at least 2");
    let store = Arc::new(Store::open(&a.mount, &a.app).context("open the store")?);
    let marufs = store.pool().is_marufs();
    println!(
        "kvdemo: {} is {}; app {}",
        a.mount.display(),
        if marufs { "marufs" } else { "not marufs" },
        a.app
    );
    let names: Vec<String> = (0..a.keys).map(|i| format!("kv-{i:04}")).collect();
    for n in &names {
        // Left over from an interrupted run.
        store.delete(n)?;
    }

    // 1. Zero-copy stores: alloc, fill in place, publish.
    let t = Instant::now();
    for (i, n) in names.iter().enumerate() {
        let mut h = store
            .alloc(n, a.size as u64)
            .with_context(|| format!("alloc {n}"))?;
        fill(&mut h, i);
        if marufs {
            ensure!(!store.exists(n)?, "{n} visible before it was stored");
            ensure!(
                matches!(store.alloc(n, 1), Err(Error::Exists(_))),
                "a second creator of {n} was not refused"
            );
        }
        store.store(h).with_context(|| format!("store {n}"))?;
    }
    step(&format!("stored {} keys of {} bytes", a.keys, a.size), t);

    // 2. Deduplication.
    let t = Instant::now();
    ensure!(
        !store.store_bytes(&names[0], b"other")?,
        "dedup: existing key stored again"
    );
    ensure!(store.counters().deduplicated == 1, "dedup not counted");
    step("dedup no-op", t);

    // 3. Batched lookups.
    let t = Instant::now();
    let mut q: Vec<&str> = names.iter().map(String::as_str).collect();
    q.push("kv-missing");
    let found = store.batch_exists(&q)?;
    ensure!(
        found[..a.keys].iter().all(|&x| x) && !found[a.keys],
        "batch_exists: {found:?}"
    );
    let mode = store.lookup_mode();
    if a.expect_ioctl {
        ensure!(
            mode == LookupMode::Ioctl,
            "lookup mode {mode}, expected the ioctl"
        );
    }
    step(&format!("batch_exists ({mode})"), t);

    // 4. Batched zero-copy retrieval, then cache reuse.
    let t = Instant::now();
    let maps = store.batch_retrieve(&q)?;
    ensure!(maps[a.keys].is_none(), "missing key retrieved");
    for (i, m) in maps[..a.keys].iter().enumerate() {
        let m = m
            .as_ref()
            .with_context(|| format!("{} not retrieved", names[i]))?;
        check(m, i, a.size)?;
    }
    let again = store.retrieve(&names[1])?.context("retrieve again")?;
    ensure!(
        again.same_mapping(maps[1].as_ref().unwrap_or(&again)),
        "retrieval did not reuse the cached mapping"
    );
    let mmaps = store.counters().mmaps;
    ensure!(mmaps == a.keys as u64, "{mmaps} mmaps for {} keys", a.keys);
    step("batch_retrieve + cached retrieve", t);
    drop(maps);

    // 5. Concurrent readers share the cached mappings.
    let t = Instant::now();
    let hits0 = store.counters().hits;
    let threads: Vec<_> = (0..a.threads)
        .map(|_| {
            let (store, names, size) = (store.clone(), names.clone(), a.size);
            std::thread::spawn(move || -> Result<()> {
                for (i, n) in names.iter().enumerate() {
                    let m = store
                        .retrieve(n)?
                        .with_context(|| format!("{n} vanished"))?;
                    check(&m, i, size)?;
                }
                Ok(())
            })
        })
        .collect();
    for th in threads {
        th.join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    }
    let c = store.counters();
    ensure!(c.mmaps == mmaps, "readers mapped again ({} mmaps)", c.mmaps);
    ensure!(
        c.hits - hits0 == (a.threads * a.keys) as u64,
        "{} hits",
        c.hits - hits0
    );
    step(
        &format!("{} threads read every key from the cache", a.threads),
        t,
    );

    // 6. A pin keeps a deleted key's bytes.
    let t = Instant::now();
    let pin = store.pin(&names[0])?;
    let held = store
        .retrieve(&names[0])?
        .context("retrieve before delete")?;
    ensure!(store.delete(&names[0])?, "delete");
    ensure!(!store.exists(&names[0])?, "deleted key still exists");
    ensure!(
        store.retrieve(&names[0])?.is_none(),
        "deleted key retrieved"
    );
    check(&pin.map()?, 0, a.size).context("pinned bytes after delete")?;
    check(&held, 0, a.size).context("mapping after delete")?;
    drop((pin, held));
    step("pin and mapping outlive delete", t);

    // 7. Discarded allocations leave nothing behind.
    let t = Instant::now();
    let mut h = store.alloc("kv-discard", a.size as u64)?;
    fill(&mut h, 99);
    store.free(h)?;
    ensure!(!store.exists("kv-discard")?, "freed key exists");
    {
        let _dropped = store.alloc("kv-discard", 4096)?;
    }
    ensure!(!store.exists("kv-discard")?, "dropped key exists");
    step("free and drop discard", t);

    // 7b. Unnamed allocations (O_TMPFILE), named and published by store_as.
    let t = Instant::now();
    match store.alloc_unnamed(a.size as u64) {
        Ok(mut h) => {
            fill(&mut h, 77);
            ensure!(store.store_as(h, "kv-unnamed")?, "store_as did not publish");
            check(
                &store.retrieve("kv-unnamed")?.context("unnamed key")?,
                77,
                a.size,
            )?;
            let mut h = store.alloc_unnamed(4096)?;
            fill(&mut h, 78);
            ensure!(!store.store_as(h, "kv-unnamed")?, "store_as replaced a key");
            check(
                &store.retrieve("kv-unnamed")?.context("unnamed key")?,
                77,
                a.size,
            )?;
            drop(store.alloc_unnamed(4096)?);
            ensure!(store.delete("kv-unnamed")?, "delete kv-unnamed");
            step("unnamed allocation, store_as, dedup", t);
        }
        Err(e) if matches!(e.errno(), Some(95) | Some(21)) => {
            // EOPNOTSUPP / EISDIR: no O_TMPFILE on this filesystem.
            println!("kvdemo: unnamed allocation: skipped ({e})");
        }
        Err(e) => return Err(e).context("alloc_unnamed"),
    }

    // 8. Published keys are immutable (marufs only).
    if marufs {
        let p = a.mount.join(&a.app).join(&names[1]);
        let e = std::fs::OpenOptions::new().write(true).open(&p);
        ensure!(e.is_err(), "a published key was opened for writing");
        step("published keys are immutable", Instant::now());
    }

    // 9. Stats.
    let t = Instant::now();
    let st = store.stats()?;
    ensure!(
        st.app.keys == Some(a.keys as u64 - 1),
        "app has {:?} keys",
        st.app.keys
    );
    ensure!(
        st.app.bytes == Some(((a.keys - 1) * a.size) as u64),
        "app bytes {:?}",
        st.app.bytes
    );
    ensure!(
        st.pool.used > 0 && st.pool.used <= st.pool.total,
        "pool usage {:?}",
        st.pool
    );
    step("stats", t);
    println!(
        "kvdemo: pool total {} used {} free {}; app {} keys {} bytes",
        st.pool.total,
        st.pool.used,
        st.pool.free,
        st.app.keys.unwrap_or(0),
        st.app.bytes.unwrap_or(0)
    );

    if !a.keep {
        for n in &names[1..] {
            ensure!(store.delete(n)?, "delete {n}");
        }
        ensure!(store.list()?.is_empty(), "keys left after cleanup");
    }
    let c = store.counters();
    if a.json {
        println!(
            "{}",
            json!({
                "ok": true,
                "marufs": marufs,
                "lookup_mode": store.lookup_mode().name(),
                "keys": a.keys,
                "size": a.size,
                "mmaps": c.mmaps,
                "hits": c.hits,
                "misses": c.misses,
                "stored": c.stored,
                "deduplicated": c.deduplicated,
                "discarded": c.discarded,
                "ioctl_lookups": c.ioctl_lookups,
                "stat_lookups": c.stat_lookups,
            })
        );
    }
    println!("kvdemo: ok");
    Ok(())
}
