//! The `Authorization: Shoal ts=…,sig=…` header every daemon parses from
//! unauthenticated clients. Arbitrary header text must be refused without a
//! panic (and never accepted: nobody without the key can sign), and any
//! request signed with the key must verify, with the method, path and body
//! taken from the input.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use shoal_proto::wire::{ClusterSecret, HttpAuthError};

fuzz_target!(|data: &[u8]| {
    let auth = ClusterSecret::new(*b"fuzzing cluster secret")
        .expect("valid secret")
        .http_auth();
    // First 8 bytes: the clock; the rest, split at the first NUL: header or
    // method/path text, then the body.
    let (clock, rest) = data.split_at(data.len().min(8));
    let mut secs = [0u8; 8];
    secs[..clock.len()].copy_from_slice(clock);
    // Any u64 of seconds would overflow SystemTime; keep to 2^40.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from_le_bytes(secs) >> 24);
    let (text, body) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let text = String::from_utf8_lossy(text);

    let verdict = auth.verify(&text, "GET", "/v2/", body, now);
    assert!(
        verdict.is_err() || auth.sign("GET", "/v2/", body, now) == text,
        "an unsigned header was accepted: {text:?}"
    );
    if let Err(HttpAuthError::Expired {
        skew_secs,
        window_secs,
    }) = verdict
    {
        assert!(skew_secs > window_secs);
    }

    let (method, path) = text.split_once(' ').unwrap_or(("POST", &text));
    let header = auth.sign(method, path, body, now);
    assert_eq!(auth.verify(&header, method, path, body, now), Ok(()));
});
