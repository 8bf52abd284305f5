//! The child between clone and exec. It shares the memory of a possibly
//! multi-threaded parent (or, off x86_64, runs in a copy of it), so it must
//! not allocate, take a lock, write to the parent's memory or touch
//! anything but raw system calls and the already-prepared [`Plan`]. On
//! failure it writes (step, index, errno) to the error pipe and exits.

use std::os::fd::{AsRawFd, RawFd};

use crate::plan::{BIND_REMOUNT_FLAGS, CgroupJoin, Create, FsOp, Plan};
use crate::step::Step;

/// Pointer arrays for execve, built by the parent before the clone.
pub(crate) struct ExecArgs {
    pub(crate) argv: Vec<*const libc::c_char>,
    pub(crate) envp: Vec<*const libc::c_char>,
    pub(crate) groups: Vec<libc::gid_t>,
    pub(crate) last_cap: u32,
}

/// Reports a failed step to the parent and exits; never returns.
fn fail(pipe: RawFd, step: Step, index: u32, errno: i32) -> ! {
    let mut report = [0u8; 12];
    report[..4].copy_from_slice(&step.code().to_ne_bytes());
    report[4..8].copy_from_slice(&index.to_ne_bytes());
    report[8..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: writes 12 bytes from a live stack buffer to a pipe fd; _exit
    // ends the process without running any parent-owned destructor.
    unsafe {
        libc::write(pipe, report.as_ptr().cast(), report.len());
        libc::_exit(127)
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Fails the step when a system call returned -1.
fn check(pipe: RawFd, step: Step, index: u32, ret: libc::c_int) {
    if ret == -1 {
        fail(pipe, step, index, errno());
    }
}

/// Fails the step when a raw system call returned -1.
fn syscall_check(pipe: RawFd, step: Step, ret: libc::c_long) {
    if ret == -1 {
        fail(pipe, step, 0, errno());
    }
}

fn ptr_or_null(s: &Option<std::ffi::CString>) -> *const libc::c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// Runs in the child: performs the plan and execs, or reports and exits.
///
/// # Safety
/// Must be called only in the child of a clone, with `pipe` the write end
/// of the error pipe (close-on-exec) and `args` built from `plan`.
pub(crate) unsafe fn run(plan: &Plan, args: &ExecArgs, pipe: RawFd) -> ! {
    // SAFETY: for the whole function, every call below is a raw system call on
    // pointers into `plan` and `args`, which the parent built before the
    // clone and which stay alive and unmodified in this copy of its memory.
    unsafe {
        // Signals: the parent (Rust std, tokio) may handle or ignore
        // SIGPIPE and others, and blocked every signal for the clone;
        // ignored and blocked signals survive exec. Handlers go first, so
        // that no handler of the parent's ever runs here.
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        check(
            pipe,
            Step::Signals,
            0,
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()),
        );

        if let CgroupJoin::WriteProcs(fd) = &plan.cgroup {
            let ret = libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1);
            if ret != 1 {
                fail(pipe, Step::JoinCgroup, 0, errno());
            }
            // Rooted at the cgroup just joined (the clone could not know it).
            if plan.namespaces.cgroup {
                check(
                    pipe,
                    Step::CgroupNamespace,
                    0,
                    libc::unshare(libc::CLONE_NEWCGROUP),
                );
            }
        }

        if libc::setsid() == -1 {
            fail(pipe, Step::Setsid, 0, errno());
        }

        for (i, fd) in plan.stdio.iter().enumerate() {
            check(
                pipe,
                Step::Stdio,
                i as u32,
                libc::dup2(fd.as_raw_fd(), i as libc::c_int),
            );
        }
        // Nothing inherited beyond 0-2 stays open, not even until exec: a
        // working directory or mount source of `/proc/self/fd/N` would
        // reach the host through it (CVE-2024-21626). Only the error pipe,
        // close-on-exec, is kept. The fd table is this child's own copy
        // (no CLONE_FILES), so the parent keeps its fds.
        if pipe > 3 {
            check(
                pipe,
                Step::CloseFds,
                0,
                libc::close_range(3, (pipe - 1) as libc::c_uint, 0),
            );
        }
        check(
            pipe,
            Step::CloseFds,
            1,
            libc::close_range((pipe + 1) as libc::c_uint, libc::c_uint::MAX, 0),
        );

        if plan.namespaces.mount {
            check(
                pipe,
                Step::MountPrivate,
                0,
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ),
            );
        }
        if let Some(rootfs) = &plan.rootfs {
            check(
                pipe,
                Step::BindRootfs,
                0,
                libc::mount(
                    rootfs.as_ptr(),
                    rootfs.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ),
            );
        }

        for (i, op) in plan.fs_ops.iter().enumerate() {
            fs_op(pipe, i as u32, op);
        }

        if let Some(rootfs) = &plan.rootfs {
            // pivot_root(".", ".") stacks the old root under the new one;
            // detaching it leaves no path back to the host's filesystem.
            check(pipe, Step::PivotRoot, 0, libc::chdir(rootfs.as_ptr()));
            let ret = libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr());
            check(pipe, Step::PivotRoot, 0, ret as libc::c_int);
            check(
                pipe,
                Step::DetachOldRoot,
                0,
                libc::umount2(c".".as_ptr(), libc::MNT_DETACH),
            );
            check(pipe, Step::PivotRoot, 0, libc::chdir(c"/".as_ptr()));
        }

        if let Some(hostname) = &plan.hostname {
            let len = hostname.count_bytes();
            check(
                pipe,
                Step::Hostname,
                0,
                libc::sethostname(hostname.as_ptr(), len),
            );
        }

        for (i, (resource, limit)) in plan.rlimits.iter().enumerate() {
            check(
                pipe,
                Step::Rlimit,
                i as u32,
                libc::setrlimit(*resource, limit),
            );
        }

        if let Some(caps) = plan.capabilities {
            for cap in 0..=args.last_cap {
                if caps.bounding & (1u64 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) == -1
                {
                    fail(pipe, Step::DropCapability, cap, errno());
                }
            }
        }

        // Raw system calls, not libc's wrappers: those believe the parent's
        // threads are ours and would signal every one to change ids too.
        if let Some(user) = &plan.user {
            syscall_check(
                pipe,
                Step::SetGroups,
                libc::syscall(libc::SYS_setgroups, args.groups.len(), args.groups.as_ptr()),
            );
            syscall_check(
                pipe,
                Step::SetGid,
                libc::syscall(libc::SYS_setresgid, user.gid, user.gid, user.gid),
            );
            syscall_check(
                pipe,
                Step::SetUid,
                libc::syscall(libc::SYS_setresuid, user.uid, user.uid, user.uid),
            );
        }

        // A non-root user lost its permitted and effective sets at
        // setresuid, but not its inheritable set (CVE-2022-24769's
        // pattern): every user gets the sets written, a non-root one empty.
        if let Some(caps) = plan.capabilities {
            let root = plan.user.as_ref().is_none_or(|u| u.uid == 0);
            set_capabilities(pipe, if root { caps.effective } else { 0 });
        }

        if plan.no_new_privs {
            check(
                pipe,
                Step::NoNewPrivs,
                0,
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            );
        }

        check(pipe, Step::Chdir, 0, libc::chdir(plan.cwd.as_ptr()));
        // The kernel names a directory outside this process's root
        // "(unreachable)/...": a link in the image pointing out of it ends
        // the launch rather than the container starting there.
        let mut cwd = [0u8; 256];
        let len = libc::syscall(libc::SYS_getcwd, cwd.as_mut_ptr(), cwd.len());
        if len > 0 && cwd[0] != b'/' {
            fail(pipe, Step::CwdOutsideRoot, 0, libc::ENOENT);
        }

        // The filter goes last: everything above may make calls it
        // forbids. A failure to install it ends the launch, never runs the
        // command unfiltered.
        for (i, program) in plan.seccomp.iter().enumerate() {
            let fprog = program.fprog();
            let ret = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            );
            if ret == -1 {
                fail(pipe, Step::Seccomp, i as u32, errno());
            }
        }

        // execve along the candidates, as execvp does: a missing file moves
        // on to the next; any other error is remembered, EACCES over ENOENT.
        let mut reported = (0u32, libc::ENOENT);
        for (i, program) in plan.programs.iter().enumerate() {
            libc::execve(program.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr());
            let e = errno();
            if e != libc::ENOENT && e != libc::ENOTDIR && reported.1 != libc::EACCES {
                reported = (i as u32, e);
            }
        }
        fail(pipe, Step::Exec, reported.0, reported.1)
    }
}

