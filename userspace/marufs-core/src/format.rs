//! mkfs: writing a fresh pool.

use super::error::{Error, Result};
use super::layout::{
    Geometry, GeometryParams, NsHdr, Superblock, NSHDR_SIZE, SB_BACKUP_OFF, SB_SIZE, VERSION,
};
use super::media::Media;

/// mkfs options.
#[derive(Clone, Copy, Debug)]
pub struct FormatOptions {
    /// Geometry parameters (`total_size` is usually the device size).
    pub params: GeometryParams,
    /// UUID.
    pub uuid: [u8; 16],
    /// Label (NUL padded).
    pub label: [u8; 64],
    /// Wall time of mkfs (ns).
    pub now: u64,
}

impl FormatOptions {
    /// mkfs.marufs's default geometry for a pool of `total_size` bytes: 64
    /// host slots, one key entry per 64 KiB, 1024 directories; UUID
    /// `[1; 16]`, no label (override with struct update syntax).
    pub fn standard(total_size: u64) -> FormatOptions {
        FormatOptions {
            params: GeometryParams {
                total_size,
                max_hosts: 64,
                entries: 0,
                bytes_per_entry: 65536,
                dirs: 1024,
                allow_small: false,
            },
            ..FormatOptions::small(total_size, 64, 0, 1024)
        }
    }

    /// Options for a small pool (tests, simulations, images): explicit entry
    /// and directory counts, small sizes allowed, UUID `[1; 16]`, no label.
    /// Override fields with struct update syntax.
    pub fn small(total_size: u64, max_hosts: u32, entries: u64, dirs: u32) -> FormatOptions {
        FormatOptions {
            params: GeometryParams {
                total_size,
                max_hosts,
                entries,
                bytes_per_entry: 0,
                dirs,
                allow_small: true,
            },
            uuid: [1; 16],
            label: [0; 64],
            now: 1,
        }
    }
}

static ZERO: [u8; 4096] = [0; 4096];

/// Formats the pool. `progress(done, total)` is called while zeroing metadata.
/// The entry table is not zeroed (entries above the high-water mark are unused).
pub fn format<M: Media>(
    m: &M,
    o: &FormatOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Superblock> {
    if o.params.total_size > m.size() {
        return Err(Error::TooSmall);
    }
    let geo =
        Geometry::compute(&o.params).ok_or(if o.params.total_size < super::layout::MIN_POOL {
            Error::TooSmall
        } else {
            Error::InvalidArgument
        })?;
    // Kill any old superblocks first, so an interrupted mkfs is "not formatted".
    m.store(0, &ZERO[..SB_SIZE])?;
    m.store(SB_BACKUP_OFF, &ZERO[..SB_SIZE])?;
    m.flush(0, SB_BACKUP_OFF + SB_SIZE as u64)?;
    let end = geo.entry_off;
    let total = end - geo.host_off;
    let mut off = geo.host_off;
    while off < end {
        let n = (end - off).min(ZERO.len() as u64);
        m.store(off, ZERO.get(..n as usize).unwrap_or(&[]))?;
        off += n;
        if (off - geo.host_off) % (64 << 20) == 0 || off == end {
            m.flush(geo.host_off, off - geo.host_off)?;
            progress(off - geo.host_off, total);
        }
    }
    let ns = NsHdr {
        free_head: super::layout::NIL,
        ..NsHdr::default()
    };
    let mut nb = [0u8; NSHDR_SIZE];
    ns.encode(&mut nb);
    m.store(geo.nshdr_off, &nb)?;
    m.flush(geo.nshdr_off, NSHDR_SIZE as u64)?;
    let sb = Superblock {
        version: VERSION,
        compat: 0,
        incompat: super::layout::INCOMPAT_DIR_CHANGES,
        ro_compat: 0,
        uuid: o.uuid,
        label: o.label,
        mkfs_time: o.now,
        geo,
    };
    let mut b = [0u8; SB_SIZE];
    sb.encode(&mut b);
    m.store(SB_BACKUP_OFF, &b)?;
    m.flush(SB_BACKUP_OFF, SB_SIZE as u64)?;
    m.store(0, &b)?;
    m.flush(0, SB_SIZE as u64)?;
    Ok(sb)
}
