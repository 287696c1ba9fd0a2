//! A tus 1.0 client: uploads a file to any tus server (creation, HEAD, PATCH with a sha1
//! `Upload-Checksum` when the server lists the checksum extension), resumable from the upload
//! URL. Streams the file chunk by chunk over `http://` or `https://` (rustls through ws-tls), one
//! connection per request.

use std::{io::SeekFrom, path::Path, sync::Arc};

use base64::Engine as _;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::rustls;

use crate::error::Error;

/// How an upload ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TusReport {
    /// The upload URL (keep it to resume).
    pub url: String,
    /// Where this call started (non-zero when it resumed).
    pub resumed_at: u64,
    /// The server's offset when this call returned (`size` when complete).
    pub offset: u64,
    /// Bytes in the file.
    pub size: u64,
    /// SHA-256 of the file as read (only when the upload is complete).
    pub sha256: Option<[u8; 32]>,
}

/// A tus client for one server endpoint (the creation URL, e.g. `http://host:1080/files/` or
/// `https://host/files/`).
#[derive(Clone)]
pub struct TusClient {
    /// `http` or `https`.
    scheme: &'static str,
    /// `host:port`.
    authority: String,
    /// The host alone (TLS server name).
    host: String,
    /// TLS settings (`https` only).
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Path of the creation endpoint.
    path: String,
    /// Bytes per PATCH.
    chunk: usize,
    /// Send `Upload-Checksum: sha1` with every PATCH.
    checksum: bool,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn tus_err(status: u16, message: impl Into<String>) -> Error {
    Error::Tus {
        status,
        message: message.into(),
    }
}

/// Writes one request on `s` and reads the response head.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &str,
    body: &[u8],
) -> Result<Reply, Error> {
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await?;
    let mut buf = Vec::with_capacity(1024);
    let mut tmp = [0u8; 4096];
    let end = loop {
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(tus_err(0, "connection closed before a response"));
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(tus_err(0, "response head too large"));
        }
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| tus_err(0, format!("bad status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Ok(Reply { status, headers })
}

impl std::fmt::Debug for TusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TusClient")
            .field(
                "url",
                &format!("{}://{}{}", self.scheme, self.authority, self.path),
            )
            .field("chunk", &self.chunk)
            .field("checksum", &self.checksum)
            .finish_non_exhaustive()
    }
}

fn tls_config(config: &ws_tls::ClientTlsConfig) -> Result<Arc<rustls::ClientConfig>, Error> {
    ws_tls::client_config(config).map_err(|e| Error::Config(format!("TLS: {e}")))
}

impl TusClient {
    /// A client for the creation endpoint `url` (`http://host[:port]/path`, or
    /// `https://host[:port]/path` trusting the built-in web roots; see
    /// [`TusClient::with_tls`]), sending `chunk`-byte PATCH requests.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not `http://` or `https://`, or a zero chunk.
    pub fn new(url: &str, chunk: usize) -> Result<Self, Error> {
        let (scheme, rest, port) = if let Some(r) = url.strip_prefix("http://") {
            ("http", r, 80)
        } else if let Some(r) = url.strip_prefix("https://") {
            ("https", r, 443)
        } else {
            return Err(Error::Config(format!(
                "tus URL {url:?}: expected http:// or https://"
            )));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || chunk == 0 {
            return Err(Error::Config("bad tus URL or chunk size".into()));
        }
        let (authority, host) = match authority.rsplit_once(':') {
            Some((h, _)) if !authority.ends_with(']') => (authority.to_string(), h.to_string()),
            _ => (format!("{authority}:{port}"), authority.to_string()),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = if scheme == "https" {
            Some(tls_config(&ws_tls::ClientTlsConfig::default())?)
        } else {
            None
        };
        Ok(Self {
            scheme,
            authority,
            host,
            tls,
            path: path.to_string(),
            chunk,
            checksum: true,
        })
    }

    /// Whether PATCH requests carry a sha1 `Upload-Checksum` (default true; turned off by
    /// [`TusClient::upload`] when the server does not list the checksum extension).
    #[must_use]
    pub fn with_checksum(mut self, on: bool) -> Self {
        self.checksum = on;
        self
    }

    /// TLS settings for an `https://` endpoint (a private CA in `ca_file`, a client
    /// certificate, ...); ignored for `http://`.
    ///
    /// # Errors
    /// [`Error::Config`] when the files cannot be read or the settings are invalid.
    pub fn with_tls(mut self, config: &ws_tls::ClientTlsConfig) -> Result<Self, Error> {
        if self.scheme == "https" {
            self.tls = Some(tls_config(config)?);
        }
        Ok(self)
    }

    fn path_of(&self, url: &str) -> String {
        match url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        {
            Some(rest) => rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
            None => url.to_string(),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}://{}{location}", self.scheme, self.authority)
        } else {
            let base = self.path.rsplit_once('/').map_or("", |(b, _)| b);
            format!("{}://{}{base}/{location}", self.scheme, self.authority)
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Reply, Error> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\nConnection: close\r\n",
            self.authority
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "PATCH" || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let tcp = TcpStream::connect(&self.authority).await?;
        match &self.tls {
            None => exchange(tcp, &head, body).await,
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|_| Error::Config(format!("bad TLS server name {:?}", self.host)))?;
                let s = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await?;
                exchange(s, &head, body).await
            }
        }
    }

