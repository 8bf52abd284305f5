//! Image tier: Debian's docker-registry on 127.0.0.1 (started per test with
//! a config written here, storage in a temp dir), images pushed to it with
//! skopeo from OCI layouts built of busybox-static, pulled, imported,
//! collected and run. Needs root and the Debian packages docker-registry,
//! skopeo, apache2-utils, busybox-static and python3 (./x test installs them).

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tepui_containerizer::provisioner::auth::{CredentialStore, Credentials};
use tepui_containerizer::provisioner::{
    Backend, ImageSource, NoProgress, ProvisionError, Provisioner, ProvisionerConfig, Reference,
    RegistryOptions, gc,
};
use tepui_containerizer::{Config, ContainerSpec, Containerizer, ExitStatus};
use tepui_isolators::cgroups::Hierarchy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An OCI layout of the three-layer busybox test image (see oci-image.py).
fn layout(dir: &Path, name: &str, variant: &str, payload_mib: u32, index: bool) -> PathBuf {
    let rootfs = dir.join("rootfs");
    if !rootfs.exists() {
        run(Command::new(repo_root().join("tests/fixtures/busybox-rootfs.sh")).arg(&rootfs));
    }
    let out = dir.join(name);
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tests/fixtures/oci-image.py"))
        .arg(&rootfs)
        .arg(&out)
        .args(["--tag", "latest", "--variant", variant])
        .args(["--payload-mib", &payload_mib.to_string()]);
    if index {
        cmd.arg("--index");
    }
    run(&mut cmd);
    out
}

