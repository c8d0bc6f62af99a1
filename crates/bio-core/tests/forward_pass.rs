//! Every registered rule's forward pass as ops ([`bio_core::forward`]), run by the reference
//! interpreter on the model's own parameters, gives the model's logits: the ops an export and
//! Python's `to_torch()` rebuild a model from are the model.

use bio_core::forward::{Op, run};
use bio_core::rules::{Rule, RuleVisitor};
use bio_core::{Classifier, LearningRule, Matrix, ReferenceBackend, TensorStore};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 4×4 images: a square image for the conv rules, 16 inputs for the others.
const INPUTS: usize = 16;
const CLASSES: usize = 3;

fn batch(rows: usize, seed: u64) -> (Matrix, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Matrix::from_fn(rows, INPUTS, |_, _| rng.random_range(0.0f32..1.0));
    let labels = (0..rows).map(|i| i % CLASSES).collect();
    (x, labels)
}

/// The largest |logit difference| between the model and its ops after a few training steps, and the
/// logits' scale.
struct Compare;

impl RuleVisitor<ReferenceBackend> for Compare {
    type Output = (f32, f32);
    fn visit<R: Rule + LearningRule<ReferenceBackend>>(self) -> (f32, f32) {
        let b = ReferenceBackend;
        let config = bio_core::rules::config_from_settings::<R>(&[12], &Default::default()).unwrap();
        let ops = R::forward_pass(&config, INPUTS, CLASSES).unwrap();
        let mut rule = R::new(config, 0);
        let mut model = rule.init_model(&b, INPUTS, CLASSES, 0);
        rule.start_epoch(0, 1);
        // A few updates, so that no part of the model (e.g. a readout) is still at its zero start.
        for seed in 0..4 {
            let (x, labels) = batch(20, seed);
            rule.train_batch(&mut model, &b.upload(&x), &labels).unwrap();
        }
        let (x, _) = batch(16, 99);
        let expected = b.download(&model.logits(&b.upload(&x)));
        let got = run(&ops, &model.to_params(), &x).unwrap();
        assert_eq!(got.shape(), expected.shape(), "`{}`", R::NAME);
        let scale = expected.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        (got.max_abs_diff(&expected), scale)
    }
}

#[test]
fn every_registered_rule_s_ops_give_its_logits() {
    for rule in bio_core::rules::rules() {
        let (difference, scale) = bio_core::rules::dispatch(rule.name, Compare).unwrap();
        assert!(scale > 1e-3, "`{}`: logits all ≈ 0, the comparison would prove nothing", rule.name);
        assert!(difference <= 1e-4 * scale.max(1.0), "`{}`: |ops − model| = {difference} (scale {scale})", rule.name);
    }
}

#[test]
fn a_wrong_op_list_is_caught() {
    // The comparison can fail: bp's pass without its hidden ReLU gives other logits.
    let b = ReferenceBackend;
    let config = bio_core::BpParams { hidden: vec![12], ..Default::default() }.check().unwrap();
    let model = bio_core::BpNet::init(&b, config.clone(), INPUTS, CLASSES, 1);
    let (x, _) = batch(16, 5);
    let expected = b.download(&model.logits(&b.upload(&x)));
    let mut ops =
        <bio_core::rules::BackpropRule<ReferenceBackend> as Rule>::forward_pass(&config, INPUTS, CLASSES).unwrap();
    assert!(run(&ops, &model.to_params(), &x).unwrap().max_abs_diff(&expected) < 1e-5);
    ops.retain(|op| *op != Op::Relu);
    assert!(run(&ops, &model.to_params(), &x).unwrap().max_abs_diff(&expected) > 1e-3);
}

/// The widths of each hidden tensor of a fresh model and [`Rule::widths`] at its input size.
struct Widths;

impl RuleVisitor<ReferenceBackend> for Widths {
    type Output = (Vec<usize>, Vec<usize>);
    fn visit<R: Rule + LearningRule<ReferenceBackend>>(self) -> Self::Output {
        let b = ReferenceBackend;
        let config = bio_core::rules::config_from_settings::<R>(&[12], &Default::default()).unwrap();
        let declared = R::widths(&config, INPUTS).unwrap();
        let rule = R::new(config, 0);
        let model = rule.init_model(&b, INPUTS, CLASSES, 0);
        let (x, _) = batch(3, 7);
        let activity = model.hidden_activity(&b.upload(&x));
        (declared, activity.iter().map(|t| b.shape(t).1).collect())
    }
}

/// Every registered rule's [`Rule::widths`] are the columns of its model's hidden activity (what
/// `metrics.json`'s `hidden` reports).
#[test]
fn every_registered_rule_s_widths_are_its_hidden_activity_s() {
    for rule in bio_core::rules::rules() {
        let (declared, actual) = bio_core::rules::dispatch(rule.name, Widths).unwrap();
        assert_eq!(declared, actual, "`{}`", rule.name);
    }
}
