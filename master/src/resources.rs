//! Resource arithmetic for the allocator and offer validation: what an
//! agent has, what is offered and what tasks use, as named scalars,
//! ranges and sets. tepui offers unreserved resources only; a resource
//! with a reservation, a disk or a provider is refused by name.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use tepui_proto::v1::value::{Range, Ranges, Scalar, Set, Type};
use tepui_proto::v1::{Resource, resource};

/// Scalars are kept to Mesos's fixed point of three decimals, so that
/// sums and differences of what was offered come out exact.
fn round(amount: f64) -> f64 {
    (amount * 1000.0).round() / 1000.0
}

/// A resource's name, shared rather than copied: bundles are cloned on
/// every offer, and a clone should cost one allocation, not one per name.
pub type Name = Arc<str>;

/// A multiset of resources. Each kind is a small vector sorted by name
/// (agents have a handful of resources), cheaper to clone and walk than
/// a map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bundle {
    scalars: Vec<(Name, f64)>,
    ranges: Vec<(Name, Vec<(u64, u64)>)>,
    sets: Vec<(Name, BTreeSet<String>)>,
}

/// The entry for `name` in a vector sorted by name, inserted when absent.
fn slot<'a, V: Default>(entries: &'a mut Vec<(Name, V)>, name: &Name) -> &'a mut V {
    let i = match entries.binary_search_by(|(n, _)| n.as_ref().cmp(name.as_ref())) {
        Ok(i) => i,
        Err(i) => {
            entries.insert(i, (name.clone(), V::default()));
            i
        }
    };
    &mut entries[i].1
}

/// The entry for `name` in a vector sorted by name.
fn find<'a, V>(entries: &'a [(Name, V)], name: &str) -> Option<&'a V> {
    entries
        .binary_search_by(|(n, _)| n.as_ref().cmp(name))
        .ok()
        .map(|i| &entries[i].1)
}

/// The entry for `name` in a vector sorted by name, to change.
fn find_mut<'a, V>(entries: &'a mut [(Name, V)], name: &str) -> Option<&'a mut V> {
    entries
        .binary_search_by(|(n, _)| n.as_ref().cmp(name))
        .ok()
        .map(|i| &mut entries[i].1)
}

/// A name for a resource, shared with every other bundle for the common
/// ones so that parsing agents and tasks does not allocate them anew.
fn name_of(name: &str) -> Name {
    static COMMON: OnceLock<[Name; 5]> = OnceLock::new();
    let common = COMMON.get_or_init(|| ["cpus", "mem", "disk", "ports", "gpus"].map(Name::from));
    common
        .iter()
        .find(|n| n.as_ref() == name)
        .cloned()
        .unwrap_or_else(|| Name::from(name))
}

/// Resources the master cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource {name}: {why}")]
pub struct BundleError {
    /// The resource's name.
    pub name: String,
    /// What is wrong with it.
    pub why: String,
}

/// Sorted, merged intervals.
fn normalize(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (begin, end) in ranges {
        match out.last_mut() {
            Some(last) if begin <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => out.push((begin, end)),
        }
    }
    out
}

fn ranges_contain(outer: &[(u64, u64)], inner: &[(u64, u64)]) -> bool {
    inner
        .iter()
        .all(|&(b, e)| outer.iter().any(|&(ob, oe)| ob <= b && e <= oe))
}

fn ranges_subtract(from: &[(u64, u64)], take: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut begin, end) in from {
        let mut alive = true;
        for &(tb, te) in take {
            if !alive || te < begin || tb > end {
                continue;
            }
            if tb > begin {
                out.push((begin, tb - 1));
            }
            if te >= end {
                alive = false;
            } else {
                begin = te + 1;
            }
        }
        if alive {
            out.push((begin, end));
        }
    }
    out
}

