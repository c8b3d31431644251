//! What the agent's registry API parses from a client before anything
//! else: the request path (`/v2/<name>/manifests/<ref>`, `/blobs/<digest>`),
//! query parameters, and the `Range` header. A parsed range must lie within
//! the blob and be non-empty; parsed path parts must be slices of the path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_agent::registry::{V2Path, parse_range, query_param, split_v2_path};

fuzz_target!(|data: &[u8]| {
    // First 8 bytes: the blob size; the rest: header or path text.
    let (size, rest) = data.split_at(data.len().min(8));
    let mut b = [0u8; 8];
    b[..size.len()].copy_from_slice(size);
    let size = u64::from_le_bytes(b);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };

    match parse_range(Some(text), size) {
        Ok(Some(r)) => {
            assert!(
                r.start < r.end && r.end <= size,
                "{text:?} of {size}: {r:?}"
            );
        }
        Ok(None) => panic!("a present header parsed as absent"),
        Err(_) => {}
    }
    assert!(matches!(parse_range(None, size), Ok(None)));

    match split_v2_path(text) {
        V2Path::Manifest { name, reference } => {
            assert!(text.contains(name) && text.ends_with(reference));
        }
        V2Path::Blob { name, digest } => {
            assert!(text.contains(name) && text.ends_with(digest));
        }
        V2Path::Base => assert!(text == "/v2" || text == "/v2/"),
        V2Path::Unsupported(_) | V2Path::NotFound => {}
    }
    if let Ok(uri) = format!("/v2/?{text}").parse::<http::Uri>() {
        let _ = query_param(&uri, "n");
    }
});
