// SPDX-License-Identifier: GPL-2.0

//! The VFS/mm/dax abstraction layer: every `unsafe` block and FFI call of the
//! module lives below this module. Each submodule mirrors one C operation table
//! and exposes a safe trait for the filesystem logic to implement.

pub mod dax;
pub mod fs_context;
pub mod fs_type;
pub(crate) mod shim;
pub mod super_block;
pub mod sys;
