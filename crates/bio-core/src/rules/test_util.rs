//! Test helpers shared by the rules' unit tests: seeded data, a two-class toy problem, a short
//! training loop and the bit-for-bit resume check.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::LearningRule;
use crate::backend::ReferenceBackend;
use crate::model::{Classifier, Params};
use crate::tensor::Matrix;

type Ref = ReferenceBackend;

/// Entries uniform in `[lo, hi)`.
pub(crate) fn uniform(rows: usize, cols: usize, lo: f32, hi: f32, seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Matrix::from_fn(rows, cols, |_, _| rng.random_range(lo..hi))
}

pub(crate) use crate::conformance::input_gradient_error as gradient_error;

/// A tiny separable problem: class 0 lights the first half of the pixels, class 1 the second.
pub(crate) fn two_blobs(rows: usize, dim: usize, seed: u64) -> (Matrix, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<usize> = (0..rows).map(|i| i % 2).collect();
    let x = Matrix::from_fn(rows, dim, |i, j| {
        let lit = (j < dim / 2) == (labels[i] == 0);
        if lit { rng.random_range(0.6f32..1.0) } else { rng.random_range(0.0f32..0.2) }
    });
    (x, labels)
}

/// The named tensor of a parameter set.
pub(crate) fn tensor<'a>(p: &'a Params, name: &str) -> &'a Matrix {
    &p.tensors.iter().find(|(n, _)| n == name).expect("present").1
}

/// Trains `epochs` epochs of full-batch steps on `x`; returns each epoch's mean loss and the
/// parameters after each epoch.
pub(crate) fn train<R: LearningRule<Ref>>(
    rule: &mut R,
    model: &mut R::Model,
    x: &Matrix,
    labels: &[usize],
    epochs: usize,
) -> Vec<(f32, Params)> {
    (0..epochs)
        .map(|e| {
            rule.start_epoch(e, epochs);
            let mut loss = 0.0;
            for chunk in 0..2 {
                let rows: Vec<usize> = (0..x.rows()).filter(|i| i % 2 == chunk).collect();
                let labels: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
                let r = rule.train_batch(model, &x.select_rows(&rows), &labels).expect("finite");
                assert!(r.loss.is_finite() && (0.0..=1.0).contains(&r.active_fraction));
                loss += r.loss / 2.0;
            }
            (loss, model.to_params())
        })
        .collect()
}

/// Which of `names` changed between two parameter sets.
pub(crate) fn changed(a: &Params, b: &Params, name: &str) -> bool {
    tensor(a, name) != tensor(b, name)
}

/// Saves before batch `resume_at` (even: the first of an epoch's two batches, after its
/// `start_epoch`), then checks that the epoch's two batches from the saved state (a new rule and
/// a model rebuilt from parameters) equal the uninterrupted run bit for bit.
pub(crate) fn check_resume<R: LearningRule<Ref>>(
    make: impl Fn() -> R,
    input_dim: usize,
    epochs: usize,
    resume_at: usize,
) {
    let b = ReferenceBackend;
    let (x, labels) = two_blobs(8, input_dim, 9);
    let mut rule = make();
    let mut model = rule.init_model(&b, input_dim, 2, 1);
    let (mut saved, mut saved_params) = (None, None);
    let mut step = 0;
    let mut uninterrupted = None;
    'run: for e in 0..epochs {
        rule.start_epoch(e, epochs);
        for _ in 0..2 {
            if step == resume_at {
                saved = Some(rule.save_state(&model));
                saved_params = Some(model.to_params());
            }
            rule.train_batch(&mut model, &x, &labels).expect("finite");
            step += 1;
            if step == resume_at + 2 {
                uninterrupted = Some(model.to_params());
                break 'run;
            }
        }
    }
    let mut resumed_rule = make();
    let mut resumed = resumed_rule.model_from_params(&b, input_dim, 2, &saved_params.expect("saved")).expect("fits");
    resumed_rule.restore_state(&resumed, saved.expect("saved")).expect("restores");
    for _ in 0..2 {
        resumed_rule.train_batch(&mut resumed, &x, &labels).expect("finite");
    }
    assert_eq!(resumed.to_params(), uninterrupted.expect("ran"));
}

/// Trains a frozen-feature rule 8 epochs on [`two_blobs`] (8 inputs, 2 classes), of which the
/// first 3 are unsupervised: in those only the tensors `hidden` change, then only the readout, and
/// the readout's loss falls every epoch, by 30% in all.
pub(crate) fn check_hidden_then_readout<R: LearningRule<Ref>>(mut rule: R, hidden: &[&str]) {
    let mut net = rule.init_model(&ReferenceBackend, 8, 2, 3);
    let (x, labels) = two_blobs(16, 8, 4);
    let start = net.to_params();
    let history = train(&mut rule, &mut net, &x, &labels, 8);
    let params: Vec<&Params> = std::iter::once(&start).chain(history.iter().map(|(_, p)| p)).collect();
    for e in 0..8 {
        let (before, after) = (params[e], params[e + 1]);
        let unsupervised = e < 3;
        for name in hidden {
            assert_eq!(changed(before, after, name), unsupervised, "epoch {e}: {name}");
        }
        for name in ["readout.weight", "readout.bias"] {
            assert_eq!(changed(before, after, name), !unsupervised, "epoch {e}: {name}");
        }
        assert!(after.tensors.iter().all(|(_, m)| m.all_finite()));
    }
    let losses: Vec<f32> = history.iter().map(|(l, _)| *l).collect();
    assert!(losses[3..].windows(2).all(|w| w[1] < w[0]), "the readout learns the two blobs: {losses:?}");
    assert!(losses[7] < 0.7 * losses[3], "the readout learns the two blobs: {losses:?}");
}
