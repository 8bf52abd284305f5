//! Host tier: the kernel a container's processes can reach. Real
//! containers through the containerizer and the launcher: a process inside
//! tries what the seccomp filter and the capability sets forbid, and fails.
//! Needs root and busybox-static (./x test installs it); python3 is
//! Debian's, run from the host's filesystem.
//!
//! The probe of raw system calls is this test binary itself, run inside a
//! container with `TEPUI_SYSCALL_PROBE` set (see [`syscall_probe`]): so a
//! multi-threaded Rust program is shown to work under the filter too.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tepui_containerizer::{
    Capabilities, Config, ContainerSpec, Containerizer, ExitStatus, SeccompProfile, Stdio,
};
use tepui_isolators::cgroups::Hierarchy;
use tepui_isolators::seccomp::Profile;

/// The variable that makes [`syscall_probe`] probe instead of returning.
const PROBE_ENV: &str = "TEPUI_SYSCALL_PROBE";

/// A containerizer on its own cgroup subtree and state dir, removed after.
struct Fixture {
    containerizer: Containerizer,
    cgroup_root: PathBuf,
    dir: tempfile::TempDir,
    rootfs: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/busybox-rootfs.sh");
        let built = std::process::Command::new(script)
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(
            built.success(),
            "building the busybox rootfs (is busybox-static installed?)"
        );
        let cgroup_root = Hierarchy::default_root()
            .unwrap()
            .with_file_name(format!("tepui-surface-{}-{n}", std::process::id()));
        let containerizer = Containerizer::new(Config {
            cgroup_root: cgroup_root.clone(),
            state_dir: dir.path().join("state"),
            provisioner: None,
        })
        .unwrap();
        Self {
            containerizer,
            cgroup_root,
            dir,
            rootfs,
        }
    }

    /// A spec running `argv` on the host's filesystem, output to files.
    fn host_spec(&self, argv: &[&str]) -> ContainerSpec {
        let mut spec = ContainerSpec::new(argv.iter().map(|a| (*a).to_owned()).collect());
        spec.stdio = Stdio::Files {
            stdout: self.dir.path().join("stdout"),
            stderr: self.dir.path().join("stderr"),
        };
        spec
    }

    /// A spec running `sh -c script` in the busybox rootfs.
    fn busybox_spec(&self, script: &str) -> ContainerSpec {
        let mut spec = self.host_spec(&["sh", "-c", script]);
        spec.rootfs = Some(self.rootfs.clone());
        spec
    }

    /// A spec running this test binary's probe in a container.
    fn probe_spec(&self) -> ContainerSpec {
        let me = std::env::current_exe().unwrap();
        let me = me.to_str().unwrap();
        let mut spec = self.host_spec(&[
            me,
            "--exact",
            "syscall_probe",
            "--nocapture",
            "--test-threads=1",
        ]);
        spec.env.push((PROBE_ENV.into(), "1".into()));
        spec
    }

    /// Launches, waits, destroys; the exit status and stdout, which the
    /// next run truncates.
    async fn run(&self, id: &str, spec: ContainerSpec) -> (Option<ExitStatus>, String) {
        let _ = std::fs::remove_file(self.dir.path().join("stdout"));
        let _ = std::fs::remove_file(self.dir.path().join("stderr"));
        self.containerizer.launch(id, spec).await.unwrap();
        let ended = self.containerizer.wait(id).await.unwrap();
        self.containerizer.destroy(id).await.unwrap();
        let out = std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default();
        let err = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        assert_eq!(
            ended.status,
            Some(ExitStatus::Exited(0)),
            "{id}: stdout:\n{out}\nstderr:\n{err}"
        );
        (ended.status, out)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.cgroup_root);
    }
}

/// `name=result` lines of the probe's output.
fn probed(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("probe "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("{name} missing from /proc/self/status:\n{status}"))
}