    /// `OPTIONS`: the server's extensions.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Tus`].
    pub async fn extensions(&self) -> Result<Vec<String>, Error> {
        let r = self.request("OPTIONS", &self.path, &[], b"").await?;
        if !(200..300).contains(&r.status) {
            return Err(tus_err(r.status, "OPTIONS failed"));
        }
        Ok(r.header("Tus-Extension")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    /// Creates an upload of `length` bytes with `metadata`; returns its absolute URL.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Tus`] (status and reason).
    pub async fn create(&self, length: u64, metadata: &[(&str, &[u8])]) -> Result<String, Error> {
        let meta = metadata
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    base64::engine::general_purpose::STANDARD.encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut headers = vec![("Upload-Length", length.to_string())];
        if !meta.is_empty() {
            headers.push(("Upload-Metadata", meta));
        }
        let r = self.request("POST", &self.path, &headers, b"").await?;
        if r.status != 201 {
            return Err(tus_err(r.status, "creation refused"));
        }
        let loc = r
            .header("Location")
            .ok_or_else(|| tus_err(r.status, "201 without Location"))?;
        Ok(self.absolute(loc))
    }

    /// `HEAD`: the upload's offset.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Tus`] (404/410 for an unknown or expired upload).
    pub async fn offset(&self, url: &str) -> Result<u64, Error> {
        let r = self.request("HEAD", &self.path_of(url), &[], b"").await?;
        if r.status != 200 && r.status != 204 {
            return Err(tus_err(r.status, "HEAD failed"));
        }
        r.header("Upload-Offset")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| tus_err(r.status, "no Upload-Offset"))
    }

    /// One `PATCH` of `data` at `offset`; returns the new offset.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Tus`] (409 offset conflict, 460 checksum mismatch, ...).
    pub async fn patch(&self, url: &str, offset: u64, data: &[u8]) -> Result<u64, Error> {
        let mut headers = vec![
            (
                "Content-Type",
                "application/offset+octet-stream".to_string(),
            ),
            ("Upload-Offset", offset.to_string()),
        ];
        if self.checksum {
            let d = Sha1::digest(data);
            headers.push((
                "Upload-Checksum",
                format!(
                    "sha1 {}",
                    base64::engine::general_purpose::STANDARD.encode(d)
                ),
            ));
        }
        let r = self
            .request("PATCH", &self.path_of(url), &headers, data)
            .await?;
        if r.status != 204 && r.status != 200 {
            return Err(tus_err(r.status, "PATCH refused"));
        }
        r.header("Upload-Offset")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| tus_err(r.status, "no Upload-Offset"))
    }

    /// Uploads the file at `path`: a new upload (metadata `filename`), or, with `resume`, the
    /// upload at that URL from the server's offset. `max_chunks` stops after that many PATCH
    /// requests (an interrupted upload, for tests and pausing: the report's `offset` says where
    /// it stopped); `None` goes to the end.
    ///
    /// # Errors
    /// [`Error::Io`] reading the file, [`Error::Tus`] from the server.
    pub async fn upload(
        &self,
        path: &Path,
        resume: Option<&str>,
        max_chunks: Option<usize>,
    ) -> Result<TusReport, Error> {
        let mut file = tokio::fs::File::open(path).await?;
        let size = file.metadata().await?.len();
        let url = match resume {
            Some(u) => u.to_string(),
            None => {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("upload")
                    .as_bytes()
                    .to_vec();
                self.create(size, &[("filename", &name)]).await?
            }
        };
        let client = if self.checksum {
            let ext = self.extensions().await.unwrap_or_default();
            self.clone()
                .with_checksum(ext.iter().any(|e| e == "checksum"))
        } else {
            self.clone()
        };
        let start = client.offset(&url).await?;
        let mut offset = start;
        let mut hasher = Sha256::new();
        // The hash covers the whole file: the part already uploaded is read first.
        let mut buf = vec![0u8; self.chunk];
        let mut done = 0u64;
        while done < start {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let n = n.min((start - done) as usize);
            hasher.update(&buf[..n]);
            done += n as u64;
        }
        file.seek(SeekFrom::Start(start)).await?;
        let mut sent = 0usize;
        while offset < size {
            if max_chunks.is_some_and(|m| sent >= m) {
                return Ok(TusReport {
                    url,
                    resumed_at: start,
                    offset,
                    size,
                    sha256: None,
                });
            }
            let want = (size - offset).min(self.chunk as u64) as usize;
            file.read_exact(&mut buf[..want]).await?;
            hasher.update(&buf[..want]);
            offset = client.patch(&url, offset, &buf[..want]).await?;
            sent += 1;
        }
        Ok(TusReport {
            url,
            resumed_at: start,
            offset,
            size,
            sha256: Some(hasher.finalize().into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve() {
        let c = TusClient::new("http://127.0.0.1:1080/files/", 10).unwrap();
        assert_eq!(c.authority, "127.0.0.1:1080");
        assert_eq!(c.absolute("/files/abc"), "http://127.0.0.1:1080/files/abc");
        assert_eq!(c.absolute("abc"), "http://127.0.0.1:1080/files/abc");
        assert_eq!(c.absolute("http://h:1/x"), "http://h:1/x");
        assert_eq!(c.path_of("http://127.0.0.1:1080/files/abc"), "/files/abc");
        assert!(TusClient::new("ftp://x/", 10).is_err());
        let c = TusClient::new("https://example.org/files/", 10).unwrap();
        assert_eq!(c.authority, "example.org:443");
        assert_eq!(c.host, "example.org");
        assert_eq!(
            c.absolute("/files/abc"),
            "https://example.org:443/files/abc"
        );
        assert_eq!(c.path_of("https://example.org:443/files/abc"), "/files/abc");
        assert_eq!(
            TusClient::new("http://host/f", 1).unwrap().authority,
            "host:80"
        );
    }
}
