//! SigV4 presigning of the S3 requests the engine builds, from AWS
//! credentials (feature `sigv4`).
//!
//! The engine emits each S3 request with its unsigned URL (the object's,
//! with the action's query: `?uploads`, `?partNumber=N&uploadId=U`, …);
//! this signer turns it into a presigned URL right before it is sent, so a
//! retry after an expired signature is signed again. The signing is
//! rusty-s3's (`rusty_s3::signing::sign`, sans-IO, pure Rust): it presigns
//! any URL, not only the actions it models, which is what a URL the engine
//! already built needs. aws-sigv4 would do the same through the AWS SDK's
//! request types at several times the dependencies.
//!
//! Credentials come from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or a profile of the shared
//! credentials file (`AWS_PROFILE`, default `default`, in
//! `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`); the region from
//! `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile in `AWS_CONFIG_FILE` or
//! `~/.aws/config`, else `us-east-1`. Addressing is the URL's own: path
//! style (`http://HOST:PORT/BUCKET/KEY`, S3-compatible stores such as
//! SeaweedFS or MinIO) or virtual-host style (`https://BUCKET.s3.…/KEY`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str};
use url::Url;

use crate::Error;
use crate::hooks::{HookError, HookFuture, SignInput, Signed, Signer};

/// What SigV4 leaves unencoded in a path segment: letters, digits and
/// `-._~` (every other byte is `%XX`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How long a presigned URL stays valid. Each request is signed right
/// before it is sent; an hour covers a large part on a slow link.
const DEFAULT_EXPIRY: Duration = Duration::from_secs(3600);

/// Presigns S3 requests with AWS credentials.
#[derive(Clone)]
pub struct SigV4Signer {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    region: String,
    expiry: Duration,
}

impl fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Signer")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.is_some())
            .field("region", &self.region)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

fn config_error(message: String) -> Error {
    Error::Upload(chunkup_core::Error::InvalidConfig(message))
}

impl SigV4Signer {
    /// A signer with these credentials for `region`.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
        region: impl Into<String>,
    ) -> Self {
        SigV4Signer {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: session_token.filter(|t| !t.is_empty()),
            region: region.into(),
            expiry: DEFAULT_EXPIRY,
        }
    }

    /// Presigned URLs valid for `expiry` (1 s to 7 days; default 1 hour).
    pub fn with_expiry(mut self, expiry: Duration) -> Self {
        self.expiry = expiry.clamp(Duration::from_secs(1), Duration::from_secs(604_800));
        self
    }

    /// The region signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Credentials as the AWS CLI finds them: the environment, else the
    /// profile `AWS_PROFILE` (default `default`) of the shared credentials
    /// file.
    pub fn from_env() -> Result<Self, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
        let (key, secret, token) = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => (key, secret, var("AWS_SESSION_TOKEN")),
            _ => {
                let path = var("AWS_SHARED_CREDENTIALS_FILE")
                    .map(PathBuf::from)
                    .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")))
                    .ok_or_else(|| config_error("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials".into()))?;
                let sections = read_ini(&path)?;
                let section = sections.get(&profile).ok_or_else(|| {
                    config_error(format!(
                        "no AWS credentials: AWS_ACCESS_KEY_ID is not set and {} has no profile [{profile}]",
                        path.display()
                    ))
                })?;
                let field = |name: &str| section.get(name).cloned().filter(|v| !v.is_empty());
                match (field("aws_access_key_id"), field("aws_secret_access_key")) {
                    (Some(key), Some(secret)) => (key, secret, field("aws_session_token")),
                    _ => {
                        return Err(config_error(format!(
                            "the profile [{profile}] of {} has no aws_access_key_id and aws_secret_access_key",
                            path.display()
                        )));
                    }
                }
            }
        };
        let from_config = || {
            let path = var("AWS_CONFIG_FILE")
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws/config")))?;
            let sections = read_ini(&path).ok()?;
            let name = if profile == "default" {
                "default".to_string()
            } else {
                format!("profile {profile}")
            };
            sections.get(&name)?.get("region").cloned()
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .or_else(from_config)
            .unwrap_or_else(|| "us-east-1".to_string());
        Ok(SigV4Signer::new(key, secret, token, region))
    }

    /// The presigned form of `url` for `method`, signed at `now`.
    pub fn presign(
        &self,
        method: &str,
        url: &str,
        now: jiff::Timestamp,
    ) -> Result<String, HookError> {
        let method = match method {
            "GET" => rusty_s3::Method::Get,
            "HEAD" => rusty_s3::Method::Head,
            "POST" => rusty_s3::Method::Post,
            "PUT" => rusty_s3::Method::Put,
            "DELETE" => rusty_s3::Method::Delete,
            other => return Err(format!("S3 has no {other} requests to sign").into()),
        };
        let mut url = Url::parse(url)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("cannot sign {url}: not an http(s) URL with a host").into());
        }
        // Signed as S3 encodes it: each segment with only -._~ unencoded.
        let path: Vec<String> = url
            .path()
            .split('/')
            .map(|segment| {
                let raw = percent_decode_str(segment).collect::<Vec<u8>>();
                percent_encoding::percent_encode(&raw, SEGMENT).to_string()
            })
            .collect();
        url.set_path(&path.join("/"));
        let mut query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        query.sort();
        url.set_query(None);
        let signed = rusty_s3::signing::sign(
            &now,
            method,
            url,
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.as_deref(),
            &self.region,
            self.expiry.as_secs(),
            query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            std::iter::empty(),
        );
        Ok(signed.to_string())
    }
}

