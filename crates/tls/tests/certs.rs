//! Certificate and key checks: every problem names its file and says what
//! is wrong, as `chat-server -t` and a reload report them.

use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tls::test_cert;

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tls-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check(cert: &Path, key: &Path) -> Result<tls::LoadedCert, tls::CertError> {
    tls::certs::load(cert, key, &tls::provider(), SystemTime::now())
}

fn problem(cert: &Path, key: &Path, file: &Path, words: &str) {
    let e = check(cert, key).expect_err(words);
    assert_eq!(e.file, file, "{e}");
    assert!(e.problem.contains(words), "expected {words:?} in {e}");
    assert!(e.to_string().starts_with(&file.display().to_string()), "{e}");
}

#[test]
fn every_problem_names_the_file_and_what_is_wrong() {
    let dir = dir();
    let good = test_cert::self_signed(&["localhost", "127.0.0.1"]);
    let (cert, key) = good.write(&dir, "good").unwrap();
    let loaded = check(&cert, &key).unwrap();
    assert!(loaded.subject.contains("switchboard test certificate"), "{}", loaded.subject);

    let missing = dir.join("missing.pem");
    problem(&missing, &key, &missing, "no such file");
    problem(&cert, &missing, &missing, "no such file");
    // Unreadable: a directory where a file should be (root reads any file).
    problem(&dir, &key, &dir, "cannot read it");

    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "hello, I am not PEM\n").unwrap();
    problem(&junk, &key, &junk, "not a PEM file");
    problem(&cert, &junk, &junk, "not a PEM file");
    let broken = dir.join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
    problem(&broken, &key, &broken, "PEM");
    // The two files swapped.
    problem(&key, &key, &key, "no certificate in it");
    problem(&cert, &cert, &cert, "no private key in it");

    // A key that belongs to another certificate.
    let other = test_cert::self_signed(&["localhost"]);
    let (_, other_key) = other.write(&dir, "other").unwrap();
    problem(&cert, &other_key, &other_key, "does not match the certificate");

    // Validity.
    let old = test_cert::self_signed_between(&["localhost"], (2000, 1, 1), (2001, 1, 1));
    let (old_cert, old_key) = old.write(&dir, "old").unwrap();
    problem(&old_cert, &old_key, &old_cert, "expired on");
    let early = test_cert::self_signed_between(&["localhost"], (2090, 1, 1), (2099, 1, 1));
    let (early_cert, early_key) = early.write(&dir, "early").unwrap();
    problem(&early_cert, &early_key, &early_cert, "not valid yet");
    let _ = std::fs::remove_dir_all(&dir);
}
