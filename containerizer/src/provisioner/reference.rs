//! Image references as `docker pull` reads them:
//! `[REGISTRY_HOST[:PORT]/]REPOSITORY[:TAG|@DIGEST]`.

use std::fmt;
use std::str::FromStr;

use super::digest::Digest;

/// Docker Hub's name in references, and the host its API is served from.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference, normalized as Docker does (`busybox` is
/// `docker.io/library/busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host and optional port.
    pub registry: String,
    /// Repository path within the registry.
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Digest, which wins over the tag when both are given.
    pub digest: Option<Digest>,
}

/// A reference that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad image reference {reference:?}: {why}")]
pub struct BadReference {
    /// The string given.
    pub reference: String,
    /// What is wrong with it.
    pub why: String,
}

impl Reference {
    /// The host serving the registry API (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask the manifests endpoint for: the digest if known, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The same image named by `digest`, for recording what a tag resolved to.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }
}

/// Whether the part of a reference before its first '/' names a registry
/// (`HOST.DOMAIN`, `HOST:PORT` or `localhost`), as Docker reads it.
fn is_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// Whether `name` begins with a registry.
pub(crate) fn names_registry(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(first, _)| is_registry(first))
}

fn valid_repository(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        })
}

fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl FromStr for Reference {
    type Err = BadReference;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| BadReference {
            reference: s.to_owned(),
            why: why.to_owned(),
        };
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(d.parse::<Digest>().map_err(|e| bad(&e.to_string()))?),
            ),
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if is_registry(first) => (first.to_owned(), path),
            _ => (DOCKER_HUB.to_owned(), rest),
        };
        if !valid_host(&registry) {
            return Err(bad("the registry host has characters a host cannot"));
        }
        let (path, tag) = match path.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, Some(t.to_owned())),
            _ => (path, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(bad(
                "a tag is 1-128 of [A-Za-z0-9_.-], not starting with . or -",
            ));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if !valid_repository(&repository) {
            return Err(bad(
                "a repository is lowercase [a-z0-9] components joined by '/', with . _ - inside",
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn normalizes_as_docker_does() {
        assert_eq!(
            parse("busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(parse("busybox").api_host(), "registry-1.docker.io");
        assert_eq!(parse("user/app:1.2").to_string(), "docker.io/user/app:1.2");
        let local = parse("127.0.0.1:5000/busybox:latest");
        assert_eq!(local.registry, "127.0.0.1:5000");
        assert_eq!(local.repository, "busybox");
        assert_eq!(local.tag.as_deref(), Some("latest"));
        assert_eq!(parse("localhost/a/b").registry, "localhost");
        assert_eq!(parse("localhost:5000/a").manifest_reference(), "latest");
    }

    #[test]
    fn a_digest_wins_and_needs_no_tag() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = parse(&format!("reg.example:5000/x/y@{d}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), d);
        let both = parse(&format!("reg.example/x:1@{d}"));
        assert_eq!(both.manifest_reference(), d);
        assert_eq!(both.to_string(), format!("reg.example/x:1@{d}"));
    }

    #[test]
    fn bad_references_say_why() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:abc",
            "reg.example/x/../y",
            "bad host!/x",
        ] {
            let e = bad.parse::<Reference>().expect_err(bad);
            assert!(e.to_string().starts_with("bad image reference"), "{e}");
        }
    }
}
