//! `sendero-cli`: the operator's client for senderod's admin RPC.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod command;

use clap::{CommandFactory, FromArgMatches, Parser};
use command::Command;
use sendero::admin::{AdminClient, ClientError};
use serde_json::{json, Value};

/// Talk to a running senderod through its admin RPC.
#[derive(Parser, Debug)]
#[command(name = "sendero-cli", version)]
struct Cli {
    /// senderod's data directory (its admin socket or cookie is found there).
    #[arg(long, global = true, env = "SENDERO_DATADIR")]
    datadir: Option<PathBuf>,
    /// Use the admin RPC on this loopback TCP address (with `<datadir>/admin.cookie`) instead of the
    /// Unix socket.
    #[arg(long, global = true)]
    admin_addr: Option<SocketAddr>,
    /// Print the raw JSON result (or error) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(generated) = generate(&cli.command) {
        return match std::io::Write::write_all(&mut std::io::stdout(), &generated) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sendero-cli: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (method, params) = match cli.command.request(matches.subcommand_name().unwrap_or_default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sendero-cli: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = cli.command.existing_out() {
        eprintln!(
            "sendero-cli: {} exists: backup.export never writes over a file; choose another --out",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    let home = || std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".sendero");
    let datadir = cli.datadir.clone().unwrap_or_else(home);
    let client = AdminClient::new(&datadir, cli.admin_addr);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sendero-cli: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(client.call(&method, params)) {
        Ok(result) => output(&cli, &result),
        Err(e) => report(&e, cli.json),
    }
}

/// What `completions` and `manpage` print, generated from this file's clap definition (`None`
/// for the subcommands that call the daemon).
fn generate(command: &Command) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "sendero-cli", &mut out);
        }
        Command::Manpage => {
            // Rendering into a Vec cannot fail.
            let _ = clap_mangen::Man::new(Cli::command()).render(&mut out);
        }
        _ => return None,
    }
    Some(out)
}

