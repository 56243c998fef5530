/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/libfuzzer_sys-f35478dc4126f149.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libfuzzer-sys-0.4.13/src/lib.rs

/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/liblibfuzzer_sys-f35478dc4126f149.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libfuzzer-sys-0.4.13/src/lib.rs

/work/main/userspace/marufs-core/fuzz/target/x86_64-unknown-linux-gnu/release/deps/liblibfuzzer_sys-f35478dc4126f149.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libfuzzer-sys-0.4.13/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/libfuzzer-sys-0.4.13/src/lib.rs:
