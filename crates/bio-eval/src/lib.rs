//! Evaluation instruments of biorule: clean accuracy and the confusion matrix, adversarial attacks,
//! few-shot protocols and biological metrics, for any model ([`bio_core::Classifier`]) on any backend.
//! No file I/O except the picture and report writers, which take explicit paths.
//!
#![doc = include_str!("../README.md")]

pub mod accuracy;
pub mod apgd;
pub mod attack;
pub mod continual;
pub mod ensemble;
pub mod error;
pub mod export;
pub mod fewshot;
pub mod initial;
pub mod layers;
pub mod metrics;
pub mod oneshot;
pub mod plot;

pub use accuracy::{ConfusionMatrix, Evaluation, evaluate, for_each_batch};
pub use attack::{
    Attack, AttackName, AttackParams, DEFAULT_EPS_GRID, MaskingFlag, Method, Norm, RobustPoint, RobustnessCurve,
    TargetMode, masking_check, perturb, robustness_curve,
};
pub use ensemble::{
    EnsembleParams, EnsemblePoint, EnsembleReport, Helpers, SanityCheck, SanityFlag, StageResult, strongest, worst_case,
};
pub use error::EvalError;
pub use export::{
    bio_forward_text, bp_forward_text, export_safetensors, exported_params, forward_pass, from_safetensors,
    model_metadata, read_safetensors, to_safetensors,
};
pub use fewshot::{
    EpisodeParams, FewLabelData, FewLabelParams, FewLabelResult, FewShotResult, TrainSpec, episodic, few_labels,
    parse_classes, split_classes,
};
pub use initial::initial_params;
pub use metrics::{
    BiologicalReport, Diversity, LayerDiversity, LayerMetrics, LayerSelectivity, ParameterCount,
    SelectivityAccumulator, biological_report, class_selectivity, dead_unit_warnings, diversity, input_diversity,
    layer_diversity, parameter_count, synapses_kept,
};
pub use oneshot::{OneShotRow, OneShotRuns};
pub use plot::{
    Drawn, LabelledPoint, Series, histogram, image_grid, lattice_histogram, line_chart, matrix_panels, pareto_chart,
    receptive_field_rows,
};
