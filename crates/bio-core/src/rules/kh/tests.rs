//! The `kh` rule's unit tests.

use proptest::prelude::*;

use super::*;
use crate::backend::ReferenceBackend;
use crate::error::CoreError;
use crate::model::Classifier;
use crate::rules::frozen::{ReadoutState, Schedule, phase_split};
use crate::rules::test_util::{check_hidden_then_readout, check_resume, gradient_error, uniform};
use crate::rules::{LearningRule, RuleState, config_from_settings};
use crate::tensor::Matrix;

type Ref = ReferenceBackend;

fn config(hidden: usize, f: impl FnOnce(&mut KhParams)) -> KhConfig {
    let mut p = KhParams { hidden: vec![hidden], hebbian_rate: 0.05, readout_rate: 0.05, ..Default::default() };
    f(&mut p);
    p.check().expect("valid")
}

fn random_readout(net: &mut KhNet<Ref>, seed: u64) {
    let (c, n) = net.readout.weights.shape();
    net.readout.weights = uniform(c, n, -2.0, 2.0, seed);
    net.readout.bias = uniform(1, c, -0.5, 0.5, seed + 1);
}

#[test]
fn gradient_matches_finite_differences() {
    for (seed, n, p) in [(0u64, 4.5f32, 2.0f32), (1, 3.0, 3.0), (2, 1.0, 2.0), (3, 2.0, 2.0)] {
        let cfg = config(16, |c| {
            c.n = n;
            c.p = p;
        });
        let mut net = KhNet::init(&ReferenceBackend, cfg, 12, 3, seed);
        random_readout(&mut net, seed + 10);
        let err = gradient_error(&net, &uniform(4, 12, 0.05, 1.0, seed + 20), &[0, 1, 2, 1]);
        assert!(err < 2e-2, "seed {seed}, n {n}: relative error {err}");
    }
}

#[test]
fn code_is_a_unit_vector_or_zero() {
    let net = KhNet::init(&ReferenceBackend, config(16, |_| {}), 12, 3, 4);
    let mut x = uniform(3, 12, 0.0, 1.0, 5);
    x.row_mut(2).fill(0.0);
    let h = net.code(&x);
    for i in 0..2 {
        let norm = h.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {i}: ‖ĥ‖ = {norm}");
    }
    assert!(h.row(2).iter().all(|&v| v == 0.0), "no response, no code");
    // The zero input still has a finite gradient.
    let (_, g) = net.loss_and_input_gradient(&x, &[0, 1, 2]);
    assert!(g.all_finite());
}

#[test]
fn hidden_learns_first_then_only_the_readout() {
    check_hidden_then_readout(KhRule::<Ref>::new(config(8, |c| c.hidden_epochs = 3)), &["hidden.0.weight"]);
}

#[test]
fn schedule_anneals_over_the_unsupervised_epochs_only() {
    assert_eq!(phase_split(10, 20), 10);
    assert_eq!(phase_split(10, 8), 4);
    assert_eq!(phase_split(10, 1), 0);
    let s: Vec<Schedule> = (0..6).map(|e| Schedule::at(0.4, 4, e, 6)).collect();
    assert_eq!(s.iter().map(|s| s.unsupervised).collect::<Vec<_>>(), [true, true, true, false, false, false]);
    assert_eq!(s[0].rate, 0.4);
    assert!((s[2].rate - 0.4 / 3.0).abs() < 1e-7);
    assert_eq!(s[3].rate, 0.0);
}

#[test]
fn resumes_bit_for_bit() {
    let make = || KhRule::<Ref>::new(config(6, |c| c.hidden_epochs = 2));
    check_resume(make, 8, 6, 2); // inside the unsupervised phase (epoch 1)
    check_resume(make, 8, 6, 4); // at the first readout step (no moments yet)
    check_resume(make, 8, 6, 6); // after two readout steps (Adam moments set)
}

#[test]
fn refuses_another_rules_state_and_wrong_shapes() {
    let b = ReferenceBackend;
    let mut rule = KhRule::<Ref>::new(config(6, |_| {}));
    let net = rule.init_model(&b, 8, 2, 1);
    let other = RuleState::encode("softhebb", &0u8);
    assert!(matches!(rule.restore_state(&net, other), Err(CoreError::Incompatible(_))));
    let bad = KhState {
        schedule: Schedule::default(),
        readout: ReadoutState { steps: 1, moments: vec![Matrix::zeros(1, 1); 4] },
    };
    assert!(rule.restore_state(&net, RuleState::encode("kh", &bad)).is_err());
    let mut params = net.to_params();
    params.tensors[0].1 = Matrix::zeros(5, 8);
    assert!(matches!(rule.model_from_params(&b, 8, 2, &params), Err(CoreError::Incompatible(_))));
}

