//! Property check of the entry decoder and `EntryRec::locate` for records
//! whose checksum is right but whose extents may be anything (a bug, a torn
//! write the CRC missed, a hostile peer kernel): whatever the bytes, an
//! accepted record only ever locates bytes inside its own units of the data
//! area. Shared by the bounded test (`tests/extents.rs`) and the cargo-fuzz
//! target `entry_extents`.

use marufs_core::format::FormatOptions;
use marufs_core::layout::{entry_state, EntryRec, Geometry, ENTRY_SIZE, MAX_EXTENTS, UNIT};

/// The geometries cases run against: a tiny pool, one whose last chunk is
/// partial, and a large one (units near the top of the u32 range do not exist
/// in any of them).
pub fn geometries() -> Vec<Geometry> {
    [
        (64 * UNIT, 4, 64, 4),
        (203 * UNIT + 4096, 8, 256, 8),
        (1 << 40, 64, 1 << 16, 64),
    ]
    .iter()
    .map(|&(size, hosts, entries, dirs)| {
        Geometry::compute(&FormatOptions::small(size, hosts, entries, dirs).params)
            .expect("geometry")
    })
    .collect()
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    for (k, x) in w.iter_mut().enumerate() {
        *x = b.get(i + k).copied().unwrap_or(0);
    }
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from(u32_at(b, i)) | (u64::from(u32_at(b, i + 4)) << 32)
}

/// Builds a checksummed record from `data` (extents over the whole u32 range,
/// biased towards the edges of the geometry), decodes it as the filesystem
/// does and checks every position it locates. `Ok(accepted)`; `Err`
/// describes a violation.
pub fn check_case(geos: &[Geometry], data: &[u8]) -> Result<bool, String> {
    let g = &geos[usize::from(data.first().copied().unwrap_or(0)) % geos.len()];
    let mode = data.get(1).copied().unwrap_or(0);
    let mut e = EntryRec {
        state: [
            entry_state::FREE,
            entry_state::CREATING,
            entry_state::PUBLISHED,
            entry_state::UNLINKED,
        ][usize::from(mode & 3)],
        nextents: u32::from(data.get(2).copied().unwrap_or(0)) % (MAX_EXTENTS as u32 + 1),
        generation: 1,
        ..Default::default()
    };
    let du = g.data_units;
    let cu = u64::from(g.chunk_units);
    for (i, x) in e.extents.iter_mut().enumerate() {
        let raw_start = u32_at(data, 8 + i * 8);
        let raw_count = u32_at(data, 12 + i * 8);
        // Half the cases near the interesting edges (end of the data area,
        // chunk boundaries, u32::MAX), half raw.
        if mode & 4 != 0 {
            let anchor = match raw_start % 4 {
                0 => du,
                1 => (u64::from(raw_start >> 2) % du.max(1)) / cu.max(1) * cu,
                2 => u64::from(u32::MAX),
                _ => 0,
            };
            let delta = u64::from(raw_start >> 8) % 5;
            x.start = anchor.wrapping_add(delta).wrapping_sub(2) as u32;
            x.count = match raw_count % 4 {
                0 => raw_count >> 2,
                1 => (raw_count >> 2) % 4,
                2 => u32::MAX - (raw_count >> 2) % 4,
                _ => (cu as u32)
                    .wrapping_sub(1)
                    .wrapping_add((raw_count >> 2) % 3),
            };
        } else {
            x.start = raw_start;
            x.count = raw_count;
        }
    }
    e.size = if mode & 8 != 0 {
        u64_at(data, 80)
    } else {
        e.units()
            .saturating_mul(UNIT)
            .saturating_sub(u64_at(data, 80) % (4 * UNIT))
    };
    let mut b = [0u8; ENTRY_SIZE];
    e.encode(&mut b);
    let mut d = EntryRec::default();
    if !d.decode_from(&b) {
        return Err(format!("a checksummed record did not decode: {e:?}"));
    }
    // The reference judgement, in u128 so that no u64 wrap can agree with a
    // wrap in the code under test.
    let used = &d.extents[..d.nextents as usize];
    let units: u128 = used.iter().map(|x| u128::from(x.count)).sum();
    let free = d.state == entry_state::FREE;
    let ok = (free || u128::from(d.size) <= units * u128::from(UNIT))
        && used.iter().all(|x| {
            let s = u128::from(x.start);
            let end = s + u128::from(x.count);
            x.count > 0 && end <= u128::from(du) && s / u128::from(cu) == (end - 1) / u128::from(cu)
        });
    if d.extents_valid(g) != ok {
        return Err(format!(
            "extents_valid = {} but the reference says {ok}: {d:?}",
            d.extents_valid(g)
        ));
    }
    let data_lo = g.data_off;
    let data_hi = u128::from(g.data_off) + u128::from(du) * u128::from(UNIT);
    let mut probes = vec![
        0,
        d.size.saturating_sub(1),
        d.size,
        u64_at(data, 88),
        u64::MAX,
    ];
    let mut file_off = 0u64;
    for x in used {
        probes.push(file_off);
        file_off = file_off.saturating_add(u64::from(x.count).saturating_mul(UNIT));
        probes.push(file_off.saturating_sub(1));
        probes.push(file_off);
    }
    for pos in probes {
        let l = d.locate(g, pos);
        if !ok || free || pos >= d.size {
            if l.is_some() {
                return Err(format!(
                    "locate({pos}) = {l:?} on a refused record or past its end: {d:?}"
                ));
            }
            continue;
        }
        let Some(l) = l else {
            return Err(format!("locate({pos}) = None inside a valid key: {d:?}"));
        };
        let lo = u128::from(l.off);
        let hi = lo + u128::from(l.len);
        if l.len == 0 || lo < u128::from(data_lo) || hi > data_hi {
            return Err(format!(
                "locate({pos}) = {l:?} outside the data area: {d:?}"
            ));
        }
        // Inside one of the key's own extents, at the right place.
        let mut fo = 0u128;
        let mut found = false;
        for x in used {
            let xs = u128::from(g.data_off) + u128::from(x.start) * u128::from(UNIT);
            let xe = xs + u128::from(x.count) * u128::from(UNIT);
            let flen = u128::from(x.count) * u128::from(UNIT);
            if u128::from(pos) >= fo && u128::from(pos) < fo + flen {
                found = lo == xs + (u128::from(pos) - fo) && hi <= xe;
                break;
            }
            fo += flen;
        }
        if !found {
            return Err(format!(
                "locate({pos}) = {l:?} is not the key's own byte: {d:?}"
            ));
        }
    }
    Ok(ok && !free)
}
