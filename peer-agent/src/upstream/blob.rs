//! Blobs: a ranged GET that follows redirects to storage, and a body stream
//! whose every read is bounded by the idle timeout.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use http::header::{CONTENT_RANGE, RANGE};
use http::{HeaderValue, Method, StatusCode};
use reqwest::Response;
use shoal_proto::{Digest, RepoName};

use super::request::{Req, content_length, header_str};
use super::{BlobBody, Inner, UpstreamError};

impl Inner {
    pub(super) async fn get_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobBody, UpstreamError> {
        let mut req = Req::new(Method::GET, self.url(&format!("/v2/{repo}/blobs/{digest}")));
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-"))
                .expect("digits are a valid header");
            req.headers.insert(RANGE, range);
        }
        let resp = self.send_authed(&req, repo).await?;
        let (total_size, skip) = match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let range =
                    header_str(resp.headers(), CONTENT_RANGE.as_str()).ok_or_else(|| {
                        UpstreamError::Protocol("206 response without Content-Range".into())
                    })?;
                let (start, total) = parse_content_range(range).ok_or_else(|| {
                    UpstreamError::Protocol(format!("unusable Content-Range {range:?}"))
                })?;
                if start != offset {
                    return Err(UpstreamError::Protocol(format!(
                        "asked for bytes from {offset}, upstream sent from {start}"
                    )));
                }
                (total, 0)
            }
            StatusCode::OK => {
                let total = content_length(resp.headers())?.ok_or_else(|| {
                    UpstreamError::Protocol("blob response has no Content-Length".into())
                })?;
                if offset > total {
                    return Err(UpstreamError::Protocol(format!(
                        "offset {offset} is past the end of the {total}-byte blob"
                    )));
                }
                if offset > 0 {
                    tracing::debug!(offset, "upstream ignored Range; skipping to the offset");
                }
                (total, offset)
            }
            _ => return Err(self.status_error(resp).await),
        };
        let body = BodyState {
            resp,
            skip,
            remaining: total_size - offset,
            idle: self.opts.read_timeout,
            upstream: self.name.clone(),
            digest: *digest,
            done: false,
        };
        Ok(BlobBody {
            total_size,
            offset,
            stream: stream::unfold(body, BodyState::next).boxed(),
        })
    }
}

/// `bytes <start>-<end>/<total>` → `(start, total)`; the end must be the
/// last byte, as asked for by an open-ended range.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end, total): (u64, u64, u64) = (
        start.trim().parse().ok()?,
        end.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (start <= end && end.checked_add(1) == Some(total)).then_some((start, total))
}

/// The body being streamed to the caller.
struct BodyState {
    resp: Response,
    /// Bytes still to drop because the server ignored our Range.
    skip: u64,
    /// Bytes still to deliver.
    remaining: u64,
    idle: Duration,
    upstream: String,
    digest: Digest,
    done: bool,
}

impl BodyState {
    async fn next(mut self) -> Option<(Result<Bytes, UpstreamError>, Self)> {
        while !self.done {
            let chunk = match tokio::time::timeout(self.idle, self.resp.chunk()).await {
                Err(_) => Err(UpstreamError::Timeout(format!(
                    "blob {} from upstream {:?}: no data for {:?}",
                    self.digest, self.upstream, self.idle
                ))),
                Ok(Err(e)) => Err(UpstreamError::from_reqwest(&e, &self.upstream)),
                Ok(Ok(None)) if self.remaining > 0 || self.skip > 0 => {
                    Err(UpstreamError::Transport(format!(
                        "blob {} from upstream {:?}: body ended {} bytes early",
                        self.digest,
                        self.upstream,
                        self.remaining + self.skip
                    )))
                }
                Ok(Ok(None)) => return None,
                Ok(Ok(Some(chunk))) => self.accept(chunk),
            };
            match chunk {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => return Some((Ok(chunk), self)),
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
            }
        }
        None
    }

    /// Drops what precedes the offset and refuses bytes past the end.
    fn accept(&mut self, mut chunk: Bytes) -> Result<Bytes, UpstreamError> {
        if self.skip > 0 {
            let n = self.skip.min(chunk.len() as u64);
            self.skip -= n;
            chunk = chunk.slice(n as usize..);
        }
        if chunk.len() as u64 > self.remaining {
            return Err(UpstreamError::Protocol(format!(
                "blob {} from upstream {:?}: body longer than announced",
                self.digest, self.upstream
            )));
        }
        self.remaining -= chunk.len() as u64;
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, 10)));
        assert_eq!(parse_content_range("bytes  0-0/1"), Some((0, 1)));
        for bad in [
            "bytes 5-8/10",
            "bytes 5-9/*",
            "bytes */10",
            "5-9/10",
            "bytes 9-5/10",
            "bytes a-b/c",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
        assert_eq!(
            parse_content_range(&format!("bytes 0-{}/{}", u64::MAX, u64::MAX)),
            None
        );
    }
}
