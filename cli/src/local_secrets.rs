//! The secrets `tepui local` turns authentication on with, made on its
//! first start and kept in `WORK_DIR/secrets` (0700, each file 0600):
//! the cluster's credentials (`credentials.json`, Mesos's format, for the
//! master's `--credentials` and the agent's `--http_credentials`), the
//! client's credential (`client.json`, which `tepui run` and friends read
//! by default), the agent's own (`agent.json`) and the key of executors'
//! tokens (`executor.key`). Files found there are used only if they are
//! this user's and nobody else may read them.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The client credential's principal.
pub const CLIENT_PRINCIPAL: &str = "tepui";
/// The agent's principal.
pub const AGENT_PRINCIPAL: &str = "tepui-agent";

/// Where a local cluster's secrets are.
#[derive(Debug, Clone)]
pub struct LocalSecrets {
    /// The principals the master and agent admit.
    pub credentials: PathBuf,
    /// The client's credential.
    pub client: PathBuf,
    /// The agent's credential.
    pub agent: PathBuf,
    /// The HS256 key of executors' tokens.
    pub executor_key: PathBuf,
}

impl LocalSecrets {
    /// Every file, for checks that go over all of them.
    fn files(&self) -> [&PathBuf; 4] {
        [
            &self.credentials,
            &self.client,
            &self.agent,
            &self.executor_key,
        ]
    }
}

/// The secrets directory of a local cluster's work dir.
pub fn dir(work_dir: &Path) -> PathBuf {
    work_dir.join("secrets")
}

/// The client credential a default `tepui local` leaves for the CLI.
pub fn default_client() -> PathBuf {
    dir(Path::new(crate::local::DEFAULT_WORK_DIR)).join("client.json")
}

/// The secrets of the cluster in `work_dir`, made if missing.
pub fn ensure(work_dir: &Path) -> Result<LocalSecrets> {
    let dir = dir(work_dir);
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    private(&dir, true)?;
    let secrets = LocalSecrets {
        credentials: dir.join("credentials.json"),
        client: dir.join("client.json"),
        agent: dir.join("agent.json"),
        executor_key: dir.join("executor.key"),
    };
    if !secrets.files().iter().all(|p| p.exists()) {
        // Made together, so the files always agree with each other.
        let client = random_hex()?;
        let agent = random_hex()?;
        let credentials = serde_json::json!({"credentials": [
            {"principal": CLIENT_PRINCIPAL, "secret": client},
            {"principal": AGENT_PRINCIPAL, "secret": agent},
        ]});
        write_private(&secrets.credentials, credentials.to_string().as_bytes())?;
        let client = serde_json::json!({"principal": CLIENT_PRINCIPAL, "secret": client});
        write_private(&secrets.client, client.to_string().as_bytes())?;
        let agent = serde_json::json!({"principal": AGENT_PRINCIPAL, "secret": agent});
        write_private(&secrets.agent, agent.to_string().as_bytes())?;
        write_private(&secrets.executor_key, &random_bytes::<32>()?)?;
    }
    for path in secrets.files() {
        private(path, false)?;
    }
    Ok(secrets)
}

/// Refuses a file or directory that is not this user's own, or that
/// others may read or write.
fn private(path: &Path, is_dir: bool) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let kind_ok = if is_dir {
        meta.file_type().is_dir()
    } else {
        meta.file_type().is_file()
    };
    // SAFETY: geteuid takes no arguments and cannot fail.
    let ours = meta.uid() == unsafe { libc::geteuid() };
    if !kind_ok || !ours || meta.mode() & 0o077 != 0 {
        bail!(
            "{} must be a {} of this user's that nobody else can read or write \
             (0{:o}, uid {}); fix it or remove it to have new secrets made",
            path.display(),
            if is_dir { "directory" } else { "file" },
            meta.mode() & 0o7777,
            meta.uid()
        );
    }
    Ok(())
}

/// Writes a new file only this user may read, replacing what was there.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("renaming into {}", path.display()))
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

fn random_hex() -> Result<String> {
    Ok(random_bytes::<24>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secrets_are_made_once_private_and_agree() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&super::dir(dir.path())), 0o700);
        for p in [
            &first.credentials,
            &first.client,
            &first.agent,
            &first.executor_key,
        ] {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        let all = tepui_proto::authentication::read_credentials(&first.credentials).unwrap();
        let client = tepui_proto::authentication::read_credential(&first.client).unwrap();
        let agent = tepui_proto::authentication::read_credential(&first.agent).unwrap();
        assert_eq!(all.len(), 2);
        assert!(
            all.iter()
                .any(|c| c.principal == client.principal && c.secret == client.secret)
        );
        assert!(
            all.iter()
                .any(|c| c.principal == agent.principal && c.secret == agent.secret)
        );
        assert_ne!(client.secret, agent.secret);
        assert_eq!(std::fs::read(&first.executor_key).unwrap().len(), 32);
        // Kept: a second start uses the same secrets.
        let again = ensure(dir.path()).unwrap();
        assert_eq!(
            std::fs::read(&again.client).unwrap(),
            std::fs::read(&first.client).unwrap()
        );
        // A file others may read is refused, not used.
        std::fs::set_permissions(&first.client, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ensure(dir.path()).unwrap_err().to_string();
        assert!(e.contains("nobody else can read"), "{e}");
    }
}
