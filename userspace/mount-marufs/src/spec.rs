//! The mount source: parsing `UUID=`/`LABEL=`/path, checking that a path is a
//! device-dax character device holding a usable marufs superblock, and
//! finding the device of a UUID or label.

use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use marufs_core::fs::{mount_check, MountInfo};
use marufs_core::layout::{Superblock, INCOMPAT_KNOWN, VERSION};
use marufs_core::Error as CoreError;
use marufs_media::{MapMedia, OpenError};

/// A parsed SPEC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// A device path.
    Path(PathBuf),
    /// `UUID=...`.
    Uuid([u8; 16]),
    /// `LABEL=...`.
    Label(String),
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Path(p) => write!(f, "{}", p.display()),
            Spec::Uuid(u) => write!(f, "UUID={}", uuid_str(u)),
            Spec::Label(l) => write!(f, "LABEL={l}"),
        }
    }
}

pub use marufs_media::uuid_str;

/// Parses a UUID: 32 hex digits, dashes anywhere, any case.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut u = [0u8; 16];
    for (i, b) in u.iter_mut().enumerate() {
        let pair = std::str::from_utf8(&hex[2 * i..2 * i + 2]).ok()?;
        *b = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(u)
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(x) = v.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return x;
        }
    }
    v
}

/// The label stored in a superblock (up to the first NUL).
pub fn label_of(sb: &Superblock) -> String {
    let n = sb
        .label
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(sb.label.len());
    String::from_utf8_lossy(&sb.label[..n]).into_owned()
}

/// Parses SPEC. `UUID=`/`LABEL=` may also be written in lower case
/// (`uuid=`, `label=`): util-linux's mount(8) resolves the upper-case tags
/// itself through libblkid, which does not know marufs, and passes other
/// sources to the helper untouched.
pub fn parse_spec(s: &str) -> Result<Spec, String> {
    if s.is_empty() {
        return Err("empty source".into());
    }
    if let Some((tag, v)) = s.split_once('=') {
        let v = unquote(v);
        match tag {
            "UUID" | "uuid" => {
                return parse_uuid(v).map(Spec::Uuid).ok_or_else(|| {
                    format!("{s}: not a UUID (32 hex digits, as mkfs.marufs prints it)")
                })
            }
            "LABEL" | "label" => {
                if v.is_empty() || v.len() > 63 {
                    return Err(format!("{s}: a marufs label is 1 to 63 bytes"));
                }
                return Ok(Spec::Label(v.to_string()));
            }
            "PARTUUID" | "PARTLABEL" | "ID" => {
                return Err(format!(
                    "{s}: marufs lives on device-dax devices, which have no partitions: use UUID=, LABEL= or /dev/daxX.Y"
                ))
            }
            _ => {}
        }
    }
    Ok(Spec::Path(PathBuf::from(s)))
}

/// Why a source cannot be mounted; `Display` is the message.
#[derive(Debug)]
pub enum DevError {
    /// Does not exist.
    NotFound(PathBuf),
    /// Exists but is not a device-dax character device (what it is).
    NotDax(PathBuf, String),
    /// Cannot be opened or mapped.
    Open(OpenError),
    /// No marufs superblock.
    NotFormatted(PathBuf),
    /// Format version not supported.
    BadVersion(PathBuf, u32),
    /// Unknown incompatible features.
    Features(PathBuf, u64),
    /// Smaller than the filesystem on it.
    TooSmall(PathBuf, u64),
    /// Both superblocks corrupt.
    Corrupt(PathBuf),
    /// Other read failure.
    Read(PathBuf, CoreError),
}

impl DevError {
    /// True for a permission problem (exit status 1 rather than 32).
    pub fn is_permission(&self) -> bool {
        matches!(self, DevError::Open(OpenError::Permission(_)))
    }
}

impl fmt::Display for DevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevError::NotFound(p) => write!(f, "{}: no such device", p.display()),
            DevError::NotDax(p, what) => write!(
                f,
                "{}: {what}, not a device-dax character device: marufs mounts /dev/daxX.Y",
                p.display()
            ),
            DevError::Open(OpenError::Permission(p)) => write!(
                f,
                "{}: permission denied (reading the superblock and mounting need root)",
                p.display()
            ),
            DevError::Open(e) => write!(f, "{e}"),
            DevError::NotFormatted(p) => write!(
                f,
                "{}: no marufs file system on it: run mkfs.marufs {}",
                p.display(),
                p.display()
            ),
            DevError::BadVersion(p, v) => write!(
                f,
                "{}: marufs format version {v} is not supported (this mount.marufs knows version {VERSION}): use a newer marufs",
                p.display()
            ),
            DevError::Features(p, bits) => write!(
                f,
                "{}: unsupported incompatible features {bits:#x} (known: {INCOMPAT_KNOWN:#x}): use a newer marufs",
                p.display()
            ),
            DevError::TooSmall(p, size) => write!(
                f,
                "{}: the device ({size} bytes) is smaller than the file system on it: wrong device or region?",
                p.display()
            ),
            DevError::Corrupt(p) => write!(
                f,
                "{}: both superblocks are corrupt: run maru-fsck {}",
                p.display(),
                p.display()
            ),
            DevError::Read(p, e) => write!(
                f,
                "{}: cannot read the superblock: {e} (errno {})",
                p.display(),
                e.errno()
            ),
        }
    }
}

