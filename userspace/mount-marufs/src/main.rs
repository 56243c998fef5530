//! mount.marufs: the mount(8) helper for marufs.
//!
//! `mount.marufs SPEC DIR [-sfnv] [-o OPTIONS]`: resolves `UUID=`/`LABEL=`
//! sources by reading the superblocks of the device-dax devices, checks the
//! device and its superblock with precise messages, loads the module when
//! needed, splits the options into mount(2) flags and marufs data, and mounts.
//!
//! Exit status (mount(8)): 0 success, 1 usage or permission, 32 mount failure.

mod opts;
mod spec;

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::Parser;
use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};
use nix::mount::{mount, MsFlags};

use spec::{DevError, Spec};

const USAGE: u8 = 1;
const FAILURE: u8 = 32;

/// Mount a marufs pool (called by mount(8) as /sbin/mount.marufs).
#[derive(Parser, Debug)]
#[command(name = "mount.marufs", version)]
struct Cli {
    /// Sloppy: ignore unknown options instead of failing.
    #[arg(short = 's')]
    sloppy: bool,
    /// Fake: do every check, but do not load the module or mount.
    #[arg(short = 'f')]
    fake: bool,
    /// Do not write /etc/mtab (accepted; marufs never writes it).
    #[arg(short = 'n')]
    no_mtab: bool,
    /// Verbose: say what is resolved, loaded and mounted.
    #[arg(short = 'v')]
    verbose: bool,
    /// Read-only (same as -o ro).
    #[arg(short = 'r')]
    read_only: bool,
    /// Read-write (same as -o rw).
    #[arg(short = 'w')]
    read_write: bool,
    /// Mount options: generic (ro, nosuid, noatime, remount...) and marufs
    /// (node=, uid=, gid=, mode=, lease_ms=; see marufs(5)).
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// Filesystem type as mount(8) passes it (marufs or marufs.SUBTYPE).
    #[arg(short = 't', value_name = "TYPE")]
    fstype: Option<String>,
    /// Mount namespace (not supported).
    #[arg(short = 'N', value_name = "NS")]
    namespace: Option<String>,
    /// /dev/daxX.Y, UUID=... or LABEL=...
    spec: String,
    /// Mount point.
    dir: PathBuf,
}

struct Fail(u8, String);

fn fail<T>(code: u8, msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail(code, msg.into()))
}

fn dev_fail(e: DevError) -> Fail {
    Fail(
        if e.is_permission() { USAGE } else { FAILURE },
        e.to_string(),
    )
}

/// True when /proc/filesystems lists marufs.
fn registered() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("marufs"))
        })
        .unwrap_or(false)
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/sbin", "/usr/sbin", "/bin", "/usr/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Loads the module: `modprobe marufs`, else the file named by $MARUFS_MODULE.
fn load_module(verbose: bool) -> Result<(), Fail> {
    let mut why = vec![];
    match find_tool("modprobe") {
        Some(mp) => {
            if verbose {
                println!("mount.marufs: {} marufs", mp.display());
            }
            match Command::new(&mp)
                .arg("marufs")
                .stdin(Stdio::null())
                .output()
            {
                Ok(o) if o.status.success() && registered() => return Ok(()),
                Ok(o) => {
                    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
                    why.push(format!(
                        "modprobe marufs failed{}",
                        if err.is_empty() {
                            format!(" ({})", o.status)
                        } else {
                            format!(": {err}")
                        }
                    ));
                }
                Err(e) => why.push(format!("cannot run {}: {e}", mp.display())),
            }
        }
        None => why.push("modprobe not found".into()),
    }
    match std::env::var_os("MARUFS_MODULE") {
        Some(ko) => {
            let ko = PathBuf::from(ko);
            if verbose {
                println!("mount.marufs: loading {} ($MARUFS_MODULE)", ko.display());
            }
            let f = File::open(&ko).map_err(|e| {
                Fail(
                    FAILURE,
                    format!("cannot load the marufs module: {}: {e}", ko.display()),
                )
            })?;
            match finit_module(&f, &CString::default(), ModuleInitFlags::empty()) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => why.push(format!("loading {} failed: {}", ko.display(), e.desc())),
            }
            if registered() {
                return Ok(());
            }
        }
        None => why.push("$MARUFS_MODULE is not set".into()),
    }
    fail(
        FAILURE,
        format!(
            "the marufs module is not loaded and cannot be loaded ({}): install it (scripts/install.sh) or set MARUFS_MODULE=/path/to/marufs.ko",
            why.join("; ")
        ),
    )
}

/// Kernel log records appended after a point: marufs explains every mount
/// error there (mount(2) itself only returns an errno).
struct Kmsg(Option<File>);

