//! Backups and restore.
//!
//! `backup.export` makes one tar file, readable with `tar tf`:
//! - `manifest.json`: network, when, the mnemonic's master fingerprint, node id, channels and
//!   treasury balance at export, every file's size and SHA-256;
//! - `sendero.sqlite`: the gateway's books (payments, ledger, invoices, API keys, webhooks, audit);
//! - `lightning/ldk_node_data.sqlite`: the Lightning node's channel monitors, channel manager,
//!   peers, payments and its on-chain wallet;
//! - `operator-webhook.secret`, when there is one;
//! - `mnemonic`, only when asked (`include_mnemonic`).
//!
//! The databases are copied live with SQLite's `VACUUM INTO`, which writes a consistent
//! snapshot while senderod and ldk-node keep writing. The treasury's BDK wallet is not copied: a
//! restored gateway rebuilds it from the mnemonic, scanning from the wallet's birthday (which the
//! books carry).
//!
//! `senderod --restore-from FILE [--mnemonic-file FILE]` writes a bundle into an empty data dir,
//! after checking every file's hash and that the mnemonic is the one the bundle was made with.
//!
//! A Lightning backup is only safe while it is the newest state: a node restored from an older
//! one that then broadcasts an old commitment loses the channel to a penalty. Restore the newest
//! backup, and never start the old data dir again.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sendero_wallet::bitcoin::hashes::{sha256, Hash};
use sendero_wallet::bitcoin::Network;
use sendero_wallet::keys::{self, Mnemonic};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The bundle's format version.
pub const FORMAT: u32 = 1;
/// The manifest's name inside the bundle.
pub const MANIFEST: &str = "manifest.json";
/// The Lightning node's store, relative to the data dir (ldk-node's default SQLite file in
/// `<datadir>/lightning`).
pub const LN_STORE: &str = "lightning/ldk_node_data.sqlite";
/// The gateway's store, relative to the data dir.
pub const STORE: &str = "sendero.sqlite";
/// The operator webhook's signing secret, relative to the data dir.
pub const OPERATOR_SECRET: &str = "operator-webhook.secret";
/// The mnemonic, relative to the data dir.
pub const MNEMONIC: &str = "mnemonic";
/// Present while a restore is writing a data dir; senderod refuses to start on it.
pub const RESTORE_MARKER: &str = "restore.incomplete";

/// Why a backup could not be made or restored. Each has a stable code ([`BackupError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A database could not be snapshotted.
    #[error("snapshot of {file}: {source}")]
    Snapshot {
        /// The database.
        file: String,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// The file is not a Sendero backup, or it is damaged.
    #[error("{0}")]
    Invalid(String),
    /// The bundle was made on another network.
    #[error("the backup is of a {found} gateway, but senderod is configured for {configured}")]
    NetworkMismatch {
        /// The bundle's network.
        found: String,
        /// The configured one.
        configured: Network,
    },
    /// The mnemonic given is not the one the backup was made with.
    #[error(
        "the mnemonic's fingerprint is {given}, the backup's wallet is {expected}: it is another wallet's mnemonic"
    )]
    MnemonicMismatch {
        /// The backup's master fingerprint.
        expected: String,
        /// The given mnemonic's.
        given: String,
    },
    /// Neither `--mnemonic-file` nor a mnemonic inside the bundle.
    #[error("this backup holds no mnemonic: give the wallet's with --mnemonic-file")]
    MnemonicRequired,
    /// The mnemonic could not be read.
    #[error("mnemonic: {0}")]
    Mnemonic(String),
    /// The data dir already holds a gateway.
    #[error("{0} already holds a gateway ({1} exists): restore into an empty data dir")]
    NotEmpty(PathBuf, &'static str),
}

