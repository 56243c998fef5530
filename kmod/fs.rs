// SPDX-License-Identifier: GPL-2.0

//! The marufs filesystem logic (safe Rust over [`crate::vfs`] and the core).

use crate::marufs_core::{
    fs::{mount_check, Tunables},
    Error as CoreError, Fs,
};
use crate::media::{KEnv, KMedia};
use crate::vfs::{
    dax::{DaxDevice, DaxOpenError},
    fs_context::{FileSystem, Param},
    super_block::{DirAttrs, NewSuperBlock, StatFs},
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{prelude::*, seq_file::SeqFile, seq_print, str::CStr};

/// statfs `f_type` and `s_magic` of marufs ("MARU").
pub const MARUFS_MAGIC: u64 = 0x4d41_5255;
/// Default lease of a host's membership.
const DEFAULT_LEASE_MS: u32 = 10_000;

/// The marufs filesystem type.
pub struct Marufs;

/// Mount options (see `Documentation/man/marufs.5.md`).
#[derive(Default)]
pub struct Options {
    node: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
    lease_ms: Option<u32>,
}

/// One mount of a marufs pool.
pub struct MountData {
    /// This host's view of the pool (its media owns the kernel mapping).
    fs: Fs<KMedia, KEnv>,
    /// Keeps the device open while mounted (declared after `fs`: dropped after).
    _dev: DaxDevice,
    node: u32,
    lease_ms: u32,
    read_only: AtomicBool,
}

/// Converts a core error to a kernel error.
fn kerr(e: CoreError) -> Error {
    Error::from_errno(-e.errno())
}

fn source_str(s: Option<&CStr>) -> &str {
    s.and_then(|c| c.to_str().ok()).unwrap_or("(none)")
}

impl FileSystem for Marufs {
    const NAME: &'static CStr = c"marufs";
    type Options = Options;
    type Data = MountData;

    fn parse_param(o: &mut Options, p: Param) -> Result {
        match p {
            Param::Node(n) => {
                if n >= 64 {
                    pr_err!("node={} is out of range: node ids are 0..63\n", n);
                    return Err(EINVAL);
                }
                o.node = Some(n);
            }
            Param::Uid(u) => o.uid = Some(u),
            Param::Gid(g) => o.gid = Some(g),
            Param::Mode(m) => {
                if m > 0o7777 {
                    pr_err!("mode={:o} is not a permission mode (at most 07777)\n", m);
                    return Err(EINVAL);
                }
                o.mode = Some(m);
            }
            Param::LeaseMs(ms) => {
                if !(100..=600_000).contains(&ms) {
                    pr_err!("lease_ms={} is out of range (100..600000)\n", ms);
                    return Err(EINVAL);
                }
                o.lease_ms = Some(ms);
            }
        }
        Ok(())
    }

    fn fill_super(
        source: Option<&CStr>,
        o: &Options,
        read_only: bool,
        sb: &mut NewSuperBlock<'_>,
    ) -> Result<KBox<MountData>> {
        let src = source_str(source);
        let path = source.ok_or_else(|| {
            pr_err!("no source device: mount -t marufs /dev/daxX.Y DIR\n");
            EINVAL
        })?;
        let dev = DaxDevice::open(path).map_err(|e| match e {
            DaxOpenError::Open(err) => {
                pr_err!("{}: cannot open the device: error {}\n", src, err.to_errno());
                err
            }
            DaxOpenError::NotDax => {
                pr_err!("{}: not a device-dax character device (marufs mounts /dev/daxX.Y)\n", src);
                ENODEV
            }
            DaxOpenError::NoRange => {
                pr_err!("{}: the device-dax range is not addressable\n", src);
                ENXIO
            }
        })?;
        let map = dev.map(dev.size()).inspect_err(|_| {
            pr_err!("{}: cannot map {} bytes of device memory\n", src, dev.size());
        })?;
        let media = KMedia::new(map);
        let info = mount_check(&media).map_err(|e| {
            match e {
                CoreError::NotFormatted => pr_err!("{}: no marufs superblock: run mkfs.marufs {}\n", src, src),
                CoreError::BadVersion(v) => pr_err!("{}: unsupported marufs format version {}: use a newer marufs module\n", src, v),
                CoreError::IncompatibleFeatures(f) => pr_err!("{}: unsupported incompatible features {:#x}: use a newer marufs module\n", src, f),
                CoreError::TooSmall => pr_err!("{}: the device ({} bytes) is smaller than the filesystem on it: wrong device or region?\n", src, dev.size()),
                CoreError::Corrupt => pr_err!("{}: both superblocks are corrupt: run maru-fsck {}\n", src, src),
                other => pr_err!("{}: cannot read the superblock: error {}\n", src, other.errno()),
            }
            kerr(e)
        })?;
        if info.used_backup {
            pr_warn!("{}: primary superblock is bad, mounted with the backup copy: run maru-fsck -y {}\n", src, src);
        }
        let node = o.node.unwrap_or(0);
        let lease_ms = o.lease_ms.unwrap_or(DEFAULT_LEASE_MS);
        let tun = Tunables::for_lease(u64::from(lease_ms) * 1_000_000);
        let mut fs = Fs::open(media, KEnv, node, tun).map_err(|e| {
            pr_err!("{}: cannot use node={}: error {}\n", src, node, e.errno());
            kerr(e)
        })?;
        if !read_only {
            fs.join().map_err(|e| {
                pr_err!("{}: node {} cannot join the pool: error {} (is another host using node={}?)\n", src, node, e.errno(), node);
                kerr(e)
            })?;
        }
        sb.setup(MARUFS_MAGIC, 21, i64::MAX);
        sb.make_root(DirAttrs {
            ino: 1,
            mode: o.mode.unwrap_or(0o755) as u16,
            uid: o.uid.unwrap_or(0),
            gid: o.gid.unwrap_or(0),
        })?;
        pr_info!(
            "{}: mounted pool of {} MiB as node {} (epoch {}){}\n",
            src,
            info.sb.geo.total_size >> 20,
            node,
            fs.epoch(),
            if read_only { ", read-only" } else { "" }
        );
        Ok(KBox::new(
            MountData {
                fs,
                _dev: dev,
                node,
                lease_ms,
                read_only: AtomicBool::new(read_only),
            },
            GFP_KERNEL,
        )?)
    }

    fn reconfigure(d: &MountData, o: &Options, read_only: bool) -> Result {
        if o.node.is_some_and(|n| n != d.node) {
            pr_err!("remount cannot change node= (umount and mount again)\n");
            return Err(EINVAL);
        }
        if !read_only && d.read_only.load(Ordering::Relaxed) && !d.fs.is_joined() {
            pr_err!("remount read-write of a read-only mount is not supported yet: umount and mount again\n");
            return Err(EROFS);
        }
        d.read_only.store(read_only, Ordering::Relaxed);
        Ok(())
    }

    fn statfs(d: &MountData) -> Result<StatFs> {
        let s = d.fs.statfs().map_err(kerr)?;
        let uuid = d.fs.superblock().uuid;
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&uuid[..8]);
        b.copy_from_slice(&uuid[8..]);
        Ok(StatFs {
            bsize: 2 << 20,
            blocks: s.total_units,
            bfree: s.free_units,
            files: s.total_entries,
            ffree: s.free_entries,
            namelen: 255,
            fsid: u64::from_le_bytes(a) ^ u64::from_le_bytes(b),
        })
    }

    fn show_options(d: &MountData, m: &SeqFile) {
        seq_print!(m, ",node={},lease_ms={}", d.node, d.lease_ms);
    }
}

impl Drop for MountData {
    fn drop(&mut self) {
        if self.fs.is_joined() {
            if let Err(e) = self.fs.leave() {
                pr_warn!("node {}: leaving the pool failed: error {}\n", self.node, e.errno());
            }
        }
    }
}
