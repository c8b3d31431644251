//! Choosing requests: which peers to fill, and which piece to ask each for.
//!
//! Kept apart from the event handlers in `download.rs` because this is the
//! part to tune: the order of the rules below is the scheduling policy.
//!
//! While fewer requests are in flight than the [window](super::window)
//! allows, for each peer with room in its pipeline (not backing off), in
//! order of measured throughput, fastest first, seeds last:
//!
//! 1. a piece a seed hinted (seeds only);
//! 2. the first missing piece of the streaming window it has;
//! 3. the rarest missing piece it has (fewest connected holders), ties by
//!    the download's random order;
//! 4. in the end-game (every missing piece requested), a second request for
//!    the piece with the fewest requests in flight.
//!
//! A seed only gets pieces no other connected peer has, or hinted ones,
//! unless the download is starving (requests to other peers run low, or
//! the rate is below the budget).
//!
//! Cost: a full scan of the missing pieces happens only for a peer with
//! news; once a scan finds nothing, only pieces that became requestable
//! since (its `have`s, released requests) are looked at.

use super::PeerId;
use super::download::{Action, Download};
use super::peer::PeerState;

impl Download {
    /// Issues requests until the window is full or no peer with news has
    /// anything to offer.
    pub(super) fn fill(&mut self) {
        if self.have.is_complete() || self.peers.is_empty() {
            self.fill_all = false;
            self.fill_some.clear();
            return;
        }
        let target = self.in_flight_target();
        if self.in_flight >= target {
            // Keep the news for when a request ends.
            self.window.hit();
            return;
        }
        let seeds_may = !self.seeds.is_empty()
            && (self.unavailable > 0 || self.seeds_hinted() || self.starving());
        if !self.fill_all && self.fill_some.is_empty() && !seeds_may {
            return;
        }
        let fill_all = std::mem::take(&mut self.fill_all);
        let some = std::mem::take(&mut self.fill_some);
        let starving = self.starving();
        let (now, endgame) = (self.now, self.unrequested == 0);
        let piece_size = u64::from(self.layout.piece_size);
        let prefer = self.prefer.take();
        let probing = self.waiting_on < self.config.max_waiting;
        // Peers that may take a request and may have something new.
        let ready = |id: &PeerId, p: &PeerState| {
            if !probing && !p.is_seed() && prefer != Some(*id) {
                return false;
            }
            let has_news = if p.is_seed() {
                starving || !p.hint.is_empty() || self.unavailable > 0
            } else {
                endgame || !p.scanned || !p.fresh.is_empty()
            };
            has_news
                && p.backoff_until <= now
                && p.requests.len() < p.depth(&self.config, piece_size)
        };
        let key = |(id, p): (&PeerId, &PeerState)| {
            let rate = if prefer == Some(*id) {
                f64::NEG_INFINITY
            } else {
                -p.rate.unwrap_or(f64::INFINITY)
            };
            (p.is_seed(), rate, *id)
        };
        let mut order: Vec<(bool, f64, PeerId)> = if fill_all {
            self.peers
                .iter()
                .filter(|(id, p)| ready(id, p))
                .map(key)
                .collect()
        } else {
            some.iter()
                .chain(&self.seeds)
                .filter_map(|id| self.peers.get_key_value(id))
                .filter(|(id, p)| ready(id, p))
                .map(key)
                .collect()
        };
        order.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        order.dedup_by_key(|o| o.2);
        let window = self.stream_window();
        for (i, &(_, _, id)) in order.iter().enumerate() {
            if !self.fill_peer(id, starving, target, &window) {
                // The window is full: the rest keep their news.
                self.fill_some.extend(order[i..].iter().map(|o| o.2));
                return;
            }
        }
    }

