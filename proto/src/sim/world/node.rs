//! One simulated node: its state machines and what the world measures
//! about it.

use std::collections::BTreeSet;

use crate::Bitfield;
use crate::swarm::{Download, ServePolicy, Uploader};
use crate::time::Time;

/// A seed (no download) or a peer.
pub(in crate::sim) struct Node {
    pub download: Option<Download>,
    pub uploader: Uploader<Box<dyn ServePolicy>>,
    pub conns: BTreeSet<usize>,
    pub alive: bool,
    pub bad: bool,
    pub wake: Option<Time>,
    pub read_pos: u32,
    pub done_at: Option<Time>,
    pub first_at: Option<Time>,
    pub half_at: Option<Time>,
    pub up_bytes: f64,
    pub down_bytes: f64,
}

impl Node {
    pub fn new(download: Option<Download>, uploader: Uploader<Box<dyn ServePolicy>>) -> Self {
        Node {
            download,
            uploader,
            conns: BTreeSet::new(),
            alive: false,
            bad: false,
            wake: None,
            read_pos: 0,
            done_at: None,
            first_at: None,
            half_at: None,
            up_bytes: 0.0,
            down_bytes: 0.0,
        }
    }

    /// Pieces this node holds.
    pub fn have(&self) -> Bitfield {
        match &self.download {
            Some(d) => d.have().clone(),
            None => self.uploader.held().clone(),
        }
    }

    /// Moves the client's read position past every piece held in order.
    pub fn advance_reader(&mut self, now: Time) {
        let Some(d) = self.download.as_mut() else {
            return;
        };
        let n = d.have().len();
        let start = self.read_pos;
        while self.read_pos < n && d.have().get(self.read_pos) {
            self.read_pos += 1;
        }
        if self.read_pos != start {
            self.first_at.get_or_insert(now);
            if self.read_pos >= n.div_ceil(2) {
                self.half_at.get_or_insert(now);
            }
            d.handle_read_position(now, self.read_pos);
        }
    }
}
