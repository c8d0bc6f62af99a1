//! The `bio` plasticity step fused per neuron: each neuron's pull `Σ_b r_bj·p_b` is formed from its
//! few non-zero `r_bj` in a row buffer, and its row of the weights is read and written a few times
//! while it sits in L1, instead of a dozen weight-sized temporaries (see docs/PERFORMANCE.md).

use bio_core::backend::{HebbianTerms, NORM_GUARD, composed_plasticity_step};
use bio_core::{LinalgOps, PlasticityOps, PlasticityStep, ScalingNorm, WeightChange};
use ndarray::Array2;
use rayon::prelude::*;

use crate::CpuBackend;
use crate::elementwise::exp;
use crate::linalg::{GemmKernel, SPARSE_MAX_DENSITY, SparseRows};
use crate::reduce::sum_f64_of;

impl PlasticityOps for CpuBackend {
    fn plasticity_step(
        &self,
        weights: &mut Array2<f32>,
        mask: &mut Array2<f32>,
        terms: &HebbianTerms<Array2<f32>>,
        step: &PlasticityStep,
    ) {
        let (rows, cols) = weights.dim();
        let batch = terms.relative.nrows();
        assert_eq!(mask.dim(), (rows, cols), "plasticity_step: mask shape differs from the weights'");
        assert_eq!(terms.relative.dim(), (batch, rows), "plasticity_step: relative must be batch×neurons");
        assert_eq!(terms.pattern.dim(), (batch, cols), "plasticity_step: pattern must be batch×inputs");
        assert_eq!(terms.wins.dim(), (rows, 1), "plasticity_step: wins must be one value per neuron");
        let contiguous = weights.is_standard_layout() && mask.is_standard_layout();
        if self.tall_step(weights, mask, &terms.relative, &terms.pattern, Some(&terms.wins), step) {
            return;
        }
        let active = SparseRows::of_transposed(terms.relative.view());
        let dense = active.too_dense_for(batch);
        if !contiguous || cols == 0 || dense {
            // Dense activity (no k-WTA) or odd layouts: the pull as a product (what `sparse_matmul`
            // would compute, without counting the non-zeros again), then the same kernel.
            let pull = if dense {
                self.matmul(&terms.relative, true, &terms.pattern, false)
            } else {
                self.sparse_product(&active, &terms.pattern)
            };
            if !contiguous || cols == 0 {
                return composed_plasticity_step(self, weights, mask, &pull, &terms.wins, step);
            }
            let pull = pull.as_standard_layout();
            let pull = pull.as_slice().expect("standard layout");
            return self.for_each_neuron(weights, mask, &terms.wins, |j, w, m, wins, _| {
                neuron(w, m, Pull::Given(&pull[j * cols..(j + 1) * cols]), wins, step)
            });
        }
        let pattern = terms.pattern.as_standard_layout();
        let pattern = pattern.as_slice().expect("standard layout");
        self.for_each_neuron(weights, mask, &terms.wins, |j, w, m, wins, buffer| {
            neuron(w, m, Pull::Sparse { active: &active, neuron: j, pattern, buffer }, wins, step)
        });
    }

    /// The tall sparse step (more rows than neurons, sparse activity) with `wins` summed in its
    /// pass over `relative`, where the `gemm` crate computes the products (its GEMV for
    /// `matmul(relative, true, ones)` sums each column in row order, the first row's entry and then
    /// each later one added: `r·1` is exact, so each multiply-add is one rounded addition, and the
    /// pass adds the same entries in the same order); else, or when the activity is dense, the
    /// default (the product, then `plasticity_step`).
    fn plasticity_step_from_relative(
        &self,
        weights: &mut Array2<f32>,
        mask: &mut Array2<f32>,
        relative: Array2<f32>,
        pattern: Array2<f32>,
        step: &PlasticityStep,
    ) {
        if self.gemm_kernel() == GemmKernel::Gemm && self.tall_step(weights, mask, &relative, &pattern, None, step) {
            return;
        }
        let batch = relative.nrows();
        let wins = self.matmul(&relative, true, &Array2::from_elem((batch, 1), 1.0), false);
        self.plasticity_step(weights, mask, &HebbianTerms { relative, pattern, wins }, step);
    }
}

