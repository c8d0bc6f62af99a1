//! Output blocks written before they are read: the two ways a block of `MaybeUninit<f32>` becomes
//! initialized `f32`s (zeroed here, or written in full by the caller), stated once.

use std::mem::MaybeUninit;

/// `block` with every entry set to zero, as initialized `f32`s.
pub(crate) fn zeroed(block: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    block.fill(MaybeUninit::new(0.0));
    // SAFETY: every entry was written just above.
    #[allow(unsafe_code)]
    unsafe {
        written(block)
    }
}

/// A block whose every entry has been written, as `f32`s.
///
/// # Safety
/// Every entry of `block` is initialized.
#[allow(unsafe_code)]
pub(crate) unsafe fn written(block: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: initialized (the caller's promise), and `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(block as *mut [MaybeUninit<f32>] as *mut [f32]) }
}
