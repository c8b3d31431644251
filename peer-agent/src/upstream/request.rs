//! One logical request: a timeout until headers, retries with backoff, and
//! bounded reads of small bodies (manifests, tokens, error explanations).

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use reqwest::{Response, Url};

use super::error::{ERROR_BODY_LIMIT, describe_error_body};
use super::{Inner, UpstreamError, retry};

/// What to send, rebuilt for every attempt.
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) headers: HeaderMap,
}

impl Req {
    pub(super) fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
        }
    }
}

/// The credentials attached to one attempt.
#[derive(Clone)]
pub(super) enum Authorization {
    /// None.
    Anonymous,
    /// The configured user name and password.
    Basic,
    /// `Bearer <token>`; the header value is marked sensitive.
    Bearer(HeaderValue),
    /// A client's own `Authorization` value, passed on for an access check
    /// (marked sensitive).
    Client(HeaderValue),
}

impl Inner {
    fn build(&self, req: &Req, auth: &Authorization) -> reqwest::RequestBuilder {
        let builder = self
            .client
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        match (auth, &self.credentials) {
            (Authorization::Basic, Some(c)) => builder.basic_auth(&c.username, Some(&c.password)),
            (Authorization::Bearer(value) | Authorization::Client(value), _) => {
                builder.header(AUTHORIZATION, value.clone())
            }
            _ => builder,
        }
    }

    /// One attempt, bounded by `request_timeout` until the response headers.
    async fn send_once(&self, req: &Req, auth: &Authorization) -> Result<Response, UpstreamError> {
        let timeout = self.opts.request_timeout;
        match tokio::time::timeout(timeout, self.build(req, auth).send()).await {
            Err(_) => Err(UpstreamError::Timeout(format!(
                "no response from {} {} within {timeout:?}",
                req.method,
                url_for_log(&req.url)
            ))),
            Ok(Err(e)) => Err(UpstreamError::from_reqwest(&e, &self.name)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Sends `req`, retrying connection failures, timeouts, 5xx and 429 with
    /// backoff. Other answers, 401 included, are returned for the caller to
    /// interpret; only the request phase is retried, never a body.
    pub(super) async fn send_with_retries(
        &self,
        req: &Req,
        auth: &Authorization,
    ) -> Result<Response, UpstreamError> {
        let mut attempt = 0;
        loop {
            let wait = match self.send_once(req, auth).await {
                Ok(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS => {
                    let retry_after = retry_after(resp.headers());
                    let wait = {
                        let mut rng = self.rng.lock().expect("rng lock");
                        retry::after_rate_limit(retry_after, attempt, &self.opts, &mut *rng)
                    };
                    match wait {
                        Some(wait) => wait,
                        None => return Err(UpstreamError::TooManyRequests { retry_after }),
                    }
                }
                Ok(resp) if resp.status().is_server_error() && attempt < self.opts.retries => {
                    tracing::debug!(
                        status = resp.status().as_u16(),
                        attempt,
                        "upstream server error"
                    );
                    self.backoff(attempt)
                }
                Ok(resp) if resp.status().is_server_error() => {
                    return Err(self.status_error(resp).await);
                }
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_retryable() && attempt < self.opts.retries => {
                    tracing::debug!(error = %e, attempt, "upstream request failed");
                    self.backoff(attempt)
                }
                Err(e) => return Err(e),
            };
            tracing::debug!(?wait, attempt, method = %req.method, url = %url_for_log(&req.url), "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let mut rng = self.rng.lock().expect("rng lock");
        retry::backoff(
            attempt,
            self.opts.backoff_base,
            self.opts.backoff_max,
            &mut *rng,
        )
    }

    /// The error for an unsuccessful response, with the upstream's message.
    pub(super) async fn status_error(&self, mut resp: Response) -> UpstreamError {
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = read_prefix(&mut resp, ERROR_BODY_LIMIT, self.opts.read_timeout).await;
        let message = describe_error_body(&body)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned());
        UpstreamError::from_status(status.as_u16(), retry_after, message)
    }
}

/// The URL without query and fragment (which may carry signatures).
pub(super) fn url_for_log(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    retry::parse_retry_after(value, SystemTime::now())
}

/// A header as text, if present and visible ASCII.
pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The announced `Content-Length`; a malformed one is a protocol error.
pub(super) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, UpstreamError> {
    match headers.get(CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| UpstreamError::Protocol(format!("bad Content-Length {v:?}"))),
    }
}

impl Inner {
    /// Reads a whole body of at most `limit` bytes, each read bounded by
    /// `read_timeout`.
    pub(super) async fn read_body(
        &self,
        resp: &mut Response,
        limit: usize,
    ) -> Result<Bytes, UpstreamError> {
        if let Some(len) = content_length(resp.headers())?
            && len > limit as u64
        {
            return Err(UpstreamError::TooLarge(len));
        }
        let idle = self.opts.read_timeout;
        let mut buf = BytesMut::new();
        loop {
            let chunk = match tokio::time::timeout(idle, resp.chunk()).await {
                Err(_) => {
                    return Err(UpstreamError::Timeout(format!(
                        "response body from {} idle for {idle:?}",
                        url_for_log(resp.url())
                    )));
                }
                Ok(Err(e)) => return Err(UpstreamError::from_reqwest(&e, &self.name)),
                Ok(Ok(None)) => return Ok(buf.freeze()),
                Ok(Ok(Some(chunk))) => chunk,
            };
            if buf.len() + chunk.len() > limit {
                return Err(UpstreamError::TooLarge((buf.len() + chunk.len()) as u64));
            }
            buf.extend_from_slice(&chunk);
        }
    }
}

/// Best effort: up to `limit` bytes of a body, for an error message.
async fn read_prefix(resp: &mut Response, limit: usize, idle: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let take = chunk.len().min(limit - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            _ => break,
        }
    }
    buf
}
