//! Adversarial attacks: the ball and the pixel range are respected, eps 0 is the clean accuracy,
//! PGD is at least as strong as FGSM, targeted attacks reach their target, the Square attack works
//! without gradients, seeds make runs reproducible, and bad parameters are refused by name.

use std::sync::OnceLock;

use bio_core::{
    BackpropRule, BioNet, BioParams, BioRule, BpNet, BpParams, Classifier, ElementwiseOps, Matrix, Optimizer, Params,
    TensorStore, Unary, train::train_epoch,
};
use bio_cpu::CpuBackend;
use bio_eval::apgd::{ApgdLoss, ApgdRun, apgd};
use bio_eval::attack::DEFAULT_BATCH;
use bio_eval::{
    AttackName, AttackParams, EnsembleParams, EvalError, Helpers, Norm, RobustPoint, RobustnessCurve, SanityCheck,
    TargetMode, evaluate, masking_check, perturb, robustness_curve, strongest, worst_case,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIDE: usize = 8;
const DIM: usize = SIDE * SIDE;
const CLASSES: usize = 4;

/// Four classes of 8×8 images: a shared random background in [0.2, 0.8], a class-specific
/// ±`contrast` pattern and small noise, clipped to [0, 1]. With contrast 0.06 the classes are
/// separable but within reach of eps ≈ 0.1.
fn synthetic_with(n: usize, seed: u64, contrast: f32) -> (Matrix, Vec<usize>) {
    let mut proto_rng = ChaCha8Rng::seed_from_u64(7);
    let base: Vec<f32> = (0..DIM).map(|_| proto_rng.random_range(0.2..0.8)).collect();
    let protos: Vec<Vec<f32>> = (0..CLASSES)
        .map(|_| base.iter().map(|v| v + if proto_rng.random_bool(0.5) { contrast } else { -contrast }).collect())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<usize> = (0..n).map(|i| i % CLASSES).collect();
    let x = Matrix::from_fn(n, DIM, |i, j| {
        let noise: f32 = (0..3).map(|_| rng.random_range(-0.04..0.04)).sum();
        (protos[labels[i]][j] + noise).clamp(0.0, 1.0)
    });
    (x, labels)
}

fn synthetic(n: usize, seed: u64) -> (Matrix, Vec<usize>) {
    synthetic_with(n, seed, 0.06)
}

fn batches(x: &Matrix, y: &[usize], size: usize) -> Vec<(Matrix, Vec<usize>)> {
    (0..x.rows())
        .step_by(size)
        .map(|s| {
            let rows: Vec<usize> = (s..(s + size).min(x.rows())).collect();
            (x.select_rows(&rows), rows.iter().map(|&i| y[i]).collect())
        })
        .collect()
}

struct Trained {
    model: BpNet<CpuBackend>,
    test_x: Matrix,
    test_y: Vec<usize>,
}

/// A small backprop network trained on the synthetic task (shared by the tests).
fn trained() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        let b = CpuBackend::new();
        let config =
            BpParams { hidden: vec![32], optimizer: Optimizer::Adam, learning_rate: 0.01, ..Default::default() }
                .check()
                .unwrap();
        let mut model = BpNet::init(&b, config.clone(), DIM, CLASSES, 1);
        let mut rule = BackpropRule::new(config);
        let (x, y) = synthetic(800, 1);
        for _ in 0..15 {
            train_epoch(&b, &mut rule, &mut model, batches(&x, &y, 50), |_| {}).unwrap();
        }
        let (test_x, test_y) = synthetic(400, 2);
        Trained { model, test_x, test_y }
    })
}

fn accuracy_on(model: &BpNet<CpuBackend>, x: &Matrix, y: &[usize]) -> f64 {
    evaluate(model, x, y, 500).unwrap().accuracy
}

fn pgd(eps: f32) -> AttackParams {
    AttackParams { kind: AttackName::Pgd, eps, ..Default::default() }
}

/// Largest distance of each row of `adv` to `x` in the norm, and whether every pixel is in [0, 1].
fn distances(x: &Matrix, adv: &Matrix, norm: Norm) -> (f32, bool) {
    let mut worst = 0.0f32;
    for i in 0..x.rows() {
        let d = x.row(i).iter().zip(adv.row(i)).map(|(a, b)| b - a);
        let dist = match norm {
            Norm::Linf => d.fold(0.0f32, |m, v| m.max(v.abs())),
            Norm::L2 => d.map(|v| v * v).sum::<f32>().sqrt(),
        };
        worst = worst.max(dist);
    }
    (worst, adv.as_slice().iter().all(|v| (0.0..=1.0).contains(v)))
}

#[test]
fn the_trained_model_is_accurate() {
    let t = trained();
    let acc = accuracy_on(&t.model, &t.test_x, &t.test_y);
    assert!(acc > 0.95, "clean accuracy {acc}");
}

