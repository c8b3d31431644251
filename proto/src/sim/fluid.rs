//! Piece transfers as fluid flows sharing each node's links max-min fairly.
//!
//! Every node has an upload and a download capacity. Whenever the set of
//! running transfers changes, rates are recomputed by progressive filling:
//! the most constrained link (lowest capacity per unfixed transfer) fixes
//! the rate of all its transfers, which is subtracted from their other
//! link, and so on. That is what many TCP or QUIC flows with per-node rate
//! caps converge to, and it is work-conserving: no link idles while a
//! transfer through it could go faster. Recomputing is
//! O(T log L) for T transfers over L links.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One running transfer.
#[derive(Debug, Clone)]
pub(super) struct Transfer {
    pub from: usize,
    pub to: usize,
    pub piece: u32,
    pub bytes: f64,
    remaining: f64,
    pub rate: f64,
}

/// A share of a link's capacity as the bits of a non-negative `f64` (which
/// order like the numbers), and the link; `Reverse` makes the heap a
/// min-heap.
type Share = Reverse<(u64, u32)>;

/// Buffers of [`Fluid::reallocate`], kept to avoid allocating per call.
#[derive(Debug, Default)]
struct Scratch {
    left: Vec<f64>,
    count: Vec<u32>,
    fixed: Vec<bool>,
    heap: BinaryHeap<Share>,
}

/// All running transfers of a world.
#[derive(Debug)]
pub(super) struct Fluid {
    up: Vec<f64>,
    down: Vec<f64>,
    slots: Vec<Option<Transfer>>,
    free: Vec<usize>,
    /// Transfer ids per link: uploads of node i at i, downloads at n + i.
    links: Vec<Vec<usize>>,
    /// Seconds at which `remaining` was last brought up to date.
    settled_at: f64,
    /// Rates need recomputing.
    pub dirty: bool,
    scratch: Scratch,
}

impl Fluid {
    pub fn new(up: Vec<f64>, down: Vec<f64>) -> Self {
        let n = up.len();
        Fluid {
            up,
            down,
            slots: Vec::new(),
            free: Vec::new(),
            links: vec![Vec::new(); 2 * n],
            settled_at: 0.0,
            dirty: false,
            scratch: Scratch::default(),
        }
    }

    fn n(&self) -> usize {
        self.up.len()
    }

