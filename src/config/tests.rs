use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn embedded_defaults_load_and_use_demo_credentials() -> Result<(), ConfigError> {
    let cfg = Config::load_with(None, &env(&[]))?;
    assert!(cfg.uses_demo_credentials());
    assert_eq!(cfg.body_limit_bytes, 65536);
    Ok(())
}

#[test]
fn every_env_override_names_a_real_key() -> Result<(), ConfigError> {
    let values: Vec<(&str, &str)> = ENV_OVERRIDES
        .iter()
        .map(|(var, _, kind)| {
            let value = match (var, kind) {
                (&"WXPUSH_LISTEN", _) => "127.0.0.1:1",
                (&"WXPUSH_ADMIN_LISTEN", _) => "127.0.0.1:2",
                (&"WXPUSH_APPID", _) => "wx0123456789abcdef",
                (&"WXPUSH_HANDLER", _) => "log",
                (&"WXPUSH_ALERTS_WEBHOOK_URL", _) => "https://ops.example/alerts",
                (&"WXPUSH_LOG_FORMAT", _) => "json",
                (&"WXPUSH_API_BASE", _) => "http://127.0.0.1:9/",
                (&"WXPUSH_SECRETS_KEY", _) => "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                (&"WXPUSH_ADMIN_API_TOKEN", _) => "an-operator-token-of-some-length",
                (&"WXPUSH_ADMIN_CONSOLE_PASSWORD", _) => "a-console-password",
                // One of the two app secrets at a time.
                (&"WXPUSH_APPSECRET", _) => "",
                (&"WXPUSH_STORE", _) => "postgres",
                (&"WXPUSH_DATABASE_URL", _) => "postgres://u:p@db.example/inbox",
                (&"WXPUSH_POSTGRES_LEASE_SECS", _) => "5000",
                (&"WXPUSH_POSTGRES_CA_FILE", _) => "Cargo.toml",
                (&"WXPUSH_ENCODING_AES_KEY", _) => "FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODadSB",
                (&"WXPUSH_PREVIOUS_ENCODING_AES_KEY", _) => {
                    "Uw5ivvPr4xBUYFrca8hu62mO8LtaK66OKHIvIVOaPHJ"
                }
                (_, ValueKind::Integer) => "4096",
                (_, ValueKind::Numbers) => "1,2.5,3",
                (_, ValueKind::Words) => "/bin/true --flag",
                (_, ValueKind::Bool) => "true",
                (_, ValueKind::Text) => "abc123",
            };
            (*var, value)
        })
        .collect();
    let cfg = Config::load_with(None, &env(&values))?;
    assert_eq!(cfg.data_dir, PathBuf::from("abc123"));
    assert_eq!(cfg.delivery.concurrency, 4096);
    assert_eq!(
        (
            cfg.delivery.max_attempts(),
            cfg.delivery.retry_schedule.len()
        ),
        (4096, 4095),
        "the deprecated keys set by the environment still apply"
    );
    assert_eq!(cfg.deprecations.len(), 1);
    assert_eq!(cfg.http.max_connections, 4096);
    assert_eq!(cfg.http.header_timeout.as_secs(), 4096);
    assert_eq!(cfg.admin_listen.map(|a| a.port()), Some(2));
    assert!(cfg.allow_demo_credentials && cfg.app.require_encryption);
    assert_eq!(cfg.retention.as_secs(), 4096 * 86_400);
    assert_eq!(cfg.log_format, LogFormat::Json);
    let StoreKind::Postgres(pg) = &cfg.store else {
        return Err(ConfigError::new("store", "expected postgres"));
    };
    assert_eq!(
        (pg.schema.as_str(), pg.pool_size, pg.lease.as_secs()),
        ("abc123", 4096, 5000)
    );
    Ok(())
}

/// `config/default.toml`, the environment overrides and docs/configuration.md name the
/// same keys: a key added to one and forgotten in another fails here.
#[test]
fn defaults_env_overrides_and_documented_keys_agree() -> Result<(), ConfigError> {
    fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (key, value) in table {
            match value {
                toml::Value::Table(inner) => leaves(inner, &format!("{prefix}{key}."), out),
                _ => out.push(format!("{prefix}{key}")),
            }
        }
    }
    let mut defaults = Vec::new();
    leaves(&parse_toml(DEFAULT_TOML, "defaults")?, "", &mut defaults);
    let doc = include_str!("../../docs/configuration.md");
    let documented: Vec<(String, String)> = doc
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let key = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let env = cells.next()?.trim_matches('`');
            Some((key.to_owned(), env.to_owned()))
        })
        .collect();
    for key in &defaults {
        let path: Vec<&str> = key.split('.').collect();
        let var = ENV_OVERRIDES
            .iter()
            .find(|(_, p, _)| *p == path.as_slice())
            .map(|(var, _, _)| *var);
        let Some(var) = var else {
            panic!("{key} has no environment override");
        };
        let row = documented.iter().find(|(k, _)| k == key);
        assert_eq!(
            row.map(|(_, env)| env.as_str()),
            Some(var),
            "docs/configuration.md documents {key} with {var}"
        );
        let comment_names_var = DEFAULT_TOML.contains(&format!("env {var}"))
            || DEFAULT_TOML.contains(&format!("{var},"))
            || DEFAULT_TOML.contains(&format!("{var})"));
        assert!(
            comment_names_var,
            "config/default.toml's comment names {var}"
        );
    }
    for (_, path, _) in ENV_OVERRIDES {
        let key = path.join(".");
        assert!(
            defaults.contains(&key) || DEPRECATED.contains(&key.as_str()),
            "{key} is overridden but has no default"
        );
    }
    for (key, _) in &documented {
        let known = defaults.contains(key) || key == "[[apps]]" || key == "key";
        assert!(
            known,
            "docs/configuration.md documents an unknown key {key}"
        );
    }
    Ok(())
}

