//! When and by whom the stored administration rows say they were made
//! ([`crate::admin::RowMade`]), against the record's events: a principal's
//! and a token's `created_at` and `created_by`, a token's `revoked_at` and
//! `revoked_by`, an outside user's `mapped_at` and `mapped_by`, an OpenID
//! Connect identity's `bound_at`. No decision reads them, but the console
//! and the CLI show them to people, so a rewritten one misleads whoever
//! reviews who did what.
//!
//! The writer fills them from the event it records in the same transaction
//! (the event's `recorded_at`, its actor, `NULL` for `system`). Rows the
//! ledger's own actor recorded are the exception: the record of a data
//! directory made before administration was on the record
//! (`docs/admin.md`) recorded the rows it found, which keep their own
//! times and authors. For those only what cannot be is reported: a row
//! made after its event was recorded.

use std::collections::BTreeMap;

use crate::admin::{MadeKey, RowMade};
use crate::code::Code;
use crate::event::{Event, EventBody};
use crate::model::SYSTEM_PRINCIPAL;
use crate::text;
use crate::time::Timestamp;

use super::finding::Finding;

/// When an event of the record was recorded, and by whom.
#[derive(Clone, Debug)]
struct By {
    at: Timestamp,
    principal: String,
}

impl By {
    fn of(event: &Event) -> By {
        By {
            at: event.recorded_at,
            principal: event.actor.principal.to_string(),
        }
    }

    fn system(&self) -> bool {
        self.principal == SYSTEM_PRINCIPAL
    }

    /// Whether a row's time and author columns say what this event does
    /// (`None` for the author when the table has no such column);
    /// `principals` are the principals the record added.
    fn matches(
        &self,
        at: &str,
        by: Option<Option<&str>>,
        principals: &BTreeMap<String, By>,
    ) -> bool {
        let Ok(stored) = Timestamp::parse(at) else {
            return false;
        };
        if self.system() {
            // Recorded from an older data directory: the row may be older,
            // and made by any principal (or by nobody: `init`).
            return stored <= self.at && by.flatten().is_none_or(|by| principals.contains_key(by));
        }
        stored == self.at && by.is_none_or(|by| by == Some(self.principal.as_str()))
    }

    fn describe(&self) -> String {
        if self.system() {
            format!("recorded by the ledger at {} (or before)", self.at)
        } else {
            format!("at {} by {}", self.at, self.principal)
        }
    }
}

/// What the record says of each row's making, as it is replayed.
#[derive(Clone, Debug, Default)]
pub(super) struct Made {
    principals: BTreeMap<String, By>,
    /// Issued, and the first revocation.
    tokens: BTreeMap<String, (By, Option<By>)>,
    identities: BTreeMap<(String, String), By>,
}

impl Made {
    /// Notes what an event of the record makes. The first `principal_added`
    /// and `token_issued` and the first `token_revoked` stand (as the
    /// writer's rows do); a mapping is the latest, and an unmapping that
    /// removed it removes it (`mapped` is whether the record still maps it
    /// after the event).
    pub(super) fn observe(&mut self, event: &Event, mapped: impl Fn(&str, &str) -> bool) {
        match &event.body {
            EventBody::PrincipalAdded(added) => {
                self.principals
                    .entry(added.principal.to_string())
                    .or_insert_with(|| By::of(event));
            }
            EventBody::TokenIssued(issued) => {
                self.tokens
                    .entry(issued.token_id.clone())
                    .or_insert_with(|| (By::of(event), None));
            }
            EventBody::TokenRevoked(revoked) => {
                if let Some((_, revocation)) = self.tokens.get_mut(&revoked.token_id) {
                    revocation.get_or_insert_with(|| By::of(event));
                }
            }
            EventBody::IdentityMapped(mapped) => {
                self.identities.insert(
                    (
                        mapped.connector.to_string(),
                        mapped.external_user.to_string(),
                    ),
                    By::of(event),
                );
            }
            EventBody::IdentityUnmapped(unmapped) => {
                let key = (
                    unmapped.connector.to_string(),
                    unmapped.external_user.to_string(),
                );
                if !mapped(&key.0, &key.1) {
                    self.identities.remove(&key);
                }
            }
            _ => {}
        }
    }

