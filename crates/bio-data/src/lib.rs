//! bio-data
