//! Tests of the tracker: the API in process (through `app`, without a
//! socket) and the real binary on loopback. One test binary, shared
//! helpers in `util`.

mod api;
mod binary;
mod seed;
mod util;
