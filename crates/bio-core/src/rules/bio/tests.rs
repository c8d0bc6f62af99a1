//! The `bio` rule's unit tests.

use super::model::{BioNet, Readout};
use super::params::{BioParams, ScalingNorm};
use super::plasticity::*;
use super::rule::*;
use crate::backend::ReferenceBackend;
use crate::model::Classifier;
use crate::rules::LearningRule;
use crate::tensor::Matrix;

fn rule(hidden: Vec<usize>, layerwise: bool, consolidation: usize) -> BioRule {
    let params = BioParams { hidden, layerwise, consolidation_epochs: consolidation, ..Default::default() };
    BioRule::new(params.check().expect("valid"), 0)
}

/// (plastic layers, Hebbian schedule) for each epoch of a run.
fn plan(mut r: BioRule, epochs: usize) -> Vec<(std::ops::Range<usize>, f32)> {
    (0..epochs)
        .map(|e| {
            r.start_epoch(e, epochs);
            (r.plastic_layers(), r.hebbian_schedule)
        })
        .collect()
}

#[test]
fn all_layers_learn_until_consolidation() {
    let p = plan(rule(vec![8, 8], false, 1), 4);
    assert_eq!(p.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>(), [0..2, 0..2, 0..2, 0..0]);
    assert_eq!(p.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [1.0, 0.75, 0.5, 0.0]);
}

#[test]
fn an_end_rate_makes_the_hebbian_schedule_geometric() {
    // 0.001 → 0.0001 over 4 plastic epochs (one consolidation epoch after): ×10^(−e/3); the reverse
    // schedule rises the same way; the readout keeps its linear decay.
    let schedule = |start: f32, end: f32| {
        let params = BioParams {
            hidden: vec![8],
            hebbian_rate: start,
            hebbian_rate_end: Some(end),
            consolidation_epochs: 1,
            ..Default::default()
        };
        plan(BioRule::new(params.check().expect("valid"), 0), 5).into_iter().map(|(_, s)| s).collect::<Vec<_>>()
    };
    let close = |got: Vec<f32>, want: [f32; 5]| {
        assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5), "{got:?} against {want:?}");
    };
    let third = 10f32.powf(-1.0 / 3.0);
    close(schedule(0.001, 0.0001), [1.0, third, third * third, 0.1, 0.0]);
    close(schedule(0.0001, 0.001), [1.0, 1.0 / third, 1.0 / (third * third), 10.0, 0.0]);
}

#[test]
fn layerwise_blocks_cover_the_plastic_epochs_in_layer_order() {
    // 9 plastic epochs over 2 layers: layer 0 in epochs 0..5, layer 1 in 5..9, then consolidation.
    let p = plan(rule(vec![8, 8], true, 1), 10);
    let layers: Vec<_> = p.iter().map(|(l, _)| l.clone()).collect();
    assert_eq!(layers[..5], [0..1, 0..1, 0..1, 0..1, 0..1]);
    assert_eq!(layers[5..9], [1..2, 1..2, 1..2, 1..2]);
    assert_eq!(layers[9], 0..0);
    // Each block restarts the decay.
    assert_eq!(p[0].1, 1.0);
    assert_eq!(p[5].1, 1.0);
    assert_eq!(p[8].1, 0.25);
}

/// The anti-Hebbian push reaches exactly ranks k+1…k+m of each input (distinct drives), and one
/// rank is the unit at the threshold.
#[test]
fn near_losers_are_the_ranks_below_the_winners() {
    let b = ReferenceBackend;
    let (width, k) = (20, 5);
    for ranks in [1, 4, 14, 30] {
        let params = BioParams {
            hidden: vec![width],
            active_fraction: k as f32 / width as f32,
            anti_hebbian: 0.5,
            anti_hebbian_ranks: ranks,
            ..Default::default()
        };
        let config = params.check().expect("valid");
        let net = BioNet::init(&b, config.clone(), 12, 3, 2);
        let x = Matrix::from_fn(6, 12, |i, j| ((i * 5 + j * 7) % 13) as f32 / 12.0 + 0.05 * i as f32);
        let trace = net.trace(&x);
        let t = &trace.layers[0];
        let marks = near_losers(&b, t, &config);
        let reach = (k + ranks).min(width - 1);
        for row in 0..6 {
            let mut order: Vec<usize> = (0..width).collect();
            order.sort_by(|&p, &q| t.drive.get(row, q).total_cmp(&t.drive.get(row, p)));
            for (rank, &unit) in order.iter().enumerate() {
                let expected = if (k..reach).contains(&rank) { -1.0 } else { 0.0 };
                assert_eq!(marks.get(row, unit), expected, "ranks {ranks}, row {row}, rank {rank}");
            }
        }
    }
}

