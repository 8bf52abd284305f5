//! `tepui image`: pull, import, list, remove and collect images in the
//! image store the agent uses.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tepui_containerizer::provisioner::{Image, LogProgress, Progress, Reference, gc};
use tepui_isolators::cgroups::memory;

use crate::progress::Bar;
pub use tepui_agent::image_flags::StoreArgs;

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
        #[arg(long, env = "TEPUI_IMAGE_NAME")]
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
        #[arg(long, env = "TEPUI_IMAGE_MAX_SIZE")]
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
