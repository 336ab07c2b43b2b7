//! `wxpush add-category` (submit categories for review, recorded as pending) and
//! `wxpush categories` (submissions and the review results that resolved them).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use wxpush::escape::Printable;
use wxpush::platform::ApiClient;
use wxpush::platform::category::{self, AddCategoryRequest, Category, Certificate};
use wxpush::store::Submission;
use wxpush::tokens::{AppKind, TokenService};
use wxpush::{Config, Secret, clock};

/// `wxpush add-category` options.
#[derive(Debug, Args)]
pub(crate) struct AddCategoryArgs {
    /// First-level category id.
    #[arg(long, required_unless_present = "file")]
    first: Option<i64>,
    /// Second-level category id.
    #[arg(long, required_unless_present = "file")]
    second: Option<i64>,
    /// A qualification document as NAME=MEDIA_ID (repeatable).
    #[arg(long = "cert", value_name = "NAME=MEDIA_ID")]
    certs: Vec<String>,
    /// The request body as a JSON file (`{"categories":[…]}`) instead of flags.
    #[arg(long, conflicts_with_all = ["first", "second", "certs"])]
    file: Option<PathBuf>,
    /// An access token given by hand (default: the managed token of --authorizer, or of
    /// the app when its appsecret is set).
    #[arg(long, env = "WXPUSH_ACCESS_TOKEN", hide_env_values = true)]
    access_token: Option<String>,
    /// The API host (default: api_base from the configuration, env WXPUSH_API_BASE).
    #[arg(long)]
    api_base: Option<String>,
    /// The configured app the result will arrive for (default: the default app).
    #[arg(long)]
    app: Option<String>,
    /// The authorizer app id, when a third-party platform submits for a Mini Program.
    #[arg(long)]
    authorizer: Option<String>,
}

fn request_from(args: &AddCategoryArgs) -> anyhow::Result<AddCategoryRequest> {
    if let Some(path) = &args.file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let request: AddCategoryRequest = serde_json::from_str(&text).with_context(|| {
            format!("{}: expected {{\"categories\":[{{\"first\":8,\"second\":39,\"certicates\":[{{\"key\":\"…\",\"value\":\"media_id\",\"expire_time\":0,\"is_permanent\":1}}]}}]}} (expire_time and is_permanent are optional)", path.display())
        })?;
        if request.categories.is_empty() {
            bail!("{}: no categories", path.display());
        }
        return Ok(request);
    }
    let (Some(first), Some(second)) = (args.first, args.second) else {
        bail!("give --first and --second, or --file");
    };
    let certicates = args
        .certs
        .iter()
        .map(|c| {
            c.split_once('=')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .map(|(k, v)| Certificate {
                    key: k.to_owned(),
                    value: v.to_owned(),
                    expire_time: None,
                    is_permanent: None,
                })
                .with_context(|| format!("--cert: expected NAME=MEDIA_ID, got {c:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(AddCategoryRequest {
        categories: vec![Category {
            first,
            second,
            certicates,
        }],
    })
}

/// Runs `wxpush add-category`.
pub(crate) fn add_category(config: &Config, args: AddCategoryArgs) -> anyhow::Result<()> {
    let request = request_from(&args)?;
    let app = match args.app.as_deref() {
        None => &config.app,
        Some(name) => config
            .apps()
            .find(|a| a.name == name)
            .with_context(|| format!("--app: no app named {name:?}"))?,
    };
    let given = match args.access_token.as_deref().map(str::trim) {
        Some("") => bail!("--access-token (or WXPUSH_ACCESS_TOKEN) is empty"),
        given => given.map(|t| Secret::new(t.to_owned())),
    };
    let managed = match (&given, &args.authorizer) {
        (Some(_), _) => None,
        (None, Some(authorizer)) => Some(authorizer.clone()),
        (None, None) => match config.tokens.app(&app.appid) {
            Some(m) if m.kind == AppKind::MiniProgram => Some(app.appid.clone()),
            _ => bail!(
                "no access token: give --authorizer APPID (an authorizer of a third-party platform whose component_appsecret is set), set appsecret for the app, or give --access-token"
            ),
        },
    };
    let api_base = args
        .api_base
        .clone()
        .unwrap_or_else(|| config.tokens.api_base.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // The inbox first: a submission the platform accepted must have somewhere to go.
        let store = wxpush::service::open_existing_store(config).await?; // the error names the store and the cause
        let client = ApiClient::new(&api_base)?;
        match (&given, &managed) {
            (Some(token), _) => category::add_category(&client, token, &request)
                .await
                .map_err(|e| anyhow::anyhow!("addcategory failed: {e}"))?,
            (None, Some(appid)) => {
                let service = TokenService::with_client(config.tokens.clone(), Arc::clone(&store), client.clone());
                service
                    .with_token(appid, |token| {
                        let (client, request) = (&client, &request);
                        async move { category::add_category(client, &token, request).await }
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("addcategory failed: {e}"))?;
            }
            (None, None) => bail!("no access token"),
        }
        for category in &request.categories {
            let now = clock::now_ms();
            store
                .record_submission(Submission {
                    id: format!("sub_{now:x}{:06x}", rand::random::<u32>() & 0xff_ffff),
                    app: app.name.clone(),
                    authorizer_appid: args.authorizer.clone(),
                    first: category.first.to_string(),
                    second: category.second.to_string(),
                    status: "pending".into(),
                    reason: String::new(),
                    submitted_at: now,
                    resolved_at: None,
                    event_id: None,
                })
                .await?;
            outln!(
                "submitted category {}/{} for app {}{}: pending review; the result arrives as a wxa_category_audit push (see `wxpush categories`)",
                category.first,
                category.second,
                app.name,
                args.authorizer.as_deref().map(|a| format!(" (authorizer {a})")).unwrap_or_default()
            )?;
        }
        anyhow::Ok(())
    })
}

/// Runs `wxpush categories`.
pub(crate) fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(async {
        let store = wxpush::service::open_existing_store(config).await?; // the error names the store and the cause
        anyhow::Ok(store.submissions().await?)
    })?;
    if json {
        for row in &rows {
            outln!("{}", serde_json::to_string(row)?)?;
        }
        return Ok(());
    }
    if rows.is_empty() {
        outln!("no submissions and no category audit results yet")?;
        return Ok(());
    }
    outln!(
        "{:<28}  {:<9}  {:<8}  {:<20}  {:<15}  {:<24}  {:<24}  REASON",
        "ID",
        "STATUS",
        "APP",
        "AUTHORIZER",
        "CATEGORY",
        "SUBMITTED",
        "RESOLVED"
    )?;
    for r in &rows {
        outln!(
            "{:<28}  {:<9}  {:<8}  {:<20}  {:<15}  {:<24}  {:<24}  {}",
            Printable(&r.id),
            r.status,
            Printable(&r.app),
            Printable(r.authorizer_appid.as_deref().unwrap_or("-")),
            Printable(&format!("{}/{}", r.first, r.second)),
            clock::rfc3339(r.submitted_at),
            r.resolved_at
                .map(clock::rfc3339)
                .unwrap_or_else(|| "-".into()),
            if r.status == "unmatched" {
                format!("(no matching submission) {}", Printable(&r.reason))
            } else {
                Printable(&r.reason).to_string()
            }
        )?;
    }
    Ok(())
}
