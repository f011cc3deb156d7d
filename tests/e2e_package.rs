//! The Debian package (issue 17, packaging): `scripts/deb.sh` packs the binaries this test run
//! built; the package installs with dpkg into a clean root of its own (`dpkg --root`, maintainer
//! scripts run chrootless with `DPKG_ROOT`), which then holds the binaries, the systemd unit that
//! `systemd-analyze verify` accepts, `/etc/sendero/config.toml` as a conffile that senderod
//! loads, the `sendero` system user owning `/var/lib/sendero`, and sendero-cli's completions and
//! man page. Removing keeps the configuration; purging removes it but never the data directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SENDEROD: &str = env!("CARGO_BIN_EXE_senderod");

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A clean root: an empty dpkg database and the base system's account files (root only).
fn clean_root(root: &Path) {
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc", "var/lib"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("etc/shadow"), "root:*:20000:0:99999:7:::\n").unwrap();
    std::fs::write(root.join("etc/gshadow"), "root:*::\n").unwrap();
}

fn dpkg(root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display())).arg("--force-script-chrootless").args(args);
    run(&mut cmd)
}

/// The `sendero` entry of the root's `file` (passwd or group), split at its colons.
fn entry(root: &Path, file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("etc").join(file)).unwrap();
    let line =
        text.lines().find(|l| l.starts_with("sendero:")).unwrap_or_else(|| panic!("no sendero in {file}: {text}"));
    line.split(':').map(str::to_owned).collect()
}

#[test]
fn the_debian_package_installs_into_a_clean_root_and_purges_without_the_wallet() {
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(SENDEROD).parent().unwrap();
    let out = run(Command::new(repo().join("scripts/deb.sh"))
        .args(["--bin-dir", bin_dir.to_str().unwrap(), "--out"])
        .arg(tmp.path()));
    let deb = PathBuf::from(text(&out).trim());
    assert!(deb.exists(), "{deb:?}");

    // What the package says of itself and holds.
    let fields = text(&run(Command::new("dpkg-deb").arg("-f").arg(&deb).args(["Package", "Architecture", "Depends"])));
    assert!(fields.contains("Package: sendero") && fields.contains("Depends: libc6"), "{fields}");
    let listing = text(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    for path in [
        "./usr/bin/senderod",
        "./usr/bin/sendero-cli",
        "./lib/systemd/system/senderod.service",
        "./etc/sendero/config.toml",
        "./usr/lib/sysusers.d/sendero.conf",
        "./usr/share/bash-completion/completions/sendero-cli",
        "./usr/share/zsh/vendor-completions/_sendero-cli",
        "./usr/share/fish/vendor_completions.d/sendero-cli.fish",
        "./usr/share/man/man1/sendero-cli.1.gz",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(path)), "{path} not in the package:\n{listing}");
    }
    assert!(listing.lines().all(|l| l.contains("root/root")), "every file belongs to root:\n{listing}");
    // The host has what the package depends on.
    run(Command::new("dpkg-query").args(["-W", "libc6", "systemd"]));

    // Installed into a clean root.
    let root = tmp.path().join("root");
    clean_root(&root);
    dpkg(&root, &["--force-depends", "-i", deb.to_str().unwrap()]);
    let status = text(&dpkg(&root, &["-s", "sendero"]));
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(status.contains("Conffiles:\n /etc/sendero/config.toml"), "the config is a conffile: {status}");

    // The installed binaries run; senderod loads the shipped config as the unit will.
    let version = text(&run(Command::new(root.join("usr/bin/senderod")).arg("--version")));
    assert!(version.starts_with("senderod "), "{version}");
    let config = root.join("etc/sendero/config.toml");
    let check =
        text(&run(Command::new(root.join("usr/bin/senderod")).arg("--config").arg(&config).arg("--check-config")));
    assert!(check.contains("config ok: network bitcoin, data directory /var/lib/sendero"), "{check}");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "network = \"bitcoin\"\n[api]\nlisen = \"x\"\n").unwrap();
    let refused =
        Command::new(root.join("usr/bin/senderod")).arg("--config").arg(&bad).arg("--check-config").output().unwrap();
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("lisen"), "{refused:?}");

    // The unit: the package's paths, and systemd accepts it.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/senderod.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/senderod --config /etc/sendero/config.toml --datadir /var/lib/sendero"),
        "{unit}"
    );
    assert!(unit.contains("User=sendero") && unit.contains("Type=notify"), "{unit}");
    // systemd itself in the root (the package depends on it): its units, as the host has them.
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    run(Command::new("cp").arg("-a").arg("/usr/lib/systemd/system").arg(root.join("usr/lib/systemd/")));
    let verify = Command::new("systemd-analyze")
        .arg(format!("--root={}", root.display()))
        .args(["verify", "/lib/systemd/system/senderod.service"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "systemd-analyze verify: {said}");
    assert!(!said.contains("senderod.service"), "systemd-analyze has something to say of the unit: {said}");

    // The system user and what it owns.
    let user = entry(&root, "passwd");
    let group = entry(&root, "group");
    assert_eq!(user[5], "/var/lib/sendero", "{user:?}");
    assert_eq!(user[6], "/usr/sbin/nologin", "{user:?}");
    let (uid, gid): (u32, u32) = (user[2].parse().unwrap(), group[2].parse().unwrap());
    assert!(uid > 0 && uid < 1000, "a system user: {user:?}");
    let data = std::fs::metadata(root.join("var/lib/sendero")).unwrap();
    assert_eq!((data.uid(), data.gid(), data.permissions().mode() & 0o777), (uid, gid, 0o700));
    let conf = std::fs::metadata(&config).unwrap();
    assert_eq!((conf.uid(), conf.gid(), conf.permissions().mode() & 0o777), (0, gid, 0o640));

    // Completions and the man page, generated from sendero-cli's clap definition.
    let bash = std::fs::read_to_string(root.join("usr/share/bash-completion/completions/sendero-cli")).unwrap();
    assert!(bash.contains("wallet.send") && bash.contains("recon.report"));
    run(Command::new("bash").arg("-n").arg(root.join("usr/share/bash-completion/completions/sendero-cli")));
    let man = text(&run(Command::new("zcat").arg(root.join("usr/share/man/man1/sendero-cli.1.gz"))));
    assert!(man.contains(".TH sendero-cli 1") && man.contains("wallet.send"), "{}", &man[..300.min(man.len())]);

    // An operator's edit survives a reinstall (a conffile); removal keeps it, purge removes it;
    // neither touches the data directory.
    std::fs::write(&config, "network = \"signet\"\n").unwrap();
    std::fs::write(root.join("var/lib/sendero/mnemonic"), "kept").unwrap();
    dpkg(&root, &["--force-depends", "--force-confold", "-i", deb.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "network = \"signet\"\n");
    dpkg(&root, &["-r", "sendero"]);
    assert!(!root.join("usr/bin/senderod").exists() && config.exists());
    let purge = dpkg(&root, &["--purge", "sendero"]);
    assert!(!config.exists());
    assert_eq!(std::fs::read_to_string(root.join("var/lib/sendero/mnemonic")).unwrap(), "kept");
    assert!(String::from_utf8_lossy(&purge.stderr).contains("/var/lib/sendero"), "purge says the data is kept");
}
