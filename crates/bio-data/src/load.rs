//! Locating and loading a dataset by name or directory: Fashion-MNIST / MNIST / KMNIST in the IDX
//! layout, the embedded subset, Omniglot background small 1.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::dataset::{DataSource, Dataset};
use crate::embedded;
use crate::error::DataError;
use crate::idx::{read_idx_images, read_idx_labels};

/// The named datasets [`load`] and [`find`] know (besides `embedded`), all in the MNIST IDX layout.
pub const KNOWN_DATASETS: [&str; 3] = ["fashion-mnist", "mnist", "kmnist"];

/// Human-readable names of the classes of a known dataset (by [`Dataset::name`]), for tables and
/// plots; `None` for a dataset read from a directory of unknown content.
pub fn class_names(dataset: &str) -> Option<[&'static str; 10]> {
    match dataset {
        "fashion-mnist" | crate::embedded::EMBEDDED_NAME => Some([
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ]),
        "mnist" => Some(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
        // KMNIST's classes are hiragana characters, romanized as in its documentation.
        "kmnist" => Some(["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]),
        _ => None,
    }
}

/// Environment variable naming an extra directory to search for datasets.
pub const DATA_DIR_ENV: &str = "BIO_DATA_DIR";

/// System-wide dataset root (where Debian's `dataset-fashion-mnist` installs its files).
pub const SYSTEM_DATA_ROOT: &str = "/usr/share/datasets";

/// The four IDX files of a dataset, each optionally with a `.gz` suffix, in the order
/// train images, train labels, test images, test labels.
pub const IDX_FILE_NAMES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// Loads a dataset.
///
/// `spec` is `fashion-mnist`, `mnist` or `kmnist` (searched for as described in [`search_path`]),
/// `embedded` (the compiled-in Fashion-MNIST subset), or the path of a directory holding the four IDX
/// files ([`IDX_FILE_NAMES`], each raw or `.gz`). Known names take precedence over directories of the
/// same name; write `./mnist` to mean a directory. `data_dir` is the CLI's `--data DIR`.
pub fn load(spec: &str, data_dir: Option<&Path>) -> Result<Dataset, DataError> {
    if is_embedded(spec) {
        return embedded::load_embedded();
    }
    if crate::omniglot::small1_side(spec).is_some() {
        return crate::omniglot::load_small1(spec);
    }
    let dir = find(spec, data_dir)?;
    let name = match known_name(spec) {
        Some(name) => name.to_string(),
        None => dir.file_name().map_or_else(|| spec.to_string(), |n| n.to_string_lossy().into_owned()),
    };
    load_dir(&name, &dir, known_name(spec).map(|_| KNOWN_CLASSES))
}

/// The name [`load`] gives the dataset `spec` names (`embedded` → `fashion-mnist-embedded`,
/// `MNIST` → `mnist`), without reading it; a directory keeps the spec as written. For front ends
/// that show a saved model's dataset (which records the spec) under the name every other output
/// uses.
pub fn dataset_name(spec: &str) -> String {
    if is_embedded(spec) {
        crate::embedded::EMBEDDED_NAME.to_string()
    } else {
        known_name(spec).map_or_else(|| spec.to_string(), str::to_string)
    }
}

/// Classes of every named dataset ([`KNOWN_DATASETS`]): a label file of one of them holding a
/// larger label is corrupt, not a dataset with more classes.
pub const KNOWN_CLASSES: usize = 10;

/// Finds the directory holding the IDX files for `spec` (see [`load`]) without reading them.
///
/// For a named dataset the error lists every directory searched and how to obtain the files.
pub fn find(spec: &str, data_dir: Option<&Path>) -> Result<PathBuf, DataError> {
    if is_embedded(spec) {
        return Err(DataError::Invalid {
            what: "the `embedded` dataset is compiled into the program and has no directory".into(),
        });
    }
    if let Some(name) = known_name(spec) {
        return find_among(name, &search_path(name, data_dir));
    }
    let dir = Path::new(spec);
    if !dir.is_dir() {
        // A spec written as a path is a directory that is not there, not an unknown name.
        if spec.contains(std::path::MAIN_SEPARATOR) || spec.contains('/') || spec.starts_with('.') {
            let hint = if dir.exists() { "it is not a directory" } else { "no such directory" };
            return Err(DataError::NotFound {
                dataset: spec.to_string(),
                searched: vec![dir.to_path_buf()],
                hint: hint.into(),
            });
        }
        return Err(DataError::UnknownDataset { spec: spec.to_string() });
    }
    match locate_files(dir) {
        Ok(_) => Ok(dir.to_path_buf()),
        Err(missing) => Err(DataError::NotFound {
            dataset: spec.to_string(),
            searched: vec![dir.to_path_buf()],
            hint: format!("the directory lacks {} (raw or .gz)", missing.join(", ")),
        }),
    }
}

/// The directories searched for the named dataset `name`, in order: `data_dir/<name>` and
/// `data_dir`, `$BIO_DATA_DIR/<name>` and `$BIO_DATA_DIR`, the user cache
/// (`<cache dir>/biorule/<name>`, e.g. `~/.cache/biorule/<name>`), and `/usr/share/datasets/<name>`.
pub fn search_path(name: &str, data_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let env_dir = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
    for root in data_dir.map(Path::to_path_buf).into_iter().chain(env_dir) {
        dirs.push(root.join(name));
        dirs.push(root);
    }
    if let Some(cache) = dirs::cache_dir() {
        dirs.push(cache.join("biorule").join(name));
    }
    dirs.push(Path::new(SYSTEM_DATA_ROOT).join(name));
    dirs
}

/// Returns the first of `candidates` that holds all four IDX files, or a [`DataError::NotFound`].
pub(crate) fn find_among(name: &str, candidates: &[PathBuf]) -> Result<PathBuf, DataError> {
    let mut partial = Vec::new();
    for dir in candidates {
        match locate_files(dir) {
            Ok(_) => return Ok(dir.clone()),
            Err(missing) if missing.len() < IDX_FILE_NAMES.len() => {
                partial.push(format!("{} lacks {}", dir.display(), missing.join(", ")));
            }
            Err(_) => {}
        }
    }
    let mut hint = how_to_get(name);
    if !partial.is_empty() {
        hint.push_str(&format!(" (incomplete: {})", partial.join("; ")));
    }
    Err(DataError::NotFound { dataset: name.to_string(), searched: candidates.to_vec(), hint })
}

fn how_to_get(name: &str) -> String {
    let source = match name {
        "fashion-mnist" => {
            "run `apt-get install dataset-fashion-mnist`, or download the four IDX files from \
             https://github.com/zalandoresearch/fashion-mnist"
        }
        "mnist" => "download the four IDX files of MNIST, e.g. from https://ossci-datasets.s3.amazonaws.com/mnist/",
        "kmnist" => {
            "download the four IDX files of Kuzushiji-MNIST (MNIST format) from https://github.com/rois-codh/kmnist"
        }
        _ => "download the four IDX files",
    };
    format!(
        "to get it, {source} and put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte \
         and t10k-labels-idx1-ubyte (each raw or .gz) into one of those directories or into DIR given with \
         `--data DIR`; the `embedded` dataset needs no files"
    )
}

fn is_embedded(spec: &str) -> bool {
    spec.eq_ignore_ascii_case("embedded")
}

fn known_name(spec: &str) -> Option<&'static str> {
    KNOWN_DATASETS.into_iter().find(|n| spec.eq_ignore_ascii_case(n))
}

/// The paths of the four IDX files in `dir` (raw preferred over `.gz`), or the names of those missing.
fn locate_files(dir: &Path) -> Result<[PathBuf; 4], Vec<&'static str>> {
    let mut missing = Vec::new();
    let found = IDX_FILE_NAMES.map(|base| {
        let raw = dir.join(base);
        let gz = dir.join(format!("{base}.gz"));
        if raw.is_file() {
            raw
        } else if gz.is_file() {
            gz
        } else {
            missing.push(base);
            raw
        }
    });
    if missing.is_empty() { Ok(found) } else { Err(missing) }
}

/// Loads the four IDX files of `dir`. Labels are checked against `declared` classes (a named
/// dataset's), or else against the classes of the training split: every label `0..=max` of the
/// training labels must occur there, and every test label must be one of them. A label outside is
/// an error naming its file and byte offset ([`crate::idx::check_labels`]).
fn load_dir(name: &str, dir: &Path, declared: Option<usize>) -> Result<Dataset, DataError> {
    let [train_images, train_labels, test_images, test_labels] =
        locate_files(dir).map_err(|missing| DataError::NotFound {
            dataset: name.to_string(),
            searched: vec![dir.to_path_buf()],
            hint: format!("the directory lacks {}", missing.join(", ")),
        })?;
    let train = (read_idx_images(&train_images)?, read_idx_labels(&train_labels)?);
    let test = (read_idx_images(&test_images)?, read_idx_labels(&test_labels)?);
    let (classes, of) = match declared {
        Some(c) => (c, format!("the {c} classes of {name}")),
        None => {
            let classes = train.1.iter().max().map_or(0, |&m| usize::from(m) + 1);
            let mut seen = vec![false; classes];
            for &l in &train.1 {
                seen[usize::from(l)] = true;
            }
            if let Some(missing) = seen.iter().position(|s| !s) {
                // The largest label is the suspect: a class below it that never occurs says so.
                let of = format!("the classes of the training split (class {missing} has no example)");
                return Err(crate::idx::check_labels(&train.1, classes - 1, &of, &train_labels)
                    .err()
                    .unwrap_or_else(|| DataError::malformed(&train_labels, of)));
            }
            (classes, format!("the {classes} classes of the training split"))
        }
    };
    crate::idx::check_labels(&train.1, classes, &of, &train_labels)?;
    crate::idx::check_labels(&test.1, classes, &of, &test_labels)?;
    Dataset::from_idx(name, DataSource::Directory(dir.to_path_buf()), train, test)
}

/// Where a dataset came from, as outputs show it.
impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Embedded => {
                write!(f, "embedded subset ({}+{} per class)", embedded::TRAIN_PER_CLASS, embedded::TEST_PER_CLASS)
            }
            DataSource::Directory(dir) => write!(f, "{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_among_lists_candidates_and_partial_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let partial = tmp.path().join("partial");
        std::fs::create_dir(&partial).unwrap();
        std::fs::write(partial.join("train-images-idx3-ubyte.gz"), b"x").unwrap();
        let candidates = vec![tmp.path().join("nope"), partial.clone()];
        let err = find_among("fashion-mnist", &candidates).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::NotFound { ref searched, .. } if searched == &candidates), "{msg}");
        assert!(msg.contains("apt-get install dataset-fashion-mnist"), "{msg}");
        assert!(msg.contains(&partial.display().to_string()), "{msg}");
        assert!(msg.contains("t10k-labels-idx1-ubyte"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn search_path_order() {
        let dirs = search_path("mnist", Some(Path::new("/data")));
        assert_eq!(dirs[0], Path::new("/data/mnist"));
        assert_eq!(dirs[1], Path::new("/data"));
        assert_eq!(dirs.last().unwrap(), Path::new("/usr/share/datasets/mnist"));
    }
}
