//! `maru top`: a live view of a pool, refreshed in place.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use maru::{Pool, PoolUsage};
use serde_json::{json, Value};

use crate::util::{human, human_rate, table, time_utc};

/// One host of the pool as `top` shows it.
#[derive(Clone, Debug)]
pub struct HostRow {
    /// Node id (`node=` of its mount).
    pub node: u32,
    /// Slot state (`active`, `left`, `fenced`...).
    pub state: String,
    /// Verdict on its heartbeat (`live`, `late`, `expired`, `?`).
    pub liveness: String,
    /// Time since its heartbeat was last seen to change, on this host's
    /// clock (`None`: not known yet).
    pub heartbeat_age_ms: Option<u64>,
    /// Join count of the node.
    pub epoch: u64,
    /// Its lease.
    pub lease_ms: u64,
    /// 2 MiB units allocated in the chunks it owns.
    pub units_used: u64,
}

/// The per-host part of `top`: the pool's host table (states, heartbeat
/// ages). Stateful because heartbeat ages come from successive reads.
///
/// Reads the host table of the device mounted at the mount point (found in
/// `/proc/self/mountinfo`) with `marufs_core::report`, read-only; needs read
/// and write permission on the device (root). Heartbeat ages come from a
/// `HeartbeatWatch` fed with every read (the reader's clock).
pub struct HostsHook {
    mount: std::path::PathBuf,
    watch: marufs_core::report::HeartbeatWatch,
    start: std::time::Instant,
}

/// The device mounted at `mount` (a marufs mount), from mountinfo.
fn source_of(mount: &Path) -> Option<std::path::PathBuf> {
    let want = std::fs::canonicalize(mount).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().rev().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        let mut r = right.split_whitespace();
        let (fstype, source) = (r.next()?, r.next()?);
        (fstype == "marufs" && Path::new(point) == want).then(|| source.into())
    })
}

impl HostsHook {
    /// A hook for the pool mounted at `mount`.
    pub fn new(mount: &Path) -> Self {
        Self {
            mount: mount.to_path_buf(),
            watch: marufs_core::report::HeartbeatWatch::new(),
            start: std::time::Instant::now(),
        }
    }

    /// The hosts now, or `None` when the host table cannot be read (not a
    /// marufs mount, or no permission on the device).
    pub fn read(&mut self) -> Option<Vec<HostRow>> {
        use marufs_core::report::{report, HostState, Liveness, PoolReport};
        let dev = source_of(&self.mount)?;
        // Other hosts write the table: drop our cached lines before each read.
        let m = marufs_media::MapMedia::open(&dev)
            .ok()?
            .with_cache_flush(true);
        let sb = marufs_core::fs::mount_check(&m).ok()?.sb;
        let mut r = Box::<PoolReport>::default();
        report(&m, &sb, &mut r).ok()?;
        let now = self.start.elapsed().as_nanos() as u64 + 1;
        self.watch.observe(&r, now);
        let rows = r
            .slots()
            .iter()
            .enumerate()
            .filter(|(_, h)| h.state != HostState::Free)
            .map(|(i, h)| HostRow {
                node: i as u32,
                state: h.state.name().to_string(),
                liveness: match self.watch.liveness(&r, i as u32, now) {
                    Liveness::Live => "live",
                    Liveness::Late => "late",
                    Liveness::Expired => "expired",
                    Liveness::Unknown => "?",
                    Liveness::NotActive => "-",
                }
                .to_string(),
                heartbeat_age_ms: self.watch.silent_ns(i as u32, now).map(|n| n / 1_000_000),
                epoch: h.epoch,
                lease_ms: h.lease_ns / 1_000_000,
                units_used: h.units_used,
            })
            .collect();
        Some(rows)
    }
}

#[derive(Clone)]
struct AppSample {
    name: String,
    keys: Option<u64>,
    bytes: Option<u64>,
    allocated: Option<u64>,
    /// The eviction policy its stores record (quota and watermarks).
    policy: Option<maru::EvictionPolicy>,
    /// ino -> size of every key (when the directory is readable).
    inos: Option<HashMap<u64, u64>>,
}

struct Sample {
    at: Instant,
    wall_ns: i64,
    usage: PoolUsage,
    apps: Vec<AppSample>,
    hosts: Option<Vec<HostRow>>,
}

#[derive(Clone, Copy, Default)]
struct Rates {
    created: f64,
    deleted: f64,
    bytes_in: f64,
    bytes_out: f64,
}

