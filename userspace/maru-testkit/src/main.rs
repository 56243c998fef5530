//! `maru-testkit`: small tools the guest test scenarios run.
//!
//! `dax-write` fills a range of a DAX device with a seeded pattern and then
//! publishes a marker; `dax-verify` (typically on another host) waits for the
//! marker and checks the range byte for byte. Both flush/invalidate CPU cache
//! lines around the shared bytes, as a non-coherent CXL host must.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use memmap2::{MmapMut, MmapOptions};
use std::fs::OpenOptions;
use std::time::{Duration, Instant};

const MARKER_MAGIC: u64 = 0x4d41_5255_5445_5354; // "MARUTEST"

#[derive(Parser)]
#[command(version, about = "marufs guest test tools")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a seeded pattern to DEV[offset..offset+len], then a marker after it.
    DaxWrite(Range),
    /// Wait for the marker, then verify the pattern byte for byte.
    DaxVerify {
        #[command(flatten)]
        range: Range,
        /// Seconds to wait for the writer's marker.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
}

#[derive(clap::Args)]
struct Range {
    /// DAX character device, e.g. /dev/dax0.0.
    dev: String,
    /// Byte offset of the range (the mapping is 2 MiB aligned).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Length of the pattern in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    len: usize,
    /// Pattern seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const ALIGN: usize = 2 << 20;

fn map(r: &Range) -> Result<MmapMut> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&r.dev)
        .with_context(|| format!("open {}", r.dev))?;
    // The pattern plus one 64-byte marker line, rounded up to the device alignment.
    let need = r.offset + r.len + 64;
    let len = need.div_ceil(ALIGN) * ALIGN;
    // SAFETY: the mapping is of a device the test owns; other hosts write it only
    // through the protocol below (marker written after the data), and we never
    // create references that outlive the map.
    unsafe { MmapOptions::new().len(len).map_mut(&f) }
        .with_context(|| format!("mmap {} bytes of {}", len, r.dev))
}

/// Writes back (and evicts) the cache lines covering `buf`.
fn flush(buf: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in buf.chunks(64) {
        // SAFETY: `line` points into a live mapping; clflush only needs a valid address.
        unsafe { core::arch::x86_64::_mm_clflush(line.as_ptr()) };
    }
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

fn pattern_byte(seed: u64, i: usize) -> u8 {
    let mut x = seed ^ (i as u64 / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> ((i % 8) * 8)) as u8
}

fn marker(seed: u64, len: usize) -> [u8; 24] {
    let mut m = [0u8; 24];
    m[..8].copy_from_slice(&MARKER_MAGIC.to_le_bytes());
    m[8..16].copy_from_slice(&seed.to_le_bytes());
    m[16..24].copy_from_slice(&(len as u64).to_le_bytes());
    m
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::DaxWrite(r) => {
            let mut m = map(&r)?;
            let t = Instant::now();
            let data = &mut m[r.offset..r.offset + r.len];
            for (i, b) in data.iter_mut().enumerate() {
                *b = pattern_byte(r.seed, i);
            }
            flush(data);
            let mk = r.offset + r.len;
            m[mk..mk + 24].copy_from_slice(&marker(r.seed, r.len));
            flush(&m[mk..mk + 24]);
            println!(
                "dax-write: {} bytes at {} seed {} in {:.1} ms",
                r.len,
                r.offset,
                r.seed,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        Cmd::DaxVerify { range: r, wait } => {
            let m = map(&r)?;
            let mk = r.offset + r.len;
            let want = marker(r.seed, r.len);
            let start = Instant::now();
            loop {
                flush(&m[mk..mk + 24]); // clflush also invalidates our copy
                if m[mk..mk + 24] == want {
                    break;
                }
                if start.elapsed() > Duration::from_secs(wait) {
                    bail!("marker not seen after {wait} s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let data = &m[r.offset..r.offset + r.len];
            flush(data);
            let t = Instant::now();
            if let Some(i) = data
                .iter()
                .enumerate()
                .position(|(i, b)| *b != pattern_byte(r.seed, i))
            {
                bail!(
                    "mismatch at byte {} (offset {}): got {:#04x}, want {:#04x}",
                    i,
                    r.offset + i,
                    data[i],
                    pattern_byte(r.seed, i)
                );
            }
            println!(
                "dax-verify: {} bytes at {} seed {} match (waited {:.1} s, verified in {:.1} ms)",
                r.len,
                r.offset,
                r.seed,
                (t - start).as_secs_f64(),
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
