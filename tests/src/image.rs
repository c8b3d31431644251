//! Seeded multi-platform OCI images and pushing them: the implementation
//! lives in `shoal-bench` (which generates the benchmark images with it);
//! this module keeps the tests' paths.

pub use shoal_bench::image::*;
