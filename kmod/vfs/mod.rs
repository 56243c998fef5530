// SPDX-License-Identifier: GPL-2.0

//! The VFS/mm/dax abstraction layer: every `unsafe` block and FFI call of the
//! module lives below this module. Each submodule mirrors one C operation
//! table: its trampolines are generic over the filesystem traits it
//! declares ([`Tables`]), and the objects they hand out are typed by the
//! filesystem ([`super_block::SuperBlock`], [`inode::INode`],
//! [`file::File`]), so one filesystem's private data can never be read as
//! another's. The filesystem above decides (policy); this layer only carries
//! the kernel's objects to it and its answers back (mechanism).

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

use core::marker::PhantomData;

/// Everything a filesystem implements to be mounted through this layer.
pub trait FsOps: mm::Faults + ioctl::Ioctls + work::Periodic {}
impl<T: mm::Faults + ioctl::Ioctls + work::Periodic> FsOps for T {}

/// The C operation tables of filesystem `T`, as associated constants (one
/// `impl` block per submodule). `&Tables::<T>::X` is a promoted constant,
/// i.e. a `'static` table the kernel may keep pointers to; every function
/// pointer in it is a trampoline instantiated for `T`, so an object created
/// with `T`'s tables is only ever handed back to `T`.
pub(crate) struct Tables<T>(PhantomData<T>);

/// The errno of `e` as a pointer (`ERR_PTR`).
pub(crate) fn err_ptr<P>(e: kernel::error::Error) -> *mut P {
    e.to_errno() as isize as *mut P
}
