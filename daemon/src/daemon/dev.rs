//! Dev mode (`senderod --dev`): a private regtest bitcoind, a funded wallet and an API key.

use super::*;

/// Dev mode: starts the private regtest bitcoind (building it if needed).
pub(super) fn start_dev_chain(config: &Config) -> Result<Bitcoind, DaemonError> {
    let exe = tokio::task::block_in_place(|| devchain::resolve_bitcoind(&config.dev.bitcoind_exe))?;
    tracing::info!(exe = %exe.display(), "dev mode: starting a private regtest bitcoind");
    Ok(tokio::task::block_in_place(|| Bitcoind::start(&exe, &config.datadir.join("bitcoind")))?)
}

/// Dev mode on a new chain: mine blocks to the wallet and wait until it has seen them.
pub(super) async fn dev_bootstrap(state: &AppState) -> Result<(), DaemonError> {
    let mut status = state.status.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let height = loop {
        if let Some(h) = status.borrow().chain_height.filter(|_| status.borrow().reachable) {
            break h;
        }
        if Instant::now() > deadline {
            return Err(WalletError::Chain("dev bitcoind did not become reachable".into()).into());
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), status.changed()).await;
    };
    let blocks = state.config.dev.mine_blocks;
    if height == 0 && blocks > 0 {
        let address = state.onchain.treasury().new_address()?.to_string();
        tracing::info!(blocks, %address, "dev mode: mining blocks to the treasury");
        let chain = Arc::clone(state.onchain.chain());
        let to = address.clone();
        blocking(move || chain.generate_to_address(blocks, &to)).await?;
        while state.onchain.treasury().synced_height() < blocks {
            if Instant::now() > deadline {
                return Err(WalletError::Chain("wallet did not sync the dev chain in time".into()).into());
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), status.changed()).await;
        }
    }
    print_dev_api_key(state)?;
    let b = state.onchain.treasury().balances();
    tracing::info!(
        height = state.onchain.treasury().synced_height(),
        confirmed_sat = b.confirmed_sat,
        immature_sat = b.immature_sat,
        "dev mode: treasury ready (try: sendero-cli --datadir {} getinfo)",
        state.config.datadir.display()
    );
    Ok(())
}

/// Dev mode's ready API key with every scope: created once, kept in `<datadir>/dev-api-key`
/// (0600), printed on stderr at every start (never into the structured log).
fn print_dev_api_key(state: &AppState) -> Result<(), DaemonError> {
    let path = state.config.datadir.join("dev-api-key");
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_owned(),
        Err(_) => {
            let (_, secret) = state.keys.create("dev", &crate::apikey::Scope::ALL, crate::unix_now())?;
            crate::secret::write_private(&path, &format!("{secret}\n"))
                .map_err(io(format!("write {}", path.display())))?;
            secret
        }
    };
    // The key itself stays in its file: stderr ends up in logs and journals.
    eprintln!(
        "\nsenderod dev mode: an API key with every scope ({} characters) is in {path}:\n  \
         curl -H \"Authorization: Bearer $(cat {path})\" 'http://{}/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=100000'\n",
        key.len(),
        state.config.api.listen,
        path = path.display(),
    );
    Ok(())
}
