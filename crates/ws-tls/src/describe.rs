//! rustls handshake errors as sentences a user can act on.

use rustls::{AlertDescription, CertificateError, Error};
use rustls_pki_types::{ServerName, UnixTime};

/// Says what a failed client handshake means and what to do about it, in one sentence.
///
/// Certificate problems the user can fix (unknown issuer, a CA certificate served as the server's
/// own, a name the certificate does not cover, expiry, wrong key usage) get their own sentences;
/// anything else falls back to rustls's text.
///
/// ```
/// use rustls::{CertificateError, Error};
/// let e = Error::InvalidCertificate(CertificateError::UnknownIssuer);
/// assert!(ws_tls::describe_error(&e).contains("unknown issuer"));
/// ```
#[must_use]
pub fn describe_error(e: &Error) -> String {
    match e {
        Error::InvalidCertificate(c) => describe_certificate_error(c),
        Error::AlertReceived(alert) => describe_alert(*alert),
        Error::NoCertificatesPresented => "the server sent no certificate".to_owned(),
        Error::PeerIncompatible(why) => {
            format!(
                "the server and this client have no TLS version or cipher suite in common ({why:?})"
            )
        }
        other => other.to_string(),
    }
}

fn describe_alert(alert: AlertDescription) -> String {
    let hint = match alert {
        AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure => {
            "; it may require a client certificate, or share no cipher suite with this client"
        }
        AlertDescription::ProtocolVersion => {
            "; it speaks no TLS version this client offers (TLS 1.2 and 1.3)"
        }
        AlertDescription::UnrecognisedName => "; it does not serve this host name (SNI)",
        AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::CertificateUnknown => "; it did not accept the client certificate",
        _ => "",
    };
    format!("the server refused the TLS handshake (alert: {alert:?}){hint}")
}

/// What to trust instead, said once for the unknown-issuer cases.
const TRUST_HINT: &str = "trust the CA that issued it, or the self-signed certificate itself, \
    with a CA file (`--ca-file FILE` for `wskit client`)";

fn describe_certificate_error(c: &CertificateError) -> String {
    #[allow(deprecated)]
    match c {
        CertificateError::UnknownIssuer => format!(
            "the server's certificate is not signed by a trusted certificate authority (unknown \
             issuer): {TRUST_HINT}"
        ),
        CertificateError::NotValidForName => "the server's certificate is not valid for the host \
             name connected to: connect with a name the certificate lists, or make a certificate \
             for this name (`wskit cert --host NAME`)"
            .to_owned(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = server_name(expected);
            let presented: Vec<String> = presented.iter().map(|p| unquote(p)).collect();
            let listed = if presented.is_empty() {
                "it lists no names".to_owned()
            } else {
                format!("it is for {}", presented.join(", "))
            };
            format!(
                "the server's certificate is not valid for {expected} ({listed}): connect with a \
                 name the certificate lists, or make a certificate for {expected} \
                 (`wskit cert --host {expected}`)"
            )
        }
        CertificateError::Expired => "the server's certificate has expired (or its validity \
             dates are invalid): renew it, or check this machine's clock"
            .to_owned(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "the server's certificate expired on {} ({} ago): renew it, or check this machine's \
             clock",
            date(*not_after),
            ago(time.as_secs().saturating_sub(not_after.as_secs())),
        ),
        CertificateError::NotValidYet => "the server's certificate is not valid yet: check the \
             clocks of this machine and the server"
            .to_owned(),
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "the server's certificate is not valid before {}: check the clocks of this machine \
             and the server",
            date(*not_before)
        ),
        CertificateError::Revoked => {
            "the server's certificate has been revoked: the server needs a new one".to_owned()
        }
        CertificateError::BadSignature => "the server's certificate has a bad signature (damaged, \
             or not issued by the CA it names): reissue it"
            .to_owned(),
        CertificateError::BadEncoding => {
            "the server's certificate is malformed (not valid DER): reissue it".to_owned()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the server's certificate is not meant for TLS servers (its extended key usage lacks \
             serverAuth): issue one with serverAuth"
                .to_owned()
        }
        CertificateError::UnsupportedSignatureAlgorithm
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "the server's certificate is signed with an algorithm this client does not support \
             (use ECDSA P-256/P-384, Ed25519 or RSA with SHA-256 or better)"
                .to_owned()
        }
        CertificateError::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "the server presents a CA certificate (basic constraints CA:TRUE) as its own, which \
             TLS clients refuse: give the server an end-entity certificate (CA:FALSE), for \
             example one made by `wskit cert`, and trust that certificate or the CA that issued it"
                .to_owned()
        }
        other => format!("the server's certificate was refused: {other}"),
    }
}

fn server_name(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// `DnsName("example.org")` -> `example.org`.
fn unquote(s: &str) -> String {
    match (s.find('"'), s.rfind('"')) {
        (Some(a), Some(b)) if b > a => s[a + 1..b].to_owned(),
        _ => s.to_owned(),
    }
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} seconds"),
        s if s < 2 * 3600 => format!("{} minutes", s / 60),
        s if s < 2 * 86_400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a UNIX time.
fn date(t: UnixTime) -> String {
    let secs = t.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(
            date(UnixTime::since_unix_epoch(Duration::ZERO)),
            "1970-01-01 00:00:00 UTC"
        );
        assert_eq!(
            date(UnixTime::since_unix_epoch(Duration::from_secs(
                1_796_551_217
            ))),
            "2026-12-06 10:00:17 UTC"
        );
        assert_eq!(
            date(UnixTime::since_unix_epoch(Duration::from_secs(951_782_400))),
            "2000-02-29 00:00:00 UTC"
        );
    }

    #[test]
    fn certificate_errors_are_sentences_with_what_to_do() {
        let expired = Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_796_637_618)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_796_551_217)),
        });
        assert_eq!(
            describe_error(&expired),
            "the server's certificate expired on 2026-12-06 10:00:17 UTC (24 hours ago): renew it, \
             or check this machine's clock"
        );
        let name = Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("localhost").unwrap(),
            presented: vec!["DnsName(\"example.org\")".to_owned()],
        });
        assert!(
            describe_error(&name).starts_with(
                "the server's certificate is not valid for localhost (it is for example.org)"
            ),
            "{}",
            describe_error(&name)
        );
        let unknown = Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(describe_error(&unknown).contains("--ca-file"));
    }
}
