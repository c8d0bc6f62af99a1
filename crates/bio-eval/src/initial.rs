//! A saved model's parameters as they were before training, recomputed from its configuration and
//! seed (initialisation is deterministic), e.g. to picture what training changed.

use bio_core::{BioNet, BpNet, Params, ReferenceBackend, SavedModel};

/// The parameters `model` started from when it was initialised with `seed` (the run's seed, which
/// `ModelFile::seed` records). Exact as long as the initialisation code has not changed since the
/// model was trained.
pub fn initial_params(model: &SavedModel, seed: u64) -> Params {
    let b = ReferenceBackend;
    match model {
        SavedModel::Bio { config, input_dim, classes, .. } => {
            BioNet::init(&b, config.clone(), *input_dim, *classes, seed).to_saved().params().clone()
        }
        SavedModel::Bp { config, input_dim, classes, .. } => {
            BpNet::init(&b, config.clone(), *input_dim, *classes, seed).to_saved().params().clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bio_core::{BioParams, BpParams};

    #[test]
    fn an_untrained_model_is_its_own_initialisation() {
        let bio = BioParams { hidden: vec![6], receptive_field: Some(2), ..Default::default() }.check().unwrap();
        let saved = BioNet::init(&ReferenceBackend, bio, 16, 3, 7).to_saved();
        assert_eq!(&initial_params(&saved, 7), saved.params());
        assert_ne!(&initial_params(&saved, 8), saved.params(), "the seed matters");
        let bp = BpParams { hidden: vec![5], ..Default::default() }.check().unwrap();
        let saved = BpNet::init(&ReferenceBackend, bp, 16, 3, 7).to_saved();
        assert_eq!(&initial_params(&saved, 7), saved.params());
    }
}
