//! Offer filters: a framework that declines an offer (or leaves part of
//! it unused) is not offered the same resources of that agent again until
//! the filter's `refuse_seconds` pass or it revives.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::resources::Bundle;

/// Mesos's default `refuse_seconds`.
pub const DEFAULT_REFUSE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Filter {
    until: Instant,
    resources: Bundle,
}

/// One framework's filters, by the allocator's agent slot.
#[derive(Debug, Default)]
pub struct Filters {
    by_agent: HashMap<usize, Filter>,
}

impl Filters {
    /// Refuses `resources` of `agent` until `now + refuse`; a zero
    /// refusal installs nothing.
    pub fn add(&mut self, agent: usize, resources: Bundle, refuse: Duration, now: Instant) {
        if refuse.is_zero() || resources.is_empty() {
            return;
        }
        let filter = Filter {
            until: now + refuse,
            resources,
        };
        // A newer filter on the same agent replaces the older one, as
        // Mesos replaces a filter when the same resources are declined.
        self.by_agent.insert(agent, filter);
    }

    /// Whether `available` on `agent` is filtered at `now`: it is when it
    /// is no more than what was refused.
    pub fn blocks(&self, agent: usize, available: &Bundle, now: Instant) -> bool {
        self.by_agent
            .get(&agent)
            .is_some_and(|f| f.until > now && f.resources.contains(available))
    }

    /// Drops the filters that have expired.
    pub fn expire(&mut self, now: Instant) {
        self.by_agent.retain(|_, f| f.until > now);
    }

    /// Drops every filter (REVIVE).
    pub fn clear(&mut self) {
        self.by_agent.clear();
    }

    /// Drops the filter on `agent` (the agent went away).
    pub fn forget_agent(&mut self, agent: usize) {
        self.by_agent.remove(&agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_what_was_refused_until_it_expires() {
        let now = Instant::now();
        let mut f = Filters::default();
        let refused = Bundle::of_scalars(&[("cpus", 2.0), ("mem", 64.0)]);
        f.add(1, refused, Duration::from_secs(5), now);
        let same = Bundle::of_scalars(&[("cpus", 2.0), ("mem", 64.0)]);
        let more = Bundle::of_scalars(&[("cpus", 4.0), ("mem", 64.0)]);
        assert!(f.blocks(1, &same, now));
        assert!(!f.blocks(1, &more, now), "more than was refused is offered");
        assert!(!f.blocks(2, &same, now));
        assert!(!f.blocks(1, &same, now + Duration::from_secs(5)));
        f.expire(now + Duration::from_secs(6));
        assert!(!f.blocks(1, &same, now));
    }

    #[test]
    fn zero_seconds_filters_nothing_and_revive_clears() {
        let now = Instant::now();
        let mut f = Filters::default();
        let r = Bundle::of_scalars(&[("cpus", 1.0)]);
        f.add(1, r.clone(), Duration::ZERO, now);
        assert!(!f.blocks(1, &r, now));
        f.add(1, r.clone(), Duration::from_secs(60), now);
        f.clear();
        assert!(!f.blocks(1, &r, now));
    }
}
