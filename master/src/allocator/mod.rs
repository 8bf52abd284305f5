//! The hierarchical DRF allocator: roles ordered by their weighted
//! dominant share, frameworks within a role by theirs; each allocation
//! cycle offers every agent's free resources to the first framework in
//! that order that has not filtered or suppressed them.
//!
//! Shares are kept incrementally (see [`sorter`]) and agents, frameworks
//! and roles are slots in vectors, named by index inside the allocator:
//! one cycle costs O(agents × log frameworks) when offers are taken, one
//! clone of each offered bundle and no other allocation per agent.
//!
//! This file holds the allocator's state and its bookkeeping: agents,
//! frameworks and roles coming and going, resources accounted and
//! recovered, suppression and filters. The DRF order and the allocation
//! cycle are `drf.rs`'s; the slot types are `slots.rs`'.

mod drf;
pub mod filters;
mod slots;
pub mod sorter;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::resources::Bundle;
use filters::Filters;
use slots::{AgentSlot, FrameworkSlot, RoleSlot, Slots};
use sorter::Sorter;

/// An agent, framework or role id, shared between the allocator's
/// indexes and what it hands out.
pub type Id = Arc<str>;

/// Resources granted to one framework in one role on one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// The framework.
    pub framework: Id,
    /// The role the resources are allocated to.
    pub role: Id,
    /// The agent.
    pub agent: Id,
    /// What is offered.
    pub resources: Bundle,
}

/// The allocator's state.
#[derive(Debug)]
pub struct Allocator {
    /// Agents; a cycle visits the slots in order from a start that
    /// rotates, so that no agent is always offered first.
    agents: Slots<AgentSlot>,
    cursor: usize,
    frameworks: Slots<FrameworkSlot>,
    /// Roles are never forgotten: there are few, and their names recur.
    roles: Vec<RoleSlot>,
    role_index: HashMap<Id, usize>,
    weights: HashMap<String, f64>,
    total: Bundle,
    min_allocatable: Vec<Bundle>,
    /// The cluster total changed since shares were computed.
    stale: bool,
}

/// Mesos's default `--min_allocatable_resources`: `cpus:0.01|mem:32`.
pub fn default_min_allocatable() -> Vec<Bundle> {
    vec![
        Bundle::of_scalars(&[("cpus", 0.01)]),
        Bundle::of_scalars(&[("mem", 32.0)]),
    ]
}

impl Allocator {
    /// An allocator with role `weights` (1 when absent) that offers only
    /// resources holding at least one of `min_allocatable`.
    pub fn new(weights: HashMap<String, f64>, min_allocatable: Vec<Bundle>) -> Self {
        Self {
            agents: Slots::default(),
            cursor: 0,
            frameworks: Slots::default(),
            roles: Vec::new(),
            role_index: HashMap::new(),
            weights,
            total: Bundle::default(),
            min_allocatable,
            stale: false,
        }
    }

    /// The slot of role `name`, made when new.
    fn role(&mut self, name: &str) -> usize {
        if let Some(&i) = self.role_index.get(name) {
            return i;
        }
        let name: Id = Id::from(name);
        self.roles.push(RoleSlot {
            name: name.clone(),
            allocated: Bundle::default(),
            frameworks: Sorter::default(),
        });
        let i = self.roles.len() - 1;
        self.role_index.insert(name, i);
        i
    }

    /// Adds an agent with `total` resources, active.
    pub fn add_agent(&mut self, agent: &str, total: Bundle) {
        if self.agents.find(agent).is_some() {
            self.remove_agent(agent);
        }
        self.total.add(&total);
        let id = Id::from(agent);
        self.agents.insert(
            id.clone(),
            AgentSlot {
                id,
                available: total.clone(),
                total,
                active: true,
                holders: Vec::new(),
            },
        );
        self.stale = true;
    }

    /// Removes an agent; what frameworks held there is theirs no more.
    pub fn remove_agent(&mut self, agent: &str) {
        let Some((ix, slot)) = self.agents.remove(agent) else {
            return;
        };
        self.total.subtract(&slot.total);
        for (framework, role, held) in slot.holders {
            self.unaccount(framework, role, &held);
        }
        for framework in self.frameworks.items.iter_mut().flatten() {
            framework.filters.forget_agent(ix);
        }
        self.stale = true;
    }

    /// Stops (or resumes) offering an agent's resources.
    pub fn set_agent_active(&mut self, agent: &str, active: bool) {
        if let Some(slot) = self.agents.by_id_mut(agent) {
            slot.active = active;
        }
    }

    /// The slot of `framework`, made (inactive, with no roles) when new.
    fn framework(&mut self, framework: &str) -> usize {
        if let Some(i) = self.frameworks.find(framework) {
            return i;
        }
        let id = Id::from(framework);
        self.frameworks.insert(
            id.clone(),
            FrameworkSlot {
                id,
                roles: Vec::new(),
                suppressed: Vec::new(),
                active: false,
                allocated: Vec::new(),
                filters: Filters::default(),
            },
        )
    }