impl BackupError {
    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            BackupError::Io { .. } => "io_error",
            BackupError::Snapshot { .. } => "snapshot_failed",
            BackupError::Invalid(_) => "invalid_backup",
            BackupError::NetworkMismatch { .. } => "network_mismatch",
            BackupError::MnemonicMismatch { .. } => "mnemonic_mismatch",
            BackupError::MnemonicRequired => "mnemonic_required",
            BackupError::Mnemonic(_) => "invalid_mnemonic",
            BackupError::NotEmpty(..) => "datadir_not_empty",
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// One file of the bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Path inside the bundle and relative to the data dir.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// What a bundle holds and what the gateway was when it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The gateway's network.
    pub network: String,
    /// Unix seconds.
    pub created_at: u64,
    /// senderod's version.
    pub gateway_version: String,
    /// The mnemonic's master key fingerprint.
    pub master_fingerprint: String,
    /// The Lightning node's id, when it ran.
    pub node_id: Option<String>,
    /// `ln.channels` at export.
    pub channels: Value,
    /// `wallet.balance` at export.
    pub treasury: Value,
    /// Payouts not yet handed to their rail at export (submitted, debited, sending).
    pub payouts_in_flight: Vec<String>,
    /// Whether `mnemonic` is inside.
    pub includes_mnemonic: bool,
    /// Every file but the manifest.
    pub files: Vec<FileEntry>,
}

/// What the exporter knows beyond the data dir's files.
pub struct ExportFacts {
    /// The gateway's network.
    pub network: Network,
    /// The node id, when the node runs.
    pub node_id: Option<String>,
    /// `ln.channels`.
    pub channels: Value,
    /// `wallet.balance`.
    pub treasury: Value,
    /// Payouts not yet handed to their rail.
    pub payouts_in_flight: Vec<String>,
    /// Put the mnemonic in.
    pub include_mnemonic: bool,
}

/// Makes a bundle of `datadir` (blocking): snapshots into a private scratch dir inside it, then
/// the tar's bytes and its manifest.
pub fn export(datadir: &Path, facts: ExportFacts) -> Result<(Vec<u8>, Manifest), BackupError> {
    let mnemonic = keys::load_mnemonic(&datadir.join(MNEMONIC)).map_err(|e| BackupError::Mnemonic(e.to_string()))?;
    let master_fingerprint =
        keys::master_fingerprint(&mnemonic, facts.network).map_err(|e| BackupError::Mnemonic(e.to_string()))?;
    let scratch = Scratch::new(datadir)?;
    let mut files = Vec::new();
    for name in [STORE, LN_STORE] {
        let source = datadir.join(name);
        if source.exists() {
            let copy = scratch.0.join(name.replace('/', "_"));
            snapshot(&source, &copy)?;
            files.push((name.to_owned(), fs::read(&copy).map_err(io(format!("read {}", copy.display())))?));
        }
    }
    let mut plain = vec![OPERATOR_SECRET];
    if facts.include_mnemonic {
        plain.push(MNEMONIC);
    }
    for name in plain {
        let path = datadir.join(name);
        if path.exists() {
            files.push((name.to_owned(), fs::read(&path).map_err(io(format!("read {}", path.display())))?));
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        network: facts.network.to_string(),
        created_at: crate::unix_now(),
        gateway_version: env!("CARGO_PKG_VERSION").to_owned(),
        master_fingerprint,
        node_id: facts.node_id,
        channels: facts.channels,
        treasury: facts.treasury,
        payouts_in_flight: facts.payouts_in_flight,
        includes_mnemonic: facts.include_mnemonic,
        files: files
            .iter()
            .map(|(name, bytes)| FileEntry { name: name.clone(), bytes: bytes.len() as u64, sha256: hex_sha256(bytes) })
            .collect(),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Invalid(e.to_string()))?;
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, MANIFEST, &manifest_json, manifest.created_at)?;
    for (name, bytes) in &files {
        append(&mut tar, name, bytes, manifest.created_at)?;
    }
    let bytes = tar.into_inner().map_err(io("finish the tar"))?;
    Ok((bytes, manifest))
}

