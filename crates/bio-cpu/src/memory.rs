//! Keeping freed memory in the process: the CPU backend allocates and frees tensors of tens of MB
//! per operation (a conv layer's `(batch·positions)×channels` tensors are 30 MB at batch 100).
//! With glibc's defaults each such free hands the pages back to the kernel (the top of the heap
//! is trimmed, or the block was its own `mmap`) and the next allocation faults them back in and
//! clears them: measured, a third of a conv epoch's CPU time went to the kernel (docs/PERFORMANCE.md,
//! "Convolutional layers").

use std::sync::Once;

/// Largest block glibc still serves from the heap instead of a fresh `mmap` (its maximum, 32 MiB
/// on 64-bit hosts; the default threshold starts at 128 KiB and only adapts upward).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Tells glibc's `malloc`, once per process, to keep freed heap memory for reuse: no trimming of
/// the heap's top, blocks up to 32 MiB from the heap. Memory stays at its peak
/// instead of being returned and faulted in again at every step; no value changes. Does nothing on
/// other C libraries. Called by [`crate::CpuBackend::new`] and [`crate::CpuBackend::with_threads`].
pub fn keep_freed_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // glibc's <malloc.h>.
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            #[allow(unsafe_code)]
            // SAFETY: `mallopt` is glibc's documented, thread-safe (it takes the arena lock)
            // setter of two integer tuning parameters; it touches no memory of ours, and
            // the values are in its accepted ranges (a refused value is ignored, returning 0).
            unsafe {
                unsafe extern "C" {
                    fn mallopt(param: i32, value: i32) -> i32;
                }
                mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
                mallopt(M_TRIM_THRESHOLD, i32::MAX);
            }
        }
    });
}
