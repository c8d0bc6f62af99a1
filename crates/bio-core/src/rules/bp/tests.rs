use super::params::{BpConfig, BpParams, Optimizer};
use super::rule::BackpropRule;
use crate::backend::ReferenceBackend;
use crate::error::CoreError;
use crate::rules::test_util::{check_resume, train, two_blobs};
use crate::rules::{LearningRule, Settings, config_from_settings};

type Ref = ReferenceBackend;

fn settings(pairs: &[(&str, serde_json::Value)]) -> Settings {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn adversarial(eps: f32, steps: usize, optimizer: Optimizer, learning_rate: f32) -> BpConfig {
    BpParams { hidden: vec![6], optimizer, learning_rate, adversarial_eps: eps, adversarial_steps: steps }
        .check()
        .expect("valid")
}

#[test]
fn adversarial_settings_parse_and_refuse_naming_the_flag() {
    let c = config_from_settings::<BackpropRule<Ref>>(&[8], &Settings::new()).expect("defaults");
    assert_eq!((c.adversarial_eps, c.adversarial_steps), (0.0, 10), "clean training by default");
    let given = settings(&[("adversarial-eps", serde_json::json!(0.1)), ("adversarial-steps", serde_json::json!(7))]);
    let c = config_from_settings::<BackpropRule<Ref>>(&[8], &given).expect("valid");
    assert_eq!((c.adversarial_eps, c.adversarial_steps), (0.1, 7));
    // With momentum too.
    let given = settings(&[("optimizer", serde_json::json!("momentum")), ("adversarial-eps", serde_json::json!(0.05))]);
    let c = config_from_settings::<BackpropRule<Ref>>(&[8], &given).expect("valid");
    assert_eq!((c.optimizer, c.adversarial_eps), (Optimizer::Momentum { momentum: 0.9 }, 0.05));
    // Clean training needs no step.
    let given = settings(&[("adversarial-steps", serde_json::json!(0))]);
    assert!(config_from_settings::<BackpropRule<Ref>>(&[8], &given).is_ok());
    for (pairs, flag) in [
        (vec![("adversarial-eps", serde_json::json!(-0.1))], "adversarial-eps"),
        (
            vec![("adversarial-eps", serde_json::json!(0.1)), ("adversarial-steps", serde_json::json!(0))],
            "adversarial-steps",
        ),
        (vec![("adversarial-steps", serde_json::json!(-1))], "adversarial-steps"),
        (vec![("adversarial-eps", serde_json::json!("a lot"))], "adversarial-eps"),
    ] {
        let err = config_from_settings::<BackpropRule<Ref>>(&[8], &settings(&pairs)).unwrap_err();
        assert!(matches!(&err, CoreError::InvalidParam { name, .. } if name == flag), "{pairs:?}: {err}");
        assert_eq!(err.to_string().lines().count(), 1, "{err}");
    }
}

/// A `bp` configuration saved before adversarial training existed reads as clean training.
#[test]
fn configs_without_the_adversarial_fields_load_as_clean_training() {
    let today = serde_json::to_value(BpParams { hidden: vec![8], ..Default::default() }.check().unwrap()).unwrap();
    let mut old = today.as_object().expect("a config is an object").clone();
    assert!(old.remove("adversarial_eps").is_some() && old.remove("adversarial_steps").is_some());
    let config: BpConfig = serde_json::from_value(serde_json::Value::Object(old)).expect("an old config loads");
    assert_eq!((config.adversarial_eps, config.adversarial_steps), (0.0, 10));
    assert_eq!(config.hidden, [8]);
}

#[test]
fn adversarial_training_resumes_bit_for_bit() {
    for (optimizer, rate) in [(Optimizer::Adam, 0.01), (Optimizer::Momentum { momentum: 0.9 }, 0.05)] {
        let make = || BackpropRule::<Ref>::with_seed(adversarial(0.1, 3, optimizer, rate), 4);
        check_resume(make, 16, 4, 0);
        check_resume(make, 16, 4, 2);
        check_resume(make, 16, 4, 4);
    }
    // A clean rule's state does not resume an adversarial run, whose random starts it lacks.
    let b = ReferenceBackend;
    let clean = BackpropRule::<Ref>::with_seed(adversarial(0.0, 3, Optimizer::Adam, 0.01), 4);
    let net = clean.init_model(&b, 16, 2, 1);
    let mut adv = BackpropRule::<Ref>::with_seed(adversarial(0.1, 3, Optimizer::Adam, 0.01), 4);
    assert!(matches!(adv.restore_state(&net, clean.save_state(&net)), Err(CoreError::Incompatible(_))));
}

/// Adversarial training learns the two blobs with either optimizer; it trains on other inputs than
/// clean training (the parameters differ), and its random starts follow the seed.
#[test]
fn adversarial_training_learns_and_differs_from_clean_training() {
    let b = ReferenceBackend;
    let (x, labels) = two_blobs(16, 16, 3);
    for (optimizer, rate) in [(Optimizer::Adam, 0.02), (Optimizer::Momentum { momentum: 0.9 }, 0.05)] {
        let run = |eps: f32, seed: u64| {
            let mut rule = BackpropRule::<Ref>::with_seed(adversarial(eps, 3, optimizer, rate), seed);
            let mut net = rule.init_model(&b, 16, 2, 2);
            train(&mut rule, &mut net, &x, &labels, 15)
        };
        let adv = run(0.1, 1);
        let losses: Vec<f32> = adv.iter().map(|(l, _)| *l).collect();
        assert!(losses[14] < 0.5 * losses[0], "{optimizer:?}: {losses:?}");
        let last = |h: &[(f32, crate::model::Params)]| h.last().expect("trained").1.clone();
        assert_ne!(last(&adv), last(&run(0.0, 1)), "{optimizer:?}: adversarial = clean");
        assert_ne!(last(&adv), last(&run(0.1, 2)), "{optimizer:?}: the seed does not move the starts");
        assert_eq!(last(&run(0.0, 1)), last(&run(0.0, 2)), "{optimizer:?}: clean training depends on the rule seed");
    }
}
