use super::model::WHITEN;
use super::*;
use crate::backend::{ConvOps, ReferenceBackend, Window};
use crate::rules::adversarial::pgd_examples;
use crate::rules::test_util::{changed, check_resume, gradient_error, train, two_blobs, uniform};
use crate::rules::{DIVERGENCE_FACTOR, config_from_settings};

type Ref = ReferenceBackend;

fn config(f: impl FnOnce(&mut ConvParams)) -> ConvConfig {
    let mut p = ConvParams { layers: "4:3,6:3".into(), pool: "2:2:0".into(), density: 0.3, ..Default::default() };
    f(&mut p);
    p.check().expect("valid")
}

fn random_readout(net: &mut ConvNet<Ref>, seed: u64) {
    let (c, n) = net.readout.weights.shape();
    net.readout.weights = uniform(c, n, -2.0, 2.0, seed);
    net.readout.bias = uniform(1, c, -0.5, 0.5, seed + 1);
}

/// Every competition, one and two layers, with and without pooling: the analytic input gradient
/// matches central differences.
#[test]
fn gradient_matches_finite_differences() {
    for (seed, activation) in
        [(0u64, Activation::Kwta { density: 0.3 }), (1, Activation::Triangle), (2, Activation::Relu)]
    {
        for (layers, pool) in [("4:3,6:3", Some((2, 2, 0))), ("5:3", None), ("4:1,3:3", Some((3, 2, 1)))] {
            let specs = parse_layers("conv", layers).unwrap();
            let shapes = architecture((6, 6, 1), &specs, &vec![pool; specs.len()]).unwrap();
            let init = if activation == Activation::Relu { ConvInit::Uniform } else { ConvInit::Signed };
            let mut net = ConvNet::init(&ReferenceBackend, shapes, activation, init, false, 36, 3, seed);
            random_readout(&mut net, seed + 10);
            let err = gradient_error(&net, &uniform(3, 36, 0.05, 1.0, seed + 20), &[0, 1, 2]);
            assert!(err < 2e-2, "{activation:?}, {layers}: relative error {err}");
        }
    }
}

#[test]
fn architecture_follows_the_flags() {
    let layers = parse_layers("conv", "96:5,384:3").unwrap();
    let shapes = architecture((28, 28, 1), &layers, &parse_pools("conv-pool", "4:2:1", 2).unwrap()).unwrap();
    assert_eq!(shapes[0].output(), (14, 14, 96));
    assert_eq!(shapes[1].conv.patch_len(), 9 * 96);
    assert_eq!(shapes[1].output(), (7, 7, 384));
    assert_eq!(ConvNet::<Ref>::feature_len(&shapes), 7 * 7 * 384);
    // One window per layer: 28 → 14 (4/2/1), then 14 → 2 (7/7/0); `none` leaves a layer unpooled.
    let pools = parse_pools("conv-pool", "4:2:1,7:7:0", 2).unwrap();
    let shapes = architecture((28, 28, 1), &layers, &pools).unwrap();
    assert_eq!((shapes[0].output(), shapes[1].output()), ((14, 14, 96), (2, 2, 384)));
    let shapes = architecture((28, 28, 1), &layers, &parse_pools("conv-pool", "none,4:4:0", 2).unwrap()).unwrap();
    assert_eq!((shapes[0].output(), shapes[1].output()), ((28, 28, 96), (7, 7, 384)));
    assert!(parse_pools("conv-pool", "4:2:1,7:7:0,2:2:0", 2).is_err());
    let mut p = ConvParams { layers: "96:5,384:3".into(), pool: "4:2:1,7:7:0".into(), ..Default::default() };
    assert_eq!(p.clone().check().unwrap().shapes(784).unwrap()[1].output(), (2, 2, 384));
    p.layers = "96:5".into();
    match p.check() {
        Err(CoreError::InvalidParam { name, .. }) => assert_eq!(name, "conv-pool"),
        other => panic!("two windows for one layer: {other:?}"),
    }
    assert_eq!(image_of(784), (28, 28, 1));
    assert_eq!(image_of(10), (1, 10, 1));
}

