//! The cgroup v2 controllers tepui uses, as a small set.

use std::fmt;

/// A controller tepui can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// cpu: weight and bandwidth.
    Cpu,
    /// memory: limits, statistics, OOM events.
    Memory,
    /// pids: a process count limit.
    Pids,
    /// io: weights.
    Io,
}

impl Controller {
    const ALL: [Controller; 4] = [
        Controller::Cpu,
        Controller::Memory,
        Controller::Pids,
        Controller::Io,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The name in cgroup.controllers.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Io => "io",
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Controllers(u8);

impl Controllers {
    /// The controllers named in a `cgroup.controllers` or
    /// `cgroup.subtree_control` line; others are ignored.
    pub fn parse(line: &str) -> Self {
        let mut set = Self::default();
        for name in line.split_whitespace() {
            if let Some(c) = Controller::ALL.iter().find(|c| c.name() == name) {
                set.0 |= c.bit();
            }
        }
        set
    }

    /// Whether `c` is in the set.
    pub fn has(self, c: Controller) -> bool {
        self.0 & c.bit() != 0
    }

    /// Whether every member is also in `other`.
    pub fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// "+cpu +memory ..." for cgroup.subtree_control.
    pub fn subtree_control_line(self) -> String {
        self.iter()
            .map(|c| format!("+{}", c.name()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The members, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Controller> {
        Controller::ALL.into_iter().filter(move |c| self.has(*c))
    }
}

impl fmt::Display for Controllers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let names: Vec<_> = self.iter().map(Controller::name).collect();
        f.write_str(&names.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let set = Controllers::parse("cpuset cpu io memory hugetlb pids rdma misc");
        assert_eq!(set.to_string(), "cpu memory pids io");
        assert_eq!(set.subtree_control_line(), "+cpu +memory +pids +io");
        assert_eq!(Controllers::parse("hugetlb").to_string(), "none");
        assert!(Controllers::parse("cpu").is_subset_of(set));
        assert!(!set.is_subset_of(Controllers::parse("cpu")));
    }
}
