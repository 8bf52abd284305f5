//! The flags that say where images are kept and how registries are
//! reached; shared by the agent and the `tepui` command line so that both
//! use one image store the same way. Mesos's names for the same things
//! (`--docker_store_dir`, `--docker_config`, `--docker_registry`,
//! `--image_providers`, `--image_provisioner_backend`) are accepted with
//! Mesos's meanings.

use std::path::PathBuf;

use clap::Args;
use tepui_containerizer::provisioner::auth::CredentialStore;
use tepui_containerizer::provisioner::{
    Backend, ImageSource, ProvisionError, Provisioner, ProvisionerConfig, RegistryOptions,
};
use tepui_isolators::cgroups::memory;

/// The image flags do not describe a usable store.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// A flag's value is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The credentials file cannot be read.
    #[error(transparent)]
    Credentials(#[from] tepui_containerizer::provisioner::auth::AuthError),
    /// The store cannot be opened.
    #[error("opening the image store: {0}")]
    Store(#[from] ProvisionError),
}

/// Where images are kept and how registries are reached; shared by
/// `tepui image` and `tepui container run --image`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The image store directory (Mesos: --docker_store_dir).
    #[arg(
        long,
        visible_alias = "image-store",
        aliases = ["image_store", "docker_store_dir", "docker-store-dir"],
        global = true,
        env = "TEPUI_IMAGE_STORE",
        default_value = "/var/lib/tepui/images"
    )]
    store: PathBuf,
    /// A registry (HOST[:PORT]) reached over plain http; repeatable.
    #[arg(
        long = "insecure-registry",
        global = true,
        env = "TEPUI_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure: Vec<String>,
    /// A docker-style config.json whose "auths" hold registry credentials:
    /// a path, a `file://` URL or the JSON itself (Mesos: --docker_config).
    #[arg(
        long,
        global = true,
        env = "TEPUI_REGISTRY_CONFIG",
        aliases = ["registry_config", "docker_config", "docker-config"],
        value_name = "PATH|JSON"
    )]
    registry_config: Option<String>,
    /// The image providers (Mesos's --image_providers): only `docker`
    /// (any case); APPC is refused.
    #[arg(
        long,
        global = true,
        env = "TEPUI_IMAGE_PROVIDERS",
        alias = "image_providers",
        value_delimiter = ','
    )]
    image_providers: Vec<String>,
    /// Extra CA certificates (PEM) trusted for registries.
    #[arg(long, global = true, env = "TEPUI_REGISTRY_CA")]
    registry_ca: Option<PathBuf>,
    /// Layers downloaded at once.
    #[arg(
        long,
        global = true,
        env = "TEPUI_PULL_CONCURRENCY",
        default_value_t = 3
    )]
    pull_concurrency: usize,
    /// Attempts per registry request on network errors and 5xx.
    #[arg(
        long,
        global = true,
        env = "TEPUI_REGISTRY_ATTEMPTS",
        default_value_t = 4
    )]
    registry_attempts: u32,
    /// How root filesystems are assembled: auto, overlay or copy (Mesos:
    /// --image_provisioner_backend; its aufs and bind are refused).
    #[arg(
        long,
        global = true,
        env = "TEPUI_ROOTFS_BACKEND",
        aliases = [
            "rootfs_backend",
            "image_provisioner_backend",
            "image-provisioner-backend"
        ],
        default_value = "auto"
    )]
    rootfs_backend: Backend,
    /// Store size (e.g. 20G) past which unused images are removed after a pull.
    #[arg(long, global = true, env = "TEPUI_IMAGE_STORE_MAX")]
    max_store_size: Option<String>,
    /// Where images named without a registry come from (Mesos's
    /// --docker_registry): a registry URL, https://HOST[:PORT] (http://
    /// for plain http), or a local directory of `docker save` archives
    /// holding NAME.tar for each image as tasks name it; hdfs:// is
    /// refused.
    #[arg(
        long,
        global = true,
        env = "TEPUI_DOCKER_REGISTRY",
        alias = "docker_registry",
        default_value = tepui_containerizer::provisioner::source::MESOS_DEFAULT
    )]
    docker_registry: String,
}

impl StoreArgs {
    /// Whether the store directory exists already.
    pub fn exists(&self) -> bool {
        self.store.is_dir()
    }

    /// The store directory.
    pub fn store(&self) -> &std::path::Path {
        &self.store
    }

