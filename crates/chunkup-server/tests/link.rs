//! The link emulator on real loopback sockets: bandwidth, latency, seeded
//! resets, stalls and the loopback-only rule.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chunkup_server::link::{LinkConfig, LinkEmulator, LinkEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// An upstream that reads every connection to its end and records, in
/// accept order, how many bytes each one delivered.
async fn sink() -> (SocketAddr, Arc<Mutex<Vec<Option<u64>>>>) {
    let listener = TcpListener::bind(local()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counts = Arc::new(Mutex::new(Vec::new()));
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let index = {
                let mut counts = shared.lock().expect("lock");
                counts.push(None);
                counts.len() - 1
            };
            let counts = shared.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let mut total = 0u64;
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                counts.lock().expect("lock")[index] = Some(total);
            });
        }
    });
    (addr, counts)
}

/// An upstream that echoes every byte back.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind(local()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// An upstream that sends `len` bytes to every connection, then closes.
async fn source(len: usize) -> SocketAddr {
    let listener = TcpListener::bind(local()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = socket.write_all(&vec![7u8; len]).await;
            });
        }
    });
    addr
}

async fn wait_for_counts(counts: &Mutex<Vec<Option<u64>>>, n: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        {
            let counts = counts.lock().expect("lock");
            if counts.len() >= n && counts.iter().take(n).all(Option::is_some) {
                return counts.iter().take(n).map(|c| c.unwrap_or(0)).collect();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the sink never saw {n} closed connections"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn upload_bandwidth_stays_within_ten_percent_of_the_limit() {
    let (upstream, counts) = sink().await;
    let config = LinkConfig {
        rate_up: Some(1_000_000),
        ..LinkConfig::default()
    };
    let link = LinkEmulator::start(local(), upstream, config)
        .await
        .expect("link");
    let mut client = TcpStream::connect(link.addr()).await.expect("connect");
    let started = Instant::now();
    client.write_all(&vec![1u8; 600_000]).await.expect("write");
    client.shutdown().await.expect("shutdown");
    let received = wait_for_counts(&counts, 1).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(received, vec![600_000]);
    // 600 kB at 1 MB/s: 0.6 s, less the bucket's initial burst (5 kB).
    assert!((0.54..0.66).contains(&secs), "600 kB took {secs:.3} s");
}

#[tokio::test]
async fn download_bandwidth_is_shared_by_the_link_s_connections() {
    let upstream = source(200_000).await;
    let config = LinkConfig {
        rate_down: Some(1_000_000),
        ..LinkConfig::default()
    };
    let link = LinkEmulator::start(local(), upstream, config)
        .await
        .expect("link");
    let started = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..2 {
        let addr = link.addr();
        readers.push(tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.expect("connect");
            let mut data = Vec::new();
            client.read_to_end(&mut data).await.expect("read");
            data.len()
        }));
    }
    for reader in readers {
        assert_eq!(reader.await.expect("reader"), 200_000);
    }
    let secs = started.elapsed().as_secs_f64();
    // Two connections, 400 kB through one 1 MB/s link: 0.4 s, not 0.2 s.
    assert!((0.36..0.48).contains(&secs), "400 kB took {secs:.3} s");
}

