//! Records with valid checksums and arbitrary extents: the decoder refuses
//! what is outside the data area (the kernel then answers EUCLEAN), and what
//! it accepts only ever locates the key's own bytes.

use marufs_core::format::{format, FormatOptions};
use marufs_core::fs::{Fs, Tunables};
use marufs_core::layout::{EntryRec, ENTRY_SIZE, UNIT};
use marufs_core::{fsck, Error, Media};
use marufs_media::MemMedia;
use marufs_sim::extents::{check_case, geometries};

#[test]
fn decoder_and_locate_on_random_extents() {
    let geos = geometries();
    let n = marufs_sim::seed_count(200_000);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = [0u8; 96];
    let mut accepted = 0u64;
    for i in 0..n {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        match check_case(&geos, &buf) {
            Ok(a) => accepted += u64::from(a),
            Err(e) => panic!("case {i}: {e}"),
        }
    }
    // Both sides of the judgement are exercised.
    assert!(
        accepted > n / 50 && n - accepted > n / 50,
        "{accepted} of {n} accepted"
    );
}

/// A published key whose entry is rewritten, checksum and all, with an
/// extent past the end of the data area, then across a chunk boundary, then
/// a size beyond its units: every access is `Corrupt` (EUCLEAN), fsck reports
/// `BadExtent` and repairs it, the other key is untouched.
#[test]
fn forged_extents_are_refused() {
    let size = 64 * UNIT;
    let m = MemMedia::new(size);
    format(&m, &FormatOptions::small(size, 4, 64, 4), &mut |_, _| {}).unwrap();
    let clock = marufs_sim::StepClock::new(1, 42, 100);
    let mut fs = Fs::open(&m, clock, 0, Tunables::for_lease(1_000_000_000)).unwrap();
    fs.join().unwrap();
    let d = fs.mkdir(b"app", 0, 0, 0o755).unwrap();
    for k in [&b"victim"[..], b"other"] {
        let h = fs.create(d, k, 0, 0, 0o644).unwrap();
        fs.set_size(&h, UNIT + 5).unwrap();
        fs.publish(&h, None).unwrap();
    }
    let v = fs.lookup(d, b"victim").unwrap();
    let geo = *fs.geometry();
    let off = geo.entry(v.entry);
    let forge = |f: &dyn Fn(&mut EntryRec)| {
        let mut b = [0u8; ENTRY_SIZE];
        m.load(off, &mut b).unwrap();
        let mut e = EntryRec::decode(&b).unwrap();
        f(&mut e);
        e.encode(&mut b);
        m.store(off, &b).unwrap();
    };
    let chunk = u64::from(geo.chunk_units);
    type Forge = Box<dyn Fn(&mut EntryRec)>;
    let cases: [(&str, Forge); 4] = [
        (
            "past the data area",
            Box::new(move |e| e.extents[0].start = (geo.data_units - 1) as u32),
        ),
        ("at u32::MAX", Box::new(|e| e.extents[0].start = u32::MAX)),
        (
            "across a chunk",
            Box::new(move |e| e.extents[0].start = (chunk - 1) as u32),
        ),
        ("size beyond its units", Box::new(|e| e.size = 40 * UNIT)),
    ];
    for (what, f) in cases.iter() {
        forge(&**f);
        assert_eq!(
            fs.lookup(d, b"victim").unwrap_err(),
            Error::Corrupt,
            "{what}: lookup"
        );
        assert_eq!(
            fs.stat_entry(v.entry).unwrap_err(),
            Error::Corrupt,
            "{what}: stat"
        );
        assert_eq!(
            fs.hold(v.entry, v.rec.generation).unwrap_err(),
            Error::Corrupt,
            "{what}: hold"
        );
        let o = fs.lookup(d, b"other").unwrap();
        assert!(o.rec.extents_valid(&geo), "{what}: the other key");
    }
    fs.leave().unwrap();
    let mut s = vec![0u8; fsck::scratch_len(&geo)];
    let mut found = vec![];
    fsck::run(
        &m,
        &fsck::Options {
            repair: true,
            online: false,
        },
        &mut s,
        &mut |f: &fsck::Finding| found.push(*f),
    )
    .unwrap();
    assert!(
        found
            .iter()
            .any(|f| f.kind == fsck::Kind::BadExtent && f.a == u64::from(v.entry)),
        "{found:?}"
    );
    let mut again = vec![];
    fsck::run(
        &m,
        &fsck::Options {
            repair: false,
            online: false,
        },
        &mut s,
        &mut |f: &fsck::Finding| again.push(*f),
    )
    .unwrap();
    assert!(again.is_empty(), "clean after repair: {again:?}");
}