/// Where a neuron's pull comes from.
enum Pull<'a> {
    /// Already formed (the dense-activity path).
    Given(&'a [f32]),
    /// To be formed in `buffer` from the neuron's non-zero relative activities.
    Sparse { active: &'a SparseRows, neuron: usize, pattern: &'a [f32], buffer: &'a mut [f32] },
}

/// One neuron's step, compiled for AVX2 when the CPU has it: the same operations in the same order
/// (no FMA contraction), so the results are bit for bit those of the baseline build, only wider.
fn neuron(w: &mut [f32], m: &mut [f32], pull: Pull<'_>, wins: f32, step: &PlasticityStep) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of `neuron_avx2`.
        #[allow(unsafe_code)]
        unsafe {
            return neuron_avx2(w, m, pull, wins, step);
        }
    }
    neuron_body(w, m, pull, wins, step)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn neuron_avx2(w: &mut [f32], m: &mut [f32], pull: Pull<'_>, wins: f32, step: &PlasticityStep) {
    neuron_body(w, m, pull, wins, step)
}

/// One block's pass of the tall step: its neurons' pulls, their column sums of `relative` (empty
/// when the wins were given) and the non-zeros passed; `None`: stopped at the density bound.
type BlockPass = Option<(Vec<f32>, Vec<f32>, usize)>;

/// One block of neurons of the tall step: its index, weights and mask rows, and its pass.
type NeuronBlock<'a> = ((usize, (&'a mut [f32], &'a mut [f32])), BlockPass);

/// Whether the first rows of a tall `relative` (`neurons` columns) have more than twice the
/// sparse path's density: then its non-zeros are counted in their own pass before the pull.
fn looks_dense(relative: &Array2<f32>, neurons: usize) -> bool {
    let probe = relative.slice(ndarray::s![..relative.nrows().min(PROBE_ROWS), ..]);
    let nonzeros = probe.iter().filter(|&&v| v != 0.0).count();
    nonzeros as f64 > 2.0 * SPARSE_MAX_DENSITY * (probe.nrows() * neurons) as f64
}

/// Rows of `relative` that [`looks_dense`] reads.
const PROBE_ROWS: usize = 512;

/// One block of neurons' pull: the rows of `relative` (`neurons` columns) from column `first`,
/// the patterns (rows of `len` entries), and the bound on the non-zeros passed.
struct PullBlock<'a> {
    relative: &'a [f32],
    neurons: usize,
    first: usize,
    pattern: &'a [f32],
    len: usize,
    bound: f64,
}

/// `pulls[i] += r_b,first+i · p_b` over the rows `b` of `relative` in order, for the non-zero
/// entries only (`pulls` has rows of `len` entries); and, when `sums` is not empty (it starts as
/// the block's entries of the first row), each later row's entries added to it in order. Returns
/// the non-zeros passed, or `None` as soon as they exceed `bound`. Compiled for AVX2 when the CPU
/// has it (the same operations, no FMA contraction).
fn add_pulls(job: &PullBlock<'_>, pulls: &mut [f32], sums: &mut [f32]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of `add_pulls_avx2`.
        #[allow(unsafe_code)]
        unsafe {
            return add_pulls_avx2(job, pulls, sums);
        }
    }
    add_pulls_body(job, pulls, sums)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_pulls_avx2(job: &PullBlock<'_>, pulls: &mut [f32], sums: &mut [f32]) -> Option<usize> {
    add_pulls_body(job, pulls, sums)
}

#[inline(always)]
fn add_pulls_body(job: &PullBlock<'_>, pulls: &mut [f32], sums: &mut [f32]) -> Option<usize> {
    let &PullBlock { relative, neurons, first, pattern, len, bound } = job;
    let count = pulls.len() / len;
    let mut passed = 0usize;
    for (b, (r, p)) in relative.chunks_exact(neurons).zip(pattern.chunks_exact(len)).enumerate() {
        let r = &r[first..first + count];
        // The column sums (when asked: `sums` starts as the first row's entries), row by row.
        if b > 0 && !sums.is_empty() {
            sums.iter_mut().zip(r).for_each(|(s, &v)| *s += v);
        }
        // The non-zeros of 32 entries as the bits of a mask (a vector compare), then one step per
        // set bit in ascending order: no branch per zero entry.
        for (group, r) in r.chunks(32).enumerate() {
            let mut nonzero = r.iter().enumerate().fold(0u32, |m, (i, &v)| m | (u32::from(v != 0.0) << i));
            passed += nonzero.count_ones() as usize;
            while nonzero != 0 {
                let i = nonzero.trailing_zeros() as usize;
                nonzero &= nonzero - 1;
                let (v, at) = (r[i], (group * 32 + i) * len);
                for (o, &x) in pulls[at..at + len].iter_mut().zip(p) {
                    *o += v * x;
                }
            }
        }
        if passed as f64 > bound {
            return None;
        }
    }
    Some(passed)
}