impl Bundle {
    /// The unreserved resources of `resources`; allocation info is
    /// ignored (offers carry it, tasks echo it back).
    pub fn from_proto(resources: &[Resource]) -> Result<Self, BundleError> {
        let mut bundle = Self::default();
        for r in resources {
            let fail = |why: &str| BundleError {
                name: r.name.clone(),
                why: why.to_owned(),
            };
            if !r.reservations.is_empty() || r.reservation.is_some() {
                return Err(fail("reserved resources are not supported"));
            }
            #[allow(deprecated)]
            if r.role.as_deref().is_some_and(|role| role != "*") {
                return Err(fail("reserved resources are not supported"));
            }
            if r.disk.is_some() || r.provider_id.is_some() || r.shared.is_some() {
                return Err(fail(
                    "disk, shared and provider resources are not supported",
                ));
            }
            if r.revocable.is_some() {
                return Err(fail("revocable resources are not supported"));
            }
            match Type::try_from(r.r#type) {
                Ok(Type::Scalar) => {
                    let amount = r
                        .scalar
                        .as_ref()
                        .ok_or_else(|| fail("a scalar without a value"))?
                        .value;
                    if !amount.is_finite() || amount < 0.0 {
                        return Err(fail("a scalar must be finite and non-negative"));
                    }
                    let entry = slot(&mut bundle.scalars, &name_of(&r.name));
                    *entry = round(*entry + amount);
                }
                Ok(Type::Ranges) => {
                    let ranges = r
                        .ranges
                        .as_ref()
                        .ok_or_else(|| fail("ranges without a value"))?;
                    let mut items = Vec::with_capacity(ranges.range.len());
                    for range in &ranges.range {
                        if range.end < range.begin {
                            return Err(fail("a range ends before it begins"));
                        }
                        items.push((range.begin, range.end));
                    }
                    let entry = slot(&mut bundle.ranges, &name_of(&r.name));
                    entry.extend(items);
                    *entry = normalize(std::mem::take(entry));
                }
                Ok(Type::Set) => {
                    let set = r.set.as_ref().ok_or_else(|| fail("a set without items"))?;
                    slot(&mut bundle.sets, &name_of(&r.name)).extend(set.item.iter().cloned());
                }
                _ => return Err(fail("only scalar, ranges and set resources are supported")),
            }
        }
        bundle.prune();
        Ok(bundle)
    }

    /// As Mesos resources, allocated to `role` when one is given.
    pub fn to_proto(&self, role: Option<&str>) -> Vec<Resource> {
        let allocation_info = role.map(|role| resource::AllocationInfo {
            role: Some(role.to_owned()),
        });
        let base = |name: &Name, kind: Type| Resource {
            name: name.to_string(),
            r#type: kind as i32,
            allocation_info: allocation_info.clone(),
            ..Resource::default()
        };
        let mut out = Vec::new();
        for (name, amount) in &self.scalars {
            out.push(Resource {
                scalar: Some(Scalar { value: *amount }),
                ..base(name, Type::Scalar)
            });
        }
        for (name, ranges) in &self.ranges {
            out.push(Resource {
                ranges: Some(Ranges {
                    range: ranges
                        .iter()
                        .map(|&(begin, end)| Range { begin, end })
                        .collect(),
                }),
                ..base(name, Type::Ranges)
            });
        }
        for (name, items) in &self.sets {
            out.push(Resource {
                set: Some(Set {
                    item: items.iter().cloned().collect(),
                }),
                ..base(name, Type::Set)
            });
        }
        out
    }

    /// Drops empty entries so that equal bundles compare equal.
    fn prune(&mut self) {
        self.scalars.retain(|(_, v)| *v > 0.0);
        self.ranges.retain(|(_, v)| !v.is_empty());
        self.sets.retain(|(_, v)| !v.is_empty());
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.scalars.is_empty() && self.ranges.is_empty() && self.sets.is_empty()
    }

    /// The amount of scalar `name`.
    pub fn scalar(&self, name: &str) -> f64 {
        find(&self.scalars, name).copied().unwrap_or(0.0)
    }

