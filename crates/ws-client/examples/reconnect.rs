//! A client that stays connected: reconnects with jittered exponential backoff.
//!
//! `ReconnectingWebSocket` keeps one connection up in a background task; when it drops (the
//! server restarts, the network fails) it retries after 0.25 s, 0.5 s, 1 s ... up to 4 s,
//! each delay spread by +/-20 %. `retry_initial` makes it wait for a server that is not up
//! yet. Sends fail while disconnected; the application decides what to do about it (here:
//! skip that tick).
//!
//! ```text
//! cargo run -p ws-client --example reconnect -- [WS_URL] [--for SECONDS]
//! cargo run -p ws-server --example echo -- --for 3     # start, stop, start it again: watch
//! ```
//!
//! Sends `tick N` every half second and prints what comes back and every connection event.
//! With `--for` (or `WSKIT_EXAMPLE_FOR`) it stops after that long and fails if no reply ever
//! came back.

use std::time::Duration;

use ws_client::{ClientConfig, ClientEvent, CloseCode, Reconnect, ReconnectingWebSocket};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "ws://127.0.0.1:9001/".to_owned();
    let mut run_for = std::env::var("WSKIT_EXAMPLE_FOR").ok();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--for" => run_for = Some(args.next().ok_or("--for needs SECONDS")?),
            _ => url = a,
        }
    }
    let run_for = run_for
        .map(|s| s.parse().map(Duration::from_secs_f64))
        .transpose()?;

    let mut policy = Reconnect::default();
    policy.interval = Duration::from_millis(250); // first retry
    policy.multiplier = 2.0; // then 0.5 s, 1 s, 2 s ...
    policy.max_interval = Duration::from_secs(4); // ... never more than 4 s
    policy.jitter = 0.2; // +/- 20 %, so many clients do not retry in step
    policy.max_attempts = 0; // forever
    policy.retry_initial = true; // also wait for a server that is not up yet
    let mut config = ClientConfig::default();
    config.connect_timeout = Duration::from_secs(2);
    config.reconnect = Some(policy);

    let mut ws = ReconnectingWebSocket::connect(url.as_str(), config).await?;
    eprintln!("reconnect: connecting to {url}");
    let stop = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let (mut n, mut replies, mut connects) = (0u64, 0u64, 0u64);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {
                n += 1;
                if ws.is_connected() {
                    let _ = ws.send(format!("tick {n}")).await;
                }
            }
            event = ws.next_event() => match event {
                Some(ClientEvent::Message(msg)) => {
                    replies += 1;
                    println!("{}", msg.as_text().unwrap_or("<binary>"));
                }
                Some(ClientEvent::Reconnected { url, attempt }) => {
                    connects += 1;
                    eprintln!("reconnect: connected to {url} after {attempt} attempt(s)");
                }
                Some(ClientEvent::Disconnected { info, error }) => {
                    eprintln!("reconnect: disconnected ({info:?}, {error:?}); retrying");
                }
                Some(ClientEvent::AttemptFailed { attempt, error }) => {
                    eprintln!("reconnect: attempt {attempt} failed: {error}");
                }
                Some(ClientEvent::GaveUp(error)) => return Err(error.into()),
                Some(other) => eprintln!("reconnect: {other:?}"),
                None => break,
            },
        }
    }
    let _ = ws.close(CloseCode::NORMAL, "done").await;
    eprintln!("reconnect: {replies} replies, {connects} reconnection(s)");
    if run_for.is_some() && replies == 0 {
        return Err("no reply came back".into());
    }
    Ok(())
}
