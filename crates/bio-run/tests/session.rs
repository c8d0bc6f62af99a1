//! The session adds bookkeeping, not math: its checkpoints are bit-identical to the bare training
//! loop of `bio-core`; a stopped session resumes to the same bits; observers see events in order;
//! bad settings are refused before any disk work.

use std::path::Path;

use bio_core::train::train_epoch;
use bio_core::{BackpropRule, BioRule, LearningRule, Params, SavedModel};
use bio_cpu::CpuBackend;
use bio_run::{Event, Outcome, RuleName, RuleOptions, Session, SessionSpec};
use serde_json::{Value, json};

fn spec(rule: RuleName, options: RuleOptions, out: Option<&Path>) -> SessionSpec {
    let mut spec = SessionSpec { rule, options, out: out.map(Path::to_path_buf), ..SessionSpec::default() };
    spec.data.dataset = "embedded".into();
    spec
}

fn small(epochs: usize) -> RuleOptions {
    RuleOptions { hidden: vec![40], epochs: Some(epochs), ..RuleOptions::default() }
}

/// `options` with the rule settings `settings` (by flag).
fn with(mut options: RuleOptions, settings: &[(&str, Value)]) -> RuleOptions {
    options.settings.0.extend(settings.iter().map(|(k, v)| (k.to_string(), v.clone())));
    options
}

/// The model after `epochs` epochs of the plain `bio-core` loop, with the session's shuffling seeds.
fn bare_loop(rule: RuleName, options: &RuleOptions) -> SavedModel {
    let b = CpuBackend::new();
    let data = bio_data::load("embedded", None).unwrap();
    let epochs = options.epochs.unwrap();
    let batches = |e: usize| {
        data.train.batches(options.batch, Some(options.seed.wrapping_add(e as u64))).map(|bt| (bt.images, bt.labels))
    };
    if rule == RuleName::BIO {
        {
            let mut r = BioRule::new(options.config::<BioRule>().unwrap(), options.seed);
            let mut m = r.init_model(&b, data.input_dim(), data.classes, options.seed);
            for e in 0..epochs {
                r.start_epoch(e, epochs);
                train_epoch(&b, &mut r, &mut m, batches(e), |_| {}).unwrap();
            }
            m.to_saved()
        }
    } else {
        {
            let config = options.config::<BackpropRule<CpuBackend>>().unwrap();
            let mut r = BackpropRule::with_seed(config, options.seed);
            let mut m = r.init_model(&b, data.input_dim(), data.classes, options.seed);
            for e in 0..epochs {
                r.start_epoch(e, epochs);
                train_epoch(&b, &mut r, &mut m, batches(e), |_| {}).unwrap();
            }
            m.to_saved()
        }
    }
}

fn assert_bits_equal(a: &Params, b: &Params, what: &str) {
    assert_eq!(a.tensors.len(), b.tensors.len(), "{what}: tensor count");
    for ((na, ma), (nb, mb)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(na, nb, "{what}: tensor order");
        let differ = ma.as_slice().iter().zip(mb.as_slice()).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
        assert_eq!(differ, 0, "{what}: {differ} entries of {na} differ");
    }
}

#[test]
fn sessions_train_exactly_what_the_bare_loop_trains() {
    let configs = [
        ("bio defaults", RuleName::BIO, small(2)),
        ("bio inhibitory", RuleName::BIO, with(small(2), &[("competition", json!("inhibitory"))])),
        (
            "bio mixed-sign",
            RuleName::BIO,
            with(small(2), &[("hidden-init", json!("mixed")), ("readout-init", json!("mixed"))]),
        ),
        ("bp", RuleName::BP, small(2)),
        (
            "bp adversarial",
            RuleName::BP,
            with(small(2), &[("adversarial-eps", json!(0.1)), ("adversarial-steps", json!(2))]),
        ),
    ];
    for (what, rule, options) in configs {
        let dir = tempfile::tempdir().unwrap();
        let trained =
            Session::new(spec(rule.clone(), options.clone(), Some(dir.path()))).unwrap().run(&mut ()).unwrap();
        let trained = trained.finished().unwrap();
        let expected = bare_loop(rule, &options);
        assert_bits_equal(trained.model.params(), expected.params(), what);
        let saved = bio_data::load_model(dir.path()).unwrap();
        assert_bits_equal(saved.model.params(), expected.params(), &format!("{what}, model.ckpt"));
        assert_eq!(saved.epochs, 2);
        for file in ["config.json", "metrics.json", "state.ckpt"] {
            assert!(dir.path().join(file).exists(), "{what}: {file} missing");
        }
    }
}

