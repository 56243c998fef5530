//! Property tests of the layout encode/decode, driven by the simulator's seeded
//! PRNG (no extra dependency): round trips, CRC detection of any single bit flip,
//! and decoding arbitrary bytes never panics.

use marufs_core::layout::*;
use marufs_sim::mem::Rng;

fn name(r: &mut Rng) -> Name {
    let n = 1 + r.below(255) as usize;
    let v: Vec<u8> = (0..n).map(|_| b'a' + r.below(26) as u8).collect();
    Name::new(&v).unwrap()
}

fn entry(r: &mut Rng) -> EntryRec {
    let mut e = EntryRec {
        state: r.below(4) as u32,
        flags: r.next() as u32,
        generation: r.next(),
        dir: r.next() as u32,
        size: r.next(),
        uid: r.next() as u32,
        gid: r.next() as u32,
        mode: r.next() as u32,
        next: r.next() as u32,
        ctime: r.next(),
        mtime: r.next(),
        crtime: r.next(),
        creator: r.next() as u32,
        cslot: r.next() as u32,
        creator_epoch: r.next(),
        data_crc: r.next() as u32,
        nextents: r.below(9) as u32,
        name: name(r),
        ..EntryRec::default()
    };
    for x in e.extents.iter_mut() {
        *x = Extent {
            start: r.next() as u32,
            count: r.next() as u32,
        };
    }
    e
}

