//! The `softhebb` rule's unit tests.

use proptest::prelude::*;

use super::*;
use crate::backend::{ReferenceBackend, TensorStore};
use crate::error::CoreError;
use crate::model::Classifier;
use crate::rules::test_util::{check_hidden_then_readout, check_resume, gradient_error, tensor, uniform};
use crate::rules::{LearningRule, RuleState};
use crate::tensor::Matrix;

type Ref = ReferenceBackend;

fn config(hidden: usize, f: impl FnOnce(&mut SoftHebbParams)) -> SoftHebbConfig {
    let mut p = SoftHebbParams {
        hidden: vec![hidden],
        beta: 2.0,
        hebbian_rate: 0.05,
        readout_rate: 0.05,
        ..Default::default()
    };
    f(&mut p);
    p.check().expect("valid")
}

/// A network with weights of norm ≈ 1, random biases and readout (no ties, a lively softmax).
fn lively(seed: u64, beta: f32) -> SoftHebbNet<Ref> {
    let mut net = SoftHebbNet::init(&ReferenceBackend, config(16, |c| c.beta = beta), 12, 3, seed);
    net.weights = uniform(16, 12, -0.5, 0.5, seed + 1);
    net.bias = uniform(1, 16, -0.3, 0.3, seed + 2);
    net.readout.weights = uniform(3, 16, -3.0, 3.0, seed + 3);
    net.readout.bias = uniform(1, 3, -0.5, 0.5, seed + 4);
    net
}

#[test]
fn gradient_matches_finite_differences() {
    for (seed, beta) in [(0u64, 1.0f32), (1, 4.0), (2, 10.0)] {
        let net = lively(seed, beta);
        let err = gradient_error(&net, &uniform(4, 12, 0.05, 1.0, seed + 20), &[0, 1, 2, 1]);
        assert!(err < 2e-2, "seed {seed}, β {beta}: relative error {err}");
    }
}

#[test]
fn zero_input_is_finite() {
    let net = lively(3, 4.0);
    let x = Matrix::zeros(2, 12);
    let (losses, g) = net.loss_and_input_gradient(&x, &[0, 1]);
    assert!(losses.iter().all(|l| l.is_finite()) && g.all_finite());
}

#[test]
fn hidden_learns_first_then_only_the_readout() {
    let cfg = config(8, |c| {
        c.hidden_epochs = 3;
        c.readout_rate = 0.2;
    });
    check_hidden_then_readout(SoftHebbRule::<Ref>::new(cfg), &["hidden.0.weight", "hidden.0.bias"]);
}

#[test]
fn resumes_bit_for_bit() {
    let make = || SoftHebbRule::<Ref>::new(config(6, |c| c.hidden_epochs = 2));
    check_resume(make, 8, 6, 2);
    check_resume(make, 8, 6, 4);
    check_resume(make, 8, 6, 6);
}

#[test]
fn refuses_another_rules_state_and_wrong_shapes() {
    let b = ReferenceBackend;
    let mut rule = SoftHebbRule::<Ref>::new(config(6, |_| {}));
    let net = rule.init_model(&b, 8, 2, 1);
    assert!(matches!(rule.restore_state(&net, RuleState::encode("kh", &0u8)), Err(CoreError::Incompatible(_))));
    let mut params = net.to_params();
    params.tensors[1].1 = Matrix::zeros(1, 5);
    assert!(matches!(rule.model_from_params(&b, 8, 2, &params), Err(CoreError::Incompatible(_))));
}

#[test]
fn params_round_trip_reproduces_the_logits() {
    let b = ReferenceBackend;
    let net = lively(5, 3.0);
    let back = SoftHebbNet::from_params(&b, net.config.clone(), 12, 3, &net.to_params()).expect("fits");
    let x = uniform(5, 12, 0.0, 1.0, 9);
    assert_eq!(net.logits(&x), back.logits(&x));
    let params = net.to_params();
    let names: Vec<&str> = params.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["hidden.0.weight", "hidden.0.bias", "readout.weight", "readout.bias"]);
    assert_eq!(tensor(&params, "hidden.0.bias"), &b.download(&net.bias));
}

#[test]
fn check_names_the_flag() {
    let bad = |f: fn(&mut SoftHebbParams)| {
        let mut p = SoftHebbParams::default();
        f(&mut p);
        match p.check() {
            Err(CoreError::InvalidParam { name, .. }) => name,
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    };
    assert_eq!(bad(|p| p.beta = 0.0), "softhebb-beta");
    assert_eq!(bad(|p| p.hebbian_rate = -1.0), "softhebb-rate");
    assert_eq!(bad(|p| p.readout_rate = f32::INFINITY), "softhebb-readout-rate");
    assert_eq!(bad(|p| p.hidden = vec![10, 10]), "hidden");
    assert!(SoftHebbParams::default().check().is_ok());
}

/// Mean distance of the rows' L2 norms from 1.
fn sphere_distance(w: &Matrix) -> f32 {
    let d: f32 = (0..w.rows()).map(|i| (w.row(i).iter().map(|v| v * v).sum::<f32>().sqrt() - 1.0).abs()).sum();
    d / w.rows() as f32
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// The soft winner-take-all is a distribution over the hidden units for any input, weights
    /// and priors.
    #[test]
    fn activations_sum_to_one(seed in 0u64..1000, scale in 0.0f32..100.0, beta in 0.01f32..50.0) {
        let mut net = lively(seed, beta);
        net.bias = uniform(1, 16, -5.0, 5.0, seed + 7);
        let y = net.posterior(&uniform(3, 12, -scale, scale, seed + 8));
        for i in 0..3 {
            let total: f32 = y.row(i).iter().sum();
            prop_assert!(y.row(i).iter().all(|&v| (0.0..=1.0).contains(&v)));
            prop_assert!((total - 1.0).abs() < 1e-5, "row {} sums to {}", i, total);
        }
    }

    /// The paper's weight-norm behaviour: with no normalization step, the rows move toward the
    /// unit sphere, from inside or from outside.
    #[test]
    fn weights_move_toward_the_unit_sphere(seed in 0u64..1000, scale in prop::sample::select(vec![0.3f32, 3.0])) {
        let b = ReferenceBackend;
        let mut net = SoftHebbNet::init(&b, config(6, |c| c.beta = 4.0), 10, 2, seed);
        // Positive rows of norm `scale`: every unit has a positive drive from positive inputs.
        let w = uniform(6, 10, 0.1, 1.0, seed + 1);
        net.weights = Matrix::from_fn(6, 10, |i, j| {
            scale * w.get(i, j) / w.row(i).iter().map(|v| v * v).sum::<f32>().sqrt()
        });
        let before = sphere_distance(&net.weights);
        for step in 0..150u64 {
            let t = net.trace(&uniform(8, 10, 0.0, 1.0, seed.wrapping_mul(1000) + step));
            softhebb_plasticity(&b, &mut net, &t.normalized, &t.posterior, 0.05);
        }
        prop_assert!(net.weights.all_finite() && net.bias.all_finite());
        let after = sphere_distance(&net.weights);
        prop_assert!(after < 0.5 * before, "mean |‖w‖ − 1| {} → {}", before, after);
    }
}
