//! The one-shot protocol: hand-made runs with known answers, and Lake's Modified Hausdorff Distance
//! figure (38.8%) on the shipped runs.

use bio_core::Matrix;
use bio_data::omniglot;
use bio_eval::oneshot::{
    BACKGROUND_CENTRING, NO_CENTRING, OneShotRuns, cosine_errors, feature_rows, ink_points_centred, mhd_errors,
};

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