/// Not a test of its own: inside a container (with [`PROBE_ENV`] set) it
/// makes the raw system calls the default profile forbids and prints how
/// each ended; anywhere else it returns at once.
/// How a raw system call's return value ended, as the probe prints it.
#[cfg(target_arch = "x86_64")]
fn raw_result(ret: i64) -> String {
    match i32::try_from(-ret) {
        _ if ret >= 0 => "ok".to_owned(),
        Ok(libc::EPERM) => "EPERM".into(),
        Ok(libc::ENOSYS) => "ENOSYS".into(),
        Ok(e) => format!("errno{e}"),
        Err(_) => "unknown".into(),
    }
}

/// A 32-bit x86 system call (`int 0x80`) with one argument.
#[cfg(target_arch = "x86_64")]
fn int80(nr: i64, arg: i64) -> i64 {
    let ret: i64;
    // SAFETY: int 0x80 with integer arguments only (ebx is swapped in and
    // out, as LLVM keeps rbx); the calls the probe makes touch no memory.
    unsafe {
        std::arch::asm!(
            "xchg {arg}, rbx",
            "int 0x80",
            "xchg {arg}, rbx",
            arg = inout(reg) arg => _,
            inlateout("rax") nr => ret,
            in("rcx") 0i64,
            in("rdx") 0i64,
        );
    }
    // The kernel answers in eax for this ABI.
    i64::from(ret as i32)
}

/// An x86_64 `syscall` instruction with the number as given (x32 calls
/// carry bit 30) and zero arguments.
#[cfg(target_arch = "x86_64")]
fn syscall_x32(nr: i64) -> i64 {
    let ret: i64;
    // SAFETY: a system call with zero arguments; the kernel clobbers rcx
    // and r11 only.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") 0i64,
            in("rsi") 0i64,
            in("rdx") 0i64,
            out("rcx") _,
            out("r11") _,
        );
    }
    ret
}

#[test]
fn syscall_probe() {
    if std::env::var_os(PROBE_ENV).is_none() {
        return;
    }
    // Each result is printed before the next call, so errno is its own.
    let report = |name: &str, ret: libc::c_long| {
        let result = match std::io::Error::last_os_error().raw_os_error() {
            _ if ret >= 0 => "ok".to_owned(),
            Some(libc::EPERM) => "EPERM".into(),
            Some(libc::ENOSYS) => "ENOSYS".into(),
            Some(e) => format!("errno{e}"),
            None => "unknown".into(),
        };
        println!("probe {name}={result}");
    };
    // The harness has printed "test syscall_probe ... " without a newline.
    println!();
    let mut zeroes = [0u64; 32];
    let buf = zeroes.as_mut_ptr();
    // Every call below passes integers or a pointer to a zeroed buffer
    // larger than the structure the kernel reads; none can create a
    // process (clone3 is given a size the kernel refuses).
    // SAFETY: as just said.
    report("unshare_user", unsafe {
        libc::unshare(libc::CLONE_NEWUSER).into()
    });
    // SAFETY: as above.
    report("keyctl", unsafe {
        libc::syscall(libc::SYS_keyctl, 0, -3 /* session */, 1)
    });
    // SAFETY: as above.
    report("add_key", unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c"k".as_ptr(),
            c"v".as_ptr(),
            1,
            -3,
        )
    });
    // SAFETY: as above.
    report("bpf", unsafe {
        libc::syscall(libc::SYS_bpf, 0 /* MAP_CREATE */, buf, 72)
    });
    // SAFETY: as above.
    report("io_uring_setup", unsafe {
        libc::syscall(libc::SYS_io_uring_setup, 1, buf)
    });
    // SAFETY: as above.
    report("userfaultfd", unsafe {
        libc::syscall(libc::SYS_userfaultfd, 0)
    });
    // SAFETY: as above.
    report("perf_event_open", unsafe {
        libc::syscall(libc::SYS_perf_event_open, buf, 0, -1, -1, 0)
    });
    // SAFETY: as above.
    report("clone3", unsafe { libc::syscall(libc::SYS_clone3, buf, 0) });
    // SAFETY: as above.
    report("socket_vsock", unsafe {
        libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0).into()
    });
    // SAFETY: as above.
    report("socket_inet", unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into()
    });
    // SAFETY: as above.
    report("personality_query", unsafe {
        libc::personality(0xffff_ffff).into()
    });
    // SAFETY: as above (ADDR_NO_RANDOMIZE).
    report("personality_no_aslr", unsafe {
        libc::personality(0x0040000).into()
    });
    #[cfg(target_arch = "x86_64")]
    {
        // The other ABIs of an x86_64 kernel: 32-bit x86 (int 0x80) and
        // x32 (syscall with bit 30 set). The profile filters them as
        // Docker's archMap does; a call through them is answered, never
        // a kill of the process.
        const X32: i64 = 0x4000_0000;
        println!("probe i386_getpid={}", raw_result(int80(20, 0)));
        println!(
            "probe i386_unshare_user={}",
            raw_result(int80(310, i64::from(libc::CLONE_NEWUSER)))
        );
        println!("probe i386_keyctl={}", raw_result(int80(288, 0)));
        println!("probe x32_getpid={}", raw_result(syscall_x32(X32 | 39)));
        println!("probe x32_keyctl={}", raw_result(syscall_x32(X32 | 250)));
    }
    // A thread (glibc tries clone3, then clone) and a child process.
    let thread = std::thread::spawn(|| 7).join().unwrap_or(0);
    println!("probe thread={}", if thread == 7 { "ok" } else { "failed" });
    let child = std::process::Command::new("/bin/true").status();
    println!(
        "probe spawn={}",
        if child.is_ok_and(|s| s.success()) {
            "ok"
        } else {
            "failed"
        }
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for field in [
        "Seccomp",
        "Seccomp_filters",
        "NoNewPrivs",
        "CapInh",
        "CapEff",
        "CapBnd",
        "CapAmb",
    ] {
        println!("probe {field}={}", status_field(&status, field));
    }
}

