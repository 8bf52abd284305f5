//! Unpacking fetched archives into the sandbox, by their names as Mesos
//! recognizes them, through the same path-safe writes as image layers
//! (no entry may leave the sandbox; no devices, no setuid, no owners).
//! The archive is read from the open file it was fetched from, never
//! reopened by its name in the sandbox, where a link may have replaced it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::provisioner::extract::{self, Options, Refusal, Summary};
use tepui_isolators::beneath::Beneath;

const TARS: &[&str] = &[
    ".tar", ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".tar.zst", ".tzst",
];

/// Whether a fetched file's name says it is an archive to unpack.
pub(super) fn is_archive(name: &Path) -> bool {
    let name = name.to_string_lossy();
    TARS.iter().any(|s| name.ends_with(s)) || name.ends_with(".zip") || name.ends_with(".gz")
}

/// Why an archive was not unpacked: over the byte budget, or another reason.
pub(super) enum Failed {
    /// It would write more than the budget.
    TooLarge,
    /// Anything else, as a message.
    Other(String),
}

fn refused(name: &str, refusal: Refusal) -> Failed {
    match refusal {
        Refusal::TooLarge(_) => Failed::TooLarge,
        other => Failed::Other(format!("{name}: {other}")),
    }
}

/// Unpacks `archive` (fetched as `name`) beneath `root`, writing at most
/// `options.max_bytes`; returns the bytes written. Blocking.
pub(super) fn extract(
    archive: File,
    name: &Path,
    root: &Beneath,
    options: &Options,
) -> Result<u64, Failed> {
    let shown = name.to_string_lossy().into_owned();
    if TARS.iter().any(|s| shown.ends_with(s)) {
        return extract::extract_beneath(&shown, archive, root, options)
            .map(|summary| summary.bytes)
            .map_err(|e| match e.refusal {
                Refusal::TooLarge(_) => Failed::TooLarge,
                _ => Failed::Other(e.to_string()),
            });
    }
    let mut summary = Summary::default();
    if shown.ends_with(".zip") {
        unzip(archive, root, options, &mut summary)?;
    } else if let Some(stem) = name
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".gz"))
    {
        // A lone gzip file becomes the file it compresses, as gunzip does,
        // beside it.
        let mut path = name
            .parent()
            .unwrap_or(Path::new(""))
            .as_os_str()
            .to_owned();
        if !path.is_empty() {
            path.push("/");
        }
        path.push(stem);
        let mut data = flate2::read::GzDecoder::new(BufReader::new(archive));
        extract::write_file(
            root,
            std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()),
            &mut data,
            0o644,
            options,
            &mut summary,
        )
        .map_err(|r| refused(&shown, r))?;
    }
    Ok(summary.bytes)
}

/// Unpacks a zip archive; symlinks in it are refused.
fn unzip(
    file: File,
    root: &Beneath,
    options: &Options,
    summary: &mut Summary,
) -> Result<(), Failed> {
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| Failed::Other(format!("zip: {e}")))?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| Failed::Other(format!("zip: {e}")))?;
        let name = entry.name_raw().to_vec();
        let shown = String::from_utf8_lossy(&name).into_owned();
        let entry_error = |refusal: Refusal| match refusal {
            Refusal::TooLarge(_) => Failed::TooLarge,
            other => Failed::Other(format!("entry {shown}: {other}")),
        };
        if entry.is_symlink() {
            return Err(Failed::Other(format!("entry {shown}: refused: a symlink")));
        }
        if entry.is_dir() {
            extract::make_dir(root, &name).map_err(entry_error)?;
            continue;
        }
        let mode = entry.unix_mode().unwrap_or(0o644) & 0o7777;
        extract::write_file(root, &name, &mut entry, mode, options, summary)
            .map_err(entry_error)?;
    }
    Ok(())
}
