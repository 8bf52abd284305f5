//! Layer extraction against a corpus of hostile layers built here: each is
//! refused with an error naming layer and entry, and nothing is written
//! outside the target (a canary directory beside it is checked after each).
//! Needs root (device nodes, trusted.* xattrs, chown).

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use tepui_containerizer::provisioner::extract::{ExtractError, Options, Refusal, extract};

/// A raw ustar writer: unlike a careful library it writes any name,
/// which is the point.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn header(
        name: &str,
        kind: u8,
        link: &str,
        size: u64,
        mode: u32,
        dev: (u32, u32),
    ) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |field: &mut [u8], value: u64| {
            let text = format!("{:0width$o}\0", value, width = field.len() - 1);
            field.copy_from_slice(text.as_bytes());
        };
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        // Size in base-256 so that sizes past 8 GiB fit.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
        octal(&mut h[136..148], 0);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], u64::from(dev.0));
        octal(&mut h[337..345], u64::from(dev.1));
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn add(mut self, name: &str, kind: u8, link: &str, data: &[u8], mode: u32) -> Self {
        self.0.extend_from_slice(&Self::header(
            name,
            kind,
            link,
            data.len() as u64,
            mode,
            (0, 0),
        ));
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(self, name: &str, data: &str) -> Self {
        self.add(name, b'0', "", data.as_bytes(), 0o644)
    }
    fn dir(self, name: &str) -> Self {
        self.add(name, b'5', "", b"", 0o755)
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.add(name, b'2', target, b"", 0o777)
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.add(name, b'1', target, b"", 0o644)
    }
    /// A PAX extended header for the next entry.
    fn pax(self, records: &[(&str, &str)]) -> Self {
        let mut data = String::new();
        for (key, value) in records {
            let body = format!(" {key}={value}\n");
            let mut len = body.len() + 1;
            while format!("{len}{body}").len() != len {
                len += 1;
            }
            data.push_str(&format!("{len}{body}"));
        }
        self.add("PaxHeader", b'x', "", data.as_bytes(), 0o644)
    }
    fn bytes(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

/// A target and, beside it, a canary directory no layer may touch.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("canary")).unwrap();
        std::fs::write(dir.path().join("canary/secret"), "untouched\n").unwrap();
        Self { dir }
    }
    fn target(&self) -> std::path::PathBuf {
        self.dir.path().join("layer")
    }
    fn canary(&self) -> String {
        self.dir.path().join("canary").to_str().unwrap().to_owned()
    }
    /// The canary holds exactly its one file, unchanged.
    fn assert_canary_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(self.canary())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["secret"], "the canary directory changed");
        let secret = Path::new(&self.canary()).join("secret");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "untouched\n");
        assert_eq!(
            std::fs::metadata(&secret).unwrap().nlink(),
            1,
            "hardlinked from outside"
        );
    }
}

fn refuse(place: &Place, layer: Vec<u8>, options: &Options) -> ExtractError {
    let e = extract("sha256:hostile", layer.as_slice(), &place.target(), options).unwrap_err();
    place.assert_canary_untouched();
    e
}

/// Builds a layer that may point at the place's canary.
type LayerOf = Box<dyn Fn(&Place) -> Vec<u8>>;

