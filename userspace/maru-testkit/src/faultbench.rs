//! `fault-bench`: what a fault of a published key costs, and whether it
//! waits behind metadata operations. Per-fault latency (one 2 MiB unit per
//! fault) of a key kept open, mapped afresh each repetition: the first
//! repetition after a mount includes the reader's invalidation of each unit
//! (the host has never read it); later ones do not; then the same while
//! another process creates, publishes and unlinks keys as fast as it can
//! (each such operation takes the mount's metadata mutex and the pool's
//! cross-host lock; faults must not wait for either).

use anyhow::{Context, Result};
use memmap2::MmapOptions;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

const UNIT: usize = 2 << 20;

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// One mapping of `f` (`len` bytes): the latency of each unit's first touch, µs.
fn fault_units(f: &File, len: usize, out: &mut Vec<f64>) -> Result<()> {
    // SAFETY: published keys are immutable.
    let m = unsafe { MmapOptions::new().len(len).map(f) }.context("mmap")?;
    let mut sum = 0u64;
    for u in 0..len / UNIT {
        let t = Instant::now();
        // SAFETY: inside the mapping.
        sum += u64::from(unsafe { std::ptr::read_volatile(m.as_ptr().add(u * UNIT)) });
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    std::hint::black_box(sum);
    Ok(())
}

pub fn fault_bench(dir: &str, len: usize, reps: usize, storm: bool) -> Result<()> {
    let key = format!("{dir}/fault-bench-key");
    if !Path::new(&key).exists() {
        let f = crate::new_key(&key, len)?;
        // SAFETY: the key is ours (unpublished).
        let mut m = unsafe { MmapOptions::new().len(len).map_mut(&f) }?;
        let t = Instant::now();
        crate::fill(&mut m, 77);
        let fill_ms = t.elapsed().as_secs_f64() * 1e3;
        drop(m);
        let t = Instant::now();
        drop(f);
        let close_ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "fault-bench: publish of {} MiB: close (writes the creator's units back) {close_ms:.2} ms; filling it took {fill_ms:.1} ms: ratio {:.3}",
            len >> 20,
            close_ms / fill_ms
        );
    }
    let f = File::open(&key).with_context(|| format!("open {key}"))?;
    let mut first = Vec::new();
    fault_units(&f, len, &mut first)?;
    let mut quiet = Vec::new();
    for _ in 1..reps {
        fault_units(&f, len, &mut quiet)?;
    }
    let (f50, f99) = (pct(&mut first.clone(), 0.5), pct(&mut first, 0.99));
    let (q50, q99) = (pct(&mut quiet.clone(), 0.5), pct(&mut quiet, 0.99));
    println!(
        "fault-bench: first map after mount (invalidates each unit): p50 {f50:.1} us p99 {f99:.1} us; later maps: p50 {q50:.1} us p99 {q99:.1} us ({} faults): first/later p50 {:.2}x",
        quiet.len(),
        f50 / q50.max(0.001)
    );
    if !storm {
        return Ok(());
    }
    // Its own application directory, beside `dir` (application directories
    // hold keys, not directories).
    let parent = Path::new(dir).parent().context("dir has no parent")?;
    let sdir = parent
        .join("fault-bench-storm")
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(&sdir)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["storm", &sdir])
        .spawn()
        .context("spawn the storm")?;
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let mut stormy = Vec::new();
    // At least 3 s of storm, so that many metadata operations overlap.
    let mut n = 0;
    while n + 1 < reps || t.elapsed() < Duration::from_secs(3) {
        fault_units(&f, len, &mut stormy)?;
        n += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    let ops: u64 = std::fs::read_to_string("/tmp/fault-bench-storm-ops")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (s50, s99) = (pct(&mut stormy.clone(), 0.5), pct(&mut stormy, 0.99));
    println!(
        "fault-bench: during a create/publish/unlink storm ({ops} creates+unlinks; {} faults in {secs:.1} s): p50 {s50:.1} us p99 {s99:.1} us: storm/quiet p50 {:.2}x p99 {:.2}x",
        stormy.len(),
        s50 / q50.max(0.001),
        s99 / q99.max(0.001)
    );
    Ok(())
}

/// Creates (2 MiB, published at close) and unlinks keys in `dir` until killed.
pub fn storm(dir: &str) -> Result<()> {
    let mut i = 0u64;
    loop {
        let p = format!("{dir}/s{}", i % 4);
        let _ = std::fs::remove_file(&p);
        if let Ok(f) = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
        {
            let _ = f.set_len(UNIT as u64);
        }
        i += 1;
        let _ = std::fs::write("/tmp/fault-bench-storm-ops", i.to_string());
    }
}
