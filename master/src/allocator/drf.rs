//! Dominant resource fairness: each framework's dominant share within
//! its role, roles ordered by their weighted share, and the allocation
//! cycle that offers every agent's free resources in that order.

use std::time::Instant;

use super::sorter::dominant_share;
use super::{Allocation, Allocator};
use crate::resources::Bundle;

impl Allocator {
    /// Role slot `role`'s weight (1 unless configured).
    fn weight(&self, role: usize) -> f64 {
        self.roles
            .get(role)
            .and_then(|r| self.weights.get(r.name.as_ref()))
            .copied()
            .unwrap_or(1.0)
    }

    /// Framework slot `f`'s dominant share of what it holds in `role`.
    pub(super) fn framework_share(&self, f: usize, role: usize) -> f64 {
        self.frameworks
            .get(f)
            .and_then(|fw| fw.held(role))
            .map_or(0.0, |held| dominant_share(held, &self.total, 1.0))
    }

    /// Puts framework slot `f` where its share now puts it in `role`.
    pub(super) fn reshare(&mut self, f: usize, role: usize) {
        let share = self.framework_share(f, role);
        self.roles[role].frameworks.set(f, share);
    }

    /// Recomputes every share after the cluster's total changed.
    fn refresh_shares(&mut self) {
        let pairs: Vec<(usize, usize)> = self
            .frameworks
            .iter()
            .flat_map(|(f, slot)| {
                slot.roles
                    .iter()
                    .chain(slot.allocated.iter().map(|(r, _)| r))
                    .map(move |r| (f, *r))
            })
            .collect();
        for (f, role) in pairs {
            self.reshare(f, role);
        }
        self.stale = false;
    }

    /// Whether `available` is worth an offer (holds a minimum).
    fn allocatable(&self, available: &Bundle) -> bool {
        !available.is_empty()
            && (self.min_allocatable.is_empty()
                || self.min_allocatable.iter().any(|m| available.contains(m)))
    }

    /// Roles with frameworks, lowest weighted share first.
    fn role_order(&self) -> Vec<usize> {
        let mut roles: Vec<(f64, usize)> = self
            .roles
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.frameworks.is_empty())
            .map(|(i, r)| (dominant_share(&r.allocated, &self.total, self.weight(i)), i))
            .collect();
        roles.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then_with(|| self.roles[a.1].name.cmp(&self.roles[b.1].name))
        });
        roles.into_iter().map(|(_, i)| i).collect()
    }

    /// The first framework, in DRF order, that takes `available` of agent
    /// slot `agent` now: its slot and the role.
    fn neediest(
        &self,
        roles: &[usize],
        agent: usize,
        available: &Bundle,
        now: Instant,
    ) -> Option<(usize, usize)> {
        for &role in roles {
            for (_, f) in self.roles[role].frameworks.iter() {
                let Some(fw) = self.frameworks.get(f) else {
                    continue;
                };
                if fw.active
                    && fw.roles.contains(&role)
                    && !fw.suppressed.contains(&role)
                    && !fw.filters.blocks(agent, available, now)
                {
                    return Some((f, role));
                }
            }
        }
        None
    }

    /// One allocation cycle: every active agent's free resources go to the
    /// neediest framework that takes them.
    pub fn allocate(&mut self, now: Instant) -> Vec<Allocation> {
        if self.stale {
            self.refresh_shares();
        }
        let mut out = Vec::new();
        let n = self.agents.items.len();
        if n == 0 {
            return out;
        }
        let start = self.cursor % n;
        self.cursor = self.cursor.wrapping_add(1);
        let mut roles = self.role_order();
        for i in 0..n {
            let a = (start + i) % n;
            let Some(slot) = self.agents.get(a) else {
                continue;
            };
            if !slot.active || !self.allocatable(&slot.available) {
                continue;
            }
            let Some((f, role)) = self.neediest(&roles, a, &slot.available, now) else {
                continue;
            };
            let resources = slot.available.clone();
            let agent = slot.id.clone();
            self.account_slots(f, role, a, &resources);
            let Some(framework) = self.frameworks.get(f).map(|fw| fw.id.clone()) else {
                continue;
            };
            out.push(Allocation {
                framework,
                role: self.roles[role].name.clone(),
                agent,
                resources,
            });
            if roles.len() > 1 {
                roles = self.role_order();
            }
        }
        out
    }
}
