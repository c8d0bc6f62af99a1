//! bio-cuda
