//! `/files/browse`, `/files/read` and `/files/download`: a sandbox's
//! files, by the `directory` path `/state` gives. The path must name
//! something under the work dir's `slaves/`; it is opened once, beneath
//! that directory, following no symlink at all (a task plants links in
//! its sandbox: one to the host, or to another task's sandbox, is never
//! followed), and what is served is read from that one open file, which
//! must be a regular file or a directory (never a FIFO or a device).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use hyper::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::http::{self, Body};

/// The most one `/files/read` returns.
const MAX_READ: u64 = 1 << 20;

/// A request refused: its status and why.
struct Refusal(StatusCode, String);

impl Refusal {
    fn response(self) -> Response<Body> {
        http::text(self.0, self.1)
    }
}

/// What a `path` query names, opened: the open file, what it is, and
/// the path as asked.
struct Opened {
    file: OwnedFd,
    meta: std::fs::Metadata,
    asked: PathBuf,
}

/// Opens the path asked for beneath the sandboxes' root, following no
/// link; only a regular file or a directory is served.
fn confined(work_dir: &Path, query: &HashMap<String, String>) -> Result<Opened, Refusal> {
    let Some(asked) = query.get("path").filter(|p| !p.is_empty()) else {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "expecting 'path' in the query".into(),
        ));
    };
    let not_found = || {
        Refusal(
            StatusCode::NOT_FOUND,
            format!("no file or directory {asked}"),
        )
    };
    let outside = || {
        Refusal(
            StatusCode::FORBIDDEN,
            format!("{asked} is not inside a sandbox"),
        )
    };
    let root = work_dir.join("slaves");
    let path = Path::new(asked);
    let Ok(inside) = path.strip_prefix(&root) else {
        return Err(outside());
    };
    if inside
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(outside());
    }
    let beneath = tepui_isolators::beneath::Beneath::open(&root).map_err(|_| not_found())?;
    let file = beneath
        .open_no_follow(inside)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::EXDEV) => Refusal(
                StatusCode::FORBIDDEN,
                format!("{asked} is a link or passes through one; /files follows none"),
            ),
            _ => not_found(),
        })?;
    let meta = std::fs::File::from(file.try_clone().map_err(|_| not_found())?)
        .metadata()
        .map_err(|_| not_found())?;
    let kind = meta.file_type();
    if !(kind.is_file() || kind.is_dir()) {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "neither a file nor a directory"
        };
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            format!("{asked} is {what}; /files serves files and directories"),
        ));
    }
    Ok(Opened {
        file,
        meta,
        asked: path.to_owned(),
    })
}

/// `ls -l`'s mode string, e.g. `drwxr-xr-x`.
fn mode_string(meta: &std::fs::Metadata) -> String {
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let mode = meta.permissions().mode();
    let mut out = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

fn entry(path: &Path, meta: &std::fs::Metadata) -> Value {
    json!({
        "path": path.display().to_string(),
        "nlink": meta.nlink(),
        "size": meta.len(),
        "mtime": meta.mtime(),
        "mode": mode_string(meta),
        "uid": meta.uid().to_string(),
        "gid": meta.gid().to_string(),
    })
}

/// `/files/browse?path=DIR`: the directory's entries (a file: itself).
pub fn browse(work_dir: &Path, query: &HashMap<String, String>) -> Response<Body> {
    let opened = match confined(work_dir, query) {
        Ok(opened) => opened,
        Err(refusal) => return refusal.response(),
    };
    if !opened.meta.is_dir() {
        return super::json(&Value::Array(vec![entry(&opened.asked, &opened.meta)]));
    }
    // The directory is listed through the fd opened above (our own magic
    // link), so nothing swapped in since is listed instead; each entry is
    // described without following it.
    let listed = std::fs::read_dir(format!("/proc/self/fd/{}", opened.file.as_raw_fd()));
    let listing = match listed {
        Ok(dir) => {
            let mut entries: Vec<(PathBuf, std::fs::Metadata)> = dir
                .flatten()
                .filter_map(|e| Some((opened.asked.join(e.file_name()), e.metadata().ok()?)))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.iter().map(|(p, m)| entry(p, m)).collect()
        }
        Err(e) => {
            return http::text(
                StatusCode::NOT_FOUND,
                format!("{}: {e}", opened.asked.display()),
            );
        }
    };
    super::json(&Value::Array(listing))
}

fn number(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Refusal> {
    query
        .get(name)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                Refusal(
                    StatusCode::BAD_REQUEST,
                    format!("'{name}' is not a number: {v:?}"),
                )
            })
        })
        .transpose()
}

/// `/files/read?path=FILE&offset=N&length=N`: `{"data", "offset"}`; with
/// no offset (or -1), only the file's size as the offset, as Mesos does.
pub async fn read(work_dir: &Path, query: &HashMap<String, String>) -> Response<Body> {
    let opened = match confined(work_dir, query) {
        Ok(opened) => opened,
        Err(refusal) => return refusal.response(),
    };
    let (offset, length) = match (number(query, "offset"), number(query, "length")) {
        (Ok(o), Ok(l)) => (o.unwrap_or(-1), l.unwrap_or(-1)),
        (Err(r), _) | (_, Err(r)) => return r.response(),
    };
    if opened.meta.is_dir() {
        return http::text(
            StatusCode::BAD_REQUEST,
            format!("{} is a directory", query["path"]),
        );
    }
    let size = opened.meta.len();
    let mut file = tokio::fs::File::from_std(std::fs::File::from(opened.file));
    if offset < 0 {
        return super::json(&json!({ "data": "", "offset": size }));
    }
    let offset = offset as u64;
    if offset >= size {
        return super::json(&json!({ "data": "", "offset": offset }));
    }
    let wanted = if length < 0 {
        MAX_READ
    } else {
        (length as u64).min(MAX_READ)
    };
    let wanted = wanted.min(size - offset) as usize;
    let mut data = vec![0u8; wanted];
    let read = async {
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut filled = 0;
        while filled < wanted {
            let n = file.read(&mut data[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok::<usize, std::io::Error>(filled)
    };
    let filled = match read.await {
        Ok(n) => n,
        Err(e) => return http::text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    data.truncate(filled);
    // A character cut at the end of the chunk is left for the next read.
    let text = match std::str::from_utf8(&data) {
        Ok(text) => text.to_owned(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&data[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(&data).into_owned(),
    };
    super::json(&json!({ "data": text, "offset": offset }))
}

/// `/files/download?path=FILE`: the file's bytes, streamed.
pub async fn download(work_dir: &Path, query: &HashMap<String, String>) -> Response<Body> {
    let opened = match confined(work_dir, query) {
        Ok(opened) => opened,
        Err(refusal) => return refusal.response(),
    };
    if opened.meta.is_dir() {
        return http::text(
            StatusCode::BAD_REQUEST,
            format!("{} is a directory", query["path"]),
        );
    }
    let name = opened
        .asked
        .file_name()
        .map(|n| n.to_string_lossy().replace('"', ""))
        .unwrap_or_default();
    let mut file = tokio::fs::File::from_std(std::fs::File::from(opened.file));
    let (tx, body) = http::channel(4);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            match file.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send(bytes::Bytes::copy_from_slice(&buffer[..n]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    let mut response = Response::new(body);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    response
}
