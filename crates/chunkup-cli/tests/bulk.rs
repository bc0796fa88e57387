//! `chunkup upload DIR` as a resumable batch, end to end: the real binary
//! against the reference server on 127.0.0.1 (in this process).
//!
//! The big one: 2,000 small files in nested directories and 3 larger ones
//! under injected faults, `kill -9` after some files completed, the same
//! command again — every file exact on the server, exactly one complete
//! upload per file, the files the first run finished not touched again, the
//! ones it had started continued at their URL.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chunkup_server::{RunningServer, ServerConfig};
use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_chunkup");

async fn server(dir: &Path, faults: &str, max_size: u64) -> RunningServer {
    let config = ServerConfig {
        dir: dir.to_path_buf(),
        faults: faults.parse().unwrap(),
        max_size,
        admin: chunkup_server::AdminAccess::open(),
        ..ServerConfig::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    chunkup_server::start(addr, config).await.unwrap()
}

/// Writes `size` seeded random bytes; returns the hex sha256.
fn write_file(path: &Path, size: usize, seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut data = vec![0u8; size];
    rng.fill(&mut data);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, &data).unwrap();
    hex::encode(Sha256::digest(&data))
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn events<'a>(all: &'a [Value], kind: &str) -> impl Iterator<Item = &'a Value> {
    let kind = kind.to_string();
    all.iter().filter(move |e| e["event"] == kind.as_str())
}

fn files_with(all: &[Value], kind: &str) -> HashSet<String> {
    events(all, kind)
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect()
}

