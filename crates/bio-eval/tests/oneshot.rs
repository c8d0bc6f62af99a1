//! The one-shot protocol: hand-made runs with known answers, and Lake's Modified Hausdorff Distance
//! figure (38.8%) on the shipped runs; the episodic curves: the sampler, and that a feature set
//! cannot score above chance on labels that carry no information.

use bio_core::Matrix;
use bio_data::omniglot;
use bio_eval::oneshot::{
    BACKGROUND_CENTRING, CurveParams, IMAGE_CENTRING, NEAREST_NEIGHBOUR, NO_CENTRING, OneShotRuns, centred_curve_rows,
    cosine_errors, curve_rows, feature_rows, ink_points_centred, mhd_errors,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn matrix(rows: &[[f32; 3]]) -> Matrix {
    Matrix::new(rows.len(), 3, rows.iter().flatten().copied().collect()).unwrap()
}

#[test]
fn hand_made_runs_score_as_worked_out() {
    // Two runs of three classes (one-hot training images), three test images each.
    let training = matrix(&[[1., 0., 0.], [0., 1., 0.], [0., 0., 1.], [1., 0., 0.], [0., 1., 0.], [0., 0., 1.]]);
    // Run 0: tests point at classes 2, 0, 1 (all right). Run 1: tests point at 1, 1, 2 but the answers
    // say 1, 0, 2 → one wrong in three. A zero row scores 0 everywhere and goes to class 0.
    let test = matrix(&[[0., 0., 3.], [2., 0.1, 0.], [0., 1., 0.5], [0., 5., 0.], [0.2, 1., 0.], [0., 0., 0.]]);
    let answers = vec![vec![2, 0, 1], vec![1, 0, 0]];
    let errors = cosine_errors(&training, &test, &answers).unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0], 0.0);
    assert!((errors[1] - 100.0 / 3.0).abs() < 1e-9, "{errors:?}");
    // The layout is checked.
    let runs = OneShotRuns { training: training.clone(), test: test.clone(), answers: vec![vec![0, 1, 3], vec![0; 3]] };
    assert!(runs.check().unwrap_err().to_string().contains("answer 3"));
    assert!(cosine_errors(&training, &test.select_rows(&[0, 1]), &answers).is_err());
}

#[test]
fn background_centring_removes_a_shared_offset() {
    // Every image carries the shared component o = (10, 0, 0), which is the background mean. Class 0
    // differs from it a little (0.1 on coordinate 1), class 1 a lot (3 on coordinate 2). Test 0 is a
    // faint class-1 image (0.3 on coordinate 2): by plain cosine it is nearer to class 0 (both are
    // almost o), once o is removed it points exactly at class 1. Test 1 (0.2 on coordinate 1) is
    // class 0 either way.
    let training = matrix(&[[10., 0.1, 0.], [10., 0., 3.]]);
    let test = matrix(&[[10., 0., 0.3], [10., 0.2, 0.]]);
    let background = matrix(&[[10., 0., 0.], [10., 0., 0.]]);
    let answers = vec![vec![1, 0]];
    let rows = feature_rows("toy", &training, &test, &background, &answers).unwrap();
    assert_eq!((rows[0].centring.as_str(), rows[1].centring.as_str()), (NO_CENTRING, BACKGROUND_CENTRING));
    assert_eq!(rows[0].errors, vec![50.0], "plain: test 0 wrong");
    assert_eq!(rows[1].errors, vec![0.0], "centred: both right");
    assert_eq!((rows[0].features.as_str(), rows[1].mean, rows[1].ci95), ("toy", 0.0, 0.0));
}

#[test]
fn modified_hausdorff_gives_lakes_figure_on_the_shipped_runs() {
    let runs = omniglot::all_runs().unwrap();
    let points = |ims: &[omniglot::InkImage]| -> Vec<Vec<[f64; 2]>> {
        ims.iter().map(|im| ink_points_centred(&im.ink, im.width)).collect()
    };
    let training: Vec<_> = runs.iter().map(|r| points(&r.training)).collect();
    let test: Vec<_> = runs.iter().map(|r| points(&r.test)).collect();
    let answers: Vec<_> = runs.iter().map(|r| r.answers.clone()).collect();
    let errors = mhd_errors(&training, &test, &answers).unwrap();
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    // Lake's demo_classification.py prints an average error of 38.8% (errors are multiples of 5%
    // per run, so the mean over 20 runs is a multiple of 0.25%).
    assert!((mean - 38.75).abs() < 1e-9, "MHD error {mean}% per run {errors:?}");
}

/// `per_class` images of each of `classes` classes: a class's own direction (one-hot, coordinate
/// `c`) plus uniform noise of amplitude `noise` on every coordinate; labels in class order.
fn clustered(classes: usize, per_class: usize, noise: f32, seed: u64) -> (Matrix, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut data, mut labels) = (Vec::new(), Vec::new());
    for c in 0..classes {
        for _ in 0..per_class {
            data.extend((0..classes).map(|j| f32::from(u8::from(j == c)) + noise * rng.random::<f32>()));
            labels.push(c);
        }
    }
    (Matrix::new(classes * per_class, classes, data).unwrap(), labels)
}

