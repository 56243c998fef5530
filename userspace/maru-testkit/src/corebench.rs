//! The core's metadata operations in userspace on an unmounted pool.

use anyhow::Result;
use std::path::Path;

/// The core's metadata operations in userspace over a formatted, unmounted
/// pool (`MapMedia`): their cost without the kernel (p50 µs per phase).
pub fn core_bench(dev: &Path, iters: usize, clflush: bool) -> Result<()> {
    use marufs_core::fs::{Fs, Tunables};
    use marufs_core::layout::UNIT;
    use marufs_media::{MapMedia, StdEnv};
    use std::time::Instant;
    let m = MapMedia::open(dev)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_cache_flush(clflush);
    let mut fs = Fs::open(
        &m,
        StdEnv::default(),
        0,
        Tunables::for_lease(10_000_000_000),
    )
    .map_err(|e| anyhow::anyhow!("open: {e}"))?;
    fs.join().map_err(|e| anyhow::anyhow!("join: {e}"))?;
    let d = fs
        .mkdir(b"corebench", 0, 0, 0o755)
        .map_err(|e| anyhow::anyhow!("mkdir: {e}"))?;
    let mut t: [Vec<f64>; 6] = Default::default();
    for i in 0..iters {
        let name = format!("k{i}");
        let n = name.as_bytes();
        let mut lap = Instant::now();
        let mut mark = |k: usize, t: &mut [Vec<f64>; 6]| {
            t[k].push(lap.elapsed().as_secs_f64() * 1e6);
            lap = Instant::now();
        };
        let h = fs
            .create(d, n, 0, 0, 0o644)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        mark(0, &mut t);
        fs.set_size(&h, UNIT).map_err(|e| anyhow::anyhow!("{e}"))?;
        mark(1, &mut t);
        fs.publish(&h, None).map_err(|e| anyhow::anyhow!("{e}"))?;
        mark(2, &mut t);
        fs.lookup(d, n).map_err(|e| anyhow::anyhow!("{e}"))?;
        mark(3, &mut t);
        fs.unlink(d, n).map_err(|e| anyhow::anyhow!("{e}"))?;
        mark(4, &mut t);
        fs.drain_orphans().map_err(|e| anyhow::anyhow!("{e}"))?;
        mark(5, &mut t);
    }
    for (name, v) in ["create", "set_size", "publish", "lookup", "unlink", "drain"]
        .iter()
        .zip(t.iter_mut())
    {
        v.sort_by(f64::total_cmp);
        println!("core-bench {name:9} p50 {:8.1} µs", v[v.len() / 2]);
    }
    fs.leave().map_err(|e| anyhow::anyhow!("leave: {e}"))?;
    Ok(())
}

/// One key entry of a pool opened from userspace (a test tool's view: it
/// reads and writes the record directly, flushing this CPU's cache lines).
struct PoolEntry {
    m: marufs_media::MapMedia,
    geo: marufs_core::layout::Geometry,
    entry: u32,
    rec: marufs_core::layout::EntryRec,
}

impl PoolEntry {
    /// Reads entry `entry` of the pool on `dev`; its checksum must match.
    fn read(dev: &Path, entry: u32) -> Result<PoolEntry> {
        use marufs_core::layout::{EntryRec, ENTRY_SIZE};
        use marufs_core::Media;
        let m = marufs_media::MapMedia::open(dev)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_cache_flush(true);
        let geo = marufs_core::fs::mount_check(&m)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dev.display()))?
            .sb
            .geo;
        anyhow::ensure!(
            u64::from(entry) < geo.entry_count,
            "entry {entry}: the pool has {} entries",
            geo.entry_count
        );
        let off = geo.entry(entry);
        let mut b = [0u8; ENTRY_SIZE];
        m.invalidate(off, ENTRY_SIZE as u64)
            .and_then(|()| m.load(off, &mut b))
            .map_err(|e| anyhow::anyhow!("read entry {entry}: {e}"))?;
        let rec = EntryRec::decode(&b)
            .ok_or_else(|| anyhow::anyhow!("entry {entry}: its checksum does not match"))?;
        Ok(PoolEntry { m, geo, entry, rec })
    }

    /// Writes `self.rec` back, checksum recomputed, and flushes it.
    fn write(&self) -> Result<()> {
        use marufs_core::layout::ENTRY_SIZE;
        use marufs_core::Media;
        let off = self.geo.entry(self.entry);
        let mut b = [0u8; ENTRY_SIZE];
        self.rec.encode(&mut b);
        self.m
            .store(off, &b)
            .and_then(|()| self.m.flush(off, ENTRY_SIZE as u64))
            .map_err(|e| anyhow::anyhow!("write entry {}: {e}", self.entry))
    }
}

/// Forges key entry `entry` of the pool on `dev` (see `maru-testkit
/// entry-forge --help`): decoded, changed, re-encoded with its checksum,
/// stored and written back from this CPU's cache.
pub fn entry_forge(dev: &Path, entry: u32, case: &str) -> Result<()> {
    use marufs_core::layout::UNIT;
    let mut pe = PoolEntry::read(dev, entry)?;
    let geo = pe.geo;
    let e = &mut pe.rec;
    anyhow::ensure!(e.nextents > 0, "entry {entry} has no extents");
    match case {
        "past-end" => e.extents[0].start = (geo.data_units - 1) as u32,
        "u32-max" => e.extents[0].start = u32::MAX,
        "across-chunk" => e.extents[0].start = geo.chunk_units - 1,
        "huge-count" => e.extents[0].count = u32::MAX,
        "big-size" => e.size = (e.units() + 64) * UNIT,
        other => anyhow::bail!(
            "unknown case {other:?}: past-end, u32-max, across-chunk, huge-count or big-size"
        ),
    }
    if case != "big-size" && case != "huge-count" && e.extents[0].count < 2 {
        // An extent of one unit cannot cross a chunk or the end by itself.
        e.extents[0].count = 2;
    }
    pe.write()?;
    println!(
        "entry {entry}: forged ({case}): {:?}",
        pe.rec.used_extents()
    );
    Ok(())
}

/// Prints the data units of key entry `entry` of the pool on `dev`.
pub fn key_units(dev: &Path, entry: u32) -> Result<()> {
    for x in PoolEntry::read(dev, entry)?.rec.used_extents() {
        for u in x.start..x.start + x.count {
            println!("{u}");
        }
    }
    Ok(())
}
