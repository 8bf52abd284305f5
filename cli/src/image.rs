//! `tepui image`: pull, import, list, remove and collect images in the
//! image store the agent uses.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tepui_containerizer::provisioner::auth::CredentialStore;
use tepui_containerizer::provisioner::{
    Backend, Image, LogProgress, Progress, Provisioner, ProvisionerConfig, Reference,
    RegistryOptions, gc,
};
use tepui_isolators::cgroups::memory;

use crate::progress::Bar;

/// Where images are kept and how registries are reached; shared by
/// `tepui image` and `tepui container run --image`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The image store directory.
    #[arg(
        long,
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
    /// A docker-style config.json whose "auths" hold registry credentials.
    #[arg(long, global = true, env = "TEPUI_REGISTRY_CONFIG")]
    registry_config: Option<PathBuf>,
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
    /// How root filesystems are assembled: auto, overlay or copy.
    #[arg(
        long,
        global = true,
        env = "TEPUI_ROOTFS_BACKEND",
        default_value = "auto"
    )]
    rootfs_backend: Backend,
    /// Store size (e.g. 20G) past which unused images are removed after a pull.
    #[arg(long, global = true, env = "TEPUI_IMAGE_STORE_MAX")]
    max_store_size: Option<String>,
}

impl StoreArgs {
    /// Whether the store directory exists already.
    pub fn exists(&self) -> bool {
        self.store.is_dir()
    }

    /// The provisioner these flags describe.
    pub fn provisioner(&self) -> Result<Provisioner> {
        let credentials = match &self.registry_config {
            Some(path) => CredentialStore::load(path)?,
            None => CredentialStore::default(),
        };
        let mut config = ProvisionerConfig::new(self.store.clone());
        config.registry = RegistryOptions {
            insecure: self.insecure.clone(),
            credentials,
            attempts: self.registry_attempts,
            ca_file: self.registry_ca.clone(),
            ..RegistryOptions::default()
        };
        if self.pull_concurrency == 0 {
            bail!("--pull-concurrency must be at least 1");
        }
        config.concurrency = self.pull_concurrency;
        config.backend = self.rootfs_backend;
        config.max_store_bytes = self
            .max_store_size
            .as_deref()
            .map(memory::parse_size)
            .transpose()
            .context("--max-store-size")?;
        Provisioner::new(config).context("opening the image store")
    }
}

/// `tepui image ...`
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Pull an image from its registry into the store.
    Pull {
        /// Image reference: [REGISTRY[:PORT]/]REPOSITORY[:TAG|@DIGEST].
        reference: String,
    },
    /// Import an OCI layout directory, or an oci-archive or docker-archive tarball.
    Import {
        /// The directory or tarball.
        path: PathBuf,
        /// Store the image under this reference instead of the archive's name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the images in the store.
    Ls,
    /// Remove images; their layers go unless another image or a container uses them.
    Rm {
        /// Image references, as `tepui image ls` shows them or as pulled.
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Remove what no image references; with --max-size, also unused images
    /// (least recently used first) until the store fits.
    Gc {
        /// The size the store must fit in, e.g. 10G.
        #[arg(long)]
        max_size: Option<String>,
    },
}

/// Runs a `tepui image` command.
pub fn run(args: ImageArgs) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(dispatch(args))
}

/// The progress reporter for a pull: a bar on a terminal, else log lines.
pub fn progress() -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Arc::new(Bar::new())
    } else {
        Arc::new(LogProgress::default())
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn report(verb: &str, image: &Image, started: Instant) {
    println!(
        "{verb} {} {} ({} layers, {} unpacked) in {:.2} s",
        image.record.reference,
        image.record.manifest,
        image.record.layers.len(),
        mib(image.record.size()),
        started.elapsed().as_secs_f64()
    );
}

async fn dispatch(args: ImageArgs) -> Result<i32> {
    let provisioner = args.store.provisioner()?;
    match args.command {
        ImageCommand::Pull { reference } => {
            let reference: Reference = reference.parse()?;
            let started = Instant::now();
            let image = provisioner.pull(&reference, progress()).await?;
            report("pulled", &image, started);
        }
        ImageCommand::Import { path, name } => {
            let name = name.map(|n| n.parse::<Reference>()).transpose()?;
            let started = Instant::now();
            let images = provisioner.import(&path, name.as_ref(), progress()).await?;
            for image in &images {
                report("imported", image, started);
            }
        }
        ImageCommand::Ls => {
            let images = provisioner.store().images()?;
            println!(
                "{:<60} {:<19} {:>7} {:>12}",
                "REFERENCE", "MANIFEST", "LAYERS", "SIZE"
            );
            for image in images {
                let short: String = image.manifest.to_string().chars().take(19).collect();
                println!(
                    "{:<60} {short:<19} {:>7} {:>12}",
                    image.reference,
                    image.layers.len(),
                    mib(image.size())
                );
            }
        }
        ImageCommand::Rm { references } => {
            let store = provisioner.store();
            let names: Vec<String> = store.images()?.into_iter().map(|i| i.reference).collect();
            for given in references {
                // Either the stored name or the reference it normalizes to.
                let name = if names.contains(&given) {
                    given.clone()
                } else {
                    given.parse::<Reference>()?.to_string()
                };
                match gc::remove(store, &name)? {
                    Some(r) => println!(
                        "removed {name} ({} layers, {} freed)",
                        r.layers,
                        mib(r.freed_bytes)
                    ),
                    None => bail!("no image {given} in the store"),
                }
            }
        }
        ImageCommand::Gc { max_size } => {
            let max = max_size
                .as_deref()
                .map(memory::parse_size)
                .transpose()
                .context("--max-size")?;
            let r = gc::collect(provisioner.store(), max)?;
            for image in &r.images {
                println!("removed {image}");
            }
            println!(
                "collected {} images, {} layers, {} blobs; {} freed",
                r.images.len(),
                r.layers,
                r.blobs,
                mib(r.freed_bytes)
            );
        }
    }
    Ok(0)
}