#[test]
fn eps_zero_is_the_clean_accuracy_and_the_clean_input() {
    let t = trained();
    let clean = evaluate(&t.model, &t.test_x, &t.test_y, 64).unwrap();
    for kind in [AttackName::Fgsm, AttackName::Pgd, AttackName::Square] {
        let params = AttackParams { kind, queries: 20, ..Default::default() };
        let curve = robustness_curve(&t.model, &params, &[0.0], &t.test_x, &t.test_y, 64, 3, |_, _| {}).unwrap();
        assert_eq!(curve.points[0].accuracy, clean.accuracy);
        assert_eq!(curve.points[0].correct, clean.correct);
        assert_eq!(curve.clean_accuracy, clean.accuracy);
        let attack = AttackParams { eps: 0.0, ..params }.check().unwrap();
        assert_eq!(perturb(&t.model, &attack, &t.test_x, &t.test_y, 3).unwrap(), t.test_x);
    }
}

#[test]
fn pgd_is_at_least_as_strong_as_fgsm_and_lowers_accuracy() {
    let t = trained();
    let grid = [0.0, 0.05, 0.1];
    let fgsm = AttackParams { kind: AttackName::Fgsm, ..Default::default() };
    let f = robustness_curve(&t.model, &fgsm, &grid, &t.test_x, &t.test_y, 128, 5, |_, _| {}).unwrap();
    let p = robustness_curve(&t.model, &pgd(0.0), &grid, &t.test_x, &t.test_y, 128, 5, |_, _| {}).unwrap();
    eprintln!("fgsm {:?}", f.points.iter().map(|p| p.accuracy).collect::<Vec<_>>());
    eprintln!("pgd  {:?}", p.points.iter().map(|p| p.accuracy).collect::<Vec<_>>());
    for (a, b) in p.points.iter().zip(&f.points) {
        assert!(a.accuracy <= b.accuracy + 0.01, "PGD {} vs FGSM {} at eps {}", a.accuracy, b.accuracy, a.eps);
    }
    assert!(p.points[2].accuracy < p.points[0].accuracy - 0.3, "PGD at 0.1 barely hurts: {:?}", p.points);
    // Robust accuracy never rises with eps here (same seed at every radius).
    assert!(p.points.windows(2).all(|w| w[1].accuracy <= w[0].accuracy));
}

#[test]
fn the_curve_agrees_with_perturb() {
    let t = trained();
    let params = pgd(0.05);
    let attack = params.clone().check().unwrap();
    let adv = perturb(&t.model, &attack, &t.test_x, &t.test_y, 11).unwrap();
    let b = t.model.backend();
    let clean = t.model.predict(&b.upload(&t.test_x));
    let pred = t.model.predict(&b.upload(&adv));
    let robust = (0..t.test_y.len()).filter(|&i| clean[i] == t.test_y[i] && pred[i] == t.test_y[i]).count();
    let curve =
        robustness_curve(&t.model, &params, &[0.05], &t.test_x, &t.test_y, DEFAULT_BATCH, 11, |_, _| {}).unwrap();
    assert_eq!(curve.points[0].correct, robust);
}

#[test]
fn l2_pgd_stays_in_its_ball_and_hurts() {
    let t = trained();
    for eps in [0.5f32, 1.5] {
        let attack = AttackParams { norm: Norm::L2, ..pgd(eps) }.check().unwrap();
        let adv = perturb(&t.model, &attack, &t.test_x, &t.test_y, 4).unwrap();
        let (dist, in_range) = distances(&t.test_x, &adv, Norm::L2);
        assert!(dist <= eps * (1.0 + 1e-5) + 1e-6 && in_range, "eps {eps}: distance {dist}");
        if eps > 1.0 {
            let acc = accuracy_on(&t.model, &adv, &t.test_y);
            assert!(acc < 0.7, "L2 PGD at eps {eps} leaves accuracy {acc}");
        }
    }
}

#[test]
fn targeted_pgd_reaches_the_target() {
    let t = trained();
    let b = t.model.backend();
    let others: Vec<usize> = (0..t.test_y.len()).filter(|&i| t.test_y[i] != 0).collect();
    let x = t.test_x.select_rows(&others);
    let y: Vec<usize> = others.iter().map(|&i| t.test_y[i]).collect();
    let rate = |m: &Matrix| {
        let p = t.model.predict(&b.upload(m));
        p.iter().filter(|&&c| c == 0).count() as f64 / p.len() as f64
    };
    let attack = AttackParams { target: Some(TargetMode::Class(0)), ..pgd(0.1) }.check().unwrap();
    let adv = perturb(&t.model, &attack, &x, &y, 8).unwrap();
    let (before, after) = (rate(&x), rate(&adv));
    eprintln!("target-class rate {before} -> {after}");
    assert!(after > before + 0.5, "target rate {before} -> {after}");

    let params = AttackParams { target: Some(TargetMode::Random), ..pgd(0.0) };
    let curve = robustness_curve(&t.model, &params, &[0.0, 0.1], &t.test_x, &t.test_y, 100, 8, |_, _| {}).unwrap();
    let r = curve.points.iter().map(|p| p.target_rate.unwrap()).collect::<Vec<_>>();
    assert!(r[1] > r[0] + 0.3, "random-target rates {r:?}");
}