#[test]
fn a_stopped_session_resumes_to_the_same_bits() {
    let adversarial = with(small(2), &[("adversarial-eps", json!(0.1)), ("adversarial-steps", json!(2))]);
    for (what, rule, options) in [("bio", RuleName::BIO, small(2)), ("bp adversarial", RuleName::BP, adversarial)] {
        let straight_dir = tempfile::tempdir().unwrap();
        let straight = Session::new(spec(rule.clone(), options.clone(), Some(straight_dir.path()))).unwrap();
        let straight = straight.run(&mut ()).unwrap().finished().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let session = Session::new(spec(rule, options, Some(dir.path()))).unwrap();
        let stop = session.stop_flag();
        let mut stop_at = |e: &Event| {
            if let Event::Batch { done_batches: 70, .. } = e {
                stop.stop();
            }
        };
        match session.run(&mut stop_at).unwrap() {
            // 60 batches per epoch on the embedded subset: stopped 10 batches into the second epoch.
            Outcome::Interrupted { epochs_done, batches_done, checkpoint } => {
                assert_eq!((epochs_done, batches_done), (1, 10), "{what}");
                assert_eq!(checkpoint.as_deref(), Some(dir.path()), "{what}");
            }
            Outcome::Finished(_) => panic!("{what}: the stop flag was ignored"),
        }
        assert!(!dir.path().join("metrics.json").exists(), "{what}: an interrupted run has no final metrics");
        let resumed = Session::resume(dir.path()).unwrap();
        assert_eq!(resumed.resumed_state().map(|s| (s.epoch, s.progress.batches)), Some((1, 10)), "{what}");
        let resumed = resumed.run(&mut ()).unwrap().finished().unwrap();
        assert_bits_equal(resumed.model.params(), straight.model.params(), &format!("{what}, resumed"));
        assert_eq!(resumed.metrics.test_accuracy, straight.metrics.test_accuracy, "{what}");
    }
}

