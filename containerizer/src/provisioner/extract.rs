//! Unpacking one image layer (a tar, plain, gzip, zstd, bzip2 or xz) into its own
//! directory, safely against a hostile layer: no entry may write outside
//! the directory by `..`, an absolute path, a symlink or a hardlink; device
//! nodes and setuid bits pass only when allowed; the bytes written are
//! capped against decompression bombs. OCI whiteouts become the overlayfs
//! kind. Owners, modes (setuid, setgid and sticky bits included when
//! allowed), times and xattrs are restored as the entry says, every one
//! through an fd or relative to the parent's fd: data, then owner (which
//! clears setuid and file capabilities), then mode, then xattrs, then
//! times; a directory's times once the whole layer is written, deepest
//! first, since writing into a directory changes its mtime. GNU sparse
//! files keep their holes. Every refusal names the layer and the entry.

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tepui_isolators::beneath::Beneath;

use super::metadata::{self, Meta};

/// Limits and permissions of an extraction.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Most bytes of file data one layer may write.
    pub max_bytes: u64,
    /// Most entries one layer may hold.
    pub max_entries: u64,
    /// Create device nodes and fifos (else they are skipped).
    pub allow_devices: bool,
    /// Keep setuid and setgid bits (else they are cleared).
    pub allow_setuid: bool,
    /// Turn OCI whiteouts into overlayfs ones (image layers); else a
    /// `.wh.` name is an ordinary file (fetched archives).
    pub whiteouts: bool,
    /// Give entries the owners the archive names (image layers); else
    /// they belong to the extracting process.
    pub keep_owners: bool,
    /// Restore PAX `SCHILY.xattr.*` records (image layers); else they
    /// are dropped, as `tar` without `--xattrs` does.
    pub xattrs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_bytes: 16 << 30,
            max_entries: 4_000_000,
            allow_devices: false,
            allow_setuid: false,
            whiteouts: true,
            keep_owners: true,
            xattrs: true,
        }
    }
}

impl Options {
    /// For archives that are not image layers (a fetched URI, an
    /// oci-archive): no whiteouts, no owners, no devices, no setuid.
    pub fn plain_archive(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            whiteouts: false,
            keep_owners: false,
            xattrs: false,
            allow_devices: false,
            allow_setuid: false,
            ..Self::default()
        }
    }

    /// For image layers as the provisioner unpacks them: as Docker and
    /// the OCI layer spec do, setuid and setgid bits are kept, and device
    /// nodes and fifos are made when running as root (the store's layer
    /// directories are private to root, see `Store::open`).
    pub fn image_layer() -> Self {
        Self {
            allow_setuid: true,
            // SAFETY: geteuid has no preconditions.
            allow_devices: unsafe { libc::geteuid() } == 0,
            ..Self::default()
        }
    }
}

/// What an extraction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries applied.
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Device nodes and fifos skipped.
    pub skipped_devices: u64,
    /// Whiteouts and opaque markers turned into overlayfs form.
    pub whiteouts: u64,
}

