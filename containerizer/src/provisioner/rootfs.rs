//! A container's root filesystem from an image's layers: an overlayfs
//! mount with the layers as lowerdirs and the container's own upper and
//! work dirs (in its sandbox, so its writes count against its disk), or
//! where overlayfs is unavailable, a copy of the layers with their
//! whiteouts applied. Either is held by a lease in the store until
//! released, so garbage collection leaves its layers alone.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::error::ProvisionError;
pub use super::error::RootfsError;
use super::image::Image;
use super::store::{Lease, Store, now, remove_tree};

/// How root filesystems are assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// overlayfs when the kernel allows it, else a copy (logged).
    Auto,
    /// overlayfs only.
    Overlay,
    /// Copies of the layers.
    Copy,
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "overlay" => Ok(Self::Overlay),
            "copy" => Ok(Self::Copy),
            "aufs" | "bind" => Err(format!(
                "the {s} backend (a Mesos one) is not supported: use overlay or copy"
            )),
            other => Err(format!(
                "unknown rootfs backend {other:?} (auto, overlay or copy)"
            )),
        }
    }
}

/// The most bytes of mount options one mount(2) call takes.
const MAX_MOUNT_DATA: usize = 4095;

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a path"))
}

/// overlayfs options for `lowers` (top first), or why they cannot be given.
fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<String, String> {
    let mut all = lowers.to_vec();
    all.extend([upper.to_owned(), work.to_owned()]);
    if let Some(bad) = all.iter().find(|p| {
        p.as_os_str()
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b',' | b':' | b'\\'))
    }) {
        return Err(format!(
            "{} holds a character overlayfs options cannot carry",
            bad.display()
        ));
    }
    let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if options.len() > MAX_MOUNT_DATA {
        return Err(format!(
            "{} layers need {} bytes of overlayfs options, more than the kernel takes ({MAX_MOUNT_DATA}); use the copy backend",
            lowers.len(),
            options.len()
        ));
    }
    Ok(options)
}

