//! mkfs.marufs: formats a /dev/daxX.Y device or a regular file as a marufs pool.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{mount_check, watch_hosts};
use marufs_core::layout::{
    Geometry, GeometryParams, Superblock, MAX_POOL, MIN_POOL, SB_BACKUP_OFF, UNIT,
};
use marufs_core::Media;
use marufs_media::{Kind, MapMedia, StdEnv};

/// Format a CXL shared-memory DAX device or an image file as marufs.
#[derive(Parser, Debug)]
#[command(name = "mkfs.marufs", version)]
struct Cli {
    /// Volume label (up to 63 bytes).
    #[arg(short = 'L', long)]
    label: Option<String>,
    /// File system UUID (default: random).
    #[arg(short = 'U', long)]
    uuid: Option<String>,
    /// Bytes of pool per key entry (default 65536).
    #[arg(short = 'i', long = "bytes-per-entry", conflicts_with = "entries")]
    bytes_per_entry: Option<u64>,
    /// Number of key entries.
    #[arg(short = 'N', long)]
    entries: Option<u64>,
    /// Number of directories (application namespaces).
    #[arg(long, default_value_t = 1024)]
    dirs: u32,
    /// Host slots (maximum number of hosts sharing the pool).
    #[arg(long, default_value_t = 64)]
    max_hosts: u32,
    /// Format even if the device holds a file system (but not a pool that
    /// hosts are using right now).
    #[arg(short = 'f')]
    overwrite: bool,
    /// Format even a pool that hosts are using right now (their heartbeats
    /// advance): destroys their keys under them. Implies -f.
    #[arg(long)]
    force: bool,
    /// Quiet: no progress or summary.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// /dev/daxX.Y device or regular file.
    device: PathBuf,
}

fn parse_uuid(s: &str) -> Result<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        bail!("invalid UUID {s:?}: expected 32 hex digits");
    }
    let mut u = [0u8; 16];
    for (i, b) in u.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| anyhow!("invalid UUID {s:?}"))?;
    }
    Ok(u)
}

fn random_uuid() -> Result<[u8; 16]> {
    let mut u = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut u))
        .context("reading /dev/urandom")?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

pub use marufs_media::uuid_str;

/// Recognisable signatures of other file systems (offset, magic, name).
const SIGNATURES: &[(u64, &[u8], &str)] = &[
    (1080, &[0x53, 0xEF], "ext2/3/4"),
    (0, b"XFSB", "xfs"),
    (65600, b"_BHRfS_M", "btrfs"),
    (4086, b"SWAPSPACE2", "swap"),
    (3, b"NTFS    ", "ntfs"),
];

fn existing(m: &MapMedia) -> Result<Option<String>> {
    for off in [0, SB_BACKUP_OFF] {
        let mut b = [0u8; 8];
        m.load(off, &mut b).map_err(|e| anyhow!("read: {e}"))?;
        if Superblock::has_magic(&b) {
            return Ok(Some("marufs".into()));
        }
    }
    for (off, magic, name) in SIGNATURES {
        let mut b = vec![0u8; magic.len()];
        if m.load(*off, &mut b).is_ok() && b == *magic {
            return Ok(Some((*name).into()));
        }
    }
    Ok(None)
}

/// The node ids of a mask, as "node 0, node 3".
fn nodes(mask: u64) -> String {
    (0..64)
        .filter(|j| mask & (1u64 << j) != 0)
        .map(|j| format!("node {j}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a pool that hosts use right now (their heartbeats advance).
fn refuse_live(m: &MapMedia, cli: &Cli) -> Result<()> {
    let Ok(info) = mount_check(m) else {
        // Not a readable pool: nobody can be using it as one.
        return Ok(());
    };
    let quiet = cli.quiet;
    let live = watch_hosts(m, &StdEnv::default(), &info.sb.geo, &mut |mask, ns| {
        if !quiet {
            eprintln!(
                "mkfs.marufs: the slots of {} say a host is active: watching their heartbeats for up to {:.1} s",
                nodes(mask),
                ns as f64 / 1e9
            );
        }
    })
    .map_err(|e| anyhow!("reading the host slots: {e}"))?;
    if live.live != 0 {
        bail!(
            "{}: the pool is in use by {} (heartbeats advancing); unmount it on every host first (--force formats it anyway, destroying their keys under them)",
            cli.device.display(),
            nodes(live.live)
        );
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<()> {
    let m = MapMedia::open(&cli.device).map_err(|e| anyhow!("{e}"))?;
    // On a device, writes go through this CPU's cache as a host's do: each
    // is written back (clflush) so that other hosts read it.
    let dax = m.kind() == Kind::Dax;
    let m = m.with_cache_flush(dax);
    let size = m.size();
    let total = size / UNIT * UNIT;
    if total < MIN_POOL {
        bail!(
            "{}: too small: {} bytes; marufs needs at least {} MiB",
            cli.device.display(),
            size,
            MIN_POOL >> 20
        );
    }
    if total > MAX_POOL {
        bail!(
            "{}: too large: {} bytes; at most {} TiB",
            cli.device.display(),
            size,
            MAX_POOL >> 40
        );
    }
    match existing(&m)? {
        Some(fs) if !cli.overwrite && !cli.force => bail!(
            "{} contains a {fs} file system; use -f to overwrite it",
            cli.device.display()
        ),
        Some(fs) if fs == "marufs" && !cli.force => refuse_live(&m, cli)?,
        _ => {}
    }
    let mut label = [0u8; 64];
    if let Some(l) = &cli.label {
        if l.len() > 63 {
            bail!("label longer than 63 bytes");
        }
        label[..l.len()].copy_from_slice(l.as_bytes());
    }
    let uuid = match &cli.uuid {
        Some(s) => parse_uuid(s)?,
        None => random_uuid()?,
    };
    let params = GeometryParams {
        total_size: total,
        max_hosts: cli.max_hosts,
        entries: cli.entries.unwrap_or(0),
        bytes_per_entry: cli.bytes_per_entry.unwrap_or(65536),
        dirs: cli.dirs,
        allow_small: false,
    };
    let geo: Geometry = Geometry::compute(&params).ok_or_else(|| {
        anyhow!("impossible geometry (entries 1..2^31, dirs 1..16382, max hosts 1..64, metadata must fit the pool)")
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let show = !cli.quiet && std::io::stderr().is_terminal();
    let mut last = 0u64;
    let mut progress = |done: u64, all: u64| {
        if show && all > 0 {
            let pct = done * 100 / all;
            if pct != last || done == all {
                last = pct;
                eprint!("\rmkfs.marufs: writing metadata {pct:3}%");
                if done == all {
                    eprintln!();
                }
                let _ = std::io::stderr().flush();
            }
        }
    };
    let opts = FormatOptions {
        params,
        uuid,
        label,
        now,
    };
    format(&m, &opts, &mut progress)
        .map_err(|e| anyhow!("format failed: {e} (errno {})", e.errno()))?;
    if m.kind() == Kind::File {
        m.sync().context("msync")?;
    }
    if !cli.quiet {
        println!("marufs {} on {}", uuid_str(&uuid), cli.device.display());
        println!(
            "  size {} MiB, {} data units of 2 MiB ({} chunks of {} units), metadata {} MiB",
            total >> 20,
            geo.data_units,
            geo.chunk_count,
            geo.chunk_units,
            geo.data_off >> 20
        );
        println!(
            "  {} key entries, {} index slots, {} directories, {} host slots",
            geo.entry_count, geo.index_slots, geo.dir_count, geo.max_hosts
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkfs.marufs: {e:#}");
            ExitCode::from(1)
        }
    }
}
