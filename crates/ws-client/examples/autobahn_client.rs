//! Autobahn|Testsuite client driver: runs every case of a `wstest -m fuzzingserver` echoing
//! each message back (text as text, binary as binary), with permessage-deflate offered.
//!
//! ```text
//! cargo run --release -p ws-client --example autobahn_client -- ws://127.0.0.1:9001
//! ```

use std::time::Duration;

use ws_client::{ClientConfig, CloseCode, connect};

fn config() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.deflate = Some(ws_frame::deflate::DeflateConfig::default());
    config.connect_timeout = Duration::from_secs(30);
    config.user_agent = "wskit-autobahn".into();
    config
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let base = base.trim_end_matches('/');
    let agent = "wskit";

    let mut ws = connect(format!("{base}/getCaseCount"), config()).await?;
    let count: u32 = match ws.recv().await {
        Some(Ok(msg)) => msg.as_text().unwrap_or("0").trim().parse()?,
        other => return Err(format!("no case count: {other:?}").into()),
    };
    let _ = ws.close(CloseCode::NORMAL, "").await;
    println!("{count} cases");

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        let mut ws = match connect(url, config()).await {
            Ok(ws) => ws,
            Err(e) => {
                eprintln!("case {case}: connect failed: {e}");
                continue;
            }
        };
        while let Some(item) = ws.recv().await {
            match item {
                Ok(msg) => {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if case % 50 == 0 {
            println!("{case}/{count}");
        }
    }

    let ws = connect(format!("{base}/updateReports?agent={agent}"), config()).await?;
    let _ = ws.close(CloseCode::NORMAL, "").await;
    println!("reports updated");
    Ok(())
}
