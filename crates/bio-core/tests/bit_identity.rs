//! Refactors that must not change a single bit: a few epochs of every registered rule on seeded
//! data, hashed (every parameter's bits, every loss's bits and the rule's saved state, i.e. what a
//! checkpoint holds).
//!
//! The expected hashes were computed by this very test run on main's code (commit ed9770e, and
//! again on 151e86d, which only moved code into rule folders: the same hashes) on the reference
//! backend, x86-64 Linux. They pin results only as far as the platform's `powf`/`exp` are the same; on another
//! platform a mismatch may be the math library, not the code. When a change is *meant* to alter a
//! rule's results, update its hash in the same commit and say why.

use bio_core::rules::{LearningRule, Rule, RuleVisitor, Settings, config_from_settings, dispatch};
use bio_core::{Classifier, Matrix, ReferenceBackend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= byte as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// 4 epochs of 2 batches (the frozen-feature rules: 2 unsupervised epochs, then 2 of the readout;
/// `bio`: plastic, then consolidation), at the rule's defaults on one hidden layer of 20 units,
/// 6×6 inputs, 3 classes, with these settings; the hash of what it leaves.
struct Run(Settings);

impl RuleVisitor<ReferenceBackend> for Run {
    type Output = u64;
    fn visit<R: Rule + LearningRule<ReferenceBackend>>(self) -> u64 {
        let b = ReferenceBackend;
        let config = config_from_settings::<R>(&[20], &self.0).expect("valid settings");
        let mut rule = R::new(config, 5);
        let mut model = rule.init_model(&b, 36, 3, 11);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let batches: Vec<(Matrix, Vec<usize>)> = (0..2)
            .map(|k| {
                let labels: Vec<usize> = (0..12).map(|i| (i + k) % 3).collect();
                let x = Matrix::from_fn(12, 36, |i, j| {
                    let lit = j % 3 == labels[i];
                    if lit { rng.random_range(0.5f32..1.0) } else { rng.random_range(0.0f32..0.3) }
                });
                (x, labels)
            })
            .collect();
        let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
        for epoch in 0..4 {
            rule.start_epoch(epoch, 4);
            for (x, labels) in &batches {
                let report = rule.train_batch(&mut model, x, labels).expect("finite");
                hash.write(&report.loss.to_bits().to_le_bytes());
            }
        }
        for (name, m) in model.to_params().tensors {
            hash.write(name.as_bytes());
            for i in 0..m.rows() {
                for v in m.row(i) {
                    hash.write(&v.to_bits().to_le_bytes());
                }
            }
        }
        let state = rule.save_state(&model);
        hash.write(state.rule.as_bytes());
        hash.write(&state.bytes);
        hash.0
    }
}

#[test]
fn every_rule_trains_to_the_same_bits_as_before_the_refactor() {
    let expected: &[(&str, u64)] = &[
        ("bio", 0xfa0cadb070bdd341),
        ("bp", 0x2b79901f3b26582a),
        ("kh", 0xf50f35792bc1412d),
        ("softhebb", 0xdb93b06a508c16bb),
        ("conv", 0xec8fd9261ba53cf7),
        ("bpconv", 0x4aabd148db1264a2),
        ("bp momentum", 0x617a684b680a3be2),
    ];
    let mut got: Vec<(&str, u64)> = bio_core::rules::rules()
        .iter()
        .map(|r| (r.name, dispatch(r.name, Run(Settings::new())).expect("registered")))
        .collect();
    let momentum = Settings::from([("optimizer".to_string(), serde_json::json!("momentum"))]);
    got.push(("bp momentum", dispatch("bp", Run(momentum)).expect("registered")));
    for (name, hash) in &got {
        println!("(\"{name}\", {hash:#018x}),"); // the line to paste when a change is meant
    }
    for (name, want) in expected {
        let hash = got.iter().find(|(n, _)| n == name).expect("still registered").1;
        assert_eq!(hash, *want, "`{name}` no longer trains to the same bits");
    }
}