/// The third factor: a sample whose reward signal is `−1` moves its winners away from it by
/// exactly the step a `+1` signal moves them toward it (in log space, with pruning and scaling off
/// so that nothing else changes the weights), and a zero signal leaves them unchanged.
#[test]
fn a_negative_reward_reverses_the_hebbian_change() {
    let b = ReferenceBackend;
    let mut params = BioParams { hidden: vec![10], active_fraction: 0.3, hebbian_rate: 0.05, ..Default::default() };
    params.mechanisms.synaptic_scaling = false;
    params.mechanisms.structural = false;
    let config = params.check().expect("valid");
    let net = BioNet::init(&b, config.clone(), 12, 3, 1);
    let x = Matrix::from_fn(6, 12, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0 + 0.01);
    let trace = net.trace(&x);
    let log_change = |signal: Option<f32>| {
        let mut layer = net.layers[0].clone();
        let m = signal.map(|s| Matrix::from_fn(6, 1, |_, _| s));
        modulated_plasticity(&b, &mut layer, &trace.layers[0], config.hebbian_rate, &config, m.as_ref());
        Matrix::from_fn(10, 12, |i, j| (layer.weights.get(i, j) / net.layers[0].weights.get(i, j)).ln())
    };
    let (plain, toward, away, none) =
        (log_change(None), log_change(Some(1.0)), log_change(Some(-1.0)), log_change(Some(0.0)));
    let mut moved = 0.0f32;
    for i in 0..10 {
        for j in 0..12 {
            assert!((plain.get(i, j) - toward.get(i, j)).abs() < 1e-6);
            assert!((toward.get(i, j) + away.get(i, j)).abs() < 1e-5, "unit {i}, input {j}");
            assert!(none.get(i, j).abs() < 1e-6);
            moved += toward.get(i, j).abs();
        }
    }
    assert!(moved > 1e-3, "the plain step moved nothing, so the test would prove nothing");
}

/// Readout gating: a unit learns from a sample when its synapse onto the sample's class is above
/// its mean over the classes, and is pushed away (−κ) otherwise.
#[test]
fn readout_votes_follow_each_units_synapse_onto_the_true_class() {
    let b = ReferenceBackend;
    // 3 classes × 2 units: unit 0 votes for class 0 (3 > mean 5/3), unit 1 for classes 1 and 2.
    let weights = Matrix::from_fn(3, 2, |c, j| [[3.0, 1.0], [1.0, 2.0], [1.0, 2.0]][c][j]);
    let readout = Readout { weights, bias: Matrix::from_fn(1, 3, |_, _| 0.0) };
    let votes = readout_votes(&b, &readout, &[0, 1, 2], 0.5);
    let want = [[1.0, -0.5], [-0.5, 1.0], [-0.5, 1.0]];
    for (row, w) in want.iter().enumerate() {
        for (j, &expected) in w.iter().enumerate() {
            assert_eq!(votes.get(row, j), expected, "sample {row}, unit {j}");
        }
    }
}