/// The digests of a layout's single image: (manifest, layers), reading
/// the amd64 manifest when the layout holds an index.
fn layout_digests(layout: &Path) -> (String, Vec<String>) {
    let read = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let mut manifest = read(&digest);
    if manifest.get("manifests").is_some() {
        let amd64 = manifest["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == "amd64")
            .unwrap()
            .clone();
        digest = amd64["digest"].as_str().unwrap().to_owned();
        manifest = read(&digest);
    }
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    (digest, layers)
}

/// Debian's docker-registry, on 127.0.0.1, with its access log kept.
struct Registry {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Registry {
    fn start(dir: &Path, htpasswd: Option<(&str, &str)>) -> Self {
        Self::start_with(dir, htpasswd, false)
    }

    /// With `tls`, serves https with a certificate for 127.0.0.1 signed by
    /// a CA written to `<dir>/registry/ca.pem`.
    fn start_with(dir: &Path, htpasswd: Option<(&str, &str)>, tls: bool) -> Self {
        let dir = dir.join("registry");
        std::fs::create_dir_all(&dir).unwrap();
        let mut auth = String::new();
        if let Some((user, password)) = htpasswd {
            let line = run(Command::new("htpasswd").args(["-Bbn", user, password]));
            std::fs::write(dir.join("htpasswd"), line).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: tepui-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        let port = free_port();
        let mut http_tls = String::new();
        if tls {
            make_certificates(&dir);
            http_tls = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("cert.pem").display(),
                dir.join("key.pem").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n{http_tls}{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let mut registry = Self {
            dir,
            port,
            child: None,
        };
        registry.restart();
        registry
    }

    /// (Re)starts the registry process on the same port and storage.
    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("docker-registry did not listen on {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes `layout` as `repo:tag` with skopeo (all platforms of an index).
    fn push(&self, layout: &Path, target: &str, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--all",
            "--dest-tls-verify=false",
        ]);
        if let Some(creds) = creds {
            cmd.args(["--dest-creds", creds]);
        }
        cmd.arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/{target}", self.host()));
        run(&mut cmd);
    }

    /// How many times blob `digest` was served (from the access log).
    fn blob_gets(&self, digest: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains(&format!("/blobs/{digest} HTTP")) && l.contains("\"GET "))
            .filter(|l| l.contains("\" 200 ") || l.contains("\" 206 "))
            .count()
    }

    /// The registry's stored data file of blob `digest`.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, with openssl.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").current_dir(dir).args(args));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tepui-test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn options(insecure: &str) -> RegistryOptions {
    RegistryOptions {
        insecure: vec![insecure.to_owned()],
        attempts: 2,
        backoff: Duration::from_millis(50),
        ..RegistryOptions::default()
    }
}

fn provisioner(store: &Path, registry: RegistryOptions) -> Provisioner {
    let mut config = ProvisionerConfig::new(store.to_owned());
    config.registry = registry;
    Provisioner::new(config).unwrap()
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

fn progress() -> Arc<NoProgress> {
    Arc::new(NoProgress)
}

/// Entries of a store subdirectory.
fn entries(store: &Path, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.join(sub))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn hex(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap().to_owned()
}

#[tokio::test]
async fn pulls_by_tag_and_digest_and_runs_a_container_in_the_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path(), None);
    let image = layout(dir.path(), "one", "one", 0, false);
    let (manifest, layers) = layout_digests(&image);
    registry.push(&image, "busybox:latest", None);

    let store = dir.path().join("store");
    let p = Arc::new(provisioner(&store, options(&registry.host())));
    let by_tag = reference(&format!("{}/busybox:latest", registry.host()));
    let pulled = p.pull(&by_tag, progress()).await.unwrap();
    assert_eq!(pulled.record.manifest.to_string(), manifest);
    let stored: Vec<String> = pulled
        .record
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect();
    assert_eq!(stored, layers);
    assert_eq!(entries(&store, "layers/sha256").len(), 3);
    assert!(entries(&store, "incoming").is_empty());
    assert!(entries(&store, "tmp").is_empty());

    // By digest: the same manifest, and no layer fetched twice.
    let by_digest = reference(&format!("{}/busybox@{manifest}", registry.host()));
    let again = p.pull(&by_digest, progress()).await.unwrap();
    assert_eq!(again.record.manifest.to_string(), manifest);
    for layer in &layers {
        assert_eq!(registry.blob_gets(layer), 1, "layer {layer}");
    }
    assert!(p.image(&by_digest).unwrap().is_some());

    // A container from the containerizer runs in the three-layer overlay.
    static N: AtomicU32 = AtomicU32::new(0);
    let cgroup_root = Hierarchy::default_root().unwrap().with_file_name(format!(
        "tepui-imgtest-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let containerizer = Containerizer::new(Config {
        cgroup_root: cgroup_root.clone(),
        state_dir: dir.path().join("state"),
        provisioner: Some(p.clone()),
    })
    .unwrap();
    let script = "cat /etc/layer2 /etc/layer3; ls /var/opaque; \
                  test -e /etc/doomed && echo doomed-visible; \
                  grep ' / ' /proc/self/mounts | cut -d' ' -f3; echo written > /etc/new";
    let mut spec = ContainerSpec::new(vec!["sh".into(), "-c".into(), script.into()]);
    spec.image = Some(pulled.clone());
    let out = dir.path().join("out");
    spec.stdio = tepui_containerizer::Stdio::Files {
        stdout: out.clone(),
        stderr: dir.path().join("err"),
    };
    containerizer.launch("img1", spec).await.unwrap();
    assert_eq!(entries(&store, "leases"), vec!["img1".to_owned()]);
    let ended = containerizer.wait("img1").await.unwrap();
    containerizer.destroy("img1").await.unwrap();
    let _ = std::fs::remove_dir(&cgroup_root);
    let stdout = std::fs::read_to_string(&out).unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert_eq!(ended.status, Some(ExitStatus::Exited(0)), "{stderr}");
    assert_eq!(stdout, "two\nthree one\nc\noverlay\n", "{stderr}");
    // Released: no lease, no mount, the container's write gone with it,
    // the layers untouched.
    assert!(entries(&store, "leases").is_empty());
    assert!(entries(&store, "rootfs").is_empty());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(store.to_str().unwrap()), "{mounts}");
    for layer in &layers {
        assert!(
            !store
                .join("layers/sha256")
                .join(hex(layer))
                .join("etc/new")
                .exists()
        );
    }
}

#[tokio::test]
async fn pulls_over_https_trusting_only_the_ca_given() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start_with(dir.path(), None, true);
    let image = layout(dir.path(), "one", "one", 0, false);
    registry.push(&image, "secure:latest", None);
    let name = reference(&format!("{}/secure:latest", registry.host()));
    let secure = RegistryOptions {
        attempts: 1,
        ..RegistryOptions::default()
    };

    let untrusting = provisioner(&dir.path().join("store1"), secure.clone());
    let e = untrusting
        .pull(&name, progress())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("https://") && e.to_lowercase().contains("certificate"),
        "{e}"
    );

    let trusting = provisioner(
        &dir.path().join("store2"),
        RegistryOptions {
            ca_file: Some(dir.path().join("registry/ca.pem")),
            ..secure
        },
    );
    let pulled = trusting.pull(&name, progress()).await.unwrap();
    assert_eq!(pulled.record.layers.len(), 3);
}

