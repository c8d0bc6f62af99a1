//! The CUDA C source of every kernel, compiled once per [`crate::CudaBackend`] by NVRTC at run time,
//! and the list of kernel names the Rust side loads and launches.
//!
//! Numerical choices, all made to match `bio_core::ReferenceBackend` closely:
//! - compiled with `--fmad=false` (no fused multiply-add contraction), IEEE division and square
//!   root, no flush-to-zero and no fast math, so elementwise ops round like the CPU code;
//! - sums (reductions, softmax normalizers) accumulate in `double`, like the reference;
//! - Max / Min reductions combine with `fmax` / `fmin`, which skip NaN like `f64::max` / `f64::min`;
//! - `bio_kth_largest_rows` is an exact radix select on the order-preserving 32-bit key of each
//!   float, which orders values exactly like `f32::total_cmp` (so `-0.0 < 0.0`, and NaN with the
//!   sign bit clear sorts above `+∞`);
//! - `bio_argmax_rows` reproduces the reference's scan (`v > best`, first index on ties; a NaN in
//!   column 0 makes the answer 0, other NaNs are never chosen).
//!
//! - the conv kernels (`bio_unfold`, `bio_fold`, `bio_max_pool`, `bio_max_pool_backward`) compute
//!   each output entry in one thread from the host definitions of `bio_core::backend::conv`: fold
//!   and the pooling gradient gather their sums in the order the host scatters them (no atomics),
//!   so all four equal the definitions bit for bit; the fused per-position kernels (`bio_kwta_rows`,
//!   `bio_relative_to_row_max`, `bio_unit_l2_rows`) equal the composed chain of the kernels above
//!   bit for bit when launched with the same block size.
//!
//! Every per-row kernel expects a power-of-two `blockDim.x` of at most [`MAX_ROW_BLOCK`], as does
//! `bio_count_positive`; `bio_reduce_cols` expects `blockDim = (32, COL_BLOCK_Y)`.

/// Largest block used by the per-row kernels (the size of their shared arrays).
pub(crate) const MAX_ROW_BLOCK: u32 = 256;
/// Rows handled in parallel by one block of `bio_reduce_cols` (its `blockDim.y`).
pub(crate) const COL_BLOCK_Y: u32 = 16;
/// Threads per block of the elementwise kernels.
pub(crate) const ELEMENTWISE_BLOCK: u32 = 256;
/// Threads per block of `bio_sparse_matmul` (its shared array's size).
pub(crate) const SPARSE_BLOCK: u32 = 256;
/// Output columns per thread of `bio_sparse_matmul` (registers per thread).
pub(crate) const SPARSE_COLS_PER_THREAD: u32 = 4;
/// Longest row `bio_plasticity_step` keeps in shared memory (the weights and the pull: 32 KiB);
/// longer rows take the composed definition.
pub(crate) const FUSED_MAX_COLS: usize = 4096;

/// One kernel of [`SOURCE`]; the discriminant indexes the loaded functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    Fill,
    Map,
    Zip,
    ZipAssign,
    Lincomb,
    ReduceRows,
    ReduceCols,
    KthLargestRows,
    SoftmaxRows,
    ArgmaxRows,
    AdamStep,
    MomentumStep,
    SparseMatmul,
    PlasticityStep,
    Unfold,
    Fold,
    MaxPool,
    MaxPoolBackward,
    KwtaRows,
    RelativeToRowMax,
    UnitL2Rows,
    CountPositive,
}

impl Kernel {
    /// Every kernel, in discriminant order.
    pub(crate) const ALL: [Kernel; 22] = [
        Kernel::Fill,
        Kernel::Map,
        Kernel::Zip,
        Kernel::ZipAssign,
        Kernel::Lincomb,
        Kernel::ReduceRows,
        Kernel::ReduceCols,
        Kernel::KthLargestRows,
        Kernel::SoftmaxRows,
        Kernel::ArgmaxRows,
        Kernel::AdamStep,
        Kernel::MomentumStep,
        Kernel::SparseMatmul,
        Kernel::PlasticityStep,
        Kernel::Unfold,
        Kernel::Fold,
        Kernel::MaxPool,
        Kernel::MaxPoolBackward,
        Kernel::KwtaRows,
        Kernel::RelativeToRowMax,
        Kernel::UnitL2Rows,
        Kernel::CountPositive,
    ];