#[inline(always)]
fn neuron_body(w: &mut [f32], m: &mut [f32], pull: Pull<'_>, wins: f32, step: &PlasticityStep) {
    match pull {
        Pull::Given(pull) => plasticity_row(w, m, pull, wins, step),
        Pull::Sparse { active, neuron, pattern, buffer } => {
            // The same sum as `sparse_matmul`'s (one shared function): bit for bit.
            buffer.fill(0.0);
            active.add_row_product(neuron, pattern, buffer);
            plasticity_row(w, m, buffer, wins, step)
        }
    }
}

impl CpuBackend {
    /// Whether `relative` (`batch×neurons`) has more non-zeros than [`SPARSE_MAX_DENSITY`] of its
    /// entries: the test `SparseRows::too_dense_for` makes on its transpose (`NaN` counts as
    /// non-zero), counted in one parallel pass without building the transpose.
    fn too_dense(&self, relative: &Array2<f32>) -> bool {
        let relative = relative.as_standard_layout();
        let values = relative.as_slice().expect("standard layout");
        let count = |chunk: &[f32]| chunk.iter().map(|&v| usize::from(v != 0.0)).sum::<usize>();
        let nonzeros: usize = if self.parallel(values.len()) {
            self.install(|| values.par_chunks(4096).map(count).sum())
        } else {
            count(values)
        };
        nonzeros as f64 > SPARSE_MAX_DENSITY * values.len() as f64
    }

    /// [`CpuBackend::tall_sparse_step`] where it applies: more rows than neurons, every operand
    /// in the step's shapes, contiguous weights and mask, and activity that is sparse. The
    /// sparse-or-dense decision is exact either way: counted in its own pass when the first rows
    /// look dense, else by the pull's own pass, which stops as soon as its non-zeros alone exceed
    /// the bound. Returns whether the step was taken (`false`: nothing changed).
    fn tall_step(
        &self,
        weights: &mut Array2<f32>,
        mask: &mut Array2<f32>,
        relative: &Array2<f32>,
        pattern: &Array2<f32>,
        wins: Option<&Array2<f32>>,
        step: &PlasticityStep,
    ) -> bool {
        let (rows, cols) = weights.dim();
        let batch = relative.nrows();
        let applies = batch > rows
            && rows > 0
            && cols > 0
            && weights.is_standard_layout()
            && mask.is_standard_layout()
            && relative.dim() == (batch, rows)
            && pattern.dim() == (batch, cols);
        if !applies {
            return false;
        }
        let counted = looks_dense(relative, rows);
        !(counted && self.too_dense(relative))
            && self.tall_sparse_step(weights, mask, relative, pattern, wins, step, !counted)
    }

