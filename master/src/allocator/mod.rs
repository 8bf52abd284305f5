//! The hierarchical DRF allocator: roles ordered by their weighted
//! dominant share, frameworks within a role by theirs; each allocation
//! cycle offers every agent's free resources to the first framework in
//! that order that has not filtered or suppressed them.
//!
//! Shares are kept incrementally (see [`sorter`]): one cycle costs
//! O(agents × log frameworks) when offers are taken, with no copy of the
//! cluster per framework.

pub mod filters;
pub mod sorter;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::resources::Bundle;
use filters::Filters;
use sorter::{Sorter, dominant_share};

/// Resources granted to one framework in one role on one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// The framework.
    pub framework: String,
    /// The role the resources are allocated to.
    pub role: String,
    /// The agent.
    pub agent: String,
    /// What is offered.
    pub resources: Bundle,
}

#[derive(Debug, Default)]
struct AgentSlot {
    total: Bundle,
    allocated: Bundle,
    active: bool,
    /// What each (framework, role) holds here, to give back on removal.
    holders: HashMap<(String, String), Bundle>,
}

#[derive(Debug, Default)]
struct FrameworkSlot {
    roles: BTreeSet<String>,
    suppressed: BTreeSet<String>,
    active: bool,
    allocated: HashMap<String, Bundle>,
    filters: Filters,
}

#[derive(Debug, Default)]
struct RoleSlot {
    allocated: Bundle,
    frameworks: Sorter,
}