/// What kind of file a path is, for messages.
fn describe(md: &std::fs::Metadata) -> String {
    let ft = md.file_type();
    if ft.is_dir() {
        "is a directory".into()
    } else if ft.is_file() {
        "is a regular file (an image can be checked with maru-fsck, not mounted)".into()
    } else if ft.is_block_device() {
        "is a block device (for pmem, make the namespace devdax: ndctl create-namespace -f -e NAMESPACE -m devdax)".into()
    } else if ft.is_fifo() {
        "is a FIFO".into()
    } else if ft.is_socket() {
        "is a socket".into()
    } else if ft.is_char_device() {
        let (ma, mi) = dev_numbers(md.rdev());
        let sub = std::fs::read_link(format!("/sys/dev/char/{ma}:{mi}/subsystem"))
            .ok()
            .and_then(|s| s.file_name().map(|n| n.to_string_lossy().into_owned()));
        match sub {
            Some(s) => format!("is a character device ({ma}:{mi}, subsystem {s})"),
            None => format!("is a character device ({ma}:{mi})"),
        }
    } else {
        "is not a device".into()
    }
}

fn dev_numbers(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

/// True when `md` is a character device of the dax subsystem.
fn is_dax(md: &std::fs::Metadata) -> bool {
    if !md.file_type().is_char_device() {
        return false;
    }
    let (ma, mi) = dev_numbers(md.rdev());
    std::fs::read_link(format!("/sys/dev/char/{ma}:{mi}/subsystem"))
        .ok()
        .and_then(|s| s.file_name().map(|n| n == "dax"))
        .unwrap_or(false)
}

/// Checks that `path` is a device-dax character device.
pub fn check_dax(path: &Path) -> Result<(), DevError> {
    let md = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DevError::NotFound(path.to_path_buf()))
        }
        Err(e) => return Err(DevError::Open(OpenError::Io(path.to_path_buf(), e))),
    };
    if is_dax(&md) {
        Ok(())
    } else {
        Err(DevError::NotDax(path.to_path_buf(), describe(&md)))
    }
}

/// Reads and validates the superblock of a device or image file (primary,
/// else backup), with the kernel's own check.
pub fn read_superblock(path: &Path) -> Result<MountInfo, DevError> {
    let m = MapMedia::open(path).map_err(|e| match e {
        OpenError::NotFound(p) => DevError::NotFound(p),
        e => DevError::Open(e),
    })?;
    let p = path.to_path_buf();
    mount_check(&m).map_err(|e| match e {
        CoreError::NotFormatted => DevError::NotFormatted(p),
        CoreError::BadVersion(v) => DevError::BadVersion(p, v),
        CoreError::IncompatibleFeatures(f) => DevError::Features(p, f),
        CoreError::TooSmall => {
            use marufs_core::Media;
            DevError::TooSmall(p, m.size())
        }
        CoreError::Corrupt => DevError::Corrupt(p),
        e => DevError::Read(p, e),
    })
}

