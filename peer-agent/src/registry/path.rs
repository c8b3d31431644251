//! Splitting `/v2/...` paths. Repository names contain slashes, so the
//! route is found from the right: `<name>/manifests/<ref>`,
//! `<name>/blobs/<digest>`. Validation of the parts is the caller's job.

/// The first value of query parameter `key`, percent-decoded.
pub fn query_param(uri: &http::Uri, key: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// What a `/v2/` path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Path<'a> {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/<name>/manifests/<reference>`.
    Manifest {
        /// Repository name, raw.
        name: &'a str,
        /// Tag or digest, raw.
        reference: &'a str,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// Repository name, raw.
        name: &'a str,
        /// Digest, raw.
        digest: &'a str,
    },
    /// Uploads, tag lists, the catalog, referrers: not served by a pull mirror.
    Unsupported(&'static str),
    /// Not a distribution API path at all.
    NotFound,
}

/// Parses a request path (without the query string).
pub fn split_v2_path(path: &str) -> V2Path<'_> {
    let Some(rest) = path.strip_prefix("/v2") else {
        return V2Path::NotFound;
    };
    if rest.is_empty() || rest == "/" {
        return V2Path::Base;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return V2Path::NotFound;
    };
    if rest == "_catalog" {
        return V2Path::Unsupported("the catalog");
    }
    if rest.contains("/blobs/uploads") {
        return V2Path::Unsupported("blob uploads (push)");
    }
    if rest.ends_with("/tags/list") {
        return V2Path::Unsupported("tag listing");
    }
    if rest.contains("/referrers/") {
        return V2Path::Unsupported("the referrers API");
    }
    let mut parts = rest.rsplitn(3, '/');
    let (Some(last), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return V2Path::NotFound;
    };
    match kind {
        "manifests" => V2Path::Manifest {
            name,
            reference: last,
        },
        "blobs" => V2Path::Blob { name, digest: last },
        _ => V2Path::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths() {
        assert_eq!(split_v2_path("/v2/"), V2Path::Base);
        assert_eq!(split_v2_path("/v2"), V2Path::Base);
        assert_eq!(
            split_v2_path("/v2/library/app/manifests/1.0"),
            V2Path::Manifest {
                name: "library/app",
                reference: "1.0"
            }
        );
        assert_eq!(
            split_v2_path("/v2/a/b/c/blobs/sha256:00"),
            V2Path::Blob {
                name: "a/b/c",
                digest: "sha256:00"
            }
        );
        // A repository literally named "manifests/x" still parses from the right.
        assert_eq!(
            split_v2_path("/v2/manifests/x/manifests/latest"),
            V2Path::Manifest {
                name: "manifests/x",
                reference: "latest"
            }
        );
        assert!(matches!(
            split_v2_path("/v2/a/blobs/uploads/"),
            V2Path::Unsupported(_)
        ));
        assert!(matches!(
            split_v2_path("/v2/a/tags/list"),
            V2Path::Unsupported(_)
        ));
        assert!(matches!(
            split_v2_path("/v2/_catalog"),
            V2Path::Unsupported(_)
        ));
        assert_eq!(split_v2_path("/v3/x"), V2Path::NotFound);
        assert_eq!(split_v2_path("/v2x"), V2Path::NotFound);
        assert_eq!(split_v2_path("/v2/manifests/x"), V2Path::NotFound);
    }
}