#[test]
fn refuses_every_hostile_layer_and_writes_nothing_outside() {
    let options = Options::default();
    let cases: Vec<(&str, LayerOf, &str)> = vec![
        (
            "dot-dot",
            Box::new(|_| Tar::default().file("../../etc/x", "owned").bytes()),
            "entry ../../etc/x: refused: a '..' component leaves the layer",
        ),
        (
            "absolute",
            Box::new(|_| Tar::default().file("/abs/path", "owned").bytes()),
            "entry /abs/path: refused: an absolute path",
        ),
        (
            "through an absolute symlink",
            Box::new(|p: &Place| {
                Tar::default()
                    .symlink("a", &p.canary())
                    .file("a/passwd", "owned")
                    .bytes()
            }),
            "entry a/passwd: refused: the path leads out of the layer through a symlink",
        ),
        (
            "through /etc",
            Box::new(|_| {
                Tar::default()
                    .symlink("etc", "/etc")
                    .file("etc/tepui-owned", "owned")
                    .bytes()
            }),
            "entry etc/tepui-owned: refused: the path leads out of the layer through a symlink",
        ),
        (
            "through a relative symlink",
            Box::new(|_| {
                Tar::default()
                    .symlink("up", "../canary")
                    .file("up/secret", "owned")
                    .bytes()
            }),
            "entry up/secret: refused: the path leads out of the layer through a symlink",
        ),
        (
            "hardlink to /etc/shadow",
            Box::new(|_| Tar::default().hardlink("h", "/etc/shadow").bytes()),
            "entry h: refused: an absolute path",
        ),
        (
            "hardlink up and out",
            Box::new(|_| Tar::default().hardlink("h", "../canary/secret").bytes()),
            "entry h: refused: a '..' component leaves the layer",
        ),
        (
            "hardlink through a symlink",
            Box::new(|p: &Place| {
                Tar::default()
                    .symlink("s", &p.canary())
                    .hardlink("h", "s/secret")
                    .bytes()
            }),
            "entry h: refused: the path leads out of the layer through a symlink",
        ),
        (
            "whiteout up and out",
            Box::new(|_| Tar::default().file("../.wh.canary", "").bytes()),
            "entry ../.wh.canary: refused: a '..' component leaves the layer",
        ),
        (
            "whiteout through a symlink",
            Box::new(|p: &Place| {
                Tar::default()
                    .symlink("a", &p.canary())
                    .file("a/.wh.secret", "")
                    .bytes()
            }),
            "entry a/.wh.secret: refused: the path leads out of the layer through a symlink",
        ),
        (
            "an xattr of overlayfs's own",
            Box::new(|_| {
                Tar::default()
                    .pax(&[("SCHILY.xattr.trusted.overlay.redirect", "/canary")])
                    .dir("d/")
                    .bytes()
            }),
            "entry d/: refused: xattr trusted.overlay.redirect: this namespace is not unpacked from layers",
        ),
        (
            "an xattr of no namespace unpacked",
            Box::new(|_| {
                Tar::default()
                    .pax(&[("SCHILY.xattr.system.nfs4_acl", "x")])
                    .file("f", "x")
                    .bytes()
            }),
            "entry f: refused: xattr system.nfs4_acl: this namespace is not unpacked from layers",
        ),
        (
            "PAX sparse 0.0",
            Box::new(|_| {
                Tar::default()
                    .pax(&[
                        ("GNU.sparse.size", "10"),
                        ("GNU.sparse.numblocks", "1"),
                        ("GNU.sparse.offset", "0"),
                        ("GNU.sparse.numbytes", "1"),
                    ])
                    .file("f", "x")
                    .bytes()
            }),
            "entry f: refused: a sparse file in a PAX sparse format other than GNU 0.1 or 1.0",
        ),
        (
            "a PAX sparse run past the file's size",
            Box::new(|_| {
                Tar::default()
                    .pax(&[
                        ("GNU.sparse.name", "f"),
                        ("GNU.sparse.size", "10"),
                        ("GNU.sparse.map", "0,100"),
                    ])
                    .file("placeholder", "x")
                    .bytes()
            }),
            "entry f: corrupt archive: sparse runs out of order or past the size",
        ),
        (
            "a PAX sparse name up and out",
            Box::new(|_| {
                Tar::default()
                    .pax(&[
                        ("GNU.sparse.major", "1"),
                        ("GNU.sparse.minor", "0"),
                        ("GNU.sparse.name", "../canary/secret"),
                        ("GNU.sparse.realsize", "1"),
                    ])
                    .file("placeholder", "x")
                    .bytes()
            }),
            "entry ../canary/secret: refused: a '..' component leaves the layer",
        ),
    ];
    for (what, layer, want) in cases {
        let place = Place::new();
        let e = refuse(&place, layer(&place), &options);
        assert_eq!(
            e.to_string(),
            format!("layer sha256:hostile: {want}"),
            "{what}"
        );
    }
    assert!(!Path::new("/etc/tepui-owned").exists());
}

/// A gzip stream of a tar whose one file claims 10 GiB of zeros, made
/// lazily: the test costs only what the extractor reads before refusing.
fn gzip_bomb() -> impl Read {
    let header = Tar::header("bomb", b'0', "", 10 << 30, 0o644, (0, 0));
    let tar = std::io::Cursor::new(header.to_vec()).chain(std::io::repeat(0).take(10 << 30));
    flate2::read::GzEncoder::new(tar, flate2::Compression::fast())
}

#[test]
fn caps_a_ten_gigabyte_gzip_bomb() {
    let place = Place::new();
    let options = Options {
        max_bytes: 64 << 20,
        ..Options::default()
    };
    let e = extract("sha256:bomb", gzip_bomb(), &place.target(), &options).unwrap_err();
    assert!(matches!(e.refusal, Refusal::TooLarge(_)), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "layer sha256:bomb: entry bomb: refused: the layer writes more than {} bytes",
            64u64 << 20
        )
    );
    let written = std::fs::metadata(place.target().join("bomb")).map_or(0, |m| m.len());
    assert!(written <= 64 << 20, "wrote {written} bytes");
    place.assert_canary_untouched();
}

#[test]
fn caps_the_number_of_entries() {
    let place = Place::new();
    let layer = Tar::default()
        .file("a", "")
        .file("b", "")
        .file("c", "")
        .file("d", "")
        .bytes();
    let options = Options {
        max_entries: 3,
        ..Options::default()
    };
    let e = refuse(&place, layer, &options);
    assert_eq!(
        e.to_string(),
        "layer sha256:hostile: entry d: refused: the layer holds more than 3 entries"
    );
}

