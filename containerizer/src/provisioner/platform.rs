//! Choosing the manifest for this host from a multi-platform index.

use oci_spec::image::{Descriptor, ImageIndex};

/// The host's architecture in OCI's names (GOARCH).
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The linux manifest for `architecture` in `index`, or a list of what it
/// offers instead.
pub(crate) fn choose<'a>(
    index: &'a ImageIndex,
    architecture: &str,
) -> Result<&'a Descriptor, String> {
    let matches = |d: &&Descriptor| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == "linux" && p.architecture().to_string() == architecture
        })
    };
    if let Some(found) = index.manifests().iter().find(matches) {
        return Ok(found);
    }
    let offered: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| format!("{}/{}", p.os(), p.architecture()))
        .collect();
    Err(format!(
        "no manifest for linux/{architecture} in the index (it has: {})",
        if offered.is_empty() {
            "none with a platform".to_owned()
        } else {
            offered.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_host_platform_or_lists_the_offer() {
        let index: ImageIndex = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
               "digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",
               "platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
               "digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222",
               "platform":{"os":"linux","architecture":"amd64"}}]}"#,
        )
        .unwrap();
        assert!(
            choose(&index, "amd64")
                .unwrap()
                .digest()
                .to_string()
                .ends_with("2222")
        );
        assert!(
            choose(&index, "arm64")
                .unwrap()
                .digest()
                .to_string()
                .ends_with("1111")
        );
        let e = choose(&index, "s390x").unwrap_err();
        assert!(e.contains("linux/arm64, linux/amd64"), "{e}");
    }
}