/// Why a layer was refused.
#[derive(Debug)]
pub enum Refusal {
    /// An absolute path.
    Absolute,
    /// A `..` component.
    ParentDir,
    /// The path resolves through a symlink out of the layer.
    Escapes,
    /// More file data than allowed.
    TooLarge(u64),
    /// More entries than allowed.
    TooManyEntries(u64),
    /// A whiteout naming no single entry.
    BadWhiteout,
    /// An entry type tepui does not unpack.
    Unsupported(char),
    /// The archive or its compression is corrupt.
    Corrupt(String),
    /// An extended attribute that cannot or may not be set.
    Xattr {
        /// The attribute's name.
        name: String,
        /// Why it was refused.
        why: String,
    },
    /// A file in a PAX sparse format tepui does not read (GNU 0.0).
    Sparse,
    /// A filesystem operation failed.
    Io(io::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Absolute => f.write_str("refused: an absolute path"),
            Refusal::ParentDir => f.write_str("refused: a '..' component leaves the layer"),
            Refusal::Escapes => {
                f.write_str("refused: the path leads out of the layer through a symlink")
            }
            Refusal::TooLarge(max) => write!(f, "refused: the layer writes more than {max} bytes"),
            Refusal::TooManyEntries(max) => {
                write!(f, "refused: the layer holds more than {max} entries")
            }
            Refusal::BadWhiteout => f.write_str("refused: a whiteout that names no entry"),
            Refusal::Unsupported(kind) => write!(f, "refused: unsupported entry type {kind:?}"),
            Refusal::Corrupt(why) => write!(f, "corrupt archive: {why}"),
            Refusal::Xattr { name, why } => write!(f, "refused: xattr {name}: {why}"),
            Refusal::Sparse => f.write_str(
                "refused: a sparse file in a PAX sparse format other than GNU 0.1 or 1.0",
            ),
            Refusal::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub struct ExtractError {
    /// The layer's digest.
    pub layer: String,
    /// The entry, when one is to blame.
    pub entry: Option<String>,
    /// What was wrong.
    pub refusal: Refusal,
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer {}: ", self.layer)?;
        if let Some(entry) = &self.entry {
            write!(f, "entry {entry}: ")?;
        }
        write!(f, "{}", self.refusal)
    }
}

/// The most memory an xz stream may ask for (its dictionary), so that a
/// hostile header cannot make the decoder allocate gigabytes.
const XZ_MEMORY_KIB: u32 = 256 * 1024;

/// The decompressed tar stream of a layer, by its magic bytes.
fn decompress<'a>(input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let magic = reader.fill_buf()?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else if magic.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(reader))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(lzma_rust2::XzReader::new_mem_limit(
            reader,
            true,
            XZ_MEMORY_KIB,
        ))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(reader)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        )
    } else {
        Box::new(reader)
    })
}

/// The components of an entry's path, refusing absolute paths and `..`.
fn components(raw: &[u8]) -> Result<Vec<OsString>, Refusal> {
    if raw.starts_with(b"/") {
        return Err(Refusal::Absolute);
    }
    let mut parts = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(Refusal::ParentDir),
            name => parts.push(OsStr::from_bytes(name).to_owned()),
        }
    }
    Ok(parts)
}

fn cstr(name: &OsStr) -> Result<CString, Refusal> {
    CString::new(name.as_bytes()).map_err(|_| Refusal::Corrupt("NUL byte in a name".into()))
}

/// -1 from a system call as the current errno.
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn resolve_error(e: io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::EXDEV) | Some(libc::ELOOP) => Refusal::Escapes,
        _ => Refusal::Io(e),
    }
}

/// Removes whatever is at `name` so an entry can take its place.
fn clear(dir: RawFd, name: &CString) {
    // SAFETY: unlinkat relative to a directory fd; failure means nothing
    // was there, or a non-empty directory the next call reports.
    unsafe {
        if libc::unlinkat(dir, name.as_ptr(), 0) < 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::EISDIR)
        {
            libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR);
        }
    }
}

/// Unpacks the layer `input` (digest `layer`) into the directory `dest`.
pub fn extract(
    layer: &str,
    input: impl Read,
    dest: &Path,
    options: &Options,
) -> Result<Summary, ExtractError> {
    let fail = |entry: Option<&[u8]>, refusal: Refusal| ExtractError {
        layer: layer.to_owned(),
        entry: entry.map(|e| String::from_utf8_lossy(e).into_owned()),
        refusal,
    };
    std::fs::create_dir_all(dest).map_err(|e| fail(None, Refusal::Io(e)))?;
    let root = Beneath::open(dest).map_err(|e| fail(None, Refusal::Io(e)))?;
    extract_beneath(layer, input, &root, options)
}

