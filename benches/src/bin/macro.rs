//! Macro benchmarks of biorule on the CPU backend: a calibration GEMM, one training epoch of `bio` and
//! of `bp` (Adam), PGD-40 over the test set, the episodic few-shot protocol and peak memory, each with
//! its time, samples per second, achieved GEMM GFLOP/s and fraction of the calibration rate.
//!
//! Each rate is also given as a fraction of an honest ceiling: the host's theoretical FP32 peak
//! (cores × f32 lanes × FMA units × 2 × measured clock, `bio_benches::host`) or the best GEMM
//! measured in the run, whichever is higher. The two GEMM kernels of `bio-cpu` are compared
//! single-threaded on the training shapes (`--no-kernels` skips that).
//!
//! The conv budget (issue 33): one epoch of `conv --conv 96:5` (its Hebbian phase and its readout
//! phase, timed apart) against the `bio` MLP epoch on the same data and threads, their ratios, and a
//! per-part breakdown of one conv step; `--conv` runs only that (with the calibration and ceiling).
//!
//! `cargo run --release -p bio-benches --bin macro -- [--quick] [--scaling] [--threads] [--conv]
//! [--subset N] [--no-kernels] [--out FILE]`; `cargo xtask bench` runs it after the criterion
//! benches (`cargo xtask bench --conv`: the conv budget alone). The FLOP formulas are in
//! `bio_benches::flops`. Nothing here asserts a timing.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use bio_benches::host::{self, Isa};
use bio_benches::{calibration_gflops, flops, peak_rss_bytes, time_gemm, uniform};
use bio_core::PlasticityOps;
use bio_core::model::{one_hot, softmax_cross_entropy};
use bio_core::rules::{
    ConvConfig, ConvNet, ConvParams, ConvRule, FeatureLayer, Rule, conv_hebbian_step, conv_hebbian_terms,
    hebbian_drive, homeostasis, plasticity_settings, readout_update,
};
use bio_core::train::train_epoch;
use bio_core::{
    BackpropRule, BioNet, BioParams, BioRule, BpParams, ElementwiseOps, LearningRule, Matrix, SurrogateBio, TensorStore,
};
use bio_cpu::{CpuBackend, GemmKernel};
use bio_data::{Dataset, Split};
use bio_eval::{
    AttackName, AttackParams, EnsembleParams, EpisodeParams, Helpers, Norm, episodic, robustness_curve, strongest,
};
use serde::{Deserialize, Serialize};

const CLASSES: usize = 10;
const BATCH: usize = 100;
const PGD_BATCH: usize = 500;

/// Options from the command line.
#[derive(Clone, Debug)]
struct Options {
    quick: bool,
    scaling: bool,
    threads: bool,
    subset: Option<usize>,
    out: Option<PathBuf>,
    no_fewshot: bool,
    no_kernels: bool,
    /// Only the conv budget (with the calibration and ceiling).
    conv: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        scaling: false,
        threads: false,
        subset: None,
        out: None,
        no_fewshot: false,
        no_kernels: false,
        conv: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--scaling" => o.scaling = true,
            "--threads" => o.threads = true,
            "--no-fewshot" => o.no_fewshot = true,
            "--no-kernels" => o.no_kernels = true,
            "--conv" => o.conv = true,
            "--subset" => {
                let v = args.next().ok_or("--subset needs a number")?;
                o.subset = Some(v.parse().map_err(|e| format!("--subset {v}: {e}"))?);
            }
            "--out" => o.out = Some(PathBuf::from(args.next().ok_or("--out needs a file")?)),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(o)
}

/// One measured workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Row {
    name: String,
    detail: String,
    seconds: f64,
    samples: usize,
    samples_per_s: f64,
    gemm_gflop: f64,
    gflops: f64,
    /// Achieved GEMM rate over the calibration rate.
    fraction_of_calibration: f64,
    /// Wall time over the time of the workload's GEMM FLOPs at the calibration rate.
    times_gemm_bound: f64,
    /// Achieved GEMM rate over the honest ceiling (filled in once the ceiling is known).
    #[serde(default)]
    fraction_of_ceiling: f64,
}

impl Row {
    fn new(name: &str, detail: String, seconds: f64, samples: usize, gemm_flops: f64, calibration: f64) -> Self {
        let gflops = gemm_flops / seconds / 1e9;
        Self {
            name: name.into(),
            detail,
            seconds,
            samples,
            samples_per_s: samples as f64 / seconds,
            gemm_gflop: gemm_flops / 1e9,
            gflops,
            fraction_of_calibration: gflops / calibration,
            times_gemm_bound: seconds / (gemm_flops / 1e9 / calibration),
            fraction_of_ceiling: 0.0,
        }
    }

    /// A workload timed without a GEMM count (its GEMM columns stay 0).
    fn timing_only(name: &str, detail: String, seconds: f64, samples: usize) -> Self {
        Self {
            name: name.into(),
            detail,
            seconds,
            samples,
            samples_per_s: samples as f64 / seconds,
            gemm_gflop: 0.0,
            gflops: 0.0,
            fraction_of_calibration: 0.0,
            times_gemm_bound: 0.0,
            fraction_of_ceiling: 0.0,
        }
    }
}

/// Per-batch time of each part of a `bio` step (the rule's mechanisms, called one by one).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Part {
    name: String,
    ms_per_batch: f64,
    fraction_of_step: f64,
}

