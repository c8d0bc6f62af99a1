//! Biological metrics on hand-built inputs with known answers, and on real models.

use bio_core::{BioNet, BioParams, BpNet, BpParams, Matrix, Params, ReferenceBackend};
use bio_eval::metrics::{
    ActivityAccumulator, DIVERSITY_MAX_ROWS, MAX_LOG_SAMPLES, SelectivityAccumulator, dale, diversity, erf, erfc,
    fit_lognormal, hoyer, input_diversity, normal_cdf, treves_rolls, weight_metrics,
};
use bio_eval::{BiologicalReport, LayerSelectivity, biological_report, class_selectivity};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b} (tolerance {tol})");
}

#[test]
fn erf_matches_tabulated_values() {
    let table = [
        (0.0, 0.0),
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (1.0, 0.8427007929497149),
        (1.5, 0.9661051464753108),
        (2.0, 0.9953222650189527),
        (2.5, 0.999593047982555),
        (3.0, 0.9999779095030014),
    ];
    for (x, v) in table {
        close(erf(x), v, 1e-14);
        close(erf(-x), -v, 1e-14);
    }
    // Relative accuracy in the upper tail.
    for (x, v) in [(2.5, 4.069520174449589e-4), (3.0, 2.2090496998585438e-5), (5.0, 1.5374597944280351e-12)] {
        close(erfc(x) / v, 1.0, 1e-12);
    }
    close(erfc(-1.0), 1.842700792949715, 1e-14);
    close(erfc(30.0), 0.0, 1e-300);
}

#[test]
fn normal_cdf_matches_tabulated_values() {
    close(normal_cdf(0.0), 0.5, 1e-15);
    close(normal_cdf(1.0), 0.8413447460685429, 1e-13);
    close(normal_cdf(-1.0), 0.15865525393145707, 1e-13);
    close(normal_cdf(1.959963984540054), 0.975, 1e-13);
    close(normal_cdf(-3.0), 0.0013498980316301, 1e-14);
    close(normal_cdf(-8.0) / 6.22096057427178e-16, 1.0, 1e-10);
    // Monotone across the switch between series and continued fraction.
    let zs: Vec<f64> = (-400..=400).map(|k| k as f64 * 0.02).collect();
    assert!(zs.windows(2).all(|w| normal_cdf(w[0]) <= normal_cdf(w[1])));
}

#[test]
fn lognormal_sample_fits_and_uniform_does_not() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let law = LogNormal::new(-2.0, 0.7).unwrap();
    let w: Vec<f32> = (0..200_000).map(|_| law.sample(&mut rng) as f32).collect();
    let fit = fit_lognormal(&w).unwrap();
    close(fit.mu, -2.0, 0.01);
    close(fit.sigma, 0.7, 0.01);
    close(fit.skew, 0.0, 0.03);
    assert!(fit.ks_distance < 0.01, "KS of a lognormal sample: {}", fit.ks_distance);
    assert_eq!(fit.samples, w.len());

    // Signs and zeros do not matter: the fit is on nonzero magnitudes.
    let signed: Vec<f32> =
        w.iter().enumerate().map(|(i, v)| if i % 2 == 0 { -v } else { *v }).chain([0.0; 10]).collect();
    assert_eq!(fit_lognormal(&signed).unwrap(), fit);

    let u: Vec<f32> = (0..200_000).map(|_| rng.random_range(1e-6f32..1.0)).collect();
    let fit = fit_lognormal(&u).unwrap();
    assert!(fit.ks_distance > 0.05, "KS of a uniform sample: {}", fit.ks_distance);
    assert!(fit.skew < -0.5, "ln U is left-skewed: {}", fit.skew);

    assert!(fit_lognormal(&[0.0, 1.0]).is_none());
    assert!(fit_lognormal(&[2.0, -2.0, 2.0]).is_none());
}

#[test]
fn big_layers_are_subsampled_deterministically() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let law = LogNormal::new(0.0, 1.0).unwrap();
    let w: Vec<f32> = (0..MAX_LOG_SAMPLES + 50_000).map(|_| law.sample(&mut rng) as f32).collect();
    let a = fit_lognormal(&w).unwrap();
    assert_eq!(a.samples, MAX_LOG_SAMPLES);
    assert_eq!(fit_lognormal(&w).unwrap(), a);
    close(a.mu, 0.0, 0.01);
}

