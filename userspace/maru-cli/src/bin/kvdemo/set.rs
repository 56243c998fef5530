//! `store-set` and `fetch-set`: one host stores a set of KV-cache chunks
//! through the zero-copy path (alloc, fill in place, store) and a manifest
//! naming each chunk with its size and CRC-32; another host (or process)
//! waits for the manifest, lists the application, looks every chunk up in
//! one batched call, maps them all zero-copy in one batched retrieval and
//! verifies each CRC-32 against the manifest.
//!
//! The manifest is stored last, so a reader that sees it sees every chunk
//! (keys are published atomically and immutable once published).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use maru::{Error, Store, StoreOptions};

use crate::bench::{percentile, us};

/// Name of the manifest key.
pub const MANIFEST: &str = "manifest";
/// First line of a manifest.
const MAGIC: &str = "# maru-kvdemo manifest v1";
/// Allocation unit of marufs (faults are counted per unit).
const UNIT: u64 = 2 << 20;

/// Options of `store-set`.
#[derive(clap::Args, Debug)]
pub struct StoreSetArgs {
    /// Mount point of the pool.
    #[arg(long, env = "MARU_MOUNT", default_value = "/mnt/maru")]
    pub mount: PathBuf,
    /// Application directory.
    #[arg(long, default_value = "kvdemo")]
    pub app: String,
    /// Number of chunks (keys chunk-000, chunk-001, ...).
    #[arg(long, default_value_t = 8)]
    pub count: usize,
    /// Bytes per chunk.
    #[arg(long, default_value_t = 32 << 20)]
    pub size: u64,
    /// Seed of the pattern.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Delete chunks and manifest left by an earlier run first (otherwise
    /// an existing key is an error).
    #[arg(long)]
    pub replace: bool,
}

/// Options of `fetch-set`.
#[derive(clap::Args, Debug)]
pub struct FetchSetArgs {
    /// Mount point of the pool.
    #[arg(long, env = "MARU_MOUNT", default_value = "/mnt/maru")]
    pub mount: PathBuf,
    /// Application directory.
    #[arg(long, default_value = "kvdemo")]
    pub app: String,
    /// How long to wait for the application and its manifest to appear.
    #[arg(long, default_value_t = 60)]
    pub wait_secs: u64,
    /// Fail if verifying a chunk takes more than this many page faults per
    /// 2 MiB unit (checks that chunks are mapped with 2 MiB pages).
    #[arg(long)]
    pub max_faults_per_unit: Option<u64>,
}

/// The name of chunk `i`.
pub fn chunk_name(i: usize) -> String {
    format!("chunk-{i:03}")
}

/// Word `w` of chunk `key` of a set made with `seed` (splitmix64).
fn word(seed: u64, key: u64, w: u64) -> u64 {
    let mut x = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(key << 40)
        .wrapping_add(w);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Fills `buf` (chunk `key`) with the seeded pattern and returns its CRC-32,
/// computed block by block while the block is still in the CPU cache.
///
/// Each 64 KiB block is the chunk's own pseudo-random block with the block
/// number mixed into its first word: every block differs (a misplaced
/// block is caught) and filling runs at copy speed.
pub fn fill(buf: &mut [u8], seed: u64, key: u64) -> u32 {
    const BLOCK: usize = 64 << 10;
    let mut template = vec![0u8; BLOCK];
    for (w, c) in template.chunks_mut(8).enumerate() {
        c.copy_from_slice(&word(seed, key, w as u64).to_le_bytes());
    }
    let mut crc = crc32fast::Hasher::new();
    for (b, block) in buf.chunks_mut(BLOCK).enumerate() {
        block.copy_from_slice(&template[..block.len()]);
        let head = word(seed, key, ((b as u64) << 32) | (1 << 31)).to_le_bytes();
        let n = block.len().min(8);
        block[..n].copy_from_slice(&head[..n]);
        crc.update(block);
    }
    crc.finalize()
}

/// One manifest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub crc: u32,
}

/// The manifest text: a header line, then `name size crc32` per chunk.
pub fn format_manifest(seed: u64, entries: &[Entry]) -> String {
    let mut s = format!("{MAGIC} seed {seed} count {}\n", entries.len());
    for e in entries {
        s.push_str(&format!("{} {} {:08x}\n", e.name, e.size, e.crc));
    }
    s
}