#[test]
fn env_overrides_apply() -> Result<(), ConfigError> {
    let cfg = Config::load_with(
        None,
        &env(&[
            ("WXPUSH_LISTEN", "0.0.0.0:9000"),
            ("WXPUSH_TOKEN", "abc123"),
            ("WXPUSH_APPID", "wxabc0123456789def"),
        ]),
    )?;
    assert_eq!(cfg.listen.port(), 9000);
    assert_eq!(cfg.app.appid, "wxabc0123456789def");
    assert!(cfg.uses_demo_credentials(), "the key is still the demo one");
    assert_eq!(
        cfg.demo_credentials(),
        vec!["app.encoding_aes_key (WXPUSH_ENCODING_AES_KEY)"]
    );
    Ok(())
}

#[test]
fn demo_credentials_on_a_public_address_refuse_to_start_naming_each() -> Result<(), ConfigError> {
    let public = Config::load_with(None, &env(&[("WXPUSH_LISTEN", "0.0.0.0:8080")]))?;
    let err = public
        .check_exposure()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    for key in ["WXPUSH_TOKEN", "WXPUSH_ENCODING_AES_KEY", "WXPUSH_APPID"] {
        assert!(err.contains(key), "{err}");
    }
    let loopback = Config::load_with(None, &env(&[]))?;
    assert!(loopback.check_exposure().is_ok());
    let allowed = Config::load_with(
        None,
        &env(&[
            ("WXPUSH_LISTEN", "0.0.0.0:8080"),
            ("WXPUSH_ALLOW_DEMO_CREDENTIALS", "true"),
        ]),
    )?;
    assert!(allowed.check_exposure().is_ok());
    Ok(())
}

#[test]
fn an_appid_not_of_the_platforms_form_is_refused() {
    for bad in [
        "hello",
        "wx123",
        "wx5a1b2c3d4e5f6a7b0",
        "wx5a1b2c3d4e5f6a7-",
    ] {
        let err = Config::load_with(None, &env(&[("WXPUSH_APPID", bad)]))
            .err()
            .map(|e| e.key);
        assert_eq!(err.as_deref(), Some("app.appid"), "{bad}");
    }
}

#[test]
fn short_key_error_names_key_and_length_but_not_value() {
    let key = "FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODad";
    let err = Config::load_with(None, &env(&[("WXPUSH_ENCODING_AES_KEY", key)]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        err,
        "app.encoding_aes_key: expected 43 base64 characters, got 41"
    );
    assert!(!err.contains(key));
}

#[test]
fn bad_token_error_does_not_print_the_token() {
    let err = Config::from_toml("[app]\ntoken = \"bad token!\"")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("app.token: expected 3 to 32 letters or digits"));
    assert!(!err.contains("bad token"));
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let unknown = Config::from_toml("listn = \"x\"")
        .err()
        .map(|e| e.to_string());
    assert!(unknown.is_some_and(|e| e.contains("listn")));
    let listen = Config::from_toml("listen = \"nowhere\"")
        .err()
        .map(|e| e.key);
    assert_eq!(listen.as_deref(), Some("listen"));
    let number = Config::load_with(None, &env(&[("WXPUSH_BODY_LIMIT_BYTES", "lots")]))
        .err()
        .map(|e| e.key);
    assert_eq!(number.as_deref(), Some("WXPUSH_BODY_LIMIT_BYTES"));
}