fn append(tar: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8], mtime: u64) -> Result<(), BackupError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes).map_err(io(format!("add {name} to the tar")))
}

/// `VACUUM INTO`: a consistent copy of a live SQLite database (readers and writers go on).
fn snapshot(source: &Path, copy: &Path) -> Result<(), BackupError> {
    let file = source.display().to_string();
    let fail = |source| BackupError::Snapshot { file: file.clone(), source };
    let conn =
        rusqlite::Connection::open_with_flags(source, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(fail)?;
    conn.execute("VACUUM INTO ?1", [copy.to_string_lossy()]).map_err(fail)?;
    Ok(())
}

/// A private scratch directory inside the data dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(datadir: &Path) -> Result<Scratch, BackupError> {
        let dir = datadir.join(format!("backup.tmp-{}", crate::secret::random_hex(6)));
        fs::create_dir(&dir).map_err(io(format!("create {}", dir.display())))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io(format!("chmod {}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    sha256::Hash::hash(bytes).to_string()
}

/// Writes `backup.export`'s answer's bundle to `out` (default
/// `sendero-backup-<network>-<time>.tar`; mode 0600, never over an existing file) and puts the
/// path in the answer in place of the bundle (`sendero-cli backup.export`).
pub fn save_export(out: Option<&Path>, answer: &mut Value) -> Result<PathBuf, BackupError> {
    use base64::Engine;
    let encoded = answer.as_object_mut().and_then(|m| m.remove("bundle_base64"));
    let bytes = encoded
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or_else(|| BackupError::Invalid("senderod's answer holds no bundle".into()))?;
    let m = &answer["manifest"];
    let default = || {
        PathBuf::from(format!("sendero-backup-{}-{}.tar", m["network"].as_str().unwrap_or("gateway"), m["created_at"]))
    };
    let path = out.map_or_else(default, Path::to_path_buf);
    let what = || format!("write {}", path.display());
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io(what()))?;
    file.write_all(&bytes).and_then(|_| file.sync_all()).map_err(io(what()))?;
    answer["path"] = Value::from(path.display().to_string());
    Ok(path)
}

/// A bundle read back and checked: its manifest and files.
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    /// Name and bytes of every file the manifest lists, hashes checked.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Reads a bundle and checks it: format, every listed file present with its size and hash, and
/// nothing else inside.
pub fn read_bundle(reader: impl Read) -> Result<Bundle, BackupError> {
    let invalid = |what: String| BackupError::Invalid(format!("not a usable Sendero backup: {what}"));
    let mut archive = tar::Archive::new(reader);
    let mut manifest: Option<Manifest> = None;
    // Each name's first entry, moved into `files` once checked.
    let mut found: std::collections::HashMap<String, Vec<u8>> = Default::default();
    for entry in archive.entries().map_err(|e| invalid(e.to_string()))? {
        let mut entry = entry.map_err(|e| invalid(e.to_string()))?;
        let name = entry.path().map_err(|e| invalid(e.to_string()))?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| invalid(format!("{name}: {e}")))?;
        if name == MANIFEST {
            manifest = Some(serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{MANIFEST}: {e}")))?);
        } else {
            found.entry(name).or_insert(bytes);
        }
    }
    let manifest = manifest.ok_or_else(|| invalid(format!("no {MANIFEST}")))?;
    if manifest.format != FORMAT {
        return Err(invalid(format!("format {} (this senderod reads format {FORMAT})", manifest.format)));
    }
    let allowed = [STORE, LN_STORE, OPERATOR_SECRET, MNEMONIC];
    let mut files = Vec::new();
    for listed in &manifest.files {
        if !allowed.contains(&listed.name.as_str()) {
            return Err(invalid(format!("unexpected file {:?}", listed.name)));
        }
        let bytes = found.remove(&listed.name).ok_or_else(|| invalid(format!("{} is missing", listed.name)))?;
        if bytes.len() as u64 != listed.bytes || hex_sha256(&bytes) != listed.sha256 {
            return Err(invalid(format!(
                "{} is damaged (its size or SHA-256 differs from the manifest's)",
                listed.name
            )));
        }
        files.push((listed.name.clone(), bytes));
    }
    if let Some(extra) = found.keys().next() {
        return Err(invalid(format!("{extra:?} is not in the manifest")));
    }
    if manifest.includes_mnemonic != files.iter().any(|(name, _)| name == MNEMONIC) {
        return Err(invalid("the manifest and the files disagree on the mnemonic".into()));
    }
    Ok(Bundle { manifest, files })
}

/// What a restore wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The bundle's manifest.
    pub manifest: Manifest,
    /// The data dir written.
    pub datadir: PathBuf,
    /// Whether the mnemonic came from the bundle (else from `--mnemonic-file`).
    pub mnemonic_from_bundle: bool,
}