/// Parses a manifest made by [`format_manifest`].
pub fn parse_manifest(text: &str) -> Result<Vec<Entry>> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    ensure!(head.starts_with(MAGIC), "not a manifest: {head:?}");
    let count: Option<usize> = head
        .split_whitespace()
        .skip_while(|w| *w != "count")
        .nth(1)
        .and_then(|n| n.parse().ok());
    let mut out = Vec::new();
    for (n, l) in lines.enumerate() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [name, size, crc] = f[..] else {
            bail!("manifest line {}: {l:?}", n + 2);
        };
        out.push(Entry {
            name: name.to_string(),
            size: size
                .parse()
                .with_context(|| format!("manifest line {}: size", n + 2))?,
            crc: u32::from_str_radix(crc, 16)
                .with_context(|| format!("manifest line {}: crc", n + 2))?,
        });
    }
    if let Some(c) = count {
        ensure!(
            c == out.len(),
            "manifest announces {c} chunks, lists {}",
            out.len()
        );
    }
    Ok(out)
}

fn gbps(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / secs / 1e9
    } else {
        0.0
    }
}

/// `store-set`.
pub fn store_set(a: &StoreSetArgs) -> Result<()> {
    ensure!(a.count <= 1000, "--count: at most 1000 chunks");
    let store = Store::open(&a.mount, &a.app).context("open the store")?;
    let names: Vec<String> = (0..a.count).map(chunk_name).collect();
    if a.replace {
        store.delete(MANIFEST)?;
        for n in &names {
            store.delete(n)?;
        }
    }
    println!(
        "store-set: {} chunks of {} bytes into {}/{} ({}), seed {}",
        a.count,
        a.size,
        a.mount.display(),
        a.app,
        if store.pool().is_marufs() {
            "marufs"
        } else {
            "not marufs"
        },
        a.seed
    );
    let mut entries = Vec::with_capacity(a.count);
    let t0 = Instant::now();
    for (i, n) in names.iter().enumerate() {
        let t = Instant::now();
        let mut h = match store.alloc(n, a.size) {
            Err(Error::Exists(_)) => bail!("{n} exists already (--replace deletes an earlier set)"),
            r => r.with_context(|| format!("alloc {n}"))?,
        };
        let t_alloc = t.elapsed();
        let crc = fill(&mut h, a.seed, i as u64);
        let t_fill = t.elapsed();
        store.store(h).with_context(|| format!("store {n}"))?;
        let total = t.elapsed();
        println!(
            "store-set: {n}: {} bytes crc32 {crc:08x}: alloc {:.2} ms, fill {:.2} ms, store {:.2} ms; {:.2} ms, {:.3} GB/s",
            a.size,
            t_alloc.as_secs_f64() * 1e3,
            (t_fill - t_alloc).as_secs_f64() * 1e3,
            (total - t_fill).as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3,
            gbps(a.size, total.as_secs_f64())
        );
        entries.push(Entry {
            name: n.clone(),
            size: a.size,
            crc,
        });
    }
    let secs = t0.elapsed().as_secs_f64();
    let manifest = format_manifest(a.seed, &entries);
    ensure!(
        store.store_bytes(MANIFEST, manifest.as_bytes())?,
        "{MANIFEST} exists already (--replace deletes an earlier set)"
    );
    let bytes = a.size * a.count as u64;
    println!(
        "store-set: stored {} chunks, {bytes} bytes in {:.1} ms: {:.3} GB/s (alloc + fill + crc32 + publish); manifest {} bytes",
        a.count,
        secs * 1e3,
        gbps(bytes, secs),
        manifest.len()
    );
    let c = store.counters();
    println!(
        "store-set: counters: stored {} mmaps {} ioctl_lookups {} stat_lookups {}",
        c.stored, c.mmaps, c.ioctl_lookups, c.stat_lookups
    );
    Ok(())
}