impl Signer for SigV4Signer {
    fn sign(&self, request: SignInput) -> HookFuture<'_, Result<Signed, HookError>> {
        let signed = self
            .presign(&request.method, &request.url, jiff::Timestamp::now())
            .map(|url| Signed {
                url,
                headers: Vec::new(),
            });
        Box::pin(std::future::ready(signed))
    }
}

/// The sections of an INI file as the AWS CLI writes them (`[name]`,
/// `key = value`, `#` and `;` comments).
fn read_ini(path: &Path) -> Result<HashMap<String, HashMap<String, String>>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Store {
        path: path.to_path_buf(),
        source,
    })?;
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_string(), value.trim().to_string());
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> SigV4Signer {
        SigV4Signer::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
            "us-east-1",
        )
        .with_expiry(Duration::from_secs(86400))
    }

    fn at_example_time() -> jiff::Timestamp {
        "2013-05-24T00:00:00Z".parse().expect("a timestamp")
    }

    #[test]
    fn the_aws_documentation_example_signs_alike() -> Result<(), HookError> {
        // AWS's SigV4 query-string example (GET examplebucket/test.txt).
        let signed = example().presign(
            "GET",
            "https://examplebucket.s3.amazonaws.com/test.txt",
            at_example_time(),
        )?;
        assert!(
            signed.ends_with(
                "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
            ),
            "{signed}"
        );
        Ok(())
    }

    #[test]
    fn the_engines_query_is_kept_and_signed_and_the_path_encoded_as_s3_does()
    -> Result<(), HookError> {
        let signed = example().presign(
            "PUT",
            "http://127.0.0.1:8333/uploads/a%20clip!.bin?uploadId=abc&partNumber=2",
            at_example_time(),
        )?;
        let url = Url::parse(&signed)?;
        assert_eq!(url.path(), "/uploads/a%20clip%21.bin");
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query.get("uploadId").map(String::as_str), Some("abc"));
        assert_eq!(query.get("partNumber").map(String::as_str), Some("2"));
        assert!(query.contains_key("X-Amz-Signature"));
        assert_eq!(
            query.get("X-Amz-Expires").map(String::as_str),
            Some("86400")
        );
        // Creation: `?uploads` with no value.
        let create = example().presign(
            "POST",
            "http://127.0.0.1:8333/b/k?uploads",
            at_example_time(),
        )?;
        assert!(create.contains("uploads="), "{create}");
        assert!(
            example()
                .presign("PATCH", "http://127.0.0.1/b/k", at_example_time())
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn profiles_are_read_from_the_shared_files() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Http(e.to_string()))?;
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n# a comment\n[work]\naws_access_key_id=K\naws_secret_access_key = S\naws_session_token = T\n",
        )
        .map_err(|e| Error::Http(e.to_string()))?;
        let sections = read_ini(&credentials)?;
        assert_eq!(sections["work"]["aws_session_token"], "T");
        assert_eq!(sections["default"]["aws_access_key_id"], "A");
        Ok(())
    }
}
