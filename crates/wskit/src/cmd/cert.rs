//! `wskit cert --host NAME`: a self-signed certificate and key for development TLS.
//!
//! The certificate is an end-entity certificate (basic constraints CA:FALSE, extended key usage
//! serverAuth) for the names and addresses given with `--host`, signed by its own ECDSA P-256
//! key. Being self-signed, it is its own trust anchor: `wskit client --ca-file cert.pem` trusts
//! exactly this certificate, and `wskit serve --tls-cert cert.pem --tls-key key.pem` serves it.
//! (A CA certificate, CA:TRUE, would be refused by clients when a server presents it as its own;
//! `openssl req -x509` makes one unless told otherwise, see docs/tls-development.md.)

use std::{
    io::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// Flags of `wskit cert`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The same with openssl (keep CA:FALSE: a CA certificate served as the \
    server's own is refused):\n  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -nodes -days 365 \\\n    -keyout key.pem -out cert.pem -subj /CN=localhost \\\n    \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \\\n    \
    -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth"
)]
pub(crate) struct Args {
    /// Host name or IP address the certificate is for (repeatable). The first one is also the
    /// subject's common name.
    #[arg(long = "host", value_name = "NAME|IP", required = true)]
    pub(crate) hosts: Vec<String>,
    /// Directory to write cert.pem and key.pem into (created when missing). Default: the
    /// current directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) out: PathBuf,
    /// Days the certificate is valid, from yesterday (a little clock skew is fine). Default: 365.
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub(crate) days: u32,
    /// Replace cert.pem and key.pem when they exist.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Writes `cert.pem` and `key.pem` and says how to use them.
pub(crate) fn run(args: &Args) -> Result<()> {
    let (cert, key) = generate(&args.hosts, args.days)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let cert_path = args.out.join("cert.pem");
    let key_path = args.out.join("key.pem");
    if !args.force {
        for p in [&cert_path, &key_path] {
            if p.exists() {
                bail!("{} exists; pass --force to replace it", p.display());
            }
        }
    }
    write_file(&key_path, key.as_bytes(), true)?;
    write_file(&cert_path, cert.as_bytes(), false)?;
    println!(
        "wrote {} (self-signed, for {}; valid {} days) and {}",
        cert_path.display(),
        args.hosts.join(", "),
        args.days,
        key_path.display()
    );
    let host = url_host(&args.hosts[0]);
    println!(
        "serve:  wskit serve --listen 127.0.0.1:8443 --tls-cert {} --tls-key {}",
        cert_path.display(),
        key_path.display()
    );
    println!(
        "client: wskit client --ca-file {} wss://{host}:8443/echo",
        cert_path.display()
    );
    Ok(())
}

fn url_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host.to_owned(),
    }
}

/// Writes a new file; the key is readable by its owner only (on Unix).
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A self-signed end-entity certificate for `hosts` and its key, both PEM.
pub(crate) fn generate(hosts: &[String], days: u32) -> Result<(String, String)> {
    if days == 0 {
        bail!("--days must be at least 1");
    }
    let mut params = CertificateParams::default();
    for h in hosts {
        let h = h.trim_start_matches('[').trim_end_matches(']');
        let san = match h.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                h.to_owned()
                    .try_into()
                    .with_context(|| format!("--host {h:?}: not a host name or IP address"))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    params
        .distinguished_name
        .push(DnType::CommonName, hosts[0].clone());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // From yesterday: a little clock skew between machines is fine.
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(86_400)).into();
    params.not_after = (now + Duration::from_secs(86_400 * u64::from(days))).into();
    let key = KeyPair::generate().context("generating the key")?;
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}