#[tokio::test]
async fn picks_this_hosts_platform_from_a_multi_arch_index() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path(), None);
    let image = layout(dir.path(), "multi", "one", 0, true);
    let (amd64, _) = layout_digests(&image);
    registry.push(&image, "multi:latest", None);
    let store = dir.path().join("store");
    let p = provisioner(&store, options(&registry.host()));
    let pulled = p
        .pull(
            &reference(&format!("{}/multi:latest", registry.host())),
            progress(),
        )
        .await
        .unwrap();
    assert_eq!(pulled.record.manifest.to_string(), amd64);
    assert_eq!(pulled.config.architecture().to_string(), "amd64");
}

#[tokio::test]
async fn basic_auth_uses_the_docker_config_and_reports_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path(), Some(("tepui", "s3cret")));
    let image = layout(dir.path(), "one", "one", 0, false);
    registry.push(&image, "private:latest", Some("tepui:s3cret"));
    let name = reference(&format!("{}/private:latest", registry.host()));
    let store = dir.path().join("store");

    let anonymous = provisioner(&store, options(&registry.host()));
    let e = anonymous
        .pull(&name, progress())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("401") && e.contains("none are configured"),
        "{e}"
    );

    let config = dir.path().join("config.json");
    let auth = base64_encode("tepui:wrong");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let wrong = provisioner(
        &store,
        RegistryOptions {
            credentials: CredentialStore::load(&config).unwrap(),
            ..options(&registry.host())
        },
    );
    let e = wrong.pull(&name, progress()).await.unwrap_err().to_string();
    assert!(e.contains("refused the credentials"), "{e}");

    let auth = base64_encode("tepui:s3cret");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"http://{}/v2/":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let right = provisioner(
        &store,
        RegistryOptions {
            credentials: CredentialStore::load(&config).unwrap(),
            ..options(&registry.host())
        },
    );
    let pulled = right.pull(&name, progress()).await.unwrap();
    assert_eq!(pulled.record.layers.len(), 3);
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn a_corrupted_blob_is_a_digest_error_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path(), None);
    let image = layout(dir.path(), "one", "one", 0, false);
    let (_, layers) = layout_digests(&image);
    registry.push(&image, "busybox:latest", None);
    // Flip one byte of the base layer in the registry's own storage.
    let file = registry.blob_file(&layers[0]);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let store = dir.path().join("store");
    let p = provisioner(&store, options(&registry.host()));
    let e = p
        .pull(
            &reference(&format!("{}/busybox:latest", registry.host())),
            progress(),
        )
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ProvisionError::Registry(_)), "{text}");
    assert!(
        text.contains(&layers[0]) && text.contains("hashes to") && text.contains("discarded"),
        "{text}"
    );
    assert!(!entries(&store, "layers/sha256").contains(&hex(&layers[0])));
    assert!(!entries(&store, "incoming").contains(&hex(&layers[0])));
    assert!(entries(&store, "tmp").is_empty());
    assert!(p.store().images().unwrap().is_empty());
}