#[test]
fn type_errors_and_unknown_keys_name_the_key_and_the_file() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("wxpush.toml");
    std::fs::write(&file, "body_limit_bytes = \"big\"\n")?;
    let err = Config::load_with(Some(&file), &env(&[]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("body_limit_bytes: expected i64, got a string"),
        "{err}"
    );
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(!err.contains("big"), "{err}");
    std::fs::write(&file, "[app]\ntokn = \"abc123\"\n")?;
    let err = Config::load_with(Some(&file), &env(&[]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("app.tokn: unknown field `tokn`"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    Ok(())
}

#[test]
fn toml_syntax_errors_give_the_line_not_the_text() {
    let err = Config::from_toml("[app]\ntoken = \"secretvalue")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("secretvalue"), "{err}");
}

#[test]
fn masked_toml_hides_secrets() -> Result<(), ConfigError> {
    let cfg = Config::load_with(None, &env(&[]))?;
    let text = cfg.to_masked_toml();
    assert!(!text.contains(DEMO_TOKEN));
    assert!(!text.contains("FqRfJtSZ"));
    assert!(text.contains("wx5a1b2c3d4e5f6a7b"));
    let pg = Config::load_with(
        None,
        &env(&[(
            "WXPUSH_DATABASE_URL",
            "postgres://inbox:pg-s3cret@db.internal:5432/wxpush",
        )]),
    )?;
    let text = pg.to_masked_toml();
    assert!(text.contains("store = \"postgres\""), "{text}");
    assert!(text.contains("inbox@db.internal:5432/wxpush"), "{text}");
    assert!(!text.contains("pg-s3cret"), "{text}");
    assert!(!format!("{pg:?}").contains("pg-s3cret"));
    let routed = Config::from_toml(
        "[alerts]\nwebhook_url = \"https://ops.example/alerts\"\nsecret = \"alert-s3cret\"\n\
         [[routes]]\nname = \"audits\"\nhandler = \"webhook\"\nevents = [\"wxa_category_audit\"]\n\
         webhook = { url = \"https://internal.example/audits\", secret = \"route-s3cret\" }\n",
    )?;
    let text = routed.to_masked_toml();
    assert!(
        text.contains("name = \"audits\"") && text.contains("[alerts]"),
        "{text}"
    );
    assert!(
        !text.contains("alert-s3cret") && !text.contains("route-s3cret"),
        "{text}"
    );
    assert!(!format!("{routed:?}").contains("s3cret"));
    Ok(())
}

#[test]
fn routes_are_validated_with_the_key_at_fault() {
    let cases = [
        (
            "[[routes]]\nname = \"a b\"\nhandler = \"log\"\n",
            "routes[0].name",
        ),
        (
            "[[routes]]\nname = \"a\"\nhandler = \"log\"\n[[routes]]\nname = \"a\"\nhandler = \"log\"\n",
            "routes[1].name",
        ),
        (
            "[[routes]]\nname = \"a\"\nhandler = \"webhook\"\n",
            "routes[0].webhook",
        ),
        (
            "[[routes]]\nname = \"a\"\nhandler = \"webhook\"\nwebhook = { url = \"ftp://x\" }\n",
            "routes[0].webhook.url",
        ),
        (
            "[[routes]]\nname = \"a\"\nhandler = \"log\"\napps = [\"nope\"]\n",
            "routes[0].apps",
        ),
        (
            "[[routes]]\nname = \"a\"\nhandler = \"mail\"\n",
            "routes[0].handler",
        ),
        (
            "[delivery]\nretry_schedule_secs = [5, 0]\n",
            "delivery.retry_schedule_secs[1]",
        ),
        ("[alerts]\nwebhook_url = \"nope\"\n", "alerts.webhook_url"),
        (
            "[[routes]]\nname = \"tokens\"\nhandler = \"log\"\n",
            "routes[0].name",
        ),
        (
            "[app]\ncomponent_appsecret = \"a\"\nappsecret = \"b\"\n",
            "app.appsecret",
        ),
        ("secrets_key = \"c2hvcnQ=\"\n", "secrets_key"),
        ("[admin]\napi_token = \"short\"\n", "admin.api_token"),
        ("api_base = \"api.weixin.qq.com\"\n", "api_base"),
    ];
    for (toml, key) in cases {
        let err = Config::from_toml(toml).expect_err(toml);
        assert_eq!(err.key, key, "{toml}: {err}");
    }
}

#[test]
fn a_managed_platform_adds_the_token_route_and_hides_its_secrets() -> Result<(), ConfigError> {
    let secret = "component-secret-VALUE-9";
    let cfg = Config::from_toml(&format!(
        "secrets_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n[admin]\napi_token = \"operator-token-0123456789\"\n[app]\ncomponent_appsecret = \"{secret}\"\n"
    ))?;
    let names: Vec<String> = cfg.routing().0.into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["default", "tokens"]);
    let masked = cfg.to_masked_toml();
    for value in [
        secret,
        "operator-token-0123456789",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ] {
        assert!(!masked.contains(value), "{masked}");
        assert!(!format!("{cfg:?}").contains(value));
    }
    assert!(
        masked.contains("component_appsecret = \"********"),
        "{masked}"
    );
    toml::from_str::<toml::Table>(&masked)
        .map_err(|e| ConfigError::new("masked", e.to_string()))?;
    let plain = Config::from_toml("")?;
    assert_eq!(
        plain.routing().0.len(),
        1,
        "no token route without a managed platform"
    );
    Ok(())
}
