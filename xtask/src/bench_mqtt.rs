//! `cargo xtask bench mqtt [--rate 1000] [--clients 1000]`: proto-mqtt side by side with
//! rumqttc against one mosquitto.
//!
//! Builds `wskit-benches`' `mqtt_load` example in release, starts mosquitto on a free loopback
//! port (`max_inflight_messages 100`, both clients use a window of 100, MQTT 3.1.1), and runs,
//! for each client library in turn:
//! - throughput at QoS 0, 1 and 2 with 64 B and 4 KiB payloads (one publisher, one subscriber:
//!   messages per second delivered), with the broker's CPU seconds per 100k messages;
//! - publish-to-receive latency p50 / p99 at QoS 1, 64 B, `--rate` messages per second;
//! - VmRSS growth per idle connected client with `--clients` clients.
//!
//! Needs `mosquitto` on PATH. Not part of CI's test run.

use std::{collections::BTreeMap, path::Path, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};

use crate::proc::{Proc, cpu_secs, field, free_port, target_dir, wait_listening, with_nofile};
use crate::report::{Area, Better, Row};
use crate::util::{cargo, have, step};

const LIBS: [&str; 2] = ["wskit", "rumqttc"];

/// Runs the comparison, prints a table and returns the figures; `quick` sends a tenth of the
/// messages in the throughput runs.
pub(crate) fn run(rate: u64, clients: u64, quick: bool) -> Result<Area> {
    if !have("mosquitto") {
        bail!("mosquitto not found: apt-get install mosquitto");
    }
    step(
        "build the MQTT load generator",
        cargo().args([
            "build",
            "--release",
            "-p",
            "wskit-benches",
            "--example",
            "mqtt_load",
        ]),
    )?;
    let load = target_dir().join("release/examples/mqtt_load");
    let dir = std::env::temp_dir().join(format!("wskit-bench-mqtt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 100\n\
             max_queued_messages 0\nmax_connections -1\npersistence false\nlog_dest none\n"
        ),
    )?;
    let mut broker = Proc::new(
        with_nofile(
            Path::new("mosquitto"),
            &["-c".into(), conf.display().to_string()],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mosquitto")?,
    );
    if let Some(st) = wait_listening(&mut broker, port, Duration::from_secs(10))? {
        bail!("mosquitto exited: {st}");
    }
    let pid = broker.pid();
    let run = |args: Vec<String>| -> Result<String> {
        let out = with_nofile(&load, &args)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", load.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with("summary:"))
            .map(str::to_owned);
        match (out.status.success(), line) {
            (true, Some(l)) => Ok(l),
            _ => bail!("mqtt_load {args:?} failed: {text}"),
        }
    };
    let port_s = port.to_string();
    // (test, lib) -> (value, broker CPU s)
    let mut results: BTreeMap<(String, &str), (f64, f64)> = BTreeMap::new();
    for (qos, size, count) in [
        (0, 64, 200_000u64),
        (1, 64, 50_000),
        (2, 64, 30_000),
        (0, 4096, 50_000),
        (1, 4096, 20_000),
        (2, 4096, 15_000),
    ] {
        let count = if quick { count / 10 } else { count };
        for lib in LIBS {
            let cpu0 = cpu_secs(pid).unwrap_or(0.0);
            let line = run(vec![
                "throughput".into(),
                "--client".into(),
                lib.into(),
                "--port".into(),
                port_s.clone(),
                "--qos".into(),
                qos.to_string(),
                "--size".into(),
                size.to_string(),
                "--count".into(),
                count.to_string(),
            ])?;
            let cpu = cpu_secs(pid).unwrap_or(0.0) - cpu0;
            let mps = field(&line, "msgs_per_sec").unwrap_or(0.0);
            let delivered = field(&line, "delivered").unwrap_or(0.0);
            eprintln!("  {lib:8} qos{qos} {size:5} B: {line}");
            results.insert(
                (format!("throughput qos{qos} {size} B (msg/s)"), lib),
                (mps, cpu / delivered.max(1.0) * 100_000.0),
            );
        }
    }
    for lib in LIBS {
        let line = run(vec![
            "latency".into(),
            "--client".into(),
            lib.into(),
            "--port".into(),
            port_s.clone(),
            "--qos".into(),
            "1".into(),
            "--size".into(),
            "64".into(),
            "--rate".into(),
            rate.to_string(),
            "--secs".into(),
            "3".into(),
        ])?;
        eprintln!("  {lib:8} latency: {line}");
        for key in ["p50_us", "p99_us"] {
            results.insert(
                (format!("latency qos1 64 B at {rate}/s {key}"), lib),
                (field(&line, key).unwrap_or(0.0), 0.0),
            );
        }
        let line = run(vec![
            "rss".into(),
            "--client".into(),
            lib.into(),
            "--port".into(),
            port_s.clone(),
            "--clients".into(),
            clients.to_string(),
        ])?;
        eprintln!("  {lib:8} rss: {line}");
        results.insert(
            (format!("RSS per idle client, {clients} clients (KiB)"), lib),
            (field(&line, "rss_kib_per_client").unwrap_or(0.0), 0.0),
        );
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "\n{:<44} {:>12} {:>12} {:>7}   broker CPU s/100k msgs (wskit, rumqttc)",
        "MQTT (mosquitto, 3.1.1, window 100)", "wskit", "rumqttc", "ratio"
    );
    let tests: Vec<String> = {
        let mut seen = Vec::new();
        for (t, _) in results.keys() {
            if !seen.contains(t) {
                seen.push(t.clone());
            }
        }
        seen
    };
    let mut area = Area::new(
        "mqtt",
        "MQTT client",
        &format!("cargo xtask bench mqtt --rate {rate} --clients {clients}"),
    );
    area.note(format!(
        "proto-mqtt (wskit) and rumqttc against the same mosquitto (MQTT 3.1.1, window 100): \
         messages per second delivered from one publisher to one subscriber, publish-to-receive \
         latency at QoS 1 and {rate} messages/s, and VmRSS growth per idle client with \
         {clients} clients.{}",
        if quick {
            " This quick run sent a tenth of the messages of a full run."
        } else {
            ""
        }
    ));
    for t in tests {
        let (w, wc) = results[&(t.clone(), "wskit")];
        let (r, rc) = results[&(t.clone(), "rumqttc")];
        let ratio = if r > 0.0 { w / r } else { 0.0 };
        let cpu = if t.starts_with("throughput") {
            format!("   {wc:.2}, {rc:.2}")
        } else {
            String::new()
        };
        println!("{t:<44} {w:>12.1} {r:>12.1} {ratio:>7.2}{cpu}");
        let (unit, better) = if t.starts_with("throughput") {
            ("msgs/s", Better::HigherIsBetter)
        } else if t.starts_with("latency") {
            ("µs", Better::LowerIsBetter)
        } else {
            ("KiB/client", Better::LowerIsBetter)
        };
        // The test names carry their unit in parentheses; the table has a unit column.
        let case = t.split(" (").next().unwrap_or(&t).to_owned();
        area.rows
            .push(Row::vs(case, unit, better, ("wskit", w), ("rumqttc", r)));
    }
    println!("(throughput: higher is better; latency and RSS: lower is better)");
    Ok(area)
}
