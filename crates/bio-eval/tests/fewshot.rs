//! Few-shot protocols: parsing, sampling, classifiers on synthetic features, training helpers.

use std::collections::HashSet;

use bio_core::{BioNet, BioParams, BioRule, BpParams, Classifier, LearningRule, Matrix, ReferenceBackend, TensorStore};
use bio_cpu::CpuBackend;
use bio_eval::fewshot::{
    Episode, episodic_on_features, mean_ci95, pretrain_hidden, sample_episodes, sample_per_class, train_bio_strict,
    train_bio_with_unlabelled, train_bp, train_readout_only, winners_above,
};
use bio_eval::{
    EpisodeParams, EvalError, FewLabelData, FewLabelParams, FewShotResult, TrainSpec, episodic, few_labels,
    parse_classes, split_classes,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn flag(e: EvalError) -> std::borrow::Cow<'static, str> {
    match e {
        e if e.invalid_setting().is_some() => e.invalid_setting().unwrap().to_string().into(),
        other => panic!("expected an invalid parameter, got {other}"),
    }
}

/// `per_class` samples of each of `classes` classes around well-separated random centres in `dim`
/// dimensions (non-negative, like pixels), labels in blocks.
fn clusters(classes: usize, per_class: usize, dim: usize, noise: f32, seed: u64) -> (Matrix, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> =
        (0..classes).map(|_| (0..dim).map(|_| if rng.random_bool(0.3) { 1.0 } else { 0.0 }).collect()).collect();
    let labels: Vec<usize> = (0..classes * per_class).map(|i| i / per_class).collect();
    let x = Matrix::from_fn(labels.len(), dim, |i, j| {
        (centres[labels[i]][j] + noise * rng.random_range(-1.0f32..1.0)).clamp(0.0, 1.0)
    });
    (x, labels)
}

