//! Disk I/O of biorule: reads IDX datasets (Fashion-MNIST, MNIST, KMNIST, an embedded subset) into
//! batches, and writes model files and checkpoints atomically.
//!
#![doc = include_str!("../README.md")]

pub mod dataset;
pub mod embedded;
pub mod error;
pub mod idx;
pub mod load;
pub mod model_dir;
pub mod omniglot;
pub mod store;
pub mod sysmem;

pub use dataset::{Batch, Batches, DataSource, Dataset, Split, shuffled_indices};
pub use embedded::embedded_provenance;
pub use error::DataError;
pub use idx::{
    IdxEncoding, IdxImages, encode_idx_images, encode_idx_labels, parse_idx_images, parse_idx_labels, read_idx_images,
    read_idx_labels, write_idx_images, write_idx_labels,
};
pub use load::{class_names, find, load, search_path};
pub use model_dir::{ModelFile, TrainingState, load_model, load_state, save_model, save_state};
pub use store::{
    decode_checkpoint, encode_checkpoint, ensure_output_dir, load_checkpoint, read_json, save_checkpoint,
    try_encode_checkpoint, write_atomic, write_json,
};
pub use sysmem::available_memory;
