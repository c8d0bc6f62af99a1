//! Tests that run on every machine, with or without a GPU.

use std::panic::catch_unwind;

use bio_cuda::{CudaBackend, CudaError, availability};

/// Without the CUDA libraries (as on the build machines), `new` must return exactly the missing
/// library's error, and it must never panic. On a GPU machine it may succeed.
#[test]
fn new_returns_an_error_without_panicking_when_cuda_is_missing() {
    let made = catch_unwind(CudaBackend::new).expect("CudaBackend::new panicked");
    match (availability(), made) {
        (Err(missing), Err(got)) => {
            assert_eq!(got, missing);
            assert!(got.to_string().contains("--backend cpu"), "the message should say what to do: {got}");
        }
        (Err(missing), Ok(_)) => panic!("availability() says {missing:?} but CudaBackend::new() succeeded"),
        (Ok(()), Err(e)) => eprintln!("CUDA libraries present, backend unavailable: {e}"),
        (Ok(()), Ok(b)) => eprintln!("CUDA backend available: {b:?}"),
    }
}

/// A device ordinal that cannot exist is an error on every machine, never a panic.
#[test]
fn an_absent_device_is_an_error() {
    let made = catch_unwind(|| CudaBackend::with_device(1 << 20)).expect("with_device panicked");
    let err = made.expect_err("device 2^20 cannot exist");
    if availability().is_ok() {
        assert!(matches!(err, CudaError::NoDevice { ordinal, .. } if ordinal == 1 << 20), "{err:?}");
    }
}