/// Unpacks the archive `input` (named `layer`) beneath the open `root`.
pub(crate) fn extract_beneath(
    layer: &str,
    input: impl Read,
    root: &Beneath,
    options: &Options,
) -> Result<Summary, ExtractError> {
    let fail = |entry: Option<&[u8]>, refusal: Refusal| ExtractError {
        layer: layer.to_owned(),
        entry: entry.map(|e| String::from_utf8_lossy(e).into_owned()),
        refusal,
    };
    let stream = decompress(input).map_err(|e| fail(None, Refusal::Corrupt(e.to_string())))?;
    let mut archive = tar::Archive::new(stream);
    let mut summary = Summary::default();
    let entries = archive
        .entries()
        .map_err(|e| fail(None, Refusal::Corrupt(e.to_string())))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(None, Refusal::Corrupt(e.to_string())))?;
        let header_path = entry.path_bytes().into_owned();
        let meta =
            metadata::read(&mut entry, options.xattrs).map_err(|r| fail(Some(&header_path), r))?;
        let path = match &meta.sparse {
            Some(sparse) => sparse.name.clone(),
            None => header_path,
        };
        summary.entries += 1;
        if summary.entries > options.max_entries {
            return Err(fail(
                Some(&path),
                Refusal::TooManyEntries(options.max_entries),
            ));
        }
        apply(
            root,
            &mut entry,
            &path,
            meta,
            options,
            &mut summary,
            &mut dirs,
        )
        .map_err(|r| fail(Some(&path), r))?;
    }
    set_dir_times(root, dirs).map_err(|(path, r)| fail(Some(&path), r))?;
    Ok(summary)
}

/// A directory whose times wait for the end of its layer.
struct DirTimes {
    path: Vec<u8>,
    parts: Vec<OsString>,
    meta: Meta,
}

/// Sets the directories' times, deepest first, the last entry of a path
/// winning.
fn set_dir_times(root: &Beneath, mut dirs: Vec<DirTimes>) -> Result<(), (Vec<u8>, Refusal)> {
    // Stable: among entries of one depth, later ones come later, and a
    // later entry for the same path is applied after (so wins).
    dirs.sort_by_key(|d| std::cmp::Reverse(d.parts.len()));
    for dir in dirs {
        let fd = root
            .dir(&dir.parts, false)
            .map_err(|e| (dir.path.clone(), resolve_error(e)))?;
        metadata::set_times(fd.as_raw_fd(), &dir.meta).map_err(|r| (dir.path.clone(), r))?;
    }
    Ok(())
}

