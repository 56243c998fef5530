// SPDX-License-Identifier: GPL-2.0

//! The VFS/mm/dax abstraction layer: every `unsafe` block and FFI call of the
//! module lives below this module. Each submodule mirrors one C operation table
//! and exposes a safe trait for the filesystem logic to implement.

pub mod dax;
pub mod file;
pub mod fs_context;
pub mod fs_type;
pub mod inode;
pub mod ioctl;
pub mod mm;
mod shadow;
pub(crate) mod shim;
pub mod super_block;
pub mod sys;
pub mod work;

/// A C operation table in a `static`. Tables are built at compile time and
/// only read afterwards; some contain raw pointers (e.g. `owner`), which makes
/// them `!Sync` in Rust although sharing them is exactly what C does.
#[repr(transparent)]
pub(crate) struct Table<T>(pub(crate) T);

// SAFETY: a `Table` is immutable after compile-time initialisation; its raw
// pointers are never written through by Rust.
unsafe impl<T> Sync for Table<T> {}
