//! marufs core: the on-media format and every metadata operation of marufs, a
//! shared key/value file system over CXL shared memory.
//!
//! The crate is `no_std`, uses no `alloc`, no `unsafe` and has no dependencies, so
//! that the kernel module can compile its source files in by path as a nested
//! module. Inside the crate, modules refer to each other with `super::` paths only.
//!
//! See `Documentation/design/format.md` and `Documentation/design/protocol.md`.
#![cfg_attr(not(marufs_kernel), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod abi;
pub mod coherence;
pub mod crc;
pub mod error;
pub mod format;
pub mod fs;
pub mod fsck;
pub mod journal;
pub mod layout;
pub mod media;
pub mod names;
pub mod report;

pub use error::Error;
pub use fs::Fs;
pub use media::{Env, Media, MediaError};