/// One point of a scaling sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ScalePoint {
    width: usize,
    batch: usize,
    samples: usize,
    seconds: f64,
    samples_per_s: f64,
    seconds_per_60k: f64,
    gflops: f64,
    fraction_of_calibration: f64,
}

/// One GEMM shape timed single-threaded with both kernels, alternating, one rate per round.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KernelCompare {
    name: String,
    shape: String,
    matrixmultiply_gflops: Vec<f64>,
    gemm_gflops: Vec<f64>,
}

/// Everything one run measured; written as JSON under `target/bench/`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Report {
    mode: String,
    backend: String,
    env_threads: String,
    dataset: String,
    train_samples: usize,
    test_samples: usize,
    hidden: usize,
    calibration_n: usize,
    calibration_gflops: f64,
    /// The backend's GEMM kernel (`bio_cpu::GemmKernel::for_host`).
    gemm_kernel: String,
    /// The calibration GEMM with the other kernel, same threads.
    other_kernel: String,
    other_kernel_gflops: f64,
    isa: Isa,
    /// Clock measured by a dependent-add chain (`bio_benches::host::measure_ghz`).
    ghz: Option<f64>,
    /// Cores counted in the peak: the backend's rayon threads.
    cores: usize,
    theoretical_peak_gflops: Option<f64>,
    /// max(theoretical peak, best GEMM measured in this run).
    ceiling_gflops: f64,
    ceiling_source: String,
    gemm_kernels: Vec<KernelCompare>,
    rows: Vec<Row>,
    training_gemm: Vec<Row>,
    bio_parts: Vec<Part>,
    peak_rss_bytes: Option<u64>,
    peak_rss_after_training_bytes: Option<u64>,
    width_scaling: Vec<ScalePoint>,
    batch_scaling: Vec<ScalePoint>,
    /// The conv budget (issue 33), absent from reports written before it.
    #[serde(default)]
    conv: Option<ConvBudget>,
}

/// One epoch of `conv` against one `bio` MLP epoch, same data, batch and backend.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ConvBudget {
    /// The conv architecture, competition and readout.
    architecture: String,
    bio_epoch_s: f64,
    hebbian_epoch_s: f64,
    readout_epoch_s: f64,
    /// Hebbian epoch / `bio` epoch.
    hebbian_ratio: f64,
    /// Readout epoch / `bio` epoch.
    readout_ratio: f64,
    /// One training step of each phase by part (the rule's functions called one by one).
    parts: Vec<Part>,
}

fn load_data(quick: bool, subset: Option<usize>) -> (Dataset, String) {
    let (mut data, note) = match bio_data::load("fashion-mnist", None) {
        Ok(d) => (d, String::new()),
        Err(e) => {
            let d = bio_data::load("embedded", None).expect("the embedded subset always loads");
            (d, format!(" (fashion-mnist not found: {e}; using the embedded subset)"))
        }
    };
    let (train, test) = match (quick, subset) {
        (_, Some(n)) => (n, n.div_ceil(6)),
        (true, None) => (2000, 200),
        (false, None) => (usize::MAX, usize::MAX),
    };
    if train < data.train.len() {
        data.train = stratified(&data.train, train);
    }
    if test < data.test.len() {
        data.test = stratified(&data.test, test);
    }
    let desc = format!("{} [{}]{note}", data.name, data.source);
    (data, desc)
}

/// The first `n` rows in an order that cycles through the classes (keeps every class present).
fn stratified(split: &Split, n: usize) -> Split {
    let pools = split.class_indices();
    let mut picked = Vec::with_capacity(n);
    let mut i = 0;
    while picked.len() < n {
        let mut any = false;
        for pool in &pools {
            if let Some(&row) = pool.get(i)
                && picked.len() < n
            {
                picked.push(row);
                any = true;
            }
        }
        if !any {
            break;
        }
        i += 1;
    }
    split.select(&picked)
}

fn batches(split: &Split, batch: usize, seed: u64) -> impl Iterator<Item = (Matrix, Vec<usize>)> + '_ {
    split.batches(batch, Some(seed)).map(|b| (b.images, b.labels))
}

fn bio_rule(hidden: usize) -> BioRule {
    BioRule::new(BioParams { hidden: vec![hidden], ..BioParams::default() }.check().expect("valid"), 0)
}

/// One `bio` epoch; returns the trained model and the seconds it took.
fn bio_epoch(b: &CpuBackend, train: &Split, hidden: usize, batch: usize) -> (BioNet<CpuBackend>, f64) {
    let mut rule = bio_rule(hidden);
    let mut model = LearningRule::<CpuBackend>::init_model(&rule, b, train.images.cols(), CLASSES, 0);
    rule.start_epoch(0, 1);
    let t = Instant::now();
    train_epoch(b, &mut rule, &mut model, batches(train, batch, 1), |_| {}).expect("bio training stays finite");
    (model, t.elapsed().as_secs_f64())
}

fn bio_epoch_flops(samples: usize, batch: usize, d: usize, h: usize) -> f64 {
    let full = samples / batch;
    let rest = samples % batch;
    full as f64 * flops::bio_step(batch, d, h, CLASSES)
        + if rest > 0 { flops::bio_step(rest, d, h, CLASSES) } else { 0.0 }
}

fn bp_epoch_flops(samples: usize, batch: usize, d: usize, h: usize) -> f64 {
    let full = samples / batch;
    let rest = samples % batch;
    full as f64 * flops::bp_step(batch, d, h, CLASSES)
        + if rest > 0 { flops::bp_step(rest, d, h, CLASSES) } else { 0.0 }
}

