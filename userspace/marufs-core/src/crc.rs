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

const fn make_tables() -> [[u32; 256]; 8] {
    let t0 = make_table();
    let mut t = [[0u32; 256]; 8];
    t[0] = t0;
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t0[(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

/// Slicing-by-8 tables (8 KiB, built at compile time).
static TABLES: [[u32; 256]; 8] = make_tables();

/// Initial running state for [`update`].
pub const INIT: u32 = 0xFFFF_FFFF;

/// Feeds `data` into a running CRC32C state (start with [`INIT`]).
pub fn update(mut state: u32, data: &[u8]) -> u32 {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = &TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let one = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ state;
        let two = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        state = t7[(one as u8) as usize]
            ^ t6[((one >> 8) as u8) as usize]
            ^ t5[((one >> 16) as u8) as usize]
            ^ t4[((one >> 24) as u8) as usize]
            ^ t3[(two as u8) as usize]
            ^ t2[((two >> 8) as u8) as usize]
            ^ t1[((two >> 16) as u8) as usize]
            ^ t0[((two >> 24) as u8) as usize];
    }
    for &b in chunks.remainder() {
        state = (state >> 8) ^ t0[((state ^ u32::from(b)) as u8) as usize];
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
