//! Math core of biorule: the [`Backend`] and [`LearningRule`] traits, the models, the registered
//! learning rules (`bio`, `bp`, `kh`, `softhebb`, `conv`, `bpconv`: [`rules::rules`], one folder
//! each under `rules/`) with their settings and validation, and the math of the metrics. No I/O.
//!
#![doc = include_str!("../README.md")]

pub mod backend;
pub mod conformance;
pub mod error;
pub mod forward;
pub mod model;
pub mod params;
pub mod pixels;
pub mod rules;
pub mod tensor;
pub mod train;

pub use backend::{
    AdamStep, Backend, Binary, Dim, ElementwiseOps, LinalgOps, OptimOps, PlasticityOps, PlasticityStep, Reduce,
    ReduceOps, ReferenceBackend, SelectOps, TensorStore, Unary, WeightChange,
};
pub use error::CoreError;
pub use model::{Classifier, Params};
pub use params::{
    BioConfig, BioParams, BpConfig, BpParams, Competition, InitSign, Mechanisms, Optimizer, ReadoutRule, ScalingNorm,
};
pub use rules::{AnyModel, BackpropRule, BatchReport, BioPopulation, BioRule, LearningRule, SavedModel};
pub use rules::{BioNet, BpNet, CompetitionBackward, SurrogateBio};
pub use tensor::Matrix;
