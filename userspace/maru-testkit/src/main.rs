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

mod corebench;
mod faultbench;
mod pins;
mod tmpfile;

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
    DaxWrite {
        #[command(flatten)]
        range: Range,
        /// Write only the pattern (e.g. to corrupt metadata on purpose).
        #[arg(long)]
        no_marker: bool,
    },
    /// Create a key: open(O_CREAT|O_EXCL), ftruncate, fill through a shared
    /// writable mapping, close (which publishes it). Prints the page faults.
    KeyWrite {
        /// Path of the key.
        path: String,
        /// Size in bytes.
        #[arg(long)]
        len: usize,
        /// Pattern seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Verify a key through a read-only shared mapping (faults, smaps PMD
    /// mapping, process_vm_readv through get_user_pages).
    KeyVerify {
        /// Path of the key.
        path: String,
        /// Expected size in bytes.
        #[arg(long)]
        len: usize,
        /// Pattern seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Fail unless at most this many page faults were taken.
        #[arg(long)]
        max_faults: Option<u64>,
        /// Fail unless smaps shows the whole mapping resident. (smaps does
        /// not count device-memory PMDs as FilePmdMapped; the fault count
        /// proves 2 MiB mappings.)
        #[arg(long)]
        expect_resident: bool,
    },
    /// Checks that must fail in a precise way on a published key: writable
    /// and private mappings are refused, access past the end gets SIGBUS.
    KeyRefusals {
        /// Path of a published key of at most 2 MiB.
        path: String,
    },
    /// Concurrent create/publish/read/unlink from several processes, every
    /// byte read verified. Key names carry their seed and length.
    Stress {
        /// Application directory to work in.
        dir: String,
        /// Worker processes.
        #[arg(long, default_value_t = 4)]
        procs: u32,
        /// Operations per worker.
        #[arg(long, default_value_t = 200)]
        ops: u32,
        /// Largest key in bytes.
        #[arg(long, default_value_t = 4 << 20)]
        max_len: usize,
        /// Run seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// (internal) one stress worker.
    StressWorker {
        dir: String,
        #[arg(long)]
        id: u32,
        #[arg(long)]
        ops: u32,
        #[arg(long)]
        max_len: usize,
        #[arg(long)]
        seed: u64,
    },
    /// Data-path and metadata benchmark: marufs vs raw device-dax mmap and
    /// vs tmpfs, measured in the same run; prints ratios.
    Bench {
        /// Raw device-dax device (its first bytes are overwritten: run before mkfs).
        #[arg(long)]
        raw: String,
        /// Directory on a mounted marufs.
        #[arg(long)]
        maru: String,
        /// Directory on tmpfs.
        #[arg(long)]
        tmpfs: String,
        /// Data size.
        #[arg(long, default_value_t = 32 << 20)]
        len: usize,
        /// Repetitions of each metadata operation.
        #[arg(long, default_value_t = 200)]
        iters: usize,
        /// Only the raw part: print it (then mkfs/mount and run the rest).
        #[arg(long)]
        raw_only: bool,
        /// Then wait this long (the module zeroes free units in the
        /// background) and time creates again, on units zeroed ahead.
        #[arg(long, default_value_t = 0)]
        settle_secs: u64,
    },
    /// (internal) map PATH and touch byte OFFSET: dies of SIGBUS if invalid.
    Touch {
        /// Path of the key.
        path: String,
        /// Mapping length.
        #[arg(long)]
        map_len: usize,
        /// Byte to read.
        #[arg(long)]
        offset: usize,
    },
    /// TEST ONLY: hold the cross-host namespace lock for MS milliseconds
    /// (the ioctl needs module parameter test_skip bit 8).
    HoldLock {
        /// An application directory of the mount.
        dir: String,
        /// How long.
        #[arg(long)]
        ms: u32,
    },
    /// Map PATH read-only and read every page, wait until the file WAIT
    /// exists (a guest-local path), then read every page again: a mapping
    /// revoked meanwhile dies of SIGBUS (exit 135 from the shell).
    MapHold {
        /// Path of the key.
        path: String,
        /// Mapping length.
        #[arg(long)]
        map_len: usize,
        /// Wait for this file to exist before the second pass.
        #[arg(long)]
        wait: String,
    },
    /// O_TMPFILE + linkat publishing: invisible before, published by linkat,
    /// the creator's writable mapping revoked (SIGBUS on write), an unlinked
    /// tmpfile discarded.
    Tmpfile {
        /// Application directory (empty).
        dir: String,
        /// Name to link the key as.
        name: String,
        /// Size in bytes.
        #[arg(long, default_value_t = 4 << 20)]
        len: usize,
        /// Pattern seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// The core's metadata operations in userspace on an unmounted pool.
    CoreBench {
        /// Formatted device or image.
        dev: String,
        /// Iterations.
        #[arg(long, default_value_t = 200)]
        iters: usize,
        /// Flush cache lines for real (`clflush`) on flush/invalidate.
        #[arg(long)]
        clflush: bool,
    },
    /// The discard ioctl on named and unnamed unpublished keys.
    Discard {
        /// Application directory.
        dir: String,
    },
    /// Batched lookup ioctl: prints `name status size mode uid` per name
    /// (`--exists`: `name 1|0`), then `present N`.
    Lookup {
        /// Application directory.
        dir: String,
        /// Names.
        names: Vec<String>,
        /// Presence only (`LOOKUP_EXISTS`).
        #[arg(long)]
        exists: bool,
    },
    /// Hostile batched lookup requests (bad flags, counts, packing and
    /// pointers) get their errno and write nothing.
    LookupHostile {
        /// Application directory.
        dir: String,
        /// A key in it.
        key: String,
    },
    /// Rewrite a key's entry record with a forged extent or size and a
    /// recomputed checksum (what a buggy or hostile peer kernel could write):
    /// CASE is past-end (an extent ending past the data area), u32-max (an
    /// extent starting at unit 2^32-1), across-chunk (one crossing a chunk
    /// boundary), huge-count (count 2^32-1), or big-size (a size beyond the
    /// units).
    EntryForge {
        /// DAX character device or image.
        dev: String,
        /// The key (on a marufs mount): its entry is its inode number's low
        /// 32 bits.
        #[arg(long)]
        key: String,
        /// What to forge.
        #[arg(long)]
        case: String,
    },
    /// Keep the first MiB of a key's pages in a pipe (vmsplice: references
    /// that outlive the mapping and the file, like a DMA pin), close the
    /// key, say so in READY, wait for UNTIL, then check that the pipe still
    /// shows the key's bytes (fails with "mismatch at byte" otherwise).
    /// `--create LEN`: create the key first (then a truncate of it must
    /// fail with EBUSY while its pages are in the pipe).
    PinHold {
        key: String,
        #[arg(long)]
        create: Option<usize>,
        /// With `--create`: skip the truncate check.
        #[arg(long)]
        no_truncate: bool,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        ready: std::path::PathBuf,
        #[arg(long)]
        until: std::path::PathBuf,
    },
    /// Register a key's mapping as an io_uring fixed buffer (a writable
    /// long-term pin) after checking io_uring itself works on anonymous
    /// memory; succeeds when the key's registration fails with errno EXPECT.
    /// `--create LEN`: a new key through its writable mapping.
    UringRegister {
        key: String,
        #[arg(long)]
        create: Option<usize>,
        #[arg(long, default_value_t = libc::EFAULT)]
        expect: i32,
    },
    /// Fault latency of a published key (one fault per 2 MiB unit): first
    /// map after mount (with invalidation), later maps, and (`--storm`)
    /// while another process creates and unlinks keys; prints p50/p99 and
    /// ratios. Also the publish (close) cost of the key when it creates it.
    FaultBench {
        /// Directory on a marufs mount.
        dir: String,
        #[arg(long, default_value_t = 32 << 20)]
        len: usize,
        #[arg(long, default_value_t = 20)]
        reps: usize,
        #[arg(long)]
        storm: bool,
    },
    /// Create a key with O_APPEND: a write after seeking to 0 must land at
    /// the end (the key reads "abcdef" after close).
    AppendCheck { path: String },
    /// (internal) create and unlink keys in DIR until killed.
    Storm { dir: String },
    /// Print the data units of a key (from its entry on DEV), one per line.
    KeyUnits {
        /// DAX character device or image.
        dev: String,
        /// The key (on a marufs mount).
        #[arg(long)]
        key: String,
    },
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

/// The entry of a key on a marufs mount: its inode number's low 32 bits.
fn key_entry(key: &str) -> Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(key)
        .with_context(|| format!("stat {key}"))?
        .ino();
    Ok(ino as u32)
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

fn minor_faults() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_minflt as u64
}

/// Creates key `path` (`O_CREAT|O_EXCL`, read-write) of `len` bytes: the
/// creating file, through which it is filled and then published at close.
fn new_key(path: &str, len: usize) -> Result<std::fs::File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("create {path}"))?;
    f.set_len(len as u64).context("ftruncate")?;
    Ok(f)
}

