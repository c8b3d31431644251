//! Repository names and tags, validated per the OCI distribution spec.
//!
//! Name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
//! at most 255 characters. Tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
//! Valid names cannot contain `..`, `%` or empty path segments, so a valid
//! name is always safe to use in a URL path or log line.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};

/// Maximum repository name length accepted.
pub const MAX_NAME_LEN: usize = 255;
/// Maximum tag length per the spec.
pub const MAX_TAG_LEN: usize = 128;

/// Why a name, tag or reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The repository name does not match the spec's grammar.
    #[error("invalid repository name {0:?}")]
    InvalidName(String),
    /// The repository name is longer than [`MAX_NAME_LEN`].
    #[error("repository name is {0} characters long; at most 255 are allowed")]
    NameTooLong(usize),
    /// The tag does not match the spec's grammar.
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    /// The reference looks like a digest but is not an acceptable one.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// A validated repository name such as `library/alpine`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

impl RepoName {
    /// Validates `s` against the spec's name grammar.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong(s.len()));
        }
        if s.split('/').all(is_path_component) {
            Ok(RepoName(s.to_owned()))
        } else {
            Err(NameError::InvalidName(s.to_owned()))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-+", then alphanumerics again.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

impl TryFrom<String> for RepoName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        RepoName::parse(&s)
    }
}

impl From<RepoName> for String {
    fn from(n: RepoName) -> String {
        n.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoName({:?})", self.0)
    }
}

/// A validated tag such as `1.0` or `latest`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    /// Validates `s` against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_TAG_LEN
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'-'));
        if ok {
            Ok(Tag(s.to_owned()))
        } else {
            // Quote a bounded prefix, cut on a character boundary (hostile
            // input may be long and non-ASCII).
            let mut end = s.len().min(MAX_TAG_LEN + 8);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            Err(NameError::InvalidTag(s[..end].to_owned()))
        }
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tag {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Tag::parse(&s)
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({:?})", self.0)
    }
}

/// The `<reference>` of a manifest URL: a tag or a digest.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Reference {
    /// A mutable tag, resolved through the upstream.
    Tag(Tag),
    /// An immutable digest.
    Digest(Digest),
}

impl Reference {
    /// A reference containing `:` is a digest, anything else a tag.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains(':') {
            Ok(Reference::Digest(Digest::parse(s)?))
        } else {
            Ok(Reference::Tag(Tag::parse(s)?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_names() {
        for n in [
            "alpine",
            "library/alpine",
            "a/b/c/d",
            "my-app",
            "my--app",
            "my__app",
            "my_app.v2",
            "docker.io/library/x",
            "0",
        ] {
            RepoName::parse(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }

    #[test]
    fn refuses_bad_names() {
        for n in [
            "", "/", "a/", "/a", "a//b", "..", "a/../b", "a/./b", "%2e%2e", "Upper", "a_", "_a",
            "a___b", "a..b", "a.-b", "a b", "a:b", "a\\b", "a/-b",
        ] {
            assert!(RepoName::parse(n).is_err(), "{n:?} accepted");
        }
        assert_eq!(
            RepoName::parse(&"a".repeat(256)),
            Err(NameError::NameTooLong(256))
        );
    }

    #[test]
    fn tags() {
        for t in ["latest", "1.0", "_x", "A-b.c_d", &"a".repeat(128)] {
            Tag::parse(t).unwrap();
        }
        for t in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129), "a%2f"] {
            assert!(Tag::parse(t).is_err(), "{t:?}");
        }
    }

    #[test]
    fn long_non_ascii_tag_is_refused_without_panicking() {
        // Found by fuzzing: the error used to cut the quote inside a character.
        let hostile = format!("x{}", "é".repeat(100));
        match Tag::parse(&hostile) {
            Err(NameError::InvalidTag(shown)) => assert!(shown.len() <= MAX_TAG_LEN + 8),
            other => panic!("{other:?}"),
        }
        assert!(Reference::parse(&hostile).is_err());
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        assert!(matches!(
            Reference::parse("sha512:00"),
            Err(NameError::Digest(DigestError::UnsupportedAlgorithm(_)))
        ));
    }
}
