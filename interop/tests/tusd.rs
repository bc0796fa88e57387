//! chunkup (the CLI) against tusd, the reference tus server (Go): tus 1.0,
//! discovery, and the IETF draft at interop version 6 (tusd's
//! `-enable-experimental-protocol`). tusd v2.9.1 is installed by
//! `scripts/test.sh` with `go install`; without it these tests fail.

use chunkup_interop::{
    CutProxy, HttpProxy, KIB, MIB, ProxyAction, Tusd, chunkup_upload, http, random_file,
    sha256_file, tusd_bin, upload_id,
};

/// Asserts tusd's upload directory holds exactly the source's bytes.
fn assert_stored(tusd: &Tusd, upload_url: &str, source: &chunkup_interop::SourceFile) {
    let id = upload_id(upload_url);
    let stored = tusd.stored_path(id);
    let len = std::fs::metadata(&stored)
        .unwrap_or_else(|e| panic!("{}: {e}\ntusd log:\n{}", stored.display(), tusd.log()))
        .len();
    assert_eq!(len, source.size, "stored length of {upload_url}");
    assert_eq!(
        sha256_file(&stored),
        source.sha256,
        "stored bytes of {upload_url}"
    );
    // The filestore's `<id>.info` keeps the creation-time offset; ask tusd.
    let info = tusd.info(id);
    assert_eq!(info["Size"].as_u64(), Some(source.size), "info: {info}");
    let head = http("HEAD", upload_url, &[("Tus-Resumable", "1.0.0")]);
    assert_eq!(head.status, 200, "HEAD {upload_url}: {head:?}");
    let offset = source.size.to_string();
    assert_eq!(head.headers.get("upload-offset"), Some(&offset), "{head:?}");
}

#[test]
fn tus_upload_to_tusd() {
    let bin = tusd_bin();
    let tusd = Tusd::start(&bin, false);
    let source = random_file(5 * MIB + 3, 21);
    let state = tempfile::tempdir().expect("state dir");
    let run = chunkup_upload(
        &source.path,
        &tusd.endpoint,
        state.path(),
        &[
            "--protocol",
            "tus",
            "--chunk-size",
            "1MiB",
            "--metadata",
            "owner=ana",
        ],
    );
    let url = run.upload_url();
    assert_stored(&tusd, &url, &source);
    let info = tusd.info(upload_id(&url));
    assert_eq!(info["MetaData"]["owner"], "ana", "info: {info}");
}

#[test]
fn auto_against_tusd_picks_tus() {
    let bin = tusd_bin();
    // With the experimental protocol on, tusd answers the discovery OPTIONS
    // with both Tus-Version and Upload-Limit: tus is its mature path.
    let tusd = Tusd::start(&bin, true);
    let source = random_file(3 * MIB, 22);
    let state = tempfile::tempdir().expect("state dir");
    let run = chunkup_upload(
        &source.path,
        &tusd.endpoint,
        state.path(),
        &["--protocol", "auto"],
    );
    let url = run.upload_url();
    let discovered = run
        .discovered()
        .unwrap_or_else(|| panic!("no discovery event:\n{run}"));
    assert_eq!(discovered["protocol"], "tus", "{discovered}");
    assert_stored(&tusd, &url, &source);
}