#[test]
fn class_lists_parse() {
    assert_eq!(parse_classes("0-4").unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!(parse_classes("0,2,5-7").unwrap(), vec![0, 2, 5, 6, 7]);
    assert_eq!(parse_classes(" 7 , 3-3,3 ").unwrap(), vec![3, 7]);
    for bad in ["", "4-2", "a", "1,,2", "1-", "-3"] {
        assert_eq!(flag(parse_classes(bad).unwrap_err()), "classes", "{bad:?}");
    }
}

#[test]
fn split_by_class() {
    let labels = [0, 5, 1, 6, 0, 9];
    let (base, novel) = split_classes(&labels, &[0, 1]);
    assert_eq!(base, vec![0, 2, 4]);
    assert_eq!(novel, vec![1, 3, 5]);
}

#[test]
fn confidence_interval() {
    let (m, ci) = mean_ci95(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(m, 2.5);
    // sd = √(5/3), t(3 df) = 3.182: 3.182·sd/2 (Student's t, not the normal 1.96, for few values)
    assert!((ci - 3.182 * (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
    // Many episodes: close to the normal quantile.
    assert!((bio_eval::fewshot::student_t_975(599) - 1.964).abs() < 1e-3);
    assert!((bio_eval::fewshot::student_t_975(30) - 2.042).abs() < 1e-12);
    assert_eq!(mean_ci95(&[0.7]), (0.7, 0.0));
}

#[test]
fn episode_parameters_are_checked() {
    let labels: Vec<usize> = (0..60).map(|i| 5 + i % 6).collect(); // classes 5..=10, 10 each
    let novel = [5, 6, 7, 8, 9];
    let ok = EpisodeParams { ways: 5, shots: vec![1, 5], queries: 5, episodes: 10, seed: 1, code_densities: vec![] };
    ok.check(&labels, &novel).unwrap();
    assert_eq!(flag(EpisodeParams { ways: 1, ..ok.clone() }.check(&labels, &novel).unwrap_err()), "ways");
    assert_eq!(flag(EpisodeParams { ways: 6, ..ok.clone() }.check(&labels, &novel).unwrap_err()), "ways");
    assert_eq!(flag(EpisodeParams { shots: vec![1, 0], ..ok.clone() }.check(&labels, &novel).unwrap_err()), "shots");
    assert_eq!(flag(EpisodeParams { episodes: 0, ..ok.clone() }.check(&labels, &novel).unwrap_err()), "episodes");
    assert_eq!(flag(EpisodeParams { queries: 0, ..ok.clone() }.check(&labels, &novel).unwrap_err()), "queries");
    let err = EpisodeParams { shots: vec![6], ..ok.clone() }.check(&labels, &novel).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("shots") && text.contains("class 5") && text.contains("10 images"), "{text}");
    assert!(text.contains("11"), "{text}");
}

#[test]
fn queries_are_never_in_the_support_set() {
    let labels: Vec<usize> = (0..200).map(|i| i % 10).collect();
    let novel = [5, 6, 7, 8, 9];
    let params = EpisodeParams { ways: 3, shots: vec![5], queries: 10, episodes: 50, seed: 3, code_densities: vec![] };
    let episodes: Vec<Episode> = sample_episodes(&labels, &novel, &params, 5).unwrap();
    assert_eq!(episodes.len(), 50);
    for e in &episodes {
        assert_eq!(e.classes.len(), 3);
        assert_eq!(e.classes.iter().collect::<HashSet<_>>().len(), 3, "distinct ways");
        let mut seen = HashSet::new();
        for (w, class) in e.classes.iter().enumerate() {
            assert!(novel.contains(class));
            assert_eq!((e.support[w].len(), e.queries[w].len()), (5, 10));
            for &r in e.support[w].iter().chain(&e.queries[w]) {
                assert_eq!(labels[r], *class);
                assert!(seen.insert(r), "row {r} drawn twice in one episode");
            }
        }
        let support: HashSet<usize> = e.support.iter().flatten().copied().collect();
        assert!(e.queries.iter().flatten().all(|q| !support.contains(q)));
    }
    assert_eq!(sample_episodes(&labels, &novel, &params, 5).unwrap(), episodes, "seeded");
    let other = EpisodeParams { seed: 4, ..params.clone() };
    assert_ne!(sample_episodes(&labels, &novel, &other, 5).unwrap(), episodes);
}

#[test]
fn classifiers_on_separable_and_random_features() {
    let (x, labels) = clusters(8, 30, 40, 0.2, 1);
    let novel = [3, 4, 5, 6, 7];
    let params =
        EpisodeParams { ways: 5, shots: vec![1, 5], queries: 15, episodes: 100, seed: 0, code_densities: vec![] };
    let r: Vec<FewShotResult> = episodic_on_features(&x, &labels, &novel, "clusters", &params).unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(
        r.iter().map(|r| (r.classifier.as_str(), r.shots)).collect::<Vec<_>>(),
        [("ncm", 1), ("linear-probe", 1), ("ncm", 5), ("linear-probe", 5)]
    );
    for row in &r {
        assert!(row.mean > 0.97, "{row:?}");
        assert_eq!(
            (row.protocol.as_str(), row.features.as_str(), row.ways, row.queries),
            ("episodic", "clusters", 5, 15)
        );
        assert!(row.ci95 >= 0.0 && row.ci95 < 0.02);
    }
    // Pure noise: chance level, 1/5. (The interval covers episode sampling only, not the draw of
    // the data set, so the data set is made large and the tolerance covers its own fluctuation.)
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let noise = Matrix::from_fn(2000, 40, |_, _| rng.random_range(0.0..1.0));
    let noise_labels: Vec<usize> = (0..2000).map(|i| i % 5).collect();
    let params = EpisodeParams { episodes: 300, ..params };
    for row in episodic_on_features(&noise, &noise_labels, &[0, 1, 2, 3, 4], "noise", &params).unwrap() {
        assert!((row.mean - 0.2).abs() < 0.035, "{row:?}");
    }
}

#[test]
fn episodic_with_a_frozen_model() {
    let (x, labels) = clusters(6, 25, 30, 0.1, 2);
    let config = BioParams { hidden: vec![40, 24], active_fraction: 0.1, ..Default::default() }.check().unwrap();
    let backend = CpuBackend::new();
    let net = BioNet::init(&backend, config, 30, 3, 1);
    let params =
        EpisodeParams { ways: 3, shots: vec![1, 5], queries: 5, episodes: 40, seed: 2, code_densities: vec![] };
    let r = episodic(&net, &x, &labels, &[3, 4, 5], None, &params, 32).unwrap();
    let rows: Vec<(&str, &str, usize)> =
        r.iter().map(|r| (r.features.as_str(), r.classifier.as_str(), r.shots)).collect();
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0], ("pixels", "ncm", 1));
    assert_eq!(rows[4], ("hidden.1", "ncm", 1));
    // The same layer's drive before its competition, as a dense read-out code.
    assert_eq!(rows[8], ("hidden.1.drive", "ncm", 1));
    let first = episodic(&net, &x, &labels, &[3, 4, 5], Some(0), &params, 7).unwrap();
    assert_eq!(first[4].features, "hidden.0");
    assert_eq!(first[8].features, "hidden.0.drive");
    // The drive is the dense code behind the sparse activity: same units, graded, before k-WTA.
    let xb = backend.upload(&x.select_rows(&(0..20).collect::<Vec<_>>()));
    let nonzero = |m: &Matrix| m.as_slice().iter().filter(|v| **v != 0.0).count() as f64 / m.len() as f64;
    let active = nonzero(&backend.download(&net.hidden_activity(&xb)[0]));
    let drive = nonzero(&backend.download(&net.hidden_drive(&xb)[0]));
    assert!(active <= 0.11 && drive > 0.99, "activity {active}, drive {drive}");
    assert_eq!(&first[..4], &r[..4], "the pixel rows do not depend on the layer or batch");
    assert_eq!(flag(episodic(&net, &x, &labels, &[3, 4, 5], Some(2), &params, 7).unwrap_err()), "layer");
}

/// Re-thresholding the drive at the model's own density gives back its activity (so the same
/// few-shot figures); other densities give codes with that many winners per row.
#[test]
fn code_densities_rethreshold_the_drive() {
    let (x, labels) = clusters(6, 25, 30, 0.1, 2);
    let config = BioParams { hidden: vec![40], active_fraction: 0.1, ..Default::default() }.check().unwrap();
    let backend = CpuBackend::new();
    let net = BioNet::init(&backend, config, 30, 3, 1);
    let xb = backend.upload(&x);
    let drive = backend.download(&net.hidden_drive(&xb)[0]);
    let activity = backend.download(&net.hidden_activity(&xb)[0]);
    let own = winners_above(&drive, 0.1);
    for (a, b) in own.as_slice().iter().zip(activity.as_slice()) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
    let dense = winners_above(&drive, 0.5);
    for i in 0..dense.rows() {
        assert_eq!(dense.row(i).iter().filter(|v| **v > 0.0).count(), 20, "row {i}");
    }
    let params =
        EpisodeParams { ways: 3, shots: vec![1], queries: 5, episodes: 30, seed: 2, code_densities: vec![0.1, 0.5] };
    let r = episodic(&net, &x, &labels, &[3, 4, 5], None, &params, 32).unwrap();
    let names: Vec<&str> = r.iter().map(|r| r.features.as_str()).collect();
    assert_eq!(
        names,
        [
            "pixels",
            "pixels",
            "hidden.0",
            "hidden.0",
            "hidden.0.drive",
            "hidden.0.drive",
            "hidden.0.top0.1",
            "hidden.0.top0.1",
            "hidden.0.top0.5",
            "hidden.0.top0.5"
        ]
    );
    assert!((r[6].mean - r[2].mean).abs() < 1e-9, "own density: {} vs {}", r[6].mean, r[2].mean);
    let bad = EpisodeParams { code_densities: vec![1.5], ..params };
    assert_eq!(flag(bad.check(&labels, &[3, 4, 5]).unwrap_err()), "code-densities");
}

#[test]
fn per_class_subsets() {
    let labels: Vec<usize> = (0..100).map(|i| (i * 7) % 4).collect();
    let rows = sample_per_class(&labels, 5, 11).unwrap();
    assert_eq!(rows.len(), 20);
    assert_eq!(rows.iter().collect::<HashSet<_>>().len(), 20);
    for c in 0..4 {
        assert_eq!(rows.iter().filter(|&&r| labels[r] == c).count(), 5);
    }
    assert_eq!(sample_per_class(&labels, 5, 11).unwrap(), rows);
    assert_ne!(sample_per_class(&labels, 5, 12).unwrap(), rows);
    let err = sample_per_class(&labels, 26, 0).unwrap_err();
    assert!(err.to_string().contains("25 training images"), "{err}");
}

#[test]
fn few_labels_calls_the_trainer_per_seed_and_k() {
    let (x, y) = clusters(3, 20, 12, 0.1, 3);
    let (tx, ty) = clusters(3, 10, 12, 0.1, 3);
    let data = FewLabelData { train_images: &x, train_labels: &y, test_images: &tx, test_labels: &ty };
    let params = FewLabelParams { shots: vec![1, 4], seeds: 2, seed: 5, unlabelled: true };
    let backend = ReferenceBackend;
    let mut calls = Vec::new();
    let results = few_labels("bp", data, &params, 16, |images, labels, unlabelled, seed| {
        calls.push((images.rows(), unlabelled.map(Matrix::rows), seed));
        let spec = TrainSpec { classes: 3, epochs: 1, hidden_epochs: 0, batch: 8 };
        let config = BpParams { hidden: vec![4], ..Default::default() }.check()?;
        train_bp(&backend, &config, spec, images, labels, seed)
    })
    .unwrap();
    assert_eq!(calls, [(3, Some(57), 5), (3, Some(57), 6), (12, Some(48), 5), (12, Some(48), 6)]);
    assert_eq!(results.len(), 2);
    assert_eq!((results[0].shots, results[0].classes, results[0].seeds, results[0].test_samples), (1, 3, 2, 30));
    assert_eq!(results[1].accuracies.len(), 2);
    let json = serde_json::to_value(&results[0]).unwrap();
    assert_eq!(json["protocol"], "few-labels");
    assert_eq!(json["variant"], "bp");
}

#[test]
fn hidden_plasticity_ignores_labels_when_the_readout_rate_is_zero() {
    let (x, y) = clusters(4, 16, 20, 0.2, 4);
    let params = BioParams { hidden: vec![16], active_fraction: 0.125, readout_rate: 0.0, ..Default::default() };
    let backend = ReferenceBackend;
    let run = |labels: &[usize]| {
        let mut rule = BioRule::new(params.clone().check().unwrap(), 3);
        let mut net = rule.init_model(&backend, 20, 4, 3);
        for epoch in 0..3 {
            rule.start_epoch(epoch, 3);
            for chunk in (0..x.rows()).collect::<Vec<_>>().chunks(16) {
                let xb = backend.upload(&x.select_rows(chunk));
                let yb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
                rule.train_batch(&mut net, &xb, &yb).unwrap();
            }
        }
        net.to_params()
    };
    let shuffled: Vec<usize> = y.iter().map(|l| (l + 1) % 4).collect();
    let a = run(&y);
    assert_eq!(a, run(&shuffled), "the hidden layers (and readout) must not depend on the labels");
    let init = BioNet::init(&backend, params.check().unwrap(), 20, 4, 3).to_params();
    let get = |p: &bio_core::Params, n: &str| p.tensors.iter().find(|(k, _)| k == n).unwrap().1.clone();
    // With a zero rate the readout can at most be rescaled row by row (label-free synaptic scaling).
    let (v0, v1) = (get(&init, "readout.weight"), get(&a, "readout.weight"));
    for c in 0..v0.rows() {
        let ratio = v1.get(c, 0) / v0.get(c, 0);
        assert!(ratio > 0.0);
        assert!(v0.row(c).iter().zip(v1.row(c)).all(|(x, y)| (y / x - ratio).abs() < 1e-5 * ratio));
    }
    assert_ne!(get(&a, "hidden.0.weight"), get(&init, "hidden.0.weight"), "the hidden layer did learn");
}

#[test]
fn readout_only_training_freezes_the_hidden_layers() {
    let (x, y) = clusters(4, 16, 20, 0.2, 5);
    let config = BioParams { hidden: vec![16], active_fraction: 0.125, regrow_probability: 0.3, ..Default::default() }
        .check()
        .unwrap();
    let backend = ReferenceBackend;
    let mut net = pretrain_hidden(&backend, &config, 4, &x, 2, 16, 1).unwrap();
    assert_eq!(net.config, config, "the model keeps its own configuration");
    let before = net.to_params();
    train_readout_only(&backend, &mut net, &x, &y, 3, 16, 1).unwrap();
    let after = net.to_params();
    for ((name, m0), (_, m1)) in before.tensors.iter().zip(&after.tensors) {
        if name.starts_with("hidden.") && !name.ends_with(".rate") {
            assert_eq!(m0, m1, "{name} changed");
        }
        if name == "readout.weight" {
            assert_ne!(m0, m1, "the readout did learn");
        }
    }
}

#[test]
fn training_helpers_learn_separable_data() {
    let (x, y) = clusters(3, 30, 24, 0.15, 6);
    let (tx, ty) = clusters(3, 20, 24, 0.15, 6);
    let backend = CpuBackend::new();
    let spec = TrainSpec { classes: 3, epochs: 10, hidden_epochs: 3, batch: 10 };
    let bp = BpParams { hidden: vec![32], learning_rate: 1e-2, ..Default::default() }.check().unwrap();
    let bio = BioParams { hidden: vec![48], active_fraction: 0.1, ..Default::default() }.check().unwrap();
    let bp_net = train_bp(&backend, &bp, spec, &x, &y, 1).unwrap();
    let bio_net = train_bio_strict(&backend, &bio, spec, &x, &y, 1).unwrap();
    let rows = sample_per_class(&y, 3, 0).unwrap();
    let (lx, ly) = (x.select_rows(&rows), rows.iter().map(|&i| y[i]).collect::<Vec<_>>());
    let semi = train_bio_with_unlabelled(&backend, &bio, spec, &lx, &ly, &x, 1).unwrap();
    for (name, accuracy) in [
        ("bp", bio_eval::evaluate(&bp_net, &tx, &ty, 32).unwrap().accuracy),
        ("bio", bio_eval::evaluate(&bio_net, &tx, &ty, 32).unwrap().accuracy),
        ("bio+unlabelled", bio_eval::evaluate(&semi, &tx, &ty, 32).unwrap().accuracy),
    ] {
        assert!(accuracy > 0.8, "{name}: {accuracy}");
    }
    assert_eq!(semi.classes(), 3);
    assert!(train_bp(&backend, &bp, TrainSpec { classes: 2, ..spec }, &x, &y, 1).is_err());
}

/// Measurement on the embedded Fashion-MNIST subset (run with `--ignored --nocapture`).
#[test]
#[ignore = "measurement, prints results"]
fn embedded_raw_pixel_episodes() {
    let data = bio_data::load("embedded", None).unwrap();
    let novel = parse_classes("5-9").unwrap();
    let params = EpisodeParams::default();
    let start = std::time::Instant::now();
    for row in episodic_on_features(&data.test.images, &data.test.labels, &novel, "pixels", &params).unwrap() {
        println!(
            "{} {} {}-way {}-shot: {:.2} ± {:.2} %",
            row.features,
            row.classifier,
            row.ways,
            row.shots,
            100.0 * row.mean,
            100.0 * row.ci95
        );
    }
    println!("{:?}", start.elapsed());
}

/// Measurement: a `bio` model trained on classes 0-4 of the embedded subset, frozen, evaluated on
/// classes 5-9; then the few-labels protocol for each variant (run with `--ignored --nocapture`).
#[test]
#[ignore = "measurement, trains models (minutes), prints results"]
fn embedded_trained_models() {
    let data = bio_data::load("embedded", None).unwrap();
    let backend = CpuBackend::new();
    let base = parse_classes("0-4").unwrap();
    let novel = parse_classes("5-9").unwrap();
    let (rows, _) = split_classes(&data.train.labels, &base);
    let (bx, by) =
        (data.train.images.select_rows(&rows), rows.iter().map(|&i| data.train.labels[i]).collect::<Vec<_>>());
    let bio = BioParams { hidden: vec![1000], ..Default::default() }.check().unwrap();
    let spec = TrainSpec { classes: 10, epochs: 3, hidden_epochs: 3, batch: 100 };
    let start = std::time::Instant::now();
    let net = train_bio_strict(&backend, &bio, spec, &bx, &by, 1).unwrap();
    println!("bio trained on base classes in {:?}", start.elapsed());
    let params = EpisodeParams::default();
    for row in episodic(&net, &data.test.images, &data.test.labels, &novel, None, &params, 250).unwrap() {
        println!(
            "{:>9} {:>12} {}-way {}-shot: {:.2} ± {:.2} %",
            row.features,
            row.classifier,
            row.ways,
            row.shots,
            100.0 * row.mean,
            100.0 * row.ci95
        );
    }
    let d = FewLabelData {
        train_images: &data.train.images,
        train_labels: &data.train.labels,
        test_images: &data.test.images,
        test_labels: &data.test.labels,
    };
    let bp = BpParams { hidden: vec![1000], ..Default::default() }.check().unwrap();
    let p = FewLabelParams { shots: vec![1, 5, 10, 50], seeds: 3, seed: 0, unlabelled: false };
    let few = TrainSpec { epochs: 30, ..spec };
    let mut rows = few_labels("bp", d, &p, 250, |x, y, _, s| train_bp(&backend, &bp, few, x, y, s)).unwrap();
    rows.extend(
        few_labels("bio-strict", d, &p, 250, |x, y, _, s| train_bio_strict(&backend, &bio, few, x, y, s)).unwrap(),
    );
    let p = FewLabelParams { unlabelled: true, ..p };
    rows.extend(
        few_labels("bio-unlabelled", d, &p, 250, |x, y, u, s| {
            train_bio_with_unlabelled(&backend, &bio, few, x, y, u.unwrap(), s)
        })
        .unwrap(),
    );
    for r in rows {
        println!("{:>15} K={:>2}: {:.2} ± {:.2} %", r.variant, r.shots, 100.0 * r.mean, 100.0 * r.ci95);
    }
    println!("total {:?}", start.elapsed());
}
