//! bio-eval