#[test]
fn dale_index_of_known_layers() {
    // out×in: column i = outgoing weights of presynaptic neuron i.
    let excitatory = Matrix::from_fn(4, 3, |i, j| 0.1 + (i + j) as f32);
    let d = dale(&excitatory);
    assert_eq!((d.index, d.excitatory_fraction, d.inhibitory_fraction, d.silent), (Some(1.0), Some(1.0), Some(0.0), 0));

    let balanced = Matrix::new(2, 3, vec![0.5, -2.0, 1.0, -0.5, 2.0, -1.0]).unwrap();
    let d = dale(&balanced);
    close(d.index.unwrap(), 0.0, 1e-12);
    assert_eq!((d.excitatory_fraction, d.inhibitory_fraction), (Some(0.0), Some(0.0)));

    // Neuron 0 excitatory, 1 inhibitory, 2 silent (excluded and counted), 3 mixed 3:1.
    let m = Matrix::new(2, 4, vec![1.0, -1.0, 0.0, 3.0, 2.0, -0.5, 0.0, -1.0]).unwrap();
    let d = dale(&m);
    assert_eq!(d.silent, 1);
    close(d.index.unwrap(), (1.0 + 1.0 + 0.5) / 3.0, 1e-12);
    close(d.excitatory_fraction.unwrap(), 1.0 / 3.0, 1e-12);
    close(d.inhibitory_fraction.unwrap(), 1.0 / 3.0, 1e-12);

    let d = dale(&Matrix::zeros(2, 2));
    assert_eq!((d.index, d.silent), (None, 2));
}

#[test]
fn treves_rolls_and_hoyer_extremes() {
    let mut one_hot = vec![0.0; 100];
    one_hot[17] = 3.0;
    close(treves_rolls(&one_hot).unwrap(), 1.0, 1e-12);
    close(treves_rolls(&[2.0; 50]).unwrap(), 0.0, 1e-12);
    let mut nearly = vec![0.01; 100];
    nearly[3] = 5.0;
    assert!(treves_rolls(&nearly).unwrap() > 0.95);
    assert!(treves_rolls(&[0.0; 10]).is_none());

    let mut v = vec![0.0f32; 64];
    v[5] = -4.0;
    close(hoyer(&v).unwrap(), 1.0, 1e-12);
    close(hoyer(&[0.3f32; 64]).unwrap(), 0.0, 1e-12);
    close(hoyer(&[-0.3f32, 0.3, 0.3, -0.3]).unwrap(), 0.0, 1e-12);
    assert!(hoyer(&[0.0f32; 4]).is_none());
}

#[test]
fn activity_accumulator_counts_dead_units() {
    // 4 inputs × 3 units: unit 0 fires on one input, unit 1 on all equally, unit 2 never.
    let a = Matrix::new(2, 3, vec![1.0, 2.0, 0.0, 0.0, 2.0, 0.0]).unwrap();
    let b = Matrix::new(2, 3, vec![0.0, 2.0, 0.0, 0.0, 2.0, -1.0]).unwrap();
    let mut acc = ActivityAccumulator::new(3);
    acc.add(&a);
    acc.add(&b);
    let s = acc.finish();
    assert_eq!((s.inputs, s.units, s.dead_units), (4, 3, 1));
    close(s.dead_fraction, 1.0 / 3.0, 1e-12);
    close(s.active_fraction, (2.0 + 1.0 + 1.0 + 1.0) / 3.0 / 4.0, 1e-12);
    // Unit 0: one-hot → 1; unit 1: constant → 0; unit 2 is dead and left out of the mean.
    close(s.lifetime_sparseness.unwrap(), 0.5, 1e-12);
}

#[test]
fn weight_metrics_use_the_mask() {
    let mut p = Params::default();
    p.push("hidden.0.weight", Matrix::new(2, 2, vec![1.0, 0.0, 2.0, 4.0]).unwrap());
    p.push("hidden.0.mask", Matrix::new(2, 2, vec![1.0, 0.0, 1.0, 1.0]).unwrap());
    p.push("hidden.0.bias", Matrix::zeros(1, 2));
    p.push("readout.weight", Matrix::new(1, 2, vec![1.0, -1.0]).unwrap());
    let m = weight_metrics(&p);
    assert_eq!(m.iter().map(|l| l.layer.as_str()).collect::<Vec<_>>(), ["hidden.0", "readout"]);
    close(m[0].kept_fraction, 0.75, 1e-12);
    assert_eq!(m[0].log_samples, 3);
    close(m[0].log_weight_mu.unwrap(), (2.0f64.ln() + 4.0f64.ln()) / 3.0, 1e-12);
    assert_eq!(m[1].kept_fraction, 1.0);
    assert_eq!(
        (m[1].dale_index, m[1].excitatory_fraction, m[1].inhibitory_fraction),
        (Some(1.0), Some(0.5), Some(0.5))
    );
}