async fn admin_list(server: &RunningServer) -> Vec<Value> {
    let url = format!("{}/_admin/uploads", server.base_url());
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn admin_sha(http: &reqwest::Client, base: &str, id: &str) -> String {
    let info: Value = http
        .get(format!("{base}/_admin/uploads/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    info["sha256"].as_str().unwrap().to_string()
}

/// Complete, non-partial uploads on the server by `relativePath` (a final
/// concatenation carries the file's metadata; its parts carry none).
fn complete_by_name(list: &[Value]) -> HashMap<String, Vec<Value>> {
    let mut by_name: HashMap<String, Vec<Value>> = HashMap::new();
    for upload in list {
        if upload["complete"] != true || upload["concat"]["role"] == "partial" {
            continue;
        }
        let name = upload["metadata"]["relativePath"]
            .as_str()
            .unwrap_or_default();
        by_name
            .entry(name.to_string())
            .or_default()
            .push(upload.clone());
    }
    by_name
}

fn run_to_end(command: &mut Command) -> (Option<i32>, Vec<Value>, String) {
    let output = command.output().unwrap();
    (
        output.status.code(),
        json_lines(&String::from_utf8_lossy(&output.stdout)),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_files_under_faults_killed_then_resumed_exactly_once() {
    const SMALL: usize = 2000;
    const KILL_AFTER: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        &dir.path().join("store"),
        "seed=11,reset=0.05,error=0.05,busy=0.02,retry-after=1",
        u64::MAX,
    )
    .await;
    let root = dir.path().join("dataset");
    let mut expected: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut rng = fastrand::Rng::with_seed(5);
    for i in 0..SMALL {
        let size = rng.usize(1024..=16 * 1024);
        let rel = format!("d{:02}/s{}/f{i:04}.bin", i % 20, (i / 20) % 5);
        let sha = write_file(&root.join(&rel), size, i as u64);
        expected.insert(format!("dataset/{rel}"), (sha, size as u64));
    }
    for (i, mib) in [2usize, 3, 5].into_iter().enumerate() {
        let rel = format!("big/video{i}.mp4");
        let sha = write_file(&root.join(&rel), mib << 20, 1000 + i as u64);
        expected.insert(format!("dataset/{rel}"), (sha, (mib << 20) as u64));
    }
    let state = dir.path().join("state");
    let endpoint = server.tus_endpoint();
    let started = Instant::now();
    let command = || {
        let mut command = Command::new(BIN);
        command
            .arg("upload")
            .arg(&root)
            .args([
                "--to",
                &endpoint,
                "--protocol",
                "tus",
                "--parallel",
                "8",
                "--json",
                "--state-dir",
            ])
            .arg(&state)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };

    // First run: kill -9 once KILL_AFTER files completed.
    let mut first = command().spawn().unwrap();
    let mut stdout = BufReader::new(first.stdout.take().unwrap());
    let mut first_text = String::new();
    let mut completed = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while completed < KILL_AFTER {
        assert!(Instant::now() < deadline, "the first run is too slow");
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the first run ended early"
        );
        if line.contains("\"event\":\"completed\"") {
            completed += 1;
        }
        first_text.push_str(&line);
    }
    eprintln!("first run killed after {:?}", started.elapsed());
    first.kill().unwrap();
    assert!(!first.wait().unwrap().success());
    // Whatever it printed before it died.
    stdout.read_to_string(&mut first_text).unwrap();
    let mut stderr = String::new();
    first
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let first_events = json_lines(&first_text);
    let first_done = files_with(&first_events, "completed");
    assert!(first_done.len() >= KILL_AFTER);
    assert!(
        first_done.len() < expected.len(),
        "killed mid-batch: {} of {} done; {stderr}",
        first_done.len(),
        expected.len()
    );
    // Uploads the first run created but did not finish: the second run must
    // continue them at the same URL.
    let mut first_urls: HashMap<String, String> = HashMap::new();
    for event in events(&first_events, "created") {
        first_urls.insert(
            event["file"].as_str().unwrap().to_string(),
            event["upload_url"].as_str().unwrap().to_string(),
        );
    }
    let unfinished: HashSet<String> = first_urls
        .keys()
        .filter(|f| !first_done.contains(*f))
        .cloned()
        .collect();
    assert_eq!(
        events(&first_events, "endpoint_discovered").count(),
        1,
        "one discovery for the whole batch"
    );
    assert_eq!(
        events(&first_events, "discovered").count(),
        1,
        "the first file discovered for the batch, no other file on its own"
    );
    let before: HashMap<String, Value> = admin_list(&server)
        .await
        .into_iter()
        .map(|u| (u["id"].as_str().unwrap().to_string(), u))
        .collect();

    // `status` shows the interrupted batch.
    let status = Command::new(BIN)
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(
        listing.contains("batches:") && listing.contains("dataset"),
        "{listing}"
    );

    // Second run: the same command, to the end.
    let (code, second, stderr) = run_to_end(&mut command());
    eprintln!("second run done after {:?}", started.elapsed());
    assert_eq!(code, Some(0), "{stderr}");
    let skipped = files_with(&second, "skipped");
    let touched: HashSet<String> = second
        .iter()
        .filter(|e| e["event"] != "skipped" && e["file"].is_string())
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    for file in &first_done {
        assert!(
            skipped.contains(file),
            "{file} finished before the kill but was not skipped"
        );
        assert!(
            !touched.contains(file),
            "{file} finished before the kill but was sent again"
        );
    }
    let second_created = files_with(&second, "created");
    let resumed = files_with(&second, "resumed");
    for file in &unfinished {
        assert!(
            !second_created.contains(file),
            "{file}: a second upload was created"
        );
        assert!(resumed.contains(file), "{file} was not resumed");
    }
    let finished = events(&second, "batch_finished").next().unwrap();
    assert_eq!(finished["failed"], 0, "{finished}");
    assert_eq!(
        finished["uploaded"].as_u64().unwrap() + finished["skipped"].as_u64().unwrap(),
        expected.len() as u64,
        "{finished}"
    );
    assert!(finished["skipped"].as_u64().unwrap() >= first_done.len() as u64);
    for event in events(&second, "completed") {
        let file = event["file"].as_str().unwrap();
        if let Some(url) = first_urls.get(file) {
            assert_eq!(event["upload_url"].as_str().unwrap(), url, "{file}");
        }
    }

    // The server: exactly one complete upload per file, each exact, and the
    // uploads finished before the kill received nothing since.
    let after = admin_list(&server).await;
    let by_name = complete_by_name(&after);
    assert_eq!(by_name.len(), expected.len());
    let mut ids = Vec::new();
    for (name, (_, size)) in &expected {
        let uploads = by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not on the server"));
        assert_eq!(uploads.len(), 1, "{name} is stored {} times", uploads.len());
        let upload = &uploads[0];
        assert_eq!(upload["total"].as_u64(), Some(*size), "{name}");
        let id = upload["id"].as_str().unwrap().to_string();
        if first_done.contains(name) {
            let then = &before[&id];
            assert_eq!(then["bytes_received"], upload["bytes_received"], "{name}");
        }
        ids.push((name.clone(), id));
    }
    let base = server.base_url();
    let http = reqwest::Client::new();
    let mismatches: Vec<String> = futures_util::stream::iter(ids)
        .map(|(name, id)| {
            let (base, http) = (base.clone(), http.clone());
            async move { (admin_sha(&http, &base, &id).await, name) }
        })
        .buffer_unordered(16)
        .filter_map(|(sha, name)| {
            let ok = expected[&name].0 == sha;
            async move { (!ok).then_some(name) }
        })
        .collect()
        .await;
    assert!(mismatches.is_empty(), "stored bytes differ: {mismatches:?}");

    eprintln!("verified after {:?}", started.elapsed());
    // A third run has nothing to do and sends nothing.
    let (code, third, stderr) = run_to_end(&mut command());
    assert_eq!(code, Some(0), "{stderr}");
    let finished = events(&third, "batch_finished").next().unwrap();
    assert_eq!(finished["uploaded"], 0);
    assert_eq!(finished["skipped"], expected.len() as u64);
    assert_eq!(events(&third, "endpoint_discovered").count(), 0);
    assert_eq!(admin_list(&server).await.len(), after.len());
    eprintln!("batch test took {:?}", started.elapsed());
    drop(http);
    server.crash();
}

fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("photos");
    for (i, rel) in [
        "a.jpg",
        "b.png",
        "2024/c.jpg",
        "2024/cache/d.jpg",
        "2024/big.jpg",
    ]
    .into_iter()
    .enumerate()
    {
        let size = if rel.contains("big") { 6000 } else { 100 + i };
        write_file(&root.join(rel), size, i as u64);
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_exclude_dry_run_failures_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    // 5000 bytes at most: big.jpg is refused with 413.
    let server = server(&dir.path().join("store"), "none", 5000).await;
    let root = tree(dir.path());
    let state = dir.path().join("state");
    let endpoint = server.tus_endpoint();
    let command = |extra: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .arg("upload")
            .arg(&root)
            .args(["--to", &endpoint, "--protocol", "auto", "--json"])
            .args(["--include", "*.jpg", "--exclude", "**/cache"])
            .args(extra)
            .arg("--state-dir")
            .arg(&state);
        command
    };
    let names = |all: &[Value], kind: &str| {
        let mut names: Vec<String> = files_with(all, kind).into_iter().collect();
        names.sort();
        names
    };

    // Dry run: the plan, no request, no state.
    let (code, events_, stderr) = run_to_end(&mut command(&["--dry-run"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        names(&events_, "would_upload"),
        ["photos/2024/big.jpg", "photos/2024/c.jpg", "photos/a.jpg"]
    );
    assert!(
        admin_list(&server).await.is_empty(),
        "a dry run sends nothing"
    );

    // The real run: big.jpg is refused, the others go; exit 1 with the reason.
    let (code, first, _) = run_to_end(&mut command(&[]));
    assert_eq!(code, Some(1));
    assert_eq!(
        names(&first, "completed"),
        ["photos/2024/c.jpg", "photos/a.jpg"]
    );
    let finished = events(&first, "batch_finished").next().unwrap();
    assert_eq!(finished["failed"], 1);
    let failure = &finished["failures"][0];
    assert_eq!(failure["file"], "photos/2024/big.jpg");
    assert!(
        failure["error"].as_str().unwrap().contains("413"),
        "{failure}"
    );

    // Again: the two are skipped, the refused one is tried (and refused) again.
    let (code, second, _) = run_to_end(&mut command(&[]));
    assert_eq!(code, Some(1));
    assert_eq!(
        names(&second, "skipped"),
        ["photos/2024/c.jpg", "photos/a.jpg"]
    );
    assert_eq!(names(&second, "failed"), ["photos/2024/big.jpg"]);
    let (code, plan, _) = run_to_end(&mut command(&["--dry-run"]));
    assert_eq!(code, Some(0));
    assert_eq!(
        names(&plan, "would_skip"),
        ["photos/2024/c.jpg", "photos/a.jpg"]
    );
    assert_eq!(names(&plan, "would_upload"), ["photos/2024/big.jpg"]);

    // Human output: a summary with the failure and its reason.
    let output = Command::new(BIN)
        .arg("upload")
        .arg(&root)
        .args(["--to", &endpoint, "--protocol", "auto"])
        .args(["--include", "*.jpg", "--exclude", "**/cache"])
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 already done (skipped); 1 failed")
            && stderr.contains("✗ photos/2024/big.jpg")
            && stderr.contains("413"),
        "{stderr}"
    );
    let status = Command::new(BIN)
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(
        listing.contains("3 files: 2 done") && listing.contains("1 failed"),
        "{listing}"
    );

    // Usage errors exit 2 before anything is sent.
    for bad in [["--include", "["], ["--bwlimit", "fast"]] {
        let output = Command::new(BIN)
            .arg("upload")
            .arg(&root)
            .args(["--to", &endpoint])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bwlimit_holds_all_files_together_to_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("store"), "none", u64::MAX).await;
    let root = dir.path().join("four");
    for i in 0..4 {
        write_file(&root.join(format!("f{i}.bin")), 64 * 1024, i);
    }
    let started = Instant::now();
    let (code, all, stderr) = run_to_end(
        Command::new(BIN)
            .arg("upload")
            .arg(&root)
            .args(["--to", &server.ranged_endpoint(), "--parallel", "4"])
            .args(["--bwlimit", "128KiB", "--no-resume", "--json"]),
    );
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(events(&all, "completed").count(), 4);
    // 256 KiB at 128 KiB/s (16 KiB burst): about 1.9 s, whatever the parallelism.
    assert!(elapsed > 1.6, "{elapsed}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_files_go_as_parallel_parts_within_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("store"), "none", u64::MAX).await;
    let root = dir.path().join("mixed");
    let big = write_file(&root.join("big.bin"), 17 << 20, 1);
    let small = write_file(&root.join("small.bin"), 5000, 2);
    let (code, all, stderr) = run_to_end(
        Command::new(BIN)
            .arg("upload")
            .arg(&root)
            .args(["--to", &server.tus_endpoint(), "--protocol", "auto"])
            .args(["--parts", "2", "--parallel", "2", "--json"])
            .arg("--state-dir")
            .arg(dir.path().join("state")),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(events(&all, "completed").count(), 2);
    let list = admin_list(&server).await;
    let parts = list
        .iter()
        .filter(|u| u["concat"]["role"] == "partial")
        .count();
    assert_eq!(parts, 2, "the big file went as two parts");
    let by_name = complete_by_name(&list);
    let http = reqwest::Client::new();
    let base = server.base_url();
    for (name, sha) in [("mixed/big.bin", &big), ("mixed/small.bin", &small)] {
        let uploads = &by_name[name];
        assert_eq!(uploads.len(), 1, "{name}");
        let id = uploads[0]["id"].as_str().unwrap();
        assert_eq!(&admin_sha(&http, &base, id).await, sha, "{name}");
    }
    drop(http);
    server.shutdown().await;
}
