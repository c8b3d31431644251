//! The simulated world: nodes running the real state machines, an event
//! queue on a virtual clock, and the fluid network between them.
//!
//! Each node is a seed or a peer. A peer runs a [`Download`] and an
//! [`Uploader`] with [`ServeAll`]; the seed runs an [`Uploader`] with
//! [`SuperSeed`]. The world does what a daemon's driver does — turns
//! actions into messages that arrive one latency later, starts transfers
//! when an uploader says `Serve`, feeds timeouts back — and nothing else,
//! so every scheduling decision is the state machines' own.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::fluid::Fluid;
use super::report::Sample;
use super::scenario::{Leave, Scenario};
use crate::swarm::{
    Download, Layout, PeerId, Rejection, ServeAll, ServePolicy, SuperSeed, Uploader,
};
use crate::time::Time;
use crate::tracker_state::TrackerState;
use crate::{Bitfield, Digest};

/// Something that happens at a point of virtual time.
#[derive(Debug)]
pub(super) enum Ev {
    Start(usize),
    Announce(usize),
    TrackerReply {
        node: usize,
        peers: Vec<usize>,
    },
    Connect {
        from: usize,
        to: usize,
    },
    Request {
        from: usize,
        to: usize,
        piece: u32,
    },
    Reject {
        to: usize,
        from: usize,
        piece: u32,
        reason: Rejection,
    },
    Deliver {
        to: usize,
        from: usize,
        piece: u32,
        corrupt: bool,
    },
    /// `to` learns that uploader `from` has a slot for it.
    Available {
        to: usize,
        from: usize,
    },
    Have {
        from: usize,
        piece: u32,
    },
    Cancel {
        from: usize,
        to: usize,
        piece: u32,
    },
    /// `node` learns that `peer` closed the connection.
    Closed {
        node: usize,
        peer: usize,
    },
    Leave(usize, Leave),
    Wake(usize),
    FluidTick(u64),
    /// Recompute rates (when they are recomputed on a time grid).
    Reallocate,
    Sample,
}

struct Scheduled {
    at: Time,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Earliest first out of the max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// How long a vanished peer's connections linger before the others'
/// transports time them out.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct World<'a> {
    pub sc: &'a Scenario,
    pub layout: Layout,
    pub now: Time,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    pub nodes: Vec<Node>,
    fluid: Fluid,
    fluid_gen: u64,
    tracker: TrackerState,
    blob: Digest,
    /// Peers still expected to finish.
    pub pending: usize,
    pub events: u64,
    pub reallocations: u64,
    /// Pieces in the order the seed started uploading them.
    pub seed_order: Vec<u32>,
    realloc_pending: bool,
    pub samples: Vec<Sample>,
}