    /// The `extern "C"` name of the kernel in [`SOURCE`].
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kernel::Fill => "bio_fill",
            Kernel::Map => "bio_map",
            Kernel::Zip => "bio_zip",
            Kernel::ZipAssign => "bio_zip_assign",
            Kernel::Lincomb => "bio_lincomb",
            Kernel::ReduceRows => "bio_reduce_rows",
            Kernel::ReduceCols => "bio_reduce_cols",
            Kernel::KthLargestRows => "bio_kth_largest_rows",
            Kernel::SoftmaxRows => "bio_softmax_rows",
            Kernel::ArgmaxRows => "bio_argmax_rows",
            Kernel::AdamStep => "bio_adam_step",
            Kernel::MomentumStep => "bio_momentum_step",
            Kernel::SparseMatmul => "bio_sparse_matmul",
            Kernel::PlasticityStep => "bio_plasticity_step",
            Kernel::Unfold => "bio_unfold",
            Kernel::Fold => "bio_fold",
            Kernel::MaxPool => "bio_max_pool",
            Kernel::MaxPoolBackward => "bio_max_pool_backward",
            Kernel::KwtaRows => "bio_kwta_rows",
            Kernel::RelativeToRowMax => "bio_relative_to_row_max",
            Kernel::UnitL2Rows => "bio_unit_l2_rows",
            Kernel::CountPositive => "bio_count_positive",
        }
    }

    /// The kernel's parameter list, as the PTX `.param` types NVRTC gives the `extern "C"`
    /// signature in [`SOURCE`]. Every launch checks the arguments it pushes against this list
    /// (`crate::device::Launch`), and the NVRTC test checks it against the compiled PTX.
    pub(crate) fn params(self) -> &'static [Param] {
        use Param::{F32, Ptr, U32, U64};
        match self {
            Kernel::Fill => &[Ptr, U64, U32],
            Kernel::Map => &[Ptr, Ptr, U64, U32, F32, F32],
            Kernel::Zip => &[Ptr, Ptr, Ptr, U64, U64, U64, U64, U32],
            Kernel::ZipAssign => &[Ptr, Ptr, U64, U64, U64, U64, U32],
            Kernel::Lincomb => &[Ptr, Ptr, Ptr, U64, F32, F32],
            Kernel::ReduceRows | Kernel::ReduceCols => &[Ptr, Ptr, U64, U64, U32],
            Kernel::KthLargestRows => &[Ptr, Ptr, U64, U64, U64],
            Kernel::SoftmaxRows | Kernel::ArgmaxRows => &[Ptr, Ptr, U64, U64],
            Kernel::AdamStep => &[Ptr, Ptr, Ptr, Ptr, U64, F32, F32, F32, F32],
            Kernel::MomentumStep => &[Ptr, Ptr, Ptr, U64, F32, F32],
            Kernel::SparseMatmul => &[Ptr, Ptr, Ptr, U64, U64, U64, U64, U64],
            Kernel::PlasticityStep => &[Ptr, Ptr, Ptr, Ptr, Ptr, U64, U64, U64, U32, F32, F32, F32, F32],
            // out, input, then the batch and the window: height, width, channels, kernel, stride, padding.
            Kernel::Unfold | Kernel::Fold | Kernel::MaxPool => &[Ptr, Ptr, U64, U64, U64, U64, U64, U64, U64],
            Kernel::MaxPoolBackward => &[Ptr, Ptr, Ptr, U64, U64, U64, U64, U64, U64, U64],
            Kernel::KwtaRows => &[Ptr, Ptr, Ptr, U64, U64, U64],
            Kernel::RelativeToRowMax | Kernel::UnitL2Rows => &[Ptr, Ptr, U64, U64],
            Kernel::CountPositive => &[Ptr, Ptr, U64],
        }
    }
}

/// A kernel parameter as PTX declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// A device pointer (`.u64`).
    Ptr,
    /// `u64` (`.u64`).
    U64,
    /// `int` or `unsigned int` (`.u32`).
    U32,
    /// `float` (`.f32`).
    F32,
}

impl Param {
    /// The PTX type of the parameter (read by the NVRTC test).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn ptx_type(self) -> &'static str {
        match self {
            Param::Ptr | Param::U64 => ".u64",
            Param::U32 => ".u32",
            Param::F32 => ".f32",
        }
    }
}

/// Bits of the `flags` argument of `bio_plasticity_step`.
pub(crate) mod plasticity {
    /// L2 norm (else L1).
    pub(crate) const L2: u32 = 1;
    /// Mixed-sign layer: normalize magnitudes.
    pub(crate) const SIGNED: u32 = 2;
    /// Additive change (else multiplicative).
    pub(crate) const ADDITIVE: u32 = 4;
    /// Structural plasticity (pruning).
    pub(crate) const PRUNE: u32 = 8;
    /// Synaptic scaling.
    pub(crate) const SCALE: u32 = 16;
}

/// Integer codes of `bio_core::Unary`, shared with `unary_apply` in [`SOURCE`].
pub(crate) mod unary {
    pub(crate) const RELU: i32 = 0;
    pub(crate) const STEP: i32 = 1;
    pub(crate) const EXP: i32 = 2;
    pub(crate) const LN: i32 = 3;
    pub(crate) const SQRT: i32 = 4;
    pub(crate) const ABS: i32 = 5;
    pub(crate) const SIGN: i32 = 6;
    pub(crate) const SQUARE: i32 = 7;
    pub(crate) const RECIP: i32 = 8;
    pub(crate) const SCALE: i32 = 9;
    pub(crate) const OFFSET: i32 = 10;
    pub(crate) const POWF: i32 = 11;
    pub(crate) const CLAMP: i32 = 12;
}