fn images(n: usize, dim: usize, seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Matrix::from_fn(n, dim, |_, j| if j == 0 || rng.random_bool(0.3) { rng.random_range(0.1..1.0) } else { 0.0 })
}

#[test]
fn report_of_a_bio_model() {
    let config = BioParams { hidden: vec![20, 10], active_fraction: 0.1, ..Default::default() }.check().unwrap();
    let net = BioNet::init(&ReferenceBackend, config, 16, 3, 5);
    let x = images(50, 16, 1);
    let r: BiologicalReport = biological_report(&net, &x, 16).unwrap();
    assert_eq!(r.inputs, 50);
    let names: Vec<&str> = r.layers.iter().map(|l| l.layer.as_str()).collect();
    assert_eq!(names, ["hidden.0", "hidden.1", "readout"]);
    assert_eq!(r.layers[0].shape, [20, 16]);
    assert!(r.layers[0].hidden && r.layers[1].hidden && !r.layers[2].hidden);
    // k-winners with k = 2 of 20, then 1 of 10: the active fraction is fixed by construction.
    close(r.layers[0].active_fraction.unwrap(), 0.1, 1e-9);
    close(r.layers[1].active_fraction.unwrap(), 0.1, 1e-9);
    assert!(r.layers[2].active_fraction.is_none());
    for l in &r.layers {
        // Positive init: every presynaptic neuron is excitatory; nothing is pruned yet.
        assert_eq!(l.kept_fraction, 1.0);
        assert_eq!(l.dale_index, Some(1.0));
        assert_eq!(l.excitatory_fraction, Some(1.0));
        assert!(l.ks_distance.is_some() && l.hoyer.is_some());
    }
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "active_fraction",
        "lifetime_sparseness",
        "dead_units",
        "hoyer",
        "kept_fraction",
        "log_weight_mu",
        "log_weight_sigma",
        "log_weight_skew",
        "ks_distance",
        "dale_index",
        "excitatory_fraction",
        "inhibitory_fraction",
    ] {
        assert!(json["layers"][0].get(key).is_some(), "missing key {key}");
    }
    let back: BiologicalReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
}

#[test]
fn report_of_a_bp_model() {
    let config = BpParams { hidden: vec![12], ..Default::default() }.check().unwrap();
    let net = BpNet::init(&bio_cpu::CpuBackend::new(), config, 16, 3, 2);
    let r = biological_report(&net, &images(40, 16, 2), 7).unwrap();
    let names: Vec<&str> = r.layers.iter().map(|l| l.layer.as_str()).collect();
    // The one naming of `bio_eval::layers`, although bp's tensors are `layer.0.*` and `layer.1.*`.
    assert_eq!(names, ["hidden.0", "readout"]);
    assert!(r.layers[0].hidden && !r.layers[1].hidden);
    assert_eq!(r.layers[0].kept_fraction, 1.0);
    // Signed uniform init: Dale's law does not hold.
    assert!(r.layers[0].dale_index.unwrap() < 0.6);
    let dead = r.layers[0].dead_units.unwrap();
    close(r.layers[0].dead_fraction.unwrap(), dead as f64 / 12.0, 1e-12);
    assert!(biological_report(&net, &images(4, 15, 2), 7).is_err());
}

fn entropy_bits(p: f64) -> f64 {
    -(p * p.log2() + (1.0 - p) * (1.0 - p).log2())
}