/// Times each mechanism of a `bio` step on one batch, `reps` times, in the order the rule runs them.
fn bio_parts(b: &CpuBackend, x: &Matrix, labels: &[usize], hidden: usize, reps: usize) -> Vec<Part> {
    let rule = bio_rule(hidden);
    let config = rule.config().clone();
    let mut model = LearningRule::<CpuBackend>::init_model(&rule, b, x.cols(), CLASSES, 0);
    let x = b.upload(x);
    let mut times = [0.0f64; 6];
    let names = [
        "forward (trace: normalize, x̂·Wᵀ, k-WTA, code, logits)",
        "softmax + cross-entropy + error",
        "hebbian_drive (relative activity, pattern, wins)",
        "plasticity_step (sparse pull + Hebbian change + pruning + scaling, fused)",
        "homeostasis",
        "readout_update",
    ];
    for _ in 0..reps {
        let mut t = Instant::now();
        let mut lap = |i: usize, times: &mut [f64; 6]| {
            times[i] += t.elapsed().as_secs_f64();
            t = Instant::now();
        };
        let trace = model.trace(&x);
        lap(0, &mut times);
        let (probs, _, _) = softmax_cross_entropy(b, &trace.logits, labels);
        let error = b.lincomb(1.0, &one_hot(b, labels, CLASSES), -1.0, &probs);
        lap(1, &mut times);
        let layer = &mut model.layers[0];
        let terms = hebbian_drive(b, &trace.layers[0], &config);
        lap(2, &mut times);
        let settings = plasticity_settings(b.shape(&trace.layers[0].input), config.hebbian_rate, &config);
        b.plasticity_step(&mut layer.weights, &mut layer.mask, &terms, &settings);
        lap(3, &mut times);
        homeostasis(b, layer, &trace.layers[0].activity, config.homeostasis_rate, &config);
        lap(4, &mut times);
        readout_update(b, &mut model.readout, &error, &trace.code, config.readout_rate, true);
        lap(5, &mut times);
    }
    let total: f64 = times.iter().sum();
    names
        .iter()
        .zip(times)
        .map(|(n, s)| Part { name: (*n).into(), ms_per_batch: s / reps as f64 * 1e3, fraction_of_step: s / total })
        .collect()
}

/// The conv rule of the budget: its defaults, `--conv 96:5 --conv-pool 4:2:1`, k-WTA (10 of 96).
fn conv_config() -> ConvConfig {
    ConvParams::default().check().expect("the defaults are valid")
}

/// One Hebbian epoch then one readout epoch of `conv` (the schedule of a 2-epoch run); the seconds
/// of each.
fn conv_epochs(b: &CpuBackend, train: &Split) -> (f64, f64) {
    let mut rule = <ConvRule<CpuBackend> as Rule>::new(conv_config(), 0);
    let mut model = rule.init_model(b, train.images.cols(), CLASSES, 0);
    let mut seconds = [0.0; 2];
    for (epoch, s) in seconds.iter_mut().enumerate() {
        rule.start_epoch(epoch, 2);
        let t = Instant::now();
        train_epoch(b, &mut rule, &mut model, batches(train, BATCH, 1), |_| {}).expect("conv training stays finite");
        *s = t.elapsed().as_secs_f64();
    }
    (seconds[0], seconds[1])
}

/// `(positions, patch length, channels, readout features)` of the conv rule's one layer.
fn conv_dims(d: usize) -> (usize, usize, usize, usize) {
    let shapes = conv_config().shapes(d).expect("the default architecture fits");
    let s = &shapes[0];
    (s.conv.positions(), s.conv.patch_len(), s.channels, ConvNet::<CpuBackend>::feature_len(&shapes))
}

/// FLOPs of one epoch of `samples` in batches of `batch`, from the FLOPs of one step of `n` images.
fn epoch_flops(samples: usize, batch: usize, step: impl Fn(usize) -> f64) -> f64 {
    let (full, rest) = (samples / batch, samples % batch);
    full as f64 * step(batch) + if rest > 0 { step(rest) } else { 0.0 }
}

/// Times each part of a Hebbian epoch's `conv` step on one batch, `reps` times, in the order the
/// rule runs them (the layer's forward pass, which training runs as one `kwta_layer` per layer,
/// with the relative activity and the active count of the layer that learns, the readout's score,
/// the active fraction, then the Hebbian phase's terms and step; the readout phase's Adam step is
/// the `bio` rule's `readout_update` cost class and is in the epoch rows).
fn conv_parts(b: &CpuBackend, x: &Matrix, labels: &[usize], reps: usize) -> Vec<Part> {
    let config = conv_config();
    let rule = <ConvRule<CpuBackend> as Rule>::new(config.clone(), 0);
    let mut model = rule.init_model(b, x.cols(), CLASSES, 0);
    let x = b.upload(x);
    let names = [
        "conv layer forward (kwta_layer: unfold, drive P·Wᵀ + c, k-WTA, max pool, relative activity)",
        "conv readout logits + loss",
        "conv active fraction",
        "conv Hebbian terms (relative, pattern)",
        "conv plasticity step (wins, sparse pull, change, scaling)",
    ];
    let mut times = [0.0f64; 5];
    for _ in 0..reps {
        let mut t = Instant::now();
        let mut lap = |i: usize, times: &mut [f64; 5]| {
            times[i] += t.elapsed().as_secs_f64();
            t = Instant::now();
        };
        let traces = model.trace_for(&x, Some(0));
        lap(0, &mut times);
        let features = model.features(&traces);
        let (_, _, _) = softmax_cross_entropy(b, &model.readout.logits(b, &features), labels);
        lap(1, &mut times);
        let trace = (traces, features);
        std::hint::black_box(<ConvConfig as FeatureLayer<CpuBackend>>::active_fraction(b, &trace));
        lap(2, &mut times);
        let (mut traces, _) = trace;
        let terms = conv_hebbian_terms(b, traces.swap_remove(0), &config);
        lap(3, &mut times);
        conv_hebbian_step(b, &mut model.layers[0], terms, &config, config.rate);
        lap(4, &mut times);
    }
    let total: f64 = times.iter().sum();
    names
        .iter()
        .zip(times)
        .map(|(n, s)| Part { name: (*n).into(), ms_per_batch: s / reps as f64 * 1e3, fraction_of_step: s / total })
        .collect()
}

