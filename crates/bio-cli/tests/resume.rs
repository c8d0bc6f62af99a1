//! Resumable training and determinism: a run killed with SIGKILL after a mid-run checkpoint resumes
//! to bit-identical weights; the rule state round-trips through a checkpoint at the library level;
//! the same seed gives the same bits; bad resumes fail with one line and keep what was saved.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{bio, fails_with_one_line};
use std::time::{Duration, Instant};

use bio_core::train::{EpochProgress, train_epoch_from};
use bio_core::{
    AnyModel, Backend, BackpropRule, BioParams, BioRule, BpParams, LearningRule, Params, SavedModel, TensorStore,
};
use bio_cpu::CpuBackend;
use bio_data::{Dataset, TrainingState};

fn run_args<'a>(rule: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["train", "--rule", rule, "--dataset", "embedded", "--hidden", "50", "--epochs", "2", "--quiet", "--out", out]
}

fn final_params(dir: &Path) -> Params {
    bio_data::load_model(dir).expect("model.ckpt loads").model.params().clone()
}

/// Bit-for-bit equality of two parameter sets (names, shapes and every `f32`'s bits).
fn assert_bits_equal(a: &Params, b: &Params, what: &str) {
    assert_eq!(a.tensors.len(), b.tensors.len(), "{what}: tensor count");
    for ((na, ma), (nb, mb)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(na, nb, "{what}: tensor order");
        assert_eq!(ma.shape(), mb.shape(), "{what}: shape of {na}");
        let differ = ma.as_slice().iter().zip(mb.as_slice()).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
        assert_eq!(differ, 0, "{what}: {differ} entries of {na} differ");
    }
}