fn ordinary_layer() -> Vec<u8> {
    let mut tar = Tar::default()
        .dir("etc/")
        .file("etc/hosts", "127.0.0.1 localhost\n")
        .symlink("etc/link", "hosts")
        .hardlink("etc/hard", "etc/hosts")
        .add("bin/su", b'0', "", b"#!/bin/sh\n", 0o4755)
        .dir("lib/")
        .symlink("lib/up", "../etc")
        .file("lib/up/via-inner-link", "fine\n");
    tar.0
        .extend_from_slice(&Tar::header("dev/null2", b'3', "", 0, 0o666, (1, 3)));
    tar.bytes()
}

fn assert_ordinary(dir: &Path) {
    assert_eq!(
        std::fs::read_to_string(dir.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    assert_eq!(
        std::fs::read_link(dir.join("etc/link")).unwrap(),
        Path::new("hosts")
    );
    let hosts = std::fs::metadata(dir.join("etc/hosts")).unwrap();
    assert_eq!(
        std::fs::metadata(dir.join("etc/hard")).unwrap().ino(),
        hosts.ino()
    );
    assert_eq!(hosts.permissions().mode() & 0o7777, 0o644);
    // setuid is dropped unless allowed.
    assert_eq!(
        std::fs::metadata(dir.join("bin/su"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    // A symlink that stays inside the layer is followed.
    assert_eq!(
        std::fs::read_to_string(dir.join("etc/via-inner-link")).unwrap(),
        "fine\n"
    );
    // Device nodes are skipped unless allowed.
    assert!(!dir.join("dev/null2").exists());
}

#[test]
fn unpacks_plain_gzip_and_zstd_layers_alike() {
    let tar = ordinary_layer();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = ruzstd::encoding::compress_to_vec(
        tar.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    for (what, bytes) in [("tar", tar.clone()), ("gzip", gz), ("zstd", zst)] {
        let place = Place::new();
        let summary = extract(
            "sha256:ok",
            bytes.as_slice(),
            &place.target(),
            &Options::default(),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(summary.skipped_devices, 1, "{what}");
        assert_ordinary(&place.target());
        place.assert_canary_untouched();
    }
}

#[test]
fn whiteouts_become_overlayfs_whiteouts_and_devices_pass_when_allowed() {
    let place = Place::new();
    let mut tar = Tar::default()
        .dir("d/")
        .file("d/.wh.gone", "")
        .dir("o/")
        .file("o/.wh..wh..opq", "")
        .add("bin/su", b'0', "", b"x", 0o4755);
    tar.0
        .extend_from_slice(&Tar::header("dev/null2", b'3', "", 0, 0o666, (1, 3)));
    let options = Options {
        allow_devices: true,
        allow_setuid: true,
        ..Options::default()
    };
    let summary = extract(
        "sha256:wh",
        tar.bytes().as_slice(),
        &place.target(),
        &options,
    )
    .unwrap();
    assert_eq!(summary.whiteouts, 2);
    let gone = std::fs::symlink_metadata(place.target().join("d/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0, "a whiteout is the 0:0 character device");
    let mut value = [0u8; 4];
    let path = std::ffi::CString::new(place.target().join("o").to_str().unwrap()).unwrap();
    // SAFETY: getxattr into a live buffer.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    assert_eq!(&value[..n.max(0) as usize], b"y", "opaque directory marker");
    let null2 = std::fs::symlink_metadata(place.target().join("dev/null2")).unwrap();
    assert!(null2.file_type().is_char_device());
    assert_eq!(null2.rdev(), libc::makedev(1, 3));
    assert_eq!(
        std::fs::metadata(place.target().join("bin/su"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
}

#[test]
fn gnu_sparse_files_keep_their_holes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let file = std::fs::File::create(src.join("holey")).unwrap();
    file.set_len(32 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"in the middle", 16 << 20).unwrap();
    drop(file);
    let tar = dir.path().join("sparse.tar");
    let status = std::process::Command::new("tar")
        .args(["--format=gnu", "--sparse", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg("holey")
        .status()
        .unwrap();
    assert!(status.success());
    let place = Place::new();
    extract(
        "sha256:sparse",
        std::fs::File::open(&tar).unwrap(),
        &place.target(),
        &Options::default(),
    )
    .unwrap();
    let out = place.target().join("holey");
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), 32 << 20);
    let data = std::fs::read(&out).unwrap();
    assert_eq!(&data[16 << 20..(16 << 20) + 13], b"in the middle");
    assert!(data[..16 << 20].iter().all(|b| *b == 0));
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "holes were written as zeros: {} blocks",
        meta.blocks()
    );
}