impl<'a> World<'a> {
    pub fn new(sc: &'a Scenario) -> Self {
        let layout = Layout {
            size: sc.file_bytes,
            piece_size: sc.piece_size,
        };
        let n = layout.piece_count();
        let mut rng = SmallRng::seed_from_u64(sc.rng_seed);
        let seed_policy: Box<dyn ServePolicy> = Box::new(SuperSeed::new(sc.super_seed.clone(), n));
        let mut nodes = vec![Node::new(
            None,
            Uploader::new(sc.seed_upload.clone(), Bitfield::full(n), seed_policy),
        )];
        for i in 0..sc.peers {
            let download =
                Download::new(sc.download.clone(), layout, Bitfield::new(n), rng.random());
            let plain: Box<dyn ServePolicy> = Box::new(ServeAll);
            let mut node = Node::new(
                Some(download),
                Uploader::new(sc.upload.clone(), Bitfield::new(n), plain),
            );
            node.bad = sc.bad_peers.contains(&i);
            nodes.push(node);
        }
        let up = std::iter::once(sc.seed_up)
            .chain(std::iter::repeat_n(sc.peer_up, sc.peers))
            .collect();
        let down = std::iter::once(f64::MAX / 4.0)
            .chain(std::iter::repeat_n(sc.peer_down, sc.peers))
            .collect();
        let mut world = World {
            sc,
            layout,
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes,
            fluid: Fluid::new(up, down),
            fluid_gen: 0,
            tracker: TrackerState::new(sc.tracker.clone(), rng.random()),
            blob: Digest::of(b"simulated blob"),
            pending: sc.peers - sc.bad_peers.iter().filter(|&&b| b < sc.peers).count(),
            events: 0,
            reallocations: 0,
            seed_order: Vec::new(),
            realloc_pending: false,
            samples: Vec::new(),
        };
        world.at(Time::ZERO, Ev::Sample);
        world.at(Time::ZERO, Ev::Start(0));
        for i in 1..=sc.peers {
            let spread = sc.start_spread.as_micros() as u64;
            let at = Time::from_micros(if spread > 0 {
                rng.random_range(0..spread)
            } else {
                0
            });
            // The seed is up before anyone asks.
            world.at(at + Duration::from_micros(1), Ev::Start(i));
        }
        for &(peer, at, how) in &sc.leaves {
            if peer < sc.peers {
                world.at(Time::from_duration(at), Ev::Leave(peer + 1, how));
            }
        }
        world
    }