#[tokio::test]
async fn the_default_seccomp_profile_fails_the_dangerous_calls_with_eperm() {
    let f = Fixture::new();
    let (_, out) = f.run("probe", f.probe_spec()).await;
    let got = probed(&out);
    let want = |name: &str, value: &str| {
        assert_eq!(
            got.get(name).map(String::as_str),
            Some(value),
            "{name} in:\n{out}"
        );
    };
    // Filter mode 2, two filters: the allow-list and clone3's ENOSYS.
    want("Seccomp", "2");
    want("Seccomp_filters", "2");
    want("NoNewPrivs", "1");
    for blocked in [
        "unshare_user",
        "keyctl",
        "add_key",
        "bpf",
        "io_uring_setup",
        "userfaultfd",
        "perf_event_open",
        "socket_vsock",
        "personality_no_aslr",
    ] {
        want(blocked, "EPERM");
    }
    // clone3's flags are out of a filter's reach: ENOSYS sends glibc to clone.
    want("clone3", "ENOSYS");
    // What ordinary programs need still works.
    for fine in ["socket_inet", "personality_query", "thread", "spawn"] {
        want(fine, "ok");
    }
    if cfg!(target_arch = "x86_64") {
        // The 32-bit and x32 ABIs get the same answers, and no kill.
        want("i386_getpid", "ok");
        want("i386_unshare_user", "EPERM");
        want("i386_keyctl", "EPERM");
        want("x32_keyctl", "EPERM");
        let x32 = got.get("x32_getpid").map(String::as_str);
        assert!(
            matches!(x32, Some("ok" | "ENOSYS")),
            "x32 getpid is allowed (ENOSYS where the kernel lacks x32):\n{out}"
        );
    }
}

