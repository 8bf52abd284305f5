//! Master and allocator benchmark (`cargo bench -p tepui-master --bench
//! allocation`, run by `./x bench`): simulated agents and frameworks in
//! process, talking to the real `Master` through the same channels the
//! HTTP streams feed. Prints, without asserting on time, for each setup
//! (agents × frameworks, one role):
//!   - the first allocation cycle (every agent free), in the allocator
//!     alone and in the master (offers built, encoded and queued on each
//!     framework's event stream), with offers per second;
//!   - a cycle after every framework declined its offers (Mesos's
//!     DeclineOffers benchmark: each agent is skipped by the frameworks
//!     that filter it before it reaches one that does not);
//!   - accept -> RunTask: from a protobuf ACCEPT call's bytes to the
//!     RunTask frame decoded off the agent's stream, p50 and p99, with
//!     authentication off and (alternate accepts) on: the scheduler
//!     realm's Basic check and the caller's principal, as the HTTP layer
//!     does them, and the ratio of the two medians (issue 21: at most
//!     5% cost);
//!   - the master's RSS growth for the setup.
//!
//! Targets (issue 6): cycle < 50 ms at 10,000 × 1,000 and < 100 ms at
//! 50,000 × 200; p99 accept -> RunTask < 50 ms. Mesos 1.8 took ~1.1 s per
//! cycle at 10,000 × 1,000. Setups can be chosen with
//! `TEPUI_BENCH_SETUPS=agents×frameworks,...` (e.g. `1000x100`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use prost::Message;
use tepui_master::events::EventSink;
use tepui_master::master::{Config, Master};
use tepui_master::registry::Registry;
use tepui_master::state::AgentLink;
use tepui_proto::internal::{self, MasterToAgent, master_to_agent};
use tepui_proto::media::Encoding;
use tepui_proto::v1::scheduler::{Call, Event, call, event};
use tepui_proto::v1::{
    AgentInfo, CommandInfo, FrameworkId, FrameworkInfo, Offer, TaskId, TaskInfo, offer,
};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// The resources of each simulated agent (as Mesos's allocator benchmarks).
const AGENT_RESOURCES: &str = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]";
/// Accepts sampled for the latency figures.
const ACCEPTS: usize = 2000;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn drain(rx: &mut UnboundedReceiver<Bytes>) -> Vec<Bytes> {
    let mut buf = BytesMut::new();
    while let Ok(chunk) = rx.try_recv() {
        buf.extend_from_slice(&chunk);
    }
    tepui_proto::recordio::decode_all(&buf, 64 << 20).unwrap()
}