/// The device-dax devices under `/dev` (sorted).
pub fn dax_devices(dev: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dev)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("dax"))
                .map(|e| e.path())
                .filter(|p| std::fs::metadata(p).map(|m| is_dax(&m)).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A device found for a tag.
#[derive(Debug)]
pub struct Found {
    /// The device.
    pub path: PathBuf,
    /// Its superblock check.
    pub info: MountInfo,
}

/// Finds the one candidate whose superblock matches a `UUID=`/`LABEL=` spec.
/// `probe` reads a candidate's superblock ([`read_superblock`] in real use).
pub fn resolve(
    spec: &Spec,
    candidates: &[PathBuf],
    probe: impl Fn(&Path) -> Result<MountInfo, DevError>,
) -> Result<Found, String> {
    let mut hits = vec![];
    let mut unreadable = vec![];
    for c in candidates {
        match probe(c) {
            Ok(info) => {
                let ok = match spec {
                    Spec::Uuid(u) => info.sb.uuid == *u,
                    Spec::Label(l) => label_of(&info.sb) == *l,
                    Spec::Path(_) => false,
                };
                if ok {
                    hits.push(Found {
                        path: c.clone(),
                        info,
                    });
                }
            }
            Err(DevError::NotFormatted(_)) => {}
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => {
            let mut msg = if candidates.is_empty() {
                format!("no marufs device with {spec}: there is no device-dax device (/dev/daxX.Y)")
            } else {
                let names: Vec<String> =
                    candidates.iter().map(|p| p.display().to_string()).collect();
                format!(
                    "no marufs device with {spec} (looked at {})",
                    names.join(", ")
                )
            };
            for u in unreadable {
                msg.push_str("\n  not readable: ");
                msg.push_str(&u);
            }
            Err(msg)
        }
        _ => {
            let names: Vec<String> = hits.iter().map(|h| h.path.display().to_string()).collect();
            Err(format!(
                "{spec} matches several devices: {}: mount one by its path",
                names.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marufs_core::format::{format, FormatOptions};
    use marufs_core::layout::{SB_BACKUP_OFF, UNIT};
    use marufs_core::Media;

    const U: &str = "0123abcd-4567-89ef-0123-456789abcdef";

    #[test]
    fn specs() {
        let u = parse_uuid(U).unwrap();
        assert_eq!(uuid_str(&u), U);
        assert_eq!(parse_spec(&format!("UUID={U}")), Ok(Spec::Uuid(u)));
        assert_eq!(
            parse_spec("UUID=0123ABCD456789EF0123456789ABCDEF"),
            Ok(Spec::Uuid(u))
        );
        assert_eq!(parse_spec(&format!("uuid=\"{U}\"")), Ok(Spec::Uuid(u)));
        assert_eq!(parse_spec("LABEL=kv"), Ok(Spec::Label("kv".into())));
        assert_eq!(
            parse_spec("label='kv pool'"),
            Ok(Spec::Label("kv pool".into()))
        );
        assert_eq!(
            parse_spec("/dev/dax0.0"),
            Ok(Spec::Path("/dev/dax0.0".into()))
        );
        // '=' in a path that is not a tag.
        assert_eq!(parse_spec("/x/a=b"), Ok(Spec::Path("/x/a=b".into())));
        assert!(parse_spec("UUID=1234").unwrap_err().contains("not a UUID"));
        assert!(parse_spec(&format!("UUID={U}0")).is_err());
        assert!(parse_spec("UUID=0123abcd-4567-89ef-0123-456789abcdeg").is_err());
        assert!(parse_spec("LABEL=").is_err());
        assert!(parse_spec(&format!("LABEL={}", "x".repeat(64))).is_err());
        assert!(parse_spec("PARTUUID=1")
            .unwrap_err()
            .contains("no partitions"));
        assert!(parse_spec("").is_err());
        assert_eq!(
            Spec::Uuid(u).to_string(),
            format!("UUID={U}"),
            "printed as mkfs prints it"
        );
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("mount-marufs-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// An image file formatted by the core's mkfs (what mkfs.marufs runs).
    fn image(dir: &Path, name: &str, label: &str, uuid: [u8; 16]) -> PathBuf {
        let p = dir.join(name);
        let size = 16 * UNIT;
        std::fs::File::create(&p).unwrap().set_len(size).unwrap();
        let m = MapMedia::open(&p).unwrap();
        let mut l = [0u8; 64];
        l[..label.len()].copy_from_slice(label.as_bytes());
        let o = FormatOptions {
            uuid,
            label: l,
            ..FormatOptions::small(size, 4, 64, 4)
        };
        format(&m, &o, &mut |_, _| {}).unwrap();
        m.sync().unwrap();
        p
    }

    fn blank(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .set_len(16 * UNIT)
            .unwrap();
        p
    }

    #[test]
    fn image_files_are_not_dax_devices() {
        let d = tmpdir("notdax");
        let img = image(&d, "pool.img", "kv", [7; 16]);
        let e = check_dax(&img).unwrap_err().to_string();
        assert!(e.contains("is a regular file"), "{e}");
        assert!(e.contains("not a device-dax character device"), "{e}");
        let e = check_dax(&d).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = check_dax(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(e.contains("is a character device (1:3"), "{e}");
        assert!(e.contains("not a device-dax"), "{e}");
        let e = check_dax(&d.join("missing")).unwrap_err().to_string();
        assert!(e.ends_with("missing: no such device"), "{e}");
        // The superblock itself reads fine from the image.
        let info = read_superblock(&img).unwrap();
        assert_eq!(label_of(&info.sb), "kv");
        assert!(!info.used_backup);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn superblock_problems() {
        let d = tmpdir("sb");
        let e = read_superblock(&blank(&d, "blank.img")).unwrap_err();
        assert!(matches!(e, DevError::NotFormatted(_)));
        assert!(
            e.to_string()
                .contains("no marufs file system on it: run mkfs.marufs"),
            "{e}"
        );

        // Primary damaged: the backup is used.
        let img = image(&d, "a.img", "a", [1; 16]);
        let m = MapMedia::open(&img).unwrap();
        m.store(200, &[0xff; 8]).unwrap();
        m.sync().unwrap();
        assert!(read_superblock(&img).unwrap().used_backup);
        // Both damaged: fsck.
        m.store(SB_BACKUP_OFF + 200, &[0xff; 8]).unwrap();
        m.sync().unwrap();
        let e = read_superblock(&img).unwrap_err();
        assert!(matches!(e, DevError::Corrupt(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains("both superblocks are corrupt: run maru-fsck"),
            "{e}"
        );

        // A newer format version (with a valid CRC).
        let img = image(&d, "v.img", "v", [2; 16]);
        let m = MapMedia::open(&img).unwrap();
        let mut sb = read_superblock(&img).unwrap().sb;
        sb.version = 2;
        let mut b = [0u8; 512];
        sb.encode(&mut b);
        m.store(0, &b).unwrap();
        m.sync().unwrap();
        let e = read_superblock(&img).unwrap_err().to_string();
        assert!(e.contains("format version 2 is not supported"), "{e}");
        // Unknown incompatible features.
        sb.version = VERSION;
        sb.incompat = 0x10;
        sb.encode(&mut b);
        m.store(0, &b).unwrap();
        m.sync().unwrap();
        let e = read_superblock(&img).unwrap_err().to_string();
        assert!(e.contains("unsupported incompatible features 0x10"), "{e}");
        // A device smaller than its file system.
        let img = image(&d, "s.img", "s", [3; 16]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&img)
            .unwrap()
            .set_len(8 * UNIT)
            .unwrap();
        let e = read_superblock(&img).unwrap_err().to_string();
        assert!(e.contains("smaller than the file system on it"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn resolve_uuid_and_label() {
        let d = tmpdir("scan");
        let a = image(&d, "dax0.0", "kv", [0xa; 16]);
        let b = image(&d, "dax1.0", "other", [0xb; 16]);
        let c = blank(&d, "dax2.0");
        let e = image(&d, "dax3.0", "dup", [0xe; 16]);
        let f = image(&d, "dax4.0", "dup", [0xf; 16]);
        let all = vec![a.clone(), b.clone(), c.clone(), e, f];
        let probe = |p: &Path| read_superblock(p);

        let hit = resolve(&Spec::Label("kv".into()), &all, probe).unwrap();
        assert_eq!(hit.path, a);
        let hit = resolve(&Spec::Uuid([0xb; 16]), &all, probe).unwrap();
        assert_eq!(hit.path, b);
        assert_eq!(label_of(&hit.info.sb), "other");

        let e = resolve(&Spec::Label("nope".into()), &all, probe).unwrap_err();
        assert!(
            e.starts_with("no marufs device with LABEL=nope (looked at "),
            "{e}"
        );
        let e = resolve(&Spec::Uuid([9; 16]), &[], probe).unwrap_err();
        assert!(e.contains("there is no device-dax device"), "{e}");
        let e = resolve(&Spec::Label("dup".into()), &all, probe).unwrap_err();
        assert!(e.contains("LABEL=dup matches several devices"), "{e}");
        assert!(e.contains("dax3.0") && e.contains("dax4.0"), "{e}");

        // A corrupt candidate is reported when nothing matches.
        let m = MapMedia::open(&b).unwrap();
        m.store(200, &[0xff; 8]).unwrap();
        m.store(SB_BACKUP_OFF + 200, &[0xff; 8]).unwrap();
        m.sync().unwrap();
        let e = resolve(&Spec::Uuid([0xb; 16]), &all, probe).unwrap_err();
        assert!(
            e.contains("not readable: ") && e.contains("run maru-fsck"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn real_dax_scan_finds_only_dax_devices() {
        // On a machine without device-dax this is empty; never a regular file.
        for p in dax_devices(Path::new("/dev")) {
            assert!(check_dax(&p).is_ok());
        }
        let d = tmpdir("devscan");
        blank(&d, "dax0.0");
        assert!(dax_devices(&d).is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }
}
