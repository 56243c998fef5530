//! Fuzz target: mount check, fsck check, repair and re-check over a small mkfs
//! image patched by the input. Input = sequence of 5-byte patches
//! (offset u32 LE modulo the metadata size, value byte); the empty input is the
//! pristine image. Invariants: no panic; a usable superblock means repair converges.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::mount_check;
use marufs_core::fsck::{self, Finding, Options};
use marufs_core::layout::{GeometryParams, UNIT};
use marufs_media::MemMedia;

fn seed() -> &'static (Vec<u8>, u64) {
    static S: OnceLock<(Vec<u8>, u64)> = OnceLock::new();
    S.get_or_init(|| {
        let size = 8 * UNIT;
        let m = MemMedia::new(size);
        let o = FormatOptions {
            params: GeometryParams { total_size: size, max_hosts: 4, entries: 64, bytes_per_entry: 0, dirs: 4, allow_small: true },
            uuid: [3; 16],
            label: [0; 64],
            now: 1,
        };
        let sb = format(&m, &o, &mut |_, _| {}).expect("format");
        (m.to_bytes(), sb.geo.meta_end)
    })
}

fn check(m: &MemMedia, repair: bool) -> Option<usize> {
    let info = mount_check(m).ok()?;
    let mut s = vec![0u8; fsck::scratch_len(&info.sb.geo)];
    let mut n = 0usize;
    fsck::run(m, &Options { repair, online: false }, &mut s, &mut |_: &Finding| n += 1).ok()?;
    Some(n)
}

fuzz_target!(|data: &[u8]| {
    let (base, meta_end) = seed();
    let mut img = base.clone();
    for p in data.chunks_exact(5) {
        let off = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as u64 % meta_end;
        img[off as usize] = p[4];
    }
    let m = MemMedia::from_bytes(&img);
    if check(&m, false).is_some() {
        check(&m, true).expect("repair ran");
        assert_eq!(check(&m, false), Some(0), "repair did not converge");
    }
});