/// The conv budget: a `bio` MLP epoch (the one already timed, `bio_s`), the two conv epochs, their
/// rows (with FLOPs) and the per-part breakdown.
fn conv_budget(
    b: &CpuBackend,
    train: &Split,
    hidden: usize,
    bio_s: f64,
    cal: f64,
    reps: usize,
) -> (ConvBudget, [Row; 2]) {
    let d = train.images.cols();
    let (positions, patch, channels, features) = conv_dims(d);
    eprintln!("conv epochs (Hebbian, readout) ...");
    let (hebbian_s, readout_s) = conv_epochs(b, train);
    let n = train.len();
    let detail = |phase: &str| {
        format!("{channels}:{} pool 4:2:1, k-WTA, {phase}, batch {BATCH}, {n} samples", (patch as f64).sqrt())
    };
    let rows = [
        Row::new(
            "conv Hebbian epoch",
            detail("filters learn"),
            hebbian_s,
            n,
            epoch_flops(n, BATCH, |m| flops::conv_hebbian_step(m, positions, patch, channels, features, CLASSES)),
            cal,
        ),
        Row::new(
            "conv readout epoch",
            detail("Adam readout"),
            readout_s,
            n,
            epoch_flops(n, BATCH, |m| flops::conv_readout_step(m, positions, patch, channels, features, CLASSES)),
            cal,
        ),
    ];
    eprintln!("conv step breakdown ...");
    let xb = train.images.select_rows(&(0..BATCH.min(n)).collect::<Vec<_>>());
    let parts = conv_parts(b, &xb, &train.labels[..xb.rows()], reps);
    let budget = ConvBudget {
        architecture: format!(
            "conv {channels}:{} (pool 4:2:1, k-WTA 10 of {channels}, {features} readout features) against bio {d}-{hidden}-{CLASSES}",
            (patch as f64).sqrt()
        ),
        bio_epoch_s: bio_s,
        hebbian_epoch_s: hebbian_s,
        readout_epoch_s: readout_s,
        hebbian_ratio: hebbian_s / bio_s,
        readout_ratio: readout_s / bio_s,
        parts,
    };
    (budget, rows)
}

/// The GEMM shapes of a training step at batch `bs`, width `h`, each best-of-5.
fn training_gemm(b: &CpuBackend, bs: usize, d: usize, h: usize, calibration: f64) -> Vec<Row> {
    let x = uniform(bs, d, 1);
    let w = uniform(h, d, 2);
    let y = uniform(bs, h, 3);
    let v = uniform(CLASSES, h, 4);
    let e = uniform(bs, CLASSES, 5);
    let cases: [(&str, &Matrix, bool, &Matrix, bool, f64); 5] = [
        ("gemm forward x·Wᵀ", &x, false, &w, true, flops::gemm(bs, h, d)),
        ("gemm hebbian/dW yᵀ·x", &y, true, &x, false, flops::gemm(h, d, bs)),
        ("gemm input grad du·W", &y, false, &w, false, flops::gemm(bs, d, h)),
        ("gemm readout h·Vᵀ", &y, false, &v, true, flops::gemm(bs, CLASSES, h)),
        ("gemm readout upd Eᵀ·h", &e, true, &y, false, flops::gemm(CLASSES, h, bs)),
    ];
    let mut rows = Vec::new();
    let (mut total_s, mut total_f) = (0.0, 0.0);
    for (name, a, ta, bb, tb, f) in cases {
        let s = time_gemm(b, a, ta, bb, tb, 5);
        total_s += s;
        total_f += f;
        let dims = |m: &Matrix, t: bool| {
            if t { format!("({}×{})ᵀ", m.rows(), m.cols()) } else { format!("{}×{}", m.rows(), m.cols()) }
        };
        rows.push(Row::new(name, format!("{}·{}", dims(a, ta), dims(bb, tb)), s, bs, f, calibration));
    }
    rows.push(Row::new(
        "gemm mix (sum of the above)",
        format!("batch {bs}, width {h}"),
        total_s,
        bs,
        total_f,
        calibration,
    ));
    rows
}

