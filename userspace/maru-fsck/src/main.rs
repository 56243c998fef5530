//! maru-fsck: check and repair of a marufs pool.
//!
//! Exit codes (fsck(8)): 0 clean, 1 errors corrected, 4 errors left uncorrected,
//! 8 operational error (including a repair refused because hosts use the
//! pool), 16 usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use marufs_core::fs::{mount_check, watch_hosts, Liveness};
use marufs_core::fsck::{self, Finding, Options, Summary};
use marufs_core::Media;
use marufs_media::{Kind, MapMedia, StdEnv};
use serde_json::json;

/// Check (and repair) a marufs pool. A pool that hosts use right now (their
/// heartbeats advance) is checked as a snapshot and never repaired unless
/// --force.
#[derive(Parser, Debug)]
#[command(name = "maru-fsck", version)]
struct Cli {
    /// Report only; change nothing (the default).
    #[arg(short = 'n', conflicts_with = "yes")]
    no: bool,
    /// Repair every problem found.
    #[arg(short = 'y')]
    yes: bool,
    /// With -y: repair even while hosts use the pool (they may overwrite the
    /// repair, or be corrupted by it).
    #[arg(long, requires = "yes")]
    force: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// List every problem.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// /dev/daxX.Y device or image file.
    device: PathBuf,
}

fn check<M: Media>(m: &M, repair: bool, online: bool) -> Result<(Summary, Vec<Finding>), String> {
    let info = mount_check(m).map_err(|e| format!("cannot use the superblock: {e}"))?;
    let mut scratch = vec![0u8; fsck::scratch_len(&info.sb.geo)];
    let mut v = vec![];
    let s = fsck::run(
        m,
        &Options { repair, online },
        &mut scratch,
        &mut |f: &Finding| v.push(*f),
    )
    .map_err(|e| format!("fsck failed: {e}"))?;
    Ok((s, v))
}

/// The node ids of a [`Liveness`] mask, as "node 0, node 3".
fn nodes(mask: u64) -> String {
    (0..64)
        .filter(|j| mask & (1 << j) != 0)
        .map(|j| format!("node {j}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn node_list(mask: u64) -> Vec<u32> {
    (0..64).filter(|j| mask & (1 << j) != 0).collect()
}

/// Which hosts use the pool (see `watch_hosts`); says on stderr what it
/// waits for.
fn liveness<M: Media>(m: &M, quiet: bool) -> Result<Liveness, String> {
    let info = mount_check(m).map_err(|e| format!("cannot use the superblock: {e}"))?;
    watch_hosts(m, &StdEnv::default(), &info.sb.geo, &mut |mask, ns| {
        if !quiet {
            eprintln!(
                "maru-fsck: the slots of {} say a host is active: watching their heartbeats for up to {:.1} s",
                nodes(mask),
                ns as f64 / 1e9
            );
        }
    })
    .map_err(|e| format!("reading the host slots: {e}"))
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({ "kind": f.kind.name(), "a": f.a, "b": f.b, "message": f.to_string() })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 16 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let t = Instant::now();
    let m = match MapMedia::open(&cli.device) {
        // On a device, reads and writes go through this CPU's cache as a
        // host's do: invalidate before reading, write back after writing.
        Ok(m) => {
            let dax = m.kind() == Kind::Dax;
            m.with_cache_flush(dax)
        }
        Err(e) => {
            eprintln!("maru-fsck: {e}");
            return ExitCode::from(8);
        }
    };
    let fail = |e: String| {
        eprintln!("maru-fsck: {}: {e}", cli.device.display());
        if cli.json {
            println!(
                "{}",
                json!({ "device": cli.device, "error": e, "exit_code": 8 })
            );
        }
        ExitCode::from(8)
    };
    let live = match liveness(&m, cli.json) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    if live.live != 0 && cli.yes && !cli.force {
        return fail(format!(
            "not repairing: {} {} using the pool (heartbeats advancing); unmount it on every host first (or --force, which may corrupt it under them)",
            nodes(live.live),
            if live.live.count_ones() == 1 { "is" } else { "are" }
        ));
    }
    let online = live.live != 0;
    let first = match check(&m, cli.yes, online) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let (sum, findings) = first;
    let mut remaining = findings.clone();
    if sum.repaired {
        if m.kind() == Kind::File {
            let _ = m.sync();
        }
        match check(&m, false, online) {
            Ok((_, r)) => remaining = r,
            Err(e) => {
                eprintln!("maru-fsck: after repair: {e}");
                return ExitCode::from(8);
            }
        }
    }
    let code: u8 = if findings.is_empty() {
        0
    } else if sum.repaired && remaining.is_empty() {
        1
    } else {
        4
    };
    let secs = t.elapsed().as_secs_f64();
    if cli.json {
        let v = json!({
            "device": cli.device,
            "clean": findings.is_empty(),
            "problems": findings.iter().map(finding_json).collect::<Vec<_>>(),
            "repaired": sum.repaired,
            "remaining": remaining.iter().map(finding_json).collect::<Vec<_>>(),
            "keys": sum.keys,
            "dirs": sum.dirs,
            "used_units": sum.used_units,
            "total_units": sum.total_units,
            "seconds": secs,
            "live_nodes": node_list(live.live),
            "crashed_nodes": node_list(live.silent),
            "exit_code": code,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "{}: {} keys, {} directories, {}/{} units used",
            cli.device.display(),
            sum.keys,
            sum.dirs,
            sum.used_units,
            sum.total_units
        );
        if live.live != 0 {
            println!(
                "  in use by {} (checked as a snapshot: their keys being created are not problems)",
                nodes(live.live)
            );
        }
        if live.silent != 0 {
            println!(
                "  crashed hosts (slot active, heartbeat still): {}",
                nodes(live.silent)
            );
        }
        if cli.verbose || findings.len() <= 20 {
            for f in &findings {
                println!("  {f}");
            }
        }
        match code {
            0 => println!("clean ({secs:.2}s)"),
            1 => println!(
                "{} problems repaired; clean now ({secs:.2}s)",
                findings.len()
            ),
            _ if online && !sum.repaired => println!(
                "{} problems found while hosts use the pool (some may be changes in flight): unmount it on every host, then check again ({secs:.2}s)",
                remaining.len()
            ),
            _ => println!(
                "{} problems{}; run with -y to repair ({secs:.2}s)",
                remaining.len(),
                if sum.repaired {
                    " left after repair"
                } else {
                    ""
                }
            ),
        }
    }
    ExitCode::from(code)
}
