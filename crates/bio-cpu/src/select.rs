//! Row-wise k-th largest, softmax and argmax.

#[cfg(test)]
use std::cmp::Ordering;

use bio_core::SelectOps;
use ndarray::{Array2, ArrayView1, ArrayViewMut1, Axis, parallel::prelude::*};

use crate::CpuBackend;

/// The integer whose signed order is [`f32::total_cmp`]'s order (the same bit trick `total_cmp`
/// applies to both operands of every comparison, done once per entry here).
fn total_key(x: f32) -> i32 {
    let bits = x.to_bits() as i32;
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// Inverse of [`total_key`]: the key's `f32`, bit for bit.
fn from_total_key(key: i32) -> f32 {
    f32::from_bits((key ^ (((key >> 31) as u32) >> 1) as i32) as u32)
}

/// The `k`-th largest of `row` in descending total order, selected in the scratch buffer `buf`.
///
/// Selects on integer keys: the `k`-th largest is the `(n − k)`-th smallest key, and integer
/// comparisons cost a fraction of `total_cmp`'s. The bits of the result are exactly those of the
/// entry the reference's sort puts at position `k − 1` (entries of equal key have equal bits, so
/// any exact selection gives them). Small `k` ([`SMALL_K`], a conv layer's winners per position)
/// keeps the `k` largest keys in a sorted buffer in one pass ([`kth_by_insertion`]).
pub(crate) fn kth(buf: &mut Vec<i32>, row: ArrayView1<'_, f32>, k: usize) -> f32 {
    if k <= SMALL_K
        && let Some(row) = row.as_slice()
    {
        return kth_by_insertion(buf, row, k);
    }
    buf.clear();
    buf.extend(row.iter().map(|&x| total_key(x)));
    let n = buf.len();
    from_total_key(*buf.select_nth_unstable(n - k).1)
}

/// Largest `k` selected by [`kth_by_insertion`] and by the lanes of [`kth_of_rows`].
const SMALL_K: usize = 16;

/// Rows selected together by [`kth_of_rows`]: one AVX2 register of 32-bit keys.
const LANES: usize = 8;

/// `out[r]` = the `k`-th largest of row `r` of `rows` (row-major, `cols` columns), with the bits of
/// [`kth`]. For small `k` on a CPU with AVX2, [`LANES`] rows at a time go through a network of
/// `k` sorted registers (each row a lane): every column's keys enter at the top and each level keeps
/// the larger of its key and the entering one, passing the smaller down, so after the last column
/// level `i` holds each row's `(i + 1)`-th largest key, duplicates included: an exact selection with
/// `2k` branch-free integer max/min per column instead of a data-dependent insertion per row. The
/// rows that do not fill a group, and other CPUs, take [`kth`].
pub(crate) fn kth_of_rows(buf: &mut Vec<i32>, rows: &[f32], cols: usize, k: usize, out: &mut [f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if (1..=SMALL_K).contains(&k) && k <= cols && std::arch::is_x86_feature_detected!("avx2") {
        done = out.len() / LANES * LANES;
        // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of the function.
        #[allow(unsafe_code)]
        unsafe {
            let (rows, out) = (&rows[..done * cols], &mut out[..done]);
            // One kernel per `k`, so that the levels stay in registers.
            macro_rules! for_k {
                ($($k:literal)*) => {
                    match k {
                        $($k => kth_by_lanes_avx2::<$k>(rows, cols, out),)*
                        _ => unreachable!("k ≤ SMALL_K"),
                    }
                };
            }
            for_k!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        }
    }
    for (row, out) in rows[done * cols..].chunks_exact(cols.max(1)).zip(&mut out[done..]) {
        *out = kth(buf, ArrayView1::from(row), k);
    }
}

/// [`kth_of_rows`]'s network with AVX2 registers: each group's columns enter eight at a time, as
/// the eight columns of an `8×8` block of its rows loaded by rows and transposed in registers (a
/// column of a row-major group is strided, so one lane at a time otherwise); the remaining
/// columns (fewer than eight) one at a time. The network's result does not depend on the order in
/// which the columns enter.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn kth_by_lanes_avx2<const K: usize>(rows: &[f32], cols: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    // The total-order key of eight floats' bits (`total_key` per lane).
    let key = |bits: __m256i| _mm256_xor_si256(bits, _mm256_srli_epi32::<1>(_mm256_srai_epi32::<31>(bits)));
    for (group, out) in rows.chunks_exact(cols * LANES).zip(out.chunks_exact_mut(LANES)) {
        let mut levels = [_mm256_set1_epi32(i32::MIN); K];
        let mut enter = |mut entering: __m256i| {
            for level in &mut levels {
                let larger = _mm256_max_epi32(*level, entering);
                entering = _mm256_min_epi32(*level, entering);
                *level = larger;
            }
        };
        let blocks = cols / LANES * LANES;
        for j in (0..blocks).step_by(LANES) {
            let row = |l: usize| {
                let block: &[f32; LANES] = group[l * cols + j..l * cols + j + LANES].try_into().expect("eight entries");
                // SAFETY: `block` holds eight readable floats; the load has no alignment requirement.
                #[allow(unsafe_code)]
                unsafe {
                    _mm256_loadu_ps(block.as_ptr())
                }
            };
            let (r0, r1, r2, r3, r4, r5, r6, r7) = (row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7));
            let (t0, t1, t2, t3) = (
                _mm256_unpacklo_ps(r0, r1),
                _mm256_unpackhi_ps(r0, r1),
                _mm256_unpacklo_ps(r2, r3),
                _mm256_unpackhi_ps(r2, r3),
            );
            let (t4, t5, t6, t7) = (
                _mm256_unpacklo_ps(r4, r5),
                _mm256_unpackhi_ps(r4, r5),
                _mm256_unpacklo_ps(r6, r7),
                _mm256_unpackhi_ps(r6, r7),
            );
            let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
            let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
            let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
            let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
            for column in [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ] {
                enter(key(_mm256_castps_si256(column)));
            }
        }
        for j in blocks..cols {
            let bits = |l: usize| group[l * cols + j].to_bits() as i32;
            enter(key(_mm256_setr_epi32(bits(0), bits(1), bits(2), bits(3), bits(4), bits(5), bits(6), bits(7))));
        }
        let mut kth = [0i32; LANES];
        // SAFETY: `kth` holds eight writable `i32`s; the store has no alignment requirement.
        #[allow(unsafe_code)]
        unsafe {
            _mm256_storeu_si256(kth.as_mut_ptr().cast(), levels[K - 1]);
        }
        for (out, &key) in out.iter_mut().zip(&kth) {
            *out = from_total_key(key);
        }
    }
}