impl Kmsg {
    fn open() -> Kmsg {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open("/dev/kmsg")
            .ok()
            .and_then(|mut f| f.seek(SeekFrom::End(0)).ok().map(|_| f));
        Kmsg(f)
    }
    /// marufs messages logged since `open`.
    fn marufs_lines(&mut self) -> Vec<String> {
        let mut out = vec![];
        let Some(f) = self.0.as_mut() else {
            return out;
        };
        let mut buf = vec![0u8; 8192];
        // One record per read; EAGAIN at the end, EPIPE if records were lost.
        for _ in 0..1000 {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let msg = rec
                        .split_once(';')
                        .map(|(_, m)| m)
                        .unwrap_or(&rec)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    if msg.starts_with("marufs") {
                        out.push(msg);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc_epipe()) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

fn libc_epipe() -> i32 {
    Errno::EPIPE as i32
}

fn explain(e: Errno, node: u32, read_only: bool) -> String {
    match e {
        Errno::EPERM | Errno::EACCES => "permission denied: only root can mount marufs".into(),
        Errno::EBUSY => format!(
            "busy: node {node} of this pool is already mounted on this host, or another host is using node={node} (dmesg says which; use another node=), or the mount point is busy"
        ),
        Errno::ENODEV => "the device is not device-dax, or marufs is not registered".into(),
        Errno::EUCLEAN => "both superblocks are corrupt: run maru-fsck".into(),
        Errno::ENOSPC => "the device is smaller than the file system on it".into(),
        Errno::ESHUTDOWN | Errno::ENOTCONN if !read_only => format!(
            "node {node} cannot join the pool (is another host using node={node}?)"
        ),
        _ => e.desc().to_string(),
    }
}

fn run(cli: &Cli) -> Result<(), Fail> {
    let v = cli.verbose;
    if let Some(t) = &cli.fstype {
        if t != "marufs" && !t.starts_with("marufs.") {
            return fail(USAGE, format!("-t {t}: this is the helper for marufs"));
        }
    }
    if cli.namespace.is_some() {
        return fail(USAGE, "-N (mount namespaces) is not supported");
    }
    let mut all = cli.options.join(",");
    if cli.read_only {
        all.push_str(",ro");
    }
    if cli.read_write {
        all.push_str(",rw");
    }
    let o = opts::split(&all, cli.sloppy).map_err(|e| Fail(USAGE, e))?;
    if v && !o.ignored.is_empty() {
        println!(
            "mount.marufs: ignoring unknown options (-s): {}",
            o.ignored.join(",")
        );
    }
    if v && !o.dropped.is_empty() {
        println!("mount.marufs: not for the kernel: {}", o.dropped.join(","));
    }

    // The mount point.
    match std::fs::metadata(&cli.dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return fail(
                FAILURE,
                format!("{}: mount point is not a directory", cli.dir.display()),
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(
                FAILURE,
                format!("{}: mount point does not exist", cli.dir.display()),
            )
        }
        Err(e) => return fail(FAILURE, format!("{}: {e}", cli.dir.display())),
    }

    // The source. A remount changes flags of an existing mount: no device work.
    let spec = spec::parse_spec(&cli.spec).map_err(|e| Fail(USAGE, e))?;
    let device: PathBuf = if o.remount() {
        match &spec {
            Spec::Path(p) => p.clone(),
            _ => PathBuf::from(&cli.spec),
        }
    } else {
        let (device, info) = match &spec {
            Spec::Path(p) => {
                spec::check_dax(p).map_err(dev_fail)?;
                let info = spec::read_superblock(p).map_err(dev_fail)?;
                (p.clone(), info)
            }
            tag => {
                let cands = spec::dax_devices(Path::new("/dev"));
                let f = spec::resolve(tag, &cands, spec::read_superblock)
                    .map_err(|e| Fail(FAILURE, e))?;
                if v {
                    println!("mount.marufs: {tag} is {}", f.path.display());
                }
                (f.path, f.info)
            }
        };
        let sb = &info.sb;
        if v {
            println!(
                "mount.marufs: {}: marufs {} label '{}', {} MiB, {} host slots",
                device.display(),
                spec::uuid_str(&sb.uuid),
                spec::label_of(sb),
                sb.geo.total_size >> 20,
                sb.geo.max_hosts
            );
        }
        if info.used_backup {
            eprintln!(
                "mount.marufs: {}: the primary superblock is damaged; the backup copy will be used: run maru-fsck -y {} after unmounting everywhere",
                device.display(),
                device.display()
            );
        }
        let node = o.node.unwrap_or(0);
        if node >= sb.geo.max_hosts {
            return fail(
                USAGE,
                format!(
                    "node={node} is out of range for this pool: it has {} host slots (node=0..{})",
                    sb.geo.max_hosts,
                    sb.geo.max_hosts.saturating_sub(1)
                ),
            );
        }
        device
    };

    let data = o.data_string();
    let flags: MsFlags = o.flags;
    if v || cli.fake {
        println!(
            "mount.marufs: mount(\"{}\", \"{}\", \"marufs\", {:?}, \"{}\"){}",
            device.display(),
            cli.dir.display(),
            flags,
            data.as_deref().unwrap_or(""),
            if cli.fake { " (fake: not done)" } else { "" }
        );
    }
    if cli.fake {
        if !registered() {
            println!("mount.marufs: (fake) the marufs module would be loaded");
        }
        return Ok(());
    }
    if !o.remount() && !registered() {
        load_module(v)?;
    }
    let mut kmsg = Kmsg::open();
    match mount(
        Some(device.as_path()),
        cli.dir.as_path(),
        Some("marufs"),
        flags,
        data.as_deref(),
    ) {
        Ok(()) => {
            if v {
                println!(
                    "mount.marufs: {} mounted on {}",
                    device.display(),
                    cli.dir.display()
                );
            }
            Ok(())
        }
        Err(e) => {
            let mut msg = format!(
                "mounting {} on {} failed: {}",
                device.display(),
                cli.dir.display(),
                explain(e, o.node.unwrap_or(0), o.read_only())
            );
            for l in kmsg.marufs_lines() {
                msg.push_str("\n  kernel: ");
                msg.push_str(&l);
            }
            let code = if matches!(e, Errno::EPERM | Errno::EACCES) {
                USAGE
            } else {
                FAILURE
            };
            fail(code, msg)
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let _ = cli.no_mtab;
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("mount.marufs: {msg}");
            ExitCode::from(code)
        }
    }
}
