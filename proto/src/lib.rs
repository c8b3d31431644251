//! Shoal's protocol without I/O.
//!
//! Everything here is deterministic: no sockets, no tokio, no clock reads.
//! The daemons wrap these types with I/O; the benchmark simulator drives the
//! same code with a virtual clock.
//!
//! - [`digest`]: content digests (`sha256:<hex>`), parsed and validated.
//! - [`reference`](mod@reference): repository names and tags per the OCI distribution spec.
//! - [`media`]: manifest media types, and telling an index from an image
//!   manifest.
//! - [`piece`]: how a blob is cut into pieces ([`PieceMap`]), built while
//!   streaming ([`PieceHasher`]) and used to verify each received piece.
//! - [`bitfield`]: which pieces a peer holds.
//! - [`frame`]: length-prefixed frames with a size limit per [`Message`]
//!   type, and the incremental [`FrameDecoder`]. Frame bodies are encoded by
//!   a private `codec` module, the only place that knows the wire encoding
//!   (bincode 1.3).
//! - [`wire`]: peer-to-peer messages (piece requests, `have` updates), the
//!   cluster secret and signed HTTP requests.
//! - [`tracker_wire`]: the JSON bodies of the tracker's API.
//! - [`rate`]: the token bucket behind every rate cap; [`units`]: rates and
//!   sizes as command lines spell them; [`time`]: the explicit clock.
//! - [`swarm`]: the download scheduler, the upload and seeding policies;
//!   [`tracker_state`]: the tracker's soft state and peer ranking;
//!   [`sim`]: a simulated cluster driving the same code with a virtual clock.
#![warn(missing_docs)]

pub mod bitfield;
mod codec;
pub mod digest;
pub mod frame;
pub mod media;
pub mod piece;
pub mod rate;
pub mod reference;
pub mod sim;
pub mod swarm;
pub mod time;
pub mod tracker_state;
pub mod tracker_wire;
pub mod units;
pub mod wire;

pub use bitfield::{Bitfield, BitfieldError};
pub use digest::{ChainHasher, Digest, DigestError, Hasher};
pub use frame::{FrameDecoder, FrameError, Message, decode_frame, encode_frame};
pub use piece::{PieceError, PieceHasher, PieceMap, PieceMapError, piece_size_for};
pub use reference::{NameError, Reference, RepoName, Tag};