/// Opens the store without creating the application, waiting for it and
/// for its manifest until `deadline`.
fn wait_manifest(a: &FetchSetArgs) -> Result<(Store, Duration)> {
    let t = Instant::now();
    let deadline = t + Duration::from_secs(a.wait_secs);
    let opts = StoreOptions::default().create(false);
    let store = loop {
        match Store::open_with(&a.mount, &a.app, &opts) {
            Ok(s) => break s,
            Err(Error::NoApp(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(Error::NoApp(_)) => bail!("no application {} after {} s", a.app, a.wait_secs),
            Err(e) => return Err(e).context("open the store"),
        }
    };
    while !store.exists(MANIFEST)? {
        ensure!(
            Instant::now() < deadline,
            "no {MANIFEST} in {} after {} s",
            a.app,
            a.wait_secs
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((store, t.elapsed()))
}

/// Minor + major page faults of this process so far (/proc/self/stat).
pub fn faults() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command: state is field 3; minflt is
    // field 10, majflt field 12.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(7)?.parse::<u64>().ok()? + f.get(9)?.parse::<u64>().ok()?)
}

/// Page faults allowed for mapping and reading a key of `size` bytes: `max`
/// per whole 2 MiB unit (mapped with 2 MiB pages), and for a partial last
/// unit, which the mapping does not cover whole, `max` plus one per 4 KiB.
fn allowed_faults(size: u64, max: u64) -> u64 {
    let tail = size % UNIT;
    max * (size / UNIT)
        + if tail > 0 {
            max + tail.div_ceil(4096)
        } else {
            0
        }
}

/// `fetch-set`.
pub fn fetch_set(a: &FetchSetArgs) -> Result<()> {
    let (store, waited) = wait_manifest(a)?;
    let m = store.retrieve(MANIFEST)?.context("the manifest vanished")?;
    let text = std::str::from_utf8(&m).context("manifest is not UTF-8")?;
    let entries = parse_manifest(text)?;
    drop(m);
    ensure!(!entries.is_empty(), "empty manifest");
    println!(
        "fetch-set: manifest of {} chunks found in {}/{} after {:.1} s",
        entries.len(),
        a.mount.display(),
        a.app,
        waited.as_secs_f64()
    );

    // The listing: every chunk there, with its size.
    let t = Instant::now();
    let listed: HashMap<String, u64> = store
        .list()?
        .into_iter()
        .map(|k| (k.name, k.size))
        .collect();
    for e in &entries {
        match listed.get(&e.name) {
            Some(&s) if s == e.size => {}
            Some(&s) => bail!(
                "{}: listed with {s} bytes, manifest says {}",
                e.name,
                e.size
            ),
            None => bail!("{}: in the manifest, not in the listing", e.name),
        }
    }
    println!(
        "fetch-set: list: {} keys, every chunk listed with its size ({:.2} ms)",
        listed.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    // One batched lookup for every name.
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let t = Instant::now();
    let found = store.batch_exists(&names)?;
    let el = t.elapsed();
    if let Some(i) = found.iter().position(|&f| !f) {
        bail!("batch_exists: {} missing", names[i]);
    }
    println!(
        "fetch-set: batch_exists of {} names: all present ({:.1} us, {:.2} us/key, lookup mode {})",
        names.len(),
        us(el),
        us(el) / names.len() as f64,
        store.lookup_mode()
    );

    // Per-key latency of a single (cold) retrieval: open, map, close (the
    // kernel invalidates a unit's lines at its first fault on this host).
    let mut lat = Vec::with_capacity(names.len());
    for n in &names {
        store.clear_cache();
        let t = Instant::now();
        let m = store.retrieve(n)?;
        lat.push(us(t.elapsed()));
        ensure!(m.is_some(), "retrieve {n}: missing");
    }
    store.clear_cache();
    lat.sort_by(f64::total_cmp);
    println!(
        "fetch-set: retrieve (single, cold cache): p50 {:.1} us, max {:.1} us per key",
        percentile(&lat, 0.5),
        lat[lat.len() - 1]
    );

    // Every chunk mapped in one batched retrieval, then verified in place.
    // Page faults are counted over both (the kernel invalidates each unit
    // at its first fault here).
    let f0 = faults();
    let t = Instant::now();
    let maps = store.batch_retrieve(&names)?;
    let el = t.elapsed();
    let f_map = f0.and_then(|f0| Some(faults()? - f0));
    println!(
        "fetch-set: batch_retrieve of {} chunks (zero-copy, cold cache): {:.1} us, {:.2} us/key{}",
        names.len(),
        us(el),
        us(el) / names.len() as f64,
        f_map
            .map(|n| format!(", {n} page faults"))
            .unwrap_or_default()
    );
    let mut bad = 0;
    let mut bytes = 0u64;
    let mut secs = 0.0;
    for (e, m) in entries.iter().zip(&maps) {
        let Some(m) = m else {
            println!("fetch-set: {}: MISSING", e.name);
            bad += 1;
            continue;
        };
        let f1 = faults();
        let t = Instant::now();
        let crc = crc32fast::hash(m);
        let el = t.elapsed().as_secs_f64();
        let nf = f1.and_then(|f1| Some(faults()? - f1));
        secs += el;
        bytes += m.len() as u64;
        let ok = m.len() as u64 == e.size && crc == e.crc;
        println!(
            "fetch-set: {}: {} bytes crc32 {crc:08x} {}: {:.2} ms, {:.3} GB/s{}",
            e.name,
            m.len(),
            if ok { "ok" } else { "MISMATCH" },
            el * 1e3,
            gbps(m.len() as u64, el),
            nf.map(|n| format!(", {n} page faults")).unwrap_or_default()
        );
        if !ok {
            println!(
                "fetch-set: {}: manifest says {} bytes crc32 {:08x}",
                e.name, e.size, e.crc
            );
            bad += 1;
        }
    }
    let total_faults = f0.and_then(|f0| Some(faults()? - f0));
    if let (Some(max), Some(n)) = (a.max_faults_per_unit, total_faults) {
        let allowed: u64 = entries.iter().map(|e| allowed_faults(e.size, max)).sum();
        let units: u64 = entries.iter().map(|e| e.size.div_ceil(UNIT)).sum();
        if n > allowed {
            println!(
                "fetch-set: {n} page faults mapping and reading {units} units (at most {allowed} allowed): not mapped with 2 MiB pages?"
            );
            bad += 1;
        } else {
            println!(
                "fetch-set: {n} page faults for {units} units of 2 MiB (at most {allowed} allowed)"
            );
        }
    }
    println!(
        "fetch-set: verified {} bytes in {:.1} ms: {:.3} GB/s (crc32 over the mappings)",
        bytes,
        secs * 1e3,
        gbps(bytes, secs)
    );
    drop(maps);
    let c = store.counters();
    println!(
        "fetch-set: counters: mmaps {} (the manifest, then each chunk once by the single retrievals and once by the batch) ioctl_lookups {} stat_lookups {} hits {} misses {}",
        c.mmaps, c.ioctl_lookups, c.stat_lookups, c.hits, c.misses
    );
    ensure!(
        bad == 0,
        "{bad} failed check(s) over {} chunks",
        entries.len()
    );
    println!("fetch-set: ok: {} chunks verified", entries.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip() {
        let e = vec![
            Entry {
                name: chunk_name(0),
                size: 10,
                crc: 0xdead_beef,
            },
            Entry {
                name: chunk_name(1),
                size: 1 << 30,
                crc: 1,
            },
        ];
        let text = format_manifest(7, &e);
        assert_eq!(parse_manifest(&text).unwrap(), e);
        assert!(parse_manifest("junk\n").is_err());
        assert!(parse_manifest(&text.replace("count 2", "count 3")).is_err());
        assert!(parse_manifest(&format!("{text}chunk-002 1\n")).is_err());
    }

    #[test]
    fn faults_allowed() {
        assert_eq!(allowed_faults(UNIT * 16, 2), 32);
        assert_eq!(allowed_faults(3 << 20, 4), 4 + 4 + 256);
        assert_eq!(allowed_faults(100, 1), 2);
    }

    #[test]
    fn fill_is_seeded_and_matches_crc() {
        let mut a = vec![0u8; 300_001];
        let mut b = vec![0u8; 300_001];
        let ca = fill(&mut a, 1, 0);
        assert_eq!(ca, crc32fast::hash(&a));
        assert_eq!(fill(&mut b, 1, 0), ca);
        assert_eq!(a, b);
        assert_ne!(fill(&mut b, 1, 1), ca);
        assert_ne!(fill(&mut b, 2, 0), ca);
        // Blocks differ from one another.
        assert_ne!(a[..65536], a[65536..131072]);
    }
}