    /// Fills one peer's pipeline; false once the window (`target`) is full.
    fn fill_peer(&mut self, id: PeerId, starving: bool, target: u32, window: &[u32]) -> bool {
        let now = self.now;
        loop {
            if self.in_flight >= target {
                self.window.hit();
                return false;
            }
            let endgame = self.unrequested == 0;
            let Some(p) = self.peers.get(&id) else {
                return true;
            };
            let depth = p.depth(&self.config, u64::from(self.layout.piece_size));
            if p.backoff_until > now || p.requests.len() >= depth {
                return true;
            }
            let picked = match self.pick(id, starving, endgame, window) {
                Some(i) => Some(i),
                None if endgame => self.pick_endgame(id),
                None => None,
            };
            let Some(piece) = picked else {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.scanned = true;
                    p.fresh.clear();
                }
                return true;
            };
            self.issue(id, piece);
        }
    }

    /// Whether a seed gave hints not yet followed.
    fn seeds_hinted(&self) -> bool {
        self.seeds
            .iter()
            .filter_map(|id| self.peers.get(id))
            .any(|p| !p.hint.is_empty())
    }

    /// Whether the other peers fail to keep this download busy, so that
    /// seeds may be asked for anything.
    fn starving(&self) -> bool {
        let cfg = &self.config;
        let to_seeds: usize = self
            .seeds
            .iter()
            .filter_map(|id| self.peers.get(id))
            .map(|p| p.requests.len())
            .sum();
        if self.in_flight - (to_seeds as u32) < cfg.seed_starve_in_flight {
            return true;
        }
        // The rate only says something once it was measured over a whole
        // horizon; before that every download looks slow.
        let measured = self
            .started
            .is_some_and(|t| self.now >= t + cfg.rate_horizon);
        // Against the node's whole cap, not this download's share of it:
        // a seed asked only when every download is short of the whole cap
        // left the last pieces of a blob waiting on busy peers (10 s, then
        // the HTTP fallback).
        match cfg.download_rate {
            Some(budget) if measured => {
                self.download_rate().unwrap_or(0.0) < budget * cfg.seed_starve_rate
            }
            _ => false,
        }
    }

    /// The best piece to request from `id` outside the end-game.
    fn pick(&mut self, id: PeerId, starving: bool, endgame: bool, window: &[u32]) -> Option<u32> {
        let p = self.peers.get_mut(&id)?;
        let seed = p.is_seed();
        if seed && !starving && p.hint.is_empty() && self.unavailable == 0 {
            return None;
        }
        let fresh_only = p.scanned && !endgame;
        let mut fresh = std::mem::take(&mut p.fresh);
        let best = self.pick_from(id, starving, fresh_only.then_some(&fresh[..]), window);
        if let Some(i) = best {
            fresh.retain(|&f| f != i);
        }
        if let Some(p) = self.peers.get_mut(&id) {
            p.fresh = fresh;
        }
        best
    }

    /// [`Download::pick`] over all missing pieces, or only over `fresh`.
    fn pick_from(
        &self,
        id: PeerId,
        starving: bool,
        fresh: Option<&[u32]>,
        window: &[u32],
    ) -> Option<u32> {
        let now = self.now;
        let p = self.peers.get(&id)?;
        let seed = p.is_seed();
        let (have, pieces) = (&self.have, &self.pieces);
        let requestable = |i: u32| {
            !have.get(i) && p.has.get(i) && pieces[i as usize].in_flight == 0 && !p.refused(i, now)
        };
        // 1. Hints from a seed.
        if seed && let Some(&h) = p.hint.iter().find(|&&h| requestable(h)) {
            return Some(h);
        }
        let allowed = |i: u32| !seed || starving || pieces[i as usize].avail == 0;
        if let Some(fresh) = fresh {
            // Only pieces that became requestable since the last scan.
            let key = |i: u32| {
                let in_window = window.contains(&i);
                let order = if in_window {
                    i
                } else {
                    pieces[i as usize].avail
                };
                (!in_window, order, self.rank[i as usize])
            };
            return fresh
                .iter()
                .copied()
                .filter(|&i| requestable(i) && allowed(i))
                .min_by_key(|&i| key(i));
        }
        // 2. The streaming window, then 3. rarest first.
        if let Some(&i) = window.iter().find(|&&i| requestable(i) && allowed(i)) {
            return Some(i);
        }
        have.iter_missing()
            .filter(|&i| requestable(i) && allowed(i))
            .min_by_key(|&i| (pieces[i as usize].avail, self.rank[i as usize]))
    }

    /// The first `window` missing pieces from the read position on, in
    /// order: what the client's in-order stream needs next.
    fn stream_window(&self) -> Vec<u32> {
        self.have
            .iter_missing()
            .skip_while(|&i| i < self.read_pos)
            .take(self.config.window as usize)
            .collect()
    }

    /// A duplicate request for the end-game.
    fn pick_endgame(&self, id: PeerId) -> Option<u32> {
        let p = self.peers.get(&id)?;
        self.have
            .iter_missing()
            .filter(|&i| {
                let n = self.pieces[i as usize].in_flight;
                p.has.get(i)
                    && n < self.config.endgame_copies
                    && !p.refused(i, self.now)
                    && !p.requests.iter().any(|r| r.piece == i)
            })
            .min_by_key(|&i| (self.pieces[i as usize].in_flight, i.max(self.read_pos)))
    }

    fn issue(&mut self, id: PeerId, piece: u32) {
        let now = self.now;
        self.started.get_or_insert(now);
        let len = self.layout.piece_len(piece);
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let deadline = p.deadline(&self.config, now, len);
        p.push_request(piece, now, deadline);
        super::download::timeout_added(&self.next_timeout, deadline);
        p.hint.retain(|&h| h != piece);
        let info = &mut self.pieces[piece as usize];
        if info.in_flight == 0 {
            self.unrequested -= 1;
        }
        info.in_flight += 1;
        self.in_flight += 1;
        self.stats.requests += 1;
        self.actions.push_back(Action::Request { peer: id, piece });
    }
}
