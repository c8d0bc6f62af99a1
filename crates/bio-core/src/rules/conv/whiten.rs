//! Whitening of the first conv layer's patches (`--conv-whiten ε`), fitted once on the first
//! training batch.
//!
//! Natural-image patches concentrate their energy on a few directions (smooth intensity, a few
//! edges: 7.9 effective directions of the 25 of a 5×5 Fashion-MNIST patch), and a Hebbian filter
//! that becomes a prototype of frequent patches inherits that concentration. Whitening gives every
//! direction the same second moment before the competition, as the retina's centre–surround
//! stage does for natural images (Atick & Redlich 1992) and as SoftHebb does with ZCA before its
//! first Hebbian layer (Journé et al. 2023).
//!
//! The transform is ZCA of the **uncentred** second moment `M = E[p pᵀ]` over the batch's patches:
//! `Z = (M + ε·tr(M)/d · I)^{-1/2}` (`d` the patch length), and the layer sees `p Z` instead of
//! `p`. Uncentred, so a blank patch stays blank (zero drive, no winner, nothing learned) and the
//! transform is linear: the drive `p Z Wᵀ` equals `p (W Z)ᵀ`, which the export states as an
//! ordinary convolution with the effective filters `W Z`. `Z` is a fixed statistic of the input,
//! not a constraint on the learned weights: it is the same for the learned net and its frozen
//! control.

use crate::error::CoreError;
use crate::tensor::Matrix;

/// Eigen-decomposition of the symmetric `d×d` matrix `a` (row-major) by cyclic Jacobi rotations:
/// the eigenvalues and the eigenvectors as the columns of a row-major `d×d` matrix.
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), d * d, "a {d}×{d} matrix");
    let mut a = a.to_vec();
    let mut v = vec![0.0; d * d];
    (0..d).for_each(|i| v[i * d + i] = 1.0);
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-15 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// The uncentred second moment `M = pᵀp / rows` of the rows of `patches`, in `f64`.
pub fn second_moment(patches: &Matrix) -> Vec<f64> {
    let (rows, d) = patches.shape();
    let mut m = vec![0.0f64; d * d];
    for r in 0..rows {
        let p = patches.row(r);
        for i in 0..d {
            let pi = p[i] as f64;
            if pi == 0.0 {
                continue;
            }
            for j in i..d {
                m[i * d + j] += pi * p[j] as f64;
            }
        }
    }
    let n = rows.max(1) as f64;
    for i in 0..d {
        for j in i..d {
            m[i * d + j] /= n;
            m[j * d + i] = m[i * d + j];
        }
    }
    m
}

/// `Z = (M + ε·tr(M)/d·I)^{-1/2}` of the uncentred second moment of `patches`' rows (see the
/// module docs); symmetric, `d×d`. Errors when the patches carry no energy at all.
pub fn zca(patches: &Matrix, eps: f32) -> Result<Matrix, CoreError> {
    let d = patches.cols();
    let m = second_moment(patches);
    let trace: f64 = (0..d).map(|i| m[i * d + i]).sum();
    if !(trace > 0.0 && trace.is_finite()) {
        return Err(CoreError::invalid(
            "conv-whiten",
            format!("the first batch's patches have no energy to whiten (trace of their second moment {trace})"),
        ));
    }
    let ridge = eps as f64 * trace / d as f64;
    let (values, vectors) = symmetric_eigen(&m, d);
    let gains: Vec<f64> = values.iter().map(|&l| 1.0 / (l.max(0.0) + ridge).sqrt()).collect();
    Ok(Matrix::from_fn(d, d, |i, j| {
        (0..d).map(|k| vectors[i * d + k] * gains[k] * vectors[j * d + k]).sum::<f64>() as f32
    }))
}