fn kill_mid_run_and_resume(rule: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let out = bio(&run_args(rule, straight.to_str().unwrap()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let killed = tmp.path().join("killed");
    let mut args = run_args(rule, killed.to_str().unwrap());
    args.extend(["--checkpoint-every", "7"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_bio"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the bio binary starts");
    let state_file = killed.join(bio_data::model_dir::STATE_FILE);
    let deadline = Instant::now() + Duration::from_secs(120);
    // Poll for the first mid-run checkpoint, then SIGKILL at once.
    while !state_file.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before writing a mid-run checkpoint");
        assert!(Instant::now() < deadline, "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_micros(200));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let state: TrainingState = bio_data::load_state(&killed).expect("the checkpoint is complete");
    assert!(state.epoch < 2, "killed after training ended (epoch {})", state.epoch);

    let out = bio(&["train", "--resume", killed.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_bits_equal(&final_params(&straight), &final_params(&killed), rule);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["history"].as_array().unwrap().len(), 2);
}

#[test]
fn bio_run_killed_mid_run_resumes_bit_identically() {
    kill_mid_run_and_resume("bio");
}

#[test]
fn bp_run_killed_mid_run_resumes_bit_identically() {
    kill_mid_run_and_resume("bp");
}

#[test]
fn bad_resumes_fail_and_keep_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let d = dir.to_str().unwrap();
    let out = bio(&run_args("bio", d));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read_all =
        || ["model.ckpt", "state.ckpt", "config.json", "metrics.json"].map(|f| std::fs::read(dir.join(f)).unwrap());
    let before = read_all();

    // A flag that would change the run conflicts with the saved one.
    fails_with_one_line(&["train", "--resume", d, "--hidden", "60"], "hidden");
    fails_with_one_line(&["train", "--resume", d, "--seed", "3"], "seed");
    fails_with_one_line(&["train", "--resume", d, "--rule", "bp"], "rule");
    assert_eq!(read_all(), before, "a refused resume changed the directory");

    // A finished run is not resumed: nothing to do, said in one line, and nothing rewritten
    // (`metrics.json` keeps its per-epoch history, `synapses_kept` included).
    fails_with_one_line(&["train", "--resume", d], "holds a finished run (2 of 2 epochs trained)");
    assert_eq!(read_all(), before, "a refused resume changed the directory");
    assert!(String::from_utf8_lossy(&before[3]).contains("synapses_kept"));

    // A checkpoint of another architecture (config.json edited to another width), in a run killed
    // before its metrics were written (which may be resumed).
    let metrics = dir.join("metrics.json");
    std::fs::rename(&metrics, tmp.path().join("metrics.json")).unwrap();
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let edited = config.replacen("\"hidden\": [\n      50\n    ]", "\"hidden\": [\n      60\n    ]", 1);
    assert_ne!(config, edited, "config.json layout changed: {config}");
    std::fs::write(dir.join("config.json"), &edited).unwrap();
    fails_with_one_line(&["train", "--resume", d], "hidden");
    std::fs::write(dir.join("config.json"), &config).unwrap();
    std::fs::rename(tmp.path().join("metrics.json"), &metrics).unwrap();

    // A checkpoint of another format version.
    let mut state = std::fs::read(dir.join("state.ckpt")).unwrap();
    let version = state[8];
    state[8] = 99;
    std::fs::write(dir.join("state.ckpt"), &state).unwrap();
    fails_with_one_line(&["train", "--resume", d], "version");
    state[8] = version;
    // A corrupt checkpoint.
    let last = state.len() - 1;
    state[last] ^= 0xff;
    std::fs::write(dir.join("state.ckpt"), &state).unwrap();
    fails_with_one_line(&["train", "--resume", d], "checksum");
    state[last] ^= 0xff;
    std::fs::write(dir.join("state.ckpt"), &state).unwrap();
    assert_eq!(read_all(), before, "a refused resume changed the directory");

    // A directory that is not a run.
    fails_with_one_line(&["train", "--resume", tmp.path().join("nothing").to_str().unwrap()], "config.json");
    // A finished run killed before its metrics.json was written: resuming it writes them only.
    std::fs::remove_file(&metrics).unwrap();
    let out = bio(&["train", "--resume", d, "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_all()[0], before[0]);
}

#[test]
fn an_unfinished_run_is_reported_as_unfinished() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let d = dir.to_str().unwrap();
    let out = bio(&run_args("bio", d));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let finished = bio(&["eval", "accuracy", "--model", d, "--limit", "50"]);
    assert!(!String::from_utf8_lossy(&finished.stderr).contains("UNFINISHED"));
    // The directory of a 3-epoch run stopped after epoch 2 (Ctrl-C, or a training piped into
    // `head`): its config asks for 3 epochs, the checkpoint has 2, and there are no metrics.
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["rule_args"]["epochs"] = 3.into();
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    std::fs::remove_file(dir.join("metrics.json")).unwrap();
    for args in [
        &["eval", "accuracy", "--model", d, "--limit", "50"][..],
        &["eval", "metrics", "--model", d, "--limit", "50"],
        &["inspect", "--model", d],
        &["inspect", "--model", d, "--json"],
    ] {
        let out = bio(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("UNFINISHED run: 2 of 3 epochs trained"), "{args:?}: {err}");
    }
}

#[test]
fn absurd_width_is_refused_before_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("huge");
    let args = ["train", "--dataset", "embedded", "--hidden", "10000000", "--out", out.to_str().unwrap()];
    if bio_data::available_memory().is_some() {
        fails_with_one_line(&args, "`hidden`");
        let err = String::from_utf8_lossy(&bio(&args).stderr).into_owned();
        // The message carries the estimate: the refusal came from it, before any allocation.
        assert!(err.contains("GiB"), "{err}");
    }
}

// ---- library level -------------------------------------------------------------------------

fn dataset() -> Dataset {
    bio_data::load("embedded", None).expect("the embedded subset loads")
}

/// Trains `epochs` epochs of batches of 100, checkpointing (rule state and model through the real
/// checkpoint encoding) after `stop_after` batches and continuing in fresh objects when given.
fn train<B: Backend, R: LearningRule<B>>(
    b: &B,
    data: &Dataset,
    make_rule: &dyn Fn() -> R,
    to_saved: &dyn Fn(&R::Model) -> SavedModel,
    from_saved: &dyn Fn(AnyModel<B>) -> R::Model,
    stop_after: Option<usize>,
) -> Params {
    let (epochs, seed, batch) = (2, 5u64, 100);
    let mut rule = make_rule();
    let mut model = rule.init_model(b, data.input_dim(), data.classes, seed);
    let mut done = 0;
    for epoch in 0..epochs {
        rule.start_epoch(epoch, epochs);
        let mut progress = EpochProgress::default();
        let mut batches = data.train.batches(batch, Some(seed + epoch as u64)).map(|bt| (bt.images, bt.labels));
        loop {
            let finished = train_epoch_from(b, &mut rule, &mut model, &mut batches, &mut progress, |_, _, _, _| {
                done += 1;
                if Some(done) == stop_after {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })
            .expect("training works");
            if finished {
                break;
            }
            // Checkpoint, drop everything, restore into fresh objects.
            let bytes = bio_data::encode_checkpoint(&(rule.save_state(&model), to_saved(&model)));
            drop((rule, model));
            let (state, saved): (bio_core::rules::RuleState, SavedModel) =
                bio_data::decode_checkpoint(&bytes, "memory").expect("decodes");
            model = from_saved(saved.load(b).expect("loads"));
            rule = make_rule();
            rule.restore_state(&model, state).expect("restores");
        }
    }
    to_saved(&model).params().clone()
}

fn bio_run(b: &CpuBackend, data: &Dataset, stop_after: Option<usize>) -> Params {
    let config = BioParams { hidden: vec![40], ..BioParams::default() }.check().unwrap();
    train(
        b,
        data,
        &|| BioRule::new(config.clone(), 5),
        &|m: &bio_core::BioNet<CpuBackend>| m.to_saved(),
        &|m| m.downcast_ref::<bio_core::BioNet<CpuBackend>>().expect("a bio model").clone(),
        stop_after,
    )
}

fn bp_run(b: &CpuBackend, data: &Dataset, stop_after: Option<usize>) -> Params {
    let config = BpParams { hidden: vec![40], ..BpParams::default() }.check().unwrap();
    train(
        b,
        data,
        &|| BackpropRule::new(config.clone()),
        &|m: &bio_core::BpNet<CpuBackend>| m.to_saved(),
        &|m| m.downcast_ref::<bio_core::BpNet<CpuBackend>>().expect("a bp model").clone(),
        stop_after,
    )
}

#[test]
fn rule_state_round_trips_through_a_checkpoint() {
    let (b, data) = (CpuBackend::new(), dataset());
    let straight = bio_run(&b, &data, None);
    // Mid first epoch, and mid second epoch (after the epoch-start regrowth has been used).
    for stop in [13, 77] {
        assert_bits_equal(&straight, &bio_run(&b, &data, Some(stop)), &format!("bio, stopped after {stop}"));
    }
    let straight = bp_run(&b, &data, None);
    for stop in [1, 13, 77] {
        assert_bits_equal(&straight, &bp_run(&b, &data, Some(stop)), &format!("bp, stopped after {stop}"));
    }
}

#[test]
fn same_seed_backend_and_threads_give_identical_bits() {
    let data = dataset();
    for threads in [1, 2] {
        let b = CpuBackend::with_threads(threads).unwrap();
        assert_bits_equal(&bio_run(&b, &data, None), &bio_run(&b, &data, None), "bio twice");
        assert_bits_equal(&bp_run(&b, &data, None), &bp_run(&b, &data, None), "bp twice");
    }
}

#[test]
fn a_state_of_the_other_rule_is_refused() {
    let b = CpuBackend::new();
    let data = dataset();
    let bio_rule = BioRule::new(BioParams { hidden: vec![8], ..BioParams::default() }.check().unwrap(), 0);
    let bio_model = bio_rule.init_model(&b, data.input_dim(), data.classes, 0);
    let mut bp_rule =
        BackpropRule::<CpuBackend>::new(BpParams { hidden: vec![8], ..BpParams::default() }.check().unwrap());
    let bp_model = bp_rule.init_model(&b, data.input_dim(), data.classes, 0);
    let err = bp_rule.restore_state(&bp_model, bio_rule.save_state(&bio_model)).unwrap_err();
    assert!(err.to_string().contains("bio"), "{err}");
    // Moments of another width are refused too.
    let mut other =
        BackpropRule::<CpuBackend>::new(BpParams { hidden: vec![9], ..BpParams::default() }.check().unwrap());
    let other_model = other.init_model(&b, data.input_dim(), data.classes, 0);
    let x = b.upload(&data.train.images.select_rows(&[0, 1]));
    other.train_batch(&mut (other_model.clone()), &x, &data.train.labels[..2]).unwrap();
    let mut trained = other_model.clone();
    other.train_batch(&mut trained, &x, &data.train.labels[..2]).unwrap();
    let err = bp_rule.restore_state(&bp_model, other.save_state(&trained)).unwrap_err();
    assert!(err.to_string().contains("moment"), "{err}");
}