#[tokio::test]
async fn ordinary_programs_work_under_the_filter_and_unshare_fails() {
    let f = Fixture::new();
    // busybox in its rootfs: a pipeline, a subshell, files, /proc.
    let (_, out) = f
        .run(
            "busybox",
            f.busybox_spec(
                "grep Seccomp: /proc/self/status; echo a b | (read x y; echo $y); \
                 mkdir /tmp/d && echo hi > /tmp/d/f && cat /tmp/d/f; ls / | wc -l >/dev/null; \
                 unshare -U true 2>/dev/null && echo unshared || echo unshare-refused",
            ),
        )
        .await;
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words,
        ["Seccomp:", "2", "b", "hi", "unshare-refused"],
        "{out}"
    );

    // util-linux's unshare on the host's filesystem says why.
    if Path::new("/usr/bin/unshare").exists() {
        let mut spec = f.host_spec(&["sh", "-c", "/usr/bin/unshare -U true 2>&1; echo rc=$?"]);
        spec.env.push(("LC_ALL".into(), "C".into()));
        let (_, out) = f.run("unshare", spec).await;
        assert!(
            out.contains("Operation not permitted") && out.contains("rc=1"),
            "{out}"
        );
    }

    // Debian's python3: threads, a subprocess, sockets, the random device.
    let python = Path::new("/usr/bin/python3");
    if python.exists() {
        let script = "import os, socket, subprocess, threading\n\
            t = threading.Thread(target=lambda: None); t.start(); t.join()\n\
            out = subprocess.run(['/bin/echo', 'child'], capture_output=True, text=True).stdout.strip()\n\
            s = socket.socket(); s.bind(('127.0.0.1', 0)); s.close()\n\
            print('python', out, len(os.urandom(8)))\n";
        let (_, out) = f
            .run("python", f.host_spec(&["/usr/bin/python3", "-c", script]))
            .await;
        assert_eq!(out.trim(), "python child 8");
    } else {
        eprintln!("SKIPPED the python3 part: no /usr/bin/python3 (./x test installs it)");
    }
}

#[tokio::test]
async fn unconfined_runs_without_a_filter_and_a_named_profile_applies() {
    let f = Fixture::new();
    let mut spec = f.probe_spec();
    spec.seccomp = None;
    let (_, out) = f.run("unconfined", spec).await;
    let got = probed(&out);
    assert_eq!(got.get("Seccomp").map(String::as_str), Some("0"), "{out}");
    assert_eq!(got.get("keyctl").map(String::as_str), Some("ok"), "{out}");

    // A profile of the operator's, in Docker's format: everything but mkdir.
    let profile = Profile::from_json(
        br#"{"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let mut spec =
        f.busybox_spec("grep Seccomp_filters /proc/self/status; mkdir /tmp/x 2>&1; true");
    spec.seccomp = Some(Arc::new(SeccompProfile::new("no-mkdir", profile)));
    let (_, out) = f.run("named", spec).await;
    assert!(out.contains("Seccomp_filters:\t1"), "{out}");
    assert!(
        out.contains("Permission denied"),
        "errnoRet 13 is EACCES: {out}"
    );
}

#[tokio::test]
async fn default_capabilities_are_podmans_with_nothing_inheritable() {
    let f = Fixture::new();
    let (_, out) = f
        .run(
            "caps",
            f.busybox_spec(
                "grep -E '^Cap' /proc/self/status; \
                 mknod /tmp/null c 1 3 2>&1; mknod /tmp/sda b 8 0 2>&1; true",
            ),
        )
        .await;
    let field = |name: &str| status_field(&out, name);
    let default = tepui_isolators::capabilities::default_mask();
    assert_eq!(field("CapInh"), "0000000000000000");
    assert_eq!(field("CapAmb"), "0000000000000000");
    assert_eq!(field("CapEff"), format!("{default:016x}"));
    assert_eq!(field("CapBnd"), format!("{default:016x}"));
    let eff = u64::from_str_radix(&field("CapEff"), 16).unwrap();
    for (name, number) in [
        ("NET_RAW", 13),
        ("MKNOD", 27),
        ("AUDIT_WRITE", 29),
        ("SYS_ADMIN", 21),
    ] {
        assert_eq!(eff & (1 << number), 0, "{name} is effective: {out}");
    }
    // Neither a character nor a block device can be made.
    assert_eq!(
        out.matches("Operation not permitted").count(),
        2,
        "mknod succeeded: {out}"
    );
    assert!(!f.rootfs.join("tmp/null").exists() && !f.rootfs.join("tmp/sda").exists());

    // A wider set asked for is what the process gets, inheritable still none.
    let mut spec = f.busybox_spec("grep -E '^Cap(Inh|Eff|Bnd)' /proc/self/status");
    let net_raw = 1u64 << 13;
    spec.capabilities = Some(Capabilities {
        effective: net_raw,
        bounding: net_raw | default,
    });
    let (_, out) = f.run("netraw", spec).await;
    assert_eq!(status_field(&out, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&out, "CapEff"), format!("{net_raw:016x}"));
    assert_eq!(
        status_field(&out, "CapBnd"),
        format!("{:016x}", net_raw | default)
    );

    // A user other than root gets no capability at all.
    let mut spec = f.busybox_spec("grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status");
    spec.user = Some("nobody".into());
    let (_, out) = f.run("nobody", spec).await;
    for name in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(
            status_field(&out, name),
            "0000000000000000",
            "{name}: {out}"
        );
    }
}