    pub fn at(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        });
    }

    fn later(&mut self, ev: Ev) {
        self.at(self.now + self.sc.latency, ev);
    }

    /// Runs until every expected peer is done or the time limit passes.
    pub fn run(&mut self) {
        let limit = Time::from_duration(self.sc.time_limit);
        loop {
            let next = self.queue.peek().map(|s| s.at);
            if self.fluid.dirty && !self.realloc_pending && next.is_none_or(|t| t > self.now) {
                let quantum = self.sc.rate_quantum.as_micros() as u64;
                let now = self.now.as_micros();
                let at = if quantum == 0 {
                    now
                } else {
                    now.div_ceil(quantum) * quantum
                };
                if at == now {
                    self.reallocate();
                } else {
                    self.realloc_pending = true;
                    self.at(Time::from_micros(at), Ev::Reallocate);
                }
                continue;
            }
            let Some(s) = self.queue.pop() else {
                return;
            };
            if s.at > limit || self.pending == 0 {
                return;
            }
            self.now = s.at;
            self.events += 1;
            self.handle(s.ev);
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Start(i) => {
                self.nodes[i].alive = true;
                self.announce(i);
            }
            Ev::Announce(i) => self.announce(i),
            Ev::TrackerReply { node, peers } => {
                for p in peers {
                    if !self.nodes[node].conns.contains(&p) {
                        self.later(Ev::Connect { from: node, to: p });
                    }
                }
            }
            Ev::Connect { from, to } => self.connect(from, to),
            Ev::Request { from, to, piece } => {
                if self.nodes[to].alive && self.nodes[to].conns.contains(&from) {
                    let spare = self.fluid.has_spare_upload(to);
                    let up = &mut self.nodes[to].uploader;
                    up.handle_link_spare(self.now, spare);
                    up.handle_request(self.now, PeerId(from as u64), piece);
                    self.pump(to);
                }
            }
            Ev::Reject {
                to,
                from,
                piece,
                reason,
            } => {
                if self.nodes[to].conns.contains(&from)
                    && let Some(d) = self.nodes[to].download.as_mut()
                {
                    d.handle_request_rejected(self.now, PeerId(from as u64), piece, reason);
                    self.pump(to);
                }
            }
            Ev::Deliver {
                to,
                from,
                piece,
                corrupt,
            } => self.deliver(to, from, piece, corrupt),
            Ev::Have { from, piece } => {
                let conns: Vec<usize> = self.nodes[from]
                    .conns
                    .iter()
                    .copied()
                    .filter(|&c| self.nodes[c].alive)
                    .collect();
                for c in conns {
                    let node = &mut self.nodes[c];
                    if let Some(d) = node.download.as_mut() {
                        d.handle_have(self.now, PeerId(from as u64), piece);
                    }
                    node.uploader
                        .handle_have(self.now, PeerId(from as u64), piece);
                    self.pump(c);
                }
            }
            Ev::Cancel { from, to, piece } => {
                if let Some(id) = self.fluid.find(to, from, piece)
                    && let Some((_, sent)) = self.fluid.remove(self.now.as_secs_f64(), id)
                {
                    self.account(to, from, sent);
                }
                self.nodes[to]
                    .uploader
                    .handle_cancel(self.now, PeerId(from as u64), piece);
                self.pump(to);
            }
            Ev::Available { to, from } => {
                if self.nodes[to].conns.contains(&from)
                    && let Some(d) = self.nodes[to].download.as_mut()
                {
                    d.handle_peer_available(self.now, PeerId(from as u64));
                    self.pump(to);
                }
            }
            Ev::Closed { node, peer } => self.closed(node, peer),
            Ev::Leave(i, how) => self.leave(i, how),
            Ev::Wake(i) => {
                if self.nodes[i].wake != Some(self.now) {
                    return;
                }
                let node = &mut self.nodes[i];
                node.wake = None;
                if let Some(d) = node.download.as_mut() {
                    d.handle_timeout(self.now);
                }
                node.uploader.handle_timeout(self.now);
                self.pump(i);
            }
            Ev::Reallocate => {
                if self.fluid.dirty {
                    self.reallocate();
                } else {
                    self.realloc_pending = false;
                }
            }
            Ev::Sample => {
                // Rates as of the last reallocation (at most a quantum old).
                let (seed_up, _) = self.fluid.rates(0..1);
                let (peers_up, peers_down) = self.fluid.rates(1..self.nodes.len());
                let done = self.nodes.iter().filter(|n| n.done_at.is_some()).count();
                if std::env::var("DBG").is_ok() {
                    let n = &self.nodes[1];
                    let d = n.download.as_ref().unwrap();
                    let missing: Vec<u32> = d.have().iter_missing().take(6).collect();
                    eprintln!(
                        "t={:.1} read_pos={} have={} first_missing={:?}",
                        self.now.as_secs_f64(),
                        n.read_pos,
                        d.have().count(),
                        missing
                    );
                }
                self.samples.push(Sample {
                    t: self.now.as_secs_f64(),
                    seed_up,
                    peers_up,
                    peers_down,
                    done,
                });
                self.at(self.now + self.sc.sample_every, Ev::Sample);
            }
            Ev::FluidTick(generation) => {
                if generation == self.fluid_gen {
                    for t in self.fluid.finished(self.now.as_secs_f64()) {
                        self.account(t.from, t.to, t.bytes);
                        let to = PeerId(t.to as u64);
                        self.nodes[t.from]
                            .uploader
                            .handle_upload_done(self.now, to, t.piece);
                        self.pump(t.from);
                        let corrupt = self.nodes[t.from].bad;
                        self.later(Ev::Deliver {
                            to: t.to,
                            from: t.from,
                            piece: t.piece,
                            corrupt,
                        });
                    }
                }
            }
        }
    }

    /// Recomputes the fluid rates now and schedules the next completion.
    fn reallocate(&mut self) {
        self.realloc_pending = false;
        self.fluid_gen += 1;
        self.reallocations += 1;
        if let Some(t) = self.fluid.reallocate(self.now.as_secs_f64()) {
            self.at(Time::from_secs_f64(t), Ev::FluidTick(self.fluid_gen));
        }
    }

    fn account(&mut self, from: usize, to: usize, bytes: f64) {
        self.nodes[from].up_bytes += bytes;
        self.nodes[to].down_bytes += bytes;
    }
}

mod events;
mod node;

pub(super) use node::Node;