fn measure(o: &Options) -> Report {
    let b = CpuBackend::new();
    let quick = o.quick;
    let hidden = if quick { 256 } else { 2000 };
    let mut r = Report {
        mode: if quick { "quick".into() } else { "full".into() },
        backend: b.name(),
        env_threads: format!(
            "RAYON_NUM_THREADS={}",
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "(unset)".into()),
        ),
        hidden,
        ..Report::default()
    };
    r.calibration_n = if quick { 1024 } else { 2048 };
    eprintln!("calibration GEMM {0}×{0}×{0} ...", r.calibration_n);
    let cal = calibration_gflops(&b, r.calibration_n, if quick { 3 } else { 7 });
    r.calibration_gflops = cal;
    r.gemm_kernel = b.gemm_kernel().name().into();
    let other = match b.gemm_kernel() {
        GemmKernel::Gemm => GemmKernel::MatrixMultiply,
        GemmKernel::MatrixMultiply => GemmKernel::Gemm,
    };
    r.other_kernel = other.name().into();
    r.other_kernel_gflops =
        calibration_gflops(&b.clone().with_gemm_kernel(other), r.calibration_n, if quick { 3 } else { 7 });
    r.isa = Isa::detect();
    r.ghz = host::measure_ghz(if quick { 100 } else { 300 });
    r.cores = b.num_threads();
    r.theoretical_peak_gflops = r.ghz.map(|g| host::peak_gflops(r.cores, r.isa.f32_lanes(), g));
    let best_gemm = cal.max(r.other_kernel_gflops);
    (r.ceiling_gflops, r.ceiling_source) = match r.theoretical_peak_gflops {
        Some(p) if p >= best_gemm => (p, "theoretical peak".into()),
        _ => (best_gemm, "best GEMM measured".into()),
    };
    if !o.no_kernels && !o.conv {
        eprintln!("GEMM kernels, 1 thread ...");
        r.gemm_kernels = compare_kernels(hidden, if quick { 1 } else { 3 });
    }

    let (data, desc) = load_data(quick, o.subset);
    r.dataset = desc;
    let (train, test) = (&data.train, &data.test);
    r.train_samples = train.len();
    r.test_samples = test.len();
    let d = data.input_dim();
    eprintln!("dataset {}: {} train, {} test", r.dataset, train.len(), test.len());

    r.training_gemm = training_gemm(&b, BATCH, d, hidden, cal);

    eprintln!("bio epoch ...");
    let (bio_model, s) = bio_epoch(&b, train, hidden, BATCH);
    let detail = format!("{d}-{hidden}-{CLASSES}, batch {BATCH}, {} samples", train.len());
    r.rows.push(Row::new(
        "bio epoch",
        detail.clone(),
        s,
        train.len(),
        bio_epoch_flops(train.len(), BATCH, d, hidden),
        cal,
    ));
    let (budget, rows) = conv_budget(&b, train, hidden, s, cal, if quick { 3 } else { 10 });
    r.rows.extend(rows);
    r.conv = Some(budget);
    if o.conv {
        finish(&mut r);
        return r;
    }

    eprintln!("bp epoch ...");
    let mut bp = BackpropRule::new(BpParams { hidden: vec![hidden], ..BpParams::default() }.check().expect("valid"));
    let mut bp_model = bp.init_model(&b, d, CLASSES, 0);
    bp.start_epoch(0, 1);
    let t = Instant::now();
    train_epoch(&b, &mut bp, &mut bp_model, batches(train, BATCH, 1), |_| {}).expect("bp training stays finite");
    let s = t.elapsed().as_secs_f64();
    r.rows.push(Row::new(
        "bp epoch (Adam)",
        detail,
        s,
        train.len(),
        bp_epoch_flops(train.len(), BATCH, d, hidden),
        cal,
    ));
    r.peak_rss_after_training_bytes = peak_rss_bytes();

    eprintln!("pgd-40 ...");
    let params =
        AttackParams { kind: AttackName::Pgd, norm: Norm::Linf, eps: 0.1, steps: 40, ..AttackParams::default() };
    let t = Instant::now();
    let curve = robustness_curve(&bio_model, &params, &[0.1], &test.images, &test.labels, PGD_BATCH, 0, |_, _| {})
        .expect("the attack runs");
    let s = t.elapsed().as_secs_f64();
    let n = test.len();
    r.rows.push(Row::new(
        "pgd-40 (bio model)",
        format!(
            "L∞ eps 0.1, step 0.01, {n} test images, batch {PGD_BATCH}; robust acc {:.3}",
            curve.points[0].accuracy
        ),
        s,
        n,
        flops::pgd(n, 40, d, hidden, CLASSES),
        cal,
    ));

    // The `strongest` ensemble on the bio model, each attack timed on the images it attacked (those
    // every earlier attack left robust), with the bp model as the transfer source.
    let images = if quick { 200 } else { 1000 };
    let queries = if quick { 1000 } else { bio_eval::ensemble::DEFAULT_ENSEMBLE_QUERIES };
    eprintln!("strongest ({images} images, eps 0.1, square {queries} queries) ...");
    let rows: Vec<usize> = (0..images.min(test.len())).collect();
    let (x, y) = (test.images.select_rows(&rows), rows.iter().map(|&i| test.labels[i]).collect::<Vec<_>>());
    let surrogate = SurrogateBio::new(&bio_model, bio_eval::ensemble::DEFAULT_SURROGATE_TEMPERATURE);
    let helpers = Helpers { surrogate: Some(&surrogate), source: Some(&bp_model) };
    let params = EnsembleParams { square_queries: queries, sanity: false, ..EnsembleParams::default() };
    let t = Instant::now();
    let report = strongest(&bio_model, helpers, &params, &[0.1], &x, &y, |_| {}).expect("the ensemble runs");
    let total = t.elapsed().as_secs_f64();
    let point = &report.points[0];
    // An attack left with no image to attack has no rate to report.
    for stage in point.stages.iter().filter(|s| s.attacked > 0) {
        r.rows.push(Row::timing_only(
            &format!("strongest: {}", stage.attack.name()),
            format!(
                "L∞ eps 0.1, attacked {} of {} images; robust after {:.3} (no GEMM count)",
                stage.attacked,
                rows.len(),
                stage.robust_after
            ),
            stage.seconds,
            stage.attacked,
        ));
    }
    r.rows.push(Row::timing_only(
        "strongest (all attacks)",
        format!(
            "L∞ eps 0.1, {} images, APGD 100 iterations, square {queries} queries; worst case {:.3}",
            rows.len(),
            point.accuracy
        ),
        total,
        rows.len(),
    ));

    if !o.no_fewshot {
        eprintln!("few-shot ...");
        let novel = [5usize, 6, 7, 8, 9];
        let episodes = if quick { 50 } else { 600 };
        let ep = EpisodeParams { ways: 5, shots: vec![5], queries: 15, episodes, seed: 0, code_densities: vec![] };
        let t = Instant::now();
        let results =
            episodic(&bio_model, &test.images, &test.labels, &novel, None, &ep, PGD_BATCH).expect("the protocol runs");
        let s = t.elapsed().as_secs_f64();
        let rows = test.labels.iter().filter(|l| novel.contains(l)).count();
        let ncm = results.iter().find(|x| x.features.starts_with("hidden") && x.classifier == "ncm");
        r.rows.push(Row::new(
            "few-shot episodic",
            format!(
                "{episodes} episodes 5-way 5-shot 15-query, NCM + probe on hidden features of {rows} images; NCM acc {:.3}",
                ncm.map_or(f64::NAN, |x| x.mean)
            ),
            s,
            episodes,
            flops::forward(rows, d, hidden, CLASSES),
            cal,
        ));
    }

    eprintln!("bio step breakdown ...");
    let xb = train.images.select_rows(&(0..BATCH.min(train.len())).collect::<Vec<_>>());
    r.bio_parts = bio_parts(&b, &xb, &train.labels[..xb.rows()], hidden, if quick { 5 } else { 30 });

    if o.scaling {
        let samples = if quick { 1000 } else { 6000 };
        let sub = stratified(train, samples);
        let widths: &[usize] = if quick { &[64, 128] } else { &[500, 1000, 2000, 4000, 8000] };
        for &w in widths {
            eprintln!("scaling: width {w} ...");
            r.width_scaling.push(scale_point(&b, &sub, w, BATCH, cal));
        }
        let sizes: &[usize] = if quick { &[50, 100] } else { &[50, 100, 200, 500] };
        for &bs in sizes {
            eprintln!("scaling: batch {bs} ...");
            r.batch_scaling.push(scale_point(&b, &sub, hidden, bs, cal));
        }
    }
    finish(&mut r);
    r
}

