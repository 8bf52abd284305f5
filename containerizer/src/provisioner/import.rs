//! Loading images with no registry: an OCI image layout directory, or an
//! `oci-archive` or `docker-archive` tarball (`docker save`, `skopeo copy
//! ... oci-archive:`), each blob checked against its digest.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::digest::{Digest, Hasher};
use super::error::ProvisionError;
use super::extract;
use super::image::{Image, parse_config};
use super::layer::{HeldLayer, check_diff_ids, digest_of, ensure_layer, layer_digests};
use super::platform;
use super::progress::Progress;
use super::reference::Reference;
use super::store::{ImageRecord, Store, now, remove_tree};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

fn fail(path: &Path, why: impl Into<String>) -> ProvisionError {
    ProvisionError::Import {
        path: path.display().to_string(),
        why: why.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ProvisionError> {
    std::fs::read(path).map_err(|e| fail(path, e.to_string()))
}

/// A blob of an OCI layout, checked against its digest.
fn layout_blob(dir: &Path, digest: &Digest) -> Result<Vec<u8>, ProvisionError> {
    let path = dir.join("blobs/sha256").join(digest.hex());
    let bytes = read(&path)?;
    if Digest::of(&bytes) != *digest {
        return Err(fail(&path, format!("the blob does not hash to {digest}")));
    }
    Ok(bytes)
}

/// The name an imported image is stored under: the one given, else the
/// layout's annotation (a tag alone is joined to `stem`).
fn image_name(
    given: Option<&Reference>,
    descriptor: Option<&Descriptor>,
    stem: &str,
    path: &Path,
) -> Result<Reference, ProvisionError> {
    if let Some(given) = given {
        return Ok(given.clone());
    }
    let annotations = descriptor.and_then(|d| d.annotations().as_ref());
    let annotation = |key: &str| {
        annotations
            .and_then(|a| a.get(key))
            .filter(|v| !v.is_empty())
    };
    if let Some(full) = annotation(CONTAINERD_NAME) {
        return Ok(full.parse()?);
    }
    match annotation(REF_NAME) {
        Some(name) if name.contains('/') || name.contains(':') => Ok(name.parse()?),
        Some(tag) => Ok(format!("{stem}:{tag}").parse()?),
        None => Err(fail(
            path,
            "the image has no name in the archive; give one with --name",
        )),
    }
}

/// The lowercase stem of a file or directory name, usable as a repository.
fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.split('.').next().unwrap_or("").to_ascii_lowercase();
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let clean = clean.trim_matches('-').to_owned();
    if clean.is_empty() {
        "image".into()
    } else {
        clean
    }
}

/// A relative path inside an archive, refused if it leaves it.
fn inside(dir: &Path, relative: &str) -> Result<PathBuf, ProvisionError> {
    let rel = Path::new(relative);
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(fail(dir, format!("{relative:?} leaves the archive")));
    }
    Ok(dir.join(rel))
}

fn hash_file(path: &Path) -> Result<(Digest, u64), ProvisionError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| fail(path, e.to_string()))?;
    let mut hasher = Hasher::new();
    let mut buffer = vec![0u8; 256 << 10];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| fail(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((hasher.finish(), size))
}

/// An image found in a layout or archive, its blobs still local files.
struct LocalImage {
    reference: Reference,
    /// The manifest's digest and bytes.
    manifest: (Digest, Vec<u8>),
    /// The config's digest and bytes.
    config: (Digest, Vec<u8>),
    /// The layers' digests and sizes, base first.
    layers: Vec<(Digest, u64)>,
    /// Each layer's file.
    sources: Vec<PathBuf>,
}

/// Told of each image an import records, so the caller (the provisioner,
/// which collects garbage there) acts between the images of one archive.
pub(crate) trait Recorded: Sync {
    /// Runs after an image is recorded, before the next is imported.
    fn recorded(&self) -> impl Future<Output = ()> + Send;
}

/// What an import works with: the store the images go to, the limits on
/// unpacking, and whom to tell of each image recorded.
pub(crate) struct Importer<'a, R> {
    /// The store the images go to.
    pub(crate) store: &'a Arc<Store>,
    /// Limits on unpacking a layer (and, in bytes, an archive).
    pub(crate) extract: extract::Options,
    /// Told after each image is recorded.
    pub(crate) after_each: &'a R,
}