fn offers_of(rx: &mut UnboundedReceiver<Bytes>) -> Vec<Offer> {
    drain(rx)
        .iter()
        .map(|r| Event::decode(r.as_ref()).unwrap())
        .filter(|e| e.r#type == Some(event::Type::Offers as i32))
        .filter_map(|e| e.offers)
        .flat_map(|o| o.offers)
        .collect()
}

struct Cluster {
    master: Master,
    links: HashMap<String, UnboundedReceiver<Bytes>>,
    frameworks: Vec<(String, UnboundedReceiver<Bytes>)>,
    _dir: tempfile::TempDir,
}

fn cluster(agents: usize, frameworks: usize) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::defaults(dir.path().to_owned(), "127.0.0.1:5050");
    let mut master = Master::new(config, Registry::default());
    let resources = tepui_proto::resources::parse(AGENT_RESOURCES).unwrap();
    let mut links = HashMap::new();
    for i in 0..agents {
        let (tx, mut rx) = unbounded_channel();
        let id = master
            .register_agent(
                internal::RegisterAgent {
                    agent_info: AgentInfo {
                        hostname: format!("agent{i}"),
                        port: Some(5051),
                        resources: resources.clone(),
                        ..Default::default()
                    },
                    version: "bench".into(),
                    capabilities: Vec::new(),
                    endpoint: None,
                },
                AgentLink {
                    stream_id: format!("a{i}"),
                    tx,
                },
            )
            .unwrap();
        drain(&mut rx);
        links.insert(id, rx);
    }
    let mut subscribed = Vec::new();
    for i in 0..frameworks {
        let (tx, mut rx) = unbounded_channel();
        let id = master
            .subscribe(
                None,
                call::Subscribe {
                    framework_info: FrameworkInfo {
                        user: "root".into(),
                        name: format!("framework{i}"),
                        roles: vec!["role1".into()],
                        // The principal the authenticated accepts below
                        // come from (with authentication off it is unused).
                        principal: Some(BENCH_PRINCIPAL.into()),
                        capabilities: vec![tepui_proto::v1::framework_info::Capability {
                            r#type: Some(
                                tepui_proto::v1::framework_info::capability::Type::MultiRole as i32,
                            ),
                        }],
                        ..Default::default()
                    },
                    ..Default::default()
                },
                EventSink::new(tx, Encoding::Protobuf),
                &format!("s{i}"),
            )
            .unwrap();
        drain(&mut rx);
        subscribed.push((id, rx));
    }
    Cluster {
        master,
        links,
        frameworks: subscribed,
        _dir: dir,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A protobuf ACCEPT of `offer` launching one small command task.
fn accept_bytes(framework: &str, offer: &Offer, task: usize) -> Bytes {
    let call = Call {
        framework_id: Some(FrameworkId {
            value: framework.to_owned(),
        }),
        r#type: Some(call::Type::Accept as i32),
        accept: Some(call::Accept {
            offer_ids: vec![offer.id.clone()],
            operations: vec![offer::Operation {
                r#type: Some(offer::operation::Type::Launch as i32),
                launch: Some(offer::operation::Launch {
                    task_infos: vec![TaskInfo {
                        name: "bench".into(),
                        task_id: TaskId {
                            value: format!("task{task}"),
                        },
                        agent_id: offer.agent_id.clone(),
                        resources: tepui_proto::resources::parse("cpus:0.1;mem:32").unwrap(),
                        command: Some(CommandInfo {
                            value: Some("sleep 1000".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }],
            filters: None,
        }),
        ..Default::default()
    };
    Bytes::from(call.encode_to_vec())
}

/// Every framework declines what it holds on offer, filtered for
/// `refuse_seconds` (0: no filter, the agents are free again at once).
fn decline_all(c: &mut Cluster, refuse_seconds: f64) {
    for (id, rx) in &mut c.frameworks {
        let offers = offers_of(rx);
        c.master
            .decline(
                id,
                call::Decline {
                    offer_ids: offers.iter().map(|o| o.id.clone()).collect(),
                    filters: Some(tepui_proto::v1::Filters {
                        refuse_seconds: Some(refuse_seconds),
                    }),
                },
            )
            .unwrap();
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    percentile(&samples, 0.5)
}

/// The principal of every framework, and its credential.
const BENCH_PRINCIPAL: &str = "bench-framework";

fn bench_credential() -> tepui_proto::authentication::Credential {
    tepui_proto::authentication::Credential {
        principal: BENCH_PRINCIPAL.into(),
        secret: "a-secret-of-some-length-0123456789".into(),
    }
}

/// Rounds measured for each cycle figure; the median is printed.
const ROUNDS: usize = 5;

fn run(agents: usize, frameworks: usize) {
    let rss_before = rss_mib();
    let setup_start = Instant::now();
    let mut c = cluster(agents, frameworks);
    let setup = setup_start.elapsed();

    // Cycles with every agent free: offers made, then declined without a
    // filter so that the next round starts from the same state.
    let mut cycles = Vec::new();
    let mut offered = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        offered = c.master.allocate();
        cycles.push(t.elapsed());
        decline_all(&mut c, 0.0);
    }
    let master_cycle = median(cycles);
    c.master.allocate();
    let rss_after = rss_mib();

    // Every framework declines what it was offered (Mesos's default 5 s
    // filter); each next cycle walks past the filters of the rounds before.
    let mut cycles = Vec::new();
    let mut reoffered = 0;
    for _ in 0..ROUNDS {
        decline_all(&mut c, 5.0);
        let t = Instant::now();
        reoffered = c.master.allocate();
        cycles.push(t.elapsed());
    }
    let decline_cycle = median(cycles);

    // Accept -> RunTask, over the offers the last cycle made.
    let mut pending: Vec<(usize, Offer)> = Vec::new();
    for (i, (_, rx)) in c.frameworks.iter_mut().enumerate() {
        pending.extend(offers_of(rx).into_iter().map(|o| (i, o)));
    }
    // Alternate accepts go through the scheduler API's authentication as
    // the HTTP layer does it before the master sees a call (the Basic
    // header checked against the credentials, then the caller's principal
    // against its framework's), the others with authentication off: the
    // same code, so the difference is what authentication costs.
    let authentication = [
        tepui_master::authentication::Authentication::off(),
        tepui_master::authentication::Authentication::new(
            tepui_proto::authentication::BasicAuthenticator::new([bench_credential()]),
            tepui_master::authentication::Required {
                frameworks: true,
                ..Default::default()
            },
        ),
    ];
    let mut headers = hyper::HeaderMap::new();
    headers.insert(
        hyper::header::AUTHORIZATION,
        bench_credential().basic_header().parse().unwrap(),
    );
    let mut latencies = [Vec::new(), Vec::new()];
    for (n, (i, offer)) in pending.into_iter().take(ACCEPTS).enumerate() {
        let framework = c.frameworks[i].0.clone();
        let body = accept_bytes(&framework, &offer, n);
        let link = c.links.get_mut(&offer.agent_id.value).unwrap();
        let auth = &authentication[n % 2];
        let t = Instant::now();
        let principal = auth
            .check(tepui_master::authentication::Realm::Scheduler, &headers)
            .unwrap();
        let call = Call::decode(body).unwrap();
        let id = call.framework_id.as_ref().unwrap().value.clone();
        c.master.check_caller(&id, principal.as_deref()).unwrap();
        c.master.check_stream(&id, Some(&format!("s{i}"))).unwrap();
        c.master.accept(&id, call.accept.unwrap()).unwrap();
        let frames = drain(link);
        let run =
            frames
                .iter()
                .find_map(|f| match MasterToAgent::decode(f.as_ref()).ok()?.message {
                    Some(master_to_agent::Message::RunTask(r)) => Some(r),
                    _ => None,
                });
        latencies[n % 2].push(t.elapsed());
        assert!(run.is_some(), "no RunTask for accept {n}");
    }
    for l in &mut latencies {
        l.sort_unstable();
    }
    let [latencies, authenticated] = latencies;
    drop(c);

    // The allocator alone, on the same registrations.
    let mut alone = tepui_master::allocator::Allocator::new(
        HashMap::new(),
        tepui_master::allocator::default_min_allocatable(),
    );
    let total = tepui_master::resources::Bundle::from_proto(
        &tepui_proto::resources::parse(AGENT_RESOURCES).unwrap(),
    )
    .unwrap();
    for i in 0..agents {
        alone.add_agent(&format!("agent{i}"), total.clone());
    }
    for i in 0..frameworks {
        alone.add_framework(&format!("framework{i}"), &["role1".to_owned()]);
    }
    let mut cycles = Vec::new();
    for _ in 0..ROUNDS {
        let now = Instant::now();
        let t = Instant::now();
        let granted = alone.allocate(now);
        cycles.push(t.elapsed());
        for g in granted {
            alone.recover(
                &g.framework,
                &g.role,
                &g.agent,
                &g.resources,
                Duration::ZERO,
                now,
            );
        }
    }
    let allocator_cycle = median(cycles);

    println!(
        "master bench: {agents} agents ({AGENT_RESOURCES}) x {frameworks} frameworks, one role; \
         median of {ROUNDS} cycles"
    );
    println!(
        "  setup (register agents, subscribe frameworks): {:.0} ms",
        ms(setup)
    );
    println!(
        "  allocation cycle, all agents free: master {:.1} ms ({offered} offers built, encoded \
         and queued: {:.0} offers/s); the allocator alone {:.1} ms",
        ms(master_cycle),
        offered as f64 / master_cycle.as_secs_f64().max(1e-9),
        ms(allocator_cycle),
    );
    println!(
        "  allocation cycle after every framework declined (5 s filters): {:.1} ms ({reoffered} offers)",
        ms(decline_cycle)
    );
    println!(
        "  accept -> RunTask (decode, validate, launch, RunTask decoded), authentication off, \
         {} accepts: p50 {:.3} ms, p99 {:.3} ms",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "  the same with authentication on (Basic, scheduler realm), {} accepts: p50 {:.3} ms, \
         p99 {:.3} ms; ratio of medians on/off {:.3} (target <= 1.05)",
        authenticated.len(),
        ms(percentile(&authenticated, 0.5)),
        ms(percentile(&authenticated, 0.99)),
        percentile(&authenticated, 0.5).as_secs_f64()
            / percentile(&latencies, 0.5).as_secs_f64().max(1e-12),
    );
    println!(
        "  master RSS: {:.1} MiB for this setup with its offers out ({:.1} MiB before)",
        rss_after - rss_before,
        rss_before,
    );
}

fn setups() -> Vec<(usize, usize)> {
    let spec =
        std::env::var("TEPUI_BENCH_SETUPS").unwrap_or_else(|_| "10000x1000,50000x200".into());
    spec.split(',')
        .filter_map(|s| {
            let (a, f) = s.trim().split_once(['x', '×'])?;
            Some((a.parse().ok()?, f.parse().ok()?))
        })
        .collect()
}

fn main() {
    println!(
        "targets: cycle < 50 ms at 10000x1000, < 100 ms at 50000x200; accept -> RunTask p99 < 50 ms"
    );
    for (agents, frameworks) in setups() {
        run(agents, frameworks);
    }
}
