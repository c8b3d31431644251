//! The HTTP fallback of a [`Running`] download: when the swarm makes no
//! progress, pieces come over HTTP range requests from the supernode, each
//! verified against the piece map before it is written.

use futures_util::StreamExt;
use tokio::time::Instant;

use super::{FALLBACK_PIECES, Running, SEED, SEED_RETRIES, SEED_STALLS};
use crate::fetch::FetchError;
use crate::registry::RegistryError;
use crate::swarm::PIECES_REJECTED;

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
            let body = self
                .swarm
                .opts
                .supernode
                .blob(
                    &self.blob.upstream,
                    &self.blob.repo,
                    &self.blob.digest,
                    range.start,
                )
                .await?;
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
            if let Err(e) = self.map.verify_piece(i, &buf) {
                metrics::counter!(PIECES_REJECTED).increment(1);
                return Err(FetchError::Source(RegistryError::bad_gateway(format!(
                    "supernode sent a bad piece over HTTP: {e}"
                ))));
            }
            if self.task.put_piece(i, vec![buf.into()]).await? {
                self.verified(i);
            }
            let now = self.now();
            self.dl.handle_piece_verified(now, SEED, i);
        }
        Ok(())
    }
}