fn mount_overlay(lowers: &[PathBuf], scratch: &Path, target: &Path) -> Result<(), String> {
    let upper = scratch.join("upper");
    let work = scratch.join("work");
    for dir in [&upper, &work, &target.to_path_buf()] {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let options = overlay_options(lowers, &upper, &work)?;
    let data = CString::new(options).map_err(|e| e.to_string())?;
    let target_c = cstring(target).map_err(|e| e.to_string())?;
    // SAFETY: mount(2) with C strings that outlive the call.
    let ret = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target_c.as_ptr(),
            c"overlay".as_ptr(),
            libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if ret < 0 {
        return Err(format!(
            "mount overlay on {}: {}",
            target.display(),
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn unmount(target: &Path) -> io::Result<()> {
    let target_c = cstring(target)?;
    // SAFETY: umount2(2) of a C string path.
    let ret = unsafe { libc::umount2(target_c.as_ptr(), libc::MNT_DETACH) };
    if ret < 0 {
        let e = io::Error::last_os_error();
        // Not mounted (already released) or gone.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(e);
        }
    }
    Ok(())
}

/// Assembles `image`'s root filesystem for `container` at `target`,
/// with its writable layer under `scratch`; returns the backend used.
pub(crate) fn provision(
    store: &Store,
    backend: Backend,
    container: &str,
    image: &Image,
    target: &Path,
    scratch: &Path,
) -> Result<Backend, ProvisionError> {
    let fail = |why: String| RootfsError {
        container: container.to_owned(),
        why,
    };
    let layers: Vec<_> = image
        .record
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    let mut lease = Lease {
        image: image.record.reference.clone(),
        layers: layers.clone(),
        rootfs: target.to_owned(),
        scratch: Some(scratch.to_owned()),
        overlay: backend != Backend::Copy,
    };
    // The lease is taken under the store lock, so a collection either
    // ran before (and the layers are checked here) or sees it.
    let missing = store.update(|images, _| {
        if let Some(r) = images
            .iter_mut()
            .find(|r| r.reference == image.record.reference)
        {
            r.last_used = now();
        }
        let missing = layers
            .iter()
            .find(|d| !store.layer_path(d).is_dir())
            .cloned();
        if missing.is_none() {
            store.write_lease(container, &lease).map(|_| None)
        } else {
            Ok(missing)
        }
    })??;
    if let Some(layer) = missing {
        return Err(fail(format!(
            "layer {layer} of {} is not in the store; pull the image again",
            image.record.reference
        ))
        .into());
    }
    let lowers: Vec<PathBuf> = layers.iter().rev().map(|d| store.layer_path(d)).collect();
    let result = match backend {
        Backend::Copy => copy_layers(&lowers, target).map(|_| Backend::Copy),
        Backend::Overlay => mount_overlay(&lowers, scratch, target).map(|_| Backend::Overlay),
        Backend::Auto => match mount_overlay(&lowers, scratch, target) {
            Ok(()) => Ok(Backend::Overlay),
            Err(why) => {
                tracing::warn!(container, error = %why, "overlayfs unavailable; copying the image's layers instead");
                lease.overlay = false;
                store.write_lease(container, &lease)?;
                let _ = remove_tree(scratch);
                copy_layers(&lowers, target).map(|_| Backend::Copy)
            }
        },
    };
    match result {
        Ok(backend) => {
            tracing::info!(container, image = %image.record.reference, ?backend, rootfs = %target.display(), "rootfs ready");
            Ok(backend)
        }
        Err(why) => {
            let _ = release(store, container);
            Err(fail(why).into())
        }
    }
}

/// Unmounts or deletes `container`'s root filesystem and its scratch
/// dirs, and drops its lease. Releasing twice is harmless.
pub(crate) fn release(store: &Store, container: &str) -> Result<(), ProvisionError> {
    let Some(lease) = store.lease(container)? else {
        return Ok(());
    };
    let fail = |why: String| RootfsError {
        container: container.to_owned(),
        why,
    };
    if lease.overlay {
        unmount(&lease.rootfs)
            .map_err(|e| fail(format!("unmount {}: {e}", lease.rootfs.display())))?;
    }
    remove_tree(&lease.rootfs)?;
    if let Some(scratch) = &lease.scratch {
        remove_tree(scratch)?;
    }
    store.update(|_, _| store.remove_lease(container))??;
    tracing::info!(container, "rootfs released");
    Ok(())
}
/// Copies `lowers` (top first) into `target`, base layer first, applying
/// each layer's whiteouts and opaque directories to what is below it.
fn copy_layers(lowers: &[PathBuf], target: &Path) -> Result<(), String> {
    fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    for layer in lowers.iter().rev() {
        copy_dir(layer, target).map_err(|e| format!("copying {}: {e}", layer.display()))?;
    }
    Ok(())
}

fn is_opaque(dir: &Path) -> bool {
    let Ok(path) = cstring(dir) else {
        return false;
    };
    let mut value = [0u8; 2];
    // SAFETY: lgetxattr into a buffer of the length given.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// Removes whatever `path` is, without following a symlink.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// Copies the layer directory `src` over `dst`. `dst` is private to the
/// provisioner while this runs, and every directory descended into is
/// checked to be a real directory first, so no symlink in it is followed.
fn copy_dir(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from)?;
        let kind = meta.file_type();
        if kind.is_char_device() && meta.rdev() == 0 {
            remove_any(&to)?;
            continue;
        }
        if kind.is_dir() {
            let existing = fs::symlink_metadata(&to);
            let keep = matches!(&existing, Ok(m) if m.is_dir()) && !is_opaque(&from);
            if !keep {
                remove_any(&to)?;
                fs::create_dir(&to)?;
            }
            copy_dir(&from, &to)?;
            lchown(&to, meta.uid(), meta.gid())?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            continue;
        }
        remove_any(&to)?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            lchown(&to, meta.uid(), meta.gid())?;
        } else if kind.is_file() {
            fs::copy(&from, &to)?;
            lchown(&to, meta.uid(), meta.gid())?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        } else {
            let path = cstring(&to)?;
            // SAFETY: mknod(2) of a C string path with the source's mode and device.
            if unsafe { libc::mknod(path.as_ptr(), meta.mode(), meta.rdev()) } < 0 {
                return Err(io::Error::last_os_error());
            }
            lchown(&to, meta.uid(), meta.gid())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_refuse_what_they_cannot_carry() {
        let lowers = vec![PathBuf::from("/s/layers/b"), PathBuf::from("/s/layers/a")];
        assert_eq!(
            overlay_options(&lowers, Path::new("/x/upper"), Path::new("/x/work")).unwrap(),
            "lowerdir=/s/layers/b:/s/layers/a,upperdir=/x/upper,workdir=/x/work"
        );
        assert!(
            overlay_options(&[PathBuf::from("/a:b")], Path::new("/u"), Path::new("/w")).is_err()
        );
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/tepui/images/layers/sha256/{i:064}")))
            .collect();
        let e = overlay_options(&many, Path::new("/u"), Path::new("/w")).unwrap_err();
        assert!(e.contains("copy backend"), "{e}");
    }

    #[test]
    fn backends_parse_by_name() {
        assert_eq!("copy".parse::<Backend>(), Ok(Backend::Copy));
        assert!("zfs".parse::<Backend>().is_err());
    }
}
