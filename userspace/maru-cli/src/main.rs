//! `maru`: the command-line client of a marufs pool.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use maru::{Error, KeyInfo, Pool, Store, StoreOptions};
use serde_json::{json, Value};

mod top;
mod util;

use util::{group, human, mode_string, table, time_utc, user};

/// Command-line client of a marufs pool: store, read, list and remove
/// KV-cache keys, and watch the pool.
///
/// Keys are named APP/KEY: an application directory of the pool and a key
/// in it (or KEY alone with --app). Exit status: 0 success, 1 error
/// (including a missing key), 2 usage error.
#[derive(Parser, Debug)]
#[command(name = "maru", version, max_term_width = 100)]
struct Cli {
    /// Mount point of the pool.
    #[arg(
        long,
        global = true,
        env = "MARU_MOUNT",
        default_value = "/mnt/maru",
        value_name = "DIR"
    )]
    mount: PathBuf,
    /// Application of KEY arguments given without "APP/".
    #[arg(long, global = true, env = "MARU_APP", value_name = "NAME")]
    app: Option<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Store FILE (or standard input: -) as key APP/KEY. An existing key is
    /// never replaced: storing it again does nothing (deduplication) and
    /// says so.
    Put {
        /// APP/KEY (or KEY with --app).
        key: String,
        /// File to store, or - for standard input.
        file: PathBuf,
        /// Permission bits of the new key, in octal (default 0666 less the umask).
        #[arg(long, value_parser = parse_mode)]
        mode: Option<u32>,
        /// Fail (exit 1) if the key exists instead of doing nothing.
        #[arg(short = 'x', long)]
        exclusive: bool,
    },
    /// Write key APP/KEY to standard output (or to FILE with -o).
    Get {
        /// APP/KEY (or KEY with --app).
        key: String,
        /// Write to FILE instead of standard output (required with --json).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List applications (with their key count and bytes), or the keys of APP.
    Ls {
        /// Application to list; without it, the pool's applications.
        app_name: Option<String>,
    },
    /// Remove keys.
    Rm {
        /// APP/KEY (or KEY with --app), one or more.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Show a key's size, owner, mode and time.
    Stat {
        /// APP/KEY (or KEY with --app).
        key: String,
    },
    /// Show pool space and usage by application.
    Df,
    /// Live view of the pool: space, keys and bytes per application, key and
    /// byte rates, hosts.
    Top {
        /// Print one refresh and exit.
        #[arg(long)]
        once: bool,
        /// Seconds between refreshes.
        #[arg(short = 'd', long, default_value_t = 1.0, value_name = "SECS", value_parser = parse_interval)]
        interval: f64,
        /// Stop after N refreshes.
        #[arg(short = 'n', long, value_name = "N")]
        count: Option<u64>,
        /// Print CSV rows (a header, then one row for the pool and one per
        /// application at every refresh).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    Man,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal mode (0000-7777)"))
}

fn parse_interval(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.05 && *v <= 86_400.0)
        .ok_or_else(|| format!("{s:?} is not a number of seconds (0.05-86400)"))
}

/// An error already reported in the exact words the command wants.
#[derive(Debug)]
struct Reported;
impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported")
    }
}
impl std::error::Error for Reported {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Reported>() => ExitCode::FAILURE,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::FAILURE;
                }
            }
            eprintln!("maru: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Splits APP/KEY (or KEY with --app); a usage error (exit 2) otherwise.
fn split_key(cli: &Cli, arg: &str) -> (String, String) {
    let (app, key) = match arg.split_once('/') {
        Some((a, k)) => (a.to_string(), k.to_string()),
        None => match &cli.app {
            Some(a) => (a.clone(), arg.to_string()),
            None => Cli::command()
                .error(
                    clap::error::ErrorKind::InvalidValue,
                    format!("{arg:?}: name keys APP/KEY, or give --app"),
                )
                .exit(),
        },
    };
    for (what, n) in [("application", &app), ("key", &key)] {
        if let Err(e) = maru::validate_name(n) {
            Cli::command()
                .error(
                    clap::error::ErrorKind::InvalidValue,
                    format!("{arg:?}: bad {what} name: {e}"),
                )
                .exit();
        }
    }
    (app, key)
}

fn no_such_key(app: &str, key: &str) -> anyhow::Error {
    eprintln!("maru: {app}/{key}: no such key");
    Reported.into()
}

/// Opens APP without creating it; `None` if it does not exist.
fn open_existing(cli: &Cli, app: &str) -> Result<Option<Store>> {
    let opts = StoreOptions::default().create(false).cache_capacity(0);
    match Store::open_with(&cli.mount, app, &opts) {
        Ok(s) => Ok(Some(s)),
        Err(Error::NoApp(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn print_json(v: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn key_json(app: &str, k: &KeyInfo) -> Value {
    json!({
        "app": app,
        "name": k.name,
        "key": format!("{app}/{}", k.name),
        "size": k.size,
        "allocated": k.allocated,
        "mode": format!("{:04o}", k.permissions()),
        "uid": k.uid,
        "gid": k.gid,
        "owner": user(k.uid),
        "group": group(k.gid),
        "mtime_ns": k.mtime_ns,
        "mtime": time_utc(k.mtime_ns),
        "ino": k.ino,
    })
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.cmd {
        Cmd::Put {
            key,
            file,
            mode,
            exclusive,
        } => put(cli, key, file, *mode, *exclusive),
        Cmd::Get { key, output } => get(cli, key, output.as_deref()),
        Cmd::Ls { app_name } => match app_name {
            Some(a) => ls_app(cli, a),
            None => ls_root(cli),
        },
        Cmd::Rm { keys } => rm(cli, keys),
        Cmd::Stat { key } => stat(cli, key),
        Cmd::Df => df(cli),
        Cmd::Top {
            once,
            interval,
            count,
            csv,
        } => {
            let format = if cli.json {
                top::Format::Json
            } else if *csv {
                top::Format::Csv
            } else {
                top::Format::Text
            };
            let count = if *once { Some(1) } else { *count };
            top::run(&cli.mount, *interval, count, format)
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "maru", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
    }
}

fn put(cli: &Cli, arg: &str, file: &Path, mode: Option<u32>, exclusive: bool) -> Result<()> {
    let (app, key) = split_key(cli, arg);
    let mut opts = StoreOptions::default().cache_capacity(0);
    if let Some(m) = mode {
        opts = opts.key_mode(m);
    }
    let store = Store::open_with(&cli.mount, &app, &opts)?;
    // Input of unknown size (standard input, a pipe, a device): read it all,
    // then store it.
    let read_all = |r: &mut dyn Read, what: &str| -> Result<(bool, u64)> {
        let mut data = Vec::new();
        r.read_to_end(&mut data)
            .with_context(|| format!("read {what}"))?;
        Ok((store.store_bytes(&key, &data)?, data.len() as u64))
    };
    let (stored, size) = if file == Path::new("-") {
        read_all(&mut std::io::stdin().lock(), "standard input")?
    } else {
        let mut f =
            std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
        let meta = f
            .metadata()
            .with_context(|| format!("stat {}", file.display()))?;
        if !meta.is_file() {
            read_all(&mut f, &file.display().to_string())?
        } else {
            match store.alloc(&key, meta.len()) {
                Ok(mut h) => {
                    // Straight into pool memory: no intermediate buffer.
                    f.read_exact(&mut h)
                        .with_context(|| format!("read {}", file.display()))?;
                    store.store(h)?;
                    (true, meta.len())
                }
                Err(Error::Exists(_)) => (false, meta.len()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    if !stored && exclusive {
        eprintln!("maru: {app}/{key}: key exists");
        return Err(Reported.into());
    }
    if cli.json {
        print_json(&json!({
            "key": format!("{app}/{key}"),
            "app": app,
            "name": key,
            "stored": stored,
            "size": size,
        }))?;
    } else if !stored {
        eprintln!("maru: {app}/{key}: key exists, not stored (unchanged)");
    }
    Ok(())
}

fn get(cli: &Cli, arg: &str, output: Option<&Path>) -> Result<()> {
    let (app, key) = split_key(cli, arg);
    if cli.json && output.is_none() {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "get --json needs -o FILE (the key's bytes and the JSON cannot share standard output)",
            )
            .exit();
    }
    let Some(store) = open_existing(cli, &app)? else {
        return Err(no_such_key(&app, &key));
    };
    let Some(m) = store.retrieve(&key)? else {
        return Err(no_such_key(&app, &key));
    };
    match output {
        Some(p) => {
            let mut f =
                std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?;
            f.write_all(&m)
                .with_context(|| format!("write {}", p.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&m)?;
            out.flush()?;
        }
    }
    if cli.json {
        print_json(&json!({
            "key": format!("{app}/{key}"),
            "size": m.len(),
            "output": output.map(|p| p.display().to_string()),
        }))?;
    }
    Ok(())
}

/// An application's usage as JSON (`ls` and `df`).
fn app_usage_json(a: &maru::AppUsage) -> Value {
    json!({
        "app": a.name,
        "keys": a.keys,
        "bytes": a.bytes,
        "allocated": a.allocated,
        "quota": a.policy.map(policy_json),
    })
}

/// An application's recorded eviction policy as JSON.
pub(crate) fn policy_json(p: maru::EvictionPolicy) -> Value {
    json!({
        "bytes": p.quota,
        "high_pct": p.high_pct,
        "low_pct": p.low_pct,
    })
}

/// An application's quota and how full it is, for a table cell:
/// `64.0 GiB 91% (95/85)` (used share, then the watermarks), or `-`.
pub(crate) fn quota_cell(p: Option<maru::EvictionPolicy>, allocated: Option<u64>) -> String {
    match p.and_then(|p| p.quota.map(|q| (p, q))) {
        None => "-".into(),
        Some((p, q)) => {
            let used = match allocated {
                Some(a) if q > 0 => format!(" {:.0}%", 100.0 * a as f64 / q as f64),
                _ => String::new(),
            };
            format!("{}{used} ({}/{})", human(q), p.high_pct, p.low_pct)
        }
    }
}

fn ls_root(cli: &Cli) -> Result<()> {
    let pool = Pool::open(&cli.mount)?;
    let apps = pool.usage_by_app()?;
    if cli.json {
        let v: Vec<Value> = apps
            .iter()
            .map(|a| {
                let mut v = app_usage_json(a);
                v["mode"] = json!(format!("{:04o}", a.mode & 0o7777));
                v["uid"] = json!(a.uid);
                v["gid"] = json!(a.gid);
                v["owner"] = json!(user(a.uid));
                v["group"] = json!(group(a.gid));
                v["mtime_ns"] = json!(a.mtime_ns);
                v["mtime"] = json!(time_utc(a.mtime_ns));
                v
            })
            .collect();
        return print_json(&Value::Array(v));
    }
    let mut rows = vec![[
        "MODE",
        "OWNER",
        "GROUP",
        "KEYS",
        "BYTES",
        "ALLOCATED",
        "MTIME",
        "APP",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for a in &apps {
        rows.push(vec![
            mode_string(a.mode),
            user(a.uid),
            group(a.gid),
            a.keys.map_or("-".into(), |k| k.to_string()),
            a.bytes.map_or("-".into(), |b| b.to_string()),
            a.allocated.map_or("-".into(), human),
            time_utc(a.mtime_ns),
            a.name.clone(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

fn ls_app(cli: &Cli, app: &str) -> Result<()> {
    if let Err(e) = maru::validate_name(app) {
        Cli::command()
            .error(
                clap::error::ErrorKind::InvalidValue,
                format!("{app:?}: {e}"),
            )
            .exit();
    }
    let pool = Pool::open(&cli.mount)?;
    let keys = match pool.list(app) {
        Ok(k) => k,
        Err(Error::NoApp(_)) => {
            eprintln!("maru: {app}: no such application");
            return Err(Reported.into());
        }
        Err(e) => return Err(e.into()),
    };
    if cli.json {
        return print_json(&Value::Array(
            keys.iter().map(|k| key_json(app, k)).collect(),
        ));
    }
    let mut rows = vec![["MODE", "OWNER", "GROUP", "SIZE", "MTIME", "KEY"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for k in &keys {
        rows.push(vec![
            mode_string(k.mode),
            user(k.uid),
            group(k.gid),
            k.size.to_string(),
            time_utc(k.mtime_ns),
            k.name.clone(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

fn rm(cli: &Cli, args: &[String]) -> Result<()> {
    let mut removed = Vec::new();
    let mut missing = Vec::new();
    let mut failed = Vec::new();
    for arg in args {
        let (app, key) = split_key(cli, arg);
        let name = format!("{app}/{key}");
        let r = match open_existing(cli, &app) {
            Ok(Some(s)) => s.delete(&key).map_err(anyhow::Error::from),
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        match r {
            Ok(true) => removed.push(name),
            Ok(false) => {
                eprintln!("maru: {name}: no such key");
                missing.push(name);
            }
            Err(e) => {
                eprintln!("maru: {name}: {e:#}");
                failed.push(name);
            }
        }
    }
    if cli.json {
        print_json(&json!({ "removed": removed, "missing": missing, "failed": failed }))?;
    }
    if missing.is_empty() && failed.is_empty() {
        Ok(())
    } else {
        Err(Reported.into())
    }
}

fn stat(cli: &Cli, arg: &str) -> Result<()> {
    let (app, key) = split_key(cli, arg);
    let Some(store) = open_existing(cli, &app)? else {
        return Err(no_such_key(&app, &key));
    };
    let Some(k) = store.stat(&key)? else {
        return Err(no_such_key(&app, &key));
    };
    if cli.json {
        return print_json(&key_json(&app, &k));
    }
    println!("key:       {app}/{key}");
    println!("size:      {} ({})", k.size, human(k.size));
    println!("allocated: {} ({})", k.allocated, human(k.allocated));
    println!(
        "mode:      {:04o} ({})",
        k.permissions(),
        mode_string(k.mode)
    );
    println!("owner:     {} ({})", user(k.uid), k.uid);
    println!("group:     {} ({})", group(k.gid), k.gid);
    println!("mtime:     {}", time_utc(k.mtime_ns));
    println!("ino:       {}", k.ino);
    Ok(())
}

fn df(cli: &Cli) -> Result<()> {
    let pool = Pool::open(&cli.mount)?;
    let u = pool.usage()?;
    let apps = pool.usage_by_app()?;
    if cli.json {
        let v: Vec<Value> = apps.iter().map(app_usage_json).collect();
        return print_json(&json!({
            "mount": cli.mount.display().to_string(),
            "marufs": u.marufs,
            "total": u.total,
            "used": u.used,
            "free": u.free,
            "available": u.available,
            "block_size": u.block_size,
            "entries_total": u.entries_total,
            "entries_free": u.entries_free,
            "apps": v,
        }));
    }
    let pct = |x: u64| {
        if u.total > 0 {
            format!("{:.1}%", 100.0 * x as f64 / u.total as f64)
        } else {
            "-".into()
        }
    };
    println!(
        "{}{}: total {}, used {} ({}), free {}; {} units; {} of {} key entries used",
        cli.mount.display(),
        if u.marufs { "" } else { " (not marufs)" },
        human(u.total),
        human(u.used),
        pct(u.used),
        human(u.free),
        human(u.block_size),
        u.entries_total.saturating_sub(u.entries_free),
        u.entries_total,
    );
    let mut rows = vec![[
        "APP",
        "KEYS",
        "BYTES",
        "ALLOCATED",
        "SHARE",
        "QUOTA USED (HIGH/LOW)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for a in &apps {
        rows.push(vec![
            a.name.clone(),
            a.keys.map_or("-".into(), |k| k.to_string()),
            a.bytes.map_or("-".into(), human),
            a.allocated.map_or("-".into(), human),
            a.allocated.map_or("-".into(), pct),
            quota_cell(a.policy, a.allocated),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o1777"), Ok(0o1777));
        assert!(parse_mode("800").is_err());
        assert!(parse_mode("17777").is_err());
    }
}
