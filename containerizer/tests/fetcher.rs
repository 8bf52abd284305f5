//! The fetcher against a real HTTP server (python3's http.server on
//! 127.0.0.1, started by the test): downloads, copies, archives of every
//! kind unpacked, executables, output names, the cache, and refusals.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tepui_containerizer::fetcher::{FetchUri, Fetcher, FetcherConfig};
use tepui_containerizer::provisioner::http::Http;

struct Server {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path, log: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    child,
                    port,
                    log: log.to_owned(),
                };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("http.server did not start");
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    fn gets(&self, name: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"GET /{name} ")))
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uri(value: &str) -> FetchUri {
    FetchUri {
        value: value.into(),
        executable: false,
        extract: true,
        cache: false,
        output_file: None,
    }
}

fn sh(script: &str, dir: &Path) {
    assert!(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .status()
            .unwrap()
            .success(),
        "{script}"
    );
}

fn fetcher(dir: &Path) -> Fetcher {
    Fetcher::new(
        FetcherConfig {
            cache_dir: dir.join("cache"),
            cache_max_bytes: 1 << 20,
            max_bytes: 1 << 20,
        },
        Http::new(None).unwrap(),
    )
}

#[tokio::test]
async fn fetches_copies_unpacks_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(served.join("tree/sub")).unwrap();
    std::fs::write(served.join("tree/sub/a.txt"), "from an archive\n").unwrap();
    std::fs::write(served.join("tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
    sh(
        "tar czf bundle.tar.gz tree && tar cjf bundle.tar.bz2 tree && tar cJf bundle.txz tree && \
         python3 -c 'import zipfile; z = zipfile.ZipFile(\"bundle.zip\", \"w\"); z.write(\"tree/sub/a.txt\"); z.close()' && \
         gzip -k tool.sh",
        &served,
    );
    let server = Server::start(&served, &dir.path().join("http.log"));
    let f = fetcher(dir.path());

    for archive in [
        "bundle.tar.gz",
        "bundle.tar.bz2",
        "bundle.txz",
        "bundle.zip",
    ] {
        let sandbox = dir.path().join(format!("sandbox-{archive}"));
        std::fs::create_dir_all(&sandbox).unwrap();
        let file = f.fetch(&uri(&server.url(archive)), &sandbox).await.unwrap();
        assert!(file.exists(), "the archive is kept");
        assert_eq!(
            std::fs::read_to_string(sandbox.join("tree/sub/a.txt")).unwrap(),
            "from an archive\n",
            "{archive}"
        );
    }

    let sandbox = dir.path().join("sandbox");
    std::fs::create_dir_all(&sandbox).unwrap();
    // executable, with a name of its own
    let mut tool = uri(&server.url("tool.sh"));
    tool.executable = true;
    tool.output_file = Some("bin/tool".into());
    let file = f.fetch(&tool, &sandbox).await.unwrap();
    assert_eq!(file, sandbox.join("bin/tool"));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // a lone .gz is gunzipped beside itself
    f.fetch(&uri(&server.url("tool.sh.gz")), &sandbox)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(sandbox.join("tool.sh")).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
    // extract: false keeps an archive packed
    let mut packed = uri(&server.url("bundle.tar.gz"));
    packed.extract = false;
    f.fetch(&packed, &sandbox).await.unwrap();
    assert!(!sandbox.join("tree").exists());
    // file:// and absolute paths are copied
    let local = served.join("tool.sh");
    f.fetch(
        &uri(&format!("file://{}", local.display())),
        &dir.path().join("sandbox-file"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(dir.path().join("sandbox-file/tool.sh").exists());
    // cached: downloaded once, then served from the cache
    let mut cached = uri(&server.url("tool.sh"));
    cached.cache = true;
    for n in 0..3 {
        let target = dir.path().join(format!("sandbox-cache-{n}"));
        f.fetch(&cached, &target).await.unwrap();
        assert!(target.join("tool.sh").exists());
    }
    // tool.sh: once as bin/tool, once for the cache.
    assert_eq!(server.gets("tool.sh"), 2);
}

#[tokio::test]
async fn failures_name_the_uri_and_nothing_leaves_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    // A tar and a zip whose entries climb out of the sandbox.
    sh(
        "mkdir -p x && echo owned > x/evil && tar cf evil.tar --transform 's,^x/,../../,' x/evil && \
         python3 -c 'import zipfile; z = zipfile.ZipFile(\"evil.zip\", \"w\"); z.writestr(\"../../evil\", \"owned\"); z.close()'",
        &served,
    );
    let mut big = std::fs::File::create(served.join("big.bin")).unwrap();
    big.write_all(&vec![7u8; 2 << 20]).unwrap();
    let server = Server::start(&served, &dir.path().join("http.log"));
    let f = fetcher(dir.path());
    let sandbox = dir.path().join("a/b/sandbox");
    std::fs::create_dir_all(&sandbox).unwrap();

    for (name, why) in [
        ("missing.txt", "404"),
        ("evil.tar", "a '..' component leaves the layer"),
        ("evil.zip", "a '..' component leaves the layer"),
        ("big.bin", "larger than 1048576 bytes"),
    ] {
        let e = f
            .fetch(&uri(&server.url(name)), &sandbox)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("fetching {}", server.url(name))) && e.contains(why),
            "{e}"
        );
    }
    assert!(!dir.path().join("a/evil").exists() && !dir.path().join("evil").exists());
    let e = f
        .fetch(&uri("relative/path"), &sandbox)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("absolute paths"), "{e}");
    let e = f
        .fetch(&uri("http://127.0.0.1:9/x"), &sandbox)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fetching http://127.0.0.1:9/x") && e.to_lowercase().contains("connect"),
        "{e}"
    );
}
