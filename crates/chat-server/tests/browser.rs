//! The chat page in a real browser: headless Debian Chromium driven by
//! puppeteer-core (tests/browser/chat.mjs). Two pages and a terminal
//! `chat-client` chat in one room and see each other's presence; the
//! server restarts on its data directory and the pages carry on. The
//! screenshots land in this crate's test temporary directory under
//! target/ (never committed) and are checked not blank.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "needs chromium, node and npm ci in tests/browser; run by .ci/run with --ignored"]
fn two_pages_and_a_terminal_client_chat_and_survive_a_restart() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/puppeteer-core").is_dir(),
        "puppeteer-core is not installed: run `npm ci --prefix {}`",
        dir.display()
    );
    assert!(Path::new("/usr/bin/chromium").exists(), "no /usr/bin/chromium: apt-get install chromium");
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let out = Command::new("node")
        .arg(dir.join("chat.mjs"))
        .env("CHAT_SERVER", env!("CARGO_BIN_EXE_chat-server"))
        .env("CHAT_CLIENT", env!("CARGO_BIN_EXE_chat-client"))
        .env("ARTIFACTS", &artifacts)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    for shot in ["chat-desktop.png", "chat-phone.png", "chat-phone-after-restart.png"] {
        assert!(artifacts.join(shot).is_file(), "{shot} saved");
    }
    println!("screenshots in {}", artifacts.display());
}
