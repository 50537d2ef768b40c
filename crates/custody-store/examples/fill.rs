//! Fills a data directory with synthetic cases, for profiling `custody verify`:
//! `cargo run --release -p custody-store --example fill -- DIR EVENTS`.

#![allow(clippy::unwrap_used)]

use std::str::FromStr;

use custody_core::command::{CaseStep, Opening};
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, PrincipalId, PrincipalKind, Subject, Via,
};
use custody_store::{CaseWrite, Store};

#[tokio::main]
async fn main() {
    let mut arguments = std::env::args().skip(1);
    let directory = arguments.next().expect("DIR");
    let events: usize = arguments
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let store = Store::open(std::path::Path::new(&directory)).await.unwrap();
    let writers = 64;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let actor = Actor {
                principal: PrincipalId::from_str(&format!("w{writer}")).unwrap(),
                kind: PrincipalKind::Human,
                org: None,
                groups: Vec::new(),
                on_behalf_of: None,
                delegation_grant: None,
                via: Via::Api,
                auth: AuthContext::Token {
                    token_id: "tok_fill".into(),
                },
            };
            let opened = store
                .write(CaseWrite {
                    actor: actor.clone(),
                    idempotency_key: "open".into(),
                    command: Opening::Request {
                        drill: false,
                        change: Change::new(
                            Subject::from_str(&format!("user:w{writer}")).unwrap(),
                            ChangeKind::Grant,
                            "admin".into(),
                            None,
                            None,
                        )
                        .expect("a valid change"),
                        justification: None,
                        ticket: None,
                        rule: custody_core::policy::AppliedRule::brief_default(),
                    }
                    .into(),
                    occurred_at: None,
                    connector: None,
                })
                .await
                .unwrap();
            for index in 0..events / writers {
                store
                    .write(CaseWrite {
                        actor: actor.clone(),
                        idempotency_key: format!("c{index}"),
                        command: CaseStep::Comment {
                            case_id: opened.case_id.clone(),
                            text: format!("note {index}"),
                        }
                        .into(),
                        occurred_at: None,
                        connector: None,
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}
