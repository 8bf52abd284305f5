//! Offers: the allocation cycle and the OFFERS it sends, the offer
//! message itself, DECLINE, REVIVE and SUPPRESS.

use std::collections::HashMap;
use std::time::Instant;

use tepui_proto::v1::scheduler::call;
use tepui_proto::v1::{AgentId, AgentInfo, ExecutorId, FrameworkId, Offer, OfferId};

use super::validation::refuse_of;
use super::{Master, Refusal};
use crate::allocator::Id;
use crate::events;
use crate::state::OfferEntry;

impl Master {
    /// One allocation cycle; offers go out, one OFFERS event per framework.
    pub fn allocate(&mut self) -> usize {
        let now = Instant::now();
        let allocations = self.allocator.allocate(now);
        self.counters.allocation_runs += 1;
        let count = allocations.len();
        let mut by_framework: HashMap<Id, Vec<Offer>> = HashMap::new();
        for allocation in allocations {
            if !self.agents.contains_key(allocation.agent.as_ref()) {
                continue;
            }
            let id = self.fresh("O");
            let entry = OfferEntry {
                framework: allocation.framework,
                role: allocation.role,
                agent: allocation.agent,
                resources: allocation.resources,
                made: now,
            };
            let offer = self.offer_message(&id, &entry);
            if let Some(f) = self.frameworks.get_mut(entry.framework.as_ref()) {
                f.offers.insert(id.clone());
            }
            match by_framework.get_mut(&entry.framework) {
                Some(offers) => offers.push(offer),
                None => {
                    by_framework.insert(entry.framework.clone(), vec![offer]);
                }
            }
            self.offers.insert(id, entry);
        }
        for (framework, offers) in by_framework {
            self.counters.offers_sent += offers.len() as u64;
            if let Some(f) = self.frameworks.get(framework.as_ref()) {
                f.send(&events::offers(offers));
            }
        }
        count
    }

    /// The OFFERS message for an outstanding offer.
    pub fn offer_message(&self, id: &str, entry: &OfferEntry) -> Offer {
        let agent = self.agents.get(entry.agent.as_ref());
        let executor_ids = self
            .frameworks
            .get(entry.framework.as_ref())
            .map(|f| {
                f.executors_on(&entry.agent)
                    .map(|e| ExecutorId {
                        value: e.to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Offer {
            id: OfferId {
                value: id.to_owned(),
            },
            framework_id: FrameworkId {
                value: entry.framework.to_string(),
            },
            agent_id: AgentId {
                value: entry.agent.to_string(),
            },
            hostname: agent.map(|a| a.info.hostname.clone()).unwrap_or_default(),
            url: agent.map(|a| agent_url(&a.info)),
            resources: entry.resources.to_proto(Some(&entry.role)),
            attributes: agent.map(|a| a.info.attributes.clone()).unwrap_or_default(),
            executor_ids,
            allocation_info: Some(tepui_proto::v1::resource::AllocationInfo {
                role: Some(entry.role.to_string()),
            }),
            ..Offer::default()
        }
    }

    /// DECLINE.
    pub fn decline(&mut self, framework: &str, decline: call::Decline) -> Result<(), Refusal> {
        let refuse = refuse_of(decline.filters.as_ref())?;
        for id in &decline.offer_ids {
            // Mesos ignores offers that are no longer valid.
            if self
                .offers
                .get(&id.value)
                .is_some_and(|o| *o.framework == *framework)
            {
                self.remove_offer(&id.value, refuse);
                self.counters.offers_declined += 1;
            }
        }
        Ok(())
    }

    /// REVIVE.
    pub fn revive(&mut self, framework: &str, roles: &[String]) {
        self.allocator.revive(framework, roles);
    }

    /// SUPPRESS.
    pub fn suppress(&mut self, framework: &str, roles: &[String]) {
        self.allocator.suppress(framework, roles);
    }
}

/// The agent's URL as offers carry it.
fn agent_url(info: &AgentInfo) -> tepui_proto::v1::Url {
    tepui_proto::v1::Url {
        scheme: "http".to_owned(),
        address: tepui_proto::v1::Address {
            hostname: Some(info.hostname.clone()),
            ip: Some(info.hostname.clone()),
            port: info.port.unwrap_or(5051),
        },
        path: Some("/slave(1)".to_owned()),
        ..tepui_proto::v1::Url::default()
    }
}
