//! The OCI distribution pull API as HTTP: path parsing, `Range` handling,
//! and the responses for manifests and blobs. Used by the agent's
//! client-facing mirror and by the supernode's API for agents.

mod error;
mod path;
mod range;
mod response;

pub use error::{ErrorBody, ErrorEntry, RegistryError};
pub use path::{V2Path, query_param, split_v2_path};
pub use range::{ByteRange, parse_range};
pub use response::{API_VERSION_HEADER, blob_response, manifest_response, v2_base_response};
