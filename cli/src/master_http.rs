//! HTTP GETs and POSTs to a master or agent for the CLI's commands,
//! with the invocation's credential (`--principal`/`--secret`,
//! `--credential`, or a local cluster's for this machine) as HTTP Basic when
//! it has one, over TLS when libprocess's LIBPROCESS_SSL_*
//! variables say so (the server verified against LIBPROCESS_SSL_CA_FILE).

use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::AUTHORIZATION;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use tepui_proto::authentication::Credential;

static CREDENTIAL: OnceLock<Credential> = OnceLock::new();
static LOCAL_CREDENTIAL: OnceLock<Option<Credential>> = OnceLock::new();

/// Sets the credential every request of this invocation carries (once,
/// at start).
pub fn set_credential(credential: Credential) {
    let _ = CREDENTIAL.set(credential);
}

/// The default local cluster's client credential (`tepui local`'s
/// secrets/client.json), read when a request first needs it, if this
/// user can read it.
fn local_credential() -> Option<&'static Credential> {
    LOCAL_CREDENTIAL
        .get_or_init(|| {
            tepui_proto::authentication::read_credential(&crate::local_secrets::default_client())
                .ok()
        })
        .as_ref()
}

/// The credential a request to `address` (HOST:PORT) carries: the one
/// given, else the local cluster's when `address` is this machine (a
/// master or agent elsewhere never sees it).
pub fn credential_for(address: &str) -> Option<&'static Credential> {
    CREDENTIAL
        .get()
        .or_else(|| local_credential().filter(|_| is_this_machine(address)))
}

/// Whether HOST:PORT (or [V6]:PORT) names this machine: loopback, or a
/// host whose every address is one of this machine's (an address can be
/// bound only where it is local). An agent's address as the master
/// gives it is its hostname.
fn is_this_machine(address: &str) -> bool {
    use std::net::{IpAddr, ToSocketAddrs, UdpSocket};
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = |ip: IpAddr| ip.is_loopback() || UdpSocket::bind((ip, 0)).is_ok();
    if host == "localhost" {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return local(ip);
    }
    match (host, 0).to_socket_addrs() {
        Ok(addresses) => {
            let ips: Vec<IpAddr> = addresses.map(|a| a.ip()).collect();
            !ips.is_empty() && ips.into_iter().all(local)
        }
        Err(_) => false,
    }
}

static TLS: OnceLock<tepui_proto::tls::Client> = OnceLock::new();

/// The invocation's TLS side, read once from LIBPROCESS_SSL_*.
pub fn tls() -> Result<tepui_proto::tls::Client> {
    if let Some(tls) = TLS.get() {
        return Ok(tls.clone());
    }
    let tls = tepui_proto::tls::Client::from_env().context("TLS (LIBPROCESS_SSL_*)")?;
    Ok(TLS.get_or_init(|| tls).clone())
}

/// The body of `GET {http,https}://{address}{path}` (2xx only).
pub async fn get(address: &str, path: &str) -> Result<Bytes> {
    request(address, path, None).await
}

/// The body of `POST {http,https}://{address}{path}` (2xx only).
pub async fn post(address: &str, path: &str, body: Bytes) -> Result<Bytes> {
    request(address, path, Some(body)).await
}

async fn request(address: &str, path: &str, body: Option<Bytes>) -> Result<Bytes> {
    let tls = tls()?;
    let uri: Uri = format!("{}://{address}{path}", tls.scheme())
        .parse()
        .with_context(|| format!("bad address {address}"))?;
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(tls.connector());
    let mut builder = match &body {
        Some(_) => Request::post(uri.clone()),
        None => Request::get(uri.clone()),
    };
    if let Some(credential) = credential_for(address) {
        builder = builder.header(AUTHORIZATION, credential.basic_header());
    }
    let request = builder.body(Full::new(body.unwrap_or_default()))?;
    let response = client
        .request(request)
        .await
        .with_context(|| format!("reaching {uri}"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading {uri}"))?
        .to_bytes();
    if !status.is_success() {
        bail!(
            "{uri}: {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        );
    }
    Ok(bytes)
}

/// A JSON document from `GET`.
pub async fn get_json(address: &str, path: &str) -> Result<serde_json::Value> {
    let bytes = get(address, path).await?;
    serde_json::from_slice(&bytes).with_context(|| format!("{path} is not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machines_addresses_get_the_local_credential() {
        for yes in [
            "127.0.0.1:5050",
            "127.1.2.3:1",
            "localhost:5050",
            "[::1]:5050",
        ] {
            assert!(is_this_machine(yes), "{yes}");
        }
        // This machine's own name, as the master reports its agents.
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert!(is_this_machine(&format!("{}:5051", name.trim())), "{name}");
        // Documentation addresses (RFC 5737, 3849) and names that do not
        // resolve.
        for no in [
            "192.0.2.1:5050",
            "[2001:db8::1]:5050",
            "master.invalid:5050",
            "127.0.0.1.invalid:5050",
        ] {
            assert!(!is_this_machine(no), "{no}");
        }
    }
}
