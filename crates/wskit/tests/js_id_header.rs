//! wskit.js's binary ID-header helpers (`sgcWSBytesWrite` / `sgcWSBytesRead`, the seed's names)
//! and ws-frame's `id_header` write the same bytes and read each other's: the JS runs under node
//! (skipped without node, a failure under `WSKIT_REQUIRE_PEERS=1`).

use std::process::Command;

use ws_frame::id_header::{split_id_header, with_id_header};

const WSKIT_JS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ws-server/assets/wskit.js");

/// Runs `script` under node with `W` bound to wskit.js's exports; returns stdout.
fn node(script: &str) -> Option<String> {
    if !ws_testkit::peers::runs("node", &["--version"]) {
        ws_testkit::peers::missing("node is not installed", "apt-get install -y nodejs");
        return None;
    }
    let out = Command::new("node")
        .arg("-e")
        .arg(format!("const W = require({WSKIT_JS:?});\n{script}"))
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8 output"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn js_and_rust_write_the_same_bytes_and_read_each_other() {
    let cases: [(&str, &[u8]); 5] = [
        ("", b""),
        ("00001", b"\x89PNG\r\n\x1a\n"),
        ("0123456789", &[0, 1, 2, 255]),
        ("é-ü", b"payload"),
        ("a", &[0; 40]),
    ];
    let mut script = String::new();
    for (id, payload) in cases {
        script.push_str(&format!(
            "console.log(Buffer.from(W.sgcWSBytesWrite({id:?}, Buffer.from({:?}, 'hex'))).toString('hex'));\n",
            hex(payload)
        ));
        let rust = with_id_header(id, payload).expect("fits");
        script.push_str(&format!(
            "{{ const r = W.sgcWSBytesRead(Buffer.from({:?}, 'hex')); console.log(JSON.stringify([r.header, Buffer.from(r.data).toString('hex')])); }}\n",
            hex(&rust)
        ));
    }
    script.push_str(
        "try { W.sgcWSBytesWrite('01234567890', []); console.log('accepted'); } catch (e) { console.log('refused'); }\n\
         console.log(JSON.stringify(W.sgcWSBytesRead(Buffer.from('61006200000000000000', 'hex'))));\n",
    );
    let Some(out) = node(&script) else { return };
    let mut lines = out.lines();
    for (id, payload) in cases {
        let js = lines.next().expect("a line per write");
        let rust = with_id_header(id, payload).expect("fits");
        assert_eq!(js, hex(&rust), "JS and Rust bytes differ for id {id:?}");
        let read = lines.next().expect("a line per read");
        assert_eq!(
            read,
            format!("[{id:?},{:?}]", hex(payload)),
            "JS read Rust's bytes for id {id:?} wrongly"
        );
        assert_eq!(split_id_header(&rust), Some((id, payload)));
    }
    assert_eq!(
        lines.next(),
        Some("refused"),
        "an 11-byte ID must be refused"
    );
    assert_eq!(
        lines.next(),
        Some("null"),
        "a NUL inside the ID is no header"
    );
}
