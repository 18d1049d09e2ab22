//! The session table saved across restarts and upgrades: a JSON file in
//! the data directory, replaced atomically (written aside, fsynced,
//! renamed) and readable by its owner only. It holds secrets' SHA-256, never
//! the credentials themselves.

use crate::identity::SavedSession;
use std::fs;
use std::io::Write;
use std::path::Path;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "sessions.json";

/// Reads saved sessions; a missing file is none.
pub fn load(path: &Path) -> Result<Vec<SavedSession>, String> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a session file: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
    }
}

/// Replaces the file with `sessions`.
pub fn store(path: &Path, sessions: &[SavedSession]) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(&serde_json::to_vec(sessions).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("{}: cannot save sessions: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("sessions-file-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        assert_eq!(load(&path).unwrap(), vec![]);
        let s =
            SavedSession { nick: "a".into(), secret_sha256: "00".repeat(32), created_ms: 1, last_used_ms: 2 };
        store(&path, std::slice::from_ref(&s)).unwrap();
        assert_eq!(load(&path).unwrap(), vec![s]);
        fs::write(&path, b"{not json").unwrap();
        assert!(load(&path).unwrap_err().contains("not a session file"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
