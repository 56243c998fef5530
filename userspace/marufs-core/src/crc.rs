//! CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table driven, with the
//! table built at compile time by a `const fn`.

const POLY: u32 = 0x82F6_3B78;

const fn make_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = make_table();

/// Initial running state for [`update`].
pub const INIT: u32 = 0xFFFF_FFFF;

/// Feeds `data` into a running CRC32C state (start with [`INIT`]).
pub fn update(mut state: u32, data: &[u8]) -> u32 {
    for &b in data {
        let idx = ((state ^ u32::from(b)) & 0xFF) as usize;
        let t = match TABLE.get(idx) {
            Some(v) => *v,
            None => 0,
        };
        state = (state >> 8) ^ t;
    }
    state
}

/// Finishes a running state into the CRC value.
pub const fn finish(state: u32) -> u32 {
    state ^ 0xFFFF_FFFF
}

/// CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    finish(update(INIT, data))
}
