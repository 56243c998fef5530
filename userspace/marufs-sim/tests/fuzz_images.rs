//! Bounded, deterministic fuzzing of image parsing, fsck and repair (stable
//! toolchain; the cargo-fuzz target lives in userspace/marufs-core/fuzz).
//! Images: small formatted pools with keys, mutated in their metadata area.
//! Asserts: no panic, repair converges (a second check is clean), and a
//! repaired pool is usable (join, create, publish, lookup).
//! Inputs under `regressions/` are replayed first.

use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{mount_check, Fs, Tunables};
use marufs_core::fsck::{self, Finding, Options};
use marufs_core::layout::UNIT;
use marufs_core::{Error, Media};
use marufs_media::MemMedia;
use marufs_sim::mem::Rng;

fn clock(start: u64) -> marufs_sim::StepClock {
    marufs_sim::StepClock::new(start, 7, 10_000)
}

fn tun() -> Tunables {
    Tunables {
        lease_ns: 1_000_000,
        guard_ns: 250_000,
        margin_ns: 500_000,
        read_retries: 4,
    }
}

/// A populated image (bytes up to the end of metadata; data area is not mutated).
pub fn seed_image() -> (Vec<u8>, u64) {
    let size = 16 * UNIT;
    let m = MemMedia::new(size);
    let o = FormatOptions {
        uuid: [9; 16],
        ..FormatOptions::small(size, 4, 64, 4)
    };
    let sb = format(&m, &o, &mut |_, _| {}).unwrap();
    let mut fs = Fs::open(&m, clock(1), 1, tun()).unwrap();
    fs.join().unwrap();
    let d = fs.mkdir(b"app", 0, 0, 0o755).unwrap();
    for i in 0..12u32 {
        let h = fs
            .create(d, format!("key{i}").as_bytes(), 0, 0, 0o644)
            .unwrap();
        fs.set_size(&h, u64::from(i % 3) * UNIT / 2).unwrap();
        if i % 4 != 3 {
            fs.publish(&h, None).unwrap();
        }
    }
    fs.unlink(d, b"key1").unwrap();
    // leave host 1 "crashed": active slot, a creating key, an orphan
    (m.to_bytes(), sb.geo.meta_end)
}

fn run_fsck(m: &MemMedia, repair: bool) -> Result<Vec<Finding>, Error> {
    let info = mount_check(m)?;
    let mut s = vec![0u8; fsck::scratch_len(&info.sb.geo)];
    let mut v = vec![];
    fsck::run(
        m,
        &Options {
            repair,
            online: false,
        },
        &mut s,
        &mut |f: &Finding| v.push(*f),
    )?;
    Ok(v)
}

/// Published entries of an image whose 512 bytes are identical to `base`:
/// (index, generation).
fn intact_published(base: &[u8], img: &[u8]) -> Vec<(u32, u64)> {
    let Ok(info) = mount_check(&MemMedia::from_bytes(base)) else {
        return vec![];
    };
    let g = info.sb.geo;
    let mut v = vec![];
    for i in 0..g.entry_count as u32 {
        let o = g.entry(i) as usize;
        let (a, b) = (&base[o..o + 512], &img[o..o + 512]);
        if a != b {
            continue;
        }
        let mut r = [0u8; 512];
        r.copy_from_slice(a);
        if let Some(e) = marufs_core::layout::EntryRec::decode(&r) {
            if e.state == marufs_core::layout::entry_state::PUBLISHED {
                v.push((i, e.generation));
            }
        }
    }
    v
}

/// One fuzz case: returns Err(description) when an invariant fails.
pub fn one_case(img: &[u8]) -> Result<(), String> {
    one_case_with(img, &[])
}