    /// The sparse step when the batch has more rows than there are neurons (a conv layer's
    /// positions: 78 400 rows of 96 channels): each task takes a block of neurons, walks `relative`
    /// once in row order over its block's columns and adds `r_bj·p_b` into its neurons' pulls, then
    /// the neurons are stepped. Each pull is summed over its non-zero `r_bj` in ascending `b` from
    /// zero with `o += r·p`, the sum `SparseRows::add_row_product` forms from the transpose (bit
    /// for bit), but `relative` is read once and no transpose is built. Blocks follow the threads,
    /// so the result does not depend on their number. With `check_density`, the blocks count the
    /// non-zeros they pass and the step is not taken (`false`, nothing changed) when they exceed
    /// [`CpuBackend::too_dense`]'s bound, which one block alone exceeding stops early. Without
    /// `wins`, each block also sums its neurons' columns of `relative` in the same pass (row order,
    /// [`PlasticityOps::plasticity_step_from_relative`]).
    #[allow(clippy::too_many_arguments)]
    fn tall_sparse_step(
        &self,
        weights: &mut Array2<f32>,
        mask: &mut Array2<f32>,
        relative: &Array2<f32>,
        pattern: &Array2<f32>,
        wins: Option<&Array2<f32>>,
        step: &PlasticityStep,
        check_density: bool,
    ) -> bool {
        let (rows, cols) = weights.dim();
        let relative = relative.as_standard_layout();
        let relative = relative.as_slice().expect("standard layout");
        let pattern = pattern.as_standard_layout();
        let pattern = pattern.as_slice().expect("standard layout");
        // Given, or summed by the blocks' passes (each block its neurons' column sums).
        let given: Option<Vec<f32>> = wins.map(|w| w.iter().copied().collect());
        let tasks = if self.parallel(relative.len()) { self.num_threads().max(1) } else { 1 };
        // Whole cache lines of a row of `relative` per task where the blocks allow it.
        let per = rows.div_ceil(tasks).next_multiple_of(16).min(rows);
        // `too_dense`'s bound on the non-zeros (none when already counted).
        let bound = if check_density { SPARSE_MAX_DENSITY * relative.len() as f64 } else { f64::INFINITY };
        let sum_wins = given.is_none();
        let block = |first: usize| {
            let count = per.min(rows - first);
            let mut pulls = vec![0f32; count * cols];
            let mut sums = if sum_wins { relative[first..first + count].to_vec() } else { Vec::new() };
            let job = PullBlock { relative, neurons: rows, first, pattern, len: cols, bound };
            add_pulls(&job, &mut pulls, &mut sums).map(|nonzeros| (pulls, sums, nonzeros))
        };
        let firsts: Vec<usize> = (0..rows).step_by(per).collect();
        let pulls: Vec<BlockPass> = if tasks > 1 {
            self.install(|| firsts.par_iter().map(|&f| block(f)).collect())
        } else {
            firsts.iter().map(|&f| block(f)).collect()
        };
        let nonzeros: Option<usize> = pulls.iter().map(|p| p.as_ref().map(|(_, _, n)| *n)).sum();
        if nonzeros.is_none_or(|n| n as f64 > bound) {
            return false;
        }
        let wins = given.unwrap_or_else(|| {
            pulls.iter().flat_map(|p| p.as_ref().expect("every block finished").1.iter().copied()).collect()
        });
        let w = weights.as_slice_mut().expect("standard layout");
        let m = mask.as_slice_mut().expect("standard layout");
        let steps = |((t, (w, m)), pulls): NeuronBlock<'_>| {
            let (pulls, _, _) = pulls.expect("every block finished");
            for (i, ((w, m), pull)) in w.chunks_mut(cols).zip(m.chunks_mut(cols)).zip(pulls.chunks(cols)).enumerate() {
                neuron(w, m, Pull::Given(pull), wins[t * per + i], step);
            }
        };
        if tasks > 1 {
            self.install(|| {
                w.par_chunks_mut(per * cols).zip(m.par_chunks_mut(per * cols)).enumerate().zip(pulls).for_each(steps)
            });
        } else {
            w.chunks_mut(per * cols).zip(m.chunks_mut(per * cols)).enumerate().zip(pulls).for_each(steps);
        }
        true
    }

    /// Runs `job(j, W_j, mask_j, wins_j, buffer)` for every neuron `j`, rows in parallel when large;
    /// `buffer` is a per-task scratch row.
    fn for_each_neuron(
        &self,
        weights: &mut Array2<f32>,
        mask: &mut Array2<f32>,
        wins: &Array2<f32>,
        job: impl Fn(usize, &mut [f32], &mut [f32], f32, &mut [f32]) + Sync,
    ) {
        let (rows, cols) = weights.dim();
        let wins: Vec<f32> = wins.iter().copied().collect();
        let w = weights.as_slice_mut().expect("standard layout");
        let m = mask.as_slice_mut().expect("standard layout");
        let scratch = || vec![0f32; cols];
        let run = |buffer: &mut Vec<f32>, (j, (w, m)): (usize, (&mut [f32], &mut [f32]))| job(j, w, m, wins[j], buffer);
        if self.parallel(rows * cols) {
            self.install(|| w.par_chunks_mut(cols).zip(m.par_chunks_mut(cols)).enumerate().for_each_init(scratch, run));
        } else {
            let mut buffer = scratch();
            w.chunks_mut(cols).zip(m.chunks_mut(cols)).enumerate().for_each(|item| run(&mut buffer, item));
        }
    }
}