/// Two populations: after one batch the fast units' weights are those of a one-population net
/// at the fast rate and the slow units' those of one at the slow rate (the forward pass, and so
/// the winners, are the same in all three; each unit's step depends on its own signal only).
#[test]
fn each_population_learns_at_its_own_rate() {
    let b = ReferenceBackend;
    let (width, fan_in, fast) = (10, 12, 4);
    let x = Matrix::from_fn(8, fan_in, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0);
    let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();
    let trained = |hebbian_rate: f32, fast_fraction: f32, fast_hebbian_rate: f32| {
        let params = BioParams {
            hidden: vec![width],
            active_fraction: 0.3,
            hebbian_rate,
            fast_fraction,
            fast_hebbian_rate,
            ..Default::default()
        };
        let config = params.check().expect("valid");
        let mut net = BioNet::init(&b, config.clone(), fan_in, 3, 1);
        let mut r = BioRule::new(config, 0);
        r.start_epoch(0, 2);
        LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
        net.layers[0].weights.clone()
    };
    let (slow_rate, fast_rate) = (0.01, 0.1);
    let mixed = trained(slow_rate, fast as f32 / width as f32, fast_rate);
    let all_slow = trained(slow_rate, 0.0, 0.0);
    let all_fast = trained(fast_rate, 0.0, 0.0);
    let start = trained(0.0, 0.0, 0.0);
    let mut learned = [0, 0];
    for j in 0..width {
        let reference = if j < fast { &all_fast } else { &all_slow };
        let mut moved = 0.0f32;
        for i in 0..fan_in {
            let (got, want) = (mixed.get(j, i), reference.get(j, i));
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1e-3), "unit {j}, synapse {i}: {got} vs {want}");
            moved += (got - start.get(j, i)).abs();
        }
        learned[usize::from(j >= fast)] += usize::from(moved > 1e-4);
    }
    // Units that won nothing in this batch do not move; each population must have learners.
    assert!(learned[0] > 0 && learned[1] > 0, "units that learned (fast, slow): {learned:?}");
}

/// Metaplasticity: a unit that has won `A_j = 3τ` inputs learns at a quarter of the rate (its
/// weights after a batch equal those of a plain net at `η/4`), a unit that has won none at the
/// full rate; its homeostatic change is scaled alike with `metaplastic_homeostasis`; and each
/// unit's lifetime count grows by the inputs it won.
#[test]
fn a_much_used_unit_learns_and_adapts_at_a_consolidated_rate() {
    let b = ReferenceBackend;
    let (width, fan_in, used, tau) = (10, 12, 5, 4.0);
    let x = Matrix::from_fn(8, fan_in, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0);
    let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();
    let trained = |hebbian_rate: f32, metaplasticity: Option<f32>, metaplastic_homeostasis: bool| {
        let params = BioParams {
            hidden: vec![width],
            active_fraction: 0.3,
            hebbian_rate,
            metaplasticity,
            metaplastic_homeostasis,
            ..Default::default()
        };
        let config = params.check().expect("valid");
        let mut net = BioNet::init(&b, config.clone(), fan_in, 3, 1);
        let mut r = BioRule::new(config, 0);
        if metaplasticity.is_some() {
            r.usage = vec![(0..width).map(|j| if j < used { 3.0 * tau } else { 0.0 }).collect()];
        }
        r.start_epoch(0, 2);
        LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
        (net.layers[0].weights.clone(), net.layers[0].bias.clone(), r.usage)
    };
    let rate = 0.1;
    let (meta, meta_bias, usage) = trained(rate, Some(tau), true);
    let (full, full_bias, _) = trained(rate, None, false);
    let (quarter, _, _) = trained(rate / 4.0, None, false);
    let (start, _, _) = trained(0.0, None, false);
    let untrained = {
        let params = BioParams { hidden: vec![width], active_fraction: 0.3, ..Default::default() };
        BioNet::init(&b, params.check().expect("valid"), fan_in, 3, 1)
    };
    let (start_bias, start_activity) = (&untrained.layers[0].bias, untrained.trace(&x).layers[0].activity.clone());
    let (_, plain_bias, _) = trained(rate, Some(tau), false);
    let mut learned = [0, 0];
    for j in 0..width {
        let (reference, factor) = if j < used { (&quarter, 0.25) } else { (&full, 1.0) };
        let mut moved = 0.0f32;
        for i in 0..fan_in {
            let (got, want) = (meta.get(j, i), reference.get(j, i));
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1e-3), "unit {j}, synapse {i}: {got} vs {want}");
            moved += (got - start.get(j, i)).abs();
        }
        learned[usize::from(j >= used)] += usize::from(moved > 1e-4);
        let want = start_bias.get(0, j) + factor * (full_bias.get(0, j) - start_bias.get(0, j));
        assert!((meta_bias.get(0, j) - want).abs() <= 1e-6, "unit {j}: bias {} vs {want}", meta_bias.get(0, j));
        // Without metaplastic homeostasis the excitability changes as in a plain net.
        assert_eq!(plain_bias.get(0, j), full_bias.get(0, j), "unit {j}");
        let won = (0..8).filter(|&s| start_activity.get(s, j) > 0.0).count() as f32;
        let before = if j < used { 3.0 * tau } else { 0.0 };
        assert_eq!(usage[0][j], before + won, "unit {j}: lifetime wins");
    }
    assert!(learned[0] > 0 && learned[1] > 0, "units that learned (used, fresh): {learned:?}");
    assert!(usage[0].iter().zip(0..).any(|(&a, j)| a > if j < used { 3.0 * tau } else { 0.0 }), "some unit won");
}