#[test]
fn selectivity_of_hand_built_units() {
    // 6 inputs, 3 classes (3 of class 0, 2 of class 1, 1 of class 2), 4 units:
    // unit 0 active on every class-0 input only, unit 1 active on everything with the same value,
    // unit 2 never active, unit 3 active on every input with a class-dependent rate.
    let labels = [0, 0, 1, 0, 2, 1];
    let unit3 = [1.0, 1.0, 2.0, 1.0, 4.0, 2.0];
    let x = Matrix::from_fn(6, 4, |r, j| match j {
        0 => f32::from(labels[r] == 0) * 0.5,
        1 => 0.7,
        2 => 0.0,
        _ => unit3[r],
    });
    let mut acc = SelectivityAccumulator::new(4, 3);
    // Two batches: accumulation must not depend on the split.
    acc.add(&x.select_rows(&[0, 1, 2]), &labels[..3]);
    acc.add(&x.select_rows(&[3, 4, 5]), &labels[3..]);
    assert_eq!(acc.inputs(), 6);
    let (si0, mi0) = acc.unit(0).unwrap();
    close(si0, 1.0, 1e-12);
    // The class fixes whether the unit is active: I(A; C) = H(A) with p(A=1) = 3/6.
    close(mi0, entropy_bits(0.5), 1e-12);
    close(mi0, 1.0, 1e-12);
    let (si1, mi1) = acc.unit(1).unwrap();
    close(si1, 0.0, 1e-12);
    close(mi1, 0.0, 1e-12);
    assert!(acc.unit(2).is_none());
    // Rates 1, 2, 4: r_max = 4, r_rest = 1.5, SI = 2.5 / 5.5; always active, so no information.
    let (si3, mi3) = acc.unit(3).unwrap();
    close(si3, 2.5 / 5.5, 1e-12);
    close(mi3, 0.0, 1e-12);
    let l = acc.finish("hidden.0");
    assert_eq!(l.layer, "hidden.0");
    assert_eq!(l.units, 3);
    close(l.selectivity.unwrap(), (1.0 + 0.0 + 2.5 / 5.5) / 3.0, 1e-12);
    close(l.mutual_information_bits.unwrap(), 1.0 / 3.0, 1e-12);
    let json = serde_json::to_value(&l).unwrap();
    for key in ["layer", "selectivity", "mutual_information_bits", "units"] {
        assert!(json.get(key).is_some(), "missing key {key}");
    }
    assert_eq!(serde_json::from_value::<LayerSelectivity>(json).unwrap(), l);
}

#[test]
fn selectivity_mutual_information_with_partial_response() {
    // 4 inputs of class 0 and 4 of class 1; the unit is active on 2 of class 0 and none of class 1.
    // p(A=1) = 1/4, H(A|C=0) = 1 bit, H(A|C=1) = 0: I = H(1/4) − 1/2.
    let labels = [0, 0, 0, 0, 1, 1, 1, 1];
    let x = Matrix::from_fn(8, 1, |r, _| if r < 2 { 1.0 } else { 0.0 });
    let mut acc = SelectivityAccumulator::new(1, 2);
    acc.add(&x, &labels);
    let (si, mi) = acc.unit(0).unwrap();
    close(si, 1.0, 1e-12);
    close(mi, entropy_bits(0.25) - 0.5, 1e-12);
    // A class absent from the data does not count in r_rest, and one class alone gives nothing.
    let mut acc = SelectivityAccumulator::new(1, 5);
    acc.add(&x, &labels);
    close(acc.unit(0).unwrap().0, 1.0, 1e-12);
    let mut one = SelectivityAccumulator::new(1, 2);
    one.add(&x.select_rows(&[0, 1, 2]), &[0, 0, 0]);
    assert!(one.unit(0).is_none());
    let empty = SelectivityAccumulator::new(3, 2).finish("layer.0");
    assert_eq!((empty.units, empty.selectivity, empty.mutual_information_bits), (0, None, None));
}

