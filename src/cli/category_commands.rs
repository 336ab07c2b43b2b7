//! `wxpush categories settable|current|delete|modify` and `wxpush media upload`: the
//! category workflow from the command line, with the account's managed token.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use wxpush::categories::{CategoryService, Target};
use wxpush::escape::Printable;
use wxpush::platform::category::{Category, Certificate};
use wxpush::store::Store;
use wxpush::tokens::{AppKind, TokenService};
use wxpush::{Config, clock};

/// `wxpush categories …` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum CategoriesCommand {
    /// The categories the account may set (cached 24 h), with the qualifications each needs.
    Settable {
        #[command(flatten)]
        who: Who,
        /// Only those whose ids or names contain TEXT.
        #[arg(long)]
        search: Option<String>,
        /// Fetch the list again instead of the cached one.
        #[arg(long)]
        refresh: bool,
        /// The categories settable by accounts of this verification type
        /// (getcategoriesbytype) instead of this account's own list; not cached.
        #[arg(long)]
        verify_type: Option<i64>,
    },
    /// The categories set, with their review status and reason, and the quotas.
    Current {
        #[command(flatten)]
        who: Who,
    },
    /// Delete a category (not one in review).
    Delete {
        #[command(flatten)]
        who: Who,
        /// First-level category id.
        #[arg(long)]
        first: i64,
        /// Second-level category id.
        #[arg(long)]
        second: i64,
    },
    /// Give a rejected category new qualifications.
    Modify {
        #[command(flatten)]
        who: Who,
        /// First-level category id.
        #[arg(long)]
        first: i64,
        /// Second-level category id.
        #[arg(long)]
        second: i64,
        #[command(flatten)]
        certs: CertArgs,
    },
}

/// `wxpush media …` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum MediaCommand {
    /// Upload an image as temporary media (valid 3 days) and print its media id.
    Upload {
        /// The image (JPG or PNG).
        file: std::path::PathBuf,
        #[command(flatten)]
        who: Who,
    },
}

