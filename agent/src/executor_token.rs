//! Executor authentication tokens as Mesos's agent makes them: a JWT
//! signed with HS256 under the agent's `--jwt_secret_key`, whose claims
//! `fid`, `eid` and `cid` name the executor's framework, executor and
//! container. The agent gives each executor its own in
//! `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`; the executor API checks it as
//! `Authorization: Bearer`.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::header::{AUTHORIZATION, HeaderMap};
use ring::hmac;
use serde_json::{Value, json};

/// The variable the token is given in.
pub const TOKEN_VARIABLE: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// A key that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("executor secret key {path}: {why}")]
pub struct KeyError {
    /// The file.
    pub path: std::path::PathBuf,
    /// What is wrong.
    pub why: String,
}

/// Why a token does not authenticate (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    /// No `Authorization: Bearer` header.
    #[error("authentication required (Authorization: Bearer)")]
    Missing,
    /// Not a JWT signed with HS256 by this agent's key.
    #[error("invalid executor token")]
    Invalid,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The framework id.
    pub fid: String,
    /// The executor id.
    pub eid: String,
    /// The container id.
    pub cid: String,
}

/// The agent's HS256 key.
pub struct TokenKey(hmac::Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    /// A key of these bytes.
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// Reads the key file (its bytes, as Mesos reads it); an empty one is
    /// refused.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let fail = |why: String| KeyError {
            path: path.to_owned(),
            why,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        if bytes.is_empty() {
            return Err(fail("it is empty".into()));
        }
        Ok(Self::new(&bytes))
    }

    /// The token of one executor run.
    pub fn issue(&self, fid: &str, eid: &str, cid: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
        let payload =
            URL_SAFE_NO_PAD.encode(json!({"fid": fid, "eid": eid, "cid": cid}).to_string());
        let signed = format!("{header}.{payload}");
        let tag = hmac::sign(&self.0, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of a token this key signed.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenRefused> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenRefused::Invalid);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenRefused::Invalid)?;
        let signed_len = header.len() + 1 + payload.len();
        // Constant time, by ring.
        hmac::verify(&self.0, &token.as_bytes()[..signed_len], &signature)
            .map_err(|_| TokenRefused::Invalid)?;
        let decode = |part: &str| -> Result<Value, TokenRefused> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenRefused::Invalid)?;
            serde_json::from_slice(&bytes).map_err(|_| TokenRefused::Invalid)
        };
        if decode(header)?["alg"] != "HS256" {
            return Err(TokenRefused::Invalid);
        }
        let claims = decode(payload)?;
        let claim = |name: &str| {
            claims[name]
                .as_str()
                .map(str::to_owned)
                .ok_or(TokenRefused::Invalid)
        };
        Ok(Claims {
            fid: claim("fid")?,
            eid: claim("eid")?,
            cid: claim("cid")?,
        })
    }

    /// The claims of a request's `Authorization: Bearer` token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, TokenRefused> {
        let value = headers
            .get(AUTHORIZATION)
            .ok_or(TokenRefused::Missing)?
            .to_str()
            .map_err(|_| TokenRefused::Invalid)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(TokenRefused::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenRefused::Missing);
        }
        self.verify(token.trim())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_token_verifies_under_its_key_only_and_says_its_executor() {
        let key = TokenKey::new(b"k1");
        let token = key.issue("f1", "e1", "c1");
        assert_eq!(
            key.verify(&token),
            Ok(Claims {
                fid: "f1".into(),
                eid: "e1".into(),
                cid: "c1".into()
            })
        );
        assert_eq!(
            TokenKey::new(b"k2").verify(&token),
            Err(TokenRefused::Invalid)
        );
        // Claims swapped under the old signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"fid":"f1","eid":"e2","cid":"c1"}"#);
        parts[1] = &forged;
        assert_eq!(key.verify(&parts.join(".")), Err(TokenRefused::Invalid));
        // alg none, unsigned.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"fid":"f1","eid":"e1","cid":"c1"}"#)
        );
        assert_eq!(key.verify(&none), Err(TokenRefused::Invalid));
        assert_eq!(key.verify("a.b"), Err(TokenRefused::Invalid));
    }
}