    /// Starts a transfer of `bytes` at `now` (seconds); returns its id.
    pub fn start(&mut self, now: f64, from: usize, to: usize, piece: u32, bytes: f64) -> usize {
        self.settle(now);
        let t = Transfer {
            from,
            to,
            piece,
            bytes,
            remaining: bytes,
            rate: 0.0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(t);
                id
            }
            None => {
                self.slots.push(Some(t));
                self.slots.len() - 1
            }
        };
        let n = self.n();
        self.links[from].push(id);
        self.links[n + to].push(id);
        self.dirty = true;
        id
    }

    /// Stops a transfer; returns it with the bytes it had sent.
    pub fn remove(&mut self, now: f64, id: usize) -> Option<(Transfer, f64)> {
        self.settle(now);
        let t = self.slots.get_mut(id)?.take()?;
        let n = self.n();
        for link in [t.from, n + t.to] {
            let l = &mut self.links[link];
            if let Some(i) = l.iter().position(|&x| x == id) {
                l.swap_remove(i);
            }
        }
        self.free.push(id);
        self.dirty = true;
        let sent = t.bytes - t.remaining.max(0.0);
        Some((t, sent))
    }

    /// The transfer from `from` to `to` of `piece`, if running.
    pub fn find(&self, from: usize, to: usize, piece: u32) -> Option<usize> {
        self.links[from].iter().copied().find(|&id| {
            self.slots[id]
                .as_ref()
                .is_some_and(|t| t.to == to && t.piece == piece)
        })
    }

    /// The running transfer `id`.
    pub fn get(&self, id: usize) -> Option<&Transfer> {
        self.slots.get(id)?.as_ref()
    }

    /// Ids of the transfers touching `node` in either direction.
    pub fn touching(&self, node: usize) -> Vec<usize> {
        let n = self.n();
        let mut ids = self.links[node].clone();
        ids.extend_from_slice(&self.links[n + node]);
        ids
    }

    /// Current total upload and download rates of `nodes`.
    pub fn rates(&self, nodes: std::ops::Range<usize>) -> (f64, f64) {
        let n = self.n();
        let sum = |link: usize| -> f64 {
            self.links[link]
                .iter()
                .filter_map(|&id| self.slots[id].as_ref())
                .map(|t| t.rate)
                .sum()
        };
        let up = nodes.clone().map(sum).sum();
        let down = nodes.map(|i| sum(n + i)).sum();
        (up, down)
    }

    /// Whether `node`'s running uploads leave part of its upload capacity
    /// unused (as of the last reallocation).
    pub fn has_spare_upload(&self, node: usize) -> bool {
        let used: f64 = self.links[node]
            .iter()
            .filter_map(|&id| self.slots[id].as_ref())
            .map(|t| t.rate)
            .sum();
        used < self.up[node] * 0.98
    }

    /// Brings every `remaining` up to `now`.
    fn settle(&mut self, now: f64) {
        let dt = now - self.settled_at;
        if dt > 0.0 {
            for t in self.slots.iter_mut().flatten() {
                t.remaining -= t.rate * dt;
            }
        }
        self.settled_at = now.max(self.settled_at);
    }

    /// Recomputes rates (max-min fair) at `now`; returns when the next
    /// transfer finishes, in seconds.
    pub fn reallocate(&mut self, now: f64) -> Option<f64> {
        self.settle(now);
        self.dirty = false;
        let n = self.n();
        let s = &mut self.scratch;
        s.left.clear();
        s.left.extend(self.up.iter().chain(&self.down));
        s.count.clear();
        s.count.extend(self.links.iter().map(|l| l.len() as u32));
        s.fixed.clear();
        s.fixed.resize(self.slots.len(), false);
        s.heap.clear();
        for (c, &k) in s.count.iter().enumerate() {
            if k > 0 {
                s.heap
                    .push(Reverse(((s.left[c] / f64::from(k)).to_bits(), c as u32)));
            }
        }
        let mut next: Option<f64> = None;
        // A link's share only grows as transfers through it are fixed by
        // other links, so a popped entry is at most its link's true share:
        // a stale one is pushed back with the true value.
        while let Some(Reverse((bits, c))) = s.heap.pop() {
            let c = c as usize;
            if s.count[c] == 0 {
                continue;
            }
            let share = f64::from_bits(bits);
            let current = s.left[c] / f64::from(s.count[c]);
            if current > share {
                s.heap.push(Reverse((current.to_bits(), c as u32)));
                continue;
            }
            s.count[c] = 0;
            for &id in &self.links[c] {
                if s.fixed[id] {
                    continue;
                }
                s.fixed[id] = true;
                let t = self.slots[id].as_mut().expect("linked transfers exist");
                t.rate = share.max(0.0);
                if t.rate > 0.0 {
                    let done = now + t.remaining.max(0.0) / t.rate;
                    next = Some(next.map_or(done, |n: f64| n.min(done)));
                }
                let other = if c < n { n + t.to } else { t.from };
                s.left[other] = (s.left[other] - share).max(0.0);
                s.count[other] -= 1;
            }
        }
        next
    }

    /// Removes and returns the transfers that are done at `now` (within a
    /// microsecond).
    pub fn finished(&mut self, now: f64) -> Vec<Transfer> {
        self.settle(now);
        let done: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(id, t)| {
                let t = t.as_ref()?;
                (t.remaining <= t.rate * 1e-6 + 1e-6).then_some(id)
            })
            .collect();
        done.into_iter()
            .filter_map(|id| self.remove(now, id).map(|(t, _)| t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_min_fair_shares() {
        // Node 0 uploads 10 to nodes 1 and 2; node 2 downloads at most 2.
        let mut f = Fluid::new(vec![10.0, 10.0, 10.0], vec![100.0, 100.0, 2.0]);
        f.start(0.0, 0, 1, 0, 16.0);
        f.start(0.0, 0, 2, 0, 16.0);
        let next = f.reallocate(0.0).unwrap();
        // Node 1 gets the 8 node 2 cannot take: done at 16 / 8 = 2 s.
        assert!((next - 2.0).abs() < 1e-9, "{next}");
        let done = f.finished(2.0);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].to, 1);
        let next = f.reallocate(2.0).unwrap();
        // Node 2 had 12 left at 2/s.
        assert!((next - 8.0).abs() < 1e-9, "{next}");
    }

    #[test]
    fn removal_reports_bytes_sent() {
        let mut f = Fluid::new(vec![4.0, 4.0], vec![4.0, 4.0]);
        let id = f.start(0.0, 0, 1, 3, 8.0);
        f.reallocate(0.0);
        assert_eq!(f.find(0, 1, 3), Some(id));
        let (t, sent) = f.remove(1.0, id).unwrap();
        assert_eq!(t.piece, 3);
        assert!((sent - 4.0).abs() < 1e-9);
        assert_eq!(f.reallocate(1.0), None);
    }
}