fn apply(
    root: &Beneath,
    entry: &mut tar::Entry<'_, Box<dyn Read + '_>>,
    path: &[u8],
    meta: Meta,
    options: &Options,
    summary: &mut Summary,
    dirs: &mut Vec<DirTimes>,
) -> Result<(), Refusal> {
    let kind = entry.header().entry_type();
    if kind.is_pax_global_extensions() {
        return Ok(());
    }
    let mut parts = components(path)?;
    let Some(name) = parts.pop() else {
        return Ok(()); // the layer's root itself
    };
    let parent = root.dir(&parts, true).map_err(resolve_error)?;
    let dir = parent.as_raw_fd();

    // OCI whiteouts, as overlayfs expresses them.
    if let Some(hidden) = name
        .as_bytes()
        .strip_prefix(b".wh.")
        .filter(|_| options.whiteouts)
    {
        summary.whiteouts += 1;
        if hidden == b".wh..opq" {
            return set_opaque(dir).map_err(Refusal::Io);
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(Refusal::BadWhiteout);
        }
        let target = cstr(OsStr::from_bytes(hidden))?;
        clear(dir, &target);
        // SAFETY: mknodat of a 0:0 character device relative to our fd.
        return check(unsafe {
            libc::mknodat(dir, target.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0))
        })
        .map_err(Refusal::Io);
    }

    let header = entry.header();
    let mut mode = header.mode().map_err(|e| Refusal::Corrupt(e.to_string()))? & 0o7777;
    if !options.allow_setuid {
        mode &= !0o6000;
    }
    let owner = options.keep_owners.then(|| {
        (
            header.uid().unwrap_or(0) as libc::uid_t,
            header.gid().unwrap_or(0) as libc::gid_t,
        )
    });
    let c_name = cstr(&name)?;

    use tar::EntryType as T;
    match kind {
        T::Regular | T::Continuous | T::GNUSparse => {
            let file = open_file(dir, &c_name).map_err(Refusal::Io)?;
            let mut file = std::fs::File::from(file);
            if let Some(sparse) = &meta.sparse {
                copy_pax_sparse(
                    entry,
                    &mut file,
                    sparse,
                    options.max_bytes,
                    &mut summary.bytes,
                )?;
            } else if kind == T::GNUSparse {
                copy_sparse(entry, &mut file, options.max_bytes, &mut summary.bytes)?;
            } else {
                copy_capped(entry, &mut file, options.max_bytes, &mut summary.bytes)?;
            }
            set_owner_and_mode(file.as_raw_fd(), owner, mode)?;
            metadata::set_xattrs(file.as_raw_fd(), &meta)?;
            metadata::set_times(file.as_raw_fd(), &meta)?;
        }
        T::Directory => {
            let opaque = make_entry_dir(dir, &c_name)?;
            parts.push(name);
            let made = root.dir(&parts, false).map_err(resolve_error)?;
            set_owner_and_mode(made.as_raw_fd(), owner, mode)?;
            metadata::set_xattrs(made.as_raw_fd(), &meta)?;
            if opaque {
                // The directory replaces a whiteout of this same layer:
                // it hides what lower layers had at its path.
                set_opaque(made.as_raw_fd()).map_err(Refusal::Io)?;
            }
            dirs.push(DirTimes {
                path: path.to_vec(),
                parts,
                meta,
            });
        }
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| Refusal::Corrupt("a symlink without a target".into()))?;
            let target = CString::new(target.as_ref())
                .map_err(|_| Refusal::Corrupt("NUL byte in a link".into()))?;
            clear(dir, &c_name);
            // SAFETY: symlinkat relative to our fd.
            check(unsafe { libc::symlinkat(target.as_ptr(), dir, c_name.as_ptr()) })
                .map_err(Refusal::Io)?;
            if let Some((uid, gid)) = owner {
                // SAFETY: fchownat (not following) relative to our fd.
                check(unsafe {
                    libc::fchownat(dir, c_name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                })
                .map_err(Refusal::Io)?;
            }
            metadata::set_xattrs_no_follow(dir, &c_name, &meta)?;
            metadata::set_times_no_follow(dir, &c_name, &meta)?;
        }
        T::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| Refusal::Corrupt("a hardlink without a target".into()))?;
            let mut target = components(&target)?;
            let target_name = cstr(&target.pop().ok_or(Refusal::ParentDir)?)?;
            let target_dir = root.dir(&target, false).map_err(resolve_error)?;
            clear(dir, &c_name);
            // SAFETY: linkat between two directory fds beneath the root,
            // without following a final symlink.
            check(unsafe {
                libc::linkat(
                    target_dir.as_raw_fd(),
                    target_name.as_ptr(),
                    dir,
                    c_name.as_ptr(),
                    0,
                )
            })
            .map_err(Refusal::Io)?;
        }
        T::Char | T::Block | T::Fifo => {
            if !options.allow_devices {
                summary.skipped_devices += 1;
                return Ok(());
            }
            let file_type = match kind {
                T::Char => libc::S_IFCHR,
                T::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            clear(dir, &c_name);
            // SAFETY: mknodat relative to our fd.
            check(unsafe {
                libc::mknodat(
                    dir,
                    c_name.as_ptr(),
                    file_type | mode,
                    libc::makedev(major, minor),
                )
            })
            .map_err(Refusal::Io)?;
            if let Some((uid, gid)) = owner {
                // SAFETY: fchownat (not following) relative to our fd.
                check(unsafe {
                    libc::fchownat(dir, c_name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                })
                .map_err(Refusal::Io)?;
            }
            // The umask narrowed mknodat's mode; the node was just made
            // here, in a directory only this extraction writes.
            // SAFETY: fchmodat relative to our fd.
            check(unsafe { libc::fchmodat(dir, c_name.as_ptr(), mode, 0) }).map_err(Refusal::Io)?;
            metadata::set_xattrs_no_follow(dir, &c_name, &meta)?;
            metadata::set_times_no_follow(dir, &c_name, &meta)?;
        }
        other => return Err(Refusal::Unsupported(other.as_byte() as char)),
    }
    Ok(())
}