/// Whose categories: the account and the output form.
#[derive(Debug, Args)]
pub(crate) struct Who {
    /// The authorizer (Mini Program) a third-party platform acts for; without it, the app
    /// itself (a Mini Program with appsecret).
    #[arg(long)]
    authorizer: Option<String>,
    /// The configured app (default: the default app, or the platform the authorizer
    /// authorized).
    #[arg(long)]
    app: Option<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// Qualification documents.
#[derive(Debug, Args)]
pub(crate) struct CertArgs {
    /// A qualification document: NAME=MEDIA_ID, or NAME=@FILE to upload FILE first
    /// (repeatable).
    #[arg(long = "cert", value_name = "NAME=MEDIA_ID|NAME=@FILE")]
    certs: Vec<String>,
    /// When the qualifications expire (unix seconds), if the category asks.
    #[arg(long)]
    expire_time: Option<i64>,
    /// 1 when the qualifications never expire, 0 otherwise, if the category asks.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..=1))]
    is_permanent: Option<i64>,
}

impl CertArgs {
    /// The certificates, uploading `@FILE`s first with `account`.
    pub(crate) async fn given(
        &self,
        account: Option<(&CategoryService, &Target)>,
    ) -> anyhow::Result<Vec<Certificate>> {
        let mut out = Vec::new();
        for c in &self.certs {
            let Some((key, value)) = c
                .split_once('=')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            else {
                bail!("--cert: expected NAME=MEDIA_ID or NAME=@FILE, got {c:?}");
            };
            let value = match (value.strip_prefix('@'), account) {
                (Some(path), Some((service, target))) => upload(service, target, path).await?.0,
                (Some(_), None) => bail!(
                    "--cert {key}=@FILE uploads with the managed token: give --authorizer (or set appsecret) instead of --access-token"
                ),
                (None, _) => value.to_owned(),
            };
            out.push(Certificate {
                key: key.to_owned(),
                value,
                expire_time: self.expire_time,
                is_permanent: self.is_permanent,
            });
        }
        Ok(out)
    }
}

async fn upload(
    service: &CategoryService,
    target: &Target,
    path: &str,
) -> anyhow::Result<(String, i64)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    let name = std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned());
    let media = service
        .upload(target, &name, &bytes)
        .await
        .map_err(|e| anyhow::anyhow!("uploading {path}: {e}"))?;
    Ok((media.media_id, media.expires_at))
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The service and the account a command acts for: `--authorizer` (an authorizer of a
/// managed platform), else the app (a Mini Program with appsecret).
pub(crate) async fn account(
    config: &Config,
    store: &Arc<dyn Store>,
    app: Option<&str>,
    authorizer: Option<&str>,
) -> anyhow::Result<(CategoryService, Target)> {
    require_managed(config)?;
    let tokens = TokenService::new(config.tokens.clone(), Arc::clone(store))?;
    let target = match authorizer {
        Some(authorizer) => {
            let component = tokens.component_of(authorizer).await.with_context(|| {
                format!("--authorizer {authorizer}: not an authorizer of a managed platform (`wxpush authorizers list`; `wxpush authorizers import` fetches them)")
            })?;
            let platform = config
                .tokens
                .app(&component)
                .map(|a| a.name.clone())
                .unwrap_or_default();
            Target {
                app: app.map_or(platform, str::to_owned),
                appid: authorizer.to_owned(),
                authorizer: Some(authorizer.to_owned()),
            }
        }
        None => {
            let name = app.unwrap_or(&config.app.name);
            match config.tokens.app_named(name) {
                Some(m) if m.kind == AppKind::MiniProgram => Target {
                    app: m.name.clone(),
                    appid: m.appid.clone(),
                    authorizer: None,
                },
                _ => bail!(
                    "give --authorizer APPID (these are third-party platform calls, made with the authorizer's token), or set appsecret for app {name}"
                ),
            }
        }
    };
    Ok((CategoryService::new(tokens, Arc::clone(store)), target))
}

/// Refuses, before anything is opened, when no account's token is managed.
fn require_managed(config: &Config) -> anyhow::Result<()> {
    if !config.tokens.manages_any() {
        bail!(
            "no account's token is managed: set component_appsecret (a third-party platform, then use --authorizer APPID) or appsecret (a Mini Program), or give --access-token where it is accepted"
        );
    }
    Ok(())
}

/// Runs `wxpush categories SUBCOMMAND`.
pub(crate) fn run(config: &Config, command: CategoriesCommand) -> anyhow::Result<()> {
    require_managed(config)?;
    runtime()?.block_on(async {
        let store = wxpush::service::open_existing_store(config).await?; // the error names the store and the cause
        match command {
            CategoriesCommand::Settable { who, search, refresh, verify_type } => {
                let (service, target) = account(config, &store, who.app.as_deref(), who.authorizer.as_deref()).await?;
                let settable = match verify_type {
                    Some(kind) => service.settable_by_type(&target.appid, kind).await?,
                    None => service.settable(&target.appid, refresh).await?,
                };
                let pairs = match &search {
                    Some(text) => settable.search(text),
                    None => settable.pairs.iter().collect(),
                };
                print_settable(&pairs, settable.fetched_at, who.json)?;
            }
            CategoriesCommand::Current { who } => {
                let (service, target) = account(config, &store, who.app.as_deref(), who.authorizer.as_deref()).await?;
                let current = service.current(&target.appid).await?;
                print_current(&current, who.json)?;
            }
            CategoriesCommand::Delete { who, first, second } => {
                let (service, target) = account(config, &store, who.app.as_deref(), who.authorizer.as_deref()).await?;
                service.delete(&target.appid, first, second).await?;
                if who.json {
                    outln!("{}", serde_json::json!({"deleted": {"appid": target.appid, "first": first, "second": second}}))?;
                } else {
                    outln!("deleted category {first}/{second} of {}", target.appid)?;
                }
            }
            CategoriesCommand::Modify { who, first, second, certs } => {
                let (service, target) = account(config, &store, who.app.as_deref(), who.authorizer.as_deref()).await?;
                let certicates = certs.given(Some((&service, &target))).await?;
                let category = Category { first, second, certicates };
                for warning in service.preflight(&target.appid, std::slice::from_ref(&category)).await? {
                    super::out::error_line(format_args!("warning: {warning}"));
                }
                service.modify(&target.appid, &category).await?;
                if who.json {
                    outln!("{}", serde_json::json!({"modified": {"appid": target.appid, "first": first, "second": second}}))?;
                } else {
                    outln!("modified the qualifications of category {first}/{second} of {}: in review again", target.appid)?;
                }
            }
        }
        anyhow::Ok(())
    })
}

/// Runs `wxpush media upload`.
pub(crate) fn media(config: &Config, command: MediaCommand) -> anyhow::Result<()> {
    let MediaCommand::Upload { file, who } = command;
    require_managed(config)?;
    runtime()?.block_on(async {
        let store = wxpush::service::open_existing_store(config).await?; // the error names the store and the cause
        let (service, target) = account(config, &store, who.app.as_deref(), who.authorizer.as_deref()).await?;
        let (media_id, expires_at) = upload(&service, &target, &file.to_string_lossy()).await?;
        if who.json {
            outln!("{}", serde_json::json!({"media_id": media_id, "expires_at": clock::rfc3339(expires_at), "appid": target.appid}))?;
        } else {
            outln!("{media_id}")?;
            super::out::error_line(format_args!("valid until {} for {}", clock::rfc3339(expires_at), target.appid));
        }
        anyhow::Ok(())
    })
}

fn print_settable(
    pairs: &[&wxpush::categories::SettablePair],
    fetched_at: i64,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        for p in pairs {
            outln!("{}", serde_json::to_string(p)?)?;
        }
        return Ok(());
    }
    outln!("{:<11}  {:<40}  QUALIFICATIONS", "FIRST/SEC", "NAME")?;
    for p in pairs {
        let needs = if p.needs_qualifications {
            let groups: Vec<String> = p.qualifications.iter().map(|g| g.join(" or ")).collect();
            if groups.is_empty() {
                "required (see the console)".to_owned()
            } else {
                groups.join("; ")
            }
        } else {
            "-".to_owned()
        };
        outln!(
            "{:<11}  {:<40}  {}",
            format!("{}/{}", p.first, p.second),
            Printable(&format!("{} / {}", p.first_name, p.second_name)),
            Printable(&needs)
        )?;
    }
    outln!(
        "{} categories, fetched {}",
        pairs.len(),
        clock::rfc3339(fetched_at)
    )?;
    Ok(())
}

fn print_current(
    current: &wxpush::platform::category::CurrentCategories,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string(current)?)?;
        return Ok(());
    }
    outln!(
        "{:<11}  {:<40}  {:<10}  REASON",
        "FIRST/SEC",
        "NAME",
        "STATUS"
    )?;
    for c in &current.categories {
        let status = match c.audit_status {
            1 => "in review",
            2 => "rejected",
            3 => "passed",
            _ => "unknown",
        };
        outln!(
            "{:<11}  {:<40}  {:<10}  {}",
            format!("{}/{}", c.first, c.second),
            Printable(&format!("{} / {}", c.first_name, c.second_name)),
            status,
            Printable(&c.audit_reason)
        )?;
    }
    outln!(
        "additions left this period: {} of {}; at most {} categories",
        current.quota,
        current.limit,
        current.category_limit
    )?;
    Ok(())
}