#[tokio::test]
async fn the_cgroup_namespace_hides_the_host_path_and_interrupts_are_masked() {
    let f = Fixture::new();
    let (_, out) = f
        .run(
            "cgroupns",
            f.busybox_spec(
                "grep '^0::' /proc/self/cgroup; readlink /proc/self/ns/cgroup; \
                 echo interrupts=$(cat /proc/interrupts | wc -c); \
                 ls -A /sys/devices/virtual/powercap 2>/dev/null | wc -l",
            ),
        )
        .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"0::/"), "{out}");
    let host_ns = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    assert_ne!(lines.get(1).copied(), host_ns.to_str(), "{out}");
    assert_eq!(lines.get(2), Some(&"interrupts=0"), "{out}");
    assert_eq!(
        lines.get(3),
        Some(&"0"),
        "powercap is empty or absent: {out}"
    );

    // Joining the cgroup before exec (kernels without CLONE_INTO_CGROUP):
    // the namespace is made after the join, so it is rooted there too.
    let hierarchy = Hierarchy::open(&f.cgroup_root).unwrap();
    let cgroup = tepui_isolators::cgroups::ContainerCgroup::create(&hierarchy, "joined").unwrap();
    let (read, write) = std::io::pipe().unwrap();
    let null = || -> std::os::fd::OwnedFd { std::fs::File::open("/dev/null").unwrap().into() };
    let plan = tepui_launcher::Plan::new(
        &["/bin/cat", "/proc/self/cgroup"],
        &[("PATH", "/bin")],
        [null(), write.into(), null()],
    )
    .unwrap()
    .namespaces(tepui_launcher::Namespaces {
        cgroup: true,
        ..tepui_launcher::Namespaces::none()
    })
    .cgroup(tepui_launcher::CgroupJoin::WriteProcs(
        cgroup.leaf_procs_fd().unwrap(),
    ));
    let child = tepui_launcher::spawn(&plan).unwrap();
    drop(plan);
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::fs::File::from(std::os::fd::OwnedFd::from(read)),
        &mut text,
    )
    .unwrap();
    let _ = tepui_launcher::pidfd::wait_blocking(std::os::fd::AsRawFd::as_raw_fd(&child.pidfd));
    cgroup.remove().unwrap();
    assert!(text.lines().any(|l| l == "0::/"), "{text}");
}