#[test]
fn class_selectivity_of_models() {
    let config = BioParams { hidden: vec![20, 10], active_fraction: 0.1, ..Default::default() }.check().unwrap();
    let net = BioNet::init(&ReferenceBackend, config, 16, 3, 5);
    let x = images(60, 16, 3);
    let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
    let s = class_selectivity(&net, &x, &labels, 3, 16).unwrap();
    let names: Vec<&str> = s.iter().map(|l| l.layer.as_str()).collect();
    assert_eq!(names, ["hidden.0", "hidden.1"]);
    assert!(s[0].units <= 20 && s[1].units <= 10);
    for l in &s {
        if let (Some(si), Some(mi)) = (l.selectivity, l.mutual_information_bits) {
            assert!((0.0..=1.0).contains(&si) && (0.0..=3f64.log2()).contains(&mi), "{l:?}");
        }
    }
    // The batch size does not change the result.
    let whole = class_selectivity(&net, &x, &labels, 3, 60).unwrap();
    for (a, b) in s.iter().zip(&whole) {
        assert_eq!(a.units, b.units);
        close(a.selectivity.unwrap_or(0.0), b.selectivity.unwrap_or(0.0), 1e-9);
        close(a.mutual_information_bits.unwrap_or(0.0), b.mutual_information_bits.unwrap_or(0.0), 1e-9);
    }
    let config = BpParams { hidden: vec![12], ..Default::default() }.check().unwrap();
    let bp = BpNet::init(&bio_cpu::CpuBackend::new(), config, 16, 3, 2);
    let s = class_selectivity(&bp, &x, &labels, 3, 7).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].layer, "hidden.0");
    assert!(class_selectivity(&bp, &x, &labels[1..], 3, 7).is_err());
    assert!(class_selectivity(&bp, &x, &labels, 2, 7).is_err());
    assert!(class_selectivity(&bp, &images(4, 15, 2), &labels[..4], 3, 7).is_err());
}

#[test]
fn the_parameter_count_leaves_out_the_binary_masks() {
    let mut p = Params::default();
    p.push("hidden.0.weight", Matrix::new(2, 3, vec![1.0; 6]).unwrap());
    p.push("hidden.0.mask", Matrix::new(2, 3, vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0]).unwrap());
    p.push("hidden.0.bias", Matrix::zeros(1, 2));
    p.push("readout.weight", Matrix::zeros(4, 2));
    let c = bio_eval::parameter_count(&p);
    assert_eq!((c.learnable, c.mask_entries, c.synapses_present), (6 + 2 + 8, 6, Some(3)));
    // Every tensor is counted once, as masks or as parameters.
    assert_eq!(c.learnable + c.mask_entries, p.count());
    p.tensors.retain(|(n, _)| !n.ends_with(".mask"));
    assert_eq!(bio_eval::parameter_count(&p).synapses_present, None);
}

#[test]
fn a_mostly_dead_hidden_layer_is_warned_about() {
    let mut p = Params::default();
    p.push("hidden.0.weight", Matrix::new(100, 2, vec![1.0; 200]).unwrap());
    p.push("readout.weight", Matrix::new(10, 100, vec![1.0; 1000]).unwrap());
    let mut layers = weight_metrics(&p);
    layers[0].hidden = true;
    layers[0].dead_units = Some(87);
    let warnings = bio_eval::dead_unit_warnings(&layers);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("hidden.0: 87 of 100 units never fire"), "{warnings:?}");
    assert!(warnings[0].contains("other 13; the run") && !warnings[0].contains("  "), "{warnings:?}");
    // Half dead or fewer: no warning; the readout (not hidden) is never judged.
    layers[0].dead_units = Some(50);
    assert!(bio_eval::dead_unit_warnings(&layers).is_empty());
    layers[1].dead_units = Some(10);
    assert!(bio_eval::dead_unit_warnings(&layers).is_empty());
}

#[test]
fn a_conv_layers_dead_sites_are_judged_against_its_sites_not_its_filters() {
    // 96 filters whose map has 4×4×96 = 1536 sites: 157 dead sites is a tenth, not 164% of the filters.
    let mut p = Params::default();
    p.push("hidden.0.weight", Matrix::new(96, 25, vec![1.0; 96 * 25]).unwrap());
    p.push("readout.weight", Matrix::new(10, 1536, vec![1.0; 15360]).unwrap());
    let mut layers = weight_metrics(&p);
    layers[0].hidden = true;
    layers[0].activity_units = Some(1536);
    layers[0].dead_units = Some(157);
    assert!(bio_eval::dead_unit_warnings(&layers).is_empty());
    layers[0].dead_units = Some(1000);
    let warnings = bio_eval::dead_unit_warnings(&layers);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("hidden.0: 1000 of 1536 sites (position × channel) of its map never fire"),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("other 536; the run"), "{warnings:?}");
}

fn matrix(rows: &[&[f32]]) -> Matrix {
    let cols = rows[0].len();
    Matrix::from_fn(rows.len(), cols, |i, j| rows[i][j])
}

