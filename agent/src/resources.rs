//! The resources an agent offers: detected from the machine (cpus, memory,
//! the work dir's disk, a default port range) unless `--resources` names
//! them, as the Mesos agent does.

use std::path::Path;

use tepui_proto::resources::{self, ResourceError};
use tepui_proto::v1::{Resource, TaskInfo};

/// Memory and disk the agent keeps back for the system: this much, or
/// half, whichever is less (Mesos's rule).
const MEM_RESERVE_MIB: f64 = 1024.0;
const DISK_RESERVE_MIB: f64 = 5120.0;

/// What was detected, before any `--resources` override.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    /// CPUs this process may run on.
    pub cpus: f64,
    /// Memory, MiB.
    pub mem_mib: f64,
    /// Disk of the work dir's filesystem, MiB.
    pub disk_mib: f64,
}

fn after_reserve(total: f64, reserve: f64) -> f64 {
    (total - reserve.min(total / 2.0)).max(0.0).floor()
}

/// Reads the machine: affinity CPUs, /proc/meminfo, statvfs of `work_dir`.
pub fn detect(work_dir: &Path) -> Detected {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mem_total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| {
                    v.split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<f64>().ok())
                })
        })
        .unwrap_or(0.0);
    let disk_bytes = crate::disk::stat(work_dir).map_or(0.0, |d| d.total);
    Detected {
        cpus,
        mem_mib: after_reserve(mem_total_kib / 1024.0, MEM_RESERVE_MIB),
        disk_mib: after_reserve(disk_bytes / (1024.0 * 1024.0), DISK_RESERVE_MIB),
    }
}

/// The agent's resources: `given` (the `--resources` text) where it names
/// a resource, detected values for cpus, mem and disk otherwise, and ports
/// 31000-32000 unless given.
pub fn total(given: Option<&str>, detected: Detected) -> Result<Vec<Resource>, ResourceError> {
    let mut out = match given {
        Some(text) => resources::parse(text)?,
        None => Vec::new(),
    };
    for (name, amount) in [
        ("cpus", detected.cpus),
        ("mem", detected.mem_mib),
        ("disk", detected.disk_mib),
    ] {
        if !out.iter().any(|r| r.name == name) {
            out.push(resources::new_scalar(name, amount));
        }
    }
    if !out.iter().any(|r| r.name == "ports") {
        out.extend(resources::parse("ports:[31000-32000]")?);
    }
    Ok(out)
}

/// The cgroup limits of an executor's container: the sum of its own and
/// its tasks' cpus (a weight, as Mesos sets cpu shares) and mem
/// (memory.max), for the controllers this machine has; the others are not
/// enforced (the agent says which when it starts). `pids_max` (0 for none)
/// caps its processes, so a fork bomb stays inside it. A cpu cap
/// (cpu.max) comes from [`cpu_max`] and is set whatever the controllers,
/// so that a machine without the cpu controller refuses it.
pub fn limits<'a>(
    executor: &[Resource],
    tasks: impl IntoIterator<Item = &'a TaskInfo> + Clone,
    controllers: tepui_isolators::cgroups::Controllers,
    pids_max: u64,
    enable_cfs: bool,
) -> tepui_isolators::cgroups::Limits {
    use tepui_isolators::cgroups::Controller;
    let (mut cpus, mut mem) = (
        resources::scalar(executor, "cpus"),
        resources::scalar(executor, "mem"),
    );
    for task in tasks.clone() {
        cpus += resources::scalar(&task.resources, "cpus");
        mem += resources::scalar(&task.resources, "mem");
    }
    tepui_isolators::cgroups::Limits {
        cpus: (cpus > 0.0 && controllers.has(Controller::Cpu)).then_some(cpus),
        cpu_max: cpu_max(executor, tasks, enable_cfs),
        mem_bytes: (mem > 0.0 && controllers.has(Controller::Memory))
            .then_some((mem * 1024.0 * 1024.0) as u64),
        pids: (pids_max > 0 && controllers.has(Controller::Pids)).then_some(pids_max),
        ..Default::default()
    }
}