/// The allocator's state.
#[derive(Debug)]
pub struct Allocator {
    agents: HashMap<String, AgentSlot>,
    /// Agents in the order a cycle visits them; the start rotates so that
    /// no agent is always offered first.
    agent_order: Vec<String>,
    cursor: usize,
    frameworks: HashMap<String, FrameworkSlot>,
    roles: BTreeMap<String, RoleSlot>,
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
            agents: HashMap::new(),
            agent_order: Vec::new(),
            cursor: 0,
            frameworks: HashMap::new(),
            roles: BTreeMap::new(),
            weights,
            total: Bundle::default(),
            min_allocatable,
            stale: false,
        }
    }

    fn weight(&self, role: &str) -> f64 {
        self.weights.get(role).copied().unwrap_or(1.0)
    }

    /// Adds an agent with `total` resources, active.
    pub fn add_agent(&mut self, agent: &str, total: Bundle) {
        if self.agents.contains_key(agent) {
            self.remove_agent(agent);
        }
        self.total.add(&total);
        self.agents.insert(
            agent.to_owned(),
            AgentSlot {
                total,
                active: true,
                ..AgentSlot::default()
            },
        );
        self.agent_order.push(agent.to_owned());
        self.stale = true;
    }

    /// Removes an agent; what frameworks held there is theirs no more.
    pub fn remove_agent(&mut self, agent: &str) {
        let Some(slot) = self.agents.remove(agent) else {
            return;
        };
        self.total.subtract(&slot.total);
        for ((framework, role), held) in slot.holders {
            self.unaccount(&framework, &role, &held);
        }
        for framework in self.frameworks.values_mut() {
            framework.filters.forget_agent(agent);
        }
        self.agent_order.retain(|a| a != agent);
        self.stale = true;
    }

    /// Stops (or resumes) offering an agent's resources.
    pub fn set_agent_active(&mut self, agent: &str, active: bool) {
        if let Some(slot) = self.agents.get_mut(agent) {
            slot.active = active;
        }
    }

    /// Adds a framework subscribed to `roles`, active.
    pub fn add_framework(&mut self, framework: &str, roles: &[String]) {
        self.frameworks
            .entry(framework.to_owned())
            .or_default()
            .active = true;
        self.update_roles(framework, roles);
    }

    /// Changes the roles a framework is subscribed to; what it holds in a
    /// role it leaves stays accounted until given back.
    pub fn update_roles(&mut self, framework: &str, roles: &[String]) {
        let Some(slot) = self.frameworks.get_mut(framework) else {
            return;
        };
        let new: BTreeSet<String> = roles.iter().cloned().collect();
        let old = std::mem::replace(&mut slot.roles, new.clone());
        for role in old.difference(&new) {
            if slot.allocated.get(role).is_none_or(Bundle::is_empty)
                && let Some(r) = self.roles.get_mut(role)
            {
                r.frameworks.remove(framework);
            }
        }
        for role in new.difference(&old) {
            let share = self.framework_share(framework, role);
            self.roles
                .entry(role.clone())
                .or_default()
                .frameworks
                .set(framework, share);
        }
    }

    /// Forgets a framework (torn down); its allocations must have been
    /// given back with [`Allocator::recover`] first.
    pub fn remove_framework(&mut self, framework: &str) {
        if let Some(slot) = self.frameworks.remove(framework) {
            for role in slot.roles.iter().chain(slot.allocated.keys()) {
                if let Some(r) = self.roles.get_mut(role) {
                    r.frameworks.remove(framework);
                }
            }
        }
    }

    /// Stops (or resumes) offering to a framework.
    pub fn set_framework_active(&mut self, framework: &str, active: bool) {
        if let Some(slot) = self.frameworks.get_mut(framework) {
            slot.active = active;
        }
    }

    /// Stops offering `roles` (all of the framework's when empty).
    pub fn suppress(&mut self, framework: &str, roles: &[String]) {
        if let Some(slot) = self.frameworks.get_mut(framework) {
            let roles: Vec<String> = if roles.is_empty() {
                slot.roles.iter().cloned().collect()
            } else {
                roles.to_vec()
            };
            slot.suppressed.extend(roles);
        }
    }

    /// Offers `roles` again (all when empty) and clears the filters.
    pub fn revive(&mut self, framework: &str, roles: &[String]) {
        if let Some(slot) = self.frameworks.get_mut(framework) {
            if roles.is_empty() {
                slot.suppressed.clear();
            } else {
                for role in roles {
                    slot.suppressed.remove(role);
                }
            }
            slot.filters.clear();
        }
    }

    /// Records resources a framework already uses on an agent (tasks an
    /// agent reports when it re-registers).
    pub fn account(&mut self, framework: &str, role: &str, agent: &str, resources: &Bundle) {
        let Some(slot) = self.agents.get_mut(agent) else {
            return;
        };
        slot.allocated.add(resources);
        slot.holders
            .entry((framework.to_owned(), role.to_owned()))
            .or_default()
            .add(resources);
        let fw = self.frameworks.entry(framework.to_owned()).or_default();
        fw.allocated
            .entry(role.to_owned())
            .or_default()
            .add(resources);
        self.roles
            .entry(role.to_owned())
            .or_default()
            .allocated
            .add(resources);
        self.reshare(framework, role);
    }

    /// Takes `resources` away from what a framework holds in `role`.
    fn unaccount(&mut self, framework: &str, role: &str, resources: &Bundle) {
        if let Some(fw) = self.frameworks.get_mut(framework)
            && let Some(held) = fw.allocated.get_mut(role)
        {
            held.subtract(resources);
        }
        if let Some(r) = self.roles.get_mut(role) {
            r.allocated.subtract(resources);
        }
        self.reshare(framework, role);
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
        if let Some(slot) = self.agents.get_mut(agent) {
            slot.allocated.subtract(resources);
            let key = (framework.to_owned(), role.to_owned());
            if let Some(held) = slot.holders.get_mut(&key) {
                held.subtract(resources);
                if held.is_empty() {
                    slot.holders.remove(&key);
                }
            }
        } else {
            // The agent is gone and took the allocation with it.
            return;
        }
        self.unaccount(framework, role, resources);
        if let Some(fw) = self.frameworks.get_mut(framework) {
            fw.filters.add(agent, resources.clone(), refuse, now);
        }
    }

    fn framework_share(&self, framework: &str, role: &str) -> f64 {
        self.frameworks
            .get(framework)
            .and_then(|f| f.allocated.get(role))
            .map_or(0.0, |held| dominant_share(held, &self.total, 1.0))
    }

    fn reshare(&mut self, framework: &str, role: &str) {
        let share = self.framework_share(framework, role);
        if let Some(r) = self.roles.get_mut(role) {
            r.frameworks.set(framework, share);
        }
    }

    /// Recomputes every share after the cluster's total changed.
    fn refresh_shares(&mut self) {
        let pairs: Vec<(String, String)> = self
            .frameworks
            .iter()
            .flat_map(|(f, slot)| {
                slot.roles
                    .iter()
                    .chain(slot.allocated.keys())
                    .map(move |r| (f.clone(), r.clone()))
            })
            .collect();
        for (framework, role) in pairs {
            self.reshare(&framework, &role);
        }
        self.stale = false;
    }

    fn allocatable(&self, available: &Bundle) -> bool {
        !available.is_empty()
            && (self.min_allocatable.is_empty()
                || self.min_allocatable.iter().any(|m| available.contains(m)))
    }

    /// Roles, lowest weighted share first.
    fn role_order(&self) -> Vec<String> {
        let mut roles: Vec<(f64, &String)> = self
            .roles
            .iter()
            .filter(|(_, r)| !r.frameworks.is_empty())
            .map(|(name, r)| {
                (
                    dominant_share(&r.allocated, &self.total, self.weight(name)),
                    name,
                )
            })
            .collect();
        roles.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        roles.into_iter().map(|(_, name)| name.clone()).collect()
    }

    /// One allocation cycle: every active agent's free resources go to the
    /// neediest framework that takes them.
    pub fn allocate(&mut self, now: Instant) -> Vec<Allocation> {
        if self.stale {
            self.refresh_shares();
        }
        let mut out = Vec::new();
        let n = self.agent_order.len();
        if n == 0 {
            return out;
        }
        let start = self.cursor % n;
        self.cursor = self.cursor.wrapping_add(1);
        let mut roles = self.role_order();
        for i in 0..n {
            let agent = &self.agent_order[(start + i) % n];
            let Some(slot) = self.agents.get(agent) else {
                continue;
            };
            if !slot.active {
                continue;
            }
            let mut available = slot.total.clone();
            available.subtract(&slot.allocated);
            if !self.allocatable(&available) {
                continue;
            }
            let mut chosen = None;
            'roles: for role in &roles {
                let Some(r) = self.roles.get(role) else {
                    continue;
                };
                for (_, framework) in r.frameworks.iter() {
                    let Some(fw) = self.frameworks.get(framework) else {
                        continue;
                    };
                    if !fw.active
                        || !fw.roles.contains(role)
                        || fw.suppressed.contains(role)
                        || fw.filters.blocks(agent, &available, now)
                    {
                        continue;
                    }
                    chosen = Some((framework.to_owned(), role.clone()));
                    break 'roles;
                }
            }
            let Some((framework, role)) = chosen else {
                continue;
            };
            let agent = agent.clone();
            self.account(&framework, &role, &agent, &available);
            out.push(Allocation {
                framework,
                role,
                agent,
                resources: available,
            });
            if self.roles.len() > 1 {
                roles = self.role_order();
            }
        }
        out
    }

    /// Drops expired filters (called now and then, not every cycle).
    pub fn expire_filters(&mut self, now: Instant) {
        for fw in self.frameworks.values_mut() {
            fw.filters.expire(now);
        }
    }

    /// The cluster's total resources.
    pub fn total(&self) -> &Bundle {
        &self.total
    }

    /// What is allocated (offered or used) on `agent`.
    pub fn allocated_on(&self, agent: &str) -> Option<&Bundle> {
        self.agents.get(agent).map(|a| &a.allocated)
    }

    /// A framework's dominant share in `role`.
    pub fn share(&self, framework: &str, role: &str) -> f64 {
        self.framework_share(framework, role)
    }
}

#[cfg(test)]
mod tests {
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
        let frameworks: BTreeSet<&str> = out.iter().map(|o| o.framework.as_str()).collect();
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
            .map(|o| (o.agent.as_str(), o.framework.as_str()))
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
        let gold = out.iter().filter(|o| o.role == "gold").count();
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
        assert_eq!(out[0].framework, "f2");
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
