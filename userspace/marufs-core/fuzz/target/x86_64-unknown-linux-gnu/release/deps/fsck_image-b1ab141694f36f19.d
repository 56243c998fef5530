/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/fsck_image-b1ab141694f36f19.d: fuzz_targets/fsck_image.rs

/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/fsck_image-b1ab141694f36f19: fuzz_targets/fsck_image.rs

fuzz_targets/fsck_image.rs:
