//! Static files and server-sent events on one port.
//!
//! Files come from a directory (`--root DIR`; without it the example writes a small page to a
//! temporary directory); `GET /events` with `Accept: text/event-stream` opens an event stream,
//! and a task sends every stream a `tick` event each second through the server handle. The
//! page subscribes with the browser's `EventSource`.
//!
//! ```text
//! cargo run -p ws-server --example static_sse -- [--listen 127.0.0.1:9003] [--root DIR] [--for SECONDS]
//! curl http://127.0.0.1:9003/                                   # the page
//! curl -N -H 'Accept: text/event-stream' http://127.0.0.1:9003/events
//! ```

use std::{path::PathBuf, time::Duration};

use ws_server::{Binding, Ctx, Filter, Handler, Server, ServerConfig, SseEvent, Transport};

const PAGE: &str = r#"<!doctype html>
<title>ticks</title>
<pre id="log"></pre>
<script>
  const log = document.getElementById("log");
  new EventSource("/events").addEventListener("tick", (e) => { log.textContent += e.data + "\n"; });
</script>
"#;

struct App;

impl Handler for App {
    // SSE streams are connections too (Transport::Sse): they get on_connect, and
    // write_to / broadcast / channels reach them. They only send.
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        if ctx.info().transport() == Transport::Sse {
            let _ = ctx.send_event(&SseEvent::new("welcome").with_event("tick"));
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listen, root, run_for) = args()?;
    // Without --root: a temporary directory holding index.html, removed at the end.
    let temp = std::env::temp_dir().join(format!("ws-server-static-sse-{}", std::process::id()));
    let root = match root {
        Some(dir) => dir,
        None => {
            std::fs::create_dir_all(&temp)?;
            std::fs::write(temp.join("index.html"), PAGE)?;
            temp.clone()
        }
    };

    let mut config = ServerConfig::new(vec![Binding::plain(listen.parse()?)]);
    config.document_root = Some(root.clone()); // GET/HEAD of files; index.html for directories
    config.sse.enabled = true;
    config.sse.paths = vec!["/events".into()];
    let server = Server::start(config, App).await?;
    println!(
        "listening on {} (files from {})",
        server.local_addrs()[0],
        root.display()
    );

    let ticker = server.clone();
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            n += 1;
            let event = SseEvent::new(format!("tick {n}"))
                .with_event("tick")
                .with_id(n.to_string()); // a reconnecting EventSource sends Last-Event-ID
            ticker
                .broadcast_event(event, &Filter::path("/events"))
                .await;
        }
    });

    match run_for {
        Some(d) => tokio::time::sleep(d).await,
        None => tokio::signal::ctrl_c().await?,
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&temp);
    Ok(())
}

type Args = (String, Option<PathBuf>, Option<Duration>);

/// `--listen ADDR`, `--root DIR` and `--for SECONDS` (or `WSKIT_EXAMPLE_FOR`).
fn args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:9003".to_owned();
    let mut root = None;
    let mut run_for = std::env::var("WSKIT_EXAMPLE_FOR").ok();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs ADDR")?,
            "--root" => root = Some(args.next().ok_or("--root needs DIR")?.into()),
            "--for" => run_for = Some(args.next().ok_or("--for needs SECONDS")?),
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let run_for = run_for
        .map(|s| s.parse().map(Duration::from_secs_f64))
        .transpose()?;
    Ok((listen, root, run_for))
}