/// A TCP proxy to `upstream` that forwards responses at about 3 MB/s and
/// counts the bytes it forwarded.
async fn slow_proxy(upstream: u16, sent: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let sent = sent.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut buffer = vec![0u8; 16 << 10];
                loop {
                    let n = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    sent.fetch_add(n as u64, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_registry_stopped_mid_pull_is_a_clean_error_and_the_next_pull_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(dir.path(), None);
    let image = layout(dir.path(), "big", "one", 48, false);
    let (_, layers) = layout_digests(&image);
    registry.push(&image, "big:latest", None);
    let sent = Arc::new(AtomicU64::new(0));
    let proxy = slow_proxy(registry.port, sent.clone()).await;
    let host = format!("127.0.0.1:{proxy}");
    let name = reference(&format!("{host}/big:latest"));
    let store = dir.path().join("store");
    let p = Arc::new(provisioner(&store, options(&host)));

    let pulling = tokio::spawn({
        let (p, name) = (p.clone(), name.clone());
        async move { p.pull(&name, progress()).await }
    });
    // Stop the registry once a payload layer is partly down.
    let partial = store.join("incoming").join(hex(&layers[1]));
    for _ in 0..1000 {
        if std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) > 1 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    registry.stop();
    let e = pulling.await.unwrap().unwrap_err().to_string();
    assert!(e.contains(&host), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // No partial layer in the store: the payload layers are not unpacked,
    // nothing is half-unpacked, and no image was recorded.
    let unpacked = entries(&store, "layers/sha256");
    assert!(
        !unpacked.contains(&hex(&layers[1])) && !unpacked.contains(&hex(&layers[2])),
        "{unpacked:?}"
    );
    assert!(entries(&store, "tmp").is_empty());
    assert!(p.store().images().unwrap().is_empty());
    let kept: u64 = entries(&store, "incoming")
        .iter()
        .map(|n| {
            std::fs::metadata(store.join("incoming").join(n))
                .unwrap()
                .len()
        })
        .sum();
    assert!(
        kept > 1 << 20,
        "the partial downloads are kept for resumption"
    );
    // What the next pull must still move, were nothing resumed.
    let needed: u64 = layers
        .iter()
        .filter(|l| !unpacked.contains(&hex(l)))
        .map(|l| std::fs::metadata(registry.blob_file(l)).unwrap().len())
        .sum();

    // The registry is back: the pull completes and resumes where it stopped.
    registry.restart();
    let before = sent.load(Ordering::SeqCst);
    let pulled = p.pull(&name, progress()).await.unwrap();
    let moved = sent.load(Ordering::SeqCst) - before;
    assert_eq!(pulled.record.layers.len(), 3);
    assert!(
        moved + kept / 2 < needed,
        "the second pull moved {moved} bytes; {needed} were missing and {kept} kept"
    );
    assert!(entries(&store, "incoming").is_empty());
}

#[tokio::test]
async fn concurrent_pulls_coalesce_and_a_second_image_fetches_only_its_new_layer() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path(), None);
    let one = layout(dir.path(), "one", "one", 4, false);
    let two = layout(dir.path(), "two", "two", 4, false);
    let (_, layers_one) = layout_digests(&one);
    let (_, layers_two) = layout_digests(&two);
    assert_eq!(layers_one[..2], layers_two[..2]);
    assert_ne!(layers_one[2], layers_two[2]);
    registry.push(&one, "app:one", None);
    registry.push(&two, "app:two", None);

    // Two provisioners on one store, as two processes would be.
    let store = dir.path().join("store");
    let a = provisioner(&store, options(&registry.host()));
    let b = provisioner(&store, options(&registry.host()));
    let name = reference(&format!("{}/app:one", registry.host()));
    let (ra, rb) = tokio::join!(a.pull(&name, progress()), b.pull(&name, progress()));
    let (ra, rb) = (ra.unwrap().record, rb.unwrap().record);
    assert_eq!((&ra.manifest, &ra.layers), (&rb.manifest, &rb.layers));
    for layer in &layers_one {
        assert_eq!(
            registry.blob_gets(layer),
            1,
            "layer {layer} downloaded once"
        );
    }

    a.pull(
        &reference(&format!("{}/app:two", registry.host())),
        progress(),
    )
    .await
    .unwrap();
    for layer in &layers_two[..2] {
        assert_eq!(
            registry.blob_gets(layer),
            1,
            "shared layer {layer} not fetched again"
        );
    }
    assert_eq!(registry.blob_gets(&layers_two[2]), 1);
    assert_eq!(entries(&store, "layers/sha256").len(), 4);
}

#[tokio::test]
async fn garbage_collection_spares_images_in_use_and_shared_layers() {
    let dir = tempfile::tempdir().unwrap();
    let one = layout(dir.path(), "one", "one", 0, false);
    let two = layout(dir.path(), "two", "two", 0, false);
    let (_, layers_one) = layout_digests(&one);
    let (_, layers_two) = layout_digests(&two);
    let store = dir.path().join("store");
    let mut config = ProvisionerConfig::new(store.clone());
    config.backend = Backend::Copy;
    let p = Provisioner::new(config).unwrap();
    let image_one = p
        .import(&one, Some(&reference("gc/one")), progress())
        .await
        .unwrap()
        .remove(0);
    p.import(&two, Some(&reference("gc/two")), progress())
        .await
        .unwrap();

    // Collection without a size limit removes only what nothing references.
    assert!(gc::collect(p.store(), None).unwrap().images.is_empty());
    assert_eq!(p.store().images().unwrap().len(), 2);

    // One in use by a container; a limit of zero removes the other only.
    let rootfs = dir.path().join("rootfs-c1");
    p.provision("c1", &image_one, &rootfs, &dir.path().join("scratch-c1"))
        .unwrap();
    let report = gc::collect(p.store(), Some(0)).unwrap();
    assert_eq!(report.images, vec!["docker.io/gc/two:latest".to_owned()]);
    assert_eq!(report.layers, 1);
    let left = entries(&store, "layers/sha256");
    assert!(left.contains(&hex(&layers_one[2])) && !left.contains(&hex(&layers_two[2])));
    assert!(rootfs.join("etc/layer3").exists());

    // Released, it goes too, and the store is empty.
    p.release("c1").unwrap();
    assert!(!rootfs.exists());
    let report = gc::collect(p.store(), Some(0)).unwrap();
    assert_eq!(report.images, vec!["docker.io/gc/one:latest".to_owned()]);
    assert!(entries(&store, "layers/sha256").is_empty());
    assert!(entries(&store, "blobs/sha256").is_empty());
}

#[tokio::test]
async fn imports_layouts_and_oci_and_docker_archives_and_refuses_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let one = layout(dir.path(), "one", "one", 0, false);
    let (manifest, layers) = layout_digests(&one);
    let store = dir.path().join("store");
    let p = provisioner(&store, RegistryOptions::default());

    let from_layout = p.import(&one, None, progress()).await.unwrap().remove(0);
    assert_eq!(from_layout.record.reference, "docker.io/library/one:latest");
    assert_eq!(from_layout.record.manifest.to_string(), manifest);

    let oci_archive = dir.path().join("busybox-oci.tar");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        &format!("oci:{}:latest", one.display()),
        &format!("oci-archive:{}:latest", oci_archive.display()),
    ]));
    let from_oci = p
        .import(&oci_archive, Some(&reference("archives/oci:1")), progress())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(from_oci.record.manifest.to_string(), manifest);

    let docker_archive = dir.path().join("busybox-docker.tar");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        &format!("oci:{}:latest", one.display()),
        &format!(
            "docker-archive:{}:archives/docker:1",
            docker_archive.display()
        ),
    ]));
    let from_docker = p
        .import(&docker_archive, None, progress())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(from_docker.record.reference, "docker.io/archives/docker:1");
    assert_eq!(from_docker.record.layers.len(), 3);
    assert_eq!(
        from_docker
            .config
            .config()
            .as_ref()
            .unwrap()
            .working_dir()
            .as_deref(),
        Some("/etc")
    );
    // The same layer content, uncompressed, unpacks to the same files.
    let top = store
        .join("layers/sha256")
        .join(from_docker.record.layers[2].digest.hex());
    assert_eq!(
        std::fs::read_to_string(top.join("etc/layer3")).unwrap(),
        "three one\n"
    );
    assert_eq!(entries(&store, "layers/sha256").len(), 6);
    assert!(entries(&store, "tmp").is_empty());

    // A layout whose layer was altered is refused, naming the layer.
    let tampered = dir.path().join("tampered");
    run(Command::new("cp").arg("-a").arg(&one).arg(&tampered));
    let file = tampered.join("blobs/sha256").join(hex(&layers[2]));
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::File::create(&file)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    let fresh = provisioner(&dir.path().join("store2"), RegistryOptions::default());
    let e = fresh
        .import(&tampered, None, progress())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&layers[2]), "{e}");
    assert!(fresh.store().images().unwrap().is_empty());
}