/// Integer codes of `bio_core::Binary`, shared with `binary_apply` in [`SOURCE`].
pub(crate) mod binary {
    pub(crate) const ADD: i32 = 0;
    pub(crate) const SUB: i32 = 1;
    pub(crate) const MUL: i32 = 2;
    pub(crate) const DIV: i32 = 3;
    pub(crate) const MAX: i32 = 4;
    pub(crate) const MIN: i32 = 5;
    pub(crate) const GREATER: i32 = 6;
}

/// Integer codes of `bio_core::Reduce`, shared with the reduction kernels in [`SOURCE`].
pub(crate) mod reduce {
    pub(crate) const SUM: i32 = 0;
    pub(crate) const MEAN: i32 = 1;
    pub(crate) const MAX: i32 = 2;
    pub(crate) const MIN: i32 = 3;
}

/// The CUDA C source of all kernels (one NVRTC program), in `kernels.cu` beside this file.
pub(crate) const SOURCE: &str = include_str!("kernels.cu");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_defines_every_kernel_the_rust_side_launches() {
        for (i, k) in Kernel::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "Kernel::ALL is out of discriminant order at {k:?}");
            let signature = format!("__global__ void {}(", k.name());
            assert!(SOURCE.contains(&signature), "kernel source lacks `{signature}`");
        }
        let defined = SOURCE.matches("__global__ void ").count();
        assert_eq!(defined, Kernel::ALL.len(), "the source defines kernels the Rust side never loads");
    }

    /// The launch code pushes as many arguments as [`Kernel::params`] lists, at every launch site,
    /// and launches every kernel (a text scan of the launch code: no GPU needed; on a GPU each launch
    /// also checks the types it pushes, `device::Launch`).
    #[test]
    fn every_launch_site_pushes_the_listed_number_of_arguments() {
        let code = [include_str!("ops.rs"), include_str!("device.rs")];
        let mut launched = Vec::new();
        for file in code {
            let mut rest = file;
            while let Some(at) = rest.find("launch_of(Kernel::") {
                let after = &rest[at + "launch_of(Kernel::".len()..];
                let name = &after[..after.find(')').expect("closing parenthesis")];
                let kernel = *Kernel::ALL.iter().find(|k| format!("{k:?}") == name).expect("a Kernel variant");
                let end = after.find(".launch(").unwrap_or_else(|| panic!("launch_of({name}) is never launched"));
                let pushed = after[..end].matches(".arg(").count();
                assert_eq!(pushed, kernel.params().len(), "the launch of {} pushes {pushed} arguments", kernel.name());
                launched.push(kernel);
                rest = &after[end..];
            }
        }
        for k in Kernel::ALL {
            assert!(launched.contains(&k), "{} is compiled but never launched", k.name());
        }
    }

    #[test]
    fn shared_sizes_agree_with_the_source() {
        assert!(SOURCE.contains(&format!("#define MAX_ROW_BLOCK {MAX_ROW_BLOCK}\n")));
        assert!(SOURCE.contains(&format!("#define COL_BLOCK_Y {COL_BLOCK_Y}\n")));
        assert!(SOURCE.contains(&format!("#define SPARSE_BLOCK {SPARSE_BLOCK}\n")));
        assert!(SOURCE.contains(&format!("#define SPARSE_COLS_PER_THREAD {SPARSE_COLS_PER_THREAD}\n")));
        assert!(SOURCE.contains(&format!("#define FUSED_MAX_COLS {FUSED_MAX_COLS}\n")));
        assert!(MAX_ROW_BLOCK.is_power_of_two() && COL_BLOCK_Y.is_power_of_two());
        // bio_count_positive runs with the elementwise block and combines it in a MAX_ROW_BLOCK array.
        assert!(ELEMENTWISE_BLOCK.is_power_of_two() && ELEMENTWISE_BLOCK <= MAX_ROW_BLOCK);
    }

    #[test]
    fn source_is_balanced_and_has_no_nul() {
        assert!(!SOURCE.contains('\0'), "NVRTC takes a C string");
        for (open, close) in [('{', '}'), ('(', ')'), ('[', ']')] {
            assert_eq!(SOURCE.matches(open).count(), SOURCE.matches(close).count(), "unbalanced {open}{close}");
        }
    }

    /// The host-side model of the radix-select key must order like `f32::total_cmp`.
    #[test]
    fn key_order_is_total_cmp_order() {
        fn key(x: f32) -> u32 {
            let u = x.to_bits();
            if u & 0x8000_0000 != 0 { !u } else { u | 0x8000_0000 }
        }
        fn unkey(k: u32) -> f32 {
            f32::from_bits(if k & 0x8000_0000 != 0 { k & 0x7fff_ffff } else { !k })
        }
        let values = [
            f32::NEG_INFINITY,
            -3.5,
            -f32::MIN_POSITIVE / 4.0,
            -0.0,
            0.0,
            f32::MIN_POSITIVE / 4.0,
            1.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
        ];
        for &x in &values {
            assert_eq!(unkey(key(x)).to_bits(), x.to_bits());
            for &y in &values {
                assert_eq!(key(x).cmp(&key(y)), x.total_cmp(&y), "{x} vs {y}");
            }
        }
    }
}
