//! maru-fsck: offline check and repair of a marufs pool.
//!
//! Exit codes (fsck(8)): 0 clean, 1 errors corrected, 4 errors left uncorrected,
//! 8 operational error, 16 usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use marufs_core::fs::mount_check;
use marufs_core::fsck::{self, Finding, Options, Summary};
use marufs_core::Media;
use marufs_media::{Kind, MapMedia};
use serde_json::json;

/// Check (and repair) a marufs pool that no host has mounted.
#[derive(Parser, Debug)]
#[command(name = "maru-fsck", version)]
struct Cli {
    /// Report only; change nothing (the default).
    #[arg(short = 'n', conflicts_with = "yes")]
    no: bool,
    /// Repair every problem found.
    #[arg(short = 'y')]
    yes: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// List every problem.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// /dev/daxX.Y device or image file.
    device: PathBuf,
}

fn check<M: Media>(m: &M, repair: bool) -> Result<(Summary, Vec<Finding>), String> {
    let info = mount_check(m).map_err(|e| format!("cannot use the superblock: {e}"))?;
    let mut scratch = vec![0u8; fsck::scratch_len(&info.sb.geo)];
    let mut v = vec![];
    let s = fsck::run(
        m,
        &Options {
            repair,
            online: false,
        },
        &mut scratch,
        &mut |f: &Finding| v.push(*f),
    )
    .map_err(|e| format!("fsck failed: {e}"))?;
    Ok((s, v))
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
        Ok(m) => m,
        Err(e) => {
            eprintln!("maru-fsck: {e}");
            return ExitCode::from(8);
        }
    };
    let first = match check(&m, cli.yes) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("maru-fsck: {}: {e}", cli.device.display());
            if cli.json {
                println!(
                    "{}",
                    json!({ "device": cli.device, "error": e, "exit_code": 8 })
                );
            }
            return ExitCode::from(8);
        }
    };
    let (sum, findings) = first;
    let mut remaining = findings.clone();
    if sum.repaired {
        if m.kind() == Kind::File {
            let _ = m.sync();
        }
        match check(&m, false) {
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
