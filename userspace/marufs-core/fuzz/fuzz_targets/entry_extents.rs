//! Entry records with valid checksums and arbitrary extents (the whole u32
//! range of starts and counts, sizes over u64): the decoder refuses what lies
//! outside the data area, and what it accepts locates only the key's own
//! bytes (see marufs_sim::extents).
#![no_main]

use libfuzzer_sys::fuzz_target;
use marufs_sim::extents::{check_case, geometries};
use std::sync::OnceLock;

static GEOS: OnceLock<Vec<marufs_core::layout::Geometry>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let geos = GEOS.get_or_init(geometries);
    if let Err(e) = check_case(geos, data) {
        panic!("{e}");
    }
});
