//! Resolving a task's user inside the container's root filesystem, where
//! names mean what the image's /etc/passwd says, not the host's.

use std::path::Path;

use tepui_launcher::User;

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

#[cfg(test)]
mod tests {
    use super::*;

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
