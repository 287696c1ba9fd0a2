//! The Redis engine task: PUBLISH on one multiplexed connection (pipelined), PSUBSCRIBE on a
//! second, dedicated pub/sub connection.

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use tokio::sync::mpsc;

use crate::{
    error::Error,
    link::{Cmd, Core, Naming, backoff, random_u64},
};

const NAMING: Naming = Naming::Redis;

/// Most publishes sent in one pipeline.
const BATCH: usize = 512;

pub(crate) fn start(core: Core, cmds: mpsc::UnboundedReceiver<Cmd>) -> Result<(), Error> {
    let client = redis::Client::open(core.config.url.as_str()).map_err(|e| Error::InvalidUrl {
        url: core.config.url.clone(),
        reason: e.to_string(),
    })?;
    tokio::spawn(run(client, core, cmds));
    Ok(())
}

/// Why a session ended.
enum End {
    /// The link was dropped: stop.
    Dropped,
    /// The engine went away.
    Lost(String),
}

async fn run(client: redis::Client, mut core: Core, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let url = redact(&core.config.url);
    let mut attempt = 0u32;
    loop {
        let end = match open(&client).await {
            Ok((conn, sink, stream)) => {
                attempt = 0;
                session(&mut core, &url, &mut cmds, conn, sink, stream).await
            }
            Err(e) => End::Lost(e.to_string()),
        };
        match end {
            End::Dropped => return,
            End::Lost(cause) => core.down(&url, &cause),
        }
        let delay = backoff(
            attempt,
            core.config.backoff_min,
            core.config.backoff_max,
            random_u64(),
        );
        attempt = attempt.saturating_add(1);
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => core.offline(NAMING, cmd),
                    None => return,
                },
            }
        }
    }
}

/// A URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &url[at..]),
        _ => url.to_owned(),
    }
}

async fn open(
    client: &redis::Client,
) -> redis::RedisResult<(MultiplexedConnection, PubSubSink, PubSubStream)> {
    let conn = client.get_multiplexed_async_connection().await?;
    let (sink, stream) = client.get_async_pubsub().await?.split();
    Ok((conn, sink, stream))
}

/// One connected stretch: resubscribe, replay, then relay until the engine goes away.
async fn session(
    core: &mut Core,
    url: &str,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    mut conn: MultiplexedConnection,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
) -> End {
    let mut patterns = core.engine_set(NAMING);
    patterns.push(core.all_subject(NAMING));
    patterns.push(core.own_node_pattern(NAMING));
    if let Err(e) = sink.psubscribe(&patterns).await {
        return End::Lost(e.to_string());
    }
    core.up(url);
    // Replay what was held, oldest first, in pipelines.
    while !core.buffer.is_empty() {
        let n = core.buffer.len().min(BATCH);
        let batch: Vec<(String, Bytes)> = core.buffer.drain(..n).collect();
        if let Err(e) = publish(&mut conn, &batch).await {
            core.unsend(batch);
            return End::Lost(e.to_string());
        }
        core.sent(n as u64, true);
    }
    let mut batch: Vec<(String, Bytes)> = Vec::new();
    // The first tick is at once: the others learn of this node as soon as it is connected.
    let mut beat = tokio::time::interval(core.config.heartbeat);
    let all = core.all_subject(NAMING);
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let heartbeat = [(all.clone(), core.heartbeat())];
                if let Err(e) = publish(&mut conn, &heartbeat).await {
                    return lost(core, Vec::new(), e);
                }
            }
            cmd = cmds.recv() => {
                let Some(mut cmd) = cmd else { return End::Dropped };
                loop {
                    match cmd {
                        Cmd::Publish(to, env) => {
                            let subject = core.target(NAMING, to.as_deref(), &env);
                            if let Some(bytes) = core.encode(&subject, &env) {
                                batch.push((subject, bytes));
                            }
                        }
                        Cmd::Subscribe(p) => {
                            let new = core.add_pattern(NAMING, p);
                            if !new.is_empty() {
                                if let Err(e) = sink.psubscribe(&new).await {
                                    return lost(core, batch, e);
                                }
                            }
                        }
                        Cmd::Unsubscribe(p) => {
                            let gone = core.remove_pattern(NAMING, &p);
                            if !gone.is_empty() {
                                if let Err(e) = sink.punsubscribe(&gone).await {
                                    return lost(core, batch, e);
                                }
                            }
                        }
                    }
                    if batch.len() >= BATCH {
                        break;
                    }
                    match cmds.try_recv() {
                        Ok(next) => cmd = next,
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    if let Err(e) = publish(&mut conn, &batch).await {
                        return lost(core, batch, e);
                    }
                    core.sent(batch.len() as u64, false);
                    batch.clear();
                }
            }
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return End::Lost("the pub/sub connection closed".to_owned());
                };
                let subject = msg.get_channel_name().to_owned();
                core.arrived(&subject, Bytes::copy_from_slice(msg.get_payload_bytes())).await;
            }
        }
    }
}

/// The engine went away with `batch` unsent (perhaps partly sent): keep it for the replay.
fn lost(core: &mut Core, batch: Vec<(String, Bytes)>, e: redis::RedisError) -> End {
    core.unsend(batch);
    End::Lost(e.to_string())
}

async fn publish(
    conn: &mut MultiplexedConnection,
    batch: &[(String, Bytes)],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for (subject, bytes) in batch {
        pipe.cmd("PUBLISH").arg(subject).arg(&bytes[..]).ignore();
    }
    pipe.query_async::<()>(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redact("redis://:s3cret@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }
}