/// Issue #11, fault 3: with `--parts`, discovery used to be skipped and sent
/// without the user's headers, so an `OPTIONS` refused with 401 became a
/// ranged guess that tusd cannot take. Now the session discovers with the
/// user's headers and the parts go out as tus concatenation.
#[test]
fn parallel_parts_discover_with_the_users_headers() {
    let bin = tusd_bin();
    let tusd = Tusd::start(&bin, false);
    let proxy = HttpProxy::start(&tusd.endpoint);
    // A gateway that wants credentials on every request, OPTIONS included.
    proxy.set_rule(|exchange, _| {
        if exchange.request_header("authorization") == Some("Bearer parts") {
            ProxyAction::Forward
        } else {
            ProxyAction::Respond {
                status: 401,
                headers: vec![("WWW-Authenticate".into(), "Bearer".into())],
                body: b"no token".to_vec(),
            }
        }
    });
    let path = tusd.endpoint.splitn(4, '/').nth(3).unwrap_or_default();
    let endpoint = format!("{}/{path}", proxy.url());
    // Parts are at least 8 MiB (concat::MIN_PART): three of them.
    let source = random_file(24 * MIB + 5, 24);
    let state = tempfile::tempdir().expect("state dir");
    let run = chunkup_upload(
        &source.path,
        &endpoint,
        state.path(),
        &[
            "--protocol",
            "auto",
            "--parts",
            "3",
            "--chunk-size",
            "1MiB",
            "-H",
            "Authorization: Bearer parts",
        ],
    );
    let url = run.upload_url();
    let discovered = run
        .discovered()
        .unwrap_or_else(|| panic!("no discovery event:\n{run}"));
    assert_eq!(discovered["protocol"], "tus", "{discovered}");
    let log = proxy.log();
    assert!(
        log.iter().all(|e| e.status != Some(401)),
        "a request went without the user's headers: {:?}",
        log.iter()
            .map(|e| (&e.method, e.status))
            .collect::<Vec<_>>()
    );
    let partials = log
        .iter()
        .filter(|e| e.method == "POST" && e.request_header("upload-concat") == Some("partial"))
        .count();
    assert_eq!(
        partials,
        3,
        "three partial uploads: {:?}",
        log.iter()
            .map(|e| (&e.method, e.request_header("upload-concat"), e.status))
            .collect::<Vec<_>>()
    );
    let stored = url.replace(
        &proxy.url(),
        tusd.endpoint.trim_end_matches(&format!("/{path}")),
    );
    assert_stored(&tusd, &stored, &source);
}

#[test]
fn ietf_interop_6_to_tusd() {
    let bin = tusd_bin();
    let tusd = Tusd::start(&bin, true);
    let source = random_file(4 * MIB + 11, 23);
    let state = tempfile::tempdir().expect("state dir");
    let run = chunkup_upload(
        &source.path,
        &tusd.endpoint,
        state.path(),
        &[
            "--protocol",
            "ietf",
            "--ietf-version",
            "6",
            "--chunk-size",
            "1MiB",
        ],
    );
    let url = run.upload_url();
    assert_stored(&tusd, &url, &source);
    let head = http("HEAD", &url, &[("Upload-Draft-Interop-Version", "6")]);
    assert_eq!(
        head.headers.get("upload-complete").map(String::as_str),
        Some("?1"),
        "{head:?}"
    );
}

#[test]
fn resume_after_a_cut_connection_with_tusd() {
    let bin = tusd_bin();
    let tusd = Tusd::start(&bin, false);
    let upstream = tusd
        .endpoint
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("host:port in the endpoint")
        .to_string();
    let proxy = CutProxy::start(&upstream);
    let endpoint = format!("{}/files/", proxy.url());
    let source = random_file(4 * MIB, 24);
    let state = tempfile::tempdir().expect("state dir");
    let args = ["--protocol", "tus", "--chunk-size", "512KiB"];

    // Run 1: the link goes down for good after ~1.3 MiB; the CLI gives up.
    proxy.cut_after(1300 * KIB);
    let first = chunkup_upload(
        &source.path,
        &endpoint,
        state.path(),
        &[&args[..], &["--retries", "1", "--file-tries", "1"]].concat(),
    );
    assert!(
        !first.status.success(),
        "the first run cannot finish:\n{first}"
    );
    let created = first
        .event("created")
        .unwrap_or_else(|| panic!("no created event:\n{first}"));
    let url = created["upload_url"]
        .as_str()
        .expect("upload_url")
        .to_string();

    // Run 2, same state dir, link back: continues the same upload.
    proxy.restore();
    let second = chunkup_upload(&source.path, &endpoint, state.path(), &args);
    assert_eq!(
        second.upload_url(),
        url,
        "the same upload is continued:\n{second}"
    );
    let resumed = second
        .event("resumed")
        .unwrap_or_else(|| panic!("no resumed event:\n{second}"));
    let offset = resumed["offset"].as_u64().expect("offset");
    let acknowledged = first.max_acknowledged();
    assert!(
        offset >= acknowledged && acknowledged >= 512 * KIB && offset < source.size,
        "resumed at {offset} ({acknowledged} acknowledged):\n{second}"
    );
    assert_stored(&tusd, &url, &source);
}
