//! Dominant resource fairness: a client's share is the largest fraction
//! of any scalar of the cluster's total it holds, divided by its weight.
//! Clients are kept ordered by share so that the neediest one is found
//! in O(log n) and re-placed in O(log n) after each allocation.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use crate::resources::Bundle;

/// A share, ordered by value (shares are never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share(pub f64);

impl Eq for Share {}

impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Share {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The dominant share of `allocated` in `total`, over `weight`.
pub fn dominant_share(allocated: &Bundle, total: &Bundle, weight: f64) -> f64 {
    let share = allocated
        .scalars()
        .filter_map(|(name, amount)| {
            let of = total.scalar(name);
            (of > 0.0).then(|| amount / of)
        })
        .fold(0.0_f64, f64::max);
    share / weight.max(f64::MIN_POSITIVE)
}

/// Clients (frameworks within a role, by the allocator's slot number)
/// ordered by share, then by slot: equal shares go in the order the
/// clients came.
#[derive(Debug, Default)]
pub struct Sorter {
    order: BTreeSet<(Share, usize)>,
    shares: HashMap<usize, Share>,
}

impl Sorter {
    /// Places `client` at `share` (adding it when new).
    pub fn set(&mut self, client: usize, share: f64) {
        let share = Share(share);
        match self.shares.get_mut(&client) {
            Some(old) if *old == share => {}
            Some(old) => {
                self.order.remove(&(*old, client));
                *old = share;
                self.order.insert((share, client));
            }
            None => {
                self.shares.insert(client, share);
                self.order.insert((share, client));
            }
        }
    }

    /// Forgets `client`.
    pub fn remove(&mut self, client: usize) {
        if let Some(share) = self.shares.remove(&client) {
            self.order.remove(&(share, client));
        }
    }

    /// Clients, lowest share first.
    pub fn iter(&self) -> impl Iterator<Item = (f64, usize)> + '_ {
        self.order.iter().map(|(s, c)| (s.0, *c))
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dominant_resource_decides() {
        let total = Bundle::of_scalars(&[("cpus", 10.0), ("mem", 100.0)]);
        let a = Bundle::of_scalars(&[("cpus", 1.0), ("mem", 40.0)]);
        let b = Bundle::of_scalars(&[("cpus", 3.0), ("mem", 10.0)]);
        assert_eq!(dominant_share(&a, &total, 1.0), 0.4);
        assert!((dominant_share(&b, &total, 1.0) - 0.3).abs() < 1e-12);
        assert_eq!(dominant_share(&a, &total, 2.0), 0.2);
    }

    #[test]
    fn lowest_share_first_then_by_slot() {
        let mut s = Sorter::default();
        s.set(2, 0.5);
        s.set(1, 0.1);
        s.set(0, 0.1);
        let order: Vec<usize> = s.iter().map(|(_, c)| c).collect();
        assert_eq!(order, [0, 1, 2]);
        s.set(2, 0.0);
        s.remove(0);
        let order: Vec<usize> = s.iter().map(|(_, c)| c).collect();
        assert_eq!(order, [2, 1]);
        assert_eq!(s.len(), 2);
    }
}
