//! `wxpush tokens list|get` and `wxpush authorizers list|import`: the token service from
//! the command line, on the same store as the server (a refresh here is single-flight with
//! the server's, across processes).

use std::io::IsTerminal as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use wxpush::escape::Printable;
use wxpush::store::Store;
use wxpush::tokens::{AppKind, TokenService};
use wxpush::{Config, clock};

/// `wxpush tokens …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Every managed app id (also those without a token yet): kind, expiry, age, last
    /// error. Never a token.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print a valid token of APPID (refreshed if due), for scripts.
    Get {
        /// A managed app id, or an authorizer's.
        appid: String,
    },
}

/// `wxpush authorizers …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AuthorizersCommand {
    /// The authorizers of the managed third-party platforms.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Import every authorizer, with its refresh token, from api_get_authorizer_list (the
    /// recovery path for lost or refused refresh tokens).
    Import {
        /// The component app id (default: every managed third-party platform).
        #[arg(long)]
        component: Option<String>,
    },
}

/// The token service on the configured store, or why there is none.
pub(crate) async fn service(config: &Config) -> anyhow::Result<(TokenService, Arc<dyn Store>)> {
    if !config.tokens.manages_any() {
        bail!(
            "no app's tokens are managed: set component_appsecret (a third-party platform) or appsecret (a Mini Program) for the app"
        );
    }
    let store = wxpush::service::open_existing_store(config).await?; // the error names the store and the cause
    let service = TokenService::new(config.tokens.clone(), Arc::clone(&store))?;
    Ok((service, store))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs `wxpush tokens …`.
pub(crate) fn tokens(config: &Config, command: TokensCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let (service, _store) = service(config).await?;
        match command {
            TokensCommand::Get { appid } => {
                let token = service.token(&appid).await?;
                outln!("{}", token.access_token.expose())?;
            }
            TokensCommand::List { json } => list(&service, json).await?,
        }
        anyhow::Ok(())
    })
}

async fn list(service: &TokenService, json: bool) -> anyhow::Result<()> {
    let managed = service.list().await?;
    let tickets = service.tickets().await?;
    if json {
        for m in &managed {
            outln!("{}", serde_json::to_string(m)?)?;
        }
        return Ok(());
    }
    outln!(
        "{:<20}  {:<11}  {:<26}  {:>9}  LAST ERROR",
        "APPID",
        "KIND",
        "EXPIRES",
        "AGE"
    )?;
    for m in &managed {
        let expires = match (&m.expires_at, m.expires_in_secs) {
            (Some(at), Some(secs)) if secs < 0 => format!("{at} (expired)"),
            (Some(at), _) => at.clone(),
            _ => "-".into(),
        };
        outln!(
            "{:<20}  {:<11}  {:<26}  {:>9}  {}",
            Printable(&m.appid),
            m.kind.as_str(),
            expires,
            m.age_secs.map_or_else(|| "-".into(), |s| format!("{s} s")),
            Printable(m.last_error.as_deref().unwrap_or("-"))
        )?;
    }
    for t in &tickets {
        let age = t.age_secs.map_or_else(
            || "none pushed yet".to_owned(),
            |age| format!("pushed {age} s ago"),
        );
        outln!("ticket of {}: {age}", t.component_appid)?;
    }
    Ok(())
}

/// Runs `wxpush authorizers …`.
pub(crate) fn authorizers(config: &Config, command: AuthorizersCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let (service, store) = service(config).await?;
        match command {
            AuthorizersCommand::List { json } => {
                let all = store.authorizers().await?;
                if !json {
                    outln!("{:<20}  {:<20}  {:<12}  CHANGED", "AUTHORIZER", "COMPONENT", "STATUS")?;
                }
                for a in &all {
                    if json {
                        let func_info: serde_json::Value =
                            serde_json::from_str(&a.func_info).unwrap_or_default();
                        outln!("{}", serde_json::json!({
                            "authorizer_appid": a.authorizer_appid,
                            "component_appid": a.component_appid,
                            "status": a.status,
                            "func_info": func_info,
                            "changed_at": clock::rfc3339(a.changed_at),
                        }))?;
                    } else {
                        outln!(
                            "{:<20}  {:<20}  {:<12}  {}",
                            Printable(&a.authorizer_appid),
                            Printable(&a.component_appid),
                            Printable(&a.status),
                            clock::rfc3339(a.changed_at)
                        )?;
                    }
                }
                if all.is_empty() && !json {
                    outln!("no authorizers yet: they arrive with authorization pushes, or run `wxpush authorizers import`")?;
                }
            }
            AuthorizersCommand::Import { component } => import(&service, config, component).await?,
        }
        anyhow::Ok(())
    })
}

async fn import(
    service: &TokenService,
    config: &Config,
    component: Option<String>,
) -> anyhow::Result<()> {
    let components: Vec<String> = match component {
        Some(appid) => {
            let app = config
                .tokens
                .app(&appid)
                .filter(|a| a.kind == AppKind::Component)
                .with_context(|| {
                    format!("--component {appid}: not a configured app with component_appsecret")
                })?;
            vec![app.appid.clone()]
        }
        None => config
            .tokens
            .apps
            .iter()
            .filter(|a| a.kind == AppKind::Component)
            .map(|a| a.appid.clone())
            .collect(),
    };
    if components.is_empty() {
        bail!("no third-party platform is managed: set component_appsecret for the app");
    }
    let terminal = std::io::stderr().is_terminal();
    for component in components {
        let count = service
            .import_authorizers(&component, |done, total| {
                if terminal {
                    eprint!("\r{component}: {done}/{total} authorizers");
                }
            })
            .await
            .map_err(|e| anyhow::anyhow!("importing the authorizers of {component}: {e}"))?;
        if terminal {
            eprintln!();
        }
        outln!("{component}: imported {count} authorizers with their refresh tokens")?;
    }
    Ok(())
}