/// The taught readout: a batch of one class leaves every other class unit's synapses and every
/// bias as they were, and moves the taught class's synapses (the delta rule moves all of them).
#[test]
fn the_taught_readout_leaves_absent_classes_alone() {
    let b = ReferenceBackend;
    let x = Matrix::from_fn(8, 12, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0);
    let labels = vec![1; 8];
    use super::params::ReadoutRule;
    let readout_after = |readout_rule: ReadoutRule| {
        let params = BioParams { hidden: vec![10], active_fraction: 0.3, readout_rule, ..Default::default() };
        let config = params.check().expect("valid");
        let mut net = BioNet::init(&b, config.clone(), 12, 3, 1);
        let mut r = BioRule::new(config, 0);
        r.start_epoch(0, 2);
        // The first update also brings every class unit to its synaptic budget; watch the second.
        LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
        let before = (net.readout.weights.clone(), net.readout.bias.clone());
        LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
        (before, (net.readout.weights.clone(), net.readout.bias.clone()))
    };
    // Beyond rounding: class units are rescaled to their synaptic budget after every update.
    let row_moved = |a: &Matrix, b: &Matrix, c: usize| (0..a.cols()).any(|j| (a.get(c, j) - b.get(c, j)).abs() > 1e-5);
    let ((w0, b0), (w1, b1)) = readout_after(ReadoutRule::Taught);
    assert!(row_moved(&w0, &w1, 1), "the taught class learns");
    assert!(!row_moved(&w0, &w1, 0) && !row_moved(&w0, &w1, 2), "absent classes keep their synapses");
    assert_eq!(b0, b1, "biases stay");
    let ((w0, _), (w1, _)) = readout_after(ReadoutRule::DeltaEg);
    assert!(row_moved(&w0, &w1, 0) && row_moved(&w0, &w1, 2), "the delta rule pushes absent classes down");
}