/// The `k`-th largest of `row` (`1 ≤ k ≤ row.len()`, `k ≤ SMALL_K`) in three short passes without
/// data-dependent branches in the long ones:
///
/// 1. a lower bound `L`: the smallest of the maxima of `k` disjoint groups of the keys (`k` distinct
///    entries are `≥ L`, so the `k`-th largest is too);
/// 2. the candidates, every key `≥ L`, compacted in place in `buf` (a store per entry, a count that
///    advances only for candidates); every entry of the top `k` is one of them; 1 and 2 repeat on
///    the candidates while there are more than `2k` and the bound removes some;
/// 3. the `k` largest candidate keys kept in descending order on the stack; a key enters only when
///    strictly larger than the smallest kept.
fn kth_by_insertion(buf: &mut Vec<i32>, row: &[f32], k: usize) -> f32 {
    buf.clear();
    buf.extend(row.iter().map(|&x| total_key(x)));
    let mut candidates = buf.len();
    // Steps 1 and 2, repeated on the candidates while they are many and the bound still removes some.
    while candidates > 2 * k {
        let keys = &mut buf[..candidates];
        let bound = keys
            .chunks_exact(candidates / k)
            .take(k)
            .map(|g| g.iter().copied().max().expect("groups are not empty"))
            .min()
            .expect("k ≥ 1 groups");
        let mut kept = 0;
        for i in 0..keys.len() {
            let key = keys[i];
            keys[kept] = key;
            kept += usize::from(key >= bound);
        }
        if kept == candidates {
            break;
        }
        candidates = kept;
    }
    let mut top = [i32::MIN; SMALL_K];
    let top = &mut top[..k];
    for &key in &buf[..candidates] {
        if key > top[k - 1] {
            let mut i = k - 1;
            while i > 0 && top[i - 1] < key {
                top[i] = top[i - 1];
                i -= 1;
            }
            top[i] = key;
        }
    }
    from_total_key(top[k - 1])
}

/// The reference's order, kept for the unit test of the key transform.
#[cfg(test)]
fn descending(x: &f32, y: &f32) -> Ordering {
    y.total_cmp(x)
}

/// Stable softmax of one row, in place (same arithmetic as the reference).
fn softmax_row(mut row: ArrayViewMut1<'_, f32>) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    for v in row.iter_mut() {
        *v = (*v as f64 / sum) as f32;
    }
}

/// Index of the first largest entry (`0` for an empty row or when nothing beats the first entry).
fn argmax(row: ArrayView1<'_, f32>) -> usize {
    let mut best = 0;
    let mut best_v = row.first().copied().unwrap_or(f32::NAN);
    for (j, &v) in row.iter().enumerate() {
        if v > best_v {
            best = j;
            best_v = v;
        }
    }
    best
}

