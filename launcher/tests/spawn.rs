//! The launcher on the host, without namespaces: what the child inherits
//! from a multi-threaded parent and what the parent keeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use tepui_launcher::{Namespaces, Plan, pidfd, spawn};

fn no_namespaces() -> Namespaces {
    Namespaces {
        pid: false,
        mount: false,
        uts: false,
        ipc: false,
        net: false,
        cgroup: false,
    }
}

/// Runs `argv`; its stdout and exit code.
fn run(argv: &[&str]) -> (String, i32) {
    let (read, write) = std::io::pipe().unwrap();
    let stdin = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let stderr = OwnedFd::from(std::fs::File::create("/dev/null").unwrap());
    let plan = Plan::new(
        argv,
        &[("PATH", "/usr/bin:/bin")],
        [stdin, OwnedFd::from(write), stderr],
    )
    .unwrap()
    .namespaces(no_namespaces());
    let spawned = spawn(&plan).unwrap();
    drop(plan);
    let mut out = String::new();
    std::fs::File::from(OwnedFd::from(read))
        .read_to_string(&mut out)
        .unwrap();
    let status = pidfd::wait_blocking(spawned.pidfd.as_raw_fd())
        .unwrap()
        .unwrap();
    (out, status.code())
}

fn mask_of_this_thread() -> libc::sigset_t {
    // SAFETY: reads this thread's mask into a zeroed sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
        set
    }
}

fn is_member(set: &libc::sigset_t, signal: i32) -> bool {
    // SAFETY: sigismember reads a valid set.
    unsafe { libc::sigismember(set, signal) == 1 }
}

#[test]
fn the_child_starts_with_no_signal_blocked_or_caught_and_the_parent_keeps_its_mask() {
    // This thread blocks SIGUSR1 and the process catches SIGUSR2, as a
    // daemon's runtime does; the launched program must see neither.
    // SAFETY: changes this test thread's mask and one handler; the handler
    // does nothing.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        extern "C" fn nothing(_: libc::c_int) {}
        libc::signal(libc::SIGUSR2, nothing as *const () as libc::sighandler_t);
    }
    let before = mask_of_this_thread();

    // Threads of the parent are running while the child is set up.
    let spinning: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| (0..200_000u64).map(std::hint::black_box).sum::<u64>()))
        .collect();
    for _ in 0..20 {
        let (out, code) = run(&["/bin/cat", "/proc/self/status"]);
        assert_eq!(code, 0);
        let signals: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("SigBlk:") || l.starts_with("SigCgt:"))
            .collect();
        assert_eq!(
            signals,
            ["SigBlk:\t0000000000000000", "SigCgt:\t0000000000000000"],
            "the child inherited a blocked or caught signal"
        );
    }
    for t in spinning {
        t.join().unwrap();
    }

    let after = mask_of_this_thread();
    for signal in 1..libc::SIGRTMIN() {
        assert_eq!(
            is_member(&before, signal),
            is_member(&after, signal),
            "signal {signal} changed in the parent's mask"
        );
    }
    assert!(is_member(&after, libc::SIGUSR1));
}

#[test]
fn a_failed_exec_is_reported_and_memory_of_the_parent_is_untouched() {
    let canary = vec![0x5au8; 1 << 20];
    let (read, write) = std::io::pipe().unwrap();
    drop(read);
    let stdio = [
        OwnedFd::from(std::fs::File::open("/dev/null").unwrap()),
        OwnedFd::from(write),
        OwnedFd::from(std::fs::File::create("/dev/null").unwrap()),
    ];
    let plan = Plan::new(&["/no/such/program"], &[("A", "B")], stdio)
        .unwrap()
        .namespaces(no_namespaces());
    let e = spawn(&plan).unwrap_err();
    assert_eq!(
        e.to_string(),
        "exec /no/such/program: ENOENT (No such file or directory)"
    );
    assert!(canary.iter().all(|b| *b == 0x5a));
    // The launcher still works after a child that failed.
    assert_eq!(run(&["/bin/echo", "ok"]), ("ok\n".to_owned(), 0));
}

/// Runs `script` with sh in a mount namespace of its own after `ops`.
fn run_after(ops: Vec<tepui_launcher::FsOp>, script: &str) -> String {
    let (read, write) = std::io::pipe().unwrap();
    let stdin = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let stderr = OwnedFd::from(std::fs::File::create("/dev/null").unwrap());
    let mut plan = Plan::new(
        &["sh", "-c", script],
        &[("PATH", "/usr/bin:/bin")],
        [stdin, OwnedFd::from(write), stderr],
    )
    .unwrap()
    .namespaces(Namespaces {
        mount: true,
        ..no_namespaces()
    });
    for op in ops {
        plan = plan.fs_op(op);
    }
    let spawned = spawn(&plan).unwrap();
    drop(plan);
    let mut out = String::new();
    std::fs::File::from(OwnedFd::from(read))
        .read_to_string(&mut out)
        .unwrap();
    pidfd::wait_blocking(spawned.pidfd.as_raw_fd()).unwrap();
    out
}

/// A read-only recursive bind is read-only in the mounts under it too
/// (a remount of the top alone left /sys/fs/cgroup writable under a
/// read-only /sys).
#[test]
fn a_read_only_bind_is_read_only_all_the_way_down() {
    use tepui_launcher::{Create, FsOp};
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("top");
    let sub = top.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let ops = vec![
        FsOp::mount("tmpfs", "tmpfs", &sub, 0, None).unwrap(),
        FsOp::bind(&top, &top, true, Create::Nothing).unwrap(),
    ];
    let script = format!(
        "touch {0}/x && echo TOP || echo TOP-RO; touch {1}/x && echo SUB || echo SUB-RO",
        top.display(),
        sub.display()
    );
    assert_eq!(run_after(ops, &script), "TOP-RO\nSUB-RO\n");
}

/// A device node made in the child has its number and its whole mode.
#[test]
fn a_char_device_is_made_with_its_number_and_mode() {
    use tepui_launcher::FsOp;
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev");
    let null = dev.join("null");
    let ops = vec![
        FsOp::mount("tmpfs", "tmpfs", &dev, 0, None).unwrap(),
        FsOp::char_device(&null, 0o666, 1, 3).unwrap(),
    ];
    let script = format!("echo hi > {0} && stat -c '%t:%T %a' {0}", null.display());
    assert_eq!(run_after(ops, &script), "1:3 666\n");
}