/// The cpu cap of an executor's container, in cpus, as Mesos computes it
/// (`Slave::computeExecutorLimits`, then the cgroups2 cpu controller):
/// the sum of its tasks' `limits` cpus, plus the executor's cpus, plus the
/// requests of its tasks without a limit when `enable_cfs` (without it,
/// such a task leaves the container uncapped, so that it is not throttled
/// by others' limits). No task with a limit: the whole request when
/// `enable_cfs`, else no cap. An infinite limit is no cap.
pub fn cpu_max<'a>(
    executor: &[Resource],
    tasks: impl IntoIterator<Item = &'a TaskInfo>,
    enable_cfs: bool,
) -> Option<f64> {
    let executor_cpus = resources::scalar(executor, "cpus");
    let (mut limit, mut unlimited, mut request) = (None::<f64>, 0.0, executor_cpus);
    for task in tasks {
        let cpus = resources::scalar(&task.resources, "cpus");
        request += cpus;
        match task.limits.get("cpus") {
            // Mesos's setLimit: a sum, where infinity absorbs the rest.
            Some(l) => limit = Some(limit.map_or(l.value, |sum| sum + l.value)),
            None => unlimited += cpus,
        }
    }
    let cap = match limit {
        Some(sum) => {
            let with_executor = sum + executor_cpus;
            match (unlimited > 0.0, enable_cfs) {
                (true, false) => None,
                (true, true) => Some(with_executor + unlimited),
                (false, _) => Some(with_executor),
            }
        }
        None => (enable_cfs && request > 0.0).then_some(request),
    };
    cap.filter(|c| c.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(resources: &str, cpu_limit: Option<f64>) -> TaskInfo {
        TaskInfo {
            resources: resources::parse(resources).unwrap(),
            limits: cpu_limit
                .map(|value| ("cpus".to_owned(), tepui_proto::v1::value::Scalar { value }))
                .into_iter()
                .collect(),
            ..TaskInfo::default()
        }
    }

    #[test]
    fn limits_sum_the_executor_and_its_tasks_for_the_controllers_present() {
        use tepui_isolators::cgroups::Controllers;
        let executor = resources::parse("cpus:0.1;mem:32").unwrap();
        let task = [task("cpus:1;mem:64", None)];
        let all = Controllers::parse("cpu memory pids");
        let both = limits(&executor, &task, all, 4096, false);
        assert_eq!(both.mem_bytes, Some(96 << 20));
        assert_eq!(both.pids, Some(4096));
        assert_eq!(both.cpu_max, None);
        assert_eq!(limits(&[], &task, all, 0, false).pids, None);
        assert!((both.cpus.unwrap() - 1.1).abs() < 1e-9);
        let none = limits(&[], &task, Controllers::parse("hugetlb"), 4096, false);
        assert_eq!((none.cpus, none.mem_bytes, none.pids), (None, None, None));
        // A cap asked for stays without the controller, to be refused.
        let capped = limits(&[], &task, Controllers::parse("hugetlb"), 4096, true);
        assert_eq!(capped.cpu_max, Some(1.0));
    }

    #[test]
    fn the_cpu_cap_is_computed_as_mesos_computes_it() {
        let executor = resources::parse("cpus:0.1;mem:32").unwrap();
        let near = |got: Option<f64>, want: f64| {
            assert!(
                got.is_some_and(|g| (g - want).abs() < 1e-9),
                "{got:?} != {want}"
            );
        };
        // No limit: a cap only with --cgroups_enable_cfs, of the request.
        let plain = [task("cpus:1;mem:64", None)];
        assert_eq!(cpu_max(&executor, &plain, false), None);
        near(cpu_max(&executor, &plain, true), 1.1);
        // A limit: its value plus the executor's cpus, with or without cfs.
        let limited = [task("cpus:1;mem:64", Some(2.0))];
        near(cpu_max(&executor, &limited, false), 2.1);
        near(cpu_max(&executor, &limited, true), 2.1);
        // Infinity is no cap, even with cfs, even beside other limits.
        let infinite = [
            task("cpus:1;mem:64", Some(f64::INFINITY)),
            task("cpus:1", Some(1.0)),
        ];
        assert_eq!(cpu_max(&executor, &infinite, true), None);
        // A limited task beside an unlimited one: uncapped without cfs,
        // the limit plus the other's request with it.
        let mixed = [task("cpus:1", Some(2.0)), task("cpus:0.5", None)];
        assert_eq!(cpu_max(&executor, &mixed, false), None);
        near(cpu_max(&executor, &mixed, true), 2.6);
    }

    #[test]
    fn given_resources_win_and_the_rest_are_detected() {
        let detected = Detected {
            cpus: 2.0,
            mem_mib: 23000.0,
            disk_mib: 70000.0,
        };
        let r = total(Some("cpus:8;gpus:1"), detected).unwrap();
        assert_eq!(resources::scalar(&r, "cpus"), 8.0);
        assert_eq!(resources::scalar(&r, "gpus"), 1.0);
        assert_eq!(resources::scalar(&r, "mem"), 23000.0);
        assert!(r.iter().any(|x| x.name == "ports"));
        assert!(total(Some("cpus:x"), detected).is_err());
    }

    #[test]
    fn reserves_for_the_system_as_mesos_does() {
        assert_eq!(after_reserve(24576.0, MEM_RESERVE_MIB), 23552.0);
        assert_eq!(after_reserve(1000.0, MEM_RESERVE_MIB), 500.0);
        let d = detect(Path::new("/"));
        assert!(
            d.cpus >= 1.0 && d.mem_mib > 0.0 && d.disk_mib > 0.0,
            "{d:?}"
        );
    }
}
