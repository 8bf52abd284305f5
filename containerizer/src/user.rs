//! Resolving a task's user inside the container's root filesystem, where
//! names mean what the image's /etc/passwd says, not the host's (or in
//! the host's user database, for the user a task runs as on the agent),
//! and doing a piece of blocking work with that user's credentials.

use std::path::Path;

pub use tepui_launcher::User;

/// A user could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("user {user:?}: {reason}")]
pub struct UserError {
    user: String,
    reason: String,
}

/// A file of the root filesystem, its symlinks resolved inside the root
/// (an image's /etc/passwd may not lead to the host's); empty if absent.
fn read_in_root(root: &Path, path: &str) -> String {
    tepui_isolators::filesystem::resolve_in_root(root, Path::new(path))
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// Resolves `name`, `uid` or `uid:gid` against `root`/etc/passwd and
/// `root`/etc/group (numeric ids need no entry).
pub fn resolve(root: &Path, spec: &str) -> Result<User, UserError> {
    let fail = |reason: String| UserError {
        user: spec.to_owned(),
        reason,
    };
    let passwd = read_in_root(root, "etc/passwd");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == user_part || f[2] == user_part));
    let uid: u32 = match (&entry, user_part.parse()) {
        (_, Ok(uid)) => uid,
        (Some(f), Err(_)) => f[2]
            .parse()
            .map_err(|_| fail("bad uid in /etc/passwd".into()))?,
        (None, Err(_)) => {
            return Err(fail(format!(
                "no such user in {}",
                root.join("etc/passwd").display()
            )));
        }
    };
    let gid: u32 = match group_part {
        Some(g) => g
            .parse()
            .map_err(|_| fail(format!("group {g:?} is not numeric")))?,
        None => entry
            .as_ref()
            .and_then(|f| f[3].parse().ok())
            .unwrap_or(uid),
    };
    let name = entry.as_ref().map(|f| f[0]).unwrap_or(user_part);
    let group = read_in_root(root, "etc/group");
    let mut groups: Vec<u32> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    Ok(User { uid, gid, groups })
}

/// Resolves `name` in the agent host's user database (/etc/passwd and
/// /etc/group): the user a task and its executor run as (`--switch_user`).
pub fn host(name: &str) -> Result<User, UserError> {
    resolve(Path::new("/"), name)
}

/// Runs `work` on a thread of its own whose credentials are `user`'s
/// (its uid, primary gid and supplementary groups), so that what it opens
/// and creates is what that user may; none runs it with the caller's.
/// Blocking. The raw system calls change the calling thread's credentials
/// alone (the C library's wrappers would change every thread's), and the
/// thread ends with the work, so no other work ever runs with them.
pub fn on_thread_as<T: Send + 'static>(
    user: Option<&User>,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let user = user.cloned();
    let thread = std::thread::Builder::new().name("as-user".into()).spawn(
        move || -> std::io::Result<T> {
            if let Some(user) = user {
                become_on_this_thread(&user)?;
            }
            Ok(work())
        },
    )?;
    thread
        .join()
        .map_err(|_| std::io::Error::other("the work as the user panicked"))?
}

/// setgroups, setresgid, setresuid for the calling thread only.
fn become_on_this_thread(user: &User) -> std::io::Result<()> {
    let check = |ret: libc::c_long| {
        if ret < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: raw setgroups(2) with a live slice and its length.
    check(unsafe { libc::syscall(libc::SYS_setgroups, user.groups.len(), user.groups.as_ptr()) })?;
    // SAFETY: raw setresgid(2), no memory involved.
    check(unsafe { libc::syscall(libc::SYS_setresgid, user.gid, user.gid, user.gid) })?;
    // SAFETY: raw setresuid(2), no memory involved.
    check(unsafe { libc::syscall(libc::SYS_setresuid, user.uid, user.uid, user.uid) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_as_a_user_has_its_credentials_and_leaves_the_caller_its_own() {
        // SAFETY: getuid cannot fail.
        if unsafe { libc::getuid() } != 0 {
            return;
        }
        let nobody = User {
            uid: 65534,
            gid: 65534,
            groups: vec![],
        };
        // SAFETY: as above.
        let seen = on_thread_as(Some(&nobody), || unsafe {
            (libc::geteuid(), libc::getegid())
        })
        .unwrap();
        assert_eq!(seen, (65534, 65534));
        let denied = on_thread_as(Some(&nobody), || std::fs::read("/etc/shadow")).unwrap();
        assert!(denied.is_err(), "nobody read /etc/shadow");
        // SAFETY: as above.
        assert_eq!(unsafe { libc::geteuid() }, 0, "the caller is still root");
    }

    #[test]
    fn a_passwd_symlink_is_resolved_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("passwd"), "evil:x:4242:4242::/:/bin/sh\n").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.join("passwd"), root.join("etc/passwd")).unwrap();
        assert!(
            resolve(&root, "evil").is_err(),
            "the host-side file was read"
        );
    }

    #[test]
    fn resolves_names_and_ids_in_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("etc/group"),
            "www:x:33:\nlogs:x:4:web,root\n",
        )
        .unwrap();
        assert_eq!(
            resolve(root.path(), "web").unwrap(),
            User {
                uid: 33,
                gid: 33,
                groups: vec![4]
            }
        );
        assert_eq!(
            resolve(root.path(), "1000:1000").unwrap(),
            User {
                uid: 1000,
                gid: 1000,
                groups: vec![]
            }
        );
        assert_eq!(resolve(root.path(), "33").unwrap().groups, vec![4]);
        let e = resolve(root.path(), "nobody").unwrap_err().to_string();
        assert!(e.starts_with("user \"nobody\": no such user in "), "{e}");
    }
}
