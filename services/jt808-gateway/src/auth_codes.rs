//! Authentication codes, issued at registration and persisted, so that a
//! terminal that reconnects after a gateway restart can authenticate
//! without registering again (terminals register once and keep the code).
//!
//! The codes live in `auth-codes.log` in the state directory
//! (`CITYBRAIN_JT808_STATE_DIR`): one line per change, `<number> <code>`
//! when a code is issued and `<number> -` when a logout (0x0003) revokes
//! it; the last line of a number wins. Each change is appended and synced
//! to disk before the terminal is answered. At start the log is read and
//! rewritten compacted (through a temporary file and a rename, so a crash
//! leaves the old or the new file, never half of one). One gateway process
//! owns a state directory.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const FILE: &str = "auth-codes.log";
const REVOKED: &str = "-";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {problem}")]
    Corrupt {
        path: String,
        line: usize,
        problem: String,
    },
}

/// The codes of all terminals, shared by every connection.
#[derive(Clone)]
pub struct AuthCodes {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    codes: HashMap<String, String>,
    log: File,
}

impl AuthCodes {
    /// Opens (or creates) the state directory and its code log.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join(FILE);
        let io = |source| StateError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let codes = match File::open(&path) {
            Ok(file) => read_log(file, &path)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(err) => return Err(io(err)),
        };
        compact(&codes, &path).map_err(io)?;
        let log = OpenOptions::new().append(true).open(&path).map_err(io)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner { codes, log })),
        })
    }

    /// The code of terminal `number` (registry form), if one was issued.
    pub fn get(&self, number: &str) -> Option<String> {
        self.lock().codes.get(number).cloned()
    }

    /// The terminal's code: the one it was given before, or a new one,
    /// written to disk before this returns. Blocking: call it off the
    /// runtime's threads.
    pub fn issue(&self, number: &str) -> std::io::Result<String> {
        let mut inner = self.lock();
        if let Some(code) = inner.codes.get(number) {
            return Ok(code.clone());
        }
        let code = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        inner.append(number, &code)?;
        inner.codes.insert(number.to_string(), code.clone());
        Ok(code)
    }

    /// Forgets the terminal's code (logout). Blocking, like [`Self::issue`].
    pub fn revoke(&self, number: &str) -> std::io::Result<()> {
        let mut inner = self.lock();
        if inner.codes.contains_key(number) {
            inner.append(number, REVOKED)?;
            inner.codes.remove(number);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.lock().codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated
        // (each change is one insert or remove), so a poisoned lock is fine.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn append(&mut self, number: &str, code: &str) -> std::io::Result<()> {
        self.log
            .write_all(format!("{number} {code}\n").as_bytes())?;
        self.log.sync_data()
    }
}

fn read_log(file: File, path: &Path) -> Result<HashMap<String, String>, StateError> {
    let mut codes = HashMap::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let corrupt = |problem: &str| StateError::Corrupt {
            path: path.display().to_string(),
            line: i + 1,
            problem: problem.into(),
        };
        let Some((number, code)) = line.split_once(' ') else {
            // A crash in the middle of an append leaves a partial last line:
            // that change was never confirmed to the terminal.
            if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
                return Err(corrupt("expected \"<number> <code>\""));
            }
            continue;
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(corrupt("the terminal number is not decimal digits"));
        }
        if code == REVOKED {
            codes.remove(number);
        } else if !code.is_empty() && code.bytes().all(|b| b.is_ascii_graphic()) {
            codes.insert(number.to_string(), code.to_string());
        } else {
            return Err(corrupt("the code is not printable ASCII"));
        }
    }
    Ok(codes)
}

fn compact(codes: &HashMap<String, String>, path: &Path) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("log.tmp");
    let mut lines: Vec<_> = codes.iter().collect();
    lines.sort();
    let mut file = File::create(&tmp)?;
    for (number, code) in lines {
        writeln!(file, "{number} {code}")?;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // The rename is durable once the directory is.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jt808-codes-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn codes_survive_a_restart_and_logout_revokes_them() {
        let dir = dir();
        let codes = AuthCodes::open(&dir).unwrap();
        let first = codes.issue("13912345678").unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(
            codes.issue("13912345678").unwrap(),
            first,
            "same code again"
        );
        let other = codes.issue("13900000002").unwrap();
        codes.revoke("13900000002").unwrap();
        drop(codes);

        let reopened = AuthCodes::open(&dir).unwrap();
        assert_eq!(reopened.get("13912345678"), Some(first));
        assert_eq!(reopened.get("13900000002"), None);
        assert_ne!(reopened.issue("13900000002").unwrap(), other, "a new code");
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert_eq!(
            text.lines().count(),
            2,
            "compacted, plus one append: {text}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_garbage_is_refused() {
        let dir = dir();
        std::fs::write(dir.join(FILE), "139 abc\n1390").unwrap();
        assert_eq!(
            AuthCodes::open(&dir).unwrap().get("139").as_deref(),
            Some("abc")
        );
        std::fs::write(dir.join(FILE), "hello world\n").unwrap();
        let err = AuthCodes::open(&dir).err().unwrap().to_string();
        assert!(
            err.contains("line 1") && err.contains("decimal digits"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