#[tokio::test]
async fn delay_is_added_in_each_direction_and_jitter_stays_bounded() {
    let upstream = echo().await;
    let config = LinkConfig {
        delay: Duration::from_millis(50),
        jitter: Duration::from_millis(20),
        ..LinkConfig::default()
    };
    let link = LinkEmulator::start(local(), upstream, config)
        .await
        .expect("link");
    let mut client = TcpStream::connect(link.addr()).await.expect("connect");
    let mut samples = Vec::new();
    for i in 0..5u8 {
        let started = Instant::now();
        client.write_all(&[i]).await.expect("write");
        let mut back = [0u8; 1];
        client.read_exact(&mut back).await.expect("read");
        assert_eq!(back, [i]);
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    for rtt in &samples {
        // 2 x 50 ms, plus up to 2 x 20 ms of jitter and some scheduling.
        assert!((100.0..165.0).contains(rtt), "round trips {samples:?} ms");
    }
}

#[tokio::test]
async fn bytes_pass_unchanged_without_faults() {
    let upstream = echo().await;
    let link = LinkEmulator::start(
        local(),
        upstream,
        LinkConfig::profile("fast").expect("fast"),
    )
    .await
    .expect("link");
    let client = TcpStream::connect(link.addr()).await.expect("connect");
    let (mut read, mut write) = client.into_split();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.expect("write");
        write.shutdown().await.expect("shutdown");
    });
    let mut back = Vec::new();
    read.read_to_end(&mut back).await.expect("read");
    writer.await.expect("writer");
    assert!(back == data, "echoed bytes differ");
    let stats = link.stats();
    assert_eq!(
        (stats.up, stats.down, stats.resets),
        (1_000_000, 1_000_000, 0)
    );
}

/// Opens `conns` connections one after another, each writing until the link
/// resets it; returns the reset events and what the upstream received.
async fn reset_run(seed: u64, conns: usize) -> (Vec<(u64, u64)>, Vec<u64>) {
    let (upstream, counts) = sink().await;
    let config = LinkConfig {
        reset_every: Some(100_000),
        seed,
        ..LinkConfig::default()
    };
    let link = LinkEmulator::start(local(), upstream, config)
        .await
        .expect("link");
    for _ in 0..conns {
        let mut client = TcpStream::connect(link.addr()).await.expect("connect");
        let piece = vec![3u8; 16 * 1024];
        let mut error = None;
        // 4 MB without a reset would be a ~e^-40 event at a 100 kB mean.
        for _ in 0..256 {
            if let Err(e) = client.write_all(&piece).await {
                error = Some(e);
                break;
            }
        }
        let error = match error {
            Some(e) => e,
            None => client
                .read(&mut [0u8; 1])
                .await
                .expect_err("the link resets the connection"),
        };
        assert!(
            matches!(
                error.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "{error:?}"
        );
    }
    let received = wait_for_counts(&counts, conns).await;
    let resets = link
        .events()
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::Reset {
                conn_offset,
                link_offset,
                ..
            } => Some((conn_offset, link_offset)),
            _ => None,
        })
        .collect();
    (resets, received)
}

#[tokio::test]
async fn resets_happen_at_the_seeded_offsets() {
    let (resets, received) = reset_run(7, 5).await;
    assert_eq!(resets.len(), 5, "{resets:?}");
    // The upstream got exactly the bytes before each reset point...
    let offsets: Vec<u64> = resets.iter().map(|r| r.0).collect();
    assert_eq!(received, offsets);
    // ...which lie on the link's upload stream, one after another.
    let mut total = 0;
    for (conn_offset, link_offset) in &resets {
        total += conn_offset;
        assert_eq!(*link_offset, total);
    }
    // The same seed gives the same offsets; another seed others.
    let (again, _) = reset_run(7, 5).await;
    assert_eq!(again, resets);
    let (other, _) = reset_run(8, 5).await;
    assert_ne!(other, resets);
    // Exponential with a 100 kB mean: 5 gaps average well inside 10-400 kB.
    let mean = total as f64 / 5.0;
    assert!((10e3..400e3).contains(&mean), "{resets:?}");
}

#[tokio::test]
async fn a_stall_pauses_the_link() {
    let (upstream, counts) = sink().await;
    let config = LinkConfig {
        stall_every: Some(100_000),
        stall_for: Duration::from_millis(500),
        seed: 3,
        ..LinkConfig::default()
    };
    let link = LinkEmulator::start(local(), upstream, config)
        .await
        .expect("link");
    let mut client = TcpStream::connect(link.addr()).await.expect("connect");
    let started = Instant::now();
    client.write_all(&vec![5u8; 300_000]).await.expect("write");
    client.shutdown().await.expect("shutdown");
    assert_eq!(wait_for_counts(&counts, 1).await, vec![300_000]);
    let secs = started.elapsed().as_secs_f64();
    let stalls = link
        .events()
        .iter()
        .filter(|e| matches!(e, LinkEvent::Stall { .. }))
        .count();
    assert!(stalls >= 1, "no stall in 300 kB at a 100 kB mean (seed 3)");
    assert_eq!(link.stats().stalls, stalls as u64);
    // Stalls may overlap (a later one extends the pause), so at least one
    // full pause, and no more than all of them in a row.
    assert!(
        secs >= 0.5,
        "{stalls} stall(s) but the upload took {secs:.3} s"
    );
    assert!(
        secs < 0.5 * stalls as f64 + 0.5,
        "{stalls} stall(s), {secs:.3} s"
    );
}