/// Makes the directory `name` in `dir`, replacing what else is there;
/// true when that was a whiteout (the 0:0 character device).
fn make_entry_dir(dir: RawFd, name: &CString) -> Result<bool, Refusal> {
    // SAFETY: mkdirat relative to our parent fd.
    if unsafe { libc::mkdirat(dir, name.as_ptr(), 0o755) } == 0 {
        return Ok(false);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EEXIST) {
        return Err(Refusal::Io(e));
    }
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat (not following) relative to our fd into a live struct.
    check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })
        .map_err(Refusal::Io)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Ok(false);
    }
    let whiteout = st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0;
    clear(dir, name);
    // SAFETY: mkdirat relative to our parent fd.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), 0o755) }).map_err(Refusal::Io)?;
    Ok(whiteout)
}

/// Marks the directory `fd` opaque, as overlayfs reads it.
fn set_opaque(fd: RawFd) -> io::Result<()> {
    // SAFETY: fsetxattr on a directory fd we own, with a 1-byte value.
    check(unsafe {
        libc::fsetxattr(
            fd,
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    })
}

/// Gives an entry's fd its owner (when kept) and its mode.
fn set_owner_and_mode(
    fd: RawFd,
    owner: Option<(libc::uid_t, libc::gid_t)>,
    mode: u32,
) -> Result<(), Refusal> {
    if let Some((uid, gid)) = owner {
        // SAFETY: fchown on an fd the caller owns.
        check(unsafe { libc::fchown(fd, uid, gid) }).map_err(Refusal::Io)?;
    }
    // SAFETY: fchmod on an fd the caller owns.
    check(unsafe { libc::fchmod(fd, mode) }).map_err(Refusal::Io)
}

/// Writes the regular file at `path` (an archive's entry name) beneath
/// `root` with the data of `from`, as safely as a tar entry: for
/// extractors of other archive formats.
pub(crate) fn write_file(
    root: &Beneath,
    path: &[u8],
    from: &mut impl Read,
    mode: u32,
    options: &Options,
    summary: &mut Summary,
) -> Result<(), Refusal> {
    let mut parts = components(path)?;
    let Some(name) = parts.pop() else {
        return Err(Refusal::Corrupt("a file entry without a name".into()));
    };
    let parent = root.dir(&parts, true).map_err(resolve_error)?;
    let file = open_file(parent.as_raw_fd(), &cstr(&name)?).map_err(Refusal::Io)?;
    let mut file = std::fs::File::from(file);
    copy_capped(from, &mut file, options.max_bytes, &mut summary.bytes)?;
    let mode = if options.allow_setuid {
        mode
    } else {
        mode & !0o6000
    };
    set_owner_and_mode(file.as_raw_fd(), None, mode & 0o7777)
}

/// Makes the directory at `path` (an archive's entry name) beneath `root`.
pub(crate) fn make_dir(root: &Beneath, path: &[u8]) -> Result<(), Refusal> {
    let parts = components(path)?;
    root.dir(&parts, true).map(drop).map_err(resolve_error)
}

/// Creates (or replaces) a regular file, never through a symlink.
fn open_file(dir: RawFd, name: &CString) -> io::Result<OwnedFd> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut tried_clear = false;
    loop {
        // SAFETY: openat relative to a directory fd; the new fd is ours.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), flags, 0o600) };
        if fd >= 0 {
            // SAFETY: fd was just opened and nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if tried_clear || e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
        clear(dir, name);
        tried_clear = true;
    }
}

/// Copies a sparse entry's data like `copy_capped`, leaving its holes
/// (the runs of zeros the tar reader yields for them) unwritten.
fn copy_sparse(
    from: &mut impl Read,
    to: &mut std::fs::File,
    max: u64,
    written: &mut u64,
) -> Result<(), Refusal> {
    use std::io::{Seek, SeekFrom};
    let mut buf = vec![0u8; 128 * 1024];
    let mut size = 0u64;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| Refusal::Corrupt(e.to_string()))?;
        if n == 0 {
            return to.set_len(size).map_err(Refusal::Io);
        }
        *written += n as u64;
        size += n as u64;
        if *written > max {
            return Err(Refusal::TooLarge(max));
        }
        if buf[..n].iter().all(|b| *b == 0) {
            to.seek(SeekFrom::Current(n as i64)).map_err(Refusal::Io)?;
        } else {
            to.write_all(&buf[..n]).map_err(Refusal::Io)?;
        }
    }
}