/// The first layer's fixed patch transform `Z`, fitted on `patches`: with `centre`, each patch
/// first loses its own mean (`C = I − 11ᵀ/d`: a centre–surround stage, linear, so a blank patch
/// stays blank), then with `eps > 0` the ZCA of what is left ([`zca`]): `Z = C·zca(P C)`, `C` or
/// `zca(P)`. Errors when there is nothing to whiten.
pub fn patch_transform(patches: &Matrix, eps: f32, centre: bool) -> Result<Matrix, CoreError> {
    let d = patches.cols();
    let c = Matrix::from_fn(d, d, |i, j| f32::from(u8::from(i == j)) - 1.0 / d as f32);
    if !centre {
        return zca(patches, eps);
    }
    if eps <= 0.0 {
        return Ok(c);
    }
    let means: Vec<f32> = (0..patches.rows()).map(|r| patches.row(r).iter().sum::<f32>() / d as f32).collect();
    let centred = Matrix::from_fn(patches.rows(), d, |r, j| patches.get(r, j) - means[r]);
    let z = zca(&centred, eps)?;
    Ok(Matrix::from_fn(d, d, |i, j| (0..d).map(|k| c.get(i, k) * z.get(k, j)).sum()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_util::uniform;

    fn product(a: &Matrix, b: &Matrix) -> Matrix {
        Matrix::from_fn(a.rows(), b.cols(), |i, j| (0..a.cols()).map(|k| a.get(i, k) * b.get(k, j)).sum())
    }

    /// The decomposition reproduces the matrix: `V diag(λ) Vᵀ = A`, `VᵀV = I`.
    #[test]
    fn jacobi_reconstructs_a_symmetric_matrix() {
        let d = 7;
        let r = uniform(d, d, -1.0, 1.0, 3);
        let a: Vec<f64> = (0..d * d).map(|k| (r.get(k / d, k % d) + r.get(k % d, k / d)) as f64).collect();
        let (values, v) = symmetric_eigen(&a, d);
        for i in 0..d {
            for j in 0..d {
                let back: f64 = (0..d).map(|k| v[i * d + k] * values[k] * v[j * d + k]).sum();
                assert!((back - a[i * d + j]).abs() < 1e-10, "A[{i}][{j}]: {back} vs {}", a[i * d + j]);
                let dot: f64 = (0..d).map(|k| v[k * d + i] * v[k * d + j]).sum();
                assert!((dot - f64::from(u8::from(i == j))).abs() < 1e-10, "VᵀV[{i}][{j}] = {dot}");
            }
        }
    }

    /// Without the ridge, the whitened patches have the identity as second moment; with it, every
    /// direction's moment is below 1 and `Z` is symmetric.
    #[test]
    fn whitened_patches_have_unit_second_moment() {
        // Correlated, positive patches: a shared intensity plus noise, as image patches.
        let base = uniform(4000, 1, 0.0, 1.0, 5);
        let noise = uniform(4000, 6, 0.0, 0.3, 6);
        let patches = Matrix::from_fn(4000, 6, |i, j| base.get(i, 0) + noise.get(i, j) * (1.0 + j as f32));
        for (eps, tolerance) in [(0.0f32, 1e-3f32), (0.1, f32::INFINITY)] {
            let z = zca(&patches, eps).expect("energy");
            let white = product(&patches, &z);
            let m = second_moment(&white);
            for i in 0..6 {
                assert!((z.get(i, (i + 1) % 6) - z.get((i + 1) % 6, i)).abs() < 1e-5, "Z symmetric");
                assert!(m[i * 6 + i] < 1.0 + 1e-3, "eps {eps}: moment {} above 1", m[i * 6 + i]);
                for j in 0..6 {
                    let want = f64::from(u8::from(i == j));
                    assert!(
                        ((m[i * 6 + j] - want).abs() as f32) < tolerance,
                        "eps {eps}: M[{i}][{j}] = {}",
                        m[i * 6 + j]
                    );
                }
            }
        }
        assert!(zca(&Matrix::zeros(10, 6), 0.1).is_err(), "blank patches cannot be whitened");
    }

    /// Centring takes each patch's mean away (rows of `P Z` sum to 0), with or without the ZCA
    /// after it; without centring the transform is [`zca`]'s.
    #[test]
    fn centred_patches_have_zero_mean() {
        let base = uniform(500, 1, 0.0, 1.0, 7);
        let noise = uniform(500, 6, 0.0, 0.3, 8);
        let patches = Matrix::from_fn(500, 6, |i, j| base.get(i, 0) + noise.get(i, j));
        for eps in [0.0f32, 0.1] {
            let out = product(&patches, &patch_transform(&patches, eps, true).expect("energy"));
            for r in 0..500 {
                let sum: f32 = out.row(r).iter().sum();
                assert!(sum.abs() < 1e-3, "eps {eps}, patch {r}: sum {sum}");
            }
            let plain = product(&patches, &patch_transform(&patches, eps.max(0.1), false).unwrap());
            assert!(plain.row(0).iter().sum::<f32>().abs() > 0.1, "uncentred patches keep their mean");
        }
        assert_eq!(patch_transform(&patches, 0.1, false).unwrap(), zca(&patches, 0.1).unwrap());
    }
}
