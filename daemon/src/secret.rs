//! Small helpers for secrets: random tokens, private files, constant-time comparison.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::RngCore;

/// `bytes` random bytes as lowercase hex, from the thread's CSPRNG (ChaCha, seeded and
/// periodically reseeded from the OS): no system call per id on hot paths.
pub fn random_hex(bytes: usize) -> String {
    use std::fmt::Write;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().fold(String::with_capacity(bytes * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `prefix` + a sortable id: the time in milliseconds (12 hex digits) followed by 8 random bytes
/// (16 hex digits). Ids made later sort later, so tables keyed by them grow at their end (cheap
/// B-tree inserts) and list in creation order; the random part keeps them unguessable.
pub fn sortable_id(prefix: &str) -> String {
    use std::fmt::Write;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut out = String::with_capacity(prefix.len() + 28);
    out.push_str(prefix);
    let _ = write!(out, "{:012x}{:016x}", millis & 0xffff_ffff_ffff, rand::thread_rng().next_u64());
    out
}

/// Writes `contents` to `path` readable by its owner only (mode 0600), replacing any old file.
pub fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_random_and_files_private() {
        let (a, b) = (random_hex(32), random_hex(32));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookie");
        write_private(&path, &a).unwrap();
        write_private(&path, &b).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), b);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (first, second) = (sortable_id("q_"), sortable_id("q_"));
        assert!(first.starts_with("q_") && first.len() == 30 && first != second);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(sortable_id("q_") > second, "later ids sort later");
        assert!(equal(b"abc", b"abc") && !equal(b"abc", b"abd") && !equal(b"abc", b"ab"));
    }
}