/// The last figures of a report: peak memory, and each row's fraction of the ceiling.
fn finish(r: &mut Report) {
    r.peak_rss_bytes = peak_rss_bytes();
    for row in r.training_gemm.iter_mut().chain(&mut r.rows) {
        row.fraction_of_ceiling = row.gflops / r.ceiling_gflops;
    }
}

/// The training GEMM shapes (784-`h`-10, batch 100) and a 2048³ square, each timed `rounds` times
/// single-threaded with `matrixmultiply` and with the `gemm` crate, alternating (so a noisy
/// neighbour hits both), best of 3 tries per round.
fn compare_kernels(h: usize, rounds: usize) -> Vec<KernelCompare> {
    let one = CpuBackend::with_threads(1).expect("one thread starts");
    let kernels = [one.clone().with_gemm_kernel(GemmKernel::MatrixMultiply), one.with_gemm_kernel(GemmKernel::Gemm)];
    let (d, bs) = (784, BATCH);
    let (x, w, y) = (uniform(bs, d, 1), uniform(h, d, 2), uniform(bs, h, 3));
    let (wt, v, e) = (uniform(d, h, 6), uniform(CLASSES, h, 4), uniform(bs, CLASSES, 5));
    let sq = if h >= 2000 { 2048 } else { 512 };
    let (sa, sb) = (uniform(sq, sq, 11), uniform(sq, sq, 12));
    let cases: [(&str, &Matrix, bool, &Matrix, bool); 8] = [
        ("forward x·Wᵀ", &x, false, &w, true),
        ("forward x·W (W stored d×h)", &x, false, &wt, false),
        ("dW / pull yᵀ·x", &y, true, &x, false),
        ("input grad du·W", &y, false, &w, false),
        ("readout h·Vᵀ", &y, false, &v, true),
        ("readout grad Eᵀ·h", &e, true, &y, false),
        ("hidden error δ·V", &e, false, &v, false),
        ("square", &sa, false, &sb, false),
    ];
    let mut out = Vec::new();
    for (name, a, ta, bb, tb) in cases {
        let (m, k) = if ta { (a.cols(), a.rows()) } else { (a.rows(), a.cols()) };
        let n = if tb { bb.rows() } else { bb.cols() };
        let f = flops::gemm(m, n, k);
        let mut rates = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (kernel, rate) in kernels.iter().zip(&mut rates) {
                rate.push(f / time_gemm(kernel, a, ta, bb, tb, 3) / 1e9);
            }
        }
        let [mm, gm] = rates;
        let dims = |x: &Matrix, t: bool| {
            if t { format!("({}×{})ᵀ", x.rows(), x.cols()) } else { format!("{}×{}", x.rows(), x.cols()) }
        };
        out.push(KernelCompare {
            name: name.into(),
            shape: format!("{}·{}", dims(a, ta), dims(bb, tb)),
            matrixmultiply_gflops: mm,
            gemm_gflops: gm,
        });
    }
    out
}

