//! The shared conformance suite of `bio_core::conformance`, run against `CudaBackend`.
//!
//! Ignored by default (this crate is built and tested on machines without a GPU). On a GPU machine:
//! `cargo test -p bio-cuda --release -- --include-ignored --test-threads=1`. Run that way without a
//! usable GPU, every test fails (the constructor returns `None`), never passes silently.

bio_core::conformance_tests!(
    #[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
    || bio_cuda::CudaBackend::new().ok()
);