#[test]
fn diversity_of_known_layers() {
    // Copies up to an offset, a positive scale or a sign: one filter.
    let r = [1.0, -2.0, 0.5, 3.0];
    let copies = matrix(&[&r, &r.map(|v| 2.0 * v + 5.0), &r.map(|v| v + 1.0), &r.map(|v| -v)]);
    let d = diversity(&copies).unwrap();
    close(d.similarity, 1.0, 1e-12);
    close(d.effective_rank, 1.0, 1e-12);
    assert_eq!(d.units, 4);
    // Centred and mutually orthogonal: three independent filters, whatever their common offset.
    let orthogonal = matrix(&[&[1.0, -1.0, 0.0, 0.0], &[7.0, 7.0, 8.0, 6.0], &[1.0, 1.0, -1.0, -1.0]]);
    let d = diversity(&orthogonal).unwrap();
    close(d.similarity, 0.0, 1e-12);
    close(d.effective_rank, 3.0, 1e-12);
    // cos = 1/2: similarity 1/2, effective units 2 / (1 + 1/4).
    let d = diversity(&matrix(&[&[1.0, -1.0, 0.0, 0.0], &[1.0, 0.0, -1.0, 0.0]])).unwrap();
    close(d.similarity, 0.5, 1e-12);
    close(d.effective_rank, 1.6, 1e-12);
    // Constant rows have no shape: left out, and with fewer than two left there is nothing to say.
    let with_constant = matrix(&[&[1.0, -1.0, 0.0, 0.0], &[3.0, 3.0, 3.0, 3.0], &[1.0, 0.0, -1.0, 0.0]]);
    assert_eq!(diversity(&with_constant).unwrap().units, 2);
    close(diversity(&with_constant).unwrap().similarity, 0.5, 1e-12);
    assert!(diversity(&matrix(&[&[2.0, 2.0], &[1.0, -1.0]])).is_none());
}

#[test]
fn diversity_of_random_filters_and_of_a_wide_layer() {
    // Independent rows of length n (uniform entries): after centring E cos² = 1/(n−1) and, nearly
    // Gaussian, E|cos| ≈ √(2/(π(n−1))).
    let (rows, cols) = (200, 784);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w = Matrix::from_fn(rows, cols, |_, _| rng.random::<f32>() - 0.5);
    let d = diversity(&w).unwrap();
    close(d.similarity, (2.0 / (std::f64::consts::PI * 783.0)).sqrt(), 0.002);
    close(d.effective_rank, 200.0 / (1.0 + 199.0 / 783.0), 3.0);
    // A layer wider than DIVERSITY_MAX_ROWS is measured on that many of its units.
    let wide = Matrix::from_fn(DIVERSITY_MAX_ROWS + 100, 8, |_, _| rng.random::<f32>());
    assert_eq!(diversity(&wide).unwrap().units, DIVERSITY_MAX_ROWS);
}

#[test]
fn input_diversity_draws_images_or_patches() {
    // 4×4 single-channel images: the first layer of 16 inputs sees the images themselves.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let images = Matrix::from_fn(30, 16, |_, _| rng.random::<f32>());
    assert_eq!(input_diversity(&images, 16, None), diversity(&images));
    // A 3×3 convolution (9 inputs) sees one patch of each image: 30 rows.
    let d = input_diversity(&images, 9, None).unwrap();
    assert_eq!(d.units, 30);
    // A blank image has no non-constant patch and is skipped; 7 inputs fit neither an image nor
    // a square patch.
    let mut mixed = images.clone();
    mixed.row_mut(0).fill(0.0);
    assert_eq!(input_diversity(&mixed, 9, None).unwrap().units, 29);
    assert_eq!(input_diversity(&images, 7, None), None);
    // A whitened convolution is compared with its patches after `Z`: the identity changes nothing,
    // a `Z` that maps every patch onto one direction (`p Z = (Σp, 0, …)`) leaves one effective
    // unit, and a `Z` of the wrong shape is ignored.
    let identity = Matrix::from_fn(9, 9, |i, j| f32::from(u8::from(i == j)));
    assert_eq!(input_diversity(&images, 9, Some(&identity)), Some(d));
    let collapse = Matrix::from_fn(9, 9, |_, j| f32::from(u8::from(j == 0)));
    let collapsed = input_diversity(&images, 9, Some(&collapse)).unwrap();
    assert_eq!(collapsed.units, 30);
    close(collapsed.similarity, 1.0, 1e-9);
    close(collapsed.effective_rank, 1.0, 1e-6);
    assert_eq!(input_diversity(&images, 9, Some(&Matrix::zeros(4, 4))), Some(d));
}