/// The sparse map at the head of a PAX 1.0 sparse entry's data: decimal
/// numbers, one a line (the count, then offset and length pairs), padded
/// to a 512-byte block.
fn read_sparse_map(from: &mut impl Read) -> Result<Vec<(u64, u64)>, Refusal> {
    let corrupt = |why: &str| Refusal::Corrupt(format!("sparse map: {why}"));
    let mut consumed = 0usize;
    let mut next = || -> Result<u64, Refusal> {
        let mut digits = Vec::new();
        loop {
            let mut byte = [0u8];
            from.read_exact(&mut byte)
                .map_err(|_| corrupt("ends early"))?;
            consumed += 1;
            match byte[0] {
                b'\n' => break,
                b @ b'0'..=b'9' if digits.len() < 20 => digits.push(b),
                _ => return Err(corrupt("not a decimal number")),
            }
        }
        std::str::from_utf8(&digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| corrupt("not a decimal number"))
    };
    let count = next()?;
    if count > 1 << 20 {
        return Err(corrupt("too many runs"));
    }
    let mut numbers = Vec::with_capacity(count as usize * 2);
    for _ in 0..count * 2 {
        numbers.push(next()?);
    }
    let pad = consumed.div_ceil(512) * 512 - consumed;
    io::copy(&mut from.take(pad as u64), &mut io::sink()).map_err(|e| corrupt(&e.to_string()))?;
    metadata::pairs(&numbers)
}

/// Writes a PAX sparse entry's data runs at their offsets, leaving holes
/// between them, and gives the file its full size.
fn copy_pax_sparse(
    from: &mut impl Read,
    to: &mut std::fs::File,
    sparse: &metadata::Sparse,
    max: u64,
    written: &mut u64,
) -> Result<(), Refusal> {
    use std::io::{Seek, SeekFrom};
    let map = match &sparse.map {
        Some(map) => map.clone(),
        None => read_sparse_map(from)?,
    };
    let mut end = 0u64;
    for (offset, length) in map {
        let stop = offset
            .checked_add(length)
            .filter(|stop| offset >= end && *stop <= sparse.size)
            .ok_or_else(|| Refusal::Corrupt("sparse runs out of order or past the size".into()))?;
        to.seek(SeekFrom::Start(offset)).map_err(Refusal::Io)?;
        let mut run = from.take(length);
        let before = *written;
        copy_capped(&mut run, to, max, written)?;
        if *written - before != length {
            return Err(Refusal::Corrupt("a sparse run ends early".into()));
        }
        end = stop;
    }
    to.set_len(sparse.size).map_err(Refusal::Io)
}

/// Copies an entry's data, counting it against the layer's byte budget.
fn copy_capped(
    from: &mut impl Read,
    to: &mut impl Write,
    max: u64,
    written: &mut u64,
) -> Result<(), Refusal> {
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| Refusal::Corrupt(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        *written += n as u64;
        if *written > max {
            return Err(Refusal::TooLarge(max));
        }
        to.write_all(&buf[..n]).map_err(Refusal::Io)?;
    }
}
