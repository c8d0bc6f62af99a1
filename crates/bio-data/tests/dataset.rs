//! Datasets: the embedded subset, loading from directories, the search path, batching and subsets.

use std::path::Path;

use bio_core::Matrix;
use bio_data::{
    DataError, DataSource, IdxEncoding, IdxImages, Split, embedded_provenance, find, load, read_idx_images,
    read_idx_labels, write_idx_images, write_idx_labels,
};
use proptest::prelude::*;

/// A split of `n` one-pixel images whose value encodes the index, labelled `i % classes`.
fn toy_split(n: usize, classes: usize) -> Split {
    let images = Matrix::from_fn(n, 2, |i, j| (i * 2 + j) as f32);
    Split::new(images, (0..n).map(|i| i % classes).collect()).unwrap()
}

fn write_dataset(dir: &Path, train: (&IdxImages, &[u8]), test: (&IdxImages, &[u8]), enc: IdxEncoding) {
    let ext = if enc == IdxEncoding::Gzip { ".gz" } else { "" };
    write_idx_images(dir.join(format!("train-images-idx3-ubyte{ext}")), train.0, enc).unwrap();
    write_idx_labels(dir.join(format!("train-labels-idx1-ubyte{ext}")), train.1, enc).unwrap();
    write_idx_images(dir.join(format!("t10k-images-idx3-ubyte{ext}")), test.0, enc).unwrap();
    write_idx_labels(dir.join(format!("t10k-labels-idx1-ubyte{ext}")), test.1, enc).unwrap();
}

fn imgs(count: usize, rows: usize, cols: usize) -> IdxImages {
    IdxImages::new(count, rows, cols, (0..count * rows * cols).map(|i| (i % 256) as u8).collect()).unwrap()
}

#[test]
fn embedded_subset_has_600_and_100_per_class() {
    let data = load("embedded", None).unwrap();
    assert_eq!(data.source, DataSource::Embedded);
    assert_eq!(data.source.to_string(), "embedded subset (600+100 per class)");
    assert_eq!((data.train.len(), data.test.len()), (6000, 1000));
    assert_eq!((data.classes, data.image_shape, data.input_dim()), (10, (28, 28), 784));
    assert!(data.train.class_indices().iter().all(|c| c.len() == 600));
    assert!(data.test.class_indices().iter().all(|c| c.len() == 100));
    let values = data.train.images.as_slice();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(values.contains(&1.0) && values.contains(&0.0));
    // Class-interleaved as in the source file, not sorted by class.
    assert_ne!(data.train.labels[..10], [data.train.labels[0]; 10]);
    assert!(embedded_provenance().contains("Zalando"));
    assert!(find("embedded", None).is_err());
}

/// Uses the real Fashion-MNIST only where it is installed.
#[test]
fn real_fashion_mnist_if_installed() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.join("train-images-idx3-ubyte.gz").is_file() && !dir.join("train-images-idx3-ubyte").is_file() {
        println!("skipped: Fashion-MNIST is not installed at {}", dir.display());
        return;
    }
    let data = load(dir.to_str().unwrap(), None).unwrap();
    assert_eq!((data.train.len(), data.test.len(), data.classes, data.image_shape), (60000, 10000, 10, (28, 28)));
    assert_eq!(data.source, DataSource::Directory(dir.to_path_buf()));

    // The embedded subset is exactly the first 600 / 100 of each class, in file order.
    let embedded = load("embedded", None).unwrap();
    for (full, sub, per_class) in [(&data.train, &embedded.train, 600), (&data.test, &embedded.test, 100)] {
        let mut taken = [0usize; 10];
        let keep: Vec<usize> = (0..full.len())
            .filter(|&i| {
                let t = &mut taken[full.labels[i]];
                *t += 1;
                *t <= per_class
            })
            .collect();
        assert_eq!(&full.select(&keep), sub);
    }
}

#[test]
fn loads_a_directory_raw_or_gzip() {
    for enc in [IdxEncoding::Raw, IdxEncoding::Gzip] {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), (&imgs(6, 2, 3), &[0, 1, 2, 0, 1, 2]), (&imgs(3, 2, 3), &[2, 1, 0]), enc);
        let data = load(dir.path().to_str().unwrap(), None).unwrap();
        assert_eq!((data.train.len(), data.test.len(), data.classes, data.image_shape), (6, 3, 3, (2, 3)));
        assert_eq!(data.train.images.shape(), (6, 6));
        assert_eq!(data.train.images.get(0, 5), 5.0 / 255.0);
        assert_eq!(data.test.labels, vec![2, 1, 0]);
        assert_eq!(data.source.to_string(), dir.path().display().to_string());
        assert_eq!(find(dir.path().to_str().unwrap(), None).unwrap(), dir.path());
    }
}