/// Writes `bundle` into the empty data dir `datadir` (blocking), with the mnemonic from
/// `mnemonic_file` or else the bundle's. Checks everything before writing anything; while it
/// writes, [`RESTORE_MARKER`] keeps senderod off the data dir.
pub fn restore(
    bundle: &Path,
    mnemonic_file: Option<&Path>,
    datadir: &Path,
    network: Network,
) -> Result<Restored, BackupError> {
    let file = fs::File::open(bundle).map_err(io(format!("open {}", bundle.display())))?;
    let Bundle { manifest, files } = read_bundle(std::io::BufReader::new(file))?;
    if manifest.network != network.to_string() {
        return Err(BackupError::NetworkMismatch { found: manifest.network.clone(), configured: network });
    }
    let inside = files.iter().find(|(name, _)| name == MNEMONIC).map(|(_, b)| b.clone());
    let (mnemonic_text, mnemonic_from_bundle) = match (mnemonic_file, inside) {
        (Some(path), _) => {
            let m = keys::load_mnemonic(path).map_err(|e| BackupError::Mnemonic(e.to_string()))?;
            (format!("{m}\n"), false)
        }
        (None, Some(bytes)) => (String::from_utf8_lossy(&bytes).into_owned(), true),
        (None, None) => return Err(BackupError::MnemonicRequired),
    };
    let mnemonic = Mnemonic::from_str(mnemonic_text.trim()).map_err(|e| BackupError::Mnemonic(e.to_string()))?;
    let given = keys::master_fingerprint(&mnemonic, network).map_err(|e| BackupError::Mnemonic(e.to_string()))?;
    if given != manifest.master_fingerprint {
        return Err(BackupError::MnemonicMismatch { expected: manifest.master_fingerprint.clone(), given });
    }
    check_empty(datadir)?;

    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(datadir.join("lightning"))
        .map_err(io(format!("create {}", datadir.display())))?;
    for dir in [datadir.to_path_buf(), datadir.join("lightning")] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(io(format!("chmod 700 {}", dir.display())))?;
    }
    let marker = datadir.join(RESTORE_MARKER);
    write_private(&marker, format!("restoring the backup made at {}\n", manifest.created_at).as_bytes())?;
    for (name, bytes) in files.iter().filter(|(name, _)| name != MNEMONIC) {
        write_private(&datadir.join(name), bytes)?;
    }
    write_private(&datadir.join(MNEMONIC), mnemonic_text.as_bytes())?;
    fs::remove_file(&marker).map_err(io(format!("remove {}", marker.display())))?;
    sync_dir(datadir)?;
    Ok(Restored { manifest, datadir: datadir.to_path_buf(), mnemonic_from_bundle })
}

