//! Manifest media types of the OCI image spec and Docker's schema 2.
//!
//! The agent must ask the upstream for every modern manifest kind (a registry
//! answers with the first kind it has that the client accepts), must tell an
//! index (a list of per-platform manifests) from an image manifest, and must
//! recognise the legacy schema 1 format so that it can refuse it clearly:
//! schema 1 signed manifests are not content-addressed the way the rest of
//! Shoal's trust chain assumes. Some OCI documents carry no `mediaType`
//! field at all; [`detect_media_type`] infers the kind from their shape.

use serde::Deserialize;
use serde::de::IgnoredAny;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform), schema 2.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 1 signed manifest (legacy; recognised only to be refused).
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker schema 1 unsigned manifest (legacy; recognised only to be refused).
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// The manifest kinds Shoal fetches and serves, indexes first, in the order
/// to list them in an upstream `Accept` header.
pub const MANIFEST_ACCEPT: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST_V2,
];

/// [`MANIFEST_ACCEPT`] joined into one `Accept` header value.
pub const MANIFEST_ACCEPT_HEADER: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The bare media type of a header value: parameters (`; charset=…`) and
/// surrounding whitespace removed.
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

fn is_one_of(media_type: &str, kinds: &[&str]) -> bool {
    let m = essence(media_type);
    kinds.iter().any(|k| k.eq_ignore_ascii_case(m))
}

/// Whether `media_type` is one of the four modern manifest kinds in
/// [`MANIFEST_ACCEPT`]. Schema 1 is not: see [`is_schema1`].
///
/// Parameters and ASCII case are ignored, so a `Content-Type` header value
/// can be passed as is.
pub fn is_manifest_media_type(media_type: &str) -> bool {
    is_one_of(media_type, &MANIFEST_ACCEPT)
}

/// Whether `media_type` is an index: an OCI image index or a Docker manifest
/// list. Parameters and ASCII case are ignored.
pub fn is_index(media_type: &str) -> bool {
    is_one_of(media_type, &[OCI_INDEX, DOCKER_MANIFEST_LIST])
}

/// Whether `media_type` is a legacy Docker schema 1 manifest, signed or not.
/// Parameters and ASCII case are ignored.
pub fn is_schema1(media_type: &str) -> bool {
    is_one_of(media_type, &[DOCKER_MANIFEST_V1_SIGNED, DOCKER_MANIFEST_V1])
}

/// The fields that tell manifest kinds apart. `IgnoredAny` records that a
/// field is present without allocating for its value.
#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<IgnoredAny>,
    manifests: Option<IgnoredAny>,
    config: Option<IgnoredAny>,
    layers: Option<IgnoredAny>,
    #[serde(rename = "fsLayers")]
    fs_layers: Option<IgnoredAny>,
    signatures: Option<IgnoredAny>,
}

/// The media type of a manifest document.
///
/// Returns the JSON `mediaType` field when there is one, whatever it says
/// (check it with [`is_manifest_media_type`]). Without one, the kind is
/// inferred from the document's shape: `manifests` means an OCI index,
/// `config` and `layers` an OCI image manifest, `fsLayers` a schema 1
/// manifest (signed when it has `signatures`). Returns `None` for anything
/// that is not a JSON object, has a non-string `mediaType`, or is ambiguous.
pub fn detect_media_type(bytes: &[u8]) -> Option<String> {
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    if let Some(m) = shape.media_type {
        return Some(m);
    }
    let index = shape.manifests.is_some();
    let image = shape.config.is_some() && shape.layers.is_some();
    let schema1 = shape.fs_layers.is_some();
    let kind = match (index, image, schema1) {
        (true, false, false) => OCI_INDEX,
        (false, true, false) => OCI_MANIFEST,
        (false, false, true) if shape.signatures.is_some() => DOCKER_MANIFEST_V1_SIGNED,
        (false, false, true) => DOCKER_MANIFEST_V1,
        _ => return None,
    };
    // Every manifest kind carries `schemaVersion`; without it this is some
    // other JSON document that happens to share a field name.
    shape.schema_version.map(|_| kind.to_owned())
}

/// A blob descriptor of an image manifest, as far as [`image_blobs`] reads it.
#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    /// Foreign (non-distributable) layers name where to fetch them instead
    /// of the registry.
    #[serde(default)]
    urls: Vec<IgnoredAny>,
}

