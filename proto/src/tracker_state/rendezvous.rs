//! Rendezvous (highest random weight) hashing: which supernode seeds a
//! blob.
//!
//! Every tracker instance, given the same supernode list, picks the same
//! supernode for a blob without coordination, and adding or removing a
//! supernode moves only the blobs it wins or held. The weight of node `n`
//! for blob `b` is the first eight bytes of sha256(b ‖ n), big-endian.

use crate::Digest;

/// The weight of `node` for `blob`.
pub fn rendezvous_weight(blob: &Digest, node: &[u8]) -> u64 {
    let mut data = Vec::with_capacity(32 + node.len());
    data.extend_from_slice(blob.as_bytes());
    data.extend_from_slice(node);
    let h = Digest::of(&data);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// Indices of `nodes`, highest weight for `blob` first (ties by the node
/// bytes, so the order is total).
pub fn rendezvous_order<S: AsRef<[u8]>>(blob: &Digest, nodes: &[S]) -> Vec<usize> {
    let mut order: Vec<(u64, &[u8], usize)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (rendezvous_weight(blob, n.as_ref()), n.as_ref(), i))
        .collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    order.into_iter().map(|o| o.2).collect()
}

/// The node of `nodes` with the highest weight for `blob`; `None` if
/// `nodes` is empty.
pub fn rendezvous<'a, S: AsRef<[u8]>>(blob: &Digest, nodes: &'a [S]) -> Option<&'a S> {
    rendezvous_order(blob, nodes).first().map(|&i| &nodes[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(i: u32) -> Digest {
        Digest::of(&i.to_be_bytes())
    }

    #[test]
    fn stable_and_spread() {
        let nodes = ["sn-a:7000", "sn-b:7000", "sn-c:7000"];
        let mut wins = [0usize; 3];
        for i in 0..300 {
            let pick = rendezvous(&blob(i), &nodes).unwrap();
            // Order of the list does not matter.
            let reversed = ["sn-c:7000", "sn-b:7000", "sn-a:7000"];
            assert_eq!(rendezvous(&blob(i), &reversed).unwrap(), pick);
            wins[nodes.iter().position(|n| n == pick).unwrap()] += 1;
        }
        assert!(wins.iter().all(|&w| w > 70), "{wins:?}");
        assert_eq!(rendezvous::<&str>(&blob(0), &[]), None);
    }

    #[test]
    fn removing_a_node_moves_only_its_blobs() {
        let all = ["a", "b", "c", "d"];
        let without_b = ["a", "c", "d"];
        for i in 0..200 {
            let before = *rendezvous(&blob(i), &all).unwrap();
            let after = *rendezvous(&blob(i), &without_b).unwrap();
            if before != "b" {
                assert_eq!(before, after);
            }
        }
    }
}