/// Class assemblies: a batch of classes 0 and 2 moves only units `j ≡ 0, 2 (mod 3)`, the units of
/// class 1 keep their weights, rate and excitability; each sample reaches exactly `k_a` units of
/// its own class; the assemblies' readout is the fixed indicator and stays; a layer with fewer
/// units than classes is refused with one line.
#[test]
fn class_assemblies_learn_only_from_their_own_class() {
    use super::params::ReadoutRule;
    let b = ReferenceBackend;
    let (width, fan_in, classes) = (12, 10, 3);
    let x = Matrix::from_fn(8, fan_in, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0 + 0.05);
    let labels: Vec<usize> = (0..8).map(|i| if i % 2 == 0 { 0 } else { 2 }).collect();
    let params = BioParams {
        hidden: vec![width],
        active_fraction: 0.5,
        hebbian_rate: 0.1,
        class_assemblies: true,
        readout_rule: ReadoutRule::Assembly,
        ..Default::default()
    };
    let config = params.clone().check().expect("valid");
    let mut net = BioNet::init(&b, config.clone(), fan_in, classes, 1);
    let indicator = Matrix::from_fn(classes, width, |c, j| if j % classes == c { 1.0 } else { 0.0 });
    assert_eq!(net.readout.weights, indicator, "the readout sums each class's assembly");

    // The gated competition: k_a = round(0.5 · 12 / 3) = 2 winners per sample, all of its class.
    let gated = assembly_trace(&b, &net.trace(&x).layers[0], &labels, classes, &config).expect("12 ≥ 3 units");
    for (s, &y) in labels.iter().enumerate() {
        let winners: Vec<usize> = (0..width).filter(|&j| gated.trace.activity.get(s, j) > 0.0).collect();
        assert_eq!(winners.len(), 2, "sample {s}: winners {winners:?}");
        assert!(winners.iter().all(|&j| j % classes == y), "sample {s} (class {y}) reached {winners:?}");
    }

    let mut r = BioRule::new(config, 0);
    r.start_epoch(0, 2);
    // The first update also brings every unit to its synaptic budget (scaling); watch the second.
    LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
    let before = net.layers[0].clone();
    LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
    let after = &net.layers[0];
    let unit_moved = |j: usize| (0..fan_in).any(|i| (after.weights.get(j, i) - before.weights.get(j, i)).abs() > 1e-6);
    for j in (0..width).filter(|j| j % classes == 1) {
        assert!(!unit_moved(j), "unit {j} of the absent class 1 moved");
        assert_eq!(after.bias.get(0, j), before.bias.get(0, j), "unit {j}: excitability");
        assert_eq!(after.rate.get(0, j), before.rate.get(0, j), "unit {j}: running rate");
    }
    assert!((0..width).filter(|j| j % classes != 1).any(unit_moved), "the taught assemblies learn");
    assert!((0..width).filter(|j| j % classes != 1).any(|j| after.bias.get(0, j) != before.bias.get(0, j)));
    assert_eq!(net.readout.weights, indicator, "the assemblies' readout does not learn");

    // Fewer units than classes: one line naming the setting; the fixed readout needs assemblies.
    let narrow = BioParams { hidden: vec![2], ..params.clone() }.check().expect("valid");
    let mut small = BioNet::init(&b, narrow.clone(), fan_in, classes, 1);
    let err = LearningRule::<ReferenceBackend>::train_batch(&mut BioRule::new(narrow, 0), &mut small, &x, &labels)
        .expect_err("2 units cannot hold 3 assemblies");
    assert!(err.to_string().contains("class-assemblies"), "{err}");
    let err = BioParams { class_assemblies: false, ..params }.check().expect_err("no assemblies to sum");
    assert!(err.to_string().contains("readout"), "{err}");
}

/// Class assemblies with metaplastic homeostasis: a unit that has won `A_j = 3τ` inputs changes its
/// excitability by a quarter of what the same unit changes without metaplasticity (the assemblies'
/// homeostasis, consolidated like the plain one), and a fresh unit by the whole of it.
#[test]
fn assembly_homeostasis_is_consolidated_by_metaplasticity() {
    use super::params::ReadoutRule;
    let b = ReferenceBackend;
    let (width, fan_in, classes, tau) = (12, 10, 3, 2.0);
    let x = Matrix::from_fn(8, fan_in, |i, j| ((i * 5 + j * 3) % 11) as f32 / 10.0 + 0.05);
    let labels: Vec<usize> = (0..8).map(|i| i % classes).collect();
    let bias_change = |metaplasticity: Option<f32>| {
        let params = BioParams {
            hidden: vec![width],
            active_fraction: 0.5,
            hebbian_rate: 0.0,
            class_assemblies: true,
            readout_rule: ReadoutRule::Assembly,
            metaplasticity,
            metaplastic_homeostasis: metaplasticity.is_some(),
            ..Default::default()
        };
        let config = params.check().expect("valid");
        let mut net = BioNet::init(&b, config.clone(), fan_in, classes, 1);
        let mut r = BioRule::new(config, 0);
        r.usage = vec![(0..width).map(|j| if j < 6 { 3.0 * tau } else { 0.0 }).collect()];
        r.start_epoch(0, 2);
        let before = net.layers[0].bias.clone();
        LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
        (0..width).map(|j| net.layers[0].bias.get(0, j) - before.get(0, j)).collect::<Vec<f32>>()
    };
    let (plain, meta) = (bias_change(None), bias_change(Some(tau)));
    assert!(plain.iter().any(|&d| d != 0.0), "homeostasis moved some bias: {plain:?}");
    for j in 0..width {
        let want = if j < 6 { plain[j] / 4.0 } else { plain[j] };
        assert!((meta[j] - want).abs() <= 1e-6, "unit {j}: {} vs {want}", meta[j]);
    }
}

