//! TLS for every tepui link, configured as libprocess configures Mesos:
//! the `LIBPROCESS_SSL_*` settings (or the daemons' matching flags), the
//! server side that wraps each accepted connection, and the client side
//! (a hyper connector) that verifies the server against the CA.
//!
//! Mesos's meanings: `ENABLED` makes every listener speak TLS only (a
//! plain-HTTP request gets no answer) and every client use `https`;
//! `CERT_FILE`/`KEY_FILE` are this process's certificate chain and key
//! (a server's, and a client's certificate where one is asked for);
//! `CA_FILE` holds the certificates peers are verified against;
//! `VERIFY_CERT` makes a server verify a client certificate when one is
//! presented; `REQUIRE_CERT` makes it refuse a client without a valid one.
//! tepui's clients always verify the server (against `CA_FILE`, else the
//! system's roots), whatever `VERIFY_CERT` says. `SUPPORT_DOWNGRADE`, the
//! other `LIBPROCESS_SSL_*` knobs and the legacy `SSL_*` names are not
//! implemented and are refused by name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The variables tepui reads, in Mesos's names.
pub const ENABLED: &str = "LIBPROCESS_SSL_ENABLED";
/// This process's certificate chain (PEM).
pub const CERT_FILE: &str = "LIBPROCESS_SSL_CERT_FILE";
/// This process's private key (PEM).
pub const KEY_FILE: &str = "LIBPROCESS_SSL_KEY_FILE";
/// The CA certificates peers are verified against (PEM).
pub const CA_FILE: &str = "LIBPROCESS_SSL_CA_FILE";
/// Verify a client certificate when one is presented.
pub const VERIFY_CERT: &str = "LIBPROCESS_SSL_VERIFY_CERT";
/// Refuse a client without a valid certificate.
pub const REQUIRE_CERT: &str = "LIBPROCESS_SSL_REQUIRE_CERT";
/// Accepting plain connections on a TLS port: refused unless false.
pub const SUPPORT_DOWNGRADE: &str = "LIBPROCESS_SSL_SUPPORT_DOWNGRADE";

const KNOWN: [&str; 7] = [
    ENABLED,
    CERT_FILE,
    KEY_FILE,
    CA_FILE,
    VERIFY_CERT,
    REQUIRE_CERT,
    SUPPORT_DOWNGRADE,
];

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A setting tepui does not implement was given.
    #[error("{name} is not supported by tepui{why}")]
    Unsupported {
        /// The variable or flag.
        name: String,
        /// What to do instead, if anything.
        why: &'static str,
    },
    /// A setting's value is not what it may be.
    #[error("{name}: {value:?} is not a boolean (true, false, 1 or 0)")]
    NotABoolean {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// TLS is enabled without a setting it needs.
    #[error("TLS is enabled ({ENABLED}) but {0} is not set")]
    Missing(&'static str),
    /// A certificate or key file could not be read.
    #[error("reading {path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// rustls refused the certificates or key.
    #[error("setting up TLS: {0}")]
    Config(String),
}

/// The TLS settings of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// TLS on every listener and client link.
    pub enabled: bool,
    /// This process's certificate chain.
    pub cert_file: Option<PathBuf>,
    /// This process's private key.
    pub key_file: Option<PathBuf>,
    /// The CA certificates peers are verified against.
    pub ca_file: Option<PathBuf>,
    /// A server verifies a client certificate when presented.
    pub verify_cert: bool,
    /// A server refuses a client without a valid certificate.
    pub require_cert: bool,
}

fn boolean(name: &'static str, value: &str) -> Result<bool, TlsError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(TlsError::NotABoolean {
            name,
            value: value.to_owned(),
        }),
    }
}