/// The blobs of an image manifest: its config, then its layers in order,
/// each once. Layers that list `urls` (foreign, non-distributable layers
/// that clients fetch elsewhere) and descriptors with a malformed digest
/// are left out. Returns `None` for anything that is not an image manifest
/// (an index, schema 1, not JSON).
pub fn image_blobs(bytes: &[u8]) -> Option<Vec<crate::Digest>> {
    #[derive(Deserialize)]
    struct Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    }
    let media_type = detect_media_type(bytes)?;
    if !is_one_of(&media_type, &[OCI_MANIFEST, DOCKER_MANIFEST_V2]) {
        return None;
    }
    let image: Image = serde_json::from_slice(bytes).ok()?;
    let mut blobs: Vec<crate::Digest> = Vec::new();
    for d in std::iter::once(&image.config).chain(&image.layers) {
        if let Ok(digest) = crate::Digest::parse(&d.digest)
            && d.urls.is_empty()
            && !blobs.contains(&digest)
        {
            blobs.push(digest);
        }
    }
    Some(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_lists_exactly_the_accept_kinds() {
        assert_eq!(MANIFEST_ACCEPT_HEADER, MANIFEST_ACCEPT.join(", "));
        for m in MANIFEST_ACCEPT {
            assert!(is_manifest_media_type(m), "{m}");
        }
    }

    #[test]
    fn classifies_media_types() {
        assert!(is_index(OCI_INDEX));
        assert!(is_index(DOCKER_MANIFEST_LIST));
        assert!(!is_index(OCI_MANIFEST));
        assert!(!is_index(DOCKER_MANIFEST_V2));
        assert!(!is_manifest_media_type(DOCKER_MANIFEST_V1_SIGNED));
        assert!(!is_manifest_media_type(DOCKER_MANIFEST_V1));
        assert!(is_schema1(DOCKER_MANIFEST_V1_SIGNED));
        assert!(is_schema1(DOCKER_MANIFEST_V1));
        assert!(!is_schema1(OCI_MANIFEST));
        for junk in ["", "application/json", "application/octet-stream", "*/*"] {
            assert!(!is_manifest_media_type(junk), "{junk}");
            assert!(!is_index(junk), "{junk}");
        }
    }

    #[test]
    fn ignores_parameters_and_case() {
        assert!(is_manifest_media_type(
            " Application/VND.oci.image.manifest.v1+json ; charset=utf-8"
        ));
        assert!(is_index("application/vnd.oci.image.index.v1+json;q=0.9"));
        assert!(!is_manifest_media_type(
            "application/vnd.oci.image.manifest.v1+jsonx"
        ));
    }

    #[test]
    fn reads_explicit_media_type() {
        let doc = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{},"layers":[]}"#;
        assert_eq!(detect_media_type(doc).as_deref(), Some(DOCKER_MANIFEST_V2));
        let list = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert_eq!(
            detect_media_type(list).as_deref(),
            Some(DOCKER_MANIFEST_LIST)
        );
        // An unknown type is reported as is; the caller decides.
        let odd = br#"{"mediaType":"application/x-custom"}"#;
        assert_eq!(
            detect_media_type(odd).as_deref(),
            Some("application/x-custom")
        );
    }

    #[test]
    fn infers_oci_kinds_without_media_type() {
        let index = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:00","size":1}]}"#;
        assert_eq!(detect_media_type(index).as_deref(), Some(OCI_INDEX));
        let image = br#"{"schemaVersion":2,"config":{"size":2},"layers":[],"annotations":{}}"#;
        assert_eq!(detect_media_type(image).as_deref(), Some(OCI_MANIFEST));
    }

    #[test]
    fn recognises_schema1() {
        let signed = br#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[],"signatures":[]}"#;
        assert_eq!(
            detect_media_type(signed).as_deref(),
            Some(DOCKER_MANIFEST_V1_SIGNED)
        );
        let unsigned = br#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        assert_eq!(
            detect_media_type(unsigned).as_deref(),
            Some(DOCKER_MANIFEST_V1)
        );
    }

    #[test]
    fn refuses_what_is_not_a_manifest() {
        for doc in [
            &b""[..],
            b"null",
            b"[]",
            b"\"application/vnd.oci.image.manifest.v1+json\"",
            b"{}",
            b"{\"schemaVersion\":2}",
            b"{\"schemaVersion\":2,\"config\":{}}",
            b"{\"config\":{},\"layers\":[]}",
            b"{\"schemaVersion\":2,\"manifests\":[],\"config\":{},\"layers\":[]}",
            b"{\"mediaType\":5}",
            b"{\"mediaType\":\"a\",\"mediaType\":\"b\"}",
            b"{\"schemaVersion\":2,\"manifests\":[]",
            b"\xff\xfe",
        ] {
            assert_eq!(
                detect_media_type(doc),
                None,
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut doc = String::from("{\"schemaVersion\":2,\"manifests\":");
        doc.push_str(&"[".repeat(100_000));
        assert_eq!(detect_media_type(doc.as_bytes()), None);
    }

    #[test]
    fn lists_the_blobs_of_an_image_manifest() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let c = format!("sha256:{}", "c".repeat(64));
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_V2}",
            "config":{{"digest":"{a}","size":2}},
            "layers":[{{"digest":"{b}","size":3}},{{"digest":"{c}","size":4,"urls":["https://example.com/l"]}},
                      {{"digest":"{b}","size":3}},{{"digest":"sha256:bad","size":1}}]}}"#
        );
        let got = image_blobs(doc.as_bytes()).expect("an image manifest");
        let want: Vec<crate::Digest> = [&a, &b]
            .iter()
            .map(|d| crate::Digest::parse(d).unwrap())
            .collect();
        assert_eq!(got, want);
        // An OCI manifest without mediaType is read the same way.
        let oci = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{a}"}},"layers":[]}}"#);
        assert_eq!(image_blobs(oci.as_bytes()).map(|v| v.len()), Some(1));
    }

    #[test]
    fn lists_no_blobs_for_other_documents() {
        let index = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:00","size":1}]}"#;
        assert_eq!(image_blobs(index), None);
        let schema1 = br#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        assert_eq!(image_blobs(schema1), None);
        assert_eq!(image_blobs(b"not json"), None);
        // An image manifest without a config descriptor is malformed.
        let broken = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#);
        assert_eq!(image_blobs(broken.as_bytes()), None);
    }
}