#[test]
fn episodes_use_only_novel_classes_keep_queries_out_of_the_support_and_are_seeded() {
    let (_, labels) = clustered(12, 8, 0.0, 0);
    let novel: Vec<usize> = (4..12).collect(); // classes 0-3 stand for the trained ones
    let params = CurveParams { ways: vec![5], shots: vec![1, 3], queries: 4, episodes: 50, seed: 7 };
    for &shots in &params.shots {
        let episodes = params.episodes_of(&labels, &novel, 5, shots).unwrap();
        assert_eq!(episodes.len(), 50);
        for e in &episodes {
            let mut classes = e.classes.clone();
            classes.sort_unstable();
            classes.dedup();
            assert_eq!(classes.len(), 5, "distinct classes: {:?}", e.classes);
            assert!(e.classes.iter().all(|c| novel.contains(c)), "a trained class in {:?}", e.classes);
            for (w, (support, queries)) in e.support.iter().zip(&e.queries).enumerate() {
                assert_eq!((support.len(), queries.len()), (shots, 4));
                assert!(support.iter().chain(queries).all(|&r| labels[r] == e.classes[w]));
                assert!(queries.iter().all(|q| !e.support.iter().flatten().any(|s| s == q)), "a query in the support");
            }
        }
        assert_eq!(episodes, params.episodes_of(&labels, &novel, 5, shots).unwrap(), "same seed, same episodes");
        let other = CurveParams { seed: 8, ..params.clone() };
        assert_ne!(episodes, other.episodes_of(&labels, &novel, 5, shots).unwrap(), "the seed matters");
    }
    // Too few images for the shots and queries asked: one clear error naming the flag.
    let greedy = CurveParams { shots: vec![5], ..params.clone() };
    let err = greedy.check(&labels, &novel).unwrap_err().to_string();
    assert!(err.starts_with("invalid value for `shots`"), "{err}");
    let too_many = CurveParams { ways: vec![9], ..params };
    assert!(too_many.check(&labels, &novel).unwrap_err().to_string().starts_with("invalid value for `ways`"));
}

#[test]
fn curves_separate_clustered_classes_and_stay_at_chance_on_random_labels() {
    let (features, labels) = clustered(10, 20, 0.6, 1);
    let novel: Vec<usize> = (0..10).collect();
    let params = CurveParams { ways: vec![5], shots: vec![1, 5], queries: 5, episodes: 300, seed: 3 };
    let rows = curve_rows(&features, &labels, &novel, "f", NO_CENTRING, &params).unwrap();
    assert_eq!(rows.len(), 4, "(1 shot, 5 shots) × (ncm, nn)");
    assert!(rows.iter().all(|r| r.mean > 0.9), "informative features: {rows:?}");
    // The same features with labels that carry no information: a random permutation of them.
    let mut shuffled = labels.clone();
    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(11));
    let rows = curve_rows(&features, &shuffled, &novel, "f", NO_CENTRING, &params).unwrap();
    for r in &rows {
        // Chance is 1/5; 300 episodes of 25 queries give a CI of about ±0.02.
        assert!((r.mean - 0.2).abs() < 3.0 * r.ci95 + 0.01, "above chance on random labels: {r:?}");
        assert!(r.ci95 > 0.0 && r.ci95 < 0.05, "{r:?}");
    }
}

#[test]
fn centring_turns_a_shared_offset_into_angles() {
    // Class c is the direction e_c, drawn at a random strength a ∈ [0.05, 6], on top of an offset of
    // 10 on every coordinate shared by all images. Uncentred, cosine similarity is then close to
    // Euclidean distance, so a faint image is nearer to faint images of other classes than to a
    // strong one of its own; each image's own mean, or the background mean, removes (most of) the
    // offset, leaving the direction, which is the class.
    let (classes, per_class, dim) = (6, 10, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (mut data, mut labels) = (Vec::new(), Vec::new());
    for c in 0..classes {
        for _ in 0..per_class {
            let a = 0.05 + 5.95 * rng.random::<f32>();
            data.extend((0..dim).map(|j| 10.0 + if j == c { a } else { 0.0 }));
            labels.push(c);
        }
    }
    let features = Matrix::new(classes * per_class, dim, data).unwrap();
    let novel: Vec<usize> = (0..classes).collect();
    let params = CurveParams { ways: vec![5], shots: vec![1], queries: 5, episodes: 200, seed: 0 };
    let centrings = [NO_CENTRING, IMAGE_CENTRING, BACKGROUND_CENTRING];
    let rows = centred_curve_rows("f", &features, &features, &labels, &novel, &centrings, &params).unwrap();
    let acc = |centring: &str| {
        rows.iter().find(|r| r.centring == centring && r.classifier == NEAREST_NEIGHBOUR).map(|r| r.mean).unwrap()
    };
    assert!(acc(NO_CENTRING) < 0.9, "{rows:?}");
    assert!(acc(IMAGE_CENTRING) > 0.99, "{rows:?}");
    assert!(acc(BACKGROUND_CENTRING) > acc(NO_CENTRING) + 0.1, "{rows:?}");
    let err = centred_curve_rows("f", &features, &features, &labels, &novel, &["median"], &params).unwrap_err();
    assert!(err.to_string().starts_with("invalid value for `centring`"), "{err}");
}