impl Rates {
    fn add(&mut self, o: &Rates) {
        self.created += o.created;
        self.deleted += o.deleted;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
    fn json(&self) -> Value {
        json!({
            "created_per_s": self.created,
            "deleted_per_s": self.deleted,
            "bytes_in_per_s": self.bytes_in,
            "bytes_out_per_s": self.bytes_out,
        })
    }
}

fn sample(pool: &Pool, hosts: &mut HostsHook) -> Result<Sample> {
    let usage = pool.usage()?;
    let mut apps = Vec::new();
    for a in pool.apps()? {
        let mut s = AppSample {
            name: a.name.clone(),
            keys: a.keys,
            bytes: None,
            allocated: None,
            policy: pool.app_policy(&a.name).unwrap_or(None),
            inos: None,
        };
        match pool.list(&a.name) {
            Ok(keys) => {
                s.keys = Some(keys.len() as u64);
                s.bytes = Some(keys.iter().map(|k| k.size).sum());
                s.allocated = Some(keys.iter().map(|k| k.allocated).sum());
                s.inos = Some(keys.iter().map(|k| (k.ino, k.size)).collect());
            }
            // Unreadable (permissions) or removed meanwhile: counts only.
            Err(e) if e.is_permission_denied() || e.errno() == Some(libc_enoent()) => {}
            Err(e) => return Err(e.into()),
        }
        apps.push(s);
    }
    Ok(Sample {
        at: Instant::now(),
        wall_ns: crate::util::now_ns(),
        usage,
        apps,
        hosts: hosts.read(),
    })
}

fn libc_enoent() -> i32 {
    2
}

/// Per-app rates between two samples (`None`: not comparable).
fn rates(prev: &Sample, cur: &Sample, app: &AppSample) -> Option<Rates> {
    let dt = cur.at.duration_since(prev.at).as_secs_f64();
    if dt <= 0.0 {
        return None;
    }
    let new = app.inos.as_ref()?;
    let old = match prev.apps.iter().find(|a| a.name == app.name) {
        Some(a) => a.inos.as_ref()?,
        // A new application: all its keys were created.
        None => &HashMap::new(),
    };
    let mut r = Rates::default();
    for (ino, size) in new {
        if !old.contains_key(ino) {
            r.created += 1.0;
            r.bytes_in += *size as f64;
        }
    }
    for (ino, size) in old {
        if !new.contains_key(ino) {
            r.deleted += 1.0;
            r.bytes_out += *size as f64;
        }
    }
    r.created /= dt;
    r.deleted /= dt;
    r.bytes_in /= dt;
    r.bytes_out /= dt;
    Some(r)
}

/// Rates of applications that disappeared between two samples.
fn vanished(prev: &Sample, cur: &Sample) -> Rates {
    let dt = cur.at.duration_since(prev.at).as_secs_f64().max(1e-9);
    let mut r = Rates::default();
    for a in &prev.apps {
        if cur.apps.iter().any(|c| c.name == a.name) {
            continue;
        }
        if let Some(inos) = &a.inos {
            r.deleted += inos.len() as f64 / dt;
            r.bytes_out += inos.values().sum::<u64>() as f64 / dt;
        }
    }
    r
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |x| x.to_string())
}

fn opt_h(v: Option<u64>) -> String {
    v.map_or("-".into(), human)
}

fn rate_cell(r: Option<&Rates>, f: impl Fn(&Rates) -> String) -> String {
    r.map_or("-".into(), f)
}

struct Frame {
    json: Value,
    text: String,
    csv: Vec<String>,
}