#[test]
fn entry_roundtrip_and_crc() {
    let mut r = Rng(1);
    for _ in 0..2000 {
        let e = entry(&mut r);
        let mut b = [0u8; ENTRY_SIZE];
        e.encode(&mut b);
        assert_eq!(EntryRec::decode(&b), Some(e));
        let bit = r.below(ENTRY_SIZE as u64 * 8) as usize;
        b[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(EntryRec::decode(&b), None, "bit flip {bit} not detected");
    }
}

#[test]
fn dir_host_reg_ns_chunk_roundtrip() {
    let mut r = Rng(2);
    for _ in 0..2000 {
        let d = DirRec {
            state: r.below(2) as u32,
            generation: r.next(),
            uid: r.next() as u32,
            gid: r.next() as u32,
            mode: r.next() as u32,
            ctime: r.next(),
            mtime: r.next(),
            key_count: r.next(),
            bytes: r.next(),
            name: name(&mut r),
            changes: r.next(),
        };
        let mut b = [0u8; DIR_SIZE];
        d.encode(&mut b);
        assert_eq!(DirRec::decode(&b), Some(d));
        // The change counter reads alone from its line, and only when intact.
        let at = DIR_CHANGES_OFF as usize;
        let mut pair = [0u8; 16];
        pair.copy_from_slice(&b[at..at + 16]);
        assert_eq!(dir_changes_decode(&pair), Some(d.changes));
        pair[r.below(16) as usize] ^= 1 << r.below(8);
        assert_eq!(dir_changes_decode(&pair), None);
        let h = HostIdent {
            state: r.below(3) as u32,
            node: r.next() as u32,
            epoch: r.next() | 1,
            lease_ns: r.next(),
            join_time: r.next(),
        };
        let mut l = [0u8; 64];
        h.encode(&mut l);
        assert_eq!(HostIdent::decode(&l), Some(h));
        let g = RegRec {
            fenced_epoch: r.next(),
            recovered_epoch: r.next(),
            replayed_seq: r.next(),
            orphan_head: r.next() as u32,
            orphan_count: r.next() as u32,
            chunks_owned: r.next() as u32,
            joined_epoch: r.next(),
        };
        let mut l = [0u8; REG_SIZE];
        g.encode(&mut l);
        assert_eq!(RegRec::decode(&l), g);
        let n = NsHdr {
            hwm: r.next() as u32,
            free_head: r.next() as u32,
            free_count: r.next() as u32,
            dirs_used: r.next() as u32,
            next_gen: r.next(),
            pending_recovery: r.next(),
            chunk_hint: r.next() as u32,
        };
        let mut l = [0u8; NSHDR_SIZE];
        n.encode(&mut l);
        assert_eq!(NsHdr::decode(&l), n);
        let c = ChunkRec {
            owner: r.next() as u32,
            epoch: r.next(),
        };
        assert_eq!(ChunkRec::decode(&c.encode()), c);
        let (st, dir, tag, t) = (
            r.below(3),
            r.below(0x4000) as u32,
            r.next() as u16,
            r.next() as u32,
        );
        assert_eq!(slot_unpack(slot_pack(st, dir, tag, t)), (st, dir, tag, t));
    }
}

#[test]
fn superblock_roundtrip_and_geometry() {
    let mut r = Rng(3);
    for _ in 0..500 {
        let total = (128 + r.below(16 << 20)) * UNIT / 16;
        let p = GeometryParams {
            total_size: total.max(MIN_POOL),
            max_hosts: 1 + r.below(64) as u32,
            entries: if r.below(2) == 0 {
                0
            } else {
                1 + r.below(1 << 20)
            },
            bytes_per_entry: 4096 << r.below(8),
            dirs: 1 + r.below(4000) as u32,
            allow_small: false,
        };
        let Some(g) = Geometry::compute(&p) else {
            continue;
        };
        assert!(g.validate(g.total_size));
        assert_eq!(g.data_off % UNIT, 0);
        assert!(g.data_off + g.data_units * UNIT <= g.total_size);
        assert!(g.entry_count * 4 <= g.index_slots * 3);
        if p.entries == 0 && p.bytes_per_entry == 65536 {
            assert!(g.entry_count >= g.total_size / 65536);
        }
        let sb = Superblock {
            version: VERSION,
            compat: 0,
            incompat: 0,
            ro_compat: 0,
            uuid: [r.next() as u8; 16],
            label: [b'x'; 64],
            mkfs_time: r.next(),
            geo: g,
        };
        let mut b = [0u8; SB_SIZE];
        sb.encode(&mut b);
        assert!(Superblock::crc_ok(&b));
        assert_eq!(Superblock::decode(&b), sb);
    }
    // 1M keys per 64 GiB with the defaults; 16 TiB fits.
    let g = Geometry::compute(&GeometryParams {
        total_size: 64 << 30,
        max_hosts: 64,
        entries: 0,
        bytes_per_entry: 65536,
        dirs: 1024,
        allow_small: false,
    })
    .unwrap();
    assert!(g.entry_count >= 1 << 20);
    assert!(Geometry::compute(&GeometryParams {
        total_size: MAX_POOL,
        max_hosts: 64,
        entries: 0,
        bytes_per_entry: 65536,
        dirs: 1024,
        allow_small: false
    })
    .is_some());
}

#[test]
fn decode_random_bytes_never_panics() {
    let mut r = Rng(4);
    for _ in 0..5000 {
        let mut b = [0u8; 512];
        b.iter_mut().for_each(|x| *x = r.next() as u8);
        let _ = EntryRec::decode(&b);
        let _ = DirRec::decode(&b);
        let _ = Superblock::decode(&b);
        let mut l = [0u8; 64];
        l.copy_from_slice(&b[..64]);
        let _ = HostIdent::decode(&l);
        let _ = RegRec::decode(&l);
        let _ = NsHdr::decode(&l);
        let _ = Geometry::compute(&GeometryParams {
            total_size: r.next(),
            max_hosts: r.next() as u32,
            entries: r.next(),
            bytes_per_entry: r.next(),
            dirs: r.next() as u32,
            allow_small: r.below(2) == 0,
        });
        let g = Superblock::decode(&b).geo;
        let _ = g.validate(r.next());
    }
}

#[test]
fn crc32c_known_vector() {
    // RFC 3720 test vector: CRC32C("123456789") = 0xE3069283.
    assert_eq!(marufs_core::crc::crc32c(b"123456789"), 0xE306_9283);
}