    /// The registry credentials of --registry-config: inline JSON (as
    /// Mesos's --docker_config allows), else a path or `file://` URL.
    fn credentials(&self) -> Result<CredentialStore, FlagError> {
        let Some(value) = &self.registry_config else {
            return Ok(CredentialStore::default());
        };
        if value.trim_start().starts_with('{') {
            return Ok(CredentialStore::from_json(
                "--registry-config",
                value.as_bytes(),
            )?);
        }
        let path = value.strip_prefix("file://").unwrap_or(value);
        Ok(CredentialStore::load(std::path::Path::new(path))?)
    }

    /// Refuses image providers other than docker.
    fn check_providers(&self) -> Result<(), FlagError> {
        for provider in &self.image_providers {
            match provider.trim().to_ascii_lowercase().as_str() {
                "docker" => {}
                "appc" => {
                    return Err(FlagError::Invalid(
                        "--image-providers: APPC images are not supported; only docker".into(),
                    ));
                }
                other => {
                    return Err(FlagError::Invalid(format!(
                        "--image-providers: unknown provider {other:?} (docker)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The provisioner these flags describe.
    pub fn provisioner(&self) -> Result<Provisioner, FlagError> {
        self.check_providers()?;
        let credentials = self.credentials()?;
        let source = ImageSource::parse(&self.docker_registry)
            .map_err(|e| FlagError::Invalid(e.to_string()))?;
        let mut insecure = self.insecure.clone();
        if let ImageSource::Registry {
            host,
            insecure: true,
        } = &source
        {
            insecure.push(host.clone());
        }
        let mut config = ProvisionerConfig::new(self.store.clone());
        config.source = source;
        config.registry = RegistryOptions {
            insecure,
            credentials,
            attempts: self.registry_attempts,
            ca_file: self.registry_ca.clone(),
            ..RegistryOptions::default()
        };
        if self.pull_concurrency == 0 {
            return Err(FlagError::Invalid(
                "--pull-concurrency must be at least 1".into(),
            ));
        }
        config.concurrency = self.pull_concurrency;
        config.backend = self.rootfs_backend;
        config.max_store_bytes = self
            .max_store_size
            .as_deref()
            .map(memory::parse_size)
            .transpose()
            .map_err(|e| FlagError::Invalid(format!("--max-store-size: {e}")))?;
        Ok(Provisioner::new(config)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        images: StoreArgs,
    }

    fn parse(args: &[&str]) -> Result<StoreArgs, clap::Error> {
        Flags::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))
            .map(|f| f.images)
    }

    #[test]
    fn mesos_names_set_the_same_flags() {
        let flags = parse(&[
            "--docker_store_dir=/srv/store",
            "--image_provisioner_backend=copy",
            "--image_providers=docker,DOCKER",
        ])
        .unwrap();
        assert_eq!(flags.store(), std::path::Path::new("/srv/store"));
        assert_eq!(flags.rootfs_backend, Backend::Copy);
        flags.check_providers().unwrap();
        let flags = parse(&[
            "--docker-store-dir",
            "/a",
            "--image-provisioner-backend",
            "overlay",
        ])
        .unwrap();
        assert_eq!(flags.store(), std::path::Path::new("/a"));
        assert_eq!(flags.rootfs_backend, Backend::Overlay);
    }

    #[test]
    fn other_providers_and_backends_are_refused_by_name() {
        let flags = parse(&["--image_providers=APPC,docker"]).unwrap();
        assert_eq!(
            flags.check_providers().unwrap_err().to_string(),
            "--image-providers: APPC images are not supported; only docker"
        );
        let flags = parse(&["--image_providers=rkt"]).unwrap();
        assert!(
            flags
                .check_providers()
                .unwrap_err()
                .to_string()
                .contains("\"rkt\"")
        );
        let e = parse(&["--image_provisioner_backend=aufs"]).unwrap_err();
        assert!(e.to_string().contains("aufs"), "{e}");
        let e = parse(&["--docker_registry=hdfs://nn:8020/images/"])
            .unwrap()
            .provisioner()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--docker_registry") && e.contains("HDFS"), "{e}");
    }

    #[test]
    fn docker_config_is_a_path_a_file_url_or_the_json_itself() {
        let json = r#"{"auths":{"registry.example:5000":{"auth":"dTpw"}}}"#;
        let flags = parse(&["--docker_config", json]).unwrap();
        let creds = flags.credentials().unwrap();
        let c = creds.for_host("registry.example:5000").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        for value in [
            path.display().to_string(),
            format!("file://{}", path.display()),
        ] {
            let flags = parse(&["--docker-config", &value]).unwrap();
            assert!(
                flags
                    .credentials()
                    .unwrap()
                    .for_host("registry.example:5000")
                    .is_some()
            );
        }
        let flags = parse(&["--docker_config", "{not json"]).unwrap();
        assert!(flags.credentials().is_err());
    }
}
