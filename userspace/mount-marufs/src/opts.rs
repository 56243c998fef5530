//! Splitting a mount option string (`-o a,b,c=d`) the way mount(8) helpers
//! must: generic VFS flags become mount(2) flags, userspace-only options are
//! dropped, marufs options (marufs(5)) are checked and passed as data.

use nix::mount::MsFlags;

/// The result of [`split`].
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// mount(2) flags.
    pub flags: MsFlags,
    /// Filesystem options passed to the kernel as mount(2) data (in order).
    pub data: Vec<String>,
    /// Options that only mean something to mount(8) or fstab (not passed).
    pub dropped: Vec<String>,
    /// Unknown options ignored because of `-s` (sloppy).
    pub ignored: Vec<String>,
    /// `node=` if given (the last one).
    pub node: Option<u32>,
}

impl Default for Split {
    fn default() -> Self {
        Split {
            flags: MsFlags::empty(),
            data: vec![],
            dropped: vec![],
            ignored: vec![],
            node: None,
        }
    }
}

impl Split {
    /// True for `remount`.
    pub fn remount(&self) -> bool {
        self.flags.contains(MsFlags::MS_REMOUNT)
    }
    /// True for `ro`.
    pub fn read_only(&self) -> bool {
        self.flags.contains(MsFlags::MS_RDONLY)
    }
    /// The data string for mount(2) (`None` when empty).
    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

/// Generic flags: (name, flags, set). `set == false` clears the flags.
const GENERIC: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("mand", MsFlags::MS_MANDLOCK, true),
    ("nomand", MsFlags::MS_MANDLOCK, false),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("atime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("nostrictatime", MsFlags::MS_STRICTATIME, false),
    ("lazytime", MsFlags::MS_LAZYTIME, true),
    ("nolazytime", MsFlags::MS_LAZYTIME, false),
    ("silent", MsFlags::MS_SILENT, true),
    ("loud", MsFlags::MS_SILENT, false),
    ("remount", MsFlags::MS_REMOUNT, true),
];

/// Options for mount(8)/fstab only: never passed to the kernel.
const USERSPACE: &[&str] = &[
    "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group", "nofail", "_netdev",
];

/// Propagation and bind flags: not for a filesystem mount helper.
const REFUSED: &[&str] = &[
    "bind",
    "rbind",
    "move",
    "shared",
    "rshared",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// LSM options the kernel handles for every filesystem (passed as data).
const SECURITY: &[&str] = &[
    "context",
    "fscontext",
    "defcontext",
    "rootcontext",
    "seclabel",
];

/// Parses a number as the kernel's fs_parser does: `radix` 0 is
/// `kstrtouint` base 0 (`0x` hex, a leading `0` octal, else decimal), 8 octal.
fn num(opt: &str, v: &str, radix: u32) -> Result<u32, String> {
    let (digits, base) = match radix {
        0 => {
            if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                (h, 16)
            } else if v.len() > 1 && v.starts_with('0') {
                (&v[1..], 8)
            } else {
                (v, 10)
            }
        }
        r => (v, r),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        let what = if radix == 8 {
            "an octal number"
        } else {
            "a number"
        };
        return Err(format!("{opt}={v}: expected {what}"));
    }
    u32::from_str_radix(digits, base).map_err(|_| format!("{opt}={v}: number too large"))
}

/// Checks one marufs option; `Ok(None)` when `name` is not a marufs option.
fn marufs_opt(name: &str, value: Option<&str>) -> Result<Option<Option<u32>>, String> {
    let needs = |v: Option<&str>| -> Result<String, String> {
        v.map(str::to_string)
            .ok_or_else(|| format!("option {name} needs a value ({name}=...)"))
    };
    match name {
        "node" => {
            let v = needs(value)?;
            let n = num(name, &v, 0)?;
            if n >= 64 {
                return Err(format!("node={v} is out of range: node ids are 0..63"));
            }
            Ok(Some(Some(n)))
        }
        "uid" | "gid" => {
            let v = needs(value)?;
            let n = num(name, &v, 0)?;
            if n == u32::MAX {
                return Err(format!("{name}={v} is not a valid id"));
            }
            Ok(Some(None))
        }
        "mode" => {
            let v = needs(value)?;
            let m = num(name, &v, 8)?;
            if m > 0o7777 {
                return Err(format!(
                    "mode={v} is not a permission mode (octal, at most 07777)"
                ));
            }
            Ok(Some(None))
        }
        "lease_ms" => {
            let v = needs(value)?;
            let ms = num(name, &v, 0)?;
            if !(100..=600_000).contains(&ms) {
                return Err(format!("lease_ms={v} is out of range (100..600000)"));
            }
            Ok(Some(None))
        }
        _ => Ok(None),
    }
}

/// Splits the options. `sloppy` (`-s`): unknown options are ignored instead
/// of refused.
pub fn split(opts: &str, sloppy: bool) -> Result<Split, String> {
    let mut s = Split::default();
    for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (name, value) = match o.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (o, None),
        };
        if let Some((_, f, set)) = GENERIC.iter().find(|(n, _, _)| *n == o) {
            if *set {
                s.flags.insert(*f);
            } else {
                s.flags.remove(*f);
            }
            continue;
        }
        if USERSPACE.contains(&o)
            || name.starts_with("x-")
            || name.starts_with("X-")
            || name == "comment"
            || name == "helper"
        {
            s.dropped.push(o.to_string());
            continue;
        }
        if REFUSED.contains(&o) {
            return Err(format!(
                "option {o} is not for the marufs helper: use mount(8) without -t marufs"
            ));
        }
        if SECURITY.contains(&name) {
            s.data.push(o.to_string());
            continue;
        }
        match marufs_opt(name, value)? {
            Some(node) => {
                if node.is_some() {
                    s.node = node;
                }
                s.data.push(o.to_string());
            }
            None if sloppy => s.ignored.push(o.to_string()),
            None => {
                return Err(format!(
                    "unknown option '{o}' (marufs options: node=, uid=, gid=, mode=, lease_ms=; see marufs(5))"
                ))
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_flags_and_data() {
        let s = split(
            "rw,nosuid,nodev,noatime,node=1,mode=1777,uid=1001,gid=2000",
            false,
        )
        .unwrap();
        assert_eq!(
            s.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME
        );
        assert_eq!(s.data, ["node=1", "mode=1777", "uid=1001", "gid=2000"]);
        assert_eq!(
            s.data_string().as_deref(),
            Some("node=1,mode=1777,uid=1001,gid=2000")
        );
        assert_eq!(s.node, Some(1));
        assert!(!s.read_only() && !s.remount());
    }

    #[test]
    fn last_of_a_pair_wins() {
        assert!(split("ro", false).unwrap().read_only());
        assert!(!split("ro,rw", false).unwrap().read_only());
        assert!(split("rw,ro", false).unwrap().read_only());
        assert_eq!(
            split("noexec,exec,suid,nosuid", false).unwrap().flags,
            MsFlags::MS_NOSUID
        );
        assert_eq!(split("node=1,node=2", false).unwrap().node, Some(2));
    }

    #[test]
    fn remount_ro() {
        let s = split("remount,ro", false).unwrap();
        assert!(s.remount() && s.read_only());
        assert_eq!(s.data_string(), None);
        // util-linux passes the current options along on a remount.
        let s = split("rw,relatime,node=3,lease_ms=10000,remount,ro", false).unwrap();
        assert!(s.remount() && s.read_only());
        assert_eq!(s.data, ["node=3", "lease_ms=10000"]);
    }

    #[test]
    fn userspace_options_are_dropped() {
        let s = split(
            "defaults,noauto,nofail,_netdev,x-systemd.automount,comment=x,user,node=0",
            false,
        )
        .unwrap();
        assert_eq!(s.flags, MsFlags::empty());
        assert_eq!(s.data, ["node=0"]);
        assert_eq!(s.dropped.len(), 7);
        assert_eq!(split("", false).unwrap(), Split::default());
        assert_eq!(split(",,", false).unwrap(), Split::default());
    }

    #[test]
    fn security_options_pass_through() {
        let s = split("context=system_u:object_r:tmp_t:s0,node=1", false).unwrap();
        assert_eq!(s.data, ["context=system_u:object_r:tmp_t:s0", "node=1"]);
    }

    #[test]
    fn bad_values() {
        let e = |o: &str| split(o, false).unwrap_err();
        assert_eq!(e("node=64"), "node=64 is out of range: node ids are 0..63");
        assert_eq!(e("node=x"), "node=x: expected a number");
        assert_eq!(e("node"), "option node needs a value (node=...)");
        assert_eq!(e("node=-1"), "node=-1: expected a number");
        assert_eq!(e("node=99999999999"), "node=99999999999: number too large");
        assert_eq!(e("mode=8"), "mode=8: expected an octal number");
        assert_eq!(
            e("mode=17777"),
            "mode=17777 is not a permission mode (octal, at most 07777)"
        );
        assert_eq!(e("lease_ms=5"), "lease_ms=5 is out of range (100..600000)");
        assert_eq!(
            e("lease_ms=600001"),
            "lease_ms=600001 is out of range (100..600000)"
        );
        assert!(split("lease_ms=100,lease_ms=600000,mode=0755,mode=700", false).is_ok());
        assert_eq!(e("mode=0o700"), "mode=0o700: expected an octal number");
        // As the kernel reads them: a leading 0 is octal, 0x hex.
        assert_eq!(split("node=010", false).unwrap().node, Some(8));
        assert_eq!(split("node=0x3f", false).unwrap().node, Some(63));
        assert_eq!(e("node=08"), "node=08: expected a number");
        assert_eq!(
            e("node=0x40"),
            "node=0x40 is out of range: node ids are 0..63"
        );
        assert!(e("bogus=1").starts_with("unknown option 'bogus=1'"));
        assert!(e("bind").contains("not for the marufs helper"));
        assert!(e("rshared").contains("not for the marufs helper"));
    }

    #[test]
    fn sloppy_ignores_unknown_options_only() {
        let s = split("bogus=1,node=2,weird", true).unwrap();
        assert_eq!(s.ignored, ["bogus=1", "weird"]);
        assert_eq!(s.data, ["node=2"]);
        assert!(split("node=99", true).is_err());
    }
}
