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

/// Clients (frameworks within a role) ordered by share, then by name.
#[derive(Debug, Default)]
pub struct Sorter {
    order: BTreeSet<(Share, String)>,
    shares: HashMap<String, Share>,
}

impl Sorter {
    /// Places `client` at `share` (adding it when new).
    pub fn set(&mut self, client: &str, share: f64) {
        let share = Share(share);
        match self.shares.get_mut(client) {
            Some(old) if *old == share => {}
            Some(old) => {
                self.order.remove(&(*old, client.to_owned()));
                *old = share;
                self.order.insert((share, client.to_owned()));
            }
            None => {
                self.shares.insert(client.to_owned(), share);
                self.order.insert((share, client.to_owned()));
            }
        }
    }

    /// Forgets `client`.
    pub fn remove(&mut self, client: &str) {
        if let Some(share) = self.shares.remove(client) {
            self.order.remove(&(share, client.to_owned()));
        }
    }

    /// Clients, lowest share first.
    pub fn iter(&self) -> impl Iterator<Item = (f64, &str)> {
        self.order.iter().map(|(s, c)| (s.0, c.as_str()))
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
    fn lowest_share_first_then_by_name() {
        let mut s = Sorter::default();
        s.set("c", 0.5);
        s.set("b", 0.1);
        s.set("a", 0.1);
        let order: Vec<&str> = s.iter().map(|(_, c)| c).collect();
        assert_eq!(order, ["a", "b", "c"]);
        s.set("c", 0.0);
        s.remove("a");
        let order: Vec<&str> = s.iter().map(|(_, c)| c).collect();
        assert_eq!(order, ["c", "b"]);
        assert_eq!(s.len(), 2);
    }
}