#[tokio::test]
async fn docker_registry_names_the_default_registry_or_a_directory_of_archives() {
    let dir = tempfile::tempdir().unwrap();
    let one = layout(dir.path(), "one", "one", 0, false);
    let (manifest, _) = layout_digests(&one);

    // A registry URL: a name without a registry is pulled from it, with
    // no library/ (that is Docker Hub's only).
    let registry = Registry::start(dir.path(), None);
    registry.push(&one, "plain:1", None);
    let mut config = ProvisionerConfig::new(dir.path().join("store-registry"));
    config.source = ImageSource::parse(&format!("http://{}", registry.host())).unwrap();
    config.registry = RegistryOptions {
        insecure: vec![registry.host()],
        ..RegistryOptions::default()
    };
    let p = Provisioner::new(config).unwrap();
    let pulled = p
        .provision_named("plain:1", true, progress())
        .await
        .unwrap();
    assert_eq!(
        pulled.record.reference,
        format!("{}/plain:1", registry.host())
    );
    assert_eq!(pulled.record.manifest.to_string(), manifest);

    // A directory: NAME.tar as the task names it, imported under the
    // name, then found in the store.
    let archives = dir.path().join("archives");
    std::fs::create_dir_all(archives.join("team")).unwrap();
    let made = dir.path().join("made.tar");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        &format!("oci:{}:latest", one.display()),
        &format!("docker-archive:{}:team/app:2", made.display()),
    ]));
    std::fs::rename(&made, archives.join("team/app:2.tar")).unwrap();
    let mut config = ProvisionerConfig::new(dir.path().join("store-archives"));
    config.source = ImageSource::parse(archives.to_str().unwrap()).unwrap();
    let p = Provisioner::new(config).unwrap();
    let imported = p
        .provision_named("team/app:2", true, progress())
        .await
        .unwrap();
    assert_eq!(imported.record.reference, "docker.io/team/app:2");
    assert_eq!(imported.record.layers.len(), 3);
    // A name may not lead out of the directory: an archive beside it
    // is not imported.
    std::fs::rename(
        archives.join("team/app:2.tar"),
        dir.path().join("canary.tar"),
    )
    .unwrap();
    let e = p
        .provision_named("../canary", true, progress())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("must stay inside"), "{e}");
    assert_eq!(p.store().images().unwrap().len(), 1);
    let again = p
        .provision_named("team/app:2", true, progress())
        .await
        .unwrap();
    assert_eq!(again.record.manifest, imported.record.manifest);
    // cached: false goes to the archive again, which is gone now.
    let e = p
        .provision_named("team/app:2", false, progress())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no archive of it at") && e.contains("team/app:2.tar"),
        "{e}"
    );
}

