//! Population training on the CPU backend (issue 29): every member of a `BioPopulation` ends with
//! exactly the weights, and reports exactly the batch figures, of a single run with its seed and
//! its batches, over several epochs and configurations, with one and two threads.

use bio_core::train::train_epoch;
use bio_core::{
    BatchReport, BioParams, BioPopulation, BioRule, Classifier, Competition, InitSign, LearningRule, Matrix,
    ReadoutRule,
};
use bio_cpu::CpuBackend;

const INPUTS: usize = 64;
const CLASSES: usize = 4;
const SAMPLES: usize = 120;
const BATCH: usize = 25; // the last batch of an epoch has 20

/// A deterministic number stream (SplitMix64), so the test needs no random crate.
fn stream(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Non-negative images whose class is the brightest of four blocks of pixels.
fn dataset() -> (Matrix, Vec<usize>) {
    let mut next = stream(7);
    let mut labels = Vec::with_capacity(SAMPLES);
    let images = Matrix::from_fn(SAMPLES, INPUTS, |i, j| {
        let class = i % CLASSES;
        if j == 0 {
            labels.push(class);
        }
        let base = (next() % 1000) as f32 / 1000.0;
        if j / (INPUTS / CLASSES) == class { base + 0.5 } else { base }
    });
    (images, labels)
}

/// Member `seed`'s batches of `epoch`: its own shuffle of the data.
fn batches(data: &(Matrix, Vec<usize>), seed: u64, epoch: usize) -> Vec<(Matrix, Vec<usize>)> {
    let mut order: Vec<usize> = (0..SAMPLES).collect();
    let mut next = stream(seed.wrapping_mul(1000).wrapping_add(epoch as u64));
    for i in (1..SAMPLES).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order.chunks(BATCH).map(|rows| (data.0.select_rows(rows), rows.iter().map(|&r| data.1[r]).collect())).collect()
}

fn bits(m: &Matrix) -> Vec<u32> {
    m.as_slice().iter().map(|v| v.to_bits()).collect()
}

fn report_bits(r: &BatchReport) -> (u32, usize, usize, u32) {
    (r.loss.to_bits(), r.correct, r.samples, r.active_fraction.to_bits())
}

/// Trains `seeds` as one population and each seed alone, and requires the same bits.
fn population_equals_single_runs(what: &str, params: BioParams, threads: usize) {
    let cpu = CpuBackend::with_threads(threads).unwrap();
    let config = params.check().unwrap();
    let data = dataset();
    let (seeds, epochs) = ([3u64, 11, 42], 3);
    let mut population = BioPopulation::new(&cpu, config.clone(), INPUTS, CLASSES, &seeds).unwrap();
    let mut population_reports = vec![Vec::new(); seeds.len()];
    for e in 0..epochs {
        population.start_epoch(e, epochs);
        let per_member: Vec<_> = seeds.iter().map(|&s| batches(&data, s, e)).collect();
        for step in 0..per_member[0].len() {
            let step_batches: Vec<_> = per_member.iter().map(|b| b[step].clone()).collect();
            for (p, r) in population.train_batch(&step_batches).unwrap().iter().enumerate() {
                population_reports[p].push(report_bits(r));
            }
        }
    }
    let members = population.networks();
    assert_eq!(members.len(), seeds.len());
    for (p, &seed) in seeds.iter().enumerate() {
        let mut rule = BioRule::new(config.clone(), seed);
        let mut net = rule.init_model(&cpu, INPUTS, CLASSES, seed);
        let mut reports = Vec::new();
        for e in 0..epochs {
            rule.start_epoch(e, epochs);
            train_epoch(&cpu, &mut rule, &mut net, batches(&data, seed, e), |r| reports.push(report_bits(r))).unwrap();
        }
        assert_eq!(population_reports[p], reports, "{what}, {threads} threads: member {p}'s batch reports");
        let (alone, together) = (net.to_params(), members[p].to_params());
        for (name, m) in &alone.tensors {
            let other = together.get(name, m.shape()).unwrap();
            assert!(bits(m) == bits(other), "{what}, {threads} threads: member {p} (seed {seed}): {name} differs");
        }
        assert_eq!(alone.tensors.len(), together.tensors.len(), "{what}: the same tensors");
    }
    // The members learned different things (different seeds and batches): the test is not vacuous.
    let w = |p: usize| bits(members[p].to_params().get("hidden.0.weight", (48, INPUTS)).unwrap());
    assert_ne!(w(0), w(1), "{what}: members 0 and 1 are the same network");
}

fn base() -> BioParams {
    BioParams { hidden: vec![48], active_fraction: 0.1, hebbian_rate: 0.05, ..BioParams::default() }
}

#[test]
fn population_members_equal_their_single_runs_bit_for_bit() {
    for threads in [1, 2] {
        population_equals_single_runs("defaults", base(), threads);
    }
    let two_layers = BioParams {
        hidden: vec![48, 32],
        reward_modulation: Some(0.5),
        readout_rule: ReadoutRule::Taught,
        fast_fraction: 0.25,
        fast_hebbian_rate: 0.2,
        ..base()
    };
    population_equals_single_runs("two layers, reward, taught readout, two populations", two_layers, 2);
    let mut inhibitory = BioParams {
        competition: Competition::Inhibitory { gain: 1.0 },
        feedforward_inhibition: 0.5,
        hidden_init: InitSign::Mixed,
        layerwise: true,
        consolidation_epochs: 1,
        ..base()
    };
    inhibitory.mechanisms.multiplicative = false;
    inhibitory.mechanisms.sign_preserving_readout = false;
    population_equals_single_runs("inhibitory unit, additive, layer-wise", inhibitory, 2);
    let anti = BioParams { anti_hebbian: 0.2, anti_hebbian_ranks: 2, ..base() };
    population_equals_single_runs("anti-Hebbian losers", anti, 1);
}

#[test]
fn populations_refuse_what_they_cannot_stack_and_bad_batches() {
    let cpu = CpuBackend::with_threads(1).unwrap();
    let refused = |params: BioParams, option: &str| {
        let err = BioPopulation::new(&cpu, params.check().unwrap(), INPUTS, CLASSES, &[1, 2]).unwrap_err().to_string();
        assert!(err.contains(option) && err.contains("population"), "{option}: {err}");
    };
    refused(BioParams { regrow_probability: 0.1, ..base() }, "regrow");
    refused(BioParams { readout_rule: ReadoutRule::Perturbation, ..base() }, "readout-rule");
    refused(BioParams { metaplasticity: Some(100.0), ..base() }, "metaplasticity");
    refused(BioParams { readout_gating: Some(0.5), ..base() }, "readout-gating");
    refused(BioParams { pattern_per_unit: true, ..base() }, "pattern-per-unit");
    assert!(BioPopulation::new(&cpu, base().check().unwrap(), INPUTS, CLASSES, &[]).is_err());
    let mut population = BioPopulation::new(&cpu, base().check().unwrap(), INPUTS, CLASSES, &[1, 2]).unwrap();
    let data = dataset();
    let one = batches(&data, 1, 0).remove(0);
    let err = population.train_batch(std::slice::from_ref(&one)).unwrap_err().to_string();
    assert!(err.contains("1 batches for a population of 2"), "{err}");
    let short = (one.0.select_rows(&[0, 1]), one.1[..2].to_vec());
    let err = population.train_batch(&[one, short]).unwrap_err().to_string();
    assert!(err.contains("member 1's batch"), "{err}");
}

/// A population's checkpoint is its members' single-run checkpoints (model and trainer state, the
/// same bytes a single run writes at the same point, mid-epoch), and a population resumed from them
/// ends with the bits of the population trained straight through.
#[test]
fn population_checkpoints_are_single_run_checkpoints_and_resume_bit_for_bit() {
    use bio_core::TensorStore;
    let cpu = CpuBackend::with_threads(2).unwrap();
    let config = base().check().unwrap();
    let data = dataset();
    let (seeds, epochs, stop) = ([3u64, 11, 42], 3, (1, 3)); // stop after 3 batches of epoch 1
    let step_all = |population: &mut BioPopulation<CpuBackend>, e: usize, steps: std::ops::Range<usize>| {
        let per_member: Vec<_> = seeds.iter().map(|&s| batches(&data, s, e)).collect();
        for step in steps {
            let b: Vec<_> = per_member.iter().map(|m| m[step].clone()).collect();
            population.train_batch(&b).unwrap();
        }
    };
    let steps = SAMPLES.div_ceil(BATCH);
    let mut straight = BioPopulation::new(&cpu, config.clone(), INPUTS, CLASSES, &seeds).unwrap();
    for e in 0..epochs {
        straight.start_epoch(e, epochs);
        step_all(&mut straight, e, 0..steps);
    }
    let mut first = BioPopulation::new(&cpu, config.clone(), INPUTS, CLASSES, &seeds).unwrap();
    for e in 0..=stop.0 {
        first.start_epoch(e, epochs);
        step_all(&mut first, e, 0..if e == stop.0 { stop.1 } else { steps });
    }
    let saved = first.save_members();
    for (p, &seed) in seeds.iter().enumerate() {
        let mut rule = BioRule::new(config.clone(), seed);
        let mut net = rule.init_model(&cpu, INPUTS, CLASSES, seed);
        for e in 0..=stop.0 {
            rule.start_epoch(e, epochs);
            let take = if e == stop.0 { stop.1 } else { steps };
            for (x, y) in batches(&data, seed, e).into_iter().take(take) {
                rule.train_batch(&mut net, &cpu.upload(&x), &y).unwrap();
            }
        }
        assert!(saved[p].0 == net.to_saved(), "member {p}: the population's model is not the single run's");
        assert!(
            saved[p].1 == rule.save_state(&net),
            "member {p}: the population's trainer state is not the single run's"
        );
    }
    let mut resumed = BioPopulation::resume(&cpu, config.clone(), INPUTS, CLASSES, &seeds, &saved).unwrap();
    step_all(&mut resumed, stop.0, stop.1..steps);
    for e in stop.0 + 1..epochs {
        resumed.start_epoch(e, epochs);
        step_all(&mut resumed, e, 0..steps);
    }
    for (p, (a, b)) in straight.networks().iter().zip(resumed.networks()).enumerate() {
        assert!(a.to_params() == b.to_params(), "member {p}: resumed differs from straight");
    }
    // Members at different points of the schedule are refused.
    let mut early = BioPopulation::new(&cpu, config.clone(), INPUTS, CLASSES, &seeds).unwrap();
    early.start_epoch(0, epochs);
    let mut mixed = saved.clone();
    mixed[1] = early.save_members().remove(1);
    let err = BioPopulation::resume(&cpu, config, INPUTS, CLASSES, &seeds, &mixed).unwrap_err().to_string();
    assert!(err.contains("member 1") && err.contains("schedule"), "{err}");
}
