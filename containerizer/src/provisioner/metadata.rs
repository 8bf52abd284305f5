//! The metadata of a layer entry beyond its name, type, owner and mode, as
//! the OCI layer spec and Docker apply it: access and modification times
//! (from the PAX records, to the nanosecond, else the header) and
//! extended attributes (PAX `SCHILY.xattr.*`), set through file
//! descriptors only. Which xattr names pass is decided here: `user.*`,
//! `security.*` (file capabilities, SELinux labels), `trusted.*` except
//! overlayfs's own `trusted.overlay.*` (a layer writing those would steer
//! the overlay mount), and POSIX ACLs; any other name is refused. Also the
//! PAX sparse records (GNU formats 0.1 and 1.0), which name the file's
//! real path and size and where its data lies.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::extract::Refusal;

/// PAX keys of the GNU sparse formats, which the tar reader does not
/// expand itself.
const PAX_SPARSE: &[u8] = b"GNU.sparse.";
const PAX_XATTR: &[u8] = b"SCHILY.xattr.";

/// What an entry says beyond its type and name.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    /// Modification time, when the entry has one.
    pub mtime: Option<libc::timespec>,
    /// Access time (the modification time when the entry gives none).
    pub atime: Option<libc::timespec>,
    /// Extended attributes, in archive order.
    pub xattrs: Vec<(CString, Vec<u8>)>,
    /// A PAX sparse file's real name, size and map.
    pub sparse: Option<Sparse>,
}

/// A file in a PAX sparse format.
#[derive(Debug, Default)]
pub(crate) struct Sparse {
    /// The file's real path (the header's is a placeholder).
    pub name: Vec<u8>,
    /// The file's size, holes included.
    pub size: u64,
    /// (offset, length) of each data run: given in the PAX records
    /// (format 0.1), else `None` and at the head of the data (1.0).
    pub map: Option<Vec<(u64, u64)>>,
}

fn number(key: &[u8], value: &[u8]) -> Result<u64, Refusal> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            Refusal::Corrupt(format!(
                "PAX {} {:?} is not a number",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(value)
            ))
        })
}

/// A sparse map: a flat list of offset, length numbers.
pub(crate) fn pairs(numbers: &[u64]) -> Result<Vec<(u64, u64)>, Refusal> {
    if !numbers.len().is_multiple_of(2) {
        return Err(Refusal::Corrupt("a sparse map with an odd count".into()));
    }
    Ok(numbers.chunks(2).map(|p| (p[0], p[1])).collect())
}

/// A PAX time: decimal seconds, maybe negative, maybe with a fraction.
fn pax_time(value: &[u8]) -> Option<libc::timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i64 = whole.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = fraction
        .as_bytes()
        .iter()
        .take(9)
        .copied()
        .collect::<Vec<_>>();
    digits.resize(9, b'0');
    let nanos: i64 = std::str::from_utf8(&digits).ok()?.parse().ok()?;
    let (mut sec, mut nsec) = (seconds, nanos);
    if negative {
        sec = -sec;
        if nsec > 0 {
            sec -= 1;
            nsec = 1_000_000_000 - nsec;
        }
    }
    Some(libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    })
}

fn whole_seconds(seconds: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: seconds.min(i64::MAX as u64) as libc::time_t,
        tv_nsec: 0,
    }
}

/// Whether an xattr name may be written from a layer.
fn allowed(name: &[u8]) -> bool {
    if name.starts_with(b"trusted.overlay.") {
        return false;
    }
    name.starts_with(b"user.")
        || name.starts_with(b"security.")
        || name.starts_with(b"trusted.")
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
}

/// Reads the times and xattrs of `entry`; `xattrs` false drops the
/// latter (archives that are not image layers, as `tar` without
/// `--xattrs` does).
pub(crate) fn read<R: io::Read>(
    entry: &mut tar::Entry<'_, R>,
    xattrs: bool,
) -> Result<Meta, Refusal> {
    let mut meta = Meta {
        mtime: entry.header().mtime().ok().map(whole_seconds),
        ..Meta::default()
    };
    let gnu_atime = entry
        .header()
        .as_gnu()
        .and_then(|gnu| gnu.atime().ok())
        .filter(|t| *t != 0)
        .map(whole_seconds);
    meta.atime = gnu_atime;
    let extensions = entry
        .pax_extensions()
        .map_err(|e| Refusal::Corrupt(e.to_string()))?;
    let (mut major, mut minor) = (None, None);
    if let Some(extensions) = extensions {
        for extension in extensions {
            let extension = extension.map_err(|e| Refusal::Corrupt(e.to_string()))?;
            let key = extension.key_bytes();
            let value = extension.value_bytes();
            if key == b"mtime" {
                meta.mtime = Some(pax_time(value).ok_or_else(|| {
                    Refusal::Corrupt(format!(
                        "PAX mtime {:?} is not a time",
                        String::from_utf8_lossy(value)
                    ))
                })?);
            } else if key == b"atime" {
                meta.atime = pax_time(value);
            } else if let Some(field) = key.strip_prefix(PAX_SPARSE) {
                let sparse = meta.sparse.get_or_insert_with(Sparse::default);
                match field {
                    b"major" => major = Some(number(key, value)?),
                    b"minor" => minor = Some(number(key, value)?),
                    b"name" => sparse.name = value.to_vec(),
                    b"realsize" | b"size" => sparse.size = number(key, value)?,
                    b"numblocks" => {}
                    b"map" => {
                        let numbers = value
                            .split(|b| *b == b',')
                            .map(|n| number(key, n))
                            .collect::<Result<Vec<_>, _>>()?;
                        sparse.map = Some(pairs(&numbers)?);
                    }
                    // 0.0's repeated offset/numbytes records, which the
                    // PAX reader cannot keep in order.
                    _ => return Err(Refusal::Sparse),
                }
            } else if let Some(name) = key.strip_prefix(PAX_XATTR) {
                if !xattrs {
                    continue;
                }
                if !allowed(name) {
                    return Err(Refusal::Xattr {
                        name: String::from_utf8_lossy(name).into_owned(),
                        why: "this namespace is not unpacked from layers".into(),
                    });
                }
                let name = CString::new(name)
                    .map_err(|_| Refusal::Corrupt("NUL byte in an xattr name".into()))?;
                meta.xattrs.push((name, value.to_vec()));
            }
        }
    }
    if let Some(sparse) = &meta.sparse {
        let known = match (major, minor) {
            (Some(1), Some(0)) => sparse.map.is_none(),
            (None, None) | (Some(0), Some(1)) => sparse.map.is_some(),
            _ => false,
        };
        if !known || sparse.name.is_empty() {
            return Err(Refusal::Sparse);
        }
    }
    if meta.atime.is_none() {
        meta.atime = meta.mtime;
    }
    Ok(meta)
}

