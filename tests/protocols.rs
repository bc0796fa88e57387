//! tus and the IETF draft end to end: the native client against the
//! reference server's `/tus` and `/ietf` endpoints under injected faults,
//! with protocol discovery and parallel parts; every upload stored exactly.

use chunkup::core::{IetfVersion, Protocol};
use chunkup::{UploadEvent as Event, UploadOptions};
use chunkup_e2e::{
    KIB, MIB, ReportUrl, adaptive_options, assert_progress_monotonic, assert_stored_exactly,
    client, fixed_options, random_file, start_server,
};

const FAULTS: &str = "reset=0.15,error=0.1,busy=0.05,retry-after=1,status-error=0.1";

async fn upload(
    server: &chunkup_server::RunningServer,
    endpoint: &str,
    options: UploadOptions,
    size: u64,
    seed: u64,
) -> (chunkup::UploadReport, Vec<Event>) {
    let source = random_file(size, seed);
    let mut events = Vec::new();
    let report = client()
        .upload_file(&source.path, endpoint, options, |e| events.push(e.clone()))
        .await
        .unwrap_or_else(|e| panic!("upload to {endpoint} failed: {e}"));
    assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    assert_progress_monotonic(&events, size);
    (report, events)
}

fn discovered(events: &[Event]) -> Option<Protocol> {
    events.iter().find_map(|e| match e {
        Event::Discovered { protocol, .. } => Some((*protocol).into()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_and_ietf_survive_faults_with_exact_bytes() {
    let store = tempfile::tempdir().expect("store");
    for seed in 1..=3u64 {
        let server = start_server(store.path(), &format!("seed={seed},{FAULTS}")).await;
        let cases = [
            (server.tus_endpoint(), Protocol::Tus, IetfVersion::Interop8),
            (
                server.ietf_endpoint(),
                Protocol::Ietf,
                IetfVersion::Interop8,
            ),
            (
                server.ietf_endpoint(),
                Protocol::Ietf,
                IetfVersion::Interop6,
            ),
        ];
        for (endpoint, protocol, version) in cases {
            let options = UploadOptions {
                protocol: Some(protocol.into()),
                ietf_version: Some(match version {
                    IetfVersion::Interop6 => 6,
                    _ => 8,
                }),
                ..fixed_options(128 * KIB)
            };
            let (report, _) = upload(&server, &endpoint, options, 3 * MIB + 17, seed).await;
            assert!(
                !report.retries.is_empty(),
                "{protocol} seed {seed}: the faults were met"
            );
        }
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_discovers_each_protocol() {
    let store = tempfile::tempdir().expect("store");
    let server = start_server(store.path(), "none").await;
    let cases = [
        (server.tus_endpoint(), Protocol::Tus),
        (server.ietf_endpoint(), Protocol::Ietf),
        (server.ranged_endpoint(), Protocol::Ranged),
    ];
    for (endpoint, expected) in cases {
        let options = UploadOptions {
            protocol: Some(Protocol::Auto.into()),
            ..adaptive_options()
        };
        let (_, events) = upload(&server, &endpoint, options, 700 * KIB, 5).await;
        assert_eq!(discovered(&events), Some(expected), "{endpoint}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_and_empty_files_over_tus_and_ietf() {
    let store = tempfile::tempdir().expect("store");
    let server = start_server(store.path(), "none").await;
    for endpoint in [server.tus_endpoint(), server.ietf_endpoint()] {
        let protocol = if endpoint.ends_with("/tus") {
            Protocol::Tus
        } else {
            Protocol::Ietf
        };
        for size in [0, 1, 1000] {
            let options = UploadOptions {
                protocol: Some(protocol.into()),
                ..fixed_options(64 * KIB)
            };
            let (_, events) = upload(&server, &endpoint, options, size, size).await;
            let chunks = events
                .iter()
                .filter(|e| matches!(e, Event::ChunkAcknowledged { .. }))
                .count();
            // Creation-with-upload: the data went with the creation request.
            assert!(chunks <= 1, "{endpoint} {size}: {chunks} acknowledgements");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_file_as_parallel_tus_parts_under_faults() {
    let store = tempfile::tempdir().expect("store");
    let server = start_server(store.path(), &format!("seed=4,{FAULTS}")).await;
    let options = UploadOptions {
        protocol: Some(Protocol::Tus.into()),
        parallel: 3,
        ..fixed_options(512 * KIB)
    };
    let (report, _) = upload(&server, &server.tus_endpoint(), options, 30 * MIB, 6).await;
    let uploads = chunkup_e2e::admin_uploads(&server.base_url()).await;
    // Three parts and the final upload that joins them.
    assert_eq!(uploads.len(), 4, "{uploads:?}");
    assert!(report.url().contains("/tus/"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_parts_resume_in_a_later_run() {
    let store = tempfile::tempdir().expect("store");
    let state = tempfile::tempdir().expect("resume state");
    let server = start_server(store.path(), "seed=9,reset=0.05").await;
    let size = 24 * MIB;
    let source = random_file(size, 21);
    let options = || UploadOptions {
        protocol: Some(Protocol::Tus.into()),
        parallel: 3,
        ..fixed_options(256 * KIB)
    };
    let resuming_client =
        || client().with_resume_store(chunkup::FileResumeStore::new(state.path()));

    // The first run stops (its future is dropped, as a killed process
    // would) once about a third of the file is acknowledged.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut stop_tx = Some(stop_tx);
    let first_client = resuming_client();
    let endpoint = server.tus_endpoint();
    let first = first_client.upload_file(&source.path, &endpoint, options(), |e| {
        if let Event::Progress { progress: p } = e
            && p.acknowledged >= size / 3
            && let Some(tx) = stop_tx.take()
        {
            let _ = tx.send(());
        }
    });
    tokio::select! {
        result = first => panic!("the first run should have been stopped: {result:?}"),
        _ = stop_rx => {}
    }
    let parts_before = chunkup_e2e::admin_uploads(&server.base_url()).await;
    assert_eq!(
        parts_before.len(),
        3,
        "three parts created: {parts_before:?}"
    );
    let stored_before: u64 = parts_before
        .iter()
        .map(|u| u["stored"].as_u64().unwrap_or(0))
        .sum();
    assert!(stored_before >= size / 3, "{parts_before:?}");

    let report = resuming_client()
        .upload_file(&source.path, &server.tus_endpoint(), options(), |_| {})
        .await
        .expect("the second run completes");
    assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    assert!(
        report.resumed_from.is_some_and(|at| at > 0),
        "the parts were continued: {report:?}"
    );
    let uploads = chunkup_e2e::admin_uploads(&server.base_url()).await;
    // The same three parts, joined by one final upload: nothing created twice.
    assert_eq!(uploads.len(), 4, "{uploads:?}");
    let received: u64 = uploads
        .iter()
        .filter(|u| u["concat"]["role"] == "partial")
        .map(|u| u["bytes_received"].as_u64().unwrap_or(0))
        .sum();
    // Resets and the stop cost at most a few chunks per part, never a restart.
    assert!(
        received < size + 3 * 8 * 256 * KIB,
        "{received} bytes for {size}"
    );
    // The finished upload leaves nothing to resume.
    let left = std::fs::read_dir(state.path()).map_or(0, |d| d.count());
    assert_eq!(left, 0, "resume records left behind");
    server.shutdown().await;
}