#[test]
fn named_dataset_found_via_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let sub = root.path().join("kmnist");
    std::fs::create_dir(&sub).unwrap();
    write_dataset(&sub, (&imgs(4, 2, 2), &[0, 1, 0, 1]), (&imgs(2, 2, 2), &[1, 0]), IdxEncoding::Gzip);
    assert_eq!(find("kmnist", Some(root.path())).unwrap(), sub);
    let data = load("KMNIST", Some(root.path())).unwrap();
    assert_eq!((data.name.as_str(), data.train.len()), ("kmnist", 4));
    // DIR itself is searched as well.
    assert_eq!(find("kmnist", Some(&sub)).unwrap(), sub);
}

#[test]
fn inconsistent_datasets_are_rejected() {
    type Part = (IdxImages, Vec<u8>);
    let cases: [(Part, Part, &str); 3] = [
        ((imgs(4, 2, 2), vec![0, 1, 0]), (imgs(2, 2, 2), vec![1, 0]), "4 images but 3 labels"),
        ((imgs(4, 2, 2), vec![0, 1, 0, 1]), (imgs(2, 3, 2), vec![1, 0]), "2×2"),
        ((imgs(4, 2, 2), vec![0, 0, 0, 0]), (imgs(2, 2, 2), vec![0, 0]), "at least 2 classes"),
    ];
    for (train, test, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), (&train.0, &train.1), (&test.0, &test.1), IdxEncoding::Raw);
        let err = load(dir.path().to_str().unwrap(), None).unwrap_err();
        assert!(matches!(err, DataError::Inconsistent { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn missing_dataset_error_lists_search_path() {
    let root = tempfile::tempdir().unwrap();
    match find("mnist", Some(root.path())) {
        Ok(found) => println!("skipped: mnist is installed at {}", found.display()),
        Err(err) => {
            let msg = err.to_string();
            let DataError::NotFound { searched, .. } = &err else { panic!("expected NotFound, got {err}") };
            assert_eq!(searched[0], root.path().join("mnist"));
            assert_eq!(searched[1], root.path());
            assert!(searched.contains(&Path::new("/usr/share/datasets/mnist").to_path_buf()));
            for dir in searched {
                assert!(msg.contains(&dir.display().to_string()), "{msg}");
            }
            assert!(msg.contains("--data"), "{msg}");
            assert!(!msg.contains('\n'));
        }
    }
    let err = load("no-such-dataset-or-dir", None).unwrap_err();
    assert!(matches!(err, DataError::UnknownDataset { .. }), "{err}");
    // A path that does not exist is said to be missing, not an unknown dataset name.
    let err = load("/nonexistent/fashion", None).unwrap_err();
    assert!(err.to_string().contains("no such directory") && err.to_string().contains("/nonexistent/fashion"), "{err}");
    let err = load(root.path().to_str().unwrap(), None).unwrap_err();
    assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");
}

#[test]
fn real_and_embedded_reading_agree_with_idx_reader() {
    let dir = tempfile::tempdir().unwrap();
    let images = imgs(3, 1, 2);
    write_idx_images(dir.path().join("i"), &images, IdxEncoding::Gzip).unwrap();
    write_idx_labels(dir.path().join("l"), &[5, 6, 7], IdxEncoding::Raw).unwrap();
    assert_eq!(read_idx_images(dir.path().join("i")).unwrap().to_matrix().shape(), (3, 2));
    assert_eq!(read_idx_labels(dir.path().join("l")).unwrap(), vec![5, 6, 7]);
}

#[test]
fn batches_cover_everything_in_order_without_seed() {
    let split = toy_split(10, 3);
    let batches: Vec<_> = split.batches(4, None).collect();
    assert_eq!(batches.iter().map(|b| b.labels.len()).collect::<Vec<_>>(), vec![4, 4, 2]);
    assert_eq!(split.batches(4, None).len(), 3);
    let all: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    for b in &batches {
        assert_eq!(b.images, split.images.select_rows(&b.indices));
        assert_eq!(b.labels, b.indices.iter().map(|&i| split.labels[i]).collect::<Vec<_>>());
    }
    assert_eq!(toy_split(0, 2).batches(3, Some(1)).count(), 0);
}

#[test]
fn shuffled_batches_are_a_deterministic_permutation() {
    let split = toy_split(103, 4);
    let order = |seed| split.batches(16, Some(seed)).flat_map(|b| b.indices).collect::<Vec<_>>();
    let a = order(7);
    assert_eq!(a, order(7));
    assert_ne!(a, order(8));
    assert_ne!(a, (0..103).collect::<Vec<_>>());
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..103).collect::<Vec<_>>());
}

#[test]
fn select_filter_take() {
    let split = toy_split(9, 3);
    let s = split.select(&[4, 0, 4]);
    assert_eq!(s.labels, vec![1, 0, 1]);
    assert_eq!(s.images.row(0), split.images.row(4));
    let f = split.filter_classes(&[0, 2]);
    assert_eq!(f.labels, vec![0, 2, 0, 2, 0, 2]);
    assert_eq!(f.images.row(1), split.images.row(2));
    assert_eq!(split.take(4).labels, vec![0, 1, 2, 0]);
    assert_eq!(split.take(100).len(), 9);
    assert!(split.take(0).is_empty());
    assert_eq!(split.class_indices(), vec![vec![0, 3, 6], vec![1, 4, 7], vec![2, 5, 8]]);
}

#[test]
fn per_class_subset_is_deterministic_and_checked() {
    let split = toy_split(60, 3).filter_classes(&[0, 2]); // classes 0 and 2, 20 each
    let a = split.per_class_subset(5, 1).unwrap();
    assert_eq!(a, split.per_class_subset(5, 1).unwrap());
    assert_ne!(a, split.per_class_subset(5, 2).unwrap());
    let counts = a.class_indices().iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(counts, vec![5, 0, 5]);
    match split.per_class_subset(21, 1) {
        Err(e @ DataError::NotEnoughExamples { class: 0, available: 20, requested: 21 }) => {
            assert!(e.to_string().contains("class 0"));
        }
        other => panic!("expected NotEnoughExamples, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batches_partition_any_split(n in 0usize..50, batch in 1usize..9, seed in proptest::option::of(any::<u64>())) {
        let split = toy_split(n, 3);
        let batches: Vec<_> = split.batches(batch, seed).collect();
        prop_assert_eq!(batches.len(), n.div_ceil(batch));
        prop_assert!(batches.iter().all(|b| !b.indices.is_empty() && b.indices.len() <= batch));
        let mut all: Vec<usize> = batches.into_iter().flat_map(|b| b.indices).collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
    }
}

#[test]
fn saved_dataset_specs_are_shown_under_the_loaded_name() {
    use bio_data::load::dataset_name;
    assert_eq!(dataset_name("embedded"), load("embedded", None).unwrap().name);
    assert_eq!(dataset_name("MNIST"), "mnist");
    assert_eq!(dataset_name("/data/mine"), "/data/mine");
}

#[test]
fn a_label_outside_the_classes_names_its_file_and_byte_offset() {
    // A named dataset has 10 classes: one test label byte set to 12 is corruption, not a 13th class.
    let root = tempfile::tempdir().unwrap();
    let sub = root.path().join("mnist");
    std::fs::create_dir(&sub).unwrap();
    let train: Vec<u8> = (0..20).map(|i| i % 10).collect();
    let mut test: Vec<u8> = (0..10).collect();
    test[7] = 12;
    write_dataset(&sub, (&imgs(20, 2, 2), &train), (&imgs(10, 2, 2), &test), IdxEncoding::Raw);
    let err = load("mnist", Some(root.path())).unwrap_err().to_string();
    assert!(err.contains("t10k-labels-idx1-ubyte"), "{err}");
    assert!(err.contains("label 12 of example 7 (byte offset 15)") && err.contains("10 classes of mnist"), "{err}");

    // A directory of one's own: the training split defines the classes, and a test label beyond
    // them is refused (gzip: the offset is in the decompressed data).
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), (&imgs(6, 2, 2), &[0, 1, 2, 0, 1, 2]), (&imgs(3, 2, 2), &[2, 5, 0]), IdxEncoding::Gzip);
    let err = load(dir.path().to_str().unwrap(), None).unwrap_err().to_string();
    assert!(err.contains("t10k-labels-idx1-ubyte.gz"), "{err}");
    assert!(err.contains("label 5 of example 1 (byte offset 9 of the decompressed data)"), "{err}");
    assert!(err.contains("3 classes of the training split"), "{err}");

    // A corrupt training label leaves classes without any example: refused, naming that label.
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), (&imgs(6, 2, 2), &[0, 1, 0, 12, 1, 0]), (&imgs(2, 2, 2), &[1, 0]), IdxEncoding::Raw);
    let err = load(dir.path().to_str().unwrap(), None).unwrap_err().to_string();
    assert!(err.contains("train-labels-idx1-ubyte"), "{err}");
    assert!(err.contains("label 12 of example 3 (byte offset 11)") && err.contains("class 2 has no example"), "{err}");
}