/// An xattr the kernel refused, as a refusal naming it.
fn xattr_refusal(name: &CString, e: io::Error) -> Refusal {
    let why = match e.raw_os_error() {
        Some(libc::ENOTSUP) => {
            format!("the filesystem under the store cannot hold it ({e})")
        }
        Some(libc::EPERM) => format!("the kernel does not allow it here ({e})"),
        _ => e.to_string(),
    };
    Refusal::Xattr {
        name: name.to_string_lossy().into_owned(),
        why,
    }
}

/// Sets the xattrs on the open file or directory `fd`.
pub(crate) fn set_xattrs(fd: RawFd, meta: &Meta) -> Result<(), Refusal> {
    for (name, value) in &meta.xattrs {
        // SAFETY: fsetxattr on an fd the caller owns, with a C string name
        // and a buffer of the length given.
        let ret =
            unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        if ret < 0 {
            return Err(xattr_refusal(name, io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Sets the xattrs on `name` in `dir` without following it: a symlink,
/// device node or fifo, none of which can be opened for this. An `O_PATH`
/// fd pins the very inode just made, and `/proc/self/fd/N` reaches it
/// without resolving any name again (procfs is checked to be procfs).
pub(crate) fn set_xattrs_no_follow(dir: RawFd, name: &CString, meta: &Meta) -> Result<(), Refusal> {
    if meta.xattrs.is_empty() {
        return Ok(());
    }
    // SAFETY: openat relative to a directory fd, O_PATH and not following.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Refusal::Io(io::Error::last_os_error()));
    }
    // SAFETY: fd was just opened and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| Refusal::Corrupt("fd path".into()))?;
    // SAFETY: statfs into a zeroed struct of the right type.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs of a C string path into a live struct.
    if unsafe { libc::statfs(c"/proc/self/fd".as_ptr(), &mut fs) } < 0
        || fs.f_type != libc::PROC_SUPER_MAGIC
    {
        return Err(Refusal::Io(io::Error::other(
            "/proc is not procfs: cannot set xattrs on a symlink or device node",
        )));
    }
    for (xname, value) in &meta.xattrs {
        // SAFETY: setxattr on the magic link of our O_PATH fd, which
        // resolves to that inode and nothing else.
        let ret = unsafe {
            libc::setxattr(
                path.as_ptr(),
                xname.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if ret < 0 {
            return Err(xattr_refusal(xname, io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn times(meta: &Meta) -> Option<[libc::timespec; 2]> {
    let mtime = meta.mtime?;
    Some([meta.atime.unwrap_or(mtime), mtime])
}

/// Sets the times of the open file or directory `fd`.
pub(crate) fn set_times(fd: RawFd, meta: &Meta) -> Result<(), Refusal> {
    let Some(times) = times(meta) else {
        return Ok(());
    };
    // SAFETY: futimens on an fd the caller owns with two timespecs.
    if unsafe { libc::futimens(fd, times.as_ptr()) } < 0 {
        return Err(Refusal::Io(io::Error::last_os_error()));
    }
    Ok(())
}

/// Sets the times of `name` in `dir`, not following a symlink.
pub(crate) fn set_times_no_follow(dir: RawFd, name: &CString, meta: &Meta) -> Result<(), Refusal> {
    let Some(times) = times(meta) else {
        return Ok(());
    };
    // SAFETY: utimensat relative to a directory fd, not following.
    let ret = unsafe {
        libc::utimensat(
            dir,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if ret < 0 {
        return Err(Refusal::Io(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_nanoseconds_and_sign() {
        let t = pax_time(b"1700000000.123456789123").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 123_456_789));
        let t = pax_time(b"1700000000").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 0));
        let t = pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        assert!(pax_time(b"12x").is_none());
        assert!(pax_time(b"1.2e3").is_none());
    }

    #[test]
    fn overlay_xattrs_and_unknown_namespaces_do_not_pass() {
        assert!(allowed(b"user.x"));
        assert!(allowed(b"security.capability"));
        assert!(allowed(b"trusted.md5"));
        assert!(!allowed(b"trusted.overlay.opaque"));
        assert!(!allowed(b"trusted.overlay.redirect"));
        assert!(!allowed(b"system.nfs4_acl"));
        assert!(!allowed(b"other.x"));
    }
}
