/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/marufs_media-4c066e87c32f6808.d: /work/main/userspace/marufs-media/src/lib.rs

/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/libmarufs_media-4c066e87c32f6808.rlib: /work/main/userspace/marufs-media/src/lib.rs

/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/libmarufs_media-4c066e87c32f6808.rmeta: /work/main/userspace/marufs-media/src/lib.rs

/work/main/userspace/marufs-media/src/lib.rs:
