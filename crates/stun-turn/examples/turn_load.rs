//! Load generator for TURN servers (any server: `cargo xtask bench turn` runs it against coturn
//! and `wskit turn` alike), on one single-threaded runtime.
//!
//! ```text
//! turn_load rtt   SERVER PEER USER:PASS [sessions] [window] [secs] [size]
//! turn_load alloc SERVER USER:PASS [count] [concurrency]
//! turn_load hold  SERVER USER:PASS [count] [concurrency]
//! ```
//!
//! - `rtt`: `sessions` UDP allocations (default 64), each with a channel to PEER (a UDP echo),
//!   keep `window` ChannelData messages of `size` bytes in flight (default 8 x 200 B) for `secs`
//!   (default 5) and count the echoes: the server's relaying capacity, not a paced rate.
//!   Prints `round trips: N in T s = R/s, sent S` (lost = S - N - window x sessions at most).
//! - `alloc`: `count` allocations (default 2000), `concurrency` at a time (default 64), each on a
//!   fresh socket through the whole 401 / realm+nonce / retry exchange, then released (Refresh 0).
//!   Prints `allocations: N in T s = R/s` (the release is not timed).
//! - `hold`: `count` allocations (default 10000) kept alive; prints `held N` once they all
//!   exist, then waits for standard input to close and releases them.
//!
//! Setup goes through the sans-IO [`stun_turn::Client`] (the same code as `TurnClient`); the data
//! path writes ChannelData frames directly, so that the client costs as little as possible.

use std::{
    net::SocketAddr,
    rc::Rc,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use stun_turn::{Client, ClientConfig, ClientEvent, ErrorCode, Failure, RelayProtocol};
use tokio::net::UdpSocket;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Drives `core` over `sock` until `done` picks an event, or 10 s pass.
async fn drive_until<T>(
    core: &mut Client,
    sock: &UdpSocket,
    mut done: impl FnMut(ClientEvent) -> Option<Res<T>>,
) -> Res<T> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 2048];
    loop {
        while let Some(out) = core.poll_transmit() {
            sock.send(&out).await?;
        }
        while let Some(ev) = core.poll_event() {
            if let Some(r) = done(ev) {
                while let Some(out) = core.poll_transmit() {
                    sock.send(&out).await?;
                }
                return r;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err("no answer from the server within 10 s".into());
        }
        let wake = core.poll_timeout().unwrap_or(deadline).min(deadline);
        let wait = wake.saturating_duration_since(now);
        match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
            Ok(n) => core.handle_input(Instant::now(), &buf[..n?]),
            Err(_) => core.handle_timeout(Instant::now()),
        }
    }
}

fn failed(ev: &ClientEvent) -> Option<String> {
    match ev {
        ClientEvent::Failed { request, failure } => Some(format!("{request:?}: {failure:?}")),
        _ => None,
    }
}

/// A fresh socket connected to `server`, and an allocation on it. A 437 (the 5-tuple still has
/// an allocation: an earlier client on the same local port did not release it) is answered
/// as RFC 8656 says, with another local port.
async fn allocate(server: SocketAddr, creds: &(String, String)) -> Res<(UdpSocket, Client)> {
    let mut last = None;
    for _ in 0..8 {
        let sock = UdpSocket::bind(("127.0.0.1", 0)).await?;
        sock.connect(server).await?;
        let mut core = Client::new(
            ClientConfig::with_credentials(&creds.0, &creds.1),
            stun_turn::net::OsRandom::new(),
        )?;
        core.allocate(Instant::now(), RelayProtocol::Udp)?;
        let r = drive_until(&mut core, &sock, |ev| match ev {
            ClientEvent::Allocated { .. } => Some(Ok(None)),
            ClientEvent::Failed {
                failure: Failure::Error { code, .. },
                ..
            } if code == ErrorCode::ALLOCATION_MISMATCH => Some(Ok(Some(code))),
            e => failed(&e).map(|f| Err(f.into())),
        })
        .await?;
        match r {
            None => return Ok((sock, core)),
            // Keep this socket until another is bound, so that the next port differs.
            Some(code) => last = Some((code, sock)),
        }
    }
    Err(format!("Allocate: {:?} on 8 local ports", last.map(|l| l.0)).into())
}

async fn release(sock: &UdpSocket, core: &mut Client) -> Res<()> {
    core.refresh(Instant::now(), 0)?;
    drive_until(core, sock, |ev| match ev {
        ClientEvent::Refreshed { .. } => Some(Ok(())),
        e => failed(&e).map(|f| Err(f.into())),
    })
    .await
}

async fn rtt(
    server: SocketAddr,
    peer: SocketAddr,
    creds: (String, String),
    sessions: usize,
    window: usize,
    secs: u64,
    size: usize,
) -> Res<()> {
    let mut ready = Vec::new();
    for _ in 0..sessions {
        let (sock, mut core) = allocate(server, &creds).await?;
        let channel = core.bind_channel(Instant::now(), peer)?;
        drive_until(&mut core, &sock, |ev| match ev {
            ClientEvent::ChannelBound { .. } => Some(Ok(())),
            e => failed(&e).map(|f| Err(f.into())),
        })
        .await?;
        ready.push((sock, core, channel));
    }
    let received = Rc::new(AtomicU64::new(0));
    let sent = Rc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (sock, core, channel) in ready {
        let (received, sent) = (received.clone(), sent.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let mut frame = Vec::with_capacity(4 + size);
            frame.extend_from_slice(&channel.to_be_bytes());
            frame.extend_from_slice(&(size as u16).to_be_bytes());
            frame.resize(4 + size, 0x5a);
            for _ in 0..window {
                sock.send(&frame).await?;
            }
            sent.fetch_add(window as u64, Ordering::Relaxed);
            let mut buf = vec![0u8; 2048];
            // One timer for the whole run (not one per datagram), and every datagram that is
            // there taken per wake-up: the generator's own cost per round trip stays small, so
            // that the servers, not the generator, get the machine.
            let deadline = tokio::time::sleep_until(stop.into());
            tokio::pin!(deadline);
            'run: loop {
                tokio::select! {
                    biased;
                    () = &mut deadline => break 'run,
                    r = sock.readable() => r?,
                }
                let (mut got, mut echoed) = (0, 0);
                loop {
                    let n = match sock.try_recv(&mut buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    };
                    // ChannelData echoes count; anything else (refresh answers...) does not.
                    if n >= 4 && buf[..2] == channel.to_be_bytes() {
                        got += 1;
                        match sock.try_send(&frame) {
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                sock.send(&frame).await?;
                            }
                            Err(e) => return Err(e),
                        }
                        echoed += 1;
                    }
                }
                received.fetch_add(got, Ordering::Relaxed);
                sent.fetch_add(echoed, Ordering::Relaxed);
            }
            Ok::<_, std::io::Error>((sock, core))
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (n, s) = (
        received.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed),
    );
    println!(
        "round trips: {n} in {elapsed:.2} s = {:.0}/s, sent {s}",
        n as f64 / elapsed
    );
    for (sock, mut core) in done {
        // Drain what is still in flight, then release.
        let _ = release(&sock, &mut core).await;
    }
    Ok(())
}

/// `count` allocations, `concurrency` at a time; returns them all.
async fn allocations(
    server: SocketAddr,
    creds: (String, String),
    count: usize,
    concurrency: usize,
) -> Res<Vec<(UdpSocket, Client)>> {
    let creds = Rc::new(creds);
    let next = Rc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (creds, next) = (creds.clone(), next.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let mut mine = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count as u64 {
                match allocate(server, &creds).await {
                    Ok(a) => mine.push(a),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(mine)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?.map_err(|e| format!("allocation failed: {e}"))?);
    }
    Ok(all)
}

fn creds(arg: Option<&String>) -> Res<(String, String)> {
    let a = arg.ok_or("USER:PASS missing")?;
    let (u, p) = a.split_once(':').ok_or("USER:PASS expected")?;
    Ok((u.to_owned(), p.to_owned()))
}

fn num(args: &[String], i: usize, default: usize) -> Res<usize> {
    Ok(args.get(i).map_or(Ok(default), |v| v.parse())?)
}

async fn run(args: Vec<String>) -> Res<()> {
    let mode = args.first().map(String::as_str).unwrap_or("");
    let server: SocketAddr = args.get(1).ok_or("SERVER missing")?.parse()?;
    match mode {
        "rtt" => {
            let peer: SocketAddr = args.get(2).ok_or("PEER missing")?.parse()?;
            let c = creds(args.get(3))?;
            let (sessions, window) = (num(&args, 4, 64)?, num(&args, 5, 8)?);
            let (secs, size) = (num(&args, 6, 5)? as u64, num(&args, 7, 200)?);
            rtt(server, peer, c, sessions, window, secs, size).await
        }
        "alloc" => {
            let c = creds(args.get(2))?;
            let (count, conc) = (num(&args, 3, 2000)?, num(&args, 4, 64)?);
            let start = Instant::now();
            let all = allocations(server, c, count, conc).await?;
            let elapsed = start.elapsed().as_secs_f64();
            println!(
                "allocations: {} in {elapsed:.2} s = {:.0}/s",
                all.len(),
                all.len() as f64 / elapsed
            );
            for (sock, mut core) in all {
                let _ = release(&sock, &mut core).await;
            }
            Ok(())
        }
        "hold" => {
            let c = creds(args.get(2))?;
            let (count, conc) = (num(&args, 3, 10_000)?, num(&args, 4, 64)?);
            let all = allocations(server, c, count, conc).await?;
            println!("held {}", all.len());
            // Keep them (and answer nothing: lifetimes are 600 s) until stdin closes.
            tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            })
            .await?;
            for (sock, mut core) in all {
                let _ = release(&sock, &mut core).await;
            }
            Ok(())
        }
        _ => Err("usage: turn_load rtt|alloc|hold SERVER ... (see the source)".into()),
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(args))
}