fn fill(data: &mut [u8], seed: u64) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = pattern_byte(seed, i);
    }
}

fn check(data: &[u8], seed: u64, what: &str) -> Result<()> {
    if let Some(i) = (0..data.len()).find(|&i| data[i] != pattern_byte(seed, i)) {
        bail!(
            "{what}: mismatch at byte {i}: got {:#04x}, want {:#04x}",
            data[i],
            pattern_byte(seed, i)
        );
    }
    Ok(())
}

/// The smaps lines of the mapping at `addr`.
fn smaps_block(addr: usize) -> Result<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let start = format!("{addr:x}-");
    let mut out = String::new();
    let mut inside = false;
    for line in smaps.lines() {
        let is_header = line
            .split_once('-')
            .is_some_and(|(a, _)| !a.is_empty() && a.chars().all(|c| c.is_ascii_hexdigit()));
        if is_header {
            inside = line.starts_with(&start);
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A `Name:   N kB` field of an smaps block.
fn smaps_field_kb(block: &str, name: &str) -> u64 {
    block
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Write bandwidth (GB/s) through `m` and the faults its first touch took.
fn write_bw(m: &mut [u8]) -> (f64, u64) {
    let src: Vec<u8> = (0..m.len()).map(|i| pattern_byte(7, i)).collect();
    let f0 = minor_faults();
    let t = Instant::now();
    m.copy_from_slice(&src);
    let w = t.elapsed().as_secs_f64();
    (m.len() as f64 / 1e9 / w, minor_faults() - f0)
}

/// Read bandwidth (GB/s) through a fresh mapping `m` (faults included) and
/// the faults taken.
fn read_bw(m: &[u8]) -> (f64, u64) {
    let f0 = minor_faults();
    let t = Instant::now();
    let mut acc = 0u64;
    for c in m.chunks_exact(8) {
        acc = acc.wrapping_add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
    }
    let r = t.elapsed().as_secs_f64();
    std::hint::black_box(acc);
    (m.len() as f64 / 1e9 / r, minor_faults() - f0)
}

/// p50 and p99 in microseconds.
fn pct(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.99))
}

/// Latencies (µs) of create+size+publish, open+mmap+munmap+close, stat, unlink.
fn meta_bench(dir: &str, iters: usize, s: &mut [Vec<f64>; 4]) -> Result<()> {
    let us = |t: Instant| t.elapsed().as_secs_f64() * 1e6;
    let [c, o, st, u] = s;
    for i in 0..iters {
        c.push(create_key(&format!("{dir}/bench-{i}"))?.iter().sum());
    }
    for i in 0..iters {
        let p = format!("{dir}/bench-{i}");
        let t = Instant::now();
        let f = std::fs::File::open(&p)?;
        // SAFETY: read-only mapping of an immutable key, dropped at once.
        let m = unsafe { MmapOptions::new().len(2 << 20).map(&f) }?;
        drop(m);
        drop(f);
        o.push(us(t));
        let t = Instant::now();
        std::fs::metadata(&p)?;
        st.push(us(t));
    }
    for i in 0..iters {
        let p = format!("{dir}/bench-{i}");
        let t = Instant::now();
        std::fs::remove_file(&p)?;
        u.push(us(t));
    }
    Ok(())
}

/// [`meta_bench`] on both directories in alternating rounds of 20 keys, so
/// that a drift of the machine's speed (TCG on a shared host) hits both
/// sides alike: p50/p99 per operation, marufs then tmpfs.
fn meta_bench_pair(maru: &str, tmpfs: &str, iters: usize) -> Result<[[(f64, f64); 4]; 2]> {
    let mut m: [Vec<f64>; 4] = Default::default();
    let mut t: [Vec<f64>; 4] = Default::default();
    let mut left = iters;
    while left > 0 {
        let n = left.min(20);
        meta_bench(maru, n, &mut m)?;
        meta_bench(tmpfs, n, &mut t)?;
        left -= n;
    }
    let p = |v: [Vec<f64>; 4]| v.map(pct);
    Ok([p(m), p(t)])
}

/// create+ftruncate 2 MiB+publish of keys `from..from + n` (µs each, and
/// per step); the caller unlinks them.
fn create_bench(dir: &str, from: usize, n: usize, steps: &mut [Vec<f64>; 3]) -> Result<Vec<f64>> {
    let mut c = vec![];
    for i in from..from + n {
        let t = create_key(&format!("{dir}/zbench-{i}"))?;
        c.push(t.iter().sum());
        for (s, x) in steps.iter_mut().zip(t) {
            s.push(x);
        }
    }
    Ok(c)
}

/// Creates key `p` of 2 MiB: µs of open(O_CREAT), ftruncate, close (publish).
fn create_key(p: &str) -> Result<[f64; 3]> {
    let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
    let t0 = Instant::now();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(p)?;
    let t1 = Instant::now();
    f.set_len(2 << 20)?;
    let t2 = Instant::now();
    drop(f);
    let t3 = Instant::now();
    Ok([us(t0, t1), us(t1, t2), us(t2, t3)])
}

const RAW_RESULT: &str = "/tmp/bench-raw";

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Parses "p{id}-{i}-{seed}-{len}".
fn parse_key_name(name: &str) -> Option<(u64, usize)> {
    let mut it = name.split('-').skip(2);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn stress_worker(
    dir: &str,
    id: u32,
    ops: u32,
    max_len: usize,
    seed: u64,
) -> Result<(u64, u64, u64)> {
    use std::io::{Read, Write};
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9) ^ (u64::from(id) << 32) | 1);
    let mut mine: Vec<String> = Vec::new();
    let (mut created, mut verified, mut unlinked) = (0u64, 0u64, 0u64);
    for i in 0..ops {
        match rng.below(10) {
            0..=3 => {
                let len = 1 + rng.below(max_len as u64) as usize;
                let kseed = rng.next() >> 1;
                let name = format!("p{id}-{i}-{kseed}-{len}");
                let path = format!("{dir}/{name}");
                let mut data = vec![0u8; len];
                fill(&mut data, kseed);
                if rng.below(2) == 0 {
                    let mut f = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)?;
                    f.write_all(&data)
                        .with_context(|| format!("write {path}"))?;
                } else {
                    let f = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&path)?;
                    f.set_len(len as u64)?;
                    // SAFETY: our unpublished key.
                    let mut m = unsafe { MmapOptions::new().len(len).map_mut(&f) }?;
                    m.copy_from_slice(&data);
                }
                mine.push(name);
                created += 1;
            }
            4..=7 => {
                // Read any key in the directory (others' too); it may vanish.
                let names: Vec<String> = std::fs::read_dir(dir)?
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect();
                if names.is_empty() {
                    continue;
                }
                let name = &names[rng.below(names.len() as u64) as usize];
                let Some((kseed, len)) = parse_key_name(name) else {
                    bail!("unexpected name {name}");
                };
                let path = format!("{dir}/{name}");
                let f = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).with_context(|| format!("open {path}")),
                };
                if rng.below(2) == 0 {
                    let mut buf = Vec::new();
                    (&f).read_to_end(&mut buf)?;
                    if buf.len() != len {
                        bail!("{path}: read {} bytes, want {len}", buf.len());
                    }
                    check(&buf, kseed, &path)?;
                } else {
                    // SAFETY: published keys are immutable.
                    let m = unsafe { MmapOptions::new().len(len).map(&f) }?;
                    check(&m, kseed, &path)?;
                }
                verified += 1;
            }
            _ => {
                if !mine.is_empty() {
                    let k = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                    std::fs::remove_file(format!("{dir}/{k}"))?;
                    unlinked += 1;
                }
            }
        }
    }
    Ok((created, verified, unlinked))
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Tmpfile {
            dir,
            name,
            len,
            seed,
        } => tmpfile::run(std::path::Path::new(&dir), &name, len, seed)?,
        Cmd::CoreBench {
            dev,
            iters,
            clflush,
        } => corebench::core_bench(std::path::Path::new(&dev), iters, clflush)?,
        Cmd::EntryForge { dev, key, case } => {
            corebench::entry_forge(std::path::Path::new(&dev), key_entry(&key)?, &case)?
        }
        Cmd::PinHold {
            key,
            create,
            no_truncate,
            seed,
            ready,
            until,
        } => pins::pin_hold(&key, create, !no_truncate, seed, &ready, &until)?,
        Cmd::UringRegister {
            key,
            create,
            expect,
        } => pins::uring_register(&key, create, expect)?,
        Cmd::FaultBench {
            dir,
            len,
            reps,
            storm,
        } => faultbench::fault_bench(&dir, len, reps, storm)?,
        Cmd::Storm { dir } => faultbench::storm(&dir)?,
        Cmd::AppendCheck { path } => {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&path)
                .with_context(|| format!("create {path}"))?;
            f.write_all(b"abc")?;
            f.seek(SeekFrom::Start(0))?;
            f.write_all(b"def")?;
            drop(f);
            let got = std::fs::read(&path)?;
            if got != b"abcdef" {
                bail!(
                    "{path}: O_APPEND writes read {:?}, want \"abcdef\"",
                    String::from_utf8_lossy(&got)
                );
            }
            println!("append-check: {path}: O_APPEND writes went to the end");
        }
        Cmd::KeyUnits { dev, key } => {
            corebench::key_units(std::path::Path::new(&dev), key_entry(&key)?)?
        }
        Cmd::Discard { dir } => tmpfile::discard(std::path::Path::new(&dir))?,
        Cmd::Lookup { dir, names, exists } => {
            tmpfile::lookup(std::path::Path::new(&dir), &names, exists)?
        }
        Cmd::LookupHostile { dir, key } => {
            tmpfile::lookup_hostile(std::path::Path::new(&dir), &key)?
        }
        Cmd::Stress {
            dir,
            procs,
            ops,
            max_len,
            seed,
        } => {
            let me = std::env::current_exe()?;
            let t = Instant::now();
            let kids: Vec<_> = (0..procs)
                .map(|id| {
                    std::process::Command::new(&me)
                        .args(["stress-worker", &dir])
                        .args(["--id", &id.to_string(), "--ops", &ops.to_string()])
                        .args([
                            "--max-len",
                            &max_len.to_string(),
                            "--seed",
                            &seed.to_string(),
                        ])
                        .spawn()
                })
                .collect::<std::io::Result<_>>()?;
            let mut bad = 0;
            for mut k in kids {
                if !k.wait()?.success() {
                    bad += 1;
                }
            }
            if bad > 0 {
                bail!("{bad} of {procs} workers failed");
            }
            println!(
                "stress: {procs} processes x {ops} ops in {:.1} s, all bytes verified",
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::Bench {
            raw,
            maru,
            tmpfs,
            len,
            iters,
            raw_only,
            settle_secs,
        } => {
            if raw_only {
                let f = OpenOptions::new().read(true).write(true).open(&raw)?;
                // SAFETY: the device is not in use (before mkfs).
                let mut m = unsafe { MmapOptions::new().len(len).map_mut(&f) }?;
                let (w, wf) = write_bw(&mut m);
                drop(m);
                // SAFETY: as above.
                let m = unsafe { MmapOptions::new().len(len).map(&f) }?;
                let (r, rf) = read_bw(&m);
                std::fs::write(RAW_RESULT, format!("{w} {r} {wf} {rf}"))?;
                println!(
                    "raw {raw}: write {w:.2} GB/s ({wf} faults), read {r:.2} GB/s ({rf} faults)"
                );
                return Ok(());
            }
            let raw_s = std::fs::read_to_string(RAW_RESULT).context("run --raw-only first")?;
            let v: Vec<f64> = raw_s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let (rw, rr, rwf, rrf) = (v[0], v[1], v[2] as u64, v[3] as u64);
            let path = format!("{maru}/bench-data");
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            f.set_len(len as u64)?;
            // SAFETY: our unpublished key.
            let mut m = unsafe { MmapOptions::new().len(len).map_mut(&f) }?;
            let (mw, mwf) = write_bw(&mut m);
            drop(m);
            drop(f);
            let f = std::fs::File::open(&path)?;
            // SAFETY: published, immutable.
            let m = unsafe { MmapOptions::new().len(len).map(&f) }?;
            let (mr, mrf) = read_bw(&m);
            drop(m);
            drop(f);
            std::fs::remove_file(&path)?;
            println!("== data path, {} MiB (same run, same machine)", len >> 20);
            println!(
                "   {:<24} {:>10} {:>10} {:>8}",
                "", "raw devdax", "marufs", "ratio"
            );
            println!(
                "   {:<24} {:>10.2} {:>10.2} {:>8.2}",
                "write GB/s",
                rw,
                mw,
                mw / rw
            );
            println!(
                "   {:<24} {:>10.2} {:>10.2} {:>8.2}",
                "read GB/s",
                rr,
                mr,
                mr / rr
            );
            println!(
                "   {:<24} {:>10} {:>10}",
                "faults (write mapping)", rwf, mwf
            );
            println!("   {:<24} {:>10} {:>10}", "faults (read mapping)", rrf, mrf);
            let [mt, tt] = meta_bench_pair(&maru, &tmpfs, iters)?;
            println!("== metadata, {iters} ops each (alternating rounds of 20), µs (p50 / p99)");
            println!(
                "   {:<28} {:>17} {:>17} {:>11}",
                "", "tmpfs", "marufs", "p50 ratio"
            );
            let names = [
                "create+ftruncate+publish",
                "open+mmap+munmap+close",
                "stat",
                "unlink",
            ];
            for (k, n) in names.iter().enumerate() {
                let (a, b) = (tt[k], mt[k]);
                println!(
                    "   {:<28} {:>8.1} / {:>6.1} {:>8.1} / {:>6.1} {:>10.2}x",
                    n,
                    a.0,
                    a.1,
                    b.0,
                    b.1,
                    b.0 / a.0.max(0.001)
                );
            }
            if settle_secs > 0 {
                // The module's heartbeat zeroes at most 128 free units ahead.
                std::thread::sleep(std::time::Duration::from_secs(settle_secs));
                let n = iters.min(100);
                let (mut a, mut b) = (vec![], vec![]);
                let (mut sa, mut sb): ([Vec<f64>; 3], [Vec<f64>; 3]) = Default::default();
                // Keys stay until the end: each round takes fresh units (the
                // ones zeroed ahead), as a growing cache would.
                for r in 0..n / 20 {
                    b.extend(create_bench(&maru, r * 20, 20, &mut sb)?);
                    a.extend(create_bench(&tmpfs, r * 20, 20, &mut sa)?);
                }
                for d in [&maru, &tmpfs] {
                    for i in 0..n / 20 * 20 {
                        std::fs::remove_file(format!("{d}/zbench-{i}"))?;
                    }
                }
                let (a, b) = (pct(a), pct(b));
                let (sa, sb) = (sa.map(|v| pct(v).0), sb.map(|v| pct(v).0));
                println!(
                    "   {:<28} {:>8.1} / {:>6.1} {:>8.1} / {:>6.1} {:>10.2}x",
                    "  same, units zeroed ahead",
                    a.0,
                    a.1,
                    b.0,
                    b.1,
                    b.0 / a.0.max(0.001)
                );
                println!(
                    "   {:<28} p50 µs: open(O_CREAT) {:.1} / {:.1}, ftruncate {:.1} / {:.1}, close (publish) {:.1} / {:.1}",
                    "  steps (tmpfs / marufs)", sa[0], sb[0], sa[1], sb[1], sa[2], sb[2]
                );
            }
        }
        Cmd::StressWorker {
            dir,
            id,
            ops,
            max_len,
            seed,
        } => {
            let (c, v, u) = stress_worker(&dir, id, ops, max_len, seed)
                .with_context(|| format!("worker {id}"))?;
            println!("worker {id}: created {c}, verified {v}, unlinked {u}");
        }
        Cmd::KeyWrite { path, len, seed } => {
            let f = new_key(&path, len)?;
            let t = Instant::now();
            let f0 = minor_faults();
            // SAFETY: the key is ours (unpublished, visible only through `f`).
            let mut m = unsafe { MmapOptions::new().len(len).map_mut(&f) }.context("mmap")?;
            fill(&mut m, seed);
            let faults = minor_faults() - f0;
            drop(m);
            drop(f);
            println!(
                "key-write: {path}: {len} bytes seed {seed} in {:.1} ms, {faults} faults",
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        Cmd::KeyVerify {
            path,
            len,
            seed,
            max_faults,
            expect_resident,
        } => {
            let f = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
            let size = f.metadata()?.len() as usize;
            if size != len {
                bail!("{path}: size {size}, want {len}");
            }
            let f0 = minor_faults();
            // SAFETY: published keys are immutable.
            let m = unsafe { MmapOptions::new().len(len).map(&f) }.context("mmap")?;
            let t = Instant::now();
            check(&m, seed, &path)?;
            let faults = minor_faults() - f0;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let block = smaps_block(m.as_ptr() as usize)?;
            let rss_kb = smaps_field_kb(&block, "Rss:");
            // get_user_pages: process_vm_readv pins the mapping's pages.
            let mut buf = vec![0u8; len.min(4 << 20)];
            let local = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let remote = libc::iovec {
                iov_base: m.as_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            // SAFETY: both iovecs describe live memory of this process.
            let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
            if n != buf.len() as isize {
                bail!(
                    "process_vm_readv: {} ({})",
                    n,
                    std::io::Error::last_os_error()
                );
            }
            check(&buf, seed, "process_vm_readv copy")?;
            println!(
                "key-verify: {path}: {len} bytes match in {ms:.1} ms, {faults} faults, {rss_kb} kB resident, process_vm_readv ok"
            );
            if let Some(max) = max_faults {
                if faults > max {
                    bail!("{faults} page faults, want at most {max}");
                }
            }
            if expect_resident && rss_kb * 1024 < len as u64 {
                bail!("only {rss_kb} kB resident of {len} bytes; smaps:\n{block}");
            }
        }
        Cmd::KeyRefusals { path } => {
            let f = std::fs::File::open(&path)?;
            // A writable shared mapping needs a writable fd: published keys
            // cannot be opened for writing.
            if OpenOptions::new().write(true).open(&path).is_ok() {
                bail!("{path}: opened for writing");
            }
            // SAFETY: mapping attempt only; not used.
            let p = unsafe { MmapOptions::new().len(4096).map_copy(&f) };
            match p {
                Ok(_) => bail!("MAP_PRIVATE mapping of a key succeeded"),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => bail!("MAP_PRIVATE: {e}, want EINVAL"),
            }
            // Past the end of the key's space: SIGBUS, in a child.
            let me = std::env::current_exe()?;
            let st = std::process::Command::new(&me)
                .args([
                    "touch",
                    &path,
                    "--map-len",
                    "8388608",
                    "--offset",
                    "6291456",
                ])
                .status()?;
            use std::os::unix::process::ExitStatusExt;
            if st.signal() != Some(libc::SIGBUS) {
                bail!("touching past the end: {st:?}, want SIGBUS");
            }
            let st = std::process::Command::new(&me)
                .args(["touch", &path, "--map-len", "8388608", "--offset", "0"])
                .status()?;
            if !st.success() {
                bail!("touching byte 0: {st:?}");
            }
            println!(
                "key-refusals: {path}: write-open refused, MAP_PRIVATE EINVAL, SIGBUS past the end"
            );
        }
        Cmd::Touch {
            path,
            map_len,
            offset,
        } => {
            let f = std::fs::File::open(&path)?;
            // SAFETY: read-only shared mapping of an immutable key.
            let m = unsafe { MmapOptions::new().len(map_len).map(&f) }?;
            // SAFETY: may fault (that is the test); volatile so it happens.
            let b = unsafe { std::ptr::read_volatile(m.as_ptr().add(offset)) };
            println!("byte {offset}: {b}");
        }
        Cmd::HoldLock { dir, ms } => {
            let d = std::fs::File::open(&dir)?;
            println!("taking the namespace lock for {ms} ms");
            // SAFETY: an integer-argument ioctl on an open directory.
            let r = unsafe {
                libc::ioctl(
                    std::os::fd::AsRawFd::as_raw_fd(&d),
                    marufs_core::abi::IOC_TEST_HOLD_LOCK as _,
                    ms as libc::c_ulong,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            println!("released the namespace lock");
        }
        Cmd::MapHold {
            path,
            map_len,
            wait,
        } => {
            let f = std::fs::File::open(&path)?;
            // SAFETY: read-only shared mapping of an immutable key.
            let m = unsafe { MmapOptions::new().len(map_len).map(&f) }?;
            let pass = |what: &str| {
                let mut sum = 0u64;
                for off in (0..map_len).step_by(4096) {
                    // SAFETY: inside the mapping; may fault (that is the
                    // test); volatile so that every page is touched.
                    sum += u64::from(unsafe { std::ptr::read_volatile(m.as_ptr().add(off)) });
                }
                println!("{what}: read {} pages (sum {sum})", map_len / 4096);
            };
            pass("mapped");
            while !std::path::Path::new(&wait).exists() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            pass("after the wait");
        }
        Cmd::DaxWrite {
            range: r,
            no_marker,
        } => {
            let mut m = map(&r)?;
            let t = Instant::now();
            let data = &mut m[r.offset..r.offset + r.len];
            for (i, b) in data.iter_mut().enumerate() {
                *b = pattern_byte(r.seed, i);
            }
            flush(data);
            if !no_marker {
                let mk = r.offset + r.len;
                m[mk..mk + 24].copy_from_slice(&marker(r.seed, r.len));
                flush(&m[mk..mk + 24]);
            }
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