impl<R: Recorded> Importer<'_, R> {
    /// Imports every image in the layout or archive at `path`, naming it
    /// `name` when given (an archive with one image only).
    pub(crate) async fn import(
        &self,
        path: &Path,
        name: Option<&Reference>,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<Image>, ProvisionError> {
        let meta = std::fs::metadata(path).map_err(|e| fail(path, e.to_string()))?;
        if meta.is_dir() {
            return self.import_dir(path, path, name, progress).await;
        }
        // An archive is unpacked (safely) into the store's scratch space.
        let token = Digest::of(
            format!(
                "{}\0{}\0{:?}",
                path.display(),
                std::process::id(),
                std::time::SystemTime::now()
            )
            .as_bytes(),
        );
        let _lock = self.store.lock(&token)?;
        let unpacked = self.store.tmp_path(&token, "import");
        let options = extract::Options::plain_archive(self.extract.max_bytes);
        let result = async {
            let (source, target, options) = (path.to_owned(), unpacked.clone(), options);
            tokio::task::spawn_blocking(move || {
                let file =
                    std::fs::File::open(&source).map_err(|e| fail(&source, e.to_string()))?;
                extract::extract(&source.display().to_string(), file, &target, &options)
                    .map_err(|e| fail(&source, e.to_string()))
            })
            .await
            .map_err(|e| ProvisionError::Internal(e.to_string()))??;
            self.import_dir(&unpacked, path, name, progress).await
        }
        .await;
        remove_tree(&unpacked)?;
        result
    }

    async fn import_dir(
        &self,
        dir: &Path,
        origin: &Path,
        name: Option<&Reference>,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<Image>, ProvisionError> {
        if dir.join("oci-layout").is_file() && dir.join("index.json").is_file() {
            self.import_layout(dir, origin, name, progress).await
        } else if dir.join("manifest.json").is_file() {
            self.import_docker(dir, origin, name, progress).await
        } else {
            Err(fail(
                origin,
                "neither an OCI layout (oci-layout, index.json) nor a docker archive (manifest.json)",
            ))
        }
    }

    async fn import_layout(
        &self,
        dir: &Path,
        origin: &Path,
        name: Option<&Reference>,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<Image>, ProvisionError> {
        let index: ImageIndex = serde_json::from_slice(&read(&dir.join("index.json"))?)
            .map_err(|e| fail(origin, format!("index.json: {e}")))?;
        if name.is_some() && index.manifests().len() > 1 {
            return Err(fail(
                origin,
                "--name needs an archive with one image; this one has several",
            ));
        }
        let mut images = Vec::new();
        for descriptor in index.manifests() {
            let reference = image_name(name, Some(descriptor), &stem(origin), origin)?;
            let mut manifest_digest = digest_of(descriptor)?;
            let mut bytes = layout_blob(dir, &manifest_digest)?;
            if descriptor.media_type().to_string().contains("index") {
                let nested: ImageIndex = serde_json::from_slice(&bytes)
                    .map_err(|e| fail(origin, format!("index {manifest_digest}: {e}")))?;
                let chosen = platform::choose(&nested, platform::host_architecture())
                    .map_err(|why| fail(origin, why))?;
                manifest_digest = digest_of(chosen)?;
                bytes = layout_blob(dir, &manifest_digest)?;
            }
            let manifest: ImageManifest = serde_json::from_slice(&bytes)
                .map_err(|e| fail(origin, format!("manifest {manifest_digest}: {e}")))?;
            let config_digest = digest_of(manifest.config())?;
            let config_bytes = layout_blob(dir, &config_digest)?;
            let layers = layer_digests(&reference.to_string(), &manifest)?;
            let sources = layers
                .iter()
                .map(|(d, _)| dir.join("blobs/sha256").join(d.hex()))
                .collect();
            let local = LocalImage {
                reference,
                manifest: (manifest_digest, bytes),
                config: (config_digest, config_bytes),
                layers,
                sources,
            };
            images.push(self.import_image(local, progress.clone()).await?);
        }
        Ok(images)
    }

    async fn import_docker(
        &self,
        dir: &Path,
        origin: &Path,
        name: Option<&Reference>,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<Image>, ProvisionError> {
        let entries: serde_json::Value = serde_json::from_slice(&read(&dir.join("manifest.json"))?)
            .map_err(|e| fail(origin, format!("manifest.json: {e}")))?;
        let entries = entries
            .as_array()
            .ok_or_else(|| fail(origin, "manifest.json is not a list"))?;
        if name.is_some() && entries.len() > 1 {
            return Err(fail(
                origin,
                "--name needs an archive with one image; this one has several",
            ));
        }
        let mut images = Vec::new();
        for entry in entries {
            let text = |key: &str| entry.get(key).and_then(|v| v.as_str());
            let config_path = inside(
                dir,
                text("Config").ok_or_else(|| fail(origin, "an entry without Config"))?,
            )?;
            let config_bytes = read(&config_path)?;
            let config_digest = Digest::of(&config_bytes);
            let tag = entry
                .get("RepoTags")
                .and_then(|t| t.get(0))
                .and_then(|t| t.as_str());
            let reference = match (name, tag) {
                (Some(n), _) => n.clone(),
                (None, Some(tag)) => tag.parse()?,
                (None, None) => {
                    return Err(fail(
                        origin,
                        "the image has no RepoTags; give a name with --name",
                    ));
                }
            };
            let mut layers = Vec::new();
            let mut sources = Vec::new();
            let mut descriptors = Vec::new();
            for layer in entry
                .get("Layers")
                .and_then(|l| l.as_array())
                .ok_or_else(|| fail(origin, "an entry without Layers"))?
            {
                let path = inside(
                    dir,
                    layer
                        .as_str()
                        .ok_or_else(|| fail(origin, "a layer path is not a string"))?,
                )?;
                let (digest, size) = hash_file(&path)?;
                descriptors.push(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest.to_string(),
                    "size": size,
                }));
                layers.push((digest, size));
                sources.push(path);
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest.to_string(),
                    "size": config_bytes.len(),
                },
                "layers": descriptors,
            });
            let bytes = serde_json::to_vec(&manifest)
                .map_err(|e| ProvisionError::Internal(e.to_string()))?;
            let manifest_digest = Digest::of(&bytes);
            let local = LocalImage {
                reference,
                manifest: (manifest_digest, bytes),
                config: (config_digest, config_bytes),
                layers,
                sources,
            };
            images.push(self.import_image(local, progress.clone()).await?);
        }
        Ok(images)
    }

    /// Stores one image whose blobs are local files.
    async fn import_image(
        &self,
        local: LocalImage,
        progress: Arc<dyn Progress>,
    ) -> Result<Image, ProvisionError> {
        let LocalImage {
            reference,
            manifest,
            config,
            layers,
            sources,
        } = local;
        let name = reference.to_string();
        let image_config = parse_config(&name, &config.1)?;
        check_diff_ids(&name, &image_config, layers.len())?;
        let mut held: Vec<HeldLayer> = Vec::new();
        for ((digest, _), source) in layers.into_iter().zip(sources) {
            let layer = ensure_layer(
                self.store.clone(),
                digest,
                self.extract,
                progress.clone(),
                || async move { Ok((source, false)) },
            )
            .await?;
            held.push(layer);
        }
        self.store.put_blob(&config.0, &config.1)?;
        self.store.put_blob(&manifest.0, &manifest.1)?;
        let record = ImageRecord {
            reference: name.clone(),
            manifest: manifest.0,
            config: config.0,
            layers: held.iter().map(|(l, _)| l.clone()).collect(),
            last_used: now(),
        };
        self.store.put_image(&record)?;
        drop(held);
        tracing::info!(image = %name, manifest = %record.manifest, layers = record.layers.len(), "image imported");
        self.after_each.recorded().await;
        Ok(Image {
            record,
            config: image_config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_flag_the_annotation_or_the_file() {
        let p = Path::new("/tmp/BusyBox.tar");
        assert_eq!(stem(p), "busybox");
        let d: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
                "digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",
                "annotations":{"org.opencontainers.image.ref.name":"1.36"}}"#,
        )
        .unwrap();
        assert_eq!(
            image_name(None, Some(&d), "busybox", p)
                .unwrap()
                .to_string(),
            "docker.io/library/busybox:1.36"
        );
        let given: Reference = "127.0.0.1:5000/x:y".parse().unwrap();
        assert_eq!(
            image_name(Some(&given), Some(&d), "busybox", p).unwrap(),
            given
        );
        assert!(image_name(None, None, "busybox", p).is_err());
    }

    #[test]
    fn archive_paths_may_not_leave_the_archive() {
        let dir = Path::new("/tmp/x");
        assert!(inside(dir, "abc/layer.tar").is_ok());
        assert!(inside(dir, "../etc/passwd").is_err());
        assert!(inside(dir, "/etc/passwd").is_err());
    }
}
