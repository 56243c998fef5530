// SPDX-License-Identifier: GPL-2.0

//! marufs: a shared KV-cache filesystem over CXL shared-memory DAX devices.
//!
//! Module structure (see `Documentation/design/kernel.md`):
//! - [`vfs`]: the only place with `unsafe` and FFI. It mirrors the kernel's C
//!   operation tables one to one (file_system_type, fs_context, ...).
//! - [`fs`]: the filesystem logic, safe Rust over the `vfs` abstractions.
//! - [`marufs_core`]: the on-media format and protocol shared with the tools.

use kernel::prelude::*;

mod batch;
pub mod fs;
pub mod media;
pub mod vfs;

/// The on-media format and metadata protocol, compiled in from
/// `userspace/marufs-core` (the same source the tools build).
#[path = "../userspace/marufs-core/src/lib.rs"]
pub mod marufs_core;

module! {
    type: MarufsModule,
    name: "marufs",
    authors: ["marufs developers"],
    description: "marufs: shared KV-cache filesystem on CXL shared-memory DAX",
    license: "GPL",
    params: {
        noncoherent_test: bool {
            default: false,
            description: "TEST ONLY: see the pool through a simulated per-host non-coherent write-back cache (vfs/shadow.rs); never set in production",
        },
        test_skip: u32 {
            default: 0,
            description: "TEST ONLY (negative controls): 1 = skip the data write-back at publish, 2 = skip readers' data invalidations, 4 = ignore page references (pins) when giving up a key's units, 8 = allow the hold-lock test ioctl, 16 = sleep 500 ms after zeroing each unit of a growing key, 32 = sleep 2.5 leases after zeroing each unit ahead of use; never set in production",
        },
    },
}

/// The `noncoherent_test` module parameter (see `vfs/shadow.rs`).
pub(crate) fn noncoherent_test() -> bool {
    module_parameters::noncoherent_test.value()
}

/// The `test_skip` module parameter (see [`fs::TEST_SKIP_WRITE_BACK`]).
pub(crate) fn test_skip() -> u32 {
    module_parameters::test_skip.value()
}

/// The loaded module: owns the filesystem type registration.
///
/// # Invariants
///
/// `reg` is registered with the VFS for as long as the module is loaded.
#[pin_data]
struct MarufsModule {
    #[pin]
    reg: vfs::fs_type::Registration,
}

impl kernel::InPlaceModule for MarufsModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!("registering filesystem type\n");
        try_pin_init!(Self {
            reg <- vfs::fs_type::Registration::new::<fs::Marufs>(module),
        })
    }
}