#[test]
fn check_names_the_flag() {
    let bad = |f: fn(&mut ConvParams)| {
        let mut p = ConvParams::default();
        f(&mut p);
        match p.check() {
            Err(CoreError::InvalidParam { name, .. }) => name,
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    };
    assert_eq!(bad(|p| p.layers = "96".into()), "conv");
    assert_eq!(bad(|p| p.layers = "96:4".into()), "conv");
    assert_eq!(bad(|p| p.layers = "1:5".into()), "conv");
    assert_eq!(bad(|p| p.pool = "4:2".into()), "conv-pool");
    assert_eq!(bad(|p| p.pool = "2:2:2".into()), "conv-pool");
    assert_eq!(bad(|p| p.density = 1.0), "conv-density");
    assert_eq!(bad(|p| p.temperature = 0.0), "conv-temperature");
    assert_eq!(bad(|p| p.rate = -1.0), "conv-rate");
    assert_eq!(bad(|p| p.readout_rate = 0.0), "conv-readout-rate");
    assert_eq!(bad(|p| p.whiten = -0.1), "conv-whiten");
    assert!(ConvParams::default().check().is_ok());
    assert!(ConvParams { pool: "none".into(), ..Default::default() }.check().is_ok());
}

#[test]
fn settings_reach_their_fields() {
    let mut settings = crate::rules::Settings::new();
    settings.insert("conv".into(), serde_json::json!("8:5,16:3"));
    settings.insert("conv-competition".into(), serde_json::json!("soft"));
    settings.insert("conv-frozen".into(), serde_json::json!(true));
    settings.insert("conv-init".into(), serde_json::json!("signed"));
    let c = config_from_settings::<ConvRule<Ref>>(&[1], &settings).expect("valid");
    assert_eq!(
        (c.layers.as_str(), c.competition, c.frozen, c.init),
        ("8:5,16:3", ConvCompetition::Soft, true, ConvInit::Signed)
    );
    let mut settings = crate::rules::Settings::new();
    settings.insert("bpconv-adversarial-eps".into(), serde_json::json!(0.1));
    let c = config_from_settings::<BpConvRule<Ref>>(&[1], &settings).expect("valid");
    assert_eq!((c.adversarial_eps, c.adversarial_steps), (0.1, 10));
}

#[test]
fn schedule_trains_layers_in_order_then_the_readout() {
    let at = |e| ConvSchedule::at(2, 1, e, 6).layer;
    assert_eq!((0..6).map(at).collect::<Vec<_>>(), [Some(0), Some(1), None, None, None, None]);
    // A short run: at most half of it is unsupervised.
    assert_eq!((0..2).map(|e| ConvSchedule::at(2, 1, e, 2).layer).collect::<Vec<_>>(), [Some(0), None]);
    assert_eq!((0..4).map(|e| ConvSchedule::at(1, 3, e, 4).layer).collect::<Vec<_>>(), [Some(0), Some(0), None, None]);
}

/// Greedy training: layer 0 changes only in epoch 0, layer 1 only in epoch 1, then only the
/// readout; filters stay positive with unit norm; the readout learns the two blobs.
#[test]
fn layers_learn_greedily_then_the_readout() {
    for competition in [ConvCompetition::Hard, ConvCompetition::Soft] {
        let mut rule = ConvRule::<Ref>::new(config(|c| {
            c.competition = competition;
            c.readout_rate = 0.05;
            // Global pooling would erase where the blobs are: keep the maps.
            c.pool = "none".into();
        }));
        let mut net = rule.init_model(&ReferenceBackend, 16, 2, 3);
        let (x, labels) = two_blobs(16, 16, 4);
        let start = net.to_params();
        let history = train(&mut rule, &mut net, &x, &labels, 12);
        let params: Vec<&Params> = std::iter::once(&start).chain(history.iter().map(|(_, p)| p)).collect();
        for e in 0..12 {
            let (before, after) = (params[e], params[e + 1]);
            assert_eq!(changed(before, after, "conv.0.weight"), e == 0, "{competition:?} epoch {e}: layer 0");
            assert_eq!(changed(before, after, "conv.1.weight"), e == 1, "{competition:?} epoch {e}: layer 1");
            assert_eq!(changed(before, after, "readout.weight"), e >= 2, "{competition:?} epoch {e}: readout");
        }
        for name in ["conv.0.weight", "conv.1.weight"] {
            let w = crate::rules::test_util::tensor(params[12], name);
            for i in 0..w.rows() {
                let norm = w.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-4, "{name} row {i}: norm {norm}");
                assert!(w.row(i).iter().all(|&v| v >= 0.0), "{name}: a positive start stays positive");
            }
        }
        let losses: Vec<f32> = history.iter().map(|(l, _)| *l).collect();
        assert!(losses[11] < 0.7 * losses[2], "{competition:?}: the readout learns the two blobs: {losses:?}");
    }
}

/// The frozen control changes no filter, and only the readout learns.
#[test]
fn frozen_filters_never_change() {
    let mut rule = ConvRule::<Ref>::new(config(|c| c.frozen = true));
    let mut net = rule.init_model(&ReferenceBackend, 16, 2, 3);
    let (x, labels) = two_blobs(16, 16, 4);
    let start = net.to_params();
    let history = train(&mut rule, &mut net, &x, &labels, 4);
    let end = &history.last().unwrap().1;
    assert!(!changed(&start, end, "conv.0.weight") && !changed(&start, end, "conv.1.weight"));
    assert!(changed(&start, end, "readout.weight"));
}