unsafe fn fs_op(pipe: RawFd, index: u32, op: &FsOp) {
    // SAFETY: raw system calls on C strings owned by the plan.
    unsafe {
        match op {
            FsOp::Mount {
                source,
                target,
                fstype,
                flags,
                data,
                create,
            } => {
                match create {
                    Create::Nothing => {}
                    Create::Dir => {
                        if let Err(e) = mkdir_p(target.to_bytes(), false) {
                            fail(pipe, Step::Create, index, e);
                        }
                    }
                    Create::File => {
                        if let Err(e) = mkdir_p(target.to_bytes(), true) {
                            fail(pipe, Step::Create, index, e);
                        }
                        let fd = libc::open(
                            target.as_ptr(),
                            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                            0o644,
                        );
                        if fd == -1 {
                            fail(pipe, Step::Create, index, errno());
                        }
                        libc::close(fd);
                    }
                }
                let data_ptr = data
                    .as_ref()
                    .map_or(std::ptr::null(), |d| d.as_ptr().cast::<libc::c_void>());
                check(
                    pipe,
                    Step::Mount,
                    index,
                    libc::mount(
                        ptr_or_null(source),
                        target.as_ptr(),
                        ptr_or_null(fstype),
                        *flags,
                        data_ptr,
                    ),
                );
                let bind = flags & libc::MS_BIND != 0;
                if bind && flags & libc::MS_RDONLY != 0 && flags & libc::MS_REC != 0 {
                    // Read-only all the way down: a recursive bind's
                    // submounts (the cgroup tree under /sys) would stay
                    // writable after a remount of the top alone.
                    let attr = MountAttr {
                        attr_set: mount_attrs(*flags),
                        attr_clr: 0,
                        propagation: 0,
                        userns_fd: 0,
                    };
                    let ret = libc::syscall(
                        libc::SYS_mount_setattr,
                        libc::AT_FDCWD,
                        target.as_ptr(),
                        libc::AT_RECURSIVE as libc::c_uint,
                        &attr as *const MountAttr,
                        std::mem::size_of::<MountAttr>(),
                    );
                    check(pipe, Step::Remount, index, ret as libc::c_int);
                } else if bind && flags & BIND_REMOUNT_FLAGS != 0 {
                    let remount = libc::MS_BIND
                        | libc::MS_REMOUNT
                        | (flags & (BIND_REMOUNT_FLAGS | libc::MS_REC));
                    check(
                        pipe,
                        Step::Remount,
                        index,
                        libc::mount(
                            std::ptr::null(),
                            target.as_ptr(),
                            std::ptr::null(),
                            remount,
                            std::ptr::null(),
                        ),
                    );
                }
            }
            FsOp::CharDevice {
                path,
                mode,
                major,
                minor,
            } => {
                check(
                    pipe,
                    Step::Mknod,
                    index,
                    libc::mknod(
                        path.as_ptr(),
                        libc::S_IFCHR | *mode,
                        libc::makedev(*major, *minor),
                    ),
                );
                // The node's mode, whatever the umask took from it.
                check(pipe, Step::Mknod, index, libc::chmod(path.as_ptr(), *mode));
            }
            FsOp::Symlink { target, link } => {
                check(
                    pipe,
                    Step::Symlink,
                    index,
                    libc::symlink(target.as_ptr(), link.as_ptr()),
                );
            }
        }
    }
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// The mount_setattr(2) attributes for a bind's MS_RDONLY, MS_NOSUID,
/// MS_NODEV and MS_NOEXEC (MOUNT_ATTR_RDONLY, _NOSUID, _NODEV, _NOEXEC).
fn mount_attrs(flags: libc::c_ulong) -> u64 {
    let mut attrs = 0;
    for (flag, attr) in [
        (libc::MS_RDONLY, 0x1),
        (libc::MS_NOSUID, 0x2),
        (libc::MS_NODEV, 0x4),
        (libc::MS_NOEXEC, 0x8),
    ] {
        if flags & flag != 0 {
            attrs |= attr;
        }
    }
    attrs
}

/// `mkdir -p` of `path` (of its parent only, when `parent_only`), without
/// allocating: the path is copied into a stack buffer and cut at a '/'.
/// It starts at the deepest directory and goes up only while a parent is
/// missing, so a path that exists (nearly every mount target) costs one
/// call, not one per component.
fn mkdir_p(path: &[u8], parent_only: bool) -> Result<(), i32> {
    let mut buf = [0u8; libc::PATH_MAX as usize];
    if path.len() >= buf.len() {
        return Err(libc::ENAMETOOLONG);
    }
    buf[..path.len()].copy_from_slice(path);
    let end = if parent_only {
        match path.iter().rposition(|&b| b == b'/') {
            Some(0) | None => return Ok(()),
            Some(i) => i,
        }
    } else {
        path.len()
    };
    // mkdir of the prefix `buf[..at]`: Ok when made or already there.
    let mkdir_at = |buf: &mut [u8; libc::PATH_MAX as usize], at: usize| -> Result<(), i32> {
        let saved = buf[at];
        buf[at] = 0;
        // SAFETY: buf holds a NUL-terminated prefix of the path.
        let ret = unsafe { libc::mkdir(buf.as_ptr().cast(), 0o755) };
        let error = errno();
        buf[at] = saved;
        if ret == -1 && error != libc::EEXIST {
            return Err(error);
        }
        Ok(())
    };
    // Up while the parent is missing...
    let mut made = end;
    loop {
        match mkdir_at(&mut buf, made) {
            Ok(()) => break,
            Err(libc::ENOENT) => match buf[..made].iter().rposition(|&b| b == b'/') {
                Some(0) | None => return Err(libc::ENOENT),
                Some(parent) => made = parent,
            },
            Err(error) => return Err(error),
        }
    }
    // ...then down again through the components below it.
    for i in made + 1..=end {
        if i == end || buf[i] == b'/' {
            mkdir_at(&mut buf, i)?;
        }
    }
    Ok(())
}

/// Sets the effective and permitted sets to `keep`, empties the
/// inheritable set and clears the ambient set.
unsafe fn set_capabilities(pipe: RawFd, keep: u64) {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let low = keep as u32;
    let high = (keep >> 32) as u32;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: low,
            permitted: low,
            inheritable: 0,
        },
        Data {
            effective: high,
            permitted: high,
            inheritable: 0,
        },
    ];
    // SAFETY: capset with a v3 header and two data words, both on the stack.
    unsafe {
        let ret = libc::syscall(libc::SYS_capset, &header, data.as_ptr());
        check(pipe, Step::Capabilities, 0, ret as libc::c_int);
        let ret = libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
        check(pipe, Step::Capabilities, 1, ret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_p_makes_what_is_missing_and_leaves_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let deep = format!("{root}/a/b/c");
        assert_eq!(mkdir_p(deep.as_bytes(), false), Ok(()));
        assert!(std::path::Path::new(&deep).is_dir());
        assert_eq!(mkdir_p(deep.as_bytes(), false), Ok(()));
        // Only the parent of a file to be made.
        let file = format!("{root}/x//y/file");
        assert_eq!(mkdir_p(file.as_bytes(), true), Ok(()));
        assert!(std::path::Path::new(&format!("{root}/x/y")).is_dir());
        assert!(!std::path::Path::new(&file).exists());
        // Through a file: the kernel's answer, nothing made beyond it.
        std::fs::write(format!("{root}/f"), b"").unwrap();
        assert_eq!(
            mkdir_p(format!("{root}/f/g/h").as_bytes(), false),
            Err(libc::ENOTDIR)
        );
        let long = vec![b'a'; libc::PATH_MAX as usize];
        assert_eq!(mkdir_p(&long, false), Err(libc::ENAMETOOLONG));
    }
}