/// `lo–hi` of a list of rates, or the value when all are equal.
fn range(v: &[f64], digits: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() < 2 || (hi - lo).abs() < 0.5 * 10f64.powi(-(digits as i32)) {
        format!("{lo:.digits$}")
    } else {
        format!("{lo:.digits$}–{hi:.digits$}")
    }
}

fn scale_point(b: &CpuBackend, train: &Split, width: usize, batch: usize, cal: f64) -> ScalePoint {
    let d = train.images.cols();
    let (_, s) = bio_epoch(b, train, width, batch);
    let f = bio_epoch_flops(train.len(), batch, d, width);
    let gflops = f / s / 1e9;
    ScalePoint {
        width,
        batch,
        samples: train.len(),
        seconds: s,
        samples_per_s: train.len() as f64 / s,
        seconds_per_60k: s * 60_000.0 / train.len() as f64,
        gflops,
        fraction_of_calibration: gflops / cal,
    }
}

/// Seconds as `12.3 s`, `45.6 ms` or `789 µs`.
fn duration(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn mib(b: Option<u64>) -> String {
    b.map_or("n/a".into(), |v| format!("{:.0} MiB", v as f64 / (1024.0 * 1024.0)))
}

fn print_report(r: &Report) {
    println!("\nbiorule macro benchmarks ({} mode) — {} — {}", r.mode, r.backend, r.env_threads);
    println!("dataset: {} ({} train, {} test)", r.dataset, r.train_samples, r.test_samples);
    let isa = &r.isa;
    println!("host: {} — {}", if isa.model.is_empty() { "(model unknown)" } else { &isa.model }, isa.describe());
    let clock = r.ghz.map_or("clock not measured (not x86-64)".into(), |g| {
        format!("clock {g:.2} GHz (dependent-add chain, scalar; AVX-512 code may run slower)")
    });
    println!("{clock}");
    if let Some(p) = r.theoretical_peak_gflops {
        println!(
            "theoretical FP32 peak: {} cores × {} f32 lanes × {} FMA units (assumed) × 2 FLOPs × {:.2} GHz = {p:.1} GFLOP/s",
            r.cores,
            isa.f32_lanes(),
            host::FMA_UNITS,
            r.ghz.unwrap_or(0.0)
        );
    }
    println!(
        "calibration: {0}×{0}×{0} f32 GEMM, best of several: {1:.1} GFLOP/s ({2}, the backend's kernel); {3}: {4:.1} GFLOP/s",
        r.calibration_n, r.calibration_gflops, r.gemm_kernel, r.other_kernel, r.other_kernel_gflops
    );
    println!(
        "ceiling: {:.1} GFLOP/s ({}); calibration = {:.0}% of it",
        r.ceiling_gflops,
        r.ceiling_source,
        100.0 * r.calibration_gflops / r.ceiling_gflops
    );
    println!(
        "\n| {:<28} | {:>9} | {:>8} | {:>10} | {:>9} | {:>8} | {:>7} | {:>6} | {:>8} |",
        "workload", "time", "samples", "samples/s", "GEMM GF", "GFLOP/s", "% calib", "% ceil", "× bound"
    );
    println!(
        "|{:-<30}|{:->11}|{:->10}|{:->12}|{:->11}|{:->10}|{:->9}|{:->8}|{:->10}|",
        "", "", "", "", "", "", "", "", ""
    );
    for row in r.training_gemm.iter().chain(&r.rows) {
        println!(
            "| {:<28} | {:>9} | {:>8} | {:>10.0} | {:>9.2} | {:>8.1} | {:>6.0}% | {:>5.0}% | {:>7.2}× |",
            row.name,
            duration(row.seconds),
            row.samples,
            row.samples_per_s,
            row.gemm_gflop,
            row.gflops,
            100.0 * row.fraction_of_calibration,
            100.0 * row.fraction_of_ceiling,
            row.times_gemm_bound
        );
    }
    println!(
        "| {:<28} | peak resident memory (VmHWM): {} (after the two training epochs: {}) |",
        "memory",
        mib(r.peak_rss_bytes),
        mib(r.peak_rss_after_training_bytes)
    );
    println!("\nworkloads:");
    for row in r.training_gemm.iter().chain(&r.rows) {
        println!("  {:<28} {}", row.name, row.detail);
    }
    if !r.gemm_kernels.is_empty() {
        let rounds = r.gemm_kernels[0].gemm_gflops.len();
        println!(
            "\nGEMM kernels, 1 thread, GFLOP/s ({rounds} alternating rounds, best of 3 each; ranges over rounds):"
        );
        println!(
            "| {:<28} | {:<22} | {:>14} | {:>14} | {:>12} |",
            "product", "shape", "matrixmultiply", "gemm", "gemm / mm"
        );
        println!("|{:-<30}|{:-<24}|{:->16}|{:->16}|{:->14}|", "", "", "", "", "");
        for c in &r.gemm_kernels {
            let ratios: Vec<f64> = c.gemm_gflops.iter().zip(&c.matrixmultiply_gflops).map(|(g, m)| g / m).collect();
            println!(
                "| {:<28} | {:<22} | {:>14} | {:>14} | {:>11}× |",
                c.name,
                c.shape,
                range(&c.matrixmultiply_gflops, 1),
                range(&c.gemm_gflops, 1),
                range(&ratios, 2)
            );
        }
    }
    println!("\nbio step by part (width {}, batch {BATCH}):", r.hidden);
    for p in &r.bio_parts {
        println!("  {:<58} {:>8.2} ms  {:>5.1}%", p.name, p.ms_per_batch, 100.0 * p.fraction_of_step);
    }
    if let Some(c) = &r.conv {
        println!("\nconv budget (issue 33; target: an epoch within 3× the bio epoch): {}", c.architecture);
        println!(
            "  bio epoch {} | conv Hebbian epoch {} = {:.2}× | conv readout epoch {} = {:.2}×",
            duration(c.bio_epoch_s),
            duration(c.hebbian_epoch_s),
            c.hebbian_ratio,
            duration(c.readout_epoch_s),
            c.readout_ratio
        );
        println!(
            "conv step by part (batch {BATCH}; the Hebbian phase runs all of them, the readout phase the first two and Adam):"
        );
        for p in &c.parts {
            println!("  {:<58} {:>8.2} ms  {:>5.1}%", p.name, p.ms_per_batch, 100.0 * p.fraction_of_step);
        }
    }
    for (title, pts) in
        [("bio epoch against hidden width", &r.width_scaling), ("bio epoch against batch size", &r.batch_scaling)]
    {
        if pts.is_empty() {
            continue;
        }
        println!("\n{title} ({} samples, 1 epoch; s/60k = scaled to 60 000 samples):", pts[0].samples);
        println!("| width | batch | time s | s/60k | samples/s | GFLOP/s | % calib |");
        println!("|------:|------:|-------:|------:|----------:|--------:|--------:|");
        for p in pts.iter() {
            println!(
                "| {} | {} | {:.2} | {:.1} | {:.0} | {:.1} | {:.0}% |",
                p.width,
                p.batch,
                p.seconds,
                p.seconds_per_60k,
                p.samples_per_s,
                p.gflops,
                100.0 * p.fraction_of_calibration
            );
        }
    }
}

fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("bench")
}