/// Refuses every `LIBPROCESS_SSL_*` (and legacy `SSL_ENABLED`) variable
/// of `vars` tepui does not implement, and a downgrade, by name.
pub fn refuse_unsupported<'a>(
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), TlsError> {
    for (name, value) in vars {
        if name == SUPPORT_DOWNGRADE {
            if boolean(SUPPORT_DOWNGRADE, value)? {
                return Err(TlsError::Unsupported {
                    name: name.to_owned(),
                    why: ": a TLS port never accepts plain HTTP",
                });
            }
        } else if name.starts_with("LIBPROCESS_SSL_") && !KNOWN.contains(&name) {
            return Err(TlsError::Unsupported {
                name: name.to_owned(),
                why: " (tepui reads LIBPROCESS_SSL_ENABLED, _CERT_FILE, _KEY_FILE, _CA_FILE, _VERIFY_CERT and _REQUIRE_CERT)",
            });
        } else if name == "SSL_ENABLED" {
            return Err(TlsError::Unsupported {
                name: name.to_owned(),
                why: ": use the LIBPROCESS_SSL_* names",
            });
        }
    }
    Ok(())
}

/// Refuses what [`refuse_unsupported`] refuses in this process's
/// environment.
pub fn refuse_unsupported_env() -> Result<(), TlsError> {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    refuse_unsupported(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

impl Settings {
    /// The settings in this process's environment.
    pub fn from_env() -> Result<Self, TlsError> {
        refuse_unsupported_env()?;
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings read through `get` (the environment, or a test's map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, TlsError> {
        let flag = |name: &'static str| match get(name) {
            Some(v) => boolean(name, &v),
            None => Ok(false),
        };
        let path = |name: &str| get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(v) = get(SUPPORT_DOWNGRADE) {
            refuse_unsupported([(SUPPORT_DOWNGRADE, v.as_str())])?;
        }
        Ok(Self {
            enabled: flag(ENABLED)?,
            cert_file: path(CERT_FILE),
            key_file: path(KEY_FILE),
            ca_file: path(CA_FILE),
            verify_cert: flag(VERIFY_CERT)?,
            require_cert: flag(REQUIRE_CERT)?,
        })
    }

    /// `https` when enabled, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.enabled { "https" } else { "http" }
    }

    /// The variables that give a child process (an executor) these
    /// settings, as a Mesos agent's executors inherit them; none when
    /// TLS is off.
    pub fn env(&self) -> Vec<(String, String)> {
        if !self.enabled {
            return Vec::new();
        }
        let mut out = vec![(ENABLED.to_owned(), "true".to_owned())];
        for (name, path) in [
            (CERT_FILE, &self.cert_file),
            (KEY_FILE, &self.key_file),
            (CA_FILE, &self.ca_file),
        ] {
            if let Some(path) = path {
                out.push((name.to_owned(), path.display().to_string()));
            }
        }
        out.push((VERIFY_CERT.to_owned(), self.verify_cert.to_string()));
        out.push((REQUIRE_CERT.to_owned(), self.require_cert.to_string()));
        out
    }

    fn identity(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Ok(Some((certificates(cert)?, private_key(key)?))),
            (Some(_), None) => Err(TlsError::Missing(KEY_FILE)),
            (None, Some(_)) => Err(TlsError::Missing(CERT_FILE)),
            (None, None) => Ok(None),
        }
    }

    /// The server side, when enabled: this process's certificate, and
    /// client certificates verified against the CA when asked to.
    pub fn server(&self) -> Result<Option<Server>, TlsError> {
        if !self.enabled {
            return Ok(None);
        }
        let Some((chain, key)) = self.identity()? else {
            return Err(TlsError::Missing(CERT_FILE));
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.require_cert || self.verify_cert {
            let ca = self.ca_file.as_ref().ok_or(TlsError::Missing(CA_FILE))?;
            let roots = Arc::new(roots(ca)?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if self.require_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?,
            )
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Server {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }))
    }

    /// The client side: plain when disabled; else `https` only, the
    /// server verified against the CA (or the system's roots), this
    /// process's certificate presented when it has one.
    pub fn client(&self) -> Result<Client, TlsError> {
        if !self.enabled {
            return Ok(Client::plain());
        }
        let roots = match &self.ca_file {
            Some(ca) => roots(ca)?,
            None => {
                let mut store = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system certificate rustls cannot parse is skipped.
                    let _ = store.add(cert);
                }
                store
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let config = match self.identity()? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::Config(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Client {
            config: Some(Arc::new(config)),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::File {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            path: path.to_owned(),
            why: "no PEM certificate in it".into(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::File {
        path: path.to_owned(),
        why: format!("no PEM private key: {e}"),
    })
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).map_err(|e| TlsError::File {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    }
    Ok(store)
}

/// A listener's TLS side: wraps each accepted connection.
#[derive(Clone)]
pub struct Server {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tls::Server")
    }
}

impl Server {
    /// The handshake on an accepted connection; a peer that speaks no
    /// TLS (plain HTTP), or presents no valid certificate where one is
    /// required, fails it.
    pub async fn accept(
        &self,
        stream: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        self.acceptor.accept(stream).await
    }
}

/// The connector every tepui client uses: plain HTTP, or HTTPS only.
pub type Connector = HttpsConnector<HttpConnector>;

/// A client's TLS side: the scheme its URLs use and its connector.
#[derive(Clone)]
pub struct Client {
    config: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tls::Client")
            .field("enabled", &self.config.is_some())
            .finish()
    }
}

impl Client {
    /// Plain HTTP.
    pub fn plain() -> Self {
        Self { config: None }
    }

    /// As this process's `LIBPROCESS_SSL_*` environment says.
    pub fn from_env() -> Result<Self, TlsError> {
        Settings::from_env()?.client()
    }

    /// `https` when TLS is on, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.config.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// A connector for hyper's client: with TLS, `https` URLs only.
    pub fn connector(&self) -> Connector {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        match &self.config {
            Some(config) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((**config).clone())
                .https_only()
                .enable_http1()
                .wrap_connector(http),
            // Never used for a handshake: a plain client makes `http`
            // URLs only.
            None => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(unused_config())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
        }
    }
}

/// A client config with no roots, for the plain connector.
// ring's provider supports rustls's default protocol versions, so the
// builder cannot fail: this is no path input reaches.
#[allow(clippy::expect_used)]
fn unused_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn settings_read_mesos_booleans_and_paths() {
        let settings = Settings::from_lookup(lookup(&[
            (ENABLED, "1"),
            (CERT_FILE, "/c.pem"),
            (KEY_FILE, "/k.pem"),
            (REQUIRE_CERT, "true"),
        ]))
        .unwrap_or_default();
        assert!(settings.enabled && settings.require_cert && !settings.verify_cert);
        assert_eq!(settings.cert_file.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(settings.scheme(), "https");
        assert!(Settings::from_lookup(lookup(&[(ENABLED, "yes please")])).is_err());
    }

    #[test]
    fn downgrade_and_unknown_knobs_are_refused_by_name() {
        let refused = refuse_unsupported([(SUPPORT_DOWNGRADE, "true")]).map_err(|e| e.to_string());
        assert!(
            matches!(&refused, Err(m) if m.contains(SUPPORT_DOWNGRADE)),
            "{refused:?}"
        );
        assert!(refuse_unsupported([(SUPPORT_DOWNGRADE, "false")]).is_ok());
        let refused =
            refuse_unsupported([("LIBPROCESS_SSL_CA_DIR", "/etc/ssl")]).map_err(|e| e.to_string());
        assert!(
            matches!(&refused, Err(m) if m.contains("LIBPROCESS_SSL_CA_DIR")),
            "{refused:?}"
        );
        assert!(refuse_unsupported([("LIBPROCESS_IP", "1.2.3.4")]).is_ok());
    }

    #[test]
    fn enabled_without_a_certificate_is_refused() {
        let settings = Settings {
            enabled: true,
            ..Settings::default()
        };
        assert!(matches!(
            settings.server(),
            Err(TlsError::Missing(CERT_FILE))
        ));
        assert!(Settings::default().server().is_ok_and(|s| s.is_none()));
        assert_eq!(
            Settings::default().client().map(|c| c.scheme()).ok(),
            Some("http")
        );
    }
}
