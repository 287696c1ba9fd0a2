//! The core NATS engine task. async-nats reconnects (with our backoff) and resubscribes by
//! itself; this task follows its connection events to apply the outage policy (hold
//! broadcasts while disconnected, replay them once connected again) and to log each outage
//! once.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    error::Error,
    link::{Cmd, Core, Naming, backoff, random_u64},
};

const NAMING: Naming = Naming::Nats;

pub(crate) fn start(core: Core, cmds: mpsc::UnboundedReceiver<Cmd>) -> Result<(), Error> {
    tokio::spawn(run(core, cmds));
    Ok(())
}

/// What the subscription tasks and the event callback tell the engine task.
enum Input {
    Message(String, Bytes),
    Event(async_nats::Event),
}

async fn run(mut core: Core, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let url = core.config.url.clone();
    let (in_tx, mut inputs) = mpsc::channel::<Input>(core.config.incoming);
    let events = in_tx.clone();
    let (min, max) = (core.config.backoff_min, core.config.backoff_max);
    let options = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempt| {
            backoff(
                u32::try_from(attempt).unwrap_or(u32::MAX),
                min,
                max,
                random_u64(),
            )
        })
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                let _ = events.send(Input::Event(event)).await;
            }
        });
    // With retry_on_initial_connect this returns at once and connects in the background.
    let client = match options.connect(url.as_str()).await {
        Ok(c) => c,
        Err(e) => {
            core.down(&url, &e);
            return;
        }
    };
    let mut subs: HashMap<String, JoinHandle<()>> = HashMap::new();
    let subscribe = |client: &async_nats::Client, subject: String| {
        let client = client.clone();
        let tx = in_tx.clone();
        tokio::spawn(async move {
            let mut sub = match client.subscribe(subject.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(subject, error = %e, "backplane: NATS subscription failed");
                    return;
                }
            };
            while let Some(msg) = sub.next().await {
                let subject = msg.subject.to_string();
                if tx.send(Input::Message(subject, msg.payload)).await.is_err() {
                    return;
                }
            }
        })
    };
    let all_subject = core.all_subject(NAMING);
    subs.insert(all_subject.clone(), subscribe(&client, all_subject));
    let own = core.own_node_pattern(NAMING);
    subs.insert(own.clone(), subscribe(&client, own));
    let mut last_error = String::from("connection lost");
    let mut beat = tokio::time::interval(core.config.heartbeat);
    let all = core.all_subject(NAMING);
    loop {
        tokio::select! {
            _ = beat.tick() => {
                if core.counters.connected.load(std::sync::atomic::Ordering::Acquire) {
                    let _ = client.publish(all.clone(), core.heartbeat()).await;
                }
            }
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    Cmd::Publish(to, env)
                        if core.counters.connected.load(std::sync::atomic::Ordering::Acquire) =>
                    {
                        let subject = core.target(NAMING, to.as_deref(), &env);
                        if let Some(bytes) = core.encode(&subject, &env) {
                            if client.publish(subject.clone(), bytes.clone()).await.is_err() {
                                core.hold(subject, bytes);
                            } else {
                                core.sent(1, false);
                            }
                        }
                    }
                    Cmd::Subscribe(p) => {
                        for subject in core.add_pattern(NAMING, p) {
                            let task = subscribe(&client, subject.clone());
                            subs.insert(subject, task);
                        }
                    }
                    Cmd::Unsubscribe(p) => {
                        for subject in core.remove_pattern(NAMING, &p) {
                            if let Some(task) = subs.remove(&subject) {
                                // Dropping the subscriber unsubscribes.
                                task.abort();
                            }
                        }
                    }
                    cmd @ Cmd::Publish(..) => core.offline(NAMING, cmd),
                }
            }
            input = inputs.recv() => match input {
                Some(Input::Message(subject, payload)) => core.arrived(&subject, payload).await,
                Some(Input::Event(async_nats::Event::Connected)) => {
                    core.up(&url);
                    while let Some((subject, bytes)) = core.buffer.pop_front() {
                        if client.publish(subject.clone(), bytes.clone()).await.is_err() {
                            core.unsend(vec![(subject, bytes)]);
                            break;
                        }
                        core.sent(1, true);
                    }
                }
                Some(Input::Event(async_nats::Event::Disconnected)) => core.down(&url, &last_error),
                Some(Input::Event(async_nats::Event::ClientError(e))) => {
                    // A failed (re)connect attempt: the cause of the outage.
                    last_error = e.to_string();
                    if !core.counters.connected.load(std::sync::atomic::Ordering::Acquire) {
                        core.down(&url, &last_error);
                    }
                }
                Some(Input::Event(async_nats::Event::ServerError(e))) => last_error = e.to_string(),
                Some(Input::Event(other)) => tracing::debug!(event = %other, "backplane: NATS event"),
                None => break,
            },
        }
    }
    for task in subs.into_values() {
        task.abort();
    }
}
