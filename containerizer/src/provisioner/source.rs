//! Where an image a task names comes from: Mesos's `--docker_registry`.
//! Either a registry (by default Docker Hub) that images without a
//! registry in their name are pulled from, or a local directory of
//! `docker save` archives, one `NAME.tar` per image as the task names it
//! (Mesos's image tar puller). The name comes from a framework, so it is
//! checked to stay inside that directory.

use std::path::{Component, Path, PathBuf};

use super::reference::{BadReference, DOCKER_HUB, Reference, names_registry};

/// Mesos's default `--docker_registry`.
pub const MESOS_DEFAULT: &str = "https://registry-1.docker.io";

/// Where images come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ImageSource {
    /// Registries; a name without one is pulled from Docker Hub.
    #[default]
    DockerHub,
    /// A registry (HOST[:PORT]) for names without one.
    Registry {
        /// Its host and port.
        host: String,
        /// Reached over plain http.
        insecure: bool,
    },
    /// A directory of `docker save` archives.
    Archives(PathBuf),
}

/// A `--docker_registry` value tepui cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--docker_registry {value:?}: {why}")]
pub struct BadSource {
    /// The value given.
    pub value: String,
    /// What is wrong.
    pub why: &'static str,
}

impl ImageSource {
    /// Parses a `--docker_registry` value: `http[s]://HOST[:PORT][/]`, or
    /// an absolute path; `hdfs://` is refused by name.
    pub fn parse(value: &str) -> Result<Self, BadSource> {
        let bad = |why| BadSource {
            value: value.to_owned(),
            why,
        };
        if value.starts_with('/') {
            return Ok(Self::Archives(PathBuf::from(value)));
        }
        if value.starts_with("hdfs://") {
            return Err(bad(
                "archives on HDFS are not supported; give a local directory",
            ));
        }
        let (insecure, rest) = if let Some(rest) = value.strip_prefix("https://") {
            (false, rest)
        } else if let Some(rest) = value.strip_prefix("http://") {
            (true, rest)
        } else {
            return Err(bad(
                "give a registry URL (https://HOST[:PORT]) or an absolute path",
            ));
        };
        let host = rest.strip_suffix('/').unwrap_or(rest);
        if host.is_empty() || host.contains('/') {
            return Err(bad("a registry URL has no path: https://HOST[:PORT]"));
        }
        if host == "registry-1.docker.io" || host == "index.docker.io" || host == DOCKER_HUB {
            return Ok(Self::DockerHub);
        }
        Ok(Self::Registry {
            host: host.to_owned(),
            insecure,
        })
    }

    /// The reference `name` denotes here: a name without a registry gets
    /// the default one; `library/` is added for Docker Hub only, as Mesos
    /// does.
    pub fn reference(&self, name: &str) -> Result<Reference, BadReference> {
        match self {
            Self::Registry { host, .. } if !names_registry(name) => {
                format!("{host}/{name}").parse()
            }
            _ => name.parse(),
        }
    }

    /// The archive of `name` in a directory of archives: `DIR/NAME.tar`,
    /// with `name` kept inside `dir`.
    pub fn archive(dir: &Path, name: &str) -> Result<PathBuf, BadReference> {
        let relative = Path::new(name);
        let inside = !name.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(BadReference {
                reference: name.to_owned(),
                why: "an image name must stay inside the --docker_registry directory".into(),
            });
        }
        Ok(dir.join(format!("{name}.tar")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_values_parse_and_others_are_refused_by_name() {
        assert_eq!(
            ImageSource::parse(MESOS_DEFAULT),
            Ok(ImageSource::DockerHub)
        );
        assert_eq!(
            ImageSource::parse("http://127.0.0.1:5000/"),
            Ok(ImageSource::Registry {
                host: "127.0.0.1:5000".into(),
                insecure: true
            })
        );
        assert_eq!(
            ImageSource::parse("/srv/images"),
            Ok(ImageSource::Archives("/srv/images".into()))
        );
        for bad in [
            "hdfs://localhost:8020/archives/",
            "ftp://x",
            "registry:5000",
            "https://h/p",
        ] {
            let e = ImageSource::parse(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn names_without_a_registry_get_the_default_one() {
        let local = ImageSource::parse("https://reg.example:5000").unwrap();
        let r = local.reference("busybox").unwrap();
        assert_eq!(r.to_string(), "reg.example:5000/busybox:latest");
        let r = local.reference("quay.io/a/b:1").unwrap();
        assert_eq!(r.to_string(), "quay.io/a/b:1");
        let hub = ImageSource::DockerHub;
        assert_eq!(
            hub.reference("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn an_archive_name_stays_inside_its_directory() {
        let dir = Path::new("/srv/images");
        assert_eq!(
            ImageSource::archive(dir, "busybox:1.36").unwrap(),
            Path::new("/srv/images/busybox:1.36.tar")
        );
        assert_eq!(
            ImageSource::archive(dir, "team/app").unwrap(),
            Path::new("/srv/images/team/app.tar")
        );
        for bad in ["../etc/x", "/etc/x", "a/../../b", "", "./a"] {
            assert!(ImageSource::archive(dir, bad).is_err(), "{bad}");
        }
    }
}