impl SelectOps for CpuBackend {
    fn row_kth_largest(&self, a: &Array2<f32>, k: usize) -> Array2<f32> {
        let (rows, cols) = a.dim();
        assert!(k >= 1 && k <= cols, "k = {k} outside 1..={cols}");
        let v: Vec<f32> = if self.parallel(a.len()) {
            self.install(|| {
                a.axis_iter(Axis(0))
                    .into_par_iter()
                    .map_init(|| Vec::with_capacity(cols), |buf, row| kth(buf, row, k))
                    .collect()
            })
        } else {
            let mut buf = Vec::with_capacity(cols);
            a.rows().into_iter().map(|row| kth(&mut buf, row, k)).collect()
        };
        Array2::from_shape_vec((rows, 1), v).expect("one value per row")
    }

    fn softmax_rows(&self, a: &Array2<f32>) -> Array2<f32> {
        let mut out = a.as_standard_layout().into_owned();
        if self.parallel(out.len()) {
            self.install(|| out.axis_iter_mut(Axis(0)).into_par_iter().for_each(softmax_row));
        } else {
            out.rows_mut().into_iter().for_each(softmax_row);
        }
        out
    }

    fn argmax_rows(&self, a: &Array2<f32>) -> Vec<usize> {
        if self.parallel(a.len()) {
            self.install(|| a.axis_iter(Axis(0)).into_par_iter().map(argmax).collect())
        } else {
            a.rows().into_iter().map(argmax).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass selection of small `k` gives the bits of the sort, on rows with ties, signed
    /// zeros, infinities and NaNs.
    #[test]
    fn small_k_selection_matches_the_sort() {
        let values = [-1.0f32, 0.0, -0.0, 0.25, 0.25, 3.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 2.5, -7.0];
        let mut state = 7u64;
        let mut buf = Vec::new();
        for len in [1usize, 2, 5, 16, 17, 96] {
            for _ in 0..50 {
                let row: Vec<f32> = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                        values[(state >> 33) as usize % values.len()]
                    })
                    .collect();
                let mut sorted = row.clone();
                sorted.sort_by(descending);
                for k in 1..=len.min(SMALL_K) {
                    let got = kth(&mut buf, ArrayView1::from(&row[..]), k);
                    assert_eq!(got.to_bits(), sorted[k - 1].to_bits(), "k = {k} of {row:?}");
                }
            }
        }
    }

    /// The lanes' network gives the bits of the sort for every small `k`, on groups of rows and
    /// the rows left over, with ties, signed zeros, infinities and NaNs.
    #[test]
    fn rows_by_lanes_match_the_sort() {
        let values = [-1.0f32, 0.0, -0.0, 0.25, 0.25, 3.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN, 2.5];
        let mut state = 11u64;
        let mut buf = Vec::new();
        for (rows, cols) in [(8usize, 96usize), (21, 17), (3, 5), (16, 1), (40, 96)] {
            let data: Vec<f32> = (0..rows * cols)
                .map(|i| {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    if i % 3 == 0 {
                        (state >> 40) as f32 / 1e6 - 8.0
                    } else {
                        values[(state >> 33) as usize % values.len()]
                    }
                })
                .collect();
            for k in 1..=cols.min(SMALL_K + 1) {
                let mut got = vec![0f32; rows];
                kth_of_rows(&mut buf, &data, cols, k, &mut got);
                for (r, got) in got.iter().enumerate() {
                    let mut sorted = data[r * cols..(r + 1) * cols].to_vec();
                    sorted.sort_by(descending);
                    assert_eq!(got.to_bits(), sorted[k - 1].to_bits(), "{rows}×{cols}, k = {k}, row {r}");
                }
            }
        }
    }

    #[test]
    fn total_keys_order_like_total_cmp_and_round_trip() {
        let values = [
            f32::NEG_INFINITY,
            -f32::MAX,
            -1.5,
            -f32::MIN_POSITIVE,
            -1e-45,
            -0.0,
            0.0,
            1e-45,
            f32::MIN_POSITIVE,
            1.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
            -f32::NAN,
        ];
        for &x in &values {
            assert_eq!(from_total_key(total_key(x)).to_bits(), x.to_bits());
            for &y in &values {
                assert_eq!(total_key(x).cmp(&total_key(y)), x.total_cmp(&y), "{x} vs {y}");
                assert_eq!(descending(&x, &y), total_key(y).cmp(&total_key(x)));
            }
        }
    }
}