fn one_case_with(img: &[u8], keep: &[(u32, u64)]) -> Result<(), String> {
    let m = MemMedia::from_bytes(img);
    // Lock-free reads on the damaged pool must not panic.
    if let Ok(fs) = Fs::open(&m, clock(1), 0, tun()) {
        if let Ok(d) = fs.lookup_dir(b"app") {
            for i in 0..12 {
                let _ = fs.lookup(d.id, format!("key{i}").as_bytes());
            }
            let mut c = 0;
            for _ in 0..100 {
                match fs.readdir(d.id, c) {
                    Ok(Some((_, n))) => c = n,
                    _ => break,
                }
            }
        }
        let _ = fs.statfs();
        let _ = fs.readdir_dirs(0);
    }
    let before = run_fsck(&m, false);
    if before.is_err() {
        return Ok(()); // superblock unusable: operational error, nothing to repair
    }
    run_fsck(&m, true).map_err(|e| format!("repair failed: {e:?}"))?;
    let after = run_fsck(&m, false).map_err(|e| format!("re-check failed: {e:?}"))?;
    if !after.is_empty() {
        return Err(format!("repair did not converge: {after:?}"));
    }
    // Repair never drops a published key whose metadata is intact.
    let g = mount_check(&m).map_err(|e| format!("{e:?}"))?.sb.geo;
    for &(i, gen) in keep {
        let mut r = [0u8; 512];
        m.load(g.entry(i), &mut r).map_err(|e| format!("{e:?}"))?;
        let ok = marufs_core::layout::EntryRec::decode(&r).is_some_and(|e| {
            e.state == marufs_core::layout::entry_state::PUBLISHED && e.generation == gen
        });
        if !ok {
            return Err(format!("repair dropped intact published entry {i}"));
        }
    }
    let mut fs =
        Fs::open(&m, clock(1), 2, tun()).map_err(|e| format!("open after repair: {e:?}"))?;
    fs.join().map_err(|e| format!("join after repair: {e:?}"))?;
    let d = match fs.lookup_dir(b"fuzz") {
        Ok(d) => d.id,
        Err(_) => fs
            .mkdir(b"fuzz", 0, 0, 0o755)
            .map_err(|e| format!("mkdir after repair: {e:?}"))?,
    };
    match fs.create(d, b"new", 0, 0, 0o644) {
        Ok(h) => {
            fs.publish(&h, None)
                .map_err(|e| format!("publish after repair: {e:?}"))?;
            fs.lookup(d, b"new")
                .map_err(|e| format!("lookup after repair: {e:?}"))?;
        }
        Err(Error::NoEntries) | Err(Error::NoSpace) => {}
        Err(e) => return Err(format!("create after repair: {e:?}")),
    }
    fs.leave()
        .map_err(|e| format!("leave after repair: {e:?}"))?;
    let p = run_fsck(&m, false).map_err(|e| format!("final check: {e:?}"))?;
    if !p.is_empty() {
        return Err(format!("not clean after use: {p:?}"));
    }
    Ok(())
}

fn mutate(r: &mut Rng, img: &mut [u8], meta_end: u64) {
    let n = 1 + r.below(8);
    for _ in 0..n {
        let off = match r.below(4) {
            0 => r.below(1024),             // superblocks
            1 => 64 * 1024 + r.below(1024), // backup
            _ => 128 * 1024 + r.below(meta_end - 128 * 1024),
        } as usize;
        match r.below(3) {
            0 => img[off] ^= 1 << r.below(8),
            1 => img[off] = r.next() as u8,
            _ => {
                let len = (1 + r.below(64)) as usize;
                let end = (off + len).min(img.len());
                img[off..end].iter_mut().for_each(|x| *x = 0);
            }
        }
    }
}

#[test]
fn regressions_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    let (base, _) = seed_image();
    for e in rd
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "patch"))
    {
        // A regression file holds (offset u64 LE, byte) patches over the seed image.
        let patch = std::fs::read(e.path()).unwrap();
        let mut img = base.clone();
        for p in patch.chunks_exact(9) {
            let off = u64::from_le_bytes(p[..8].try_into().unwrap()) as usize;
            if off < img.len() {
                img[off] = p[8];
            }
        }
        if let Err(err) = one_case(&img) {
            panic!("regression {}: {err}", e.path().display());
        }
    }
}

#[test]
fn fuzz_images_bounded() {
    let n: u64 = std::env::var("MARUFS_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let (base, meta_end) = seed_image();
    let mut r = Rng(0xF022);
    for case in 0..n {
        let mut img = base.clone();
        mutate(&mut r, &mut img, meta_end);
        let keep = intact_published(&base, &img);
        if let Err(e) = one_case_with(&img, &keep) {
            // Save the input as a regression patch.
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
            let _ = std::fs::create_dir_all(&dir);
            let mut patch = vec![];
            for (i, (a, b)) in base.iter().zip(img.iter()).enumerate() {
                if a != b {
                    patch.extend_from_slice(&(i as u64).to_le_bytes());
                    patch.push(*b);
                }
            }
            let path = dir.join(format!("case-{case}.patch"));
            let _ = std::fs::write(&path, &patch);
            panic!("fuzz case {case}: {e} (saved {})", path.display());
        }
    }
    let _ = Media::size(&MemMedia::new(0));
}
