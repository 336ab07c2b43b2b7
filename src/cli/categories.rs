//! `wxpush add-category` (check, submit, record as pending) and `wxpush categories` (the
//! submissions and how each was resolved); the other category subcommands are in
//! `category_commands.rs`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use wxpush::escape::Printable;
use wxpush::platform::ApiClient;
use wxpush::platform::category::{self, AddCategoryRequest, Category};
use wxpush::store::{Store, Submission};
use wxpush::{Config, Secret, clock};

use super::category_commands::{CertArgs, account, runtime};

/// `wxpush add-category` options.
#[derive(Debug, Args)]
pub(crate) struct AddCategoryArgs {
    /// First-level category id (see `wxpush categories settable`).
    #[arg(long, required_unless_present = "file")]
    first: Option<i64>,
    /// Second-level category id.
    #[arg(long, required_unless_present = "file")]
    second: Option<i64>,
    #[command(flatten)]
    certs: CertArgs,
    /// The request body as a JSON file (`{"categories":[…]}`) instead of flags.
    #[arg(long, conflicts_with_all = ["first", "second"])]
    file: Option<PathBuf>,
    /// An access token given by hand (default: the managed token of --authorizer, or of
    /// the app when its appsecret is set). With it, the checks against the settable list
    /// and `@FILE` uploads are not available.
    #[arg(long, env = "WXPUSH_ACCESS_TOKEN", hide_env_values = true)]
    access_token: Option<String>,
    /// The API host (default: api_base from the configuration, env WXPUSH_API_BASE).
    #[arg(long)]
    api_base: Option<String>,
    /// The configured app the result will arrive for (default: the default app, or the
    /// platform the authorizer authorized).
    #[arg(long)]
    app: Option<String>,
    /// The authorizer app id, when a third-party platform submits for a Mini Program.
    #[arg(long)]
    authorizer: Option<String>,
    /// Print the submissions as JSON, one per line.
    #[arg(long)]
    json: bool,
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
    Ok(AddCategoryRequest {
        categories: vec![Category {
            first,
            second,
            certicates: Vec::new(),
        }],
    })
}

/// Runs `wxpush add-category`.
pub(crate) fn add_category(config: &Config, args: AddCategoryArgs) -> anyhow::Result<()> {
    let mut request = request_from(&args)?;
    let given = match args.access_token.as_deref().map(str::trim) {
        Some("") => bail!("--access-token (or WXPUSH_ACCESS_TOKEN) is empty"),
        given => given.map(|t| Secret::new(t.to_owned())),
    };
    runtime()?.block_on(async {
        // The inbox first: a submission the platform accepted must have somewhere to go.
        let store = wxpush::service::open_existing_store(config).await?; // the error names the store and the cause
        let submissions = match given {
            Some(token) => {
                request.categories[0].certicates = args.certs.given(None).await?;
                add_by_hand(config, &args, &store, &token, &request).await?
            }
            None => {
                let (service, target) =
                    account(config, &store, args.app.as_deref(), args.authorizer.as_deref()).await?;
                let certs = args.certs.given(Some((&service, &target))).await?;
                if args.file.is_none() {
                    request.categories[0].certicates = certs;
                }
                // Warnings before the call, which may fail because of what they say.
                for warning in service.preflight(&target.appid, &request.categories).await? {
                    super::out::error_line(format_args!("warning: {warning}"));
                }
                let (submissions, _) = service
                    .add(&target, &request)
                    .await
                    .map_err(|e| anyhow::anyhow!("addcategory failed: {e}"))?;
                submissions
            }
        };
        for s in &submissions {
            if args.json {
                outln!("{}", serde_json::to_string(s)?)?;
            } else {
                outln!(
                    "submitted category {}/{} for app {}{} as {}: pending review; the result arrives as a wxa_category_audit push (see `wxpush categories`)",
                    s.first,
                    s.second,
                    s.app,
                    s.authorizer_appid.as_deref().map(|a| format!(" (authorizer {a})")).unwrap_or_default(),
                    s.id
                )?;
            }
        }
        anyhow::Ok(())
    })
}

/// Submits with a token given by hand, without the checks a managed account gets.
async fn add_by_hand(
    config: &Config,
    args: &AddCategoryArgs,
    store: &std::sync::Arc<dyn Store>,
    token: &Secret<String>,
    request: &AddCategoryRequest,
) -> anyhow::Result<Vec<Submission>> {
    let app = match args.app.as_deref() {
        None => &config.app,
        Some(name) => config
            .apps()
            .find(|a| a.name == name)
            .with_context(|| format!("--app: no app named {name:?}"))?,
    };
    let api_base = args
        .api_base
        .clone()
        .unwrap_or_else(|| config.tokens.api_base.clone());
    let client = ApiClient::new(&api_base)?;
    category::add_category(&client, token, request)
        .await
        .map_err(|e| anyhow::anyhow!("addcategory failed: {e}"))?;
    let mut out = Vec::new();
    for c in &request.categories {
        let submission = Submission::pending(
            "sub",
            &app.name,
            args.authorizer.as_deref(),
            c.first,
            c.second,
        );
        store.record_submission(submission.clone()).await?;
        out.push(submission);
    }
    Ok(out)
}

/// Runs `wxpush categories` (the submissions).
pub(crate) fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let rows = runtime()?.block_on(async {
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
        "{:<28}  {:<9}  {:<10}  {:<8}  {:<20}  {:<15}  {:<24}  {:<24}  REASON",
        "ID",
        "STATUS",
        "RESOLVED BY",
        "APP",
        "AUTHORIZER",
        "CATEGORY",
        "SUBMITTED",
        "RESOLVED"
    )?;
    for r in &rows {
        outln!(
            "{:<28}  {:<9}  {:<10}  {:<8}  {:<20}  {:<15}  {:<24}  {:<24}  {}",
            Printable(&r.id),
            r.status,
            r.source.as_deref().unwrap_or("-"),
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