/// The mount options of the mount at `point` in a mountinfo text.
fn mount_options<'a>(mountinfo: &'a str, point: &str) -> &'a str {
    mountinfo
        .lines()
        .find_map(|l| {
            let mut fields = l.split(' ');
            (fields.nth(4) == Some(point)).then(|| fields.next().unwrap_or(""))
        })
        .unwrap_or_else(|| panic!("no mount at {point} in:\n{mountinfo}"))
}

#[tokio::test]
async fn device_nodes_and_setuid_in_the_sandbox_and_dev_do_not_work() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    // The host side plants what a fetched archive or an earlier task could:
    // a device node the device filter allows (1:5, /dev/zero) and a
    // setuid-root busybox.
    let sandbox = f.dir.path().join("sandbox");
    std::fs::create_dir(&sandbox).unwrap();
    std::fs::set_permissions(&sandbox, std::fs::Permissions::from_mode(0o755)).unwrap();
    let node = std::ffi::CString::new(sandbox.join("zero").to_str().unwrap()).unwrap();
    // SAFETY: mknod of a path we own; the test runs as root.
    let made = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
    assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
    std::fs::copy(f.rootfs.join("bin/busybox"), sandbox.join("id")).unwrap();
    std::fs::set_permissions(sandbox.join("id"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mknod = 1u64 << 27;
    let default = tepui_isolators::capabilities::default_mask();

    // In an image: the sandbox bind and /dev's tmpfs are nodev and nosuid;
    // the node in the sandbox and one made in /dev (CAP_MKNOD given, the
    // device filter allowing c 1:5) cannot be opened; /dev/null works.
    let mut spec = f.busybox_spec(
        "cat /proc/self/mountinfo; \
         head -c1 /mnt/mesos/sandbox/zero >/dev/null 2>&1 && echo sandbox-node=open || echo sandbox-node=refused; \
         mknod /dev/z c 1 5 && { head -c1 /dev/z >/dev/null 2>&1 && echo dev-node=open || echo dev-node=refused; }; \
         echo ok > /dev/null && echo devnull=ok",
    );
    spec.mounts.sandbox = Some(sandbox.clone());
    spec.capabilities = Some(Capabilities {
        effective: default | mknod,
        bounding: default | mknod,
    });
    let (_, out) = f.run("nodev-image", spec).await;
    for line in ["sandbox-node=refused", "dev-node=refused", "devnull=ok"] {
        assert!(
            out.lines().any(|l| l == line),
            "{line} missing from:\n{out}"
        );
    }
    for point in ["/mnt/mesos/sandbox", "/dev"] {
        let options: Vec<&str> = mount_options(&out, point).split(',').collect();
        assert!(
            options.contains(&"nodev") && options.contains(&"nosuid"),
            "{point} is mounted {options:?}"
        );
    }

    // A setuid-root binary in the sandbox run by nobody stays nobody
    // (no_new_privs alone already makes sure; nosuid is the second lock).
    let mut spec = f.busybox_spec("/mnt/mesos/sandbox/id -u");
    spec.mounts.sandbox = Some(sandbox.clone());
    spec.user = Some("nobody".into());
    let (_, out) = f.run("nosuid-image", spec).await;
    assert_eq!(out.trim(), "65534");

    // On the host's filesystem the sandbox is bound on itself the same way.
    let script = format!(
        "grep ' {dir} ' /proc/self/mountinfo; \
         head -c1 {dir}/zero >/dev/null 2>&1 && echo sandbox-node=open || echo sandbox-node=refused",
        dir = sandbox.display()
    );
    let mut spec = f.host_spec(&["sh", "-c", &script]);
    spec.mounts.sandbox = Some(sandbox.clone());
    let (_, out) = f.run("nodev-host", spec).await;
    assert!(out.lines().any(|l| l == "sandbox-node=refused"), "{out}");
    let options: Vec<&str> = mount_options(&out, sandbox.to_str().unwrap())
        .split(',')
        .collect();
    assert!(
        options.contains(&"nodev") && options.contains(&"nosuid"),
        "the sandbox is mounted {options:?}"
    );
}