#[tokio::test]
async fn bearer_tokens_are_fetched_from_the_challenge_realm() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path(), None);
    let image = layout(dir.path(), "one", "one", 0, false);
    registry.push(&image, "tokened:latest", None);
    let scopes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let front = token_front(registry.port, "tepui:t0k3n", scopes.clone()).await;
    let host = format!("127.0.0.1:{front}");
    let name = reference(&format!("{host}/tokened:latest"));
    let store = dir.path().join("store");

    let mut credentials = CredentialStore::default();
    credentials.insert(
        &host,
        Credentials {
            username: "tepui".into(),
            password: "t0k3n".into(),
        },
    );
    let p = provisioner(
        &store,
        RegistryOptions {
            credentials,
            ..options(&host)
        },
    );
    p.pull(&name, progress()).await.unwrap();
    assert_eq!(
        scopes.lock().unwrap().first().map(String::as_str),
        Some("repository:tokened:pull")
    );
    let anonymous = provisioner(&dir.path().join("store2"), options(&host));
    let e = anonymous
        .pull(&name, progress())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("token from") && e.contains("give credentials"),
        "{e}"
    );
}

/// A registry front that demands a bearer token, served at /token for the
/// right basic credentials, then passes requests to `upstream`.
async fn token_front(
    upstream: u16,
    basic: &str,
    scopes: Arc<std::sync::Mutex<Vec<String>>>,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = format!("Basic {}", base64_encode(basic));
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (expected, scopes) = (expected.clone(), scopes.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default()
                };
                let reply = |status: &str, extra: String, body: String| {
                    format!(
                        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                if let Some(query) = path.strip_prefix("/token?") {
                    if let Some(scope) = query.split('&').find_map(|p| p.strip_prefix("scope=")) {
                        scopes.lock().unwrap().push(scope.to_owned());
                    }
                    let answer = if header("authorization") == expected {
                        reply("200 OK", String::new(), r#"{"token":"sesame"}"#.into())
                    } else {
                        reply("401 Unauthorized", String::new(), "{}".into())
                    };
                    let _ = client.write_all(answer.as_bytes()).await;
                    return;
                }
                if header("authorization") != "Bearer sesame" {
                    let challenge = format!(
                        "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test\",scope=\"repository:tokened:pull\"\r\n"
                    );
                    let _ = client
                        .write_all(reply("401 Unauthorized", challenge, "{}".into()).as_bytes())
                        .await;
                    return;
                }
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let forwarded: String = head
                    .lines()
                    .filter(|l| {
                        let lower = l.to_ascii_lowercase();
                        !lower.starts_with("authorization:")
                            && !lower.starts_with("connection:")
                            && !l.is_empty()
                    })
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                let _ = server
                    .write_all(format!("{forwarded}Connection: close\r\n\r\n").as_bytes())
                    .await;
                let _ = tokio::io::copy(&mut server, &mut client).await;
            });
        }
    });
    port
}
