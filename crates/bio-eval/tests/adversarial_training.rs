//! PGD adversarial training of `bp` (`--adversarial-eps`) buys robustness: on a few hundred images of
//! the embedded Fashion-MNIST subset, the network trained on PGD examples keeps more accuracy under
//! a stronger PGD attack at eps 0.1 than the clean-trained network of the same seed and settings.

use bio_core::train::train_epoch;
use bio_core::{BackpropRule, BpNet, BpParams, Optimizer};
use bio_cpu::CpuBackend;
use bio_data::Dataset;
use bio_eval::{AttackName, AttackParams, robustness_curve};

const TRAIN_IMAGES: usize = 1000;
const TEST_IMAGES: usize = 300;
const EPOCHS: u64 = 10;

/// A 784-64-10 `bp` network trained `EPOCHS` epochs on the first `TRAIN_IMAGES` training images,
/// adversarially at radius `eps` (5 PGD steps) when it is positive.
fn trained(data: &Dataset, optimizer: Optimizer, learning_rate: f32, eps: f32) -> BpNet<CpuBackend> {
    let b = CpuBackend::new();
    let config = BpParams { hidden: vec![64], optimizer, learning_rate, adversarial_eps: eps, adversarial_steps: 5 }
        .check()
        .unwrap();
    let mut model = BpNet::init(&b, config.clone(), data.input_dim(), data.classes, 1);
    let mut rule = BackpropRule::with_seed(config, 1);
    let train = data.train.take(TRAIN_IMAGES);
    for epoch in 0..EPOCHS {
        let batches = train.batches(50, Some(epoch)).map(|bt| (bt.images, bt.labels));
        train_epoch(&b, &mut rule, &mut model, batches, |_| {}).unwrap();
    }
    model
}

/// Clean accuracy and accuracy under PGD-20 (random start) at eps 0.1 on the first
/// `TEST_IMAGES` test images.
fn clean_and_robust(model: &BpNet<CpuBackend>, data: &Dataset) -> (f64, f64) {
    let test = data.test.take(TEST_IMAGES);
    let pgd = AttackParams { kind: AttackName::Pgd, steps: 20, ..Default::default() };
    let curve = robustness_curve(model, &pgd, &[0.0, 0.1], &test.images, &test.labels, 500, 3, |_, _| {}).unwrap();
    (curve.points[0].accuracy, curve.points[1].accuracy)
}

#[test]
fn adversarially_trained_bp_is_more_robust_than_clean_bp() {
    let data = bio_data::load("embedded", None).expect("embedded data");
    let mut seen = data.train.take(TRAIN_IMAGES).labels;
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), data.classes, "the training images hold every class");
    for (optimizer, rate) in [(Optimizer::Adam, 3e-3), (Optimizer::Momentum { momentum: 0.9 }, 0.05)] {
        let (clean_acc, clean_robust) = clean_and_robust(&trained(&data, optimizer, rate, 0.0), &data);
        let (adv_acc, adv_robust) = clean_and_robust(&trained(&data, optimizer, rate, 0.1), &data);
        eprintln!(
            "{optimizer:?}: clean training {clean_acc:.3} clean / {clean_robust:.3} PGD; \
             adversarial {adv_acc:.3} / {adv_robust:.3}"
        );
        assert!(clean_acc > 0.6 && adv_acc > 0.4, "{optimizer:?}: both learn ({clean_acc}, {adv_acc})");
        assert!(
            adv_robust > clean_robust + 0.2,
            "{optimizer:?}: adversarial training is not more robust ({adv_robust} vs {clean_robust})"
        );
    }
}
