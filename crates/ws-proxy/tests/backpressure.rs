//! Bounded buffers: a side that does not read stops the other side through TCP flow control,
//! and the proxy does not buffer the difference.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::*;
use tokio::io::AsyncWriteExt;

/// Everything the kernel may hold on loopback plus what the proxy may hold: far below what a
/// flood of a few seconds would produce. The kernel's share is read from this machine's TCP
/// autotuning ceilings (`tcp_rmem` and `tcp_wmem`, third field): two connections (backend to
/// proxy, proxy to client), each a send and a receive buffer. A fixed 32 MiB was too low where
/// `tcp_rmem` allows 32 MiB per socket, and failed under load once autotuning grew the buffers.
/// The proxy's own share: a full command queue of 64 KiB reads plus its write buffer.
fn bound() -> u64 {
    let ceiling = |path: &str, default: u64| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
            .unwrap_or(default)
    };
    let kernel = 2
        * (ceiling("/proc/sys/net/ipv4/tcp_rmem", 6 << 20)
            + ceiling("/proc/sys/net/ipv4/tcp_wmem", 4 << 20));
    let proxy = 256 * (64 << 10) + (1 << 20);
    kernel + proxy
}

/// Samples `c` until it stops growing; returns the final value.
async fn plateau(c: &std::sync::atomic::AtomicU64) -> u64 {
    let mut last = get(c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = get(c);
        if now == last && now > 0 {
            return now;
        }
        assert!(
            now < bound(),
            "kept accepting data: {now} bytes (bound {})",
            bound()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "no plateau: {now} bytes"
        );
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_backend_is_stopped_by_a_client_that_does_not_read() {
    let (backend, mut accepted) = tcp_accepting().await;
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let raw = Raw::connect(addr, "/", Some("binary")).await;
    assert_eq!(raw.status(), 101);
    let mut s = accepted.recv().await.unwrap();
    let written = counter();
    let w = written.clone();
    let flood = tokio::spawn(async move {
        let chunk = vec![0x55u8; 64 * 1024];
        while s.write_all(&chunk).await.is_ok() {
            w.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    let total = plateau(&written).await;
    eprintln!("backend wrote {total} bytes before being stopped");
    assert!(total < bound());
    flood.abort();
    drop(raw);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_client_is_stopped_by_a_backend_that_does_not_read() {
    let (backend, mut accepted) = tcp_accepting().await;
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let mut raw = Raw::connect(addr, "/", Some("binary")).await;
    assert_eq!(raw.status(), 101);
    let s = accepted.recv().await.unwrap();
    let written = counter();
    let w = written.clone();
    let flood = tokio::spawn(async move {
        let frame = Raw::frame(0x2, &vec![0xaau8; 64 * 1024]);
        while raw.tcp.write_all(&frame).await.is_ok() {
            w.fetch_add(frame.len() as u64, Ordering::Relaxed);
        }
    });
    let total = plateau(&written).await;
    eprintln!("client wrote {total} bytes before being stopped");
    assert!(total < bound());
    flood.abort();
    drop(s);
    proxy.stop().await;
}
