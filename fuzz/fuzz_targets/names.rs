//! Names a client or upstream sends as text: digests, repository names,
//! tags, manifest references, and manifest media type detection. What
//! parses must print back to the same text (so that what is checked is
//! what is used), and the parsed parts must satisfy the grammar's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::reference::{MAX_NAME_LEN, MAX_TAG_LEN};
use shoal_proto::{Digest, Reference, RepoName, Tag, media};

fuzz_target!(|data: &[u8]| {
    if let Some(kind) = media::detect_media_type(data) {
        let _ = (media::is_manifest_media_type(&kind), media::is_index(&kind));
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.to_string(), s);
        assert_eq!(Digest::parse(&d.to_string()), Ok(d));
    }
    if let Ok(n) = RepoName::parse(s) {
        assert_eq!(n.as_str(), s);
        assert!(s.len() <= MAX_NAME_LEN);
        assert!(!s.split('/').any(|c| c.is_empty() || c == "." || c == ".."));
    }
    if let Ok(t) = Tag::parse(s) {
        assert_eq!(t.as_str(), s);
        assert!(!s.is_empty() && s.len() <= MAX_TAG_LEN);
        assert!(!s.contains(['/', ':']));
    }
    if let Ok(r) = Reference::parse(s) {
        assert_eq!(r.to_string(), s);
        assert_eq!(Reference::parse(&r.to_string()), Ok(r));
    }
});
