//! The pixel range every model, attack and front end assumes: images with values in [0, 1]. One
//! check, used by the attacks (`bio_eval`'s input checks) and by every Python entry point that
//! takes images, so that 0–255 images are refused with the same message everywhere instead of
//! training a diverging network or attacking outside the image space.

use thiserror::Error;

use crate::tensor::Matrix;

/// A pixel outside [0, 1]: where, and its value.
#[derive(Clone, Copy, Debug, PartialEq, Error)]
#[error("pixel values must lie in [0, 1], found {value} (image {image}, pixel {pixel}); scale 0-255 images by 1/255")]
pub struct PixelOutOfRange {
    /// Row of the image (from 0).
    pub image: usize,
    /// Index of the pixel in the image (from 0).
    pub pixel: usize,
    /// The value found (NaN included).
    pub value: f32,
}

/// Checks that every value of `x` (one image per row) lies in [0, 1]:
/// `∀ i, j: 0 ≤ x[i, j] ≤ 1`; the first value outside (NaN counts as outside) is the error.
pub fn check_unit_pixels(x: &Matrix) -> Result<(), PixelOutOfRange> {
    let cols = x.cols().max(1);
    match x.as_slice().iter().position(|v| !(0.0..=1.0).contains(v)) {
        None => Ok(()),
        Some(i) => Err(PixelOutOfRange { image: i / cols, pixel: i % cols, value: x.as_slice()[i] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pixel_outside_the_unit_interval_is_named() {
        assert!(check_unit_pixels(&Matrix::new(2, 2, vec![0.0, 1.0, 0.5, 0.25]).unwrap()).is_ok());
        let err = check_unit_pixels(&Matrix::new(2, 2, vec![0.0, 1.0, 255.0, -1.0]).unwrap()).unwrap_err();
        assert_eq!(err, PixelOutOfRange { image: 1, pixel: 0, value: 255.0 });
        assert!(err.to_string().starts_with("pixel values must lie in [0, 1], found 255 (image 1, pixel 0)"));
        assert!(check_unit_pixels(&Matrix::new(1, 2, vec![0.5, f32::NAN]).unwrap()).is_err());
        assert!(check_unit_pixels(&Matrix::new(1, 1, vec![1.0000001]).unwrap()).is_err());
    }
}
