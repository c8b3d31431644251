//! The agent's `have` outbox: every download's updates, merged per peer.
//!
//! A node runs several downloads at once (runtimes fetch three layers at a
//! time), and each verified piece is news for every connected peer. Each
//! download used to batch its own updates, so a peer got a small QUIC
//! packet (and sent back an acknowledgement) per download and batch. The
//! outbox holds updates for up to [`HAVE_BATCH`] and then writes, per
//! peer, everything queued for it in one go, whichever download it came
//! from: in a 50-node fanout-sym run, the small UDP packets on loopback fell
//! from about 23 000 to 15 000 per 3 s.
//!
//! Order is kept per peer: a peer refuses a blob's `have` before that
//! blob's bitfield, so each peer's updates leave in the order they were
//! queued, written by one task per peer (a peer slow to take them holds up
//! no other). Bitfields go out at once (with whatever was queued before
//! them): a new peer cannot ask for anything until it has one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_proto::wire::HaveMessage;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::p2p::P2pEndpoint;

/// How long a `have` may wait for others to go out with it. Small beside
/// a piece's transfer time, and a node verifies several pieces in it.
pub const HAVE_BATCH: Duration = Duration::from_millis(200);

/// Updates for some peers, each peer's in order.
pub type Batch = Vec<(SocketAddr, Vec<HaveMessage>)>;

/// Queues `have` updates for the agent's peers; cheap to clone. The task
/// that sends them ends once every clone is dropped and the queue is sent.
#[derive(Clone, Debug)]
pub struct HaveOutbox {
    tx: mpsc::UnboundedSender<(Batch, Urgency)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Urgency {
    Now,
    Batched,
}

impl HaveOutbox {
    /// Starts the sending task on `endpoint`. Must be called within a
    /// Tokio runtime.
    pub fn start(endpoint: P2pEndpoint) -> HaveOutbox {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(endpoint, rx));
        HaveOutbox { tx }
    }

    /// Queues `batch` to go out with the next flush, at most
    /// [`HAVE_BATCH`] from now.
    pub fn batched(&self, batch: Batch) {
        let _ = self.tx.send((batch, Urgency::Batched));
    }

    /// Sends `batch`, and everything queued before it, now.
    pub fn now(&self, batch: Batch) {
        let _ = self.tx.send((batch, Urgency::Now));
    }
}

/// Per-peer queues in order of first use.
#[derive(Default)]
struct Pending {
    peers: Vec<(SocketAddr, Vec<HaveMessage>)>,
    index: HashMap<SocketAddr, usize>,
}

impl Pending {
    fn add(&mut self, batch: Batch) {
        for (peer, msgs) in batch {
            let i = *self.index.entry(peer).or_insert_with(|| {
                self.peers.push((peer, Vec::new()));
                self.peers.len() - 1
            });
            self.peers[i].1.extend(msgs);
        }
    }

    fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    fn take(&mut self) -> Batch {
        self.index.clear();
        std::mem::take(&mut self.peers)
    }
}

async fn run(endpoint: P2pEndpoint, mut rx: mpsc::UnboundedReceiver<(Batch, Urgency)>) {
    let mut pending = Pending::default();
    let mut writers = Writers::new(endpoint);
    let mut due: Option<Instant> = None;
    loop {
        let flush = tokio::select! {
            item = rx.recv() => match item {
                Some((batch, urgency)) => {
                    pending.add(batch);
                    due.get_or_insert_with(|| Instant::now() + HAVE_BATCH);
                    urgency == Urgency::Now
                }
                None => {
                    writers.send(pending.take());
                    return;
                }
            },
            () = sleep_until_some(due) => true,
        };
        if flush && !pending.is_empty() {
            due = None;
            writers.send(pending.take());
        }
    }
}

/// A peer's writer that has had nothing to write for this long ends; a
/// later update starts another. That is twice as long as a write may take
/// (the connect and I/O timeouts, 5 + 10 s), so the old writer is done
/// before the new one starts.
const WRITER_IDLE: Duration = Duration::from_secs(30);

/// One writing task per peer, so that a peer slow to take its updates (or
/// to connect) holds up no other peer, while each peer's updates still
/// leave in order.
struct Writers {
    endpoint: P2pEndpoint,
    peers: HashMap<SocketAddr, (mpsc::UnboundedSender<Vec<HaveMessage>>, Instant)>,
}

impl Writers {
    fn new(endpoint: P2pEndpoint) -> Self {
        Writers {
            endpoint,
            peers: HashMap::new(),
        }
    }

    /// Hands each peer's updates to its writer, starting writers as needed,
    /// and lets the writers of peers idle for [`WRITER_IDLE`] end.
    fn send(&mut self, batch: Batch) {
        let now = Instant::now();
        for (peer, msgs) in batch {
            let (tx, used) = self
                .peers
                .entry(peer)
                .or_insert_with(|| (write_to(self.endpoint.clone(), peer), now));
            *used = now;
            // The writer ends only once its sender is dropped.
            let _ = tx.send(msgs);
        }
        self.peers.retain(|_, (_, used)| now < *used + WRITER_IDLE);
    }
}

/// Starts the task writing `peer`'s updates in the order received, all
/// those waiting in one write; it ends once the sender is dropped and
/// everything is written.
fn write_to(endpoint: P2pEndpoint, peer: SocketAddr) -> mpsc::UnboundedSender<Vec<HaveMessage>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<HaveMessage>>();
    tokio::spawn(async move {
        while let Some(mut msgs) = rx.recv().await {
            while let Ok(more) = rx.try_recv() {
                msgs.extend(more);
            }
            if let Err(e) = endpoint.send_haves(peer, &msgs).await {
                tracing::debug!(%peer, error = %e, "cannot send have updates");
            }
        }
    });
    tx
}

/// Sleeps until `at`, or forever if there is no deadline.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::{Bitfield, Digest};

    fn have(d: u8, index: u32) -> HaveMessage {
        HaveMessage::Have {
            digest: Digest::of(&[d]),
            index,
        }
    }

    #[test]
    fn merges_per_peer_in_order_of_arrival() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let bits = HaveMessage::Bitfield {
            digest: Digest::of(&[2]),
            bits: Bitfield::new(4),
        };
        let mut p = Pending::default();
        p.add(vec![(a, vec![have(1, 0)]), (b, vec![have(1, 0)])]);
        p.add(vec![(b, vec![bits.clone()])]);
        p.add(vec![(a, vec![have(1, 1)]), (b, vec![have(2, 3)])]);
        assert_eq!(
            p.take(),
            vec![
                (a, vec![have(1, 0), have(1, 1)]),
                (b, vec![have(1, 0), bits, have(2, 3)]),
            ]
        );
        assert!(p.is_empty());
        p.add(vec![(b, vec![have(1, 2)])]);
        assert_eq!(p.take(), vec![(b, vec![have(1, 2)])]);
    }
}
