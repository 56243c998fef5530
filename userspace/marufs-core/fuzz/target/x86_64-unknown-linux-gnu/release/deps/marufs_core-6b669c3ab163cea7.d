/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/marufs_core-6b669c3ab163cea7.d: /work/main/userspace/marufs-core/src/lib.rs /work/main/userspace/marufs-core/src/crc.rs /work/main/userspace/marufs-core/src/error.rs /work/main/userspace/marufs-core/src/format.rs /work/main/userspace/marufs-core/src/fs.rs /work/main/userspace/marufs-core/src/fsck.rs /work/main/userspace/marufs-core/src/journal.rs /work/main/userspace/marufs-core/src/layout.rs /work/main/userspace/marufs-core/src/media.rs

/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/libmarufs_core-6b669c3ab163cea7.rlib: /work/main/userspace/marufs-core/src/lib.rs /work/main/userspace/marufs-core/src/crc.rs /work/main/userspace/marufs-core/src/error.rs /work/main/userspace/marufs-core/src/format.rs /work/main/userspace/marufs-core/src/fs.rs /work/main/userspace/marufs-core/src/fsck.rs /work/main/userspace/marufs-core/src/journal.rs /work/main/userspace/marufs-core/src/layout.rs /work/main/userspace/marufs-core/src/media.rs

/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/libmarufs_core-6b669c3ab163cea7.rmeta: /work/main/userspace/marufs-core/src/lib.rs /work/main/userspace/marufs-core/src/crc.rs /work/main/userspace/marufs-core/src/error.rs /work/main/userspace/marufs-core/src/format.rs /work/main/userspace/marufs-core/src/fs.rs /work/main/userspace/marufs-core/src/fsck.rs /work/main/userspace/marufs-core/src/journal.rs /work/main/userspace/marufs-core/src/layout.rs /work/main/userspace/marufs-core/src/media.rs

/work/main/userspace/marufs-core/src/lib.rs:
/work/main/userspace/marufs-core/src/crc.rs:
/work/main/userspace/marufs-core/src/error.rs:
/work/main/userspace/marufs-core/src/format.rs:
/work/main/userspace/marufs-core/src/fs.rs:
/work/main/userspace/marufs-core/src/fsck.rs:
/work/main/userspace/marufs-core/src/journal.rs:
/work/main/userspace/marufs-core/src/layout.rs:
/work/main/userspace/marufs-core/src/media.rs:
