//! One training step of each learning rule, and one attack input-gradient, on two backends from the
//! same seed, compared parameter by parameter.
//!
//! The CUDA comparisons are ignored by default (they need a GPU; run them with `--include-ignored`).
//! The same comparisons between `ReferenceBackend` and `CpuBackend` run everywhere: they show the
//! tolerance is met by two correct backends that sum in different orders.
//!
//! Tolerance: for every named parameter tensor, `max |a − b| ≤ REL · max |b| + ABS` (a relative
//! error of 1e-3 of the tensor's largest entry after one step). One step amplifies the
//! rounding-level differences of the matrix products little, except where a k-winners-take-all
//! threshold falls between two nearly equal drives; the inputs are random, so such a near-tie is
//! unlikely, and a failure would show up as one neuron's row differing by far more than 1e-3.

use bio_core::conformance::{random_matrix, rng};
use bio_core::{
    Backend, BackpropRule, BioNet, BioParams, BioRule, BpNet, BpParams, Classifier, LearningRule, Matrix, Optimizer,
    Params, ReferenceBackend,
};
use bio_cpu::CpuBackend;
use bio_cuda::CudaBackend;

const REL: f32 = 1e-3;
const ABS: f32 = 1e-6;
const INPUT_DIM: usize = 196;
const CLASSES: usize = 10;
const BATCH: usize = 32;
const SEED: u64 = 7;

fn cuda() -> CudaBackend {
    CudaBackend::new().unwrap_or_else(|e| panic!("this test needs a CUDA GPU: {e}"))
}

fn batch() -> (Matrix, Vec<usize>) {
    let x = random_matrix(&mut rng(SEED), BATCH, INPUT_DIM, 0.0, 1.0);
    let labels = (0..BATCH).map(|i| (i * 7 + 3) % CLASSES).collect();
    (x, labels)
}

fn max_abs(m: &Matrix) -> f32 {
    m.as_slice().iter().fold(0.0, |acc, v| acc.max(v.abs()))
}

/// Panics unless `got` is within the tolerance of `want`, naming the worst entry.
fn assert_matrix_close(what: &str, got: &Matrix, want: &Matrix) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let tol = REL * max_abs(want) + ABS;
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (g, w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
        let d = (g - w).abs();
        let d = if d.is_nan() { f32::INFINITY } else { d };
        if d > worst {
            (worst, at) = (d, i);
        }
    }
    assert!(
        worst <= tol,
        "{what}: entry {at} differs by {worst:e} (got {:e}, want {:e}); tolerance {tol:e}",
        got.as_slice()[at],
        want.as_slice()[at]
    );
}

fn assert_params_close(rule: &str, got: &Params, want: &Params) {
    assert_eq!(got.tensors.len(), want.tensors.len(), "{rule}: number of tensors");
    for ((gn, g), (wn, w)) in got.tensors.iter().zip(&want.tensors) {
        assert_eq!(gn, wn, "{rule}: tensor order");
        assert_matrix_close(&format!("{rule}: {gn}"), g, w);
    }
}

fn bio_params() -> BioParams {
    BioParams { hidden: vec![64], active_fraction: 0.1, ..Default::default() }
}

/// Parameters after one `BioRule` step on `b`, and the step's loss.
fn bio_step<B: Backend>(b: &B) -> (Params, f32) {
    let config = bio_params().check().unwrap();
    let mut model = BioNet::init(b, config.clone(), INPUT_DIM, CLASSES, SEED);
    let mut rule = BioRule::new(config, SEED);
    rule.start_epoch(0, 1);
    let (x, labels) = batch();
    let report = rule.train_batch(&mut model, &b.upload(&x), &labels).expect("one bio step");
    b.sync();
    (model.to_params(), report.loss)
}

/// Parameters after one `BackpropRule` step on `b` (on PGD examples of radius `eps` when it is
/// positive), and the step's loss.
fn bp_step<B: Backend>(b: &B, optimizer: Optimizer, eps: f32) -> (Params, f32) {
    let config =
        BpParams { hidden: vec![64], optimizer, learning_rate: 0.01, adversarial_eps: eps, adversarial_steps: 2 }
            .check()
            .unwrap();
    let mut model = BpNet::init(b, config.clone(), INPUT_DIM, CLASSES, SEED);
    let mut rule = BackpropRule::<B>::with_seed(config, SEED);
    let (x, labels) = batch();
    let report = rule.train_batch(&mut model, &b.upload(&x), &labels).expect("one bp step");
    b.sync();
    (model.to_params(), report.loss)
}