#[test]
fn params_round_trip_reproduces_the_logits() {
    let b = ReferenceBackend;
    let cfg = config(10, |_| {});
    let mut net = KhNet::init(&b, cfg.clone(), 12, 3, 7);
    random_readout(&mut net, 8);
    let back = KhNet::from_params(&b, cfg, 12, 3, &net.to_params()).expect("fits");
    let x = uniform(5, 12, 0.0, 1.0, 9);
    assert_eq!(net.logits(&x), back.logits(&x));
    let params = net.to_params();
    let names: Vec<&str> = params.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["hidden.0.weight", "readout.weight", "readout.bias"]);
}

#[test]
fn check_names_the_flag() {
    let bad = |f: fn(&mut KhParams)| {
        let mut p = KhParams::default();
        f(&mut p);
        match p.check() {
            Err(CoreError::InvalidParam { name, .. }) => name,
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    };
    assert_eq!(bad(|p| p.p = 1.5), "kh-p");
    assert_eq!(bad(|p| p.k = 1), "kh-k");
    assert_eq!(bad(|p| p.delta = -0.1), "kh-delta");
    assert_eq!(bad(|p| p.n = 0.5), "kh-n");
    assert_eq!(bad(|p| p.hebbian_rate = f32::NAN), "kh-rate");
    assert_eq!(bad(|p| p.readout_rate = 0.0), "kh-readout-rate");
    assert_eq!(bad(|p| p.hidden = vec![100, 100]), "hidden");
    assert_eq!(bad(|p| p.hidden = vec![1]), "hidden");
    assert!(KhParams::default().check().is_ok());
}

#[test]
fn settings_reach_their_fields() {
    let mut settings = crate::rules::Settings::new();
    for (flag, value) in [("kh-p", 3.0), ("kh-delta", 0.2), ("kh-n", 2.0), ("kh-rate", 0.1)] {
        settings.insert(flag.into(), serde_json::json!(value));
    }
    settings.insert("kh-k".into(), serde_json::json!(3));
    settings.insert("kh-hidden-epochs".into(), serde_json::json!(4));
    settings.insert("kh-readout-rate".into(), serde_json::json!(0.01));
    let c = config_from_settings::<KhRule<Ref>>(&[50], &settings).expect("valid");
    assert_eq!((c.p, c.k, c.delta, c.n, c.hebbian_rate), (3.0, 3, 0.2, 2.0, 0.1));
    assert_eq!((c.hidden_epochs, c.readout_rate, c.hidden.clone()), (4, 0.01, vec![50]));
}

/// Mean distance of the rows' `p`-norms from 1.
fn sphere_distance(w: &Matrix, p: f32) -> f32 {
    let d: f32 =
        (0..w.rows()).map(|i| (w.row(i).iter().map(|v| v.abs().powf(p)).sum::<f32>().powf(1.0 / p) - 1.0).abs()).sum();
    d / w.rows() as f32
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// The paper's invariant: from an `N(0, 1)` start the rule itself pulls the rows toward the
    /// unit `p`-sphere.
    #[test]
    fn weights_move_toward_the_unit_p_sphere(seed in 0u64..1000, p in prop::sample::select(vec![2.0f32, 3.0]), delta in 0.0f32..0.5) {
        let b = ReferenceBackend;
        let cfg = config(6, |c| { c.p = p; c.delta = delta; c.hebbian_rate = 0.05; });
        let mut w = KhNet::init(&b, cfg.clone(), 10, 2, seed).weights;
        let before = sphere_distance(&w, p);
        for step in 0..150u64 {
            let x = uniform(8, 10, 0.0, 1.0, seed.wrapping_mul(1000) + step);
            kh_plasticity(&b, &mut w, &x, &cfg, 0.05);
        }
        prop_assert!(w.all_finite());
        let after = sphere_distance(&w, p);
        prop_assert!(after < 0.8 * before, "mean |‖w‖_p − 1| {} → {}", before, after);
    }
}
