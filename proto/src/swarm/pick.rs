//! Choosing requests: which peers to fill, and which piece to ask each for.
//!
//! Kept apart from the event handlers in `download.rs` because this is the
//! part to tune: the order of the rules below is the scheduling policy.
//!
//! For each peer with room in its pipeline (not backing off), in order of
//! measured throughput, fastest first, seeds last:
//!
//! 1. a piece a seed hinted (seeds only);
//! 2. the first missing piece of the streaming window it has;
//! 3. the rarest missing piece it has (fewest connected holders), ties by
//!    the download's random order;
//! 4. in the end-game (every missing piece requested), a second request for
//!    the piece with the fewest requests in flight.
//!
//! A seed only gets pieces no other connected peer has, or hinted ones,
//! unless requests to other peers run low (they are all busy).

use super::PeerId;
use super::download::Download;

impl Download {
    /// Issues requests until every peer with news has a full pipeline or
    /// nothing to offer.
    pub(super) fn fill(&mut self) {
        let fill_all = std::mem::take(&mut self.fill_all);
        let some = std::mem::take(&mut self.fill_some);
        if self.have.is_complete() || self.peers.is_empty() {
            return;
        }
        let mut order: Vec<(bool, f64, PeerId)> = self
            .peers
            .iter()
            .filter(|(id, p)| fill_all || p.is_seed() || some.contains(id))
            .map(|(&id, p)| (p.is_seed(), -p.rate.unwrap_or(f64::INFINITY), id))
            .collect();
        order.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        for (_, _, id) in order {
            self.fill_peer(id);
        }
    }

    fn fill_peer(&mut self, id: PeerId) {
        let now = self.now;
        loop {
            if self.in_flight >= self.in_flight_target() {
                self.window.hit();
                return;
            }
            let endgame = self.unrequested == 0;
            let Some(p) = self.peers.get(&id) else {
                return;
            };
            if p.backoff_until > now {
                return;
            }
            if p.requests.len() >= p.depth(&self.config, u64::from(self.layout.piece_size)) {
                return;
            }
            if !endgame && !p.is_seed() && p.stalled_epoch == Some(self.epoch) {
                return;
            }
            let picked = match self.pick(id) {
                Some(i) => Some(i),
                None if endgame => self.pick_endgame(id),
                None => None,
            };
            let Some(piece) = picked else {
                let epoch = self.epoch;
                if let Some(p) = self.peers.get_mut(&id) {
                    p.stalled_epoch = Some(epoch);
                }
                return;
            };
            self.issue(id, piece);
        }
    }

    /// Requests to peers other than seeds.
    fn non_seed_in_flight(&self) -> u32 {
        let seeds: usize = self
            .peers
            .values()
            .filter(|p| p.is_seed())
            .map(|p| p.requests.len())
            .sum();
        self.in_flight - seeds as u32
    }

    /// Whether the other peers fail to keep this download busy, so that
    /// seeds may be asked for anything.
    fn starving(&self) -> bool {
        let cfg = &self.config;
        if self.non_seed_in_flight() < cfg.seed_starve_in_flight {
            return true;
        }
        match cfg.download_rate {
            Some(budget) => self.download_rate().unwrap_or(0.0) < budget * cfg.seed_starve_rate,
            None => false,
        }
    }

    /// The best piece to request from `id` outside the end-game.
    fn pick(&mut self, id: PeerId) -> Option<u32> {
        let now = self.now;
        let starving = self.starving();
        let p = self.peers.get(&id)?;
        let requestable = |i: u32| {
            !self.have.get(i)
                && p.has.get(i)
                && self.pieces[i as usize].in_flight == 0
                && !p.refused(i, now)
        };
        let seed = p.is_seed();
        // 1. Hints from a seed.
        if seed && let Some(&h) = p.hint.iter().find(|&&h| requestable(h)) {
            return Some(h);
        }
        let allowed = |i: u32| !seed || starving || self.pieces[i as usize].avail == 0;
        // 2. The streaming window.
        let first = self.have.iter_missing().find(|&i| i >= self.read_pos);
        if let Some(first) = first {
            let end = first
                .saturating_add(self.config.window)
                .min(self.have.len());
            if let Some(i) = (first..end).find(|&i| requestable(i) && allowed(i)) {
                return Some(i);
            }
        }
        // 3. Rarest first.
        self.have
            .iter_missing()
            .filter(|&i| requestable(i) && allowed(i))
            .min_by_key(|&i| (self.pieces[i as usize].avail, self.rank[i as usize]))
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
        p.hint.retain(|&h| h != piece);
        let info = &mut self.pieces[piece as usize];
        if info.in_flight == 0 {
            self.unrequested -= 1;
        }
        info.in_flight += 1;
        self.in_flight += 1;
        self.stats.requests += 1;
        self.actions
            .push_back(super::download::Action::Request { peer: id, piece });
    }
}