/// One layer of `channels` 3×3 filters without padding or pooling on 3×3 images: one patch per image.
fn one_patch_net(cfg: &ConvConfig, channels: usize, init: ConvInit, seed: u64) -> ConvNet<Ref> {
    let shape = LayerShape {
        conv: Window { height: 3, width: 3, channels: 1, kernel: 3, stride: 1, padding: 0 },
        channels,
        pool: None,
    };
    ConvNet::init(&ReferenceBackend, vec![shape], cfg.activation(), init, false, 9, 2, seed)
}

/// A signed pattern: one centred 3×3 patch (a `1×9` row of mean zero).
fn centred_patch() -> Matrix {
    let raw = uniform(1, 9, 0.0, 1.0, 6);
    let mean = raw.row(0).iter().sum::<f32>() / 9.0;
    Matrix::from_fn(1, 9, |_, i| raw.get(0, i) - mean)
}

/// The Hebbian step moves a winning filter toward the pattern it wins: a 3×3 window without
/// padding sees one patch per image; repeated steps on one image raise the winner's cosine with it.
#[test]
fn plasticity_moves_filters_toward_their_patterns() {
    let b = ReferenceBackend;
    let cfg = config(|_| {});
    let mut net = one_patch_net(&cfg, 6, ConvInit::Positive, 5);
    let x = uniform(1, 9, 0.0, 1.0, 6);
    let pn = x.row(0).iter().map(|v| v * v).sum::<f32>().sqrt();
    let cosine = |net: &ConvNet<Ref>, j: usize| {
        net.layers[0].weights.row(j).iter().zip(x.row(0)).map(|(a, b)| a * b).sum::<f32>() / pn
    };
    let t = net.layer_forward(0, &x);
    let winner = (0..6).max_by(|&i, &j| t.full().0.get(0, i).total_cmp(&t.full().0.get(0, j))).unwrap();
    let loser = (0..6).min_by(|&i, &j| t.full().0.get(0, i).total_cmp(&t.full().0.get(0, j))).unwrap();
    let (before, loser_before) = (cosine(&net, winner), cosine(&net, loser));
    for _ in 0..20 {
        let t = net.layer_forward(0, &x);
        conv_plasticity(&b, &mut net.layers[0], t, &cfg, 0.05);
    }
    assert!(cosine(&net, winner) > before + 0.01, "winner: {before} → {}", cosine(&net, winner));
    assert_eq!(cosine(&net, loser), loser_before, "a unit that never wins does not learn");
}

#[test]
fn resumes_bit_for_bit() {
    let make = || ConvRule::<Ref>::new(config(|_| {}));
    check_resume(make, 16, 6, 2); // layer 1's epoch
    check_resume(make, 16, 6, 4); // the first readout step
    check_resume(make, 16, 6, 6); // Adam moments set
    let make = || {
        BpConvRule::<Ref>::new(
            BpConvParams {
                layers: "3:3".into(),
                pool: "2:2:0".into(),
                adversarial_eps: 0.1,
                adversarial_steps: 2,
                ..Default::default()
            }
            .check()
            .unwrap(),
            4,
        )
    };
    check_resume(make, 16, 4, 0);
    check_resume(make, 16, 4, 4);
}

#[test]
fn params_round_trip_and_refusals() {
    let b = ReferenceBackend;
    let rule = ConvRule::<Ref>::new(config(|_| {}));
    let mut net = rule.init_model(&b, 16, 3, 7);
    random_readout(&mut net, 8);
    let back = rule.model_from_params(&b, 16, 3, &net.to_params()).expect("fits");
    let x = uniform(5, 16, 0.0, 1.0, 9);
    assert_eq!(net.logits(&x), back.logits(&x));
    let names: Vec<String> = net.to_params().tensors.into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["conv.0.weight", "conv.0.bias", "conv.1.weight", "conv.1.bias", "readout.weight", "readout.bias"]
    );
    let mut params = net.to_params();
    params.tensors[0].1 = Matrix::zeros(5, 9);
    assert!(matches!(rule.model_from_params(&b, 16, 3, &params), Err(CoreError::Incompatible(_))));
    let mut rule = rule;
    assert!(rule.restore_state(&net, RuleState::encode("bpconv", &0u8)).is_err());
    let text = <ConvRule<Ref> as Rule>::forward_text(&config(|_| {}), 16, 3);
    assert!(text.contains("conv.1.weight (6, 36)") && text.contains("readout.weight (3, 6)"), "{text}");
}