fn write_json<T: Serialize>(path: &PathBuf, value: &T) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match serde_json::to_string_pretty(value) {
        Ok(text) => match std::fs::write(path, text) {
            Ok(()) => println!("\nwrote {}", path.display()),
            Err(e) => eprintln!("cannot write {}: {e}", path.display()),
        },
        Err(e) => eprintln!("cannot serialize the report: {e}"),
    }
}

/// Runs this binary twice on a training subset, once with one thread everywhere and once with the
/// default threads, and prints the speed-up of each workload.
fn threads(o: &Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let subset = o.subset.unwrap_or(if o.quick { 1000 } else { 12_000 }).to_string();
    let mut reports = Vec::new();
    for (tag, one) in [("1", true), ("default", false)] {
        let path = out_dir().join(format!("threads-{tag}.json"));
        let mut cmd = Command::new(&exe);
        cmd.args(["--subset", &subset, "--no-fewshot", "--no-kernels", "--out"]).arg(&path);
        if o.quick {
            cmd.arg("--quick");
        }
        if one {
            cmd.env("RAYON_NUM_THREADS", "1");
        } else {
            cmd.env_remove("RAYON_NUM_THREADS");
        }
        eprintln!("threads: running with {tag} thread(s) ...");
        let status = cmd.status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("the {tag}-thread run failed ({status})"));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        reports.push(serde_json::from_str::<Report>(&text).map_err(|e| e.to_string())?);
    }
    let (one, many) = (&reports[0], &reports[1]);
    println!(
        "\n1 thread vs default threads ({}), {} train / {} test samples:",
        many.backend, one.train_samples, one.test_samples
    );
    println!("| workload | 1 thread s | default s | speed-up |");
    println!("|---|---:|---:|---:|");
    println!(
        "| calibration GEMM {0}³ (GFLOP/s) | {1:.1} | {2:.1} | {3:.2}× |",
        one.calibration_n,
        one.calibration_gflops,
        many.calibration_gflops,
        many.calibration_gflops / one.calibration_gflops
    );
    for (a, b) in one.training_gemm.iter().chain(&one.rows).zip(many.training_gemm.iter().chain(&many.rows)) {
        println!("| {} | {:.3} | {:.3} | {:.2}× |", a.name, a.seconds, b.seconds, a.seconds / b.seconds);
    }
    write_json(&out_dir().join("threads.json"), &reports);
    Ok(())
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "macro: {e}\nusage: macro [--quick] [--scaling] [--threads] [--conv] [--subset N] [--no-fewshot] [--no-kernels] [--out FILE]"
            );
            std::process::exit(2);
        }
    };
    if o.threads {
        if let Err(e) = threads(&o) {
            eprintln!("macro: {e}");
            std::process::exit(1);
        }
        return;
    }
    let report = measure(&o);
    print_report(&report);
    let name = match (o.quick, o.conv) {
        (true, true) => "conv-quick.json",
        (false, true) => "conv.json",
        (true, false) => "macro-quick.json",
        (false, false) => "macro.json",
    };
    let path = o.out.clone().unwrap_or_else(|| out_dir().join(name));
    write_json(&path, &report);
}
