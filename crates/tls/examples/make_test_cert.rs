//! Writes a self-signed test certificate and its key, for trying TLS out:
//!
//! ```text
//! cargo run -p tls --features test-cert --example make_test_cert -- DIR [NAME...]
//! ```
//!
//! makes `DIR/test.crt` and `DIR/test.key` for the names given (default
//! `localhost` and `127.0.0.1`). Clients must be told to trust `test.crt`
//! (`curl --cacert`, `chat-client --tls --ca`).

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: make_test_cert DIR [NAME...]");
        std::process::exit(2);
    };
    let mut names: Vec<String> = args.collect();
    if names.is_empty() {
        names = vec!["localhost".into(), "127.0.0.1".into()];
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = tls::test_cert::self_signed(&names).write(dir.as_ref(), "test")?;
    println!("certificate: {}\nkey:         {}", cert.display(), key.display());
    Ok(())
}
