//! The allocator's bookkeeping: agents, frameworks and roles as slots
//! in vectors, named by index inside the allocator, with what each holds.

use std::collections::HashMap;

use super::Id;
use super::filters::Filters;
use super::sorter::Sorter;
use crate::resources::Bundle;

/// An agent: what it has, what is free, and who holds the rest.
#[derive(Debug)]
pub(super) struct AgentSlot {
    /// The agent's id.
    pub(super) id: Id,
    /// All it has.
    pub(super) total: Bundle,
    /// `total` less what is allocated, kept as allocations come and go.
    pub(super) available: Bundle,
    /// Connected: its resources may be offered.
    pub(super) active: bool,
    /// What each (framework, role) slot holds here, to give back on
    /// removal; an agent has few holders.
    pub(super) holders: Vec<(usize, usize, Bundle)>,
}

impl AgentSlot {
    /// Gives `resources` back, never to more than the agent has, whatever
    /// the caller gives back.
    pub(super) fn give_back(&mut self, resources: &Bundle) {
        self.available.add(resources);
        self.clamp();
    }

    /// Caps what is free at what the agent has (its total shrank).
    pub(super) fn clamp(&mut self) {
        if !self.total.contains(&self.available) {
            let mut over = self.available.clone();
            over.subtract(&self.total);
            self.available.subtract(&over);
        }
    }
}

/// A framework: its roles, what it holds in each, and its filters.
#[derive(Debug)]
pub(super) struct FrameworkSlot {
    /// The framework's id.
    pub(super) id: Id,
    /// Role slots it is subscribed to.
    pub(super) roles: Vec<usize>,
    /// Role slots it wants no offers for (SUPPRESS).
    pub(super) suppressed: Vec<usize>,
    /// Connected: it may be offered resources.
    pub(super) active: bool,
    /// What it holds, by role slot.
    pub(super) allocated: Vec<(usize, Bundle)>,
    /// What it declined, by agent, until when.
    pub(super) filters: Filters,
}

impl FrameworkSlot {
    /// What it holds in role slot `role`.
    pub(super) fn held(&self, role: usize) -> Option<&Bundle> {
        self.allocated
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, b)| b)
    }
}

/// A role: what its frameworks hold, and their DRF order.
#[derive(Debug)]
pub(super) struct RoleSlot {
    /// The role's name.
    pub(super) name: Id,
    /// What its frameworks hold together.
    pub(super) allocated: Bundle,
    /// Its frameworks' slots, by dominant share.
    pub(super) frameworks: Sorter,
}

/// Slots of one kind: a vector with holes, an index by id, and the holes
/// to fill first.
#[derive(Debug)]
pub(super) struct Slots<T> {
    /// The slots; `None` is a hole.
    pub(super) items: Vec<Option<T>>,
    /// Slot by id.
    pub(super) index: HashMap<Id, usize>,
    /// The holes.
    pub(super) free: Vec<usize>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// The slot of `id`.
    pub(super) fn find(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The item in slot `i`.
    pub(super) fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i).and_then(Option::as_ref)
    }

    /// The item in slot `i`, to change.
    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i).and_then(Option::as_mut)
    }

    /// The item of `id`.
    pub(super) fn by_id(&self, id: &str) -> Option<&T> {
        self.get(self.find(id)?)
    }

    /// The item of `id`, to change.
    pub(super) fn by_id_mut(&mut self, id: &str) -> Option<&mut T> {
        let i = self.find(id)?;
        self.get_mut(i)
    }

    /// Puts `item` in a hole, or a new slot: its slot.
    pub(super) fn insert(&mut self, id: Id, item: T) -> usize {
        let i = match self.free.pop() {
            Some(i) => {
                self.items[i] = Some(item);
                i
            }
            None => {
                self.items.push(Some(item));
                self.items.len() - 1
            }
        };
        self.index.insert(id, i);
        i
    }

    /// Takes the item of `id` out, leaving a hole: its slot and it.
    pub(super) fn remove(&mut self, id: &str) -> Option<(usize, T)> {
        let i = self.index.remove(id)?;
        let item = self.items.get_mut(i)?.take()?;
        self.free.push(i);
        Some((i, item))
    }

    /// The items, with their slots.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((i, t.as_ref()?)))
    }
}
