//! A saved model's parameters as they were before training, recomputed from its configuration and
//! seed (initialisation is deterministic), e.g. to picture what training changed.

use bio_core::{Params, SavedModel};

/// The parameters `model` started from when it was initialised with `seed` (the run's seed, which
/// `ModelFile::seed` records). Exact as long as the initialisation code has not changed since the
/// model was trained.
pub fn initial_params(model: &SavedModel, seed: u64) -> Result<Params, bio_core::CoreError> {
    model.initial_params(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bio_core::{BioNet, BpNet, ReferenceBackend};
    use bio_core::{BioParams, BpParams};

    #[test]
    fn an_untrained_model_is_its_own_initialisation() {
        let bio = BioParams { hidden: vec![6], receptive_field: Some(2), ..Default::default() }.check().unwrap();
        let saved = BioNet::init(&ReferenceBackend, bio, 16, 3, 7).to_saved();
        assert_eq!(&initial_params(&saved, 7).unwrap(), saved.params());
        assert_ne!(&initial_params(&saved, 8).unwrap(), saved.params(), "the seed matters");
        let bp = BpParams { hidden: vec![5], ..Default::default() }.check().unwrap();
        let saved = BpNet::init(&ReferenceBackend, bp, 16, 3, 7).to_saved();
        assert_eq!(&initial_params(&saved, 7).unwrap(), saved.params());
    }
}