    /// Compares each stored row's making with the record's. A row the
    /// record does not hold is reported by the comparison of the rows
    /// themselves; `oidc` gives the principal an OpenID Connect identity
    /// is bound to, whose `principal_added` bound it.
    pub(super) fn check(
        &self,
        rows: &[RowMade],
        oidc: impl Fn(&str, &str) -> Option<String>,
    ) -> Vec<Finding> {
        let mut found = Vec::new();
        for row in rows {
            let by = row.by.as_deref();
            match &row.key {
                MadeKey::Principal(id) => {
                    let Some(recorded) = self.principals.get(id) else {
                        continue;
                    };
                    if !recorded.matches(&row.at, Some(by), &self.principals) {
                        found.push(Finding::new(
                            Code::AdminPrincipalMismatch,
                            format!(
                                "principal {} is stored as added at {} by {}, but the administration record added it {}",
                                text::escape(id),
                                text::escape(&row.at),
                                by.map_or_else(|| "the ledger".to_string(), |name| text::escape(name).into_owned()),
                                recorded.describe()
                            ),
                        ));
                    }
                }
                MadeKey::Token(id) => {
                    let Some((issued, revocation)) = self.tokens.get(id) else {
                        continue;
                    };
                    if !issued.matches(&row.at, Some(by), &self.principals) {
                        found.push(Finding::new(
                            Code::AdminTokenMismatch,
                            format!(
                                "token {} is stored as issued at {} by {}, but the administration record issued it {}",
                                text::escape(id),
                                text::escape(&row.at),
                                by.map_or_else(|| "the ledger".to_string(), |name| text::escape(name).into_owned()),
                                issued.describe()
                            ),
                        ));
                    }
                    // Whether it is revoked at all (`revoked_at`) is
                    // compared with the rows; `revoked_by` without it is
                    // a revocation nobody made.
                    if let (None, Some(revoked_by), None) =
                        (&row.revoked.0, &row.revoked.1, revocation)
                    {
                        found.push(Finding::new(
                            Code::AdminTokenMismatch,
                            format!(
                                "token {} is stored as revoked by {}, but the administration record never revoked it",
                                text::escape(id),
                                text::escape(revoked_by)
                            ),
                        ));
                    }
                    if let (Some(at), Some(revocation)) = (&row.revoked.0, revocation) {
                        let revoked_by = row.revoked.1.as_deref();
                        // `revoked_by` names `system` too.
                        let author_ok = revocation.system()
                            || revoked_by == Some(revocation.principal.as_str());
                        if !author_ok || !revocation.matches(at, None, &self.principals) {
                            found.push(Finding::new(
                                Code::AdminTokenMismatch,
                                format!(
                                    "token {} is stored as revoked at {} by {}, but the administration record revoked it {}",
                                    text::escape(id),
                                    text::escape(at),
                                    revoked_by.map_or_else(|| "nobody".to_string(), |name| text::escape(name).into_owned()),
                                    revocation.describe()
                                ),
                            ));
                        }
                    }
                }
                MadeKey::Identity(connector, user) => {
                    let Some(recorded) = self.identities.get(&(connector.clone(), user.clone()))
                    else {
                        continue;
                    };
                    if !recorded.matches(&row.at, Some(by), &self.principals) {
                        found.push(Finding::new(
                            Code::AdminIdentityMismatch,
                            format!(
                                "{} user {} is stored as mapped at {} by {}, but the administration record mapped it {}",
                                text::escape(connector),
                                text::escape(user),
                                text::escape(&row.at),
                                by.map_or_else(|| "the ledger".to_string(), |name| text::escape(name).into_owned()),
                                recorded.describe()
                            ),
                        ));
                    }
                }
                MadeKey::Oidc(issuer, subject) => {
                    let Some(recorded) =
                        oidc(issuer, subject).and_then(|principal| self.principals.get(&principal))
                    else {
                        continue;
                    };
                    if !recorded.matches(&row.at, None, &self.principals) {
                        found.push(Finding::new(
                            Code::AdminIdentityMismatch,
                            format!(
                                "the OpenID Connect identity {} of {} is stored as bound at {}, but the administration record bound it {}",
                                text::escape(subject),
                                text::escape(issuer),
                                text::escape(&row.at),
                                recorded.describe()
                            ),
                        ));
                    }
                }
            }
        }
        found
    }
}