#[test]
fn a_unit_normalizing_over_its_own_synapses_learns_as_if_it_saw_only_them() {
    // Every unit keeps the first 5 of 12 inputs. With the pattern normalized per unit, learning
    // from x must equal learning, with the pattern over all inputs, from x with the rest zeroed:
    // the drive is the same (absent synapses are zero) and so is each unit's view of the input.
    let b = ReferenceBackend;
    let (width, fan_in, seen) = (10, 12, 5);
    let x = Matrix::from_fn(8, fan_in, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0 + 0.05);
    let window = Matrix::from_fn(8, fan_in, |i, j| if j < seen { x.get(i, j) } else { 0.0 });
    let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();
    for scaling_norm in [ScalingNorm::L1, ScalingNorm::L2] {
        let trained = |input: &Matrix, pattern_per_unit: bool| {
            let params = BioParams {
                hidden: vec![width],
                active_fraction: 0.3,
                hebbian_rate: 0.05,
                scaling_norm,
                pattern_per_unit,
                ..Default::default()
            };
            let config = params.check().expect("valid");
            let mut net = BioNet::init(&b, config.clone(), fan_in, 3, 1);
            for j in 0..width {
                for i in seen..fan_in {
                    net.layers[0].weights.set(j, i, 0.0);
                    net.layers[0].mask.set(j, i, 0.0);
                }
            }
            let mut r = BioRule::new(config, 0);
            r.start_epoch(0, 2);
            LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, input, &labels).expect("finite");
            net.layers[0].weights.clone()
        };
        let own = trained(&x, true);
        let windowed = trained(&window, false);
        let all_inputs = trained(&x, false);
        let mut differs = 0.0f32;
        for j in 0..width {
            for i in 0..fan_in {
                let (got, want) = (own.get(j, i), windowed.get(j, i));
                assert!((got - want).abs() <= 1e-5 * want.abs().max(1e-3), "{scaling_norm:?} {j},{i}: {got} vs {want}");
                differs = differs.max((got - all_inputs.get(j, i)).abs());
            }
        }
        // And the switch matters: over all inputs the same unit learns something else.
        assert!(differs > 1e-4, "{scaling_norm:?}: per-unit normalization changed nothing ({differs})");
    }
}

#[test]
fn frozen_layers_do_not_change() {
    let params = BioParams { hidden: vec![6, 5], layerwise: true, consolidation_epochs: 0, ..Default::default() };
    let config = params.check().expect("valid");
    let b = ReferenceBackend;
    let mut net = BioNet::init(&b, config.clone(), 12, 3, 1);
    let mut r = BioRule::new(config, 0);
    let x = Matrix::from_fn(8, 12, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0);
    let labels: Vec<usize> = (0..8).map(|i| i % 3).collect();
    let before = net.to_params();
    r.start_epoch(0, 2);
    LearningRule::<ReferenceBackend>::train_batch(&mut r, &mut net, &x, &labels).expect("finite");
    let after = net.to_params();
    let changed =
        |name: &str| before.tensors.iter().zip(&after.tensors).any(|((n, a), (_, b))| n.contains(name) && a != b);
    assert!(changed("hidden.0"), "layer 0 learns in its block");
    assert!(!changed("hidden.1"), "layer 1 is frozen in layer 0's block");
}