#[tokio::test]
async fn a_stall_placed_in_time_comes_without_traffic_and_holds_the_next_bytes() {
    let (upstream, counts) = sink().await;
    let config = LinkConfig {
        stall_interval: Some(Duration::from_millis(50)),
        stall_for: Duration::from_millis(600),
        seed: 5,
        ..LinkConfig::default()
    };
    let link = LinkEmulator::start(local(), upstream, config)
        .await
        .expect("link");
    let mut feed = link.subscribe();
    // No byte has crossed the link: a stall placed in time comes anyway.
    let first = tokio::time::timeout(Duration::from_secs(3), feed.recv())
        .await
        .expect("a stall within 3 s at a 50 ms mean")
        .expect("event");
    let seen = Instant::now();
    assert_eq!(
        first,
        LinkEvent::Stall {
            conn: None,
            link_offset: 0,
            millis: 600
        }
    );
    // Bytes sent during the stall wait for its end.
    let mut client = TcpStream::connect(link.addr()).await.expect("connect");
    client.write_all(&[1u8; 1000]).await.expect("write");
    client.shutdown().await.expect("shutdown");
    assert_eq!(wait_for_counts(&counts, 1).await, vec![1000]);
    let held = seen.elapsed();
    assert!(held >= Duration::from_millis(450), "{held:?}");
    assert_eq!(link.stats().up, 1000);
    assert!(link.stats().stalls >= 1);
}

#[tokio::test]
async fn only_loopback_addresses_are_accepted() {
    let upstream: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    for listen in ["0.0.0.0:0", "192.0.2.1:0"] {
        let error = LinkEmulator::start(
            listen.parse().expect("addr"),
            upstream,
            LinkConfig::default(),
        )
        .await
        .expect_err(listen);
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
    }
    let error = LinkEmulator::start(
        local(),
        "192.0.2.1:80".parse().expect("addr"),
        LinkConfig::default(),
    )
    .await
    .expect_err("remote upstream");
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    let link = LinkEmulator::start(local(), upstream, LinkConfig::default())
        .await
        .expect("loopback");
    assert!(link.addr().ip().is_loopback());
}

#[test]
fn profiles_have_the_agreed_shapes() {
    let slow = LinkConfig::profile("slow").expect("slow");
    assert_eq!(
        (slow.rate_up, slow.delay * 2),
        (Some(1_250_000), Duration::from_millis(80))
    );
    let lossy = LinkConfig::profile("lossy").expect("lossy");
    assert_eq!(
        (lossy.rate_up, lossy.delay * 2, lossy.reset_every),
        (Some(5_000_000), Duration::from_millis(40), Some(10_000_000))
    );
    let hostile = LinkConfig::profile("hostile").expect("hostile");
    assert_eq!(
        (
            hostile.rate_up,
            hostile.delay * 2,
            hostile.reset_every,
            hostile.stall_for
        ),
        (
            Some(625_000),
            Duration::from_millis(200),
            Some(1_000_000),
            Duration::from_secs(10)
        )
    );
    assert_eq!(
        (hostile.stall_every, hostile.stall_interval),
        (None, Some(Duration::from_secs(8)))
    );
    assert_eq!(LinkConfig::profile("fast"), Some(LinkConfig::default()));
    assert_eq!(LinkConfig::profile("nope"), None);
}
