//! Unpacking fetched archives into the sandbox, by their names as Mesos
//! recognizes them, through the same path-safe writes as image layers
//! (no entry may leave the sandbox; no devices, no setuid, no owners).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::provisioner::extract::{self, Options, Summary};
use tepui_isolators::beneath::Beneath;

const TARS: &[&str] = &[
    ".tar", ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".tar.zst", ".tzst",
];

/// Whether a fetched file's name says it is an archive to unpack.
pub(super) fn is_archive(name: &Path) -> bool {
    let name = name.to_string_lossy();
    TARS.iter().any(|s| name.ends_with(s)) || name.ends_with(".zip") || name.ends_with(".gz")
}

/// Unpacks `archive` into `dir`, writing at most `max_bytes`. Blocking.
pub(super) fn extract(archive: &Path, dir: &Path, max_bytes: u64) -> Result<(), String> {
    let name = archive.to_string_lossy().into_owned();
    let options = Options::plain_archive(max_bytes);
    let open = || File::open(archive).map_err(|e| format!("{name}: {e}"));
    if TARS.iter().any(|s| name.ends_with(s)) {
        extract::extract(&name, open()?, dir, &options).map_err(|e| e.to_string())?;
    } else if name.ends_with(".zip") {
        unzip(open()?, dir, &options).map_err(|e| format!("{name}: {e}"))?;
    } else if let Some(stem) = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".gz"))
    {
        // A lone gzip file becomes the file it compresses, as gunzip does.
        let root = Beneath::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut data = flate2::read::GzDecoder::new(BufReader::new(open()?));
        extract::write_file(
            &root,
            stem.as_bytes(),
            &mut data,
            0o644,
            &options,
            &mut Summary::default(),
        )
        .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// Unpacks a zip archive; symlinks in it are refused.
fn unzip(file: File, dir: &Path, options: &Options) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| e.to_string())?;
    let root = Beneath::open(dir).map_err(|e| e.to_string())?;
    let mut summary = Summary::default();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let name = entry.name_raw().to_vec();
        let shown = String::from_utf8_lossy(&name).into_owned();
        let entry_error = |why: String| format!("entry {shown}: {why}");
        if entry.is_symlink() {
            return Err(entry_error("refused: a symlink".into()));
        }
        if entry.is_dir() {
            extract::make_dir(&root, &name).map_err(|e| entry_error(e.to_string()))?;
            continue;
        }
        let mode = entry.unix_mode().unwrap_or(0o644) & 0o7777;
        extract::write_file(&root, &name, &mut entry, mode, options, &mut summary)
            .map_err(|e| entry_error(e.to_string()))?;
    }
    Ok(())
}