fn frame(mount: &Path, interval: f64, prev: Option<&Sample>, cur: &Sample) -> Frame {
    let u = &cur.usage;
    let per_app: Vec<Option<Rates>> = cur
        .apps
        .iter()
        .map(|a| prev.and_then(|p| rates(p, cur, a)))
        .collect();
    let total = prev.map(|p| {
        let mut t = vanished(p, cur);
        for r in per_app.iter().flatten() {
            t.add(r);
        }
        t
    });
    let pct = if u.total > 0 {
        100.0 * u.used as f64 / u.total as f64
    } else {
        0.0
    };
    // Text.
    let mut text = format!(
        "maru top - {} ({})  {}  every {interval}s\n",
        mount.display(),
        if u.marufs { "marufs" } else { "not marufs" },
        time_utc(cur.wall_ns),
    );
    text.push_str(&format!(
        "pool: total {}  used {} ({pct:.1}%)  free {}  entries {}/{} used\n",
        human(u.total),
        human(u.used),
        human(u.free),
        u.entries_total.saturating_sub(u.entries_free),
        u.entries_total,
    ));
    match &total {
        Some(t) => text.push_str(&format!(
            "ops:  created {:.1} keys/s  deleted {:.1} keys/s  in {}  out {}\n",
            t.created,
            t.deleted,
            human_rate(t.bytes_in),
            human_rate(t.bytes_out)
        )),
        None => text.push_str("ops:  (rates from the next refresh)\n"),
    }
    text.push('\n');
    let mut rows = vec![[
        "APP",
        "KEYS",
        "BYTES",
        "ALLOC",
        "QUOTA",
        "CREATED/S",
        "DELETED/S",
        "IN/S",
        "OUT/S",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for (a, r) in cur.apps.iter().zip(&per_app) {
        rows.push(vec![
            a.name.clone(),
            opt(a.keys),
            opt_h(a.bytes),
            opt_h(a.allocated),
            crate::quota_cell(a.policy, a.allocated),
            rate_cell(r.as_ref(), |r| format!("{:.1}", r.created)),
            rate_cell(r.as_ref(), |r| format!("{:.1}", r.deleted)),
            rate_cell(r.as_ref(), |r| human_rate(r.bytes_in)),
            rate_cell(r.as_ref(), |r| human_rate(r.bytes_out)),
        ]);
    }
    text.push_str(&table(&rows));
    text.push('\n');
    match &cur.hosts {
        None => text.push_str("hosts: n/a\n"),
        Some(hosts) => {
            let mut rows = vec![[
                "NODE",
                "STATE",
                "LIVENESS",
                "HEARTBEAT AGE",
                "EPOCH",
                "LEASE",
                "USED",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()];
            for h in hosts {
                rows.push(vec![
                    h.node.to_string(),
                    h.state.clone(),
                    h.liveness.clone(),
                    h.heartbeat_age_ms
                        .map_or("-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0)),
                    h.epoch.to_string(),
                    format!("{}ms", h.lease_ms),
                    human(h.units_used.saturating_mul(2 << 20)),
                ]);
            }
            text.push_str(&table(&rows));
        }
    }
    // JSON.
    let apps: Vec<Value> = cur
        .apps
        .iter()
        .zip(&per_app)
        .map(|(a, r)| {
            json!({
                "name": a.name,
                "keys": a.keys,
                "bytes": a.bytes,
                "allocated": a.allocated,
                "quota": a.policy.map(crate::policy_json),
                "rates": r.as_ref().map(Rates::json),
            })
        })
        .collect();
    let hosts = cur.hosts.as_ref().map(|hs| {
        hs.iter()
            .map(|h| {
                json!({
                    "node": h.node,
                    "state": h.state,
                    "liveness": h.liveness,
                    "heartbeat_age_ms": h.heartbeat_age_ms,
                    "epoch": h.epoch,
                    "lease_ms": h.lease_ms,
                    "units_used": h.units_used,
                })
            })
            .collect::<Vec<_>>()
    });
    let json = json!({
        "time_ns": cur.wall_ns,
        "time": time_utc(cur.wall_ns),
        "mount": mount.display().to_string(),
        "marufs": u.marufs,
        "total": u.total,
        "used": u.used,
        "free": u.free,
        "entries_total": u.entries_total,
        "entries_free": u.entries_free,
        "rates": total.as_ref().map(Rates::json),
        "apps": apps,
        "hosts": hosts,
    });
    // CSV rows.
    let t = time_utc(cur.wall_ns);
    let f = |x: f64| format!("{x:.3}");
    let rate_cols = |r: Option<&Rates>| match r {
        Some(r) => format!(
            "{},{},{},{}",
            f(r.created),
            f(r.deleted),
            f(r.bytes_in),
            f(r.bytes_out)
        ),
        None => ",,,".into(),
    };
    let mut csv = vec![format!(
        "{t},pool,,{},{},{},{},{},{},{}",
        cur.apps.iter().filter_map(|a| a.keys).sum::<u64>(),
        cur.apps.iter().filter_map(|a| a.bytes).sum::<u64>(),
        u.used,
        u.total,
        u.used,
        u.free,
        rate_cols(total.as_ref())
    )];
    for (a, r) in cur.apps.iter().zip(&per_app) {
        let o = |v: Option<u64>| v.map_or(String::new(), |x| x.to_string());
        csv.push(format!(
            "{t},app,{},{},{},{},,,,{}",
            csv_field(&a.name),
            o(a.keys),
            o(a.bytes),
            o(a.allocated),
            rate_cols(r.as_ref())
        ));
    }
    Frame { json, text, csv }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Output format of `top`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
}

/// CSV header of `top --csv`.
pub const CSV_HEADER: &str = "time,scope,name,keys,bytes,allocated,total,used,free,created_per_s,deleted_per_s,bytes_in_per_s,bytes_out_per_s";

/// Runs `top`: `count` refreshes (`None`: until interrupted), `interval`
/// seconds apart.
pub fn run(mount: &Path, interval: f64, count: Option<u64>, format: Format) -> Result<()> {
    let pool = Pool::open(mount)?;
    let mut hosts = HostsHook::new(mount);
    let mut out = std::io::stdout().lock();
    let tty = out.is_terminal();
    let mut prev: Option<Sample> = None;
    let mut n = 0u64;
    if format == Format::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    loop {
        let cur = sample(&pool, &mut hosts)?;
        let f = frame(mount, interval, prev.as_ref(), &cur);
        match format {
            Format::Json => writeln!(out, "{}", f.json)?,
            Format::Csv => {
                for l in &f.csv {
                    writeln!(out, "{l}")?;
                }
            }
            Format::Text if tty => {
                // Home, clear, draw: refresh in place.
                write!(out, "\x1b[H\x1b[2J{}", f.text)?;
            }
            Format::Text => {
                if n > 0 {
                    writeln!(out)?;
                }
                write!(out, "{}", f.text)?;
            }
        }
        out.flush()?;
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        prev = Some(cur);
        std::thread::sleep(Duration::from_secs_f64(interval));
    }
}