    /// Adds a framework subscribed to `roles`, active.
    pub fn add_framework(&mut self, framework: &str, roles: &[String]) {
        let f = self.framework(framework);
        if let Some(slot) = self.frameworks.get_mut(f) {
            slot.active = true;
        }
        self.update_roles(framework, roles);
    }

    /// Changes the roles a framework is subscribed to; what it holds in a
    /// role it leaves stays accounted until given back.
    pub fn update_roles(&mut self, framework: &str, roles: &[String]) {
        let Some(f) = self.frameworks.find(framework) else {
            return;
        };
        let mut new: Vec<usize> = roles.iter().map(|r| self.role(r)).collect();
        new.sort_unstable();
        new.dedup();
        let Some(slot) = self.frameworks.get_mut(f) else {
            return;
        };
        let old = std::mem::replace(&mut slot.roles, new.clone());
        let holding: Vec<usize> = slot
            .allocated
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(r, _)| *r)
            .collect();
        for role in old.iter().filter(|r| !new.contains(r)) {
            if !holding.contains(role) {
                self.roles[*role].frameworks.remove(f);
            }
        }
        for &role in new.iter().filter(|r| !old.contains(r)) {
            let share = self.framework_share(f, role);
            self.roles[role].frameworks.set(f, share);
        }
    }

    /// Forgets a framework (torn down); its allocations must have been
    /// given back with [`Allocator::recover`] first.
    pub fn remove_framework(&mut self, framework: &str) {
        let Some((f, slot)) = self.frameworks.remove(framework) else {
            return;
        };
        for role in slot
            .roles
            .iter()
            .chain(slot.allocated.iter().map(|(r, _)| r))
        {
            self.roles[*role].frameworks.remove(f);
        }
        // Whatever it still held goes back to its agents, so that the
        // framework that takes this slot next is not charged with it.
        for agent in self.agents.items.iter_mut().flatten() {
            for (_, role, held) in agent.holders.iter().filter(|(hf, _, _)| *hf == f) {
                agent.available.add(held);
                self.roles[*role].allocated.subtract(held);
            }
            agent.holders.retain(|(hf, _, _)| *hf != f);
            agent.clamp();
        }
    }

    /// Stops (or resumes) offering to a framework.
    pub fn set_framework_active(&mut self, framework: &str, active: bool) {
        if let Some(slot) = self.frameworks.by_id_mut(framework) {
            slot.active = active;
        }
    }

    /// Stops offering `roles` (all of the framework's when empty).
    pub fn suppress(&mut self, framework: &str, roles: &[String]) {
        let Some(f) = self.frameworks.find(framework) else {
            return;
        };
        let named: Vec<usize> = roles.iter().map(|r| self.role(r)).collect();
        if let Some(slot) = self.frameworks.get_mut(f) {
            let roles = if named.is_empty() {
                slot.roles.clone()
            } else {
                named
            };
            for role in roles {
                if !slot.suppressed.contains(&role) {
                    slot.suppressed.push(role);
                }
            }
        }
    }

    /// Offers `roles` again (all when empty) and clears the filters.
    pub fn revive(&mut self, framework: &str, roles: &[String]) {
        let Some(f) = self.frameworks.find(framework) else {
            return;
        };
        let named: Vec<usize> = roles
            .iter()
            .filter_map(|r| self.role_index.get(r.as_str()).copied())
            .collect();
        if let Some(slot) = self.frameworks.get_mut(f) {
            if roles.is_empty() {
                slot.suppressed.clear();
            } else {
                slot.suppressed.retain(|r| !named.contains(r));
            }
            slot.filters.clear();
        }
    }

    /// Records resources a framework already uses on an agent (tasks an
    /// agent reports when it re-registers).
    pub fn account(&mut self, framework: &str, role: &str, agent: &str, resources: &Bundle) {
        let Some(a) = self.agents.find(agent) else {
            return;
        };
        let f = self.framework(framework);
        let r = self.role(role);
        self.account_slots(f, r, a, resources);
    }

    fn account_slots(&mut self, f: usize, role: usize, agent: usize, resources: &Bundle) {
        let Some(slot) = self.agents.get_mut(agent) else {
            return;
        };
        slot.available.subtract(resources);
        match slot
            .holders
            .iter_mut()
            .find(|(hf, hr, _)| *hf == f && *hr == role)
        {
            Some((_, _, held)) => held.add(resources),
            None => slot.holders.push((f, role, resources.clone())),
        }
        if let Some(fw) = self.frameworks.get_mut(f) {
            match fw.allocated.iter_mut().find(|(r, _)| *r == role) {
                Some((_, held)) => held.add(resources),
                None => fw.allocated.push((role, resources.clone())),
            }
        }
        self.roles[role].allocated.add(resources);
        self.reshare(f, role);
    }

    /// Takes `resources` away from what a framework slot holds in a role.
    fn unaccount(&mut self, f: usize, role: usize, resources: &Bundle) {
        if let Some(fw) = self.frameworks.get_mut(f)
            && let Some((_, held)) = fw.allocated.iter_mut().find(|(r, _)| *r == role)
        {
            held.subtract(resources);
        }
        self.roles[role].allocated.subtract(resources);
        self.reshare(f, role);
    }

    /// Gives back resources a framework held on an agent (a declined or
    /// rescinded offer, what an accept left unused, an ended task), and
    /// filters them from that framework for `refuse`.
    pub fn recover(
        &mut self,
        framework: &str,
        role: &str,
        agent: &str,
        resources: &Bundle,
        refuse: Duration,
        now: Instant,
    ) {
        if resources.is_empty() {
            return;
        }
        // Without the agent, the framework or the role, nothing is held:
        // the agent took the allocation with it, or the framework's was
        // given back when it was removed.
        let (Some(a), Some(f), Some(&r)) = (
            self.agents.find(agent),
            self.frameworks.find(framework),
            self.role_index.get(role),
        ) else {
            return;
        };
        let Some(slot) = self.agents.get_mut(a) else {
            return;
        };
        let Some(i) = slot
            .holders
            .iter()
            .position(|(hf, hr, _)| *hf == f && *hr == r)
        else {
            return;
        };
        slot.give_back(resources);
        slot.holders[i].2.subtract(resources);
        if slot.holders[i].2.is_empty() {
            slot.holders.swap_remove(i);
        }
        self.unaccount(f, r, resources);
        if let Some(fw) = self.frameworks.get_mut(f) {
            fw.filters.add(a, resources.clone(), refuse, now);
        }
    }

    /// Drops expired filters (called now and then, not every cycle).
    pub fn expire_filters(&mut self, now: Instant) {
        for fw in self.frameworks.items.iter_mut().flatten() {
            fw.filters.expire(now);
        }
    }

    /// The cluster's total resources.
    pub fn total(&self) -> &Bundle {
        &self.total
    }

    /// What is allocated (offered or used) on `agent`.
    pub fn allocated_on(&self, agent: &str) -> Option<Bundle> {
        let slot = self.agents.by_id(agent)?;
        let mut allocated = slot.total.clone();
        allocated.subtract(&slot.available);
        Some(allocated)
    }

    /// A framework's dominant share in `role`.
    pub fn share(&self, framework: &str, role: &str) -> f64 {
        match (self.frameworks.find(framework), self.role_index.get(role)) {
            (Some(f), Some(&r)) => self.framework_share(f, r),
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn agent(cpus: f64, mem: f64) -> Bundle {
        Bundle::of_scalars(&[("cpus", cpus), ("mem", mem)])
    }

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    fn allocator() -> Allocator {
        Allocator::new(HashMap::new(), default_min_allocatable())
    }

    #[test]
    fn offers_each_agent_whole_to_the_lowest_share() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_framework("f1", &roles(&["*"]));
        a.add_framework("f2", &roles(&["*"]));
        a.add_agent("a1", agent(4.0, 1024.0));
        a.add_agent("a2", agent(4.0, 1024.0));
        let out = a.allocate(now);
        assert_eq!(out.len(), 2);
        let frameworks: BTreeSet<&str> = out.iter().map(|o| o.framework.as_ref()).collect();
        assert_eq!(
            frameworks.len(),
            2,
            "each framework gets one agent: {out:?}"
        );
        assert!(a.allocate(now).is_empty(), "nothing left to offer");
    }

    #[test]
    fn drf_favours_the_framework_with_the_smaller_dominant_share() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_agent("big", agent(10.0, 1000.0));
        a.add_agent("a1", agent(1.0, 100.0));
        a.add_framework("heavy", &roles(&["*"]));
        a.add_framework("light", &roles(&["*"]));
        // heavy holds 6 of 11 cpus (share 0.55), light nothing: light is
        // offered `big` first (4 cpus, 990 of 1100 mem: share 0.9), after
        // which heavy is the neediest and is offered a1.
        a.account("heavy", "*", "big", &agent(6.0, 10.0));
        let out = a.allocate(now);
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|o| (o.agent.as_ref(), o.framework.as_ref()))
            .collect();
        assert_eq!(got, [("big", "light"), ("a1", "heavy")]);
    }

    #[test]
    fn weights_divide_role_shares() {
        let now = Instant::now();
        let mut a = Allocator::new(
            HashMap::from([("gold".to_owned(), 3.0)]),
            default_min_allocatable(),
        );
        for i in 0..4 {
            a.add_agent(&format!("a{i}"), agent(1.0, 100.0));
        }
        a.add_framework("g", &roles(&["gold"]));
        a.add_framework("s", &roles(&["silver"]));
        // Both start at zero; gold's share counts a third, so it takes
        // three agents to silver's one.
        let out = a.allocate(now);
        let gold = out.iter().filter(|o| &*o.role == "gold").count();
        assert_eq!((gold, out.len()), (3, 4), "{out:?}");
    }

    #[test]
    fn declined_resources_are_filtered_then_offered_again() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_framework("f1", &roles(&["*"]));
        a.add_agent("a1", agent(2.0, 256.0));
        let offer = a.allocate(now).remove(0);
        a.recover(
            "f1",
            "*",
            "a1",
            &offer.resources,
            Duration::from_secs(5),
            now,
        );
        assert!(a.allocate(now).is_empty(), "filtered for 5 s");
        assert_eq!(a.allocate(now + Duration::from_secs(6)).len(), 1);
    }

    #[test]
    fn a_filtered_framework_lets_the_next_one_have_the_agent() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_framework("f1", &roles(&["*"]));
        a.add_agent("a1", agent(2.0, 256.0));
        let offer = a.allocate(now).remove(0);
        a.add_framework("f2", &roles(&["*"]));
        a.recover(
            "f1",
            "*",
            "a1",
            &offer.resources,
            Duration::from_secs(5),
            now,
        );
        let out = a.allocate(now);
        assert_eq!(&*out[0].framework, "f2");
    }

    #[test]
    fn suppress_and_revive() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_framework("f1", &roles(&["*"]));
        a.add_agent("a1", agent(2.0, 256.0));
        a.suppress("f1", &[]);
        assert!(a.allocate(now).is_empty());
        a.revive("f1", &[]);
        assert_eq!(a.allocate(now).len(), 1);
    }

    #[test]
    fn revive_clears_filters() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_framework("f1", &roles(&["*"]));
        a.add_agent("a1", agent(2.0, 256.0));
        let offer = a.allocate(now).remove(0);
        a.recover(
            "f1",
            "*",
            "a1",
            &offer.resources,
            Duration::from_secs(60),
            now,
        );
        assert!(a.allocate(now).is_empty());
        a.revive("f1", &[]);
        assert_eq!(a.allocate(now).len(), 1);
    }

    #[test]
    fn leftovers_below_the_minimum_are_not_offered() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_framework("f1", &roles(&["*"]));
        a.add_agent("a1", agent(1.0, 64.0));
        a.account(
            "f1",
            "*",
            "a1",
            &Bundle::of_scalars(&[("cpus", 0.995), ("mem", 40.0)]),
        );
        assert!(
            a.allocate(now).is_empty(),
            "0.005 cpus and 24 MB are too little"
        );
    }

    #[test]
    fn inactive_frameworks_and_agents_get_nothing() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_framework("f1", &roles(&["*"]));
        a.add_agent("a1", agent(1.0, 64.0));
        a.set_framework_active("f1", false);
        assert!(a.allocate(now).is_empty());
        a.set_framework_active("f1", true);
        a.set_agent_active("a1", false);
        assert!(a.allocate(now).is_empty());
    }

    #[test]
    fn a_removed_framework_leaves_nothing_charged_to_its_slot() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_framework("f1", &roles(&["*"]));
        a.add_agent("a1", agent(1.0, 64.0));
        let held = a.allocate(now).remove(0);
        // Forgotten without its offer given back first.
        a.remove_framework("f1");
        a.add_framework("f2", &roles(&["*"]));
        assert_eq!(a.share("f2", "*"), 0.0, "f2 takes f1's slot, not its share");
        let out = a.allocate(now);
        assert_eq!(out.len(), 1, "the agent is free again");
        assert_eq!(&*out[0].framework, "f2");
        // A late give-back for f1 changes nothing and gives nothing twice.
        a.recover("f1", "*", "a1", &held.resources, Duration::ZERO, now);
        assert!(a.allocate(now).is_empty(), "f2 still holds the whole agent");
        assert_eq!(a.allocated_on("a1"), Some(agent(1.0, 64.0)));
    }

    #[test]
    fn removing_an_agent_gives_back_what_was_held_there() {
        let now = Instant::now();
        let mut a = allocator();
        a.add_framework("f1", &roles(&["*"]));
        a.add_agent("a1", agent(1.0, 64.0));
        a.add_agent("a2", agent(1.0, 64.0));
        assert_eq!(a.allocate(now).len(), 2);
        assert_eq!(a.share("f1", "*"), 1.0);
        a.remove_agent("a1");
        assert_eq!(a.share("f1", "*"), 1.0);
        assert_eq!(a.total(), &agent(1.0, 64.0));
    }
}
