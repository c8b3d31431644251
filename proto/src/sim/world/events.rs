//! The driver's side of the world: what a daemon would do with each
//! action of its state machines, played out with latency on the virtual
//! clock.

use super::{Ev, IDLE_TIMEOUT, World};
use crate::sim::scenario::Leave;
use crate::swarm::{Action, PeerId, PeerKind, UploadAction};
use crate::tracker_state::Announce;

impl World<'_> {
    pub(super) fn announce(&mut self, i: usize) {
        if !self.nodes[i].alive {
            return;
        }
        let node = &self.nodes[i];
        let a = Announce {
            blob: self.blob,
            peer: PeerId(i as u64),
            addr: i.to_string(),
            pieces: node.have(),
            upload_load: (node.uploader.load() * 100.0).round() as u8,
            labels: Default::default(),
            seed: i == 0,
            stopped: false,
        };
        let reply = self
            .tracker
            .handle_announce(self.now, a)
            .expect("simulated announces are valid");
        while self.tracker.poll_action().is_some() {}
        let peers = reply.peers.iter().map(|p| p.peer.0 as usize).collect();
        let rtt = self.sc.latency * 2;
        self.at(self.now + rtt, Ev::TrackerReply { node: i, peers });
        self.at(self.now + reply.interval, Ev::Announce(i));
    }

    pub(super) fn connect(&mut self, a: usize, b: usize) {
        let max = |i: usize| {
            if i == 0 {
                self.sc.seed_max_connections
            } else {
                self.sc.max_connections
            }
        };
        let (na, nb) = (&self.nodes[a], &self.nodes[b]);
        if a == b
            || !na.alive
            || !nb.alive
            || na.conns.contains(&b)
            || na.conns.len() >= max(a)
            || nb.conns.len() >= max(b)
        {
            return;
        }
        self.nodes[a].conns.insert(b);
        self.nodes[b].conns.insert(a);
        for (x, y) in [(a, b), (b, a)] {
            let has = self.nodes[y].have();
            let kind = if y == 0 {
                PeerKind::Seed
            } else {
                PeerKind::Peer
            };
            let now = self.now;
            let node = &mut self.nodes[x];
            if let Some(d) = node.download.as_mut() {
                d.handle_peer_connected(now, PeerId(y as u64), kind, has.clone());
            }
            node.uploader
                .handle_peer_connected(now, PeerId(y as u64), &has, 1.0);
        }
        self.pump(a);
        self.pump(b);
    }

    /// Carries out everything node `i`'s state machines want done.
    pub(super) fn pump(&mut self, i: usize) {
        loop {
            let mut idle = true;
            while let Some(action) = self.nodes[i]
                .download
                .as_mut()
                .and_then(|d| d.poll_action())
            {
                idle = false;
                match action {
                    Action::Request { peer, piece } => self.later(Ev::Request {
                        from: i,
                        to: peer.0 as usize,
                        piece,
                    }),
                    Action::Cancel { peer, piece } => self.later(Ev::Cancel {
                        from: i,
                        to: peer.0 as usize,
                        piece,
                    }),
                    Action::DropPeer { peer, .. } => self.disconnect(i, peer.0 as usize),
                    Action::Complete => {
                        self.nodes[i].done_at = Some(self.now);
                        if !self.nodes[i].bad {
                            self.pending -= 1;
                        }
                    }
                }
            }
            while let Some(action) = self.nodes[i].uploader.poll_action() {
                idle = false;
                match action {
                    UploadAction::Serve { peer, piece } => {
                        if i == 0 {
                            self.seed_order.push(piece);
                        }
                        let bytes = self.layout.piece_len(piece) as f64;
                        let now = self.now.as_secs_f64();
                        self.fluid.start(now, i, peer.0 as usize, piece, bytes);
                    }
                    UploadAction::Available { peer } => self.later(Ev::Available {
                        to: peer.0 as usize,
                        from: i,
                    }),
                    UploadAction::Reject {
                        peer,
                        piece,
                        reason,
                    } => self.later(Ev::Reject {
                        to: peer.0 as usize,
                        from: i,
                        piece,
                        reason,
                    }),
                }
            }
            if idle {
                break;
            }
        }
        let node = &mut self.nodes[i];
        let next = [
            node.download.as_ref().and_then(|d| d.poll_timeout()),
            node.uploader.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(t) = next {
            let t = t.max(self.now);
            if node.wake.is_none_or(|w| t < w || w < self.now) {
                node.wake = Some(t);
                self.at(t, Ev::Wake(i));
            }
        }
    }

    pub(super) fn deliver(&mut self, to: usize, from: usize, piece: u32, corrupt: bool) {
        if !self.nodes[to].alive || !self.nodes[to].conns.contains(&from) {
            return;
        }
        let now = self.now;
        let node = &mut self.nodes[to];
        let Some(d) = node.download.as_mut() else {
            return;
        };
        if corrupt {
            d.handle_piece_corrupt(now, PeerId(from as u64), piece);
        } else {
            let new = !d.have().get(piece);
            d.handle_piece_verified(now, PeerId(from as u64), piece);
            if new {
                node.uploader.handle_piece_added(now, piece);
                node.advance_reader(now);
                self.later(Ev::Have { from: to, piece });
            }
        }
        self.pump(to);
    }

    /// Aborts the transfers between `a` and `b`.
    fn abort_between(&mut self, a: usize, b: usize) {
        let now = self.now.as_secs_f64();
        let ids: Vec<usize> = self
            .fluid
            .touching(a)
            .into_iter()
            .filter(|&id| self.fluid.get(id).is_some_and(|t| t.from == b || t.to == b))
            .collect();
        for id in ids {
            if let Some((t, sent)) = self.fluid.remove(now, id) {
                self.account(t.from, t.to, sent);
            }
        }
    }

    /// `a` closes its connection to `b`; `b` notices one latency later.
    pub(super) fn disconnect(&mut self, a: usize, b: usize) {
        if !self.nodes[a].conns.remove(&b) {
            return;
        }
        self.abort_between(a, b);
        self.forget(a, b);
        self.later(Ev::Closed { node: b, peer: a });
    }

    /// `node` learns that `peer` is gone.
    pub(super) fn closed(&mut self, node: usize, peer: usize) {
        if self.nodes[node].conns.remove(&peer) {
            self.abort_between(node, peer);
            self.forget(node, peer);
        }
    }

    fn forget(&mut self, node: usize, peer: usize) {
        let now = self.now;
        let n = &mut self.nodes[node];
        if let Some(d) = n.download.as_mut() {
            d.handle_peer_disconnected(now, PeerId(peer as u64));
        }
        n.uploader
            .handle_peer_disconnected(now, PeerId(peer as u64));
        self.pump(node);
    }

    pub(super) fn leave(&mut self, i: usize, how: Leave) {
        if !self.nodes[i].alive {
            return;
        }
        self.nodes[i].alive = false;
        if self.nodes[i].done_at.is_none() && !self.nodes[i].bad {
            self.pending -= 1;
        }
        let conns: Vec<usize> = self.nodes[i].conns.iter().copied().collect();
        let notice = match how {
            Leave::Close => self.sc.latency,
            Leave::Vanish => IDLE_TIMEOUT,
        };
        for c in conns {
            self.abort_between(i, c);
            self.nodes[i].conns.remove(&c);
            self.at(self.now + notice, Ev::Closed { node: c, peer: i });
        }
        if how == Leave::Vanish {
            // A vanished peer does not say goodbye; it expires instead.
            return;
        }
        let bye = Announce {
            blob: self.blob,
            peer: PeerId(i as u64),
            addr: i.to_string(),
            pieces: self.nodes[i].have(),
            upload_load: 0,
            labels: Default::default(),
            seed: false,
            stopped: true,
        };
        let _ = self.tracker.handle_announce(self.now, bye);
    }
}
