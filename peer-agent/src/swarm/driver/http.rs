//! The HTTP fallback of a [`Running`] download: when the swarm makes no
//! progress, pieces come over HTTP range requests from the supernode, each
//! verified against the piece map before it is written. When the
//! supernode cannot be reached (an outage), the missing pieces come from
//! the upstream directly, in one range request, verified the same way.

use futures_util::StreamExt;
use tokio::time::Instant;

use super::{FALLBACK_PIECES, Running, SEED, SEED_RETRIES, SEED_STALLS};
use crate::fetch::{BlobSource, FetchError};
use crate::registry::RegistryError;
use crate::swarm::{BYTES_RECEIVED, PIECES_REJECTED};
use crate::upstream_source::UpstreamSource;

impl Running {
    /// Fetches the missing known pieces over HTTP from the supernode, each
    /// verified against the map.
    pub(super) async fn http_fallback(&mut self) -> Result<(), FetchError> {
        self.last_progress = Instant::now();
        // A slow seed (its upload cap shared by many) is no reason for
        // HTTP; a seed dropped for timeouts gets another chance over QUIC
        // first. HTTP is for a seed that keeps failing, or none at all.
        if let Some(addr) = self.seed {
            if self.peers.contains_key(&addr) {
                self.stalls += 1;
                if self.stalls < SEED_STALLS {
                    return Ok(());
                }
            } else if self.seed_retries < SEED_RETRIES {
                self.seed_retries += 1;
                tracing::info!(digest = %self.blob.digest, "no progress; reconnecting the seed");
                self.add_seed();
                return Ok(());
            }
        }
        self.stalls = 0;
        let missing: Vec<u32> = self
            .dl
            .have()
            .iter_missing()
            .take_while(|i| *i < self.known())
            .take(FALLBACK_PIECES)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!(digest = %self.blob.digest, pieces = missing.len(),
            "no progress from peers; fetching missing pieces from the supernode over HTTP");
        for i in missing {
            if self.dl.have().get(i) {
                continue;
            }
            let range = self.map.piece_range(i);
            self.pace(range.end - range.start).await;
            let body = match self
                .swarm
                .opts
                .supernode
                .blob(
                    &self.blob.upstream,
                    &self.blob.repo,
                    &self.blob.digest,
                    range.start,
                )
                .await
            {
                Ok(body) => body,
                Err(e) if e.status.is_server_error() => return self.upstream_fallback(e).await,
                Err(e) => return Err(e.into()),
            };
            let want = (range.end - range.start) as usize;
            let mut buf = Vec::with_capacity(want);
            let mut stream = body.stream;
            while buf.len() < want {
                match stream.next().await {
                    Some(chunk) => {
                        let chunk = chunk?;
                        let take = chunk.len().min(want - buf.len());
                        buf.extend_from_slice(&chunk[..take]);
                    }
                    None => break,
                }
            }
            drop(stream);
            self.accept_http_piece(i, buf, "supernode").await?;
        }
        Ok(())
    }

    /// Piece `i` as it came over HTTP from `source`: verified against the
    /// map (a bad one fails the download), then written and handed to the
    /// scheduler (as from the seed).
    async fn accept_http_piece(
        &mut self,
        i: u32,
        piece: Vec<u8>,
        source: &str,
    ) -> Result<(), FetchError> {
        if let Err(e) = self.map.verify_piece(i, &piece) {
            metrics::counter!(PIECES_REJECTED).increment(1);
            return Err(FetchError::Source(RegistryError::bad_gateway(format!(
                "{source} sent a bad piece over HTTP: {e}"
            ))));
        }
        if self.task.put_piece(i, vec![piece.into()]).await? {
            self.verified(i);
        }
        let now = self.now();
        self.dl.handle_piece_verified(now, SEED, i);
        Ok(())
    }

    /// Waits for `bytes` of the node's download budget (`--download-rate`),
    /// which the HTTP paths share with the peers' pieces.
    fn pace(&self, bytes: u64) -> impl Future<Output = ()> + Send + 'static {
        let limiter = self.swarm.limiter.clone();
        async move {
            if let Some(limiter) = limiter {
                limiter.acquire(bytes).await;
            }
        }
    }

    /// The supernode failed with `cause` (unreachable, or an error of its
    /// own): fetches every missing known piece from the upstream directly,
    /// streaming from the first one, each verified against the map before
    /// it is written. Without a client for the blob's upstream, fails with
    /// `cause`.
    async fn upstream_fallback(&mut self, cause: RegistryError) -> Result<(), FetchError> {
        let known = self.known();
        let Some(first) = self.dl.have().iter_missing().find(|i| *i < known) else {
            return Ok(());
        };
        let Some(upstream) = self.swarm.opts.direct.get(&self.blob.upstream).cloned() else {
            return Err(cause.into());
        };
        tracing::warn!(digest = %self.blob.digest, error = %cause,
            "supernode failed; fetching the missing pieces from the upstream directly");
        let source = UpstreamSource {
            upstream,
            repo: self.blob.repo.clone(),
            digest: self.blob.digest,
            on_bytes: |n| metrics::counter!(BYTES_RECEIVED, "source" => "upstream").increment(n),
        };
        let body = source.open(self.map.piece_range(first).start).await?;
        if body.total_size != self.map.size {
            return Err(FetchError::SizeMismatch {
                source_label: "upstream",
                got: body.total_size,
                expected: self.map.size,
            });
        }
        let mut stream = body.stream;
        let mut buf = Vec::new();
        for i in first..known {
            let range = self.map.piece_range(i);
            let want = (range.end - range.start) as usize;
            self.pace(range.end - range.start).await;
            while buf.len() < want {
                match stream.next().await {
                    Some(chunk) => buf.extend_from_slice(&chunk?),
                    None => {
                        return Err(FetchError::SizeMismatch {
                            source_label: "upstream",
                            got: range.start + buf.len() as u64,
                            expected: self.map.size,
                        });
                    }
                }
            }
            let rest = buf.split_off(want);
            let piece = std::mem::replace(&mut buf, rest);
            if self.dl.have().get(i) {
                continue;
            }
            self.accept_http_piece(i, piece, "upstream").await?;
        }
        Ok(())
    }
}
