//! The settable list as pairs (first/second with names and the qualifications each needs),
//! and the checks a submission passes before any call: the pair exists (else the closest
//! ones are named), and a category that needs qualifications gets some (else they are
//! named).

use std::collections::HashMap;

use serde::Serialize;

use super::CategoryError;
use crate::escape::printable;
use crate::platform::category::{Category, SettableNode};

/// One second-level category the account may set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettablePair {
    /// First-level id.
    pub first: i64,
    /// Its name.
    pub first_name: String,
    /// Second-level id.
    pub second: i64,
    /// Its name.
    pub second_name: String,
    /// Whether qualifications must be given (a sensitive category).
    pub needs_qualifications: bool,
    /// The documents asked for, by group.
    pub qualifications: Vec<Vec<String>>,
    /// The platform's note on them.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remark: String,
}

/// The settable list of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settable {
    /// Every pair, by first then second id.
    pub pairs: Vec<SettablePair>,
    /// When it was fetched (unix ms).
    #[serde(skip)]
    pub fetched_at: i64,
}

impl Settable {
    /// The pairs of the platform's tree.
    pub fn from_nodes(nodes: Vec<SettableNode>, fetched_at: i64) -> Self {
        let by_id: HashMap<i64, &SettableNode> = nodes.iter().map(|n| (n.id, n)).collect();
        let mut pairs: Vec<SettablePair> = nodes
            .iter()
            .filter(|n| n.level == 2)
            .map(|n| {
                let first = by_id.get(&n.father);
                SettablePair {
                    first: n.father,
                    first_name: first.map(|f| f.name.clone()).unwrap_or_default(),
                    second: n.id,
                    second_name: n.name.clone(),
                    needs_qualifications: n.sensitive_type == 1,
                    qualifications: n
                        .qualify
                        .exter_list
                        .iter()
                        .map(|g| g.inner_list.iter().map(|d| d.name.clone()).collect())
                        .filter(|g: &Vec<String>| !g.is_empty())
                        .collect(),
                    remark: n.qualify.remark.clone(),
                }
            })
            .collect();
        pairs.sort_by_key(|p| (p.first, p.second));
        Self { pairs, fetched_at }
    }

    /// The pairs whose names or ids contain `text` (any case).
    pub fn search(&self, text: &str) -> Vec<&SettablePair> {
        let text = text.to_lowercase();
        self.pairs
            .iter()
            .filter(|p| {
                format!(
                    "{}/{} {} {}",
                    p.first, p.second, p.first_name, p.second_name
                )
                .to_lowercase()
                .contains(&text)
            })
            .collect()
    }

    /// The pair `first`/`second`.
    pub fn pair(&self, first: i64, second: i64) -> Option<&SettablePair> {
        self.pairs
            .iter()
            .find(|p| p.first == first && p.second == second)
    }

    /// Refuses a category the account cannot set (naming the closest pairs), or one that
    /// needs qualifications and has none (naming them).
    ///
    /// # Errors
    /// [`CategoryError::Invalid`].
    pub fn check(&self, c: &Category) -> Result<(), CategoryError> {
        let Some(pair) = self.pair(c.first, c.second) else {
            let closest: Vec<String> = self
                .closest(c.first, c.second)
                .iter()
                .map(|p| describe(p))
                .collect();
            return Err(CategoryError::Invalid(format!(
                "{}/{} is not a category this account can set. Closest: {}. See `wxpush categories settable --search TEXT`",
                c.first,
                c.second,
                if closest.is_empty() {
                    "none".into()
                } else {
                    closest.join("; ")
                }
            )));
        };
        if pair.needs_qualifications && c.certicates.is_empty() {
            let documents: Vec<String> = pair
                .qualifications
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|d| format!("'{}'", printable(d)))
                        .collect::<Vec<_>>()
                        .join(" or ")
                })
                .collect();
            return Err(CategoryError::Invalid(format!(
                "{} needs qualifications: {}. Give each as --cert 'NAME=@FILE' (uploaded first) or --cert 'NAME=MEDIA_ID'",
                describe(pair),
                if documents.is_empty() {
                    "see the platform's console".into()
                } else {
                    documents.join(", ")
                }
            )));
        }
        Ok(())
    }

    /// Up to three pairs nearest to `first`/`second`: in the same first-level category by
    /// second id, else the nearest first-level ones.
    fn closest(&self, first: i64, second: i64) -> Vec<&SettablePair> {
        let mut same: Vec<&SettablePair> = self.pairs.iter().filter(|p| p.first == first).collect();
        if same.is_empty() {
            same = self.pairs.iter().collect();
            same.sort_by_key(|p| ((p.first - first).abs(), p.second));
        } else {
            same.sort_by_key(|p| (p.second - second).abs());
        }
        same.truncate(3);
        same
    }
}

/// `8/39 (教育 / 出国移民)`.
pub(super) fn describe(p: &SettablePair) -> String {
    format!(
        "{}/{} ({} / {})",
        p.first,
        p.second,
        printable(&p.first_name),
        printable(&p.second_name)
    )
}