#[test]
fn observers_see_the_run_in_order() {
    let mut seen = Vec::new();
    let mut record = |e: &Event| {
        seen.push(match e {
            Event::Started { total_batches, done_batches, .. } => format!("start {total_batches} {done_batches}"),
            Event::Batch { .. } => "batch".into(),
            Event::CheckpointWritten { epoch, batch, .. } => format!("checkpoint {epoch}.{batch}"),
            Event::ValidationMeasured { epoch, .. } => format!("validation {epoch}"),
            Event::EpochEnded { log, epochs } => format!("epoch {}/{epochs}", log.epoch),
            Event::Evaluating => "evaluating".into(),
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(RuleName::BP, small(2), Some(dir.path()));
    s.validation = 600;
    s.checkpoint_every = Some(50);
    Session::new(s).unwrap().run(&mut record).unwrap().finished().unwrap();
    // 5400 training images after the hold-out: 54 batches per epoch; checkpoints at batches 50 and 100.
    let batches = seen.iter().filter(|e| *e == "batch").count();
    assert_eq!(batches, 108);
    seen.retain(|e| e != "batch");
    assert_eq!(
        seen,
        [
            "start 108 0",
            "checkpoint 1.50",
            "validation 1",
            "epoch 1/2",
            "checkpoint 2.46",
            "validation 2",
            "epoch 2/2",
            "evaluating"
        ]
    );
}

#[test]
fn bad_settings_are_refused_before_any_disk_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let cases = [
        (RuleOptions { epochs: Some(0), ..small(1) }, "epochs"),
        (RuleOptions { batch: 0, ..small(1) }, "batch"),
        (with(small(1), &[("hebbian-rate", json!(-1.0))]), "hebbian"),
    ];
    for (options, flag) in cases {
        let err = Session::new(spec(RuleName::BIO, options, Some(&out))).err().expect("refused");
        assert!(err.to_string().contains(flag), "{err}");
        assert!(!out.exists(), "{flag}: the output directory was created");
    }
    let mut s = spec(RuleName::BIO, small(1), Some(&out));
    s.classes = Some("12".into());
    assert!(Session::new(s).err().unwrap().to_string().contains("classes"));
    assert!(!out.exists());
}

#[test]
fn config_json_is_the_spec_and_reads_old_spellings() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(RuleName::BIO, small(1), Some(dir.path()));
    s.options.settings.0.insert("ablate".into(), json!(["sign-readout"]));
    Session::new(s.clone()).unwrap().run(&mut ()).unwrap().finished().unwrap();
    let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(text.contains("\"rule\": \"bio\"") && text.contains("\"sign-readout\""), "{text}");
    // config.json holds every setting the run used, defaults included (issue 31, item 7).
    let json: Value = serde_json::from_str(&text).unwrap();
    let args = json["rule_args"].as_object().unwrap();
    assert!(args.values().all(|v| !v.is_null()) && args["hebbian-rate"] == json!(0.0003), "{text}");
    s.resolve().unwrap();
    let back: SessionSpec = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    // Files written before the session library spelled variants as Rust does.
    let old = text
        .replace("\"bio\"", "\"Bio\"")
        .replace("\"sign-readout\"", "\"SignReadout\"")
        .replace("\"kwta\"", "\"Kwta\"");
    assert_ne!(old, text);
    let mut back: SessionSpec = serde_json::from_str(&old).unwrap();
    back.resolve().unwrap();
    assert_eq!(back, s);
}

#[test]
fn each_epoch_logs_the_synapses_structural_plasticity_kept() {
    // A high pruning threshold and a fast Hebbian rate, so that synapses are really removed.
    let pruning = with(small(2), &[("prune-below", json!(0.5)), ("hebbian-rate", json!(0.01))]);
    let trained = Session::new(spec(RuleName::BIO, pruning, None)).unwrap().run(&mut ()).unwrap();
    let trained = trained.finished().unwrap();
    let kept: Vec<f32> = trained.metrics.history.iter().map(|e| e.synapses_kept.expect("bio has masks")).collect();
    assert_eq!(kept.len(), 2);
    let last = bio_eval::synapses_kept(trained.model.params()).unwrap() as f32;
    assert_eq!(kept[1], last, "the last epoch's figure is the saved model's");
    assert!(last < 1.0 && last > 0.0, "{kept:?}");
    assert!(kept[1] <= kept[0], "without regrowth pruned synapses stay pruned: {kept:?}");

    let bp = Session::new(spec(RuleName::BP, small(1), None)).unwrap().run(&mut ()).unwrap();
    assert!(bp.finished().unwrap().metrics.history.iter().all(|e| e.synapses_kept.is_none()), "bp has no masks");
}

#[test]
fn an_unknown_setting_is_a_typed_refusal_with_a_suggestion() {
    let e = SessionSpec::of("bio", "embedded").setting("hebian-rate", 0.1).expect_err("a misspelt setting is refused");
    let text = format!("{e:#}");
    assert!(text.contains("`hebian-rate`") && text.contains("did you mean `hebbian-rate`?"), "{text}");
    assert_eq!(bio_run::error::error_kind(&e), bio_run::error::ErrorKind::Invalid, "{text}");
    // Nothing close: no suggestion, still the typed refusal.
    let e = SessionSpec::of("bio", "embedded").setting("zzzzzzzzzz", 1).expect_err("refused");
    assert!(!format!("{e:#}").contains("did you mean"), "{e:#}");
}

/// `metrics.json`'s `hidden` is the trained model's hidden widths: for a conv model each layer's
/// pooled map, flattened, not the `--hidden` default (2000) that the conv rules do not use; for a
/// dense rule `--hidden` itself.
#[test]
fn metrics_give_the_trained_model_s_hidden_widths() {
    let dir = tempfile::tempdir().unwrap();
    let conv = with(
        RuleOptions { epochs: Some(2), ..RuleOptions::default() },
        &[("conv", json!("4:3")), ("conv-pool", json!("2:2:0"))],
    );
    let mut s = spec(RuleName::new("conv"), conv, Some(dir.path()));
    s.classes = Some("0,1".into());
    let trained = Session::new(s).unwrap().run(&mut ()).unwrap();
    // 28×28 images, 4 channels, pooled 2:2:0 to 14×14: 14·14·4 = 784.
    assert_eq!(trained.finished().unwrap().metrics.hidden, vec![784]);
    let text = std::fs::read_to_string(dir.path().join("metrics.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["hidden"], json!([784]), "{text}");
    // The checkpoint holds the same widths (what `bio inspect`, the export and Python show), and
    // so does the model loaded from it.
    let saved = bio_data::load_model(dir.path()).unwrap().model;
    assert_eq!(saved.hidden(), &[784]);
    let loaded = saved.load(&bio_core::ReferenceBackend).unwrap();
    assert_eq!(loaded.to_saved().hidden(), &[784]);
    // A checkpoint written before the widths were stored (holding `--hidden`) loads with them too.
    let mut old = saved.clone();
    old.hidden = vec![2000];
    assert_eq!(old.load(&bio_core::ReferenceBackend).unwrap().to_saved().hidden(), &[784]);
    assert_eq!(old.widths().unwrap(), vec![784]);

    let bp = Session::new(spec(RuleName::BP, small(1), None)).unwrap().run(&mut ()).unwrap();
    assert_eq!(bp.finished().unwrap().metrics.hidden, vec![40]);
}
