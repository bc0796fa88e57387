//! `https://` through the native transport. The platform's trusted roots are
//! loaded when the first `https://` request is made, not when the client is
//! built: an `http://` upload never parses the CA bundle, and works on a
//! machine that has none.
//!
//! Which roots the platform trusts is read from `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` on Linux, so each test runs itself again in a child
//! process with those set (a test binary cannot change its own environment
//! safely). The server is the reference server behind a TLS-terminating
//! proxy on 127.0.0.1 with a test certificate (`fixtures/tls`, see its
//! README).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use chunkup::{Protocol, UploadOptions};
use chunkup_e2e::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Set in the child process: run the test's body instead of spawning.
const CHILD: &str = "CHUNKUP_E2E_TLS_CHILD";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls")
}

/// Runs the test `name` of this binary in a child process with the platform
/// roots replaced by `cert_file` (no certificate directory), and asserts it
/// ran and passed.
fn run_in_child(name: &str, cert_file: PathBuf) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let empty = tempfile::tempdir().expect("an empty certificate directory");
    let output = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("SSL_CERT_FILE", cert_file)
        .env("SSL_CERT_DIR", empty.path())
        .output()
        .expect("the child test runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child test {name} failed:\n{stdout}\n{stderr}"
    );
}

/// Options for an upload through the proxy: the server builds its
/// `Location` from `Host` and `X-Forwarded-Proto`, which the byte-level
/// proxy cannot add, so the client sends it.
fn through_proxy(protocol: Protocol) -> UploadOptions {
    UploadOptions {
        protocol: Some(protocol),
        headers: vec![chunkup::KeyValue::new("X-Forwarded-Proto", "https")],
        ..fixed_options(256 * KIB)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_uploads_trust_the_platform_roots() {
    if std::env::var_os(CHILD).is_none() {
        return run_in_child(
            "https_uploads_trust_the_platform_roots",
            fixtures().join("ca.pem"),
        );
    }
    let dir = tempfile::tempdir().expect("server dir");
    let server = start_server(dir.path(), "none").await;
    let proxy = tls_proxy(server.addr()).await;
    let source = random_file(MIB + 17, 51);
    for (protocol, path) in [(Protocol::Tus, "tus"), (Protocol::Ranged, "ranged")] {
        let endpoint = format!("https://{proxy}/{path}");
        let report = client()
            .upload_file(&source.path, &endpoint, through_proxy(protocol), |_| {})
            .await
            .unwrap_or_else(|e| panic!("an upload over https to {endpoint}: {e}"));
        assert!(
            report.url().starts_with(&format!("https://{proxy}/")),
            "{}",
            report.url()
        );
        assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_uploads_need_no_ca_bundle() {
    if std::env::var_os(CHILD).is_none() {
        return run_in_child(
            "http_uploads_need_no_ca_bundle",
            fixtures().join("no-such-bundle.pem"),
        );
    }
    let dir = tempfile::tempdir().expect("server dir");
    let server = start_server(dir.path(), "none").await;
    let source = random_file(MIB + 17, 52);
    // Building the client reads no roots, so it works without any.
    let client = client();
    let report = client
        .upload_file(
            &source.path,
            &server.tus_endpoint(),
            UploadOptions {
                protocol: Some(Protocol::Tus),
                ..fixed_options(256 * KIB)
            },
            |_| {},
        )
        .await
        .expect("an http upload needs no CA bundle");
    // (The shared helpers' reqwest client would load the roots this child
    // lacks, so the stored bytes are checked with one that loads none.)
    let admin = reqwest::Client::builder()
        .tls_certs_only(Vec::new())
        .build()
        .expect("a client without roots");
    let url = format!(
        "{}/_admin/uploads/{}",
        server.base_url(),
        upload_id(report.url())
    );
    let body = admin
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the admin API answers")
        .text()
        .await
        .expect("the admin API's body");
    let stored: serde_json::Value = serde_json::from_str(&body).expect("admin JSON");
    assert_eq!(stored["sha256"], source.sha256.as_str(), "{stored}");
    assert_eq!(stored["complete"], true, "{stored}");

    // https needs them: a clear TLS error, not a panic or a hang.
    let proxy = tls_proxy(server.addr()).await;
    let mut options = through_proxy(Protocol::Tus);
    options.max_attempts = 2;
    let error = client
        .upload_file(
            &source.path,
            &format!("https://{proxy}/tus"),
            options,
            |_| {},
        )
        .await
        .expect_err("https without trusted roots fails");
    let message = error.to_string();
    assert!(
        message.contains("TLS") && message.contains("CA certificates"),
        "{message}"
    );
    server.shutdown().await;
}

/// A TLS-terminating proxy on 127.0.0.1 in front of `backend`, serving the
/// test certificate for `127.0.0.1` and `localhost`.
async fn tls_proxy(backend: SocketAddr) -> SocketAddr {
    let certs = CertificateDer::pem_file_iter(fixtures().join("localhost.pem"))
        .expect("the test certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates");
    let key = PrivateKeyDer::from_pem_file(fixtures().join("localhost.key")).expect("the test key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("a certificate and its key");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(loopback()).await.expect("bind the proxy");
    let addr = listener.local_addr().expect("the proxy's address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    addr
}
