//! fsck on a pool holding 1M keys (ignored by default; run in release):
//! `cargo test --release -p marufs-sim --test bench_fsck -- --ignored --nocapture`
//! Builds a sparse 64 GiB image file (`MARUFS_BENCH_IMG`, default under the target
//! dir) through the core API, then times a full fsck check.

use std::time::Instant;

use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{mount_check, Fs, Tunables};
use marufs_core::fsck::{self, Finding, Options};
use marufs_core::layout::UNIT;
use marufs_media::{MapMedia, StdEnv};

#[test]
#[ignore = "benchmark: builds a 64 GiB sparse image with 1M keys"]
fn fsck_one_million_keys() {
    let keys: u32 = std::env::var("MARUFS_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20);
    let path = std::env::var("MARUFS_BENCH_IMG").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench-1m.img").to_string()
    });
    let size: u64 = 64 << 30;
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    let m = MapMedia::open(std::path::Path::new(&path)).unwrap();
    let t = Instant::now();
    let o = FormatOptions {
        uuid: [5; 16],
        ..FormatOptions::standard(size)
    };
    let sb = format(&m, &o, &mut |_, _| {}).unwrap();
    println!(
        "mkfs: {:.2}s, {} entries, {} index slots",
        t.elapsed().as_secs_f64(),
        sb.geo.entry_count,
        sb.geo.index_slots
    );
    let t = Instant::now();
    let mut fs = Fs::open(
        &m,
        StdEnv::default(),
        0,
        Tunables::for_lease(60_000_000_000),
    )
    .unwrap();
    fs.join().unwrap();
    let mut dirs = vec![];
    for d in 0..16 {
        dirs.push(
            fs.mkdir(format!("model-{d}").as_bytes(), 0, 0, 0o755)
                .unwrap(),
        );
    }
    for i in 0..keys {
        let d = dirs[(i % 16) as usize];
        let h = fs
            .create(
                d,
                format!("chunk-{i:08x}-0123456789abcdef").as_bytes(),
                0,
                0,
                0o644,
            )
            .unwrap();
        if i % 64 == 0 {
            fs.set_size(&h, UNIT).unwrap();
        }
        fs.publish(&h, None).unwrap();
        if i % 100_000 == 0 && i > 0 {
            eprintln!(
                "{i} keys, {:.0} keys/s",
                f64::from(i) / t.elapsed().as_secs_f64()
            );
        }
    }
    let build = t.elapsed().as_secs_f64();
    println!(
        "created {keys} keys in {build:.1}s ({:.0} create+publish/s)",
        f64::from(keys) / build
    );
    let t = Instant::now();
    let mut n = 0;
    for i in (0..keys).step_by(97) {
        let d = dirs[(i % 16) as usize];
        fs.lookup(d, format!("chunk-{i:08x}-0123456789abcdef").as_bytes())
            .unwrap();
        n += 1;
    }
    println!(
        "lookup: {:.2} us each ({n} lookups)",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
    fs.leave().unwrap();
    m.sync().unwrap();
    let t = Instant::now();
    let info = mount_check(&m).unwrap();
    let mut s = vec![0u8; fsck::scratch_len(&info.sb.geo)];
    let mut v = vec![];
    let sum = fsck::run(
        &m,
        &Options {
            repair: false,
            online: false,
        },
        &mut s,
        &mut |f: &Finding| v.push(*f),
    )
    .unwrap();
    println!(
        "fsck check of {} keys: {:.2}s, {} problems",
        sum.keys,
        t.elapsed().as_secs_f64(),
        v.len()
    );
    assert!(v.is_empty(), "{:?}", &v[..v.len().min(10)]);
    let _ = std::fs::remove_file(&path);
}