/// One neuron: the composed definition's arithmetic (`bio_core::backend::hebbian_change`,
/// `prune_weak_synapses`, `scale_synapses`) entry by entry, in the same order; the only change is
/// `|w|·(wins/g)` for `|w|/g·wins` (a divide per synapse cost more than the rest of the step).
#[inline(always)]
fn plasticity_row(w: &mut [f32], m: &mut [f32], pull: &[f32], wins: f32, s: &PlasticityStep) {
    // Σ|W| or √ΣW² whether or not the layer is signed (the L1 norm of |W| and of W agree).
    let g = norm(w, s.norm).max(NORM_GUARD);
    match (s.change, s.signed) {
        (WeightChange::Multiplicative, false) => multiplicative::<false>(w, pull, g, wins, s.step),
        (WeightChange::Multiplicative, true) => multiplicative::<true>(w, pull, g, wins, s.step),
        (WeightChange::Additive { unit }, signed) => {
            let pressure = wins / g;
            for ((w, &m), &p) in w.iter_mut().zip(m.iter()).zip(pull) {
                let magnitude = if signed { w.abs() } else { *w };
                let delta = s.step * p - s.step * (magnitude * pressure);
                *w = (*w + unit * delta) * m;
            }
        }
    }
    if let Some(fraction) = s.prune_below {
        let present = (sum_f64_of(m, f64::from) as f32).max(NORM_GUARD);
        let mean = sum_abs(w) / present;
        let threshold = fraction * mean;
        for (w, m) in w.iter_mut().zip(m.iter_mut()) {
            *m *= if w.abs() > threshold { 1.0 } else { 0.0 };
            *w *= *m;
        }
    }
    if let Some(total) = s.scale_to {
        let factor = total * (1.0 / norm(w, s.norm).max(NORM_GUARD));
        w.iter_mut().for_each(|w| *w *= factor);
    }
}

/// `W ← W ⊙ exp(s·pull − s·(w̃·wins))`, `w̃ = |W|/g` (or `W/g` for a positive layer); monomorphized
/// so the loop has no branch and vectorizes.
#[inline(always)]
fn multiplicative<const SIGNED: bool>(w: &mut [f32], pull: &[f32], g: f32, wins: f32, step: f32) {
    // One rounding away from `|w|/g·wins`: a multiply instead of a divide per synapse.
    let pressure = wins / g;
    for (w, &p) in w.iter_mut().zip(pull) {
        let magnitude = if SIGNED { w.abs() } else { *w };
        *w *= exp(step * p - step * (magnitude * pressure));
    }
}

/// `Σ|w|` or `√Σw²`, accumulated in `f64` like the CPU reductions.
#[inline(always)]
fn norm(w: &[f32], kind: ScalingNorm) -> f32 {
    match kind {
        ScalingNorm::L1 => sum_abs(w),
        ScalingNorm::L2 => (sum_squares(w) as f32).sqrt(),
    }
}

#[inline(always)]
fn sum_abs(w: &[f32]) -> f32 {
    sum_f64_of(w, |x| x.abs() as f64) as f32
}