/// Refuses a data dir that holds a gateway (a restore that did not finish may be redone).
fn check_empty(datadir: &Path) -> Result<(), BackupError> {
    if datadir.join(RESTORE_MARKER).exists() {
        return Ok(());
    }
    for name in [MNEMONIC, STORE, "wallet.sqlite", "lightning"] {
        if datadir.join(name).exists() {
            return Err(BackupError::NotEmpty(datadir.to_path_buf(), name));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` (mode 0600, replacing it) and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let what = || format!("write {}", path.display());
    let mut file =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io(what()))?;
    // A file left by an interrupted restore keeps its mode through `open`: set it.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .and_then(|_| file.write_all(bytes))
        .and_then(|_| file.sync_all())
        .map_err(io(what()))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("sync {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABANDON: &str =
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    fn gateway_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_private(&dir.path().join(MNEMONIC), format!("{ABANDON}\n").as_bytes()).unwrap();
        fs::create_dir(dir.path().join("lightning")).unwrap();
        for (name, row) in [(STORE, "books"), (LN_STORE, "monitors")] {
            let conn = rusqlite::Connection::open(dir.path().join(name)).unwrap();
            conn.execute_batch(&format!(
                "PRAGMA journal_mode=WAL; CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('{row}');"
            ))
            .unwrap();
            std::mem::forget(conn); // still open, as senderod and ldk-node keep theirs
        }
        dir
    }

    fn facts(include_mnemonic: bool) -> ExportFacts {
        ExportFacts {
            network: Network::Regtest,
            node_id: None,
            channels: Value::Array(vec![]),
            treasury: Value::Null,
            payouts_in_flight: vec![],
            include_mnemonic,
        }
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, bytes) in entries {
            append(&mut tar, name, bytes, 0).unwrap();
        }
        tar.into_inner().unwrap()
    }

    #[test]
    fn export_then_restore_gives_back_both_databases_and_the_mnemonic() {
        let from = gateway_dir();
        let (bytes, manifest) = export(from.path(), facts(true)).unwrap();
        assert_eq!(manifest.master_fingerprint, "73c5da0a");
        assert!(fs::read_dir(from.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("backup.tmp")));
        let file = from.path().join("b.tar");
        fs::write(&file, &bytes).unwrap();
        let to = tempfile::tempdir().unwrap();
        let restored = restore(&file, None, to.path(), Network::Regtest).unwrap();
        assert!(restored.mnemonic_from_bundle);
        for (name, row) in [(STORE, "books"), (LN_STORE, "monitors")] {
            let conn = rusqlite::Connection::open(to.path().join(name)).unwrap();
            let v: String = conn.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(v, row);
            assert_eq!(fs::metadata(to.path().join(name)).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(fs::read_to_string(to.path().join(MNEMONIC)).unwrap().trim(), ABANDON);
        assert!(!to.path().join(RESTORE_MARKER).exists());
        let again = restore(&file, None, to.path(), Network::Regtest).unwrap_err();
        assert_eq!(again.code(), "datadir_not_empty");
    }

    #[test]
    fn a_bundle_that_is_not_exactly_what_its_manifest_lists_is_refused() {
        let from = gateway_dir();
        let (bytes, manifest) = export(from.path(), facts(false)).unwrap();
        assert!(read_bundle(bytes.as_slice()).is_ok());
        let manifest_json = serde_json::to_vec(&manifest).unwrap();
        let store = fs::read(from.path().join(STORE)).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("no manifest", tar_of(&[(STORE, &store)])),
            ("file missing", tar_of(&[(MANIFEST, &manifest_json)])),
            ("extra file", tar_of(&[(MANIFEST, &manifest_json), ("evil.sh", b"rm -rf /")])),
            ("not a tar", b"hello".to_vec()),
        ];
        for (what, bytes) in cases {
            let e = read_bundle(bytes.as_slice()).err().unwrap_or_else(|| panic!("{what} was accepted"));
            assert_eq!(e.code(), "invalid_backup", "{what}: {e}");
        }
        let mut newer = manifest.clone();
        newer.format = FORMAT + 1;
        let e = read_bundle(tar_of(&[(MANIFEST, &serde_json::to_vec(&newer).unwrap())]).as_slice()).err().unwrap();
        assert!(e.to_string().contains("format 2"), "{e}");
    }
}
