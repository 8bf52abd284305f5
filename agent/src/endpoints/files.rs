//! `/files/browse`, `/files/read` and `/files/download`: a sandbox's
//! files, by the `directory` path `/state` gives. A path is followed
//! through every symlink first and must then lie under the work dir's
//! `slaves/`, so a task's symlink cannot reach the rest of the host.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

/// The path asked for, resolved and confined to the sandboxes.
fn confined(work_dir: &Path, query: &HashMap<String, String>) -> Result<PathBuf, Refusal> {
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
    let real = std::fs::canonicalize(asked).map_err(|_| not_found())?;
    let root = std::fs::canonicalize(work_dir.join("slaves")).map_err(|_| not_found())?;
    if !real.starts_with(&root) {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            format!("{asked} is not inside a sandbox"),
        ));
    }
    Ok(real)
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
    let real = match confined(work_dir, query) {
        Ok(real) => real,
        Err(refusal) => return refusal.response(),
    };
    let asked = PathBuf::from(&query["path"]);
    let listing = match std::fs::read_dir(&real) {
        Ok(dir) => {
            let mut entries: Vec<(PathBuf, std::fs::Metadata)> = dir
                .flatten()
                .filter_map(|e| Some((asked.join(e.file_name()), e.metadata().ok()?)))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.iter().map(|(p, m)| entry(p, m)).collect()
        }
        Err(_) => match std::fs::metadata(&real) {
            Ok(meta) => vec![entry(&asked, &meta)],
            Err(e) => {
                return http::text(StatusCode::NOT_FOUND, format!("{}: {e}", asked.display()));
            }
        },
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
    let real = match confined(work_dir, query) {
        Ok(real) => real,
        Err(refusal) => return refusal.response(),
    };
    let (offset, length) = match (number(query, "offset"), number(query, "length")) {
        (Ok(o), Ok(l)) => (o.unwrap_or(-1), l.unwrap_or(-1)),
        (Err(r), _) | (_, Err(r)) => return r.response(),
    };
    let mut file = match tokio::fs::File::open(&real).await {
        Ok(file) => file,
        Err(e) => return http::text(StatusCode::NOT_FOUND, format!("{}: {e}", query["path"])),
    };
    let size = match file.metadata().await {
        Ok(meta) if meta.is_dir() => {
            return http::text(
                StatusCode::BAD_REQUEST,
                format!("{} is a directory", query["path"]),
            );
        }
        Ok(meta) => meta.len(),
        Err(e) => return http::text(StatusCode::NOT_FOUND, e.to_string()),
    };
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
    let real = match confined(work_dir, query) {
        Ok(real) => real,
        Err(refusal) => return refusal.response(),
    };
    let mut file = match tokio::fs::File::open(&real).await {
        Ok(file) if !real.is_dir() => file,
        Ok(_) => {
            return http::text(
                StatusCode::BAD_REQUEST,
                format!("{} is a directory", query["path"]),
            );
        }
        Err(e) => return http::text(StatusCode::NOT_FOUND, format!("{}: {e}", query["path"])),
    };
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
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().replace('"', ""))
        .unwrap_or_default();
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