    /// The scalars, by name.
    pub fn scalars(&self) -> impl Iterator<Item = (&str, f64)> {
        self.scalars.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// Adds `other`.
    pub fn add(&mut self, other: &Bundle) {
        for (name, amount) in &other.scalars {
            let entry = slot(&mut self.scalars, name);
            *entry = round(*entry + amount);
        }
        for (name, ranges) in &other.ranges {
            let entry = slot(&mut self.ranges, name);
            // Bundles hold normalized ranges: a copy into nothing is one.
            let merge = !entry.is_empty();
            entry.extend_from_slice(ranges);
            if merge {
                *entry = normalize(std::mem::take(entry));
            }
        }
        for (name, items) in &other.sets {
            slot(&mut self.sets, name).extend(items.iter().cloned());
        }
    }

    /// Takes away `other`, never below nothing.
    pub fn subtract(&mut self, other: &Bundle) {
        for (name, amount) in &other.scalars {
            if let Some(entry) = find_mut(&mut self.scalars, name) {
                *entry = round((*entry - amount).max(0.0));
            }
        }
        for (name, ranges) in &other.ranges {
            if let Some(entry) = find_mut(&mut self.ranges, name) {
                *entry = ranges_subtract(entry, ranges);
            }
        }
        for (name, items) in &other.sets {
            if let Some(entry) = find_mut(&mut self.sets, name) {
                entry.retain(|i| !items.contains(i));
            }
        }
        self.prune();
    }

    /// Whether `other` fits inside this bundle.
    pub fn contains(&self, other: &Bundle) -> bool {
        other
            .scalars
            .iter()
            .all(|(name, amount)| self.scalar(name) + 1e-9 >= *amount)
            && other.ranges.iter().all(|(name, ranges)| {
                find(&self.ranges, name).is_some_and(|mine| ranges_contain(mine, ranges))
            })
            && other.sets.iter().all(|(name, items)| {
                find(&self.sets, name).is_some_and(|mine| items.is_subset(mine))
            })
    }

    /// A bundle of scalars only, for tests and benchmarks.
    pub fn of_scalars(scalars: &[(&str, f64)]) -> Self {
        let mut bundle = Self::default();
        for (name, amount) in scalars {
            *slot(&mut bundle.scalars, &name_of(name)) = round(*amount);
        }
        bundle.prune();
        bundle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Bundle {
        Bundle::from_proto(&tepui_proto::resources::parse(text).unwrap()).unwrap()
    }

    #[test]
    fn adds_subtracts_and_contains() {
        let mut agent = parse("cpus:4;mem:1024;ports:[31000-31009];zones:{a,b}");
        let task = parse("cpus:0.1;mem:32;ports:[31002-31003];zones:{a}");
        assert!(agent.contains(&task));
        agent.subtract(&task);
        assert_eq!(agent.scalar("cpus"), 3.9);
        assert_eq!(
            agent,
            parse("cpus:3.9;mem:992;ports:[31000-31001,31004-31009];zones:{b}")
        );
        assert!(!agent.contains(&task));
        agent.add(&task);
        assert_eq!(
            agent,
            parse("cpus:4;mem:1024;ports:[31000-31009];zones:{a,b}")
        );
    }

    #[test]
    fn ten_tenths_make_one() {
        let mut total = Bundle::default();
        for _ in 0..10 {
            total.add(&parse("cpus:0.1"));
        }
        assert_eq!(total.scalar("cpus"), 1.0);
        total.subtract(&parse("cpus:1"));
        assert!(total.is_empty());
    }

    #[test]
    fn refuses_reserved_resources_by_name() {
        let e =
            Bundle::from_proto(&tepui_proto::resources::parse("cpus(ops):1").unwrap()).unwrap_err();
        assert!(e.to_string().contains("cpus: reserved"), "{e}");
    }

    #[test]
    fn round_trips_through_proto_with_a_role() {
        let bundle = parse("cpus:2;ports:[1-5];zones:{a}");
        let proto = bundle.to_proto(Some("web"));
        assert!(
            proto
                .iter()
                .all(|r| r.allocation_info.as_ref().unwrap().role.as_deref() == Some("web"))
        );
        assert_eq!(Bundle::from_proto(&proto).unwrap(), bundle);
    }
}