/// Per-sample losses and the input gradient of a freshly initialized model of each kind.
fn input_gradients<B: Backend>(b: &B) -> Vec<(&'static str, Vec<f32>, Matrix)> {
    let (x, labels) = batch();
    let xt = b.upload(&x);
    let bio = BioNet::init(b, bio_params().check().unwrap(), INPUT_DIM, CLASSES, SEED);
    let bp_config = BpParams { hidden: vec![64], ..Default::default() }.check().unwrap();
    let bp = BpNet::init(b, bp_config, INPUT_DIM, CLASSES, SEED);
    let (bio_loss, bio_grad) = bio.loss_and_input_gradient(&xt, &labels);
    let (bp_loss, bp_grad) = bp.loss_and_input_gradient(&xt, &labels);
    vec![("bio", bio_loss, b.download(&bio_grad)), ("bp", bp_loss, b.download(&bp_grad))]
}

fn assert_loss_close(what: &str, got: f32, want: f32) {
    assert!((got - want).abs() <= REL * want.abs() + ABS, "{what}: loss {got} vs {want}");
}

fn compare_bio<B1: Backend, B2: Backend>(got: &B1, want: &B2) {
    let (g, gl) = bio_step(got);
    let (w, wl) = bio_step(want);
    assert_loss_close("bio step", gl, wl);
    assert_params_close("bio step", &g, &w);
}

fn compare_bp<B1: Backend, B2: Backend>(got: &B1, want: &B2) {
    let momentum = Optimizer::Momentum { momentum: 0.9 };
    for (optimizer, eps) in [(Optimizer::Adam, 0.0), (momentum, 0.0), (Optimizer::Adam, 0.1), (momentum, 0.1)] {
        let (g, gl) = bp_step(got, optimizer, eps);
        let (w, wl) = bp_step(want, optimizer, eps);
        let what = format!("bp step ({optimizer:?}, adversarial eps {eps})");
        assert_loss_close(&what, gl, wl);
        assert_params_close(&what, &g, &w);
    }
}

fn compare_input_gradients<B1: Backend, B2: Backend>(got: &B1, want: &B2) {
    for ((name, gl, gg), (_, wl, wg)) in input_gradients(got).into_iter().zip(input_gradients(want)) {
        assert_eq!(gl.len(), wl.len());
        for (i, (g, w)) in gl.iter().zip(&wl).enumerate() {
            assert_loss_close(&format!("{name} attack gradient: loss of sample {i}"), *g, *w);
        }
        assert_matrix_close(&format!("{name} attack gradient"), &gg, &wg);
    }
}

// ---- CUDA against the CPU backend (GPU only) ----------------------------------------------------

#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn cuda_bio_step_matches_cpu() {
    compare_bio(&cuda(), &CpuBackend::new());
}

#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn cuda_bp_step_matches_cpu() {
    compare_bp(&cuda(), &CpuBackend::new());
}

#[test]
#[ignore = "needs a CUDA GPU; run with --include-ignored on a GPU machine"]
fn cuda_attack_gradient_matches_cpu() {
    compare_input_gradients(&cuda(), &CpuBackend::new());
}

// ---- The same harness on two CPU-side backends (runs everywhere) -----------------------------

#[test]
fn harness_cpu_bio_step_matches_reference() {
    compare_bio(&CpuBackend::new(), &ReferenceBackend);
}

#[test]
fn harness_cpu_bp_step_matches_reference() {
    compare_bp(&CpuBackend::new(), &ReferenceBackend);
}

#[test]
fn harness_cpu_attack_gradient_matches_reference() {
    compare_input_gradients(&CpuBackend::new(), &ReferenceBackend);
}

/// The harness must notice a real difference: a perturbed parameter set fails it.
#[test]
#[should_panic(expected = "differs by")]
fn harness_catches_a_perturbed_parameter() {
    let (p, _) = bp_step(&ReferenceBackend, Optimizer::Adam, 0.0);
    let mut q = p.clone();
    let m = &mut q.tensors[0].1;
    let bump = 1e-2 * max_abs(m);
    m.as_mut_slice()[5] += bump;
    assert_params_close("perturbed", &q, &p);
}
