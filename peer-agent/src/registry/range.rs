//! The `Range` request header, single ranges only (what registries and
//! their clients use to resume blob downloads).

use std::ops::Range;

use super::RegistryError;

/// A satisfiable byte range of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// As a `std` range.
    pub fn as_range(&self) -> Range<u64> {
        self.start..self.end
    }
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` against a blob of `size`
/// bytes. `Ok(None)` means no `Range` header: the whole blob. A malformed,
/// multi-range or unsatisfiable header is a 416.
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<ByteRange>, RegistryError> {
    let Some(h) = header else { return Ok(None) };
    let bad = || {
        RegistryError::range_invalid(format!(
            "invalid or unsatisfiable range {:?} for a {size}-byte blob",
            truncate(h)
        ))
    };
    let spec = h.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(bad());
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let num = |s: &str| -> Result<u64, RegistryError> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n = num(n)?;
            if n == 0 {
                return Err(bad());
            }
            (size.saturating_sub(n), size)
        }
        (s, "") => (num(s)?, size),
        (s, e) => {
            let (s, e) = (num(s)?, num(e)?);
            if e < s {
                return Err(bad());
            }
            (s, e.saturating_add(1).min(size))
        }
    };
    if start >= size || start >= end {
        return Err(bad());
    }
    Ok(Some(ByteRange { start, end }))
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(h: &str, size: u64) -> Option<(u64, u64)> {
        parse_range(Some(h), size)
            .ok()
            .flatten()
            .map(|r| (r.start, r.end))
    }

    #[test]
    fn parses_ranges() {
        assert_eq!(parse_range(None, 10).unwrap(), None);
        assert_eq!(r("bytes=0-9", 10), Some((0, 10)));
        assert_eq!(r("bytes=2-", 10), Some((2, 10)));
        assert_eq!(r("bytes=-3", 10), Some((7, 10)));
        assert_eq!(r("bytes=5-100", 10), Some((5, 10)));
        assert_eq!(r("bytes=-30", 10), Some((0, 10)));
    }

    #[test]
    fn refuses_bad_ranges() {
        for h in [
            "bytes=10-",
            "bytes=5-4",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=-0",
            "bytes=-",
            "bytes=99999999999999999999999-",
        ] {
            let e = parse_range(Some(h), 10).unwrap_err();
            assert_eq!(e.status, http::StatusCode::RANGE_NOT_SATISFIABLE, "{h}");
        }
        assert!(parse_range(Some("bytes=0-"), 0).is_err());
    }
}