#[inline(always)]
fn sum_squares(w: &[f32]) -> f64 {
    sum_f64_of(w, |x| (x * x) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bio_core::Matrix;
    use bio_core::TensorStore;
    use bio_core::conformance::{random_matrix, rng};

    /// The fused pull and the AVX2 build change no bit: the sparse pull formed in the row buffer
    /// equals `sparse_matmul`'s, and the dispatched kernel equals the baseline one.
    #[test]
    fn fused_pull_and_avx2_are_bit_identical() {
        let b = CpuBackend::new();
        let mut rng = rng(5);
        let (batch, rows, cols) = (40, 64, 96);
        let relative =
            Matrix::from_fn(
                batch,
                rows,
                |i, j| if (i * 7 + j * 3) % 19 == 0 { 0.5 + (i % 5) as f32 / 10.0 } else { 0.0 },
            );
        let pattern = b.upload(&random_matrix(&mut rng, batch, cols, 0.0, 1.0));
        let relative = b.upload(&relative);
        let step = PlasticityStep {
            step: 0.2,
            norm: ScalingNorm::L2,
            signed: false,
            change: WeightChange::Multiplicative,
            prune_below: Some(0.3),
            scale_to: Some(1.0),
        };
        let w0 = b.upload(&random_matrix(&mut rng, rows, cols, 0.0, 1.0));
        let wins = b.upload(&random_matrix(&mut rng, rows, 1, 0.0, 2.0));
        let terms = HebbianTerms { relative: relative.clone(), pattern: pattern.clone(), wins: wins.clone() };
        let (mut w_fused, mut m_fused) = (w0.clone(), b.full(rows, cols, 1.0));
        b.plasticity_step(&mut w_fused, &mut m_fused, &terms, &step);

        let pull = b.sparse_matmul(&relative, true, &pattern);
        let (mut w_base, mut m_base) = (w0.clone(), b.full(rows, cols, 1.0));
        for j in 0..rows {
            let w = w_base.row_mut(j).into_slice().expect("contiguous");
            let m = m_base.row_mut(j).into_slice().expect("contiguous");
            let p = pull.row(j).to_vec();
            neuron_body(w, m, Pull::Given(&p), wins[[j, 0]], &step);
        }
        assert_eq!(w_fused, w_base);
        assert_eq!(m_fused, m_base);
    }

    /// The tall path (more rows than neurons: a conv layer's positions) changes no bit against the
    /// transpose's sums and the dense product, whatever the number of threads, with neurons not a
    /// multiple of the blocks, and decides sparse or dense exactly as the transpose's count does:
    /// sparse throughout, dense throughout, sparse first rows of a dense whole (the pull stops),
    /// dense first rows of a sparse whole (counted first).
    #[test]
    fn tall_activity_path_is_bit_identical_at_every_thread_count() {
        let mut rng = rng(6);
        let (batch, rows, cols) = (3000, 37, 25);
        let sparse = |i: usize, j: usize| (i * 5 + j * 11).is_multiple_of(13);
        type Active<'a> = &'a dyn Fn(usize, usize) -> bool;
        let cases: [(&str, Active<'_>); 4] = [
            ("sparse", &|i, j| sparse(i, j)),
            ("dense", &|_, _| true),
            ("sparse first rows, dense whole", &|i, j| i >= 600 || sparse(i, j)),
            ("dense first rows, sparse whole", &|i, j| i < 200 || sparse(i, j)),
        ];
        let pattern = random_matrix(&mut rng, batch, cols, -1.0, 1.0);
        let w0 = random_matrix(&mut rng, rows, cols, -1.0, 1.0);
        let wins = random_matrix(&mut rng, rows, 1, 0.0, 3.0);
        let step = PlasticityStep {
            step: 0.05,
            norm: ScalingNorm::L2,
            signed: true,
            change: WeightChange::Multiplicative,
            prune_below: None,
            scale_to: Some(1.0),
        };
        for (name, active) in cases {
            let relative =
                Matrix::from_fn(batch, rows, |i, j| if active(i, j) { 0.25 + ((i + j) % 7) as f32 / 8.0 } else { 0.0 });
            let density = relative.as_slice().iter().filter(|&&v| v != 0.0).count() as f64 / (batch * rows) as f64;
            let reference = CpuBackend::with_threads(1).expect("a thread");
            let (relative_t, pattern_t) = (reference.upload(&relative), reference.upload(&pattern));
            // `sparse_matmul` counts on the transpose and takes the dense product above the bound.
            let pull = reference.sparse_matmul(&relative_t, true, &pattern_t);
            let mut want = reference.upload(&w0);
            let mut mask = reference.full(rows, cols, 1.0);
            for j in 0..rows {
                let w = want.row_mut(j).into_slice().expect("contiguous");
                let m = mask.row_mut(j).into_slice().expect("contiguous");
                neuron_body(w, m, Pull::Given(&pull.row(j).to_vec()), wins.get(j, 0), &step);
            }
            for threads in [1, 2, 3] {
                let b = CpuBackend::with_threads(threads).expect("threads");
                let terms =
                    HebbianTerms { relative: b.upload(&relative), pattern: b.upload(&pattern), wins: b.upload(&wins) };
                let (mut w, mut m) = (b.upload(&w0), b.full(rows, cols, 1.0));
                b.plasticity_step(&mut w, &mut m, &terms, &step);
                assert_eq!(w, want, "{name} (density {density:.3}), {threads} threads");
                assert_ne!(w, b.upload(&w0), "the step moved the weights");
            }
        }
    }
}
