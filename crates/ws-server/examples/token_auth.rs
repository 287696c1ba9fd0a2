//! Token authentication for every route: `Authorization: Bearer TOKEN` or `?token=TOKEN`.
//!
//! `AuthConfig` runs before anything else (WebSocket upgrades, SSE, files, `on_http`); what
//! its built-in Basic user list does not settle goes to an `Authenticator`, here one that
//! knows a fixed set of tokens. A refused request gets 401 and never reaches the handler;
//! an accepted one carries its user in `ConnInfo::user`. `/health` stays public.
//!
//! ```text
//! cargo run -p ws-server --example token_auth -- [--listen 127.0.0.1:9004] [--token T] [--for SECONDS]
//! cargo run -p ws-client --example through_proxy -- "ws://127.0.0.1:9004/?token=let-me-in" hello
//! curl -i http://127.0.0.1:9004/health                    # 200 without a token
//! ```

use std::{collections::HashMap, sync::Arc, time::Duration};

use ws_server::{
    AuthConfig, AuthOutcome, Authenticator, Binding, Body, BoxFuture, Ctx, Handler, Request,
    Response, Server, ServerConfig,
};

/// Tokens and the user each one stands for (in real life: verify a JWT, ask an
/// introspection endpoint; auth-oauth2-jwt has a guard that plugs in here).
struct Tokens(HashMap<String, String>);

impl Tokens {
    fn check(&self, token: &str) -> AuthOutcome {
        match self.0.get(token) {
            Some(user) => AuthOutcome::allow(user.clone()),
            None => AuthOutcome::Unauthorized,
        }
    }
}

impl Authenticator for Tokens {
    // `Authorization: <scheme> <data>` for schemes other than Basic.
    fn scheme<'a>(
        &'a self,
        _request: &'a Request,
        scheme: &'a str,
        data: &'a str,
    ) -> BoxFuture<'a, AuthOutcome> {
        let outcome = if scheme.eq_ignore_ascii_case("bearer") {
            self.check(data)
        } else {
            AuthOutcome::Unauthorized
        };
        Box::pin(async move { outcome })
    }

    // The `?token=` query parameter (AuthConfig::query_param), for browsers' WebSocket API,
    // which cannot set headers.
    fn token<'a>(&'a self, _request: &'a Request, token: &'a str) -> BoxFuture<'a, AuthOutcome> {
        let outcome = self.check(token);
        Box::pin(async move { outcome })
    }
}

struct Greeter;

impl Handler for Greeter {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let user = ctx.info().user().unwrap_or("nobody").to_owned();
        eprintln!(
            "token_auth: {user} connected from {}",
            ctx.info().peer_addr()
        );
    }

    async fn on_text(&self, ctx: &mut Ctx<'_>, text: ws_frame::Utf8Bytes) {
        let user = ctx.info().user().unwrap_or("nobody").to_owned();
        let _ = ctx.send(format!("{user} said: {text}"));
    }

    async fn on_http(&self, request: &Request, _body: &mut Body<'_>) -> Response {
        match request.path() {
            "/health" => Response::text(200, "ok\n"),
            _ => Response::new(404),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listen, token, run_for) = args()?;
    let tokens = Tokens(HashMap::from([(token, "alice".to_owned())]));
    let mut auth = AuthConfig::with_authenticator(Arc::new(tokens)).with_public("/health");
    auth.query_param = Some("token".into());

    let mut config = ServerConfig::new(vec![Binding::plain(listen.parse()?)]);
    config.auth = Some(auth);
    let server = Server::start(config, Greeter).await?;
    println!("listening on {}", server.local_addrs()[0]);

    match run_for {
        Some(d) => tokio::time::sleep(d).await,
        None => tokio::signal::ctrl_c().await?,
    }
    server.stop().await;
    Ok(())
}

/// `--listen ADDR`, `--token TOKEN` (default `let-me-in`) and `--for SECONDS` (or
/// `WSKIT_EXAMPLE_FOR`).
fn args() -> Result<(String, String, Option<Duration>), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:9004".to_owned();
    let mut token = "let-me-in".to_owned();
    let mut run_for = std::env::var("WSKIT_EXAMPLE_FOR").ok();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs ADDR")?,
            "--token" => token = args.next().ok_or("--token needs TOKEN")?,
            "--for" => run_for = Some(args.next().ok_or("--for needs SECONDS")?),
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let run_for = run_for
        .map(|s| s.parse().map(Duration::from_secs_f64))
        .transpose()?;
    Ok((listen, token, run_for))
}