/// The backprop control learns the two blobs, clean and adversarially; PGD examples stay in the
/// ε-ball and in [0, 1] and raise the loss.
#[test]
fn bpconv_learns_and_pgd_stays_in_the_ball() {
    let b = ReferenceBackend;
    for eps in [0.0f32, 0.1] {
        let cfg = BpConvParams {
            layers: "3:3".into(),
            pool: "2:2:0".into(),
            rate: 0.02,
            adversarial_eps: eps,
            adversarial_steps: 3,
            ..Default::default()
        }
        .check()
        .unwrap();
        let mut rule = BpConvRule::<Ref>::new(cfg, 1);
        let mut net = rule.init_model(&b, 16, 2, 2);
        let (x, labels) = two_blobs(16, 16, 3);
        let history = train(&mut rule, &mut net, &x, &labels, 15);
        let losses: Vec<f32> = history.iter().map(|(l, _)| *l).collect();
        assert!(losses[14] < 0.5 * losses[0], "eps {eps}: {losses:?}");
    }
    let mut net =
        BpConvRule::<Ref>::new(BpConvParams { layers: "3:3".into(), ..Default::default() }.check().unwrap(), 0)
            .init_model(&b, 16, 2, 2);
    random_readout(&mut net, 3);
    let (x, labels) = two_blobs(8, 16, 5);
    let adv = pgd_examples(&net, &x, &labels, 0.1, 5, &mut ChaCha8Rng::seed_from_u64(1));
    assert!(adv.max_abs_diff(&x) <= 0.1 + 1e-6);
    assert!(adv.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    let loss = |m: &Matrix| net.loss_and_input_gradient(m, &labels).0.iter().sum::<f32>();
    assert!(loss(&adv) > loss(&x), "PGD raises the loss: {} → {}", loss(&x), loss(&adv));
}

/// The example input the generic checks give the conv rules is a square image their architecture
/// accepts: 4×4 at the defaults, larger when a window needs it.
#[test]
fn the_example_input_is_the_smallest_square_image_that_fits() {
    let defaults = ConvParams::default().check().expect("valid");
    assert_eq!(<ConvRule<Ref> as Rule>::example_input_dim(&defaults), 16);
    // Two 3×3 poolings with stride 3 and no padding need a 9×9 image.
    let wide = config(|p| {
        p.layers = "4:3,4:3".into();
        p.pool = "3:3:0".into();
    });
    let d = <ConvRule<Ref> as Rule>::example_input_dim(&wide);
    assert_eq!(d, 81);
    assert!(wide.shapes(64).is_err() && wide.shapes(d).is_ok());
    let bp = BpConvParams::default().check().expect("valid");
    assert_eq!(<BpConvRule<Ref> as Rule>::example_input_dim(&bp), 16);
}

/// A whitened first layer: the first batch fits `Z` (in the frozen control too) and makes no
/// other update; the whitened patches then have a second moment near the identity; the gradient
/// stays exact; the exported pass (effective filters `W Z`) gives the model's logits; params
/// round-trip and resume bit for bit.
#[test]
fn whitening_is_fitted_on_the_first_batch_and_exported_as_effective_filters() {
    let b = ReferenceBackend;
    for frozen in [false, true] {
        let cfg = config(|c| {
            c.whiten = 0.01;
            c.frozen = frozen;
            c.init = ConvInit::Signed;
        });
        let mut rule = ConvRule::<Ref>::new(cfg.clone());
        let mut net = rule.init_model(&b, 36, 3, 4);
        assert!(!net.whitening.as_ref().unwrap().fitted());
        let x = uniform(6, 36, 0.0, 1.0, 11);
        let before = net.to_params();
        rule.start_epoch(0, 4);
        rule.train_batch(&mut net, &x, &[0, 1, 2, 0, 1, 2]).expect("a batch");
        let w = net.whitening.as_ref().unwrap();
        assert_eq!(w.samples, 6 * 36, "one patch per position of each image");
        let after = net.to_params();
        for name in ["conv.0.weight", "conv.1.weight", "readout.weight"] {
            assert!(!changed(&before, &after, name), "frozen {frozen}: the fitting batch changed {name}");
        }
        assert!(changed(&before, &after, WHITEN));
        let white = net.layer_forward(0, &x).patches;
        let m = whiten::second_moment(&white);
        let d = white.cols();
        let diag: f64 = (0..d).map(|i| m[i * d + i]).sum::<f64>() / d as f64;
        assert!(diag > 0.5 && diag < 1.0 + 1e-3, "mean whitened moment {diag}");
        // Later batches learn as usual (the filters move unless frozen), and Z stays.
        rule.train_batch(&mut net, &x, &[0, 1, 2, 0, 1, 2]).expect("a batch");
        let later = net.to_params();
        assert_eq!(changed(&after, &later, "conv.0.weight"), !frozen);
        assert!(!changed(&after, &later, WHITEN));

        // The whitened net is the plain net with filters W Z: same logits, same input gradient
        // (whose exactness the finite-difference test above checks).
        random_readout(&mut net, 5);
        let mut plain = net.clone();
        plain.whitening = None;
        plain.layers[0].weights = crate::rules::test_util::tensor(&net.to_params(), EFFECTIVE_WEIGHT).clone();
        let probe = uniform(3, 36, 0.05, 1.0, 21);
        let (lw, gw) = net.loss_and_input_gradient(&probe, &[0, 1, 2]);
        let (lp, gp) = plain.loss_and_input_gradient(&probe, &[0, 1, 2]);
        assert!(gw.max_abs_diff(&gp) < 1e-4 * (1.0 + gp.as_slice().iter().fold(0.0f32, |a, v| a.max(v.abs()))));
        assert!(lw.iter().zip(&lp).all(|(a, b)| (a - b).abs() < 1e-4), "{lw:?} vs {lp:?}");
        let ops = <ConvRule<Ref> as Rule>::forward_pass(&cfg, 36, 3).expect("ops");
        let exported = crate::forward::run(&ops, &net.to_params(), &x).expect("runs");
        let logits = net.logits(&x);
        assert!(exported.max_abs_diff(&logits) < 1e-4, "export: {}", exported.max_abs_diff(&logits));
        let back = rule.model_from_params(&b, 36, 3, &net.to_params()).expect("fits");
        assert_eq!(back.logits(&x), logits);
        assert_eq!(back.whitening.as_ref().unwrap().samples, 6 * 36);
    }
    let text = <ConvRule<Ref> as Rule>::forward_text(&config(|c| c.whiten = 0.01), 36, 3);
    assert!(text.contains("conv.0.whiten (9, 9)") && text.contains("conv.0.effective_weight (4, 9)"), "{text}");
    let make = || ConvRule::<Ref>::new(config(|c| c.whiten = 0.01));
    check_resume(make, 16, 6, 2); // fitted in the first batch, layer 1 learning
    check_resume(make, 16, 6, 4);
}

/// SoftHebb's signal: at each position the strongest channel gets `+softmax(u/τ)`, every other
/// channel `−softmax(u/τ)`.
#[test]
fn softhebb_signal_is_hebbian_for_the_winner_only() {
    let b = ReferenceBackend;
    let u = Matrix::new(2, 3, vec![0.5, 2.0, 1.0, -1.0, -3.0, -0.5]).unwrap();
    let y = softhebb_signal(&b, &u, 0.5);
    for (i, winner) in [(0, 1), (1, 2)] {
        let e: Vec<f32> = u.row(i).iter().map(|v| (v / 0.5).exp()).collect();
        let z: f32 = e.iter().sum();
        for (j, ej) in e.iter().enumerate() {
            let want = if j == winner { ej / z } else { -ej / z };
            assert!((y.get(i, j) - want).abs() < 1e-6, "row {i} channel {j}: {} against {want}", y.get(i, j));
        }
    }
}

/// SoftHebb's step on one repeated unit-norm patch: the winner turns toward the patch and its
/// norm, from the wide start's ≈ 25, falls toward 1 (the rule's own fixed point: no scaling); the
/// other filters are pushed away (anti-Hebbian; on a single patch a loser's norm can grow without
/// bound, which is SoftHebb's too); a filter equal to its unit-norm patch does not move.
#[test]
fn softhebb_step_reaches_its_own_fixed_point() {
    let b = ReferenceBackend;
    let cfg = config(|c| {
        c.plasticity = ConvPlasticity::Softhebb;
        c.init = ConvInit::Wide;
        c.temperature = 1.0;
    });
    let mut net = one_patch_net(&cfg, 4, ConvInit::Wide, 3);
    let x = uniform(1, 9, 0.0, 1.0, 4);
    let pn = x.row(0).iter().map(|v| v * v).sum::<f32>().sqrt();
    let x = Matrix::from_fn(1, 9, |_, j| x.get(0, j) / pn);
    let norm = |net: &ConvNet<Ref>, j: usize| net.layers[0].weights.row(j).iter().map(|v| v * v).sum::<f32>().sqrt();
    let cosine = |net: &ConvNet<Ref>, j: usize| {
        net.layers[0].weights.row(j).iter().zip(x.row(0)).map(|(a, b)| a * b).sum::<f32>() / norm(net, j)
    };
    let t = net.layer_forward(0, &x);
    let winner = (0..4).max_by(|&i, &j| t.full().0.get(0, i).total_cmp(&t.full().0.get(0, j))).unwrap();
    let before: Vec<f32> = (0..4).map(|j| cosine(&net, j)).collect();
    assert!(norm(&net, winner) > 10.0, "the wide start: norm {}", norm(&net, winner));
    for _ in 0..600 {
        let t = net.layer_forward(0, &x);
        conv_plasticity(&b, &mut net.layers[0], t, &cfg, 0.2);
    }
    assert!(cosine(&net, winner) > 0.9, "winner's cosine {} → {}", before[winner], cosine(&net, winner));
    assert!((norm(&net, winner) - 1.0).abs() < 0.2, "winner's norm {}", norm(&net, winner));
    for j in (0..4).filter(|&j| j != winner) {
        assert!(cosine(&net, j) < before[j], "loser {j}: cosine {} → {}", before[j], cosine(&net, j));
    }
    // At the fixed point (W = p, norm 1) the winner's step is zero.
    net.layers[0].weights.row_mut(winner).copy_from_slice(x.row(0));
    let t = net.layer_forward(0, &x);
    conv_plasticity(&b, &mut net.layers[0], t, &cfg, 0.2);
    let moved = net.layers[0].weights.row(winner).iter().zip(x.row(0)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(moved < 1e-5, "the fixed point moved by {moved}");
}

/// SoftHebb's plasticity needs signed filters: a positive start is refused with one line.
#[test]
fn softhebb_refuses_a_positive_start() {
    let p = ConvParams { plasticity: ConvPlasticity::Softhebb, ..Default::default() };
    let e = p.check().unwrap_err().to_string();
    assert!(e.contains("conv-init"), "{e}");
}

/// While the filters learn, the frozen readout's loss is reported but is not a divergence (a
/// wide start's large features give large random logits); once the readout trains, the same loss
/// stops the run.
#[test]
fn a_frozen_readout_is_not_checked_for_divergence() {
    let mut rule = ConvRule::<Ref>::new(config(|c| c.pool = "none".into()));
    let mut net = rule.init_model(&ReferenceBackend, 16, 2, 3);
    net.readout.weights.as_mut_slice().iter_mut().for_each(|v| *v *= 1e6);
    let (x, labels) = two_blobs(16, 16, 4);
    rule.start_epoch(0, 6);
    let report = rule.train_batch(&mut net, &x, &labels).expect("the filters' epoch does not check the readout");
    assert!(report.loss > DIVERGENCE_FACTOR * 2f32.ln(), "the loss is still reported: {}", report.loss);
    rule.start_epoch(2, 6);
    let e = rule.train_batch(&mut net, &x, &labels).unwrap_err();
    assert!(matches!(e, CoreError::Diverged(_)), "{e}");
}

/// `--conv-centre` alone: the first batch fits `Z = I − 11ᵀ/d`, after which every first-layer
/// patch has zero mean; the exported pass gives the model's logits; resume is bit for bit.
#[test]
fn centring_alone_is_a_fitted_patch_transform() {
    let b = ReferenceBackend;
    let cfg = config(|c| {
        c.centre = true;
        c.init = ConvInit::Signed;
    });
    let mut rule = ConvRule::<Ref>::new(cfg.clone());
    let mut net = rule.init_model(&b, 36, 3, 4);
    let x = uniform(6, 36, 0.0, 1.0, 11);
    rule.start_epoch(0, 4);
    rule.train_batch(&mut net, &x, &[0, 1, 2, 0, 1, 2]).expect("a batch");
    assert!(net.whitening.as_ref().unwrap().fitted());
    let patches = net.layer_forward(0, &x).patches;
    for r in 0..patches.rows() {
        let sum: f32 = patches.row(r).iter().sum();
        assert!(sum.abs() < 1e-5, "patch {r}: sum {sum}");
    }
    random_readout(&mut net, 5);
    let ops = <ConvRule<Ref> as Rule>::forward_pass(&cfg, 36, 3).expect("ops");
    let exported = crate::forward::run(&ops, &net.to_params(), &x).expect("runs");
    assert!(exported.max_abs_diff(&net.logits(&x)) < 1e-4);
    check_resume(|| ConvRule::<Ref>::new(cfg.clone()), 16, 6, 2);
}

/// On a signed start, `aligned` moves a winning filter toward a signed pattern it wins (its drive
/// rises; no weight changes sign), while the `bio` step's sign-blind pull grows every magnitude
/// where the pattern is positive, whatever the weight's sign; on a positive start the two agree
/// bit for bit.
#[test]
fn aligned_pull_is_hebbian_for_negative_weights() {
    let b = ReferenceBackend;
    let x = centred_patch();
    let aligned = config(|c| {
        c.init = ConvInit::Signed;
        c.plasticity = ConvPlasticity::Aligned;
    });
    let blind = config(|c| c.init = ConvInit::Signed);
    let drive = |net: &ConvNet<Ref>, j: usize| -> f32 {
        net.layers[0].weights.row(j).iter().zip(x.row(0)).map(|(a, b)| a * b).sum()
    };
    let run = |cfg: &ConvConfig| {
        let mut net = one_patch_net(cfg, 6, ConvInit::Signed, 5);
        let signs: Vec<f32> = net.layers[0].weights.as_slice().iter().map(|w| w.signum()).collect();
        let t = net.layer_forward(0, &x);
        let winner = (0..6).max_by(|&i, &j| t.full().0.get(0, i).total_cmp(&t.full().0.get(0, j))).unwrap();
        let before = drive(&net, winner);
        for _ in 0..20 {
            let t = net.layer_forward(0, &x);
            conv_plasticity(&b, &mut net.layers[0], t, cfg, 0.05);
        }
        let kept: Vec<f32> = net.layers[0].weights.as_slice().iter().map(|w| w.signum()).collect();
        assert_eq!(signs, kept, "a positive factor changes no sign");
        (before, drive(&net, winner), net, winner)
    };
    let (before, after, net, winner) = run(&aligned);
    assert!(after > before + 0.05, "aligned: the winner's drive {before} → {after}");
    // Each synapse of the winner: its magnitude grew where sign(w)·x > 0 and shrank elsewhere.
    let start = one_patch_net(&aligned, 6, ConvInit::Signed, 5);
    let (w0, w1) = (start.layers[0].weights.row(winner).to_vec(), net.layers[0].weights.row(winner).to_vec());
    let ratio = |i: usize| w1[i].abs() / w0[i].abs();
    let agree: Vec<usize> = (0..9).filter(|&i| w0[i] * x.get(0, i) > 0.0).collect();
    let disagree: Vec<usize> = (0..9).filter(|&i| w0[i] * x.get(0, i) < 0.0).collect();
    assert!(!agree.is_empty() && !disagree.is_empty(), "the example needs synapses of both kinds");
    let least_agreeing = agree.iter().map(|&i| ratio(i)).fold(f32::INFINITY, f32::min);
    let most_disagreeing = disagree.iter().map(|&i| ratio(i)).fold(0.0, f32::max);
    assert!(least_agreeing > most_disagreeing, "agreeing {least_agreeing} vs disagreeing {most_disagreeing}");
    // The sign-blind step does not raise the drive as much (on this start it lowers it).
    let (_, blind_after, _, _) = run(&blind);
    assert!(blind_after < after, "bio {blind_after} against aligned {after}");
    // On a positive start the two steps are the same arithmetic.
    let positive = |p: ConvPlasticity| {
        let cfg = config(|c| c.plasticity = p);
        let mut net = one_patch_net(&cfg, 6, ConvInit::Positive, 5);
        let x = uniform(2, 9, 0.0, 1.0, 7);
        for _ in 0..5 {
            let t = net.layer_forward(0, &x);
            conv_plasticity(&b, &mut net.layers[0], t, &cfg, 0.05);
        }
        net.layers[0].weights.as_slice().to_vec()
    };
    let (bio, aligned) = (positive(ConvPlasticity::Bio), positive(ConvPlasticity::Aligned));
    assert_eq!(bio, aligned, "positive start: the same arithmetic on the reference backend");
}

/// One pooling window per layer: the exported forward pass gives the net's logits, and the model
/// resumes bit for bit.
#[test]
fn pooling_per_layer_exports_and_resumes() {
    let cfg = config(|c| {
        c.layers = "4:3,6:3".into();
        c.pool = "none,2:2:0".into();
        c.init = ConvInit::Signed;
    });
    let shapes = cfg.shapes(36).unwrap();
    assert_eq!((shapes[0].output(), shapes[1].output()), ((6, 6, 4), (3, 3, 6)));
    let mut net = ConvRule::<Ref>::new(cfg.clone()).init_model(&ReferenceBackend, 36, 3, 2);
    random_readout(&mut net, 4);
    let x = uniform(3, 36, 0.0, 1.0, 9);
    let ops = <ConvRule<Ref> as Rule>::forward_pass(&cfg, 36, 3).expect("ops");
    let exported = crate::forward::run(&ops, &net.to_params(), &x).expect("runs");
    assert!(exported.max_abs_diff(&net.logits(&x)) < 1e-4);
    check_resume(|| ConvRule::<Ref>::new(cfg.clone()), 36, 6, 2);
}

/// `instar`: the winner moves additively toward the unit pattern it wins, through zero where the
/// pattern's sign disagrees with its start (a sign-keeping step could not reach it), until it is
/// that pattern: a filter equal to its won pattern is a fixed point; a filter that never wins does
/// not move.
#[test]
fn instar_moves_the_winner_onto_the_pattern_it_wins() {
    let b = ReferenceBackend;
    let x = centred_patch();
    let unit = b.unit_l2_rows(&x);
    let cfg = config(|c| {
        c.init = ConvInit::Signed;
        c.plasticity = ConvPlasticity::Instar;
    });
    let mut net = one_patch_net(&cfg, 6, ConvInit::Signed, 5);
    let cosine = |net: &ConvNet<Ref>, j: usize| -> f32 {
        net.layers[0].weights.row(j).iter().zip(unit.row(0)).map(|(a, b)| a * b).sum()
    };
    let t = net.layer_forward(0, &x);
    let drive = t.full().0.clone();
    let winner = (0..6).max_by(|&i, &j| drive.get(0, i).total_cmp(&drive.get(0, j))).unwrap();
    let loser = (0..6).min_by(|&i, &j| drive.get(0, i).total_cmp(&drive.get(0, j))).unwrap();
    let start = net.layers[0].weights.clone();
    for _ in 0..30 {
        let t = net.layer_forward(0, &x);
        conv_plasticity(&b, &mut net.layers[0], t, &cfg, 0.5);
    }
    let end = &net.layers[0].weights;
    assert!(cosine(&net, winner) > 0.999, "winner's cosine with its pattern: {}", cosine(&net, winner));
    let flipped = (0..9).filter(|&i| start.get(winner, i) * end.get(winner, i) < 0.0).count();
    assert!(flipped > 0, "the winner reached a pattern of other signs: some weight crossed zero");
    assert_eq!(start.row(loser), end.row(loser), "a unit that never wins does not learn");
    // A filter equal to the unit pattern it wins stays where it is.
    let mut fixed = one_patch_net(&cfg, 6, ConvInit::Signed, 5);
    for i in 0..9 {
        fixed.layers[0].weights.set(winner, i, unit.get(0, i));
    }
    let t = fixed.layer_forward(0, &x);
    conv_plasticity(&b, &mut fixed.layers[0], t, &cfg, 0.5);
    for i in 0..9 {
        let (got, want) = (fixed.layers[0].weights.get(winner, i), unit.get(0, i));
        assert!((got - want).abs() < 1e-6, "synapse {i}: {want} moved to {got}");
    }
}

/// `--conv-learn-density`: the plasticity signal keeps its own winners per position while the
/// forward pass keeps `--conv-density`'s; equal to the forward density it is the same step, bit
/// for bit; it is refused where no k-WTA signal exists.
#[test]
fn learn_density_sets_the_winners_that_learn_only() {
    let b = ReferenceBackend;
    let x = uniform(1, 9, 0.0, 1.0, 6);
    let step = |learn: Option<f32>, plasticity: ConvPlasticity| {
        let cfg = config(|c| {
            c.density = 0.5;
            c.learn_density = learn;
            c.init = ConvInit::Signed;
            c.plasticity = plasticity;
        });
        let mut net = one_patch_net(&cfg, 6, ConvInit::Signed, 5);
        let start = net.layers[0].weights.clone();
        let t = net.layer_forward(0, &x);
        let active = t.full().1.row(0).iter().filter(|&&y| y > 0.0).count();
        conv_plasticity(&b, &mut net.layers[0], t, &cfg, 0.5);
        // Moved beyond the rounding of synaptic scaling (a unit-norm row rescaled to unit norm).
        let w = &net.layers[0].weights;
        let moved = (0..6).filter(|&j| (0..9).any(|i| (start.get(j, i) - w.get(j, i)).abs() > 1e-6)).count();
        (active, moved, net.layers[0].weights.clone())
    };
    for plasticity in [ConvPlasticity::Bio, ConvPlasticity::Instar] {
        let (active, moved, _) = step(Some(0.1), plasticity);
        assert_eq!((active, moved), (3, 1), "{plasticity:?}: forward k = 3, one winner learns");
        let (active, moved, w) = step(None, plasticity);
        assert_eq!((active, moved), (3, 3), "{plasticity:?}: without it the forward winners learn");
        assert_eq!(step(Some(0.5), plasticity).2, w, "{plasticity:?}: the forward density is the same step");
    }
    for bad in [
        ConvParams { learn_density: Some(0.0), ..Default::default() },
        ConvParams { learn_density: Some(0.1), competition: ConvCompetition::Soft, ..Default::default() },
        ConvParams {
            learn_density: Some(0.1),
            plasticity: ConvPlasticity::Softhebb,
            init: ConvInit::Signed,
            ..Default::default()
        },
    ] {
        let err = bad.check().unwrap_err().to_string();
        assert!(err.contains("conv-learn-density"), "{err}");
    }
}
