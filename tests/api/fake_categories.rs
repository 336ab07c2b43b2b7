//! The fake platform's category group and media upload, with realistic state: the
//! settable tree (one category needs a qualification), a submission goes to review, the
//! test then makes the review pass or reject it, media ids expire and belong to the account
//! that uploaded them.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::Query;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::fake_platform::{FakePlatform, Platform, Shared, err};

type State = std::sync::Arc<std::sync::Mutex<Platform>>;

pub(crate) fn routes() -> Router<State> {
    Router::new()
        .route("/cgi-bin/wxopen/getallcategories", get(settable))
        .route("/cgi-bin/wxopen/getcategory", get(current))
        .route("/cgi-bin/wxopen/addcategory", post(add))
        .route("/cgi-bin/wxopen/deletecategory", post(delete))
        .route("/cgi-bin/wxopen/modifycategory", post(modify))
        .route("/cgi-bin/media/upload", post(upload))
}

/// The qualification 8/39 needs.
pub const LICENCE: &str = "《因私出入境中介机构经营许可证》";

impl FakePlatform {
    /// The platform reviews `first`/`second` of `appid`: 2 rejected, 3 passed.
    pub fn review(&self, appid: &str, first: i64, second: i64, status: i64, reason: &str) {
        self.with(|p| {
            for c in p.categories.entry(appid.to_owned()).or_default() {
                if c["first"] == first && c["second"] == second {
                    c["audit_status"] = json!(status);
                    c["audit_reason"] = json!(reason);
                }
            }
        });
    }
}

/// The account whose current token `query` carries, or the errcode.
fn account(p: &Platform, query: &HashMap<String, String>) -> Result<String, i64> {
    let given = query.get("access_token").cloned().unwrap_or_default();
    let owner = p
        .tokens
        .iter()
        .find(|(_, (t, _))| *t == given)
        .map(|(appid, _)| appid.clone())
        .ok_or(40001)?;
    match p.check(&owner, &given) {
        None => Ok(owner),
        Some(code) => Err(code),
    }
}

fn node(id: i64, name: &str, level: i64, father: i64, children: &[i64], licence: bool) -> Value {
    let exter = if licence {
        json!([{"inner_list": [{"name": LICENCE, "url": "https://example.invalid/licence.jpg"}]}])
    } else {
        json!([])
    };
    json!({"id": id, "name": name, "level": level, "father": father, "children": children,
           "sensitive_type": i64::from(licence), "qualify": {"exter_list": exter, "remark": ""}})
}

async fn settable(
    axum::extract::State(state): Shared,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut p = state.lock().expect("lock");
    p.count("getallcategories");
    if let Err(code) = account(&p, &q) {
        return err(code);
    }
    Json(
        json!({"errcode": 0, "errmsg": "ok", "categories_list": {"categories": [
            {"id": 0, "children": [1, 8], "qualify": {"exter_list": [], "remark": ""}},
            node(1, "快递业与邮政", 1, 0, &[2], false),
            node(2, "寄件/收件", 2, 1, &[], false),
            node(8, "教育", 1, 0, &[39, 40], false),
            node(39, "出国移民", 2, 8, &[], true),
            node(40, "在线教育", 2, 8, &[], false),
        ]}}),
    )
}

async fn current(
    axum::extract::State(state): Shared,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut p = state.lock().expect("lock");
    p.count("getcategory");
    let owner = match account(&p, &q) {
        Ok(owner) => owner,
        Err(code) => return err(code),
    };
    let categories = p.categories.get(&owner).cloned().unwrap_or_default();
    Json(
        json!({"errcode": 0, "errmsg": "ok", "categories": categories, "limit": 5, "quota": 4, "category_limit": 20}),
    )
}

async fn add(
    axum::extract::State(state): Shared,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Json<Value> {
    let mut p = state.lock().expect("lock");
    p.count("addcategory");
    let owner = match account(&p, &q) {
        Ok(owner) => owner,
        Err(code) => return err(code),
    };
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return err(53303);
    };
    for c in request["categories"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if let Some(code) = media_problem(&p, &owner, &c) {
            return err(code);
        }
        let set = p.categories.entry(owner.clone()).or_default();
        if set
            .iter()
            .any(|s| s["first"] == c["first"] && s["second"] == c["second"])
        {
            return err(53304);
        }
        set.push(
            json!({"first": c["first"], "first_name": "", "second": c["second"], "second_name": "",
                        "audit_status": 1, "audit_reason": ""}),
        );
    }
    p.added.push((owner, body));
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

/// 40007 for a media id that is unknown, expired or another account's.
fn media_problem(p: &Platform, owner: &str, c: &Value) -> Option<i64> {
    for cert in c["certicates"].as_array().cloned().unwrap_or_default() {
        let id = cert["value"].as_str().unwrap_or_default();
        match p.media.get(id) {
            Some((account, _, until)) if account == owner && *until > Instant::now() => {}
            _ => return Some(40007),
        }
    }
    None
}

async fn delete(
    axum::extract::State(state): Shared,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut p = state.lock().expect("lock");
    p.count("deletecategory");
    let owner = match account(&p, &q) {
        Ok(owner) => owner,
        Err(code) => return err(code),
    };
    let set = p.categories.entry(owner).or_default();
    let Some(i) = set
        .iter()
        .position(|s| s["first"] == body["first"] && s["second"] == body["second"])
    else {
        return err(53303);
    };
    if set[i]["audit_status"] == 1 {
        return err(53308);
    }
    set.remove(i);
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

async fn modify(
    axum::extract::State(state): Shared,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut p = state.lock().expect("lock");
    p.count("modifycategory");
    let owner = match account(&p, &q) {
        Ok(owner) => owner,
        Err(code) => return err(code),
    };
    if let Some(code) = media_problem(&p, &owner, &body) {
        return err(code);
    }
    let set = p.categories.entry(owner).or_default();
    let Some(c) = set
        .iter_mut()
        .find(|s| s["first"] == body["first"] && s["second"] == body["second"])
    else {
        return err(53303);
    };
    if c["audit_status"] != 2 {
        return err(53307);
    }
    c["audit_status"] = json!(1);
    c["audit_reason"] = json!("");
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

async fn upload(
    axum::extract::State(state): Shared,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Json<Value> {
    let mut p = state.lock().expect("lock");
    p.count("media/upload");
    let owner = match account(&p, &q) {
        Ok(owner) => owner,
        Err(code) => return err(code),
    };
    let text = String::from_utf8_lossy(&body);
    if q.get("type").map(String::as_str) != Some("image") || !text.contains("name=\"media\"") {
        return err(40004);
    }
    let file = text
        .split("filename=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let id = format!("media_{}", p.next());
    let until = Instant::now() + p.media_lifetime;
    p.media.insert(id.clone(), (owner, file, until));
    let created_at = (wxpush::clock::now_ms() - p.media_age_ms) / 1000;
    Json(json!({"type": "image", "media_id": id, "created_at": created_at}))
}
