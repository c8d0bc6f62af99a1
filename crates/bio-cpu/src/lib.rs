//! Runs biorule's tensor operations on the CPU: [`CpuBackend`], on ndarray with threaded GEMM and rayon.
//!
#![doc = include_str!("../README.md")]

mod backend;
mod conv;
mod elementwise;
mod linalg;
mod memory;
mod optim;
mod plasticity;
mod reduce;
mod select;
mod uninit;

pub use backend::CpuBackend;
pub use linalg::{GemmKernel, SPARSE_MAX_DENSITY};
pub use memory::keep_freed_memory;

/// Tensors with at least this many entries are processed in parallel with rayon; smaller ones serially.
pub const PARALLEL_MIN_ENTRIES: usize = 32 * 1024;