#[test]
fn square_attack_lowers_accuracy_without_gradients() {
    let t = trained();
    let eps = 0.1;
    let params = AttackParams { kind: AttackName::Square, eps, queries: 300, ..Default::default() };
    let attack = params.clone().check().unwrap();
    let adv = perturb(&t.model, &attack, &t.test_x, &t.test_y, 9).unwrap();
    let (dist, in_range) = distances(&t.test_x, &adv, Norm::Linf);
    assert!(dist <= eps + 1e-6 && in_range, "distance {dist}");
    let (clean, attacked) = (accuracy_on(&t.model, &t.test_x, &t.test_y), accuracy_on(&t.model, &adv, &t.test_y));
    eprintln!("square: clean {clean}, attacked {attacked}");
    assert!(attacked < clean - 0.3, "clean {clean}, after the Square attack {attacked}");
    let curve = robustness_curve(&t.model, &params, &[0.0, eps], &t.test_x, &t.test_y, 200, 9, |_, _| {}).unwrap();
    let q = curve.points[1].mean_queries.unwrap();
    assert!((1.0..=300.0).contains(&q), "mean queries {q}");
}

#[test]
fn same_seed_same_images() {
    let t = trained();
    let x = t.test_x.select_rows(&(0..50).collect::<Vec<_>>());
    let y = &t.test_y[..50];
    for params in [
        pgd(0.1),
        AttackParams { norm: Norm::L2, ..pgd(1.0) },
        AttackParams { kind: AttackName::Square, queries: 50, ..pgd(0.1) },
        AttackParams { target: Some(TargetMode::Random), ..pgd(0.1) },
    ] {
        let attack = params.check().unwrap();
        let a = perturb(&t.model, &attack, &x, y, 42).unwrap();
        let b = perturb(&t.model, &attack, &x, y, 42).unwrap();
        let c = perturb(&t.model, &attack, &x, y, 43).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

#[test]
fn progress_counts_every_sample_at_every_radius() {
    let t = trained();
    let mut calls = Vec::new();
    let params = AttackParams { kind: AttackName::Fgsm, ..Default::default() };
    robustness_curve(&t.model, &params, &[0.0, 0.1], &t.test_x, &t.test_y, 150, 1, |d, n| calls.push((d, n))).unwrap();
    assert_eq!(calls.last(), Some(&(800, 800)));
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn curves_serialize_with_plain_keys() {
    let t = trained();
    let curve = robustness_curve(&t.model, &pgd(0.0), &[0.0, 0.05], &t.test_x, &t.test_y, 400, 1, |_, _| {}).unwrap();
    let json = serde_json::to_value(&curve).unwrap();
    assert_eq!(json["attack"], "pgd");
    assert_eq!(json["norm"], "linf");
    assert_eq!(json["steps"], 40);
    assert_eq!(json["points"][1]["eps"], 0.05f32 as f64);
    assert!(json["points"][1]["step_size"].is_number());
    assert!(json["points"][0]["accuracy"].is_number());
    assert_eq!(json["points"][0]["samples"], 400);
    let back: RobustnessCurve = serde_json::from_value(json).unwrap();
    assert_eq!(back, curve);
}

#[test]
fn the_bio_network_can_be_attacked() {
    let b = CpuBackend::new();
    let config = BioParams { hidden: vec![40], active_fraction: 0.1, ..Default::default() }.check().unwrap();
    let mut model = BioNet::init(&b, config.clone(), DIM, CLASSES, 3);
    let mut rule = BioRule::new(config, 3);
    let (x, y) = synthetic_with(800, 1, 0.2);
    for _ in 0..5 {
        train_epoch(&b, &mut rule, &mut model, batches(&x, &y, 50), |_| {}).unwrap();
    }
    let (tx, ty) = synthetic_with(200, 2, 0.2);
    let clean = evaluate(&model, &tx, &ty, 100).unwrap().accuracy;
    for kind in [AttackName::Pgd, AttackName::Square] {
        let params = AttackParams { kind, queries: 100, ..Default::default() };
        let curve = robustness_curve(&model, &params, &[0.0, 0.1], &tx, &ty, 100, 2, |_, _| {}).unwrap();
        eprintln!("bio {kind:?}: clean {clean}, {:?}", curve.points.iter().map(|p| p.accuracy).collect::<Vec<_>>());
        assert_eq!(curve.points[0].accuracy, clean);
        // How well the bio rule learns this toy task is not this test's business; when it beats chance
        // clearly, both attacks must hurt it.
        assert!(curve.points[1].accuracy <= clean);
        if clean > 0.4 {
            assert!(curve.points[1].accuracy < clean, "{kind:?} did not lower {clean}");
        }
        let adv = perturb(&model, &params.clone().check().unwrap(), &tx, &ty, 2).unwrap();
        let (dist, in_range) = distances(&tx, &adv, Norm::Linf);
        assert!(dist <= 0.1 + 1e-6 && in_range);
    }
}

fn point(eps: f32, accuracy: f64) -> RobustPoint {
    RobustPoint { eps, accuracy, correct: 0, samples: 100, step_size: None, target_rate: None, mean_queries: None }
}

#[test]
fn masking_is_flagged_when_the_gradient_free_attack_wins() {
    let t = trained();
    let mut pgd_curve = robustness_curve(&t.model, &pgd(0.0), &[0.0], &t.test_x, &t.test_y, 400, 1, |_, _| {}).unwrap();
    let mut square = pgd_curve.clone();
    pgd_curve.points = vec![point(0.0, 0.9), point(0.1, 0.6), point(0.2, 0.3), point(0.3, 0.1)];
    square.points = vec![point(0.0, 0.9), point(0.1, 0.3), point(0.2, 0.295)];
    let flags = masking_check(&pgd_curve, &square);
    assert_eq!(flags.len(), 3);
    assert_eq!(flags.iter().map(|f| f.masking).collect::<Vec<_>>(), [false, true, false]);
    assert!((flags[1].gap - 0.3).abs() < 1e-9);
}

#[test]
fn an_linf_radius_above_one_is_refused() {
    let params = AttackParams { eps: 8.0, ..Default::default() };
    let err = params.check().unwrap_err();
    assert!(err.to_string().contains("8 is above 1"), "{err}");
    // L2 radii are not bounded by 1.
    assert!(AttackParams { eps: 8.0, norm: Norm::L2, ..Default::default() }.check().is_ok());
}

#[test]
fn a_gap_within_chance_is_not_called_masking() {
    let t = trained();
    let mut pgd_curve = robustness_curve(&t.model, &pgd(0.0), &[0.0], &t.test_x, &t.test_y, 400, 1, |_, _| {}).unwrap();
    let mut square = pgd_curve.clone();
    let at = |accuracy: f64, samples: usize| RobustPoint { samples, ..point(0.1, accuracy) };
    // Square fools 3 more images of 200 (1.5 points): more than one point, but well within chance.
    pgd_curve.points = vec![at(0.5, 200)];
    square.points = vec![at(0.485, 200)];
    let flag = &masking_check(&pgd_curve, &square)[0];
    assert!(!flag.masking, "{flag:?}");
    assert!(flag.threshold > 0.07 && flag.samples == 200, "{flag:?}");
    // The same 1.5 points on 10 000 images is beyond chance (threshold about 1.2 points).
    pgd_curve.points = vec![at(0.5, 10_000)];
    square.points = vec![at(0.485, 10_000)];
    let flag = &masking_check(&pgd_curve, &square)[0];
    assert!(flag.masking && flag.threshold < 0.015, "{flag:?}");
    // Never below one point, however many images.
    assert_eq!(bio_eval::attack::masking_threshold(0.999, 0.999, 1_000_000), bio_eval::attack::MASKING_TOLERANCE);
}

fn bad_name(r: Result<impl std::fmt::Debug, EvalError>) -> std::borrow::Cow<'static, str> {
    match r {
        Err(e) if e.invalid_setting().is_some() => e.invalid_setting().unwrap().to_string().into(),
        other => panic!("expected an invalid parameter, got {other:?}"),
    }
}

#[test]
fn invalid_parameters_are_rejected_naming_the_flag() {
    let bad = |p: AttackParams| bad_name(p.check());
    assert_eq!(bad(pgd(-0.1)), "eps");
    assert_eq!(bad(pgd(f32::NAN)), "eps");
    assert_eq!(bad(pgd(f32::INFINITY)), "eps");
    assert_eq!(bad(AttackParams { steps: 0, ..pgd(0.1) }), "steps");
    assert_eq!(bad(AttackParams { step_size: Some(0.0), ..pgd(0.1) }), "step-size");
    assert_eq!(bad(AttackParams { step_size: Some(f32::NAN), ..pgd(0.1) }), "step-size");
    assert_eq!(bad(AttackParams { kind: AttackName::Square, queries: 0, ..pgd(0.1) }), "queries");
    assert_eq!(bad(AttackParams { kind: AttackName::Square, p_init: 0.0, ..pgd(0.1) }), "p-init");
    assert_eq!(bad(AttackParams { kind: AttackName::Square, norm: Norm::L2, ..pgd(0.1) }), "norm");
    assert_eq!(bad(AttackParams { kind: AttackName::Fgsm, norm: Norm::L2, ..pgd(0.1) }), "norm");
    assert!(AttackParams::default().check().is_ok());

    let t = trained();
    let (x, y) = (&t.test_x, &t.test_y);
    let target = AttackParams { target: Some(TargetMode::Class(CLASSES)), ..pgd(0.1) }.check().unwrap();
    assert_eq!(bad_name(perturb(&t.model, &target, x, y, 0)), "target");
    let mut outside = x.clone();
    outside.set(0, 0, 1.5);
    assert_eq!(bad_name(perturb(&t.model, &pgd(0.1).check().unwrap(), &outside, y, 0)), "images");
    assert_eq!(bad_name(robustness_curve(&t.model, &pgd(0.0), &[], x, y, 10, 0, |_, _| {})), "eps");
    assert_eq!(bad_name(robustness_curve(&t.model, &pgd(0.0), &[0.1, -0.1], x, y, 10, 0, |_, _| {})), "eps");
    assert_eq!(bad_name(robustness_curve(&t.model, &pgd(0.0), &[0.1], x, y, 0, 0, |_, _| {})), "batch");
    assert!(matches!(perturb(&t.model, &pgd(0.1).check().unwrap(), x, &y[1..], 0), Err(EvalError::Shape(_))));
}

/// A tiny untrained network on 4×4 images, for the property tests.
fn tiny() -> &'static BpNet<CpuBackend> {
    static M: OnceLock<BpNet<CpuBackend>> = OnceLock::new();
    M.get_or_init(|| {
        let config = BpParams { hidden: vec![8], ..Default::default() }.check().unwrap();
        BpNet::init(&CpuBackend::new(), config, 16, 3, 5)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn adversarial_examples_stay_in_the_ball_and_the_pixel_range(
        pixels in prop::collection::vec(prop_oneof![Just(0.0f32), Just(1.0f32), 0.0f32..=1.0], 6 * 16),
        labels in prop::collection::vec(0usize..3, 6),
        which in 0usize..5,
        eps in 0.0f32..0.6,
        step in 0.001f32..0.5,
        steps in 1usize..5,
        random_start: bool,
        targeted: bool,
        seed: u64,
    ) {
        let x = Matrix::new(6, 16, pixels).unwrap();
        let (kind, norm, eps) = match which {
            0 => (AttackName::Fgsm, Norm::Linf, eps),
            1 => (AttackName::Pgd, Norm::Linf, eps),
            2 => (AttackName::Pgd, Norm::L2, eps * 4.0),
            3 => (AttackName::Pgd, Norm::L2, eps * 0.01),
            _ => (AttackName::Square, Norm::Linf, eps),
        };
        let params = AttackParams {
            kind, norm, eps, steps, step_size: Some(step), random_start, queries: steps * 5,
            target: targeted.then_some(TargetMode::Random), ..Default::default()
        };
        let adv = perturb(tiny(), &params.check().unwrap(), &x, &labels, seed).unwrap();
        let (dist, in_range) = distances(&x, &adv, norm);
        prop_assert!(in_range);
        prop_assert!(dist <= eps * (1.0 + 1e-5) + 1e-6, "{kind:?} {norm:?}: distance {dist} > eps {eps}");
        prop_assert!(adv.all_finite());
    }
}

/// Measurement on the embedded Fashion-MNIST subset (not a test; run with `--ignored --nocapture`).
#[test]
#[ignore = "measurement on the embedded data; slow"]
fn measure_on_embedded_data() {
    use std::time::Instant;
    let data = bio_data::load("embedded", None).expect("embedded data");
    let b = CpuBackend::new();
    let config = BpParams { hidden: vec![256], learning_rate: 1e-3, ..Default::default() }.check().unwrap();
    let mut model = BpNet::init(&b, config.clone(), data.input_dim(), data.classes, 1);
    let mut rule = BackpropRule::new(config);
    let t0 = Instant::now();
    for epoch in 0..5 {
        let batches = data.train.batches(100, Some(epoch)).map(|bt| (bt.images, bt.labels));
        train_epoch(&b, &mut rule, &mut model, batches, |_| {}).unwrap();
    }
    eprintln!("trained bp 784-256-10 for 5 epochs in {:.1?}", t0.elapsed());
    let (x, y) = (&data.test.images, &data.test.labels);
    let t0 = Instant::now();
    let curve = robustness_curve(&model, &pgd(0.0), &[0.0, 0.1], x, y, 500, 1, |_, _| {}).unwrap();
    eprintln!("PGD-40 (eps 0 and 0.1) on {} images: {:.1?}", x.rows(), t0.elapsed());
    eprintln!("pgd: {}", serde_json::to_string(&curve.points).unwrap());
    let t0 = Instant::now();
    let params = AttackParams { kind: AttackName::Fgsm, ..Default::default() };
    let f = robustness_curve(&model, &params, &bio_eval::DEFAULT_EPS_GRID, x, y, 500, 1, |_, _| {}).unwrap();
    eprintln!("fgsm grid {:.1?}: {:?}", t0.elapsed(), f.points.iter().map(|p| (p.eps, p.accuracy)).collect::<Vec<_>>());
    for p_init in [0.05, 0.3, 0.8] {
        let t0 = Instant::now();
        let params = AttackParams { kind: AttackName::Square, p_init, ..Default::default() };
        let s = robustness_curve(&model, &params, &[0.1], x, y, 500, 1, |_, _| {}).unwrap();
        eprintln!(
            "square-1000 p_init {p_init} at 0.1: {:.1?}: {}",
            t0.elapsed(),
            serde_json::to_string(&s.points).unwrap()
        );
    }

    let config = BioParams { hidden: vec![400], ..Default::default() }.check().unwrap();
    let mut bio = BioNet::init(&b, config.clone(), data.input_dim(), data.classes, 1);
    let mut rule = BioRule::new(config, 1);
    let t0 = Instant::now();
    for epoch in 0..3 {
        let batches = data.train.batches(100, Some(epoch)).map(|bt| (bt.images, bt.labels));
        train_epoch(&b, &mut rule, &mut bio, batches, |_| {}).unwrap();
    }
    eprintln!("trained bio 784-400-10 for 3 epochs in {:.1?}", t0.elapsed());
    let grid = [0.0, 0.05, 0.1, 0.2];
    let p = robustness_curve(&bio, &pgd(0.0), &grid, x, y, 500, 1, |_, _| {}).unwrap();
    let params = AttackParams { kind: AttackName::Square, ..Default::default() };
    let s = robustness_curve(&bio, &params, &grid, x, y, 500, 1, |_, _| {}).unwrap();
    eprintln!("bio pgd {:?}", p.points.iter().map(|p| (p.eps, p.accuracy)).collect::<Vec<_>>());
    eprintln!("bio square {:?}", s.points.iter().map(|p| (p.eps, p.accuracy)).collect::<Vec<_>>());
    eprintln!("masking {}", serde_json::to_string(&masking_check(&p, &s)).unwrap());
}

#[test]
fn attacks_run_on_the_reference_backend() {
    let b = bio_core::ReferenceBackend;
    let config = BpParams { hidden: vec![6], ..Default::default() }.check().unwrap();
    let model = BpNet::init(&b, config, 16, 3, 2);
    let (x, _) = synthetic(5, 3);
    let x = Matrix::from_fn(5, 16, |i, j| x.get(i, j));
    let y = [0, 1, 2, 0, 1];
    for params in [
        pgd(0.1),
        AttackParams { norm: Norm::L2, ..pgd(0.5) },
        AttackParams { kind: AttackName::Square, queries: 30, ..pgd(0.1) },
    ] {
        let norm = params.norm;
        let eps = params.eps;
        let adv = perturb(&model, &params.check().unwrap(), &x, &y, 1).unwrap();
        let (dist, in_range) = distances(&x, &adv, norm);
        assert!(in_range && dist <= eps * (1.0 + 1e-5) + 1e-6);
    }
}

fn ensemble(attacks: &[AttackName]) -> EnsembleParams {
    EnsembleParams { attacks: attacks.to_vec(), sanity: false, square_queries: 200, ..Default::default() }
}

#[test]
fn apgd_is_at_least_as_strong_as_pgd_40() {
    let t = trained();
    for eps in [0.05f32, 0.1] {
        let pgd40 = robustness_curve(&t.model, &pgd(0.0), &[eps], &t.test_x, &t.test_y, 128, 5, |_, _| {}).unwrap();
        let report = strongest(
            &t.model,
            Helpers::default(),
            &ensemble(&[AttackName::ApgdCe]),
            &[eps],
            &t.test_x,
            &t.test_y,
            |_| {},
        )
        .unwrap();
        let (p, a) = (pgd40.points[0].accuracy, report.points[0].accuracy);
        eprintln!("eps {eps}: PGD-40 {p}, APGD-CE {a}");
        assert!(a <= p, "APGD-CE leaves {a} robust, PGD-40 {p}, at eps {eps}");
        assert!(a < report.clean_accuracy - 0.2, "APGD-CE barely hurts at eps {eps}: {a}");
    }
}

#[test]
fn apgd_and_transfer_examples_stay_in_the_ball_and_fool_the_model() {
    let t = trained();
    let source = {
        // A second network of another seed: the transfer source.
        let b = CpuBackend::new();
        let config =
            BpParams { hidden: vec![32], optimizer: Optimizer::Adam, learning_rate: 0.01, ..Default::default() }
                .check()
                .unwrap();
        let mut model = BpNet::init(&b, config.clone(), DIM, CLASSES, 9);
        let mut rule = BackpropRule::new(config);
        let (x, y) = synthetic(800, 3);
        for _ in 0..10 {
            train_epoch(&b, &mut rule, &mut model, batches(&x, &y, 50), |_| {}).unwrap();
        }
        model
    };
    let (x, y) = (t.test_x.select_rows(&(0..100).collect::<Vec<_>>()), t.test_y[..100].to_vec());
    for (norm, eps) in [(Norm::Linf, 0.1f32), (Norm::L2, 0.5)] {
        for loss in [ApgdLoss::CrossEntropy, ApgdLoss::TargetedDlr] {
            for early_stop in [true, false] {
                let run = ApgdRun { norm, eps, iterations: 20, loss, early_stop };
                let targets: Vec<usize> = y.iter().map(|&c| (c + 1) % CLASSES).collect();
                let model: &BpNet<CpuBackend> = if early_stop { &t.model } else { &source };
                let outcome = apgd(model, &run, &x, &y, Some(&targets), &mut ChaCha8Rng::seed_from_u64(4));
                let (dist, in_range) = distances(&x, &outcome.adversarial, norm);
                assert!(in_range, "{norm:?} {loss:?}: pixels out of [0, 1]");
                assert!(dist <= eps * (1.0 + 1e-5) + 1e-6, "{norm:?} {loss:?}: distance {dist} > {eps}");
                // `fooled` says what the model does on the returned images.
                let predicted = model.predict(&model.backend().upload(&outcome.adversarial));
                let wrong: Vec<bool> = predicted.iter().zip(&y).map(|(p, c)| p != c).collect();
                assert_eq!(wrong, outcome.fooled, "{norm:?} {loss:?} early stop {early_stop}");
                assert!(outcome.fooled.iter().filter(|&&f| f).count() > 20, "{norm:?} {loss:?} fooled too few");
            }
        }
    }
    // Transfer from the source to the attacked model, through the ensemble.
    let report = strongest(
        &t.model,
        Helpers { surrogate: None, source: Some(&source) },
        &ensemble(&[AttackName::Transfer]),
        &[0.1],
        &t.test_x,
        &t.test_y,
        |_| {},
    )
    .unwrap();
    let stage = &report.points[0].stages[0];
    assert!(stage.ran && stage.fooled > 0, "{stage:?}");
}

#[test]
fn a_source_of_another_input_size_is_refused_by_name() {
    let t = trained();
    let other = BpNet::init(
        &CpuBackend::new(),
        BpParams { hidden: vec![4], ..Default::default() }.check().unwrap(),
        DIM + 1,
        CLASSES,
        1,
    );
    let r = strongest(
        &t.model,
        Helpers { surrogate: None, source: Some(&other) },
        &ensemble(&[AttackName::Transfer]),
        &[0.1],
        &t.test_x,
        &t.test_y,
        |_| {},
    );
    assert_eq!(bad_name(r), "source");
}

#[test]
fn the_ensemble_is_the_worst_case_per_image_and_its_checks_pass_on_an_honest_model() {
    let t = trained();
    let mut params = ensemble(&AttackName::ENSEMBLE);
    params.independent = true;
    params.sanity = true;
    let report = strongest(&t.model, Helpers::default(), &params, &[0.0, 0.08], &t.test_x, &t.test_y, |_| {}).unwrap();
    let at_zero = &report.points[0];
    assert_eq!(at_zero.accuracy, report.clean_accuracy);
    let p = &report.points[1];
    for s in p.stages.iter().filter(|s| s.ran) {
        let own = s.own_accuracy.expect("independent runs know each attack's own figure");
        assert!(p.accuracy <= own, "worst case {} above {}'s {own}", p.accuracy, s.attack.name());
    }
    // No surrogate and no source were given: those two attacks say so instead of running.
    let skipped: Vec<_> = p.stages.iter().filter(|s| !s.ran).map(|s| s.attack).collect();
    assert_eq!(skipped, vec![AttackName::Surrogate, AttackName::Transfer]);
    assert!(p.accuracy < report.clean_accuracy);
    let checks: Vec<_> = report.sanity.iter().map(|f| f.check).collect();
    assert!(checks.contains(&SanityCheck::LargeEps) && checks.contains(&SanityCheck::MoreSteps));
    assert!(checks.contains(&SanityCheck::BlackBox));
    for f in &report.sanity {
        eprintln!("{f:?}");
        assert!(!f.failed, "{f:?}");
    }
}

/// The CPU backend's tensor.
type Tensor = <CpuBackend as TensorStore>::Tensor;

/// A model whose input gradient points the wrong way: it hides behind its gradients, as a masking
/// defense does, so gradient attacks fail on it while it is as fragile as the model it wraps.
struct Reversed<'a>(&'a BpNet<CpuBackend>);

impl Classifier<CpuBackend> for Reversed<'_> {
    fn backend(&self) -> &CpuBackend {
        self.0.backend()
    }
    fn input_dim(&self) -> usize {
        self.0.input_dim()
    }
    fn classes(&self) -> usize {
        self.0.classes()
    }
    fn logits(&self, x: &Tensor) -> Tensor {
        self.0.logits(x)
    }
    fn hidden_activity(&self, x: &Tensor) -> Vec<Tensor> {
        self.0.hidden_activity(x)
    }
    fn logits_and_input_vjp(&self, x: &Tensor, dlogits: &mut dyn FnMut(&Tensor) -> Tensor) -> (Tensor, Tensor) {
        let (z, g) = self.0.logits_and_input_vjp(x, dlogits);
        (z, self.0.backend().map(&g, Unary::Scale(-1.0)))
    }
    fn to_params(&self) -> Params {
        self.0.to_params()
    }
}

#[test]
fn masked_gradients_are_flagged_by_the_sanity_checks() {
    let t = trained();
    let params = EnsembleParams {
        attacks: vec![AttackName::ApgdCe, AttackName::Square],
        iterations: 20,
        square_queries: 200,
        sanity: true,
        ..Default::default()
    };
    let report =
        strongest(&Reversed(&t.model), Helpers::default(), &params, &[0.1], &t.test_x, &t.test_y, |_| {}).unwrap();
    for f in &report.sanity {
        eprintln!("{f:?}");
    }
    let failed: Vec<_> = report.sanity.iter().filter(|f| f.failed).map(|f| f.check).collect();
    // Square breaks what APGD could not, and APGD cannot even win at eps 0.5.
    assert!(failed.contains(&SanityCheck::BlackBox), "masked gradients not flagged: {:?}", report.sanity);
    assert!(failed.contains(&SanityCheck::LargeEps), "a failing attack not flagged: {:?}", report.sanity);
    assert!(report.suspect());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The worst case is at most every attack's own figure, image by image.
    #[test]
    fn strongest_is_at_most_each_attack_per_image(
        pixels in prop::collection::vec(0.0f32..=1.0, 8 * 16),
        labels in prop::collection::vec(0usize..3, 8),
        eps in 0.01f32..0.4,
        seed: u64,
    ) {
        let x = Matrix::new(8, 16, pixels).unwrap();
        let source = BpNet::init(
            &CpuBackend::new(),
            BpParams { hidden: vec![8], ..Default::default() }.check().unwrap(),
            16,
            3,
            seed,
        );
        let params = EnsembleParams {
            iterations: 5,
            square_queries: 20,
            independent: true,
            sanity: false,
            seed,
            ..Default::default()
        };
        let report = strongest(tiny(), Helpers { surrogate: None, source: Some(&source) }, &params, &[eps], &x, &labels, |_| {})
            .unwrap();
        let p = &report.points[0];
        let clean: Vec<bool> = tiny()
            .predict(&tiny().backend().upload(&x))
            .iter()
            .zip(&labels)
            .map(|(a, b)| a == b)
            .collect();
        for s in p.stages.iter().filter(|s| s.ran) {
            for (i, &clean_ok) in clean.iter().enumerate() {
                let robust_to_it = clean_ok && !s.fooled_images[i];
                prop_assert!(
                    !p.robust_images[i] || robust_to_it,
                    "image {i} robust overall but not to {}",
                    s.attack.name()
                );
            }
            prop_assert!(p.accuracy <= s.own_accuracy.unwrap());
        }
        let fooled_by: Vec<Vec<bool>> = p.stages.iter().map(|s| s.fooled_images.clone()).collect();
        prop_assert_eq!(&worst_case(&clean, &fooled_by), &p.robust_images);
    }
}

#[test]
fn strongest_is_per_image_at_most_every_member_run_alone() {
    let t = trained();
    let (x, y) = (t.test_x.select_rows(&(0..120).collect::<Vec<_>>()), t.test_y[..120].to_vec());
    let eps = [0.06f32];
    let run = |attacks: &[AttackName], independent: bool| {
        let params = EnsembleParams { iterations: 20, independent, ..ensemble(attacks) };
        strongest(&t.model, Helpers::default(), &params, &eps, &x, &y, |_| {}).unwrap().points.remove(0)
    };
    // Every member alone (the surrogate and transfer attacks cannot run without their helpers).
    let members = [AttackName::ApgdCe, AttackName::ApgdT, AttackName::Square];
    let alone: Vec<Vec<bool>> = members.iter().map(|&a| run(&[a], false).robust_images).collect();
    let clean: Vec<bool> = t.model.predict(&t.model.backend().upload(&x)).iter().zip(&y).map(|(p, l)| p == l).collect();
    for independent in [false, true] {
        let all = run(&AttackName::ENSEMBLE, independent);
        assert_eq!(all.robust_images.len(), y.len());
        for (i, &robust) in all.robust_images.iter().enumerate() {
            for (a, member) in members.iter().zip(&alone) {
                // The first member sees the same images with the same random numbers in both runs,
                // and with `independent` every member does: the ensemble is at most each of them.
                if independent || *a == AttackName::ApgdCe {
                    assert!(!robust || member[i], "image {i}: robust to the ensemble, fooled by {a} alone");
                }
            }
        }
        if independent {
            // Robust to the ensemble exactly when right clean and robust to every member alone.
            let expected: Vec<bool> = (0..y.len()).map(|i| clean[i] && alone.iter().all(|m| m[i])).collect();
            assert_eq!(all.robust_images, expected);
        }
        let count = all.robust_images.iter().filter(|r| **r).count();
        assert_eq!(all.robust, count);
        assert!(alone.iter().all(|m| count <= m.iter().filter(|r| **r).count()));
    }
}
