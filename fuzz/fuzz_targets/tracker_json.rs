//! The tracker API's JSON bodies: announces (tracker side, then validated
//! with `into_parts`), announce replies and swarm views (agent side) and
//! seeding requests (supernode side). What decodes must survive a JSON
//! round trip; a validated announce must carry a valid repository name and
//! a bounded upstream name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shoal_fuzz::check_bitfield;
use shoal_proto::RepoName;
use shoal_proto::tracker_wire::{AnnounceRequest, AnnounceResponse, SeedRequest, SwarmView};

fn round_trip<T>(input: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let v = serde_json::from_slice::<T>(input).ok()?;
    let json = serde_json::to_vec(&v).expect("encodes");
    assert_eq!(serde_json::from_slice::<T>(&json).ok().as_ref(), Some(&v));
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    if let Some(req) = round_trip::<AnnounceRequest>(data) {
        if let Some(bits) = &req.pieces {
            check_bitfield(bits);
        }
        if let Ok((announce, origin)) = req.clone().into_parts() {
            assert_eq!(announce.blob, req.blob);
            assert!(req.upload_load <= 100);
            assert!(!origin.upstream.is_empty() && origin.upstream.len() <= 255);
            assert_eq!(
                RepoName::parse(origin.repo.as_str()).as_ref(),
                Ok(&origin.repo)
            );
        }
    }
    round_trip::<AnnounceResponse>(data);
    round_trip::<SwarmView>(data);
    round_trip::<SeedRequest>(data);
});