/// Prints a method's result: JSON, a table for `recon.report` (and its CSV file), the written
/// file for `backup.export`, else text.
fn output(cli: &Cli, result: &Value) -> ExitCode {
    let mut result = result.clone();
    if let Command::BackupExport { out, .. } = &cli.command {
        if let Err(e) = sendero::backup::save_export(out.as_deref(), &mut result) {
            eprintln!("sendero-cli: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Command::ReconReport { csv: Some(path), .. } = &cli.command {
        if let Err(e) = std::fs::write(path, sendero::recon::export::csv(&result)) {
            eprintln!("sendero-cli: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    match &cli.command {
        _ if cli.json => println!("{result}"),
        Command::ReconReport { .. } => print!("{}", sendero::recon::export::table(&result)),
        _ => print_human(&result, ""),
    }
    ExitCode::SUCCESS
}

fn report(e: &ClientError, json: bool) -> ExitCode {
    match e {
        ClientError::Rpc { rpc_code, code, message, data } if json => {
            println!(
                "{}",
                json!({ "error": { "code": code, "rpc_code": rpc_code, "message": message, "data": data } })
            );
        }
        _ => eprintln!("sendero-cli: {e}"),
    }
    match e {
        ClientError::Rpc { .. } => ExitCode::FAILURE,
        _ => ExitCode::from(3),
    }
}

/// Prints a JSON value as `key: value` lines, nested keys joined with dots.
fn print_human(value: &Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                print_human(v, &key);
            }
        }
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                print_human(item, &format!("{prefix}[{i}]"));
            }
        }
        Value::String(s) => println!("{prefix}: {s}"),
        Value::Null => println!("{prefix}: -"),
        other => println!("{prefix}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(args: &[&str]) -> (String, Value) {
        let matches = Cli::command().try_get_matches_from(std::iter::once("sendero-cli").chain(args.iter().copied()));
        let matches = matches.unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        cli.command.request(matches.subcommand_name().unwrap()).unwrap()
    }

    fn generated(args: &[&str]) -> String {
        let matches = Cli::command().try_get_matches_from(std::iter::once("sendero-cli").chain(args.iter().copied()));
        let cli = Cli::from_arg_matches(&matches.unwrap()).unwrap();
        String::from_utf8(generate(&cli.command).unwrap()).unwrap()
    }

    #[test]
    fn completions_and_the_man_page_come_from_the_clap_definition() {
        let bash = generated(&["completions", "bash"]);
        for word in ["wallet.send", "recon.report", "--amount-sat", "--datadir", "treasury.policy.set"] {
            assert!(bash.contains(word), "bash completions lack {word}");
        }
        // The script is valid bash.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sendero-cli.bash");
        std::fs::write(&path, &bash).unwrap();
        let check = std::process::Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
        assert!(generated(&["completions", "zsh"]).starts_with("#compdef sendero-cli"));
        assert!(generated(&["completions", "fish"]).contains("-a \"wallet.balance\""));
        let man = generated(&["manpage"]);
        assert!(man.contains(".TH sendero-cli 1"), "{}", &man[..200.min(man.len())]);
        assert!(
            man.contains("wallet.send") && man.contains("\\-\\-datadir"),
            "the man page lists subcommands and options"
        );
        // Neither talks to a daemon; an unknown shell is refused by clap.
        assert!(Cli::command().try_get_matches_from(["sendero-cli", "completions", "tcsh"]).is_err());
        let getinfo = Cli::command().try_get_matches_from(["sendero-cli", "getinfo"]).unwrap();
        assert!(generate(&Cli::from_arg_matches(&getinfo).unwrap().command).is_none());
    }

    #[test]
    fn each_subcommand_calls_its_method_with_its_fields() {
        assert_eq!(request(&["getinfo"]), ("getinfo".into(), json!({})));
        assert_eq!(
            request(&["wallet.send", "--address", "bcrt1q", "--amount-sat", "5"]),
            ("wallet.send".into(), json!({"address": "bcrt1q", "amount_sat": 5}))
        );
        assert_eq!(
            request(&["wallet.send", "--address", "a", "--amount-sat", "5", "--feerate-sat-vb", "3"]).1,
            json!({"address": "a", "amount_sat": 5, "feerate_sat_vb": 3})
        );
        assert_eq!(
            request(&["ln.open_channel", "--node-id", "02ab", "--addr", "h:1", "--amount-sat", "9"]),
            (
                "ln.open_channel".into(),
                json!({"node_id": "02ab", "addr": "h:1", "amount_sat": 9, "push_msat": null, "announce": false})
            )
        );
        assert_eq!(request(&["ln.pay", "lno1x"]).1, json!({"offer": "lno1x", "amount_msat": null}));
        assert_eq!(request(&["ln.pay", "lnbcrt1x"]).1, json!({"invoice": "lnbcrt1x", "amount_msat": null}));
        assert_eq!(request(&["routing.pin", "onchain"]), ("routing.pin".into(), json!({"rail": "onchain"})));
        assert_eq!(request(&["call", "ledger.verify", "{\"x\":1}"]), ("ledger.verify".into(), json!({"x": 1})));
        assert_eq!(request(&["consolidate.preview"]), ("consolidate.preview".into(), json!({})));
        assert_eq!(
            request(&["consolidate.preview", "--feerate-sat-vb", "2", "--max-inputs", "20"]).1,
            json!({"feerate_sat_vb": 2, "max_inputs": 20})
        );
        assert_eq!(request(&["consolidate.run", "--force"]), ("consolidate.run".into(), json!({"force": true})));
        assert_eq!(request(&["batch.preview"]), ("batch.preview".into(), json!({})));
        assert_eq!(request(&["dashboard.login_url"]), ("dashboard.login_url".into(), json!({})));
        assert_eq!(
            request(&["backup.export", "--out", "/tmp/b.tar", "--include-mnemonic"]),
            ("backup.export".into(), json!({"include_mnemonic": true, "allow_in_flight": false}))
        );
        assert_eq!(request(&["rebalance.preview"]), ("rebalance.preview".into(), json!({})));
        assert_eq!(request(&["rebalance.run"]), ("rebalance.run".into(), json!({})));
        assert_eq!(request(&["rebalance.history"]), ("rebalance.history".into(), json!({})));
        assert_eq!(request(&["rebalance.history", "--from", "5"]).1, json!({"from": 5}));
        assert_eq!(request(&["fees.report", "--from", "10"]).1, json!({"from": 10, "to": null}));
        assert_eq!(
            request(&["recon.report", "--from", "2026-12-01T00:00:00Z", "--csv", "/tmp/r.csv"]),
            ("recon.report".to_owned(), json!({"from": "2026-12-01T00:00:00Z"}))
        );
        assert_eq!(
            request(&["treasury.policy.set", "--set", "onchain_reserve_sat=5000", "--set", "dry_run=true"]),
            ("treasury.policy.set".to_owned(), json!({"onchain_reserve_sat": 5000, "dry_run": true}))
        );
    }
}
