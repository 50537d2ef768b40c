//! Data-driven tests of the planner, without a database:
//! `crates/custody-store/tests/data/plan/*.txt`.
//!
//! A file is a sequence of blocks separated by blank lines. A block is
//! optional `#` comment lines, one directive, a `----` line, and the output
//! the directive must produce. `UPDATE_EXPECT=1` rewrites the files with the
//! output produced (review the diff before committing it).
//!
//! Each file starts with an empty deployment and one open batch. The runner
//! plays the backend: it keeps the stored tables in memory, reads from them
//! what the planner asks for ([`CaseNeeds`], the administration record's
//! standing) exactly as the SQL does, and writes what the planner returns.
//! Case writes are decided at the runner's clock, which starts at a fixed
//! instant and moves one second per directive.
//!
//! Directives (`CASE` is a letter the output gave a case, evidence record
//! or record; an unknown letter names a case that does not exist):
//!
//! - case writes, by `ACTOR` (`alice`: a human; `vera@msp-co`: a vendor of
//!   `msp-co`; `root+admins`: a human whose actor carries the group
//!   `admins`; `system`), each taking `key=K` to set its idempotency key
//!   (by default a new one per directive):
//!   - `request ACTOR SUBJECT ENTITLEMENT [ticket=SYS:KEY] [rule=strict]`
//!     (`rule=strict`: a rule that allows no break-glass)
//!   - `break-glass ACTOR SUBJECT ENTITLEMENT [ticket=SYS:KEY] [rule=strict]`
//!   - `approve|deny|execute|comment ACTOR CASE`, `review ACTOR CASE confirmed|revoke`
//!   - `merge ACTOR DUPLICATE SURVIVOR`
//!   - `deliver CASE delivered|failed|dead [escalate] [id=D] [attempt=N] [retry=SECONDS]`
//!     (by `system`)
//!   - `hold ACTOR SYS:KEY [file=NAME]`, `attach ACTOR CASE [file=NAME]`
//! - administration, by `BY` (`system` for the deployment's own set-up):
//!   `add-principal BY NAME [groups=A,B] [vendor] [org=O]`,
//!   `set-groups BY NAME [groups=A,B]`, `issue-token BY NAME` (the token's ID is
//!   `tok_N`), `revoke-token BY TOKEN`,
//!   `grant BY ID org=O for=PARTY entitlements=A,B [valid=SECONDS]`,
//!   `revoke-grant BY ID`, `legacy`, `map BY CONNECTOR USER=PRINCIPAL...`
//!   (the users' mappings, all or none, in order), `unmap BY CONNECTOR USER`
//! - `flush`: the batch's pending rows are written (as before a checkpoint),
//!   the batch goes on; `commit`: written, and a new batch starts;
//!   `time +SECONDS`: the clock moves.
//!
//! Output: `ok CASE STATE` (with `existing` or `replayed`), then each
//! appended event as `CASE#SEQ KIND by ACTOR` with what it links to, then
//! the evidence-record and outbox rows the write changed; `refused RULE`;
//! `not found CASE`; `error: ...`; `unchanged` for an administrative act
//! that appends nothing. A mapping's event is followed by `USER=PRINCIPAL`
//! (and `was PRINCIPAL` for a remap); a user mapped already says
//! `USER=PRINCIPAL unchanged`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use custody_core::case::CaseView;
use custody_core::command::{CaseCommand, CaseStep, LedgerCommand, Merge, Opening};
use custody_core::delegation::DelegationGrant;
use custody_core::event::{Attempt, DeliveryOutcome, Event, EventBody, Evidence};
use custody_core::model::{
    Actor, AuthContext, Change, ChangeKind, ConnectorName, ExternalUser, Principal, PrincipalId,
    PrincipalKind, Ticket, Via,
};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, Sha256Hash, Timestamp};

use super::records::{self, LegacyToken, NewToken};
use super::{change_key, AdminChange, AdminHead, Begun, CaseNeeds, CaseReads, Pending, Prefetched};
use super::{AdminRow, StoredRecord};
use crate::{
    AppendedEvent, CaseWrite, IdentityChange, IdentityMapping, StoreError, TokenInfo, WriteOutcome,
};

/// The stored tables, as the backend's queries would see them.
#[derive(Default)]
struct Tables {
    /// By log index.
    events: Vec<Event>,
    views: BTreeMap<CaseId, CaseView>,
    idempotency: HashMap<(String, String), (String, String)>,
    /// Ticket to (record, released to).
    records: BTreeMap<String, (CaseId, Option<CaseId>)>,
    principals: BTreeMap<String, Principal>,
    tokens: BTreeMap<String, TokenInfo>,
    /// By grant ID, as `ORDER BY grant_id` reads them.
    grants: BTreeMap<String, DelegationGrant>,
    /// By connector and outside user.
    identities: BTreeMap<(String, String), IdentityMapping>,
    admin_record: Option<CaseId>,
}

struct World {
    tables: Tables,
    pending: Pending,
    now: Timestamp,
    aliases: Vec<(String, CaseId)>,
    directives: usize,
    tokens_issued: usize,
}

/// One block of a data file.
struct Block {
    comments: Vec<String>,
    directive: String,
    expected: Vec<String>,
}

#[test]
fn plan_data_files() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plan");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("tests/data/plan")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "data files are missing: {files:?}");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    let mut blocks_run = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a data file");
        let blocks = parse(&file, &text);
        let mut world = World::new();
        let mut rewritten = String::new();
        for block in &blocks {
            let actual = world.run(&block.directive);
            blocks_run += 1;
            if actual != block.expected {
                failures.push(format!(
                    "{}: `{}`\nexpected:\n{}\nactual:\n{}\n",
                    file.display(),
                    block.directive,
                    block.expected.join("\n"),
                    actual.join("\n")
                ));
            }
            for comment in &block.comments {
                rewritten.push_str(comment);
                rewritten.push('\n');
            }
            rewritten.push_str(&block.directive);
            rewritten.push_str("\n----\n");
            for line in &actual {
                rewritten.push_str(line);
                rewritten.push('\n');
            }
            rewritten.push('\n');
        }
        if update {
            std::fs::write(&file, rewritten.trim_end().to_string() + "\n").expect("rewrite");
        }
    }
    assert!(blocks_run >= 40, "only {blocks_run} blocks ran");
    if !update {
        assert!(
            failures.is_empty(),
            "{} block(s) differ (UPDATE_EXPECT=1 rewrites the files):\n\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

fn parse(file: &Path, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    for chunk in text.split("\n\n") {
        let lines: Vec<&str> = chunk.lines().collect();
        if lines.iter().all(|line| line.trim().is_empty()) {
            continue;
        }
        let separator = lines
            .iter()
            .position(|line| *line == "----")
            .unwrap_or_else(|| panic!("{}: a block without `----`: {chunk}", file.display()));
        let (head, expected) = lines.split_at(separator);
        let comments: Vec<String> = head
            .iter()
            .filter(|line| line.starts_with('#'))
            .map(|line| line.to_string())
            .collect();
        let directives: Vec<&&str> = head.iter().filter(|line| !line.starts_with('#')).collect();
        assert_eq!(
            directives.len(),
            1,
            "{}: one directive per block: {chunk}",
            file.display()
        );
        blocks.push(Block {
            comments,
            directive: directives[0].to_string(),
            expected: expected[1..].iter().map(|line| line.to_string()).collect(),
        });
    }
    blocks
}

/// A directive's words and its `name=value` options.
struct Words<'a> {
    positional: Vec<&'a str>,
    options: HashMap<&'a str, &'a str>,
}

impl<'a> Words<'a> {
    fn new(line: &'a str) -> Words<'a> {
        let mut words = Words {
            positional: Vec::new(),
            options: HashMap::new(),
        };
        for word in line.split_whitespace() {
            match word.split_once('=') {
                Some((name, value)) => {
                    words.options.insert(name, value);
                }
                None => words.positional.push(word),
            }
        }
        words
    }

    fn at(&self, index: usize) -> &'a str {
        self.positional
            .get(index)
            .copied()
            .unwrap_or_else(|| panic!("missing word {index} in {:?}", self.positional))
    }

    fn has(&self, flag: &str) -> bool {
        self.positional.contains(&flag)
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.options
            .get(name)
            .map(|value| value.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    }
}

fn actor(name: &str) -> Actor {
    if name == "system" {
        return Actor::system();
    }
    let mut groups: Vec<String> = name.split('+').skip(1).map(str::to_string).collect();
    groups.sort();
    let name = name.split('+').next().unwrap_or(name);
    let (principal, org) = match name.split_once('@') {
        Some((principal, org)) => (principal, Some(org.to_string())),
        None => (name, None),
    };
    Actor {
        principal: principal.parse().expect("a principal name"),
        kind: if org.is_some() {
            PrincipalKind::Vendor
        } else {
            PrincipalKind::Human
        },
        org,
        groups,
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: format!("tok_{principal}"),
        },
    }
}

fn change(subject: &str, entitlement: &str) -> Change {
    Change::new(
        subject.parse().expect("a subject"),
        ChangeKind::Grant,
        entitlement.to_string(),
        None,
        None,
    )
    .expect("a valid change")
}

fn rule(words: &Words) -> AppliedRule {
    match words.options.get("rule") {
        Some(&"strict") => AppliedRule {
            break_glass: false,
            ..AppliedRule::brief_default()
        },
        Some(other) => panic!("unknown rule {other}"),
        None => AppliedRule::brief_default(),
    }
}

fn events(count: usize) -> String {
    match count {
        1 => "1 event".to_string(),
        count => format!("{count} events"),
    }
}

fn evidence(name: &str) -> Evidence {
    Evidence {
        sha256: Sha256Hash::of(name.as_bytes()),
        size: name.len() as u64,
        file_name: Some(name.to_string()),
        declared_media_type: None,
        sniffed_media_type: "text/plain".to_string(),
        link: None,
    }
}

impl World {
    fn new() -> World {
        World {
            tables: Tables::default(),
            pending: Pending::new(0, true, Default::default()),
            now: Timestamp::from_micros(1_800_000_000_000_000),
            aliases: Vec::new(),
            directives: 0,
            tokens_issued: 0,
        }
    }

    /// The letter of `case_id`, given on first sight: the first letter not
    /// given yet.
    fn alias(&mut self, case_id: &CaseId) -> String {
        if let Some((letter, _)) = self.aliases.iter().find(|(_, known)| known == case_id) {
            return letter.clone();
        }
        let letter = (b'A'..=b'Z')
            .map(|letter| char::from(letter).to_string())
            .find(|letter| self.aliases.iter().all(|(given, _)| given != letter))
            .expect("at most 26 cases in one file");
        self.aliases.push((letter.clone(), case_id.clone()));
        letter
    }

    fn alias_of_text(&mut self, case_id: &str) -> String {
        match case_id.parse::<CaseId>() {
            Ok(case_id) => self.alias(&case_id),
            Err(_) => case_id.to_string(),
        }
    }

    /// The case a letter names; a letter never given names a new ID that no
    /// case has.
    fn case(&mut self, letter: &str) -> CaseId {
        assert!(
            letter.len() == 1 && letter.as_bytes()[0].is_ascii_uppercase(),
            "not a case letter: {letter}"
        );
        if let Some((_, case_id)) = self.aliases.iter().find(|(given, _)| given == letter) {
            return case_id.clone();
        }
        let case_id = CaseId::generate();
        self.aliases.push((letter.to_string(), case_id.clone()));
        case_id
    }

    fn run(&mut self, directive: &str) -> Vec<String> {
        self.directives += 1;
        self.now = self.now.plus_seconds(1);
        let words = Words::new(directive);
        match words.at(0) {
            "flush" => {
                let written = self.flush();
                vec![format!("wrote {}", events(written))]
            }
            "commit" => {
                let written = self.flush();
                self.pending = Pending::new(
                    self.tables.events.len() as u64,
                    true,
                    self.pending.routing.clone(),
                );
                vec![format!("wrote {}; a new batch", events(written))]
            }
            "time" => {
                let seconds: i64 = words
                    .at(1)
                    .trim_start_matches('+')
                    .parse()
                    .expect("seconds");
                self.now = self.now.plus_seconds(seconds);
                vec![format!("now {}", self.now)]
            }
            "add-principal" | "set-groups" | "issue-token" | "revoke-token" | "grant"
            | "revoke-grant" | "legacy" => self.administer(&words),
            "map" | "unmap" => self.identities(directive),
            _ => {
                let write = self.case_write(&words);
                self.write(&write)
            }
        }
    }

    fn case_write(&mut self, words: &Words) -> CaseWrite {
        let verb = words.at(0);
        let (who, command): (&str, CaseCommand) = match verb {
            "request" | "break-glass" => {
                let ticket: Option<Ticket> = words
                    .options
                    .get("ticket")
                    .map(|ticket| ticket.parse().expect("a ticket"));
                let change = change(words.at(2), words.at(3));
                let command = if verb == "request" {
                    Opening::Request {
                        change,
                        justification: None,
                        ticket,
                        rule: rule(words),
                        drill: false,
                    }
                    .into()
                } else {
                    Opening::BreakGlass {
                        change,
                        justification: "the database is down".to_string(),
                        ticket,
                        rule: rule(words),
                        change_set: None,
                        drill: false,
                    }
                    .into()
                };
                (words.at(1), command)
            }
            "approve" => (
                words.at(1),
                CaseStep::Approve {
                    case_id: self.case(words.at(2)),
                    comment: None,
                    chat: None,
                }
                .into(),
            ),
            "deny" => (
                words.at(1),
                CaseStep::Deny {
                    case_id: self.case(words.at(2)),
                    comment: None,
                }
                .into(),
            ),
            "execute" => (
                words.at(1),
                CaseStep::Execute {
                    case_id: self.case(words.at(2)),
                    change_set: None,
                    comment: None,
                    completed: true,
                    applied: None,
                    observed: false,
                }
                .into(),
            ),
            "comment" => (
                words.at(1),
                CaseStep::Comment {
                    case_id: self.case(words.at(2)),
                    text: "noted".to_string(),
                }
                .into(),
            ),
            "review" => {
                let outcome = words.at(3).parse().expect("a review outcome");
                (
                    words.at(1),
                    CaseStep::Review {
                        case_id: self.case(words.at(2)),
                        outcome,
                        comment: None,
                        revocation_rule: (words.at(3) == "revoke").then(AppliedRule::brief_default),
                    }
                    .into(),
                )
            }
            "merge" => (
                words.at(1),
                Merge {
                    duplicate: self.case(words.at(2)),
                    into: self.case(words.at(3)),
                    comment: None,
                }
                .into(),
            ),
            "deliver" => {
                let outcome = match words.at(2) {
                    "delivered" => DeliveryOutcome::Delivered,
                    "failed" => DeliveryOutcome::Failed,
                    "dead" => DeliveryOutcome::Dead,
                    other => panic!("unknown delivery outcome {other}"),
                };
                let attempt = Attempt {
                    delivery_id: words.options.get("id").unwrap_or(&"d1").to_string(),
                    channel: "webhook".to_string(),
                    recipient: None,
                    attempt: words
                        .options
                        .get("attempt")
                        .map_or(1, |attempt| attempt.parse().expect("a number")),
                    outcome,
                    status: None,
                    error: (outcome != DeliveryOutcome::Delivered).then(|| "timeout".to_string()),
                    latency_ms: 5,
                };
                let next_attempt_at = words
                    .options
                    .get("retry")
                    .map(|seconds| self.now.plus_seconds(seconds.parse().expect("seconds")));
                (
                    "system",
                    LedgerCommand::RecordDelivery {
                        case_id: self.case(words.at(1)),
                        attempt,
                        escalate: words.has("escalate"),
                        next_attempt_at,
                    }
                    .into(),
                )
            }
            "hold" => (
                words.at(1),
                Opening::HoldEvidence {
                    ticket: words.at(2).parse().expect("a ticket"),
                    evidence: evidence(words.options.get("file").unwrap_or(&"report.txt")),
                }
                .into(),
            ),
            "attach" => (
                words.at(1),
                CaseStep::AttachEvidence {
                    case_id: self.case(words.at(2)),
                    evidence: evidence(words.options.get("file").unwrap_or(&"report.txt")),
                }
                .into(),
            ),
            other => panic!("unknown directive {other}"),
        };
        CaseWrite {
            actor: actor(who),
            idempotency_key: words
                .options
                .get("key")
                .map_or_else(|| format!("key-{}", self.directives), |key| key.to_string()),
            command,
            occurred_at: None,
            connector: None,
        }
    }

    /// One case write, as the backend runs it: prefetch, key, reads, decision.
    fn write(&mut self, write: &CaseWrite) -> Vec<String> {
        let prefetched = self.prefetch(write);
        let records_before = self.pending.record_updates.len();
        let outbox_before = self.pending.outbox_updates.len();
        let events_before = self.pending.events.len();
        let result = match self.pending.begin_case(&prefetched, write) {
            Err(error) => Err(error),
            Ok(Begun::Replayed(outcome)) => Ok(outcome),
            Ok(Begun::Fresh(fresh, needs)) => {
                let reads = self.read(&needs);
                self.pending
                    .decide_case(&prefetched, fresh, reads, self.now)
            }
        };
        let mut output = match result {
            Ok(outcome) => self.render_outcome(&outcome),
            Err(error) => {
                let mut output = vec![self.render_error(&error)];
                // A refused write is to leave nothing pending; say so if not.
                let left = self.pending.events.len() - events_before;
                if left > 0 {
                    output.push(format!("left {} pending", events(left)));
                }
                output
            }
        };
        let record_rows: Vec<(String, CaseId, Option<CaseId>, bool)> = self.pending.record_updates
            [records_before..]
            .iter()
            .map(|row| {
                (
                    row.ticket.clone(),
                    row.record.clone(),
                    row.released_to.clone(),
                    row.new,
                )
            })
            .collect();
        for (ticket, record, released_to, new) in record_rows {
            let mut line = format!("record {ticket} {}", self.alias(&record));
            if new {
                line.push_str(" new");
            }
            if let Some(case) = released_to {
                let _ = write!(line, " released to {}", self.alias(&case));
            }
            output.push(line);
        }
        for update in &self.pending.outbox_updates[outbox_before..] {
            let retry = (update.next_attempt_at.as_micros() - self.now.as_micros()) / 1_000_000;
            output.push(format!(
                "outbox {} {} attempts {} due in {retry}s",
                update.delivery_id, update.state, update.attempts
            ));
        }
        output
    }

    /// What the backend's `prefetch` reads for one write.
    fn prefetch(&self, write: &CaseWrite) -> Prefetched {
        let mut prefetched = Prefetched::default();
        let key = write.idempotency_scope();
        if let Some(record) = self.tables.idempotency.get(&key) {
            prefetched.idempotency.insert(key, record.clone());
        }
        for case_id in write.command.case_ids() {
            if let Some(view) = self.tables.views.get(case_id) {
                prefetched.views.insert(
                    case_id.to_string(),
                    serde_json::to_vec(view).expect("a projection encodes"),
                );
            }
        }
        prefetched
    }

    /// What the backend's `read_case_needs` reads, with the same filters
    /// and order as its SQL.
    fn read(&self, needs: &CaseNeeds) -> CaseReads {
        let views = || self.tables.views.values();
        let mut reads = CaseReads::default();
        if let Some(ticket) = &needs.active_case_with_ticket {
            reads.active_case_with_ticket = views()
                .filter(|view| view.state.is_active() && view.ticket.as_ref() == Some(ticket))
                .min_by_key(|view| view.opened_at)
                .cloned();
        }
        if let Some(key) = &needs.active_case_for_change {
            reads.active_case_for_change = views()
                .find(|view| view.state.is_active() && &change_key(&view.change) == key)
                .map(|view| view.case_id.clone());
        }
        if let Some(org) = &needs.grants_of {
            reads.grants = self
                .tables
                .grants
                .values()
                .filter(|grant| &grant.vendor_org == org)
                .cloned()
                .collect();
        }
        if let Some(ticket) = &needs.case_with_ticket {
            reads.case_with_ticket = views()
                .filter(|view| {
                    view.ticket.as_ref() == Some(ticket)
                        && view.state != custody_core::CaseState::Merged
                })
                .max_by_key(|view| view.opened_at)
                .cloned();
        }
        if let Some(ticket) = &needs.evidence_record {
            reads.evidence_record =
                self.tables
                    .records
                    .get(&ticket.to_string())
                    .map(|(record, released_to)| StoredRecord {
                        record: record.clone(),
                        released_to: released_to.clone(),
                        events: self.stored_events(record),
                    });
        }
        reads
    }

    fn stored_events(&self, case_id: &CaseId) -> Vec<(Event, Sha256Hash)> {
        let mut events: Vec<(Event, Sha256Hash)> = self
            .tables
            .events
            .iter()
            .filter(|event| &event.case_id == case_id)
            .map(|event| (event.clone(), Sha256Hash::of(&event.canonical_bytes())))
            .collect();
        events.sort_by_key(|(event, _)| event.seq);
        events
    }

    /// The backend's `flush`: the pending rows into the tables.
    fn flush(&mut self) -> usize {
        let written = self.pending.events.len();
        for pending_event in &self.pending.events {
            assert_eq!(
                pending_event.log_index,
                self.tables.events.len() as u64,
                "the log has a gap"
            );
            assert_eq!(pending_event.bytes, pending_event.event.canonical_bytes());
            self.tables.events.push(pending_event.event.clone());
        }
        for (case_id, view) in &self.pending.views {
            self.tables.views.insert(case_id.clone(), view.clone());
        }
        for (key, record) in &self.pending.idempotency {
            if !record.flushed {
                let response = serde_json::to_string(&record.outcome).expect("an outcome encodes");
                self.tables
                    .idempotency
                    .insert(key.clone(), (record.fingerprint.clone(), response));
            }
        }
        for row in &self.pending.record_updates {
            let entry = self
                .tables
                .records
                .entry(row.ticket.clone())
                .or_insert_with(|| (row.record.clone(), None));
            assert!(
                row.new || entry.0 == row.record,
                "a release of another record"
            );
            entry.1 = row.released_to.clone();
        }
        self.pending.flushed();
        written
    }

    fn render_outcome(&mut self, outcome: &WriteOutcome) -> Vec<String> {
        let mut first = format!(
            "ok {} {}",
            self.alias(&outcome.case_id),
            outcome.state.as_str()
        );
        if outcome.existing {
            first.push_str(" existing");
        }
        if outcome.replayed {
            first.push_str(" replayed");
        }
        let mut lines = vec![first];
        for appended in &outcome.appended {
            lines.push(self.render_appended(appended));
        }
        lines
    }

    fn render_appended(&mut self, appended: &AppendedEvent) -> String {
        let case = self.alias_of_text(&appended.case_id);
        let mut line = format!("{case}#{} {}", appended.seq, appended.kind);
        let event = self
            .pending
            .events
            .iter()
            .map(|pending_event| &pending_event.event)
            .chain(self.tables.events.iter())
            .find(|event| event.event_id.to_string() == appended.event_id)
            .cloned();
        let Some(event) = event else {
            return line;
        };
        let _ = write!(line, " by {}", event.actor.principal);
        if let (Some(grant), Some(party)) =
            (&event.actor.delegation_grant, &event.actor.on_behalf_of)
        {
            let _ = write!(line, " under {grant} for {party}");
        }
        match &event.body {
            EventBody::DuplicateMerged(link) | EventBody::DuplicateLinked(link) => {
                let _ = write!(line, " -> {}", self.alias(&link.other_case));
            }
            EventBody::RevocationOpened(link)
            | EventBody::OpenedByReview(link)
            | EventBody::EvidenceReleased(link) => {
                let _ = write!(line, " -> {}", self.alias(&link.other_case));
            }
            EventBody::EvidenceJoined(joined) => {
                let _ = write!(
                    line,
                    " from {} ({} held)",
                    self.alias(&joined.record),
                    joined.evidence.len()
                );
            }
            EventBody::EscalationRaised(escalation) => {
                let _ = write!(line, " ({})", escalation.reason);
            }
            EventBody::NotificationAttempted(attempt) => {
                let _ = write!(line, " ({} {:?})", attempt.delivery_id, attempt.outcome);
            }
            _ => {}
        }
        line
    }

    fn render_error(&mut self, error: &StoreError) -> String {
        match error {
            StoreError::Refused(refusal) => format!("refused {}", refusal.rule),
            StoreError::CaseNotFound(case_id) => {
                format!("not found {}", self.alias_of_text(case_id))
            }
            other => format!("error: {other}"),
        }
    }

    // ------------------------------------------------------------------
    // Administration
    // ------------------------------------------------------------------

    fn administer(&mut self, words: &Words) -> Vec<String> {
        let now = self.now;
        let by = actor(words.positional.get(1).copied().unwrap_or("system"));
        let result: Result<Option<AdminChange>, StoreError> = match words.at(0) {
            "add-principal" => {
                let name = words.at(2);
                let vendor = words.has("vendor");
                let principal = Principal {
                    id: name.parse().expect("a principal name"),
                    display_name: name.to_string(),
                    kind: if vendor {
                        PrincipalKind::Vendor
                    } else {
                        PrincipalKind::Human
                    },
                    groups: words.list("groups"),
                    org: words.options.get("org").map(|org| org.to_string()),
                };
                let exists = self.tables.principals.contains_key(name);
                records::add_principal(self.standing(&by), exists, &principal, &by, now).map(Some)
            }
            "set-groups" => {
                let id: PrincipalId = words.at(2).parse().expect("a principal name");
                let stored = self.tables.principals.get(id.as_str()).cloned();
                // As the backend asks the principals table.
                let another_admin = self.tables.principals.values().any(|principal| {
                    principal.id != id && principal.in_group(custody_core::admin::ADMINS_GROUP)
                });
                records::set_groups(
                    self.standing(&by),
                    stored,
                    &id,
                    words.list("groups"),
                    another_admin,
                    &by,
                )
                .map(|(_, change)| change)
            }
            "issue-token" => {
                let id: PrincipalId = words.at(2).parse().expect("a principal name");
                self.tokens_issued += 1;
                let token = NewToken {
                    token: format!("cust_secret{}", self.tokens_issued),
                    token_id: format!("tok_{}", self.tokens_issued),
                };
                let exists = self.tables.principals.contains_key(id.as_str());
                records::create_token(self.standing(&by), exists, &id, token, None, &by, now)
                    .map(|(_, change)| Some(change))
            }
            "revoke-token" => match self.tables.tokens.get(words.at(2)).cloned() {
                Some(token) => records::revoke_token(&token, self.standing(&by), &by, now),
                None => Err(StoreError::TokenNotFound(words.at(2).to_string())),
            },
            "grant" => {
                let grant = DelegationGrant {
                    grant_id: words.at(2).to_string(),
                    vendor_org: words.options["org"].to_string(),
                    principals: Vec::new(),
                    on_behalf_of: words.options["for"].to_string(),
                    entitlements: words.list("entitlements"),
                    resources: Vec::new(),
                    valid_until: now.plus_seconds(
                        words
                            .options
                            .get("valid")
                            .map_or(3600, |seconds| seconds.parse().expect("seconds")),
                    ),
                    revoked_at: None,
                    granted_by: "nobody".parse().expect("a name"),
                    granted_at: Timestamp::from_micros(0),
                };
                let exists = self.tables.grants.contains_key(&grant.grant_id);
                records::grant_delegation(self.standing(&by), exists, grant, &by, now)
                    .map(|(_, change)| Some(change))
            }
            "revoke-grant" => {
                let stored = self.tables.grants.get(words.at(2)).cloned();
                records::revoke_delegation(stored, words.at(2), self.standing(&by), &by, now)
                    .map(|(_, change)| change)
            }
            "legacy" => return self.legacy(),
            other => panic!("unknown directive {other}"),
        };
        match result {
            Err(error) => vec![self.render_error(&error)],
            Ok(None) => vec!["unchanged".to_string()],
            Ok(Some(change)) => {
                self.write_admin_row(change.row);
                let appended = self.append_admin(&by, change.draft);
                vec!["ok".to_string(), self.render_appended(&appended)]
            }
        }
    }

    /// `map BY CONNECTOR USER=PRINCIPAL...` and `unmap BY CONNECTOR USER`,
    /// read as the backend reads them for the planner.
    fn identities(&mut self, directive: &str) -> Vec<String> {
        let now = self.now;
        let words: Vec<&str> = directive.split_whitespace().collect();
        let by = actor(words[1]);
        let connector: ConnectorName = words[2].parse().expect("a connector name");
        let standing = self.standing(&by);
        let stored_of = |tables: &Tables, user: &ExternalUser| {
            tables
                .identities
                .get(&(connector.to_string(), user.to_string()))
                .cloned()
        };
        let decided: Result<Vec<(IdentityChange, Option<AdminChange>)>, StoreError> =
            if words[0] == "map" {
                let entries: Vec<(ExternalUser, PrincipalId)> = words[3..]
                    .iter()
                    .map(|pair| {
                        let (user, principal) = pair.rsplit_once('=').expect("USER=PRINCIPAL");
                        (
                            user.parse().expect("an outside user"),
                            principal.parse().expect("a principal name"),
                        )
                    })
                    .collect();
                let mut stored = BTreeMap::new();
                let mut known = std::collections::BTreeSet::new();
                for (user, principal) in &entries {
                    if let Some(mapping) = stored_of(&self.tables, user) {
                        stored.insert(user.clone(), mapping);
                    }
                    if self.tables.principals.contains_key(principal.as_str()) {
                        known.insert(principal.clone());
                    }
                }
                records::map_identities(standing, &connector, entries, &stored, &known, &by, now)
            } else {
                let user: ExternalUser = words[3].parse().expect("an outside user");
                let stored = stored_of(&self.tables, &user);
                records::unmap_identity(standing, &connector, &user, stored, &by)
                    .map(|(change, admin_change)| vec![(change, Some(admin_change))])
            };
        let decided = match decided {
            Err(error) => {
                // A message with a hint is two lines.
                return self
                    .render_error(&error)
                    .lines()
                    .map(str::to_string)
                    .collect();
            }
            Ok(decided) => decided,
        };
        if decided
            .iter()
            .all(|(_, admin_change)| admin_change.is_none())
        {
            return vec!["unchanged".to_string()];
        }
        let mut lines = vec!["ok".to_string()];
        for (change, admin_change) in decided {
            let pair = format!(
                "{}={}",
                change.mapping.external_user, change.mapping.principal
            );
            match admin_change {
                None => lines.push(format!("{pair} unchanged")),
                Some(admin_change) => {
                    self.write_admin_row(admin_change.row);
                    let appended = self.append_admin(&by, admin_change.draft);
                    let mut line = format!("{} {pair}", self.render_appended(&appended));
                    if let Some(previous) = &change.previous {
                        line.push_str(&format!(" was {previous}"));
                    }
                    lines.push(line);
                }
            }
        }
        lines
    }

    fn legacy(&mut self) -> Vec<String> {
        let stored = self.stored_admin_head();
        if !self.pending.records_legacy_admin(stored) {
            return vec!["unchanged".to_string()];
        }
        let principals: Vec<Principal> = self.tables.principals.values().cloned().collect();
        let tokens: Vec<LegacyToken> = self
            .tables
            .tokens
            .values()
            .map(|token| LegacyToken {
                token_id: token.token_id.clone(),
                principal: token.principal.parse().expect("a principal name"),
                secret_sha256: Sha256Hash::of(token.token_id.as_bytes()).0.to_vec(),
                expires_at: None,
                revoked: token.revoked_at.is_some(),
            })
            .collect();
        let grants: Vec<DelegationGrant> = self.tables.grants.values().cloned().collect();
        let mut lines = vec!["ok".to_string()];
        for draft in records::legacy_admin(&principals, &tokens, &grants, self.now) {
            let appended = self.append_admin(&Actor::system(), draft);
            lines.push(self.render_appended(&appended));
        }
        lines
    }

    /// The backend's `stored_admin_head`.
    fn stored_admin_head(&self) -> Option<AdminHead> {
        if !self.pending.needs_admin_head() {
            return None;
        }
        let record = self.tables.admin_record.as_ref()?;
        let (event, hash) = self.stored_events(record).pop()?;
        Some(AdminHead {
            case_id: record.clone(),
            seq: event.seq,
            hash,
            opening: event.actor.principal.as_str() == custody_core::model::SYSTEM_PRINCIPAL,
        })
    }

    fn standing(&self, actor: &Actor) -> records::Standing {
        let is_admin = self
            .tables
            .principals
            .get(actor.principal.as_str())
            .is_some_and(|principal| {
                principal
                    .groups
                    .iter()
                    .any(|group| group == custody_core::admin::ADMINS_GROUP)
            });
        self.pending.standing(is_admin, self.stored_admin_head())
    }

    fn append_admin(
        &mut self,
        actor: &Actor,
        draft: custody_core::lifecycle::Draft,
    ) -> AppendedEvent {
        let stored = self.stored_admin_head();
        let (appended, opened) = self.pending.append_admin(stored, actor, draft, self.now);
        if let Some(record) = opened {
            assert!(
                self.tables.admin_record.is_none(),
                "a second administration record"
            );
            self.tables.admin_record = Some(record);
        }
        appended
    }

    /// The backend's `write_admin_row`: written at once, in the transaction.
    fn write_admin_row(&mut self, row: AdminRow) {
        match row {
            AdminRow::InsertPrincipal { principal, .. }
            | AdminRow::InsertOidcPrincipal { principal, .. } => {
                self.tables
                    .principals
                    .insert(principal.id.to_string(), principal);
            }
            AdminRow::UpdateGroups {
                principal,
                groups_json,
            } => {
                let stored = self
                    .tables
                    .principals
                    .get_mut(principal.as_str())
                    .expect("the principal read before");
                stored.groups = serde_json::from_str(&groups_json).expect("groups decode");
            }
            AdminRow::InsertToken {
                token_id,
                principal,
                created_at,
                ..
            } => {
                self.tables.tokens.insert(
                    token_id.clone(),
                    TokenInfo {
                        token_id,
                        principal: principal.to_string(),
                        created_at: created_at.to_string(),
                        created_by: None,
                        expires_at: None,
                        revoked_at: None,
                        revoked_by: None,
                    },
                );
            }
            AdminRow::RevokeToken {
                token_id,
                revoked_at,
                revoked_by,
            } => {
                let token = self.tables.tokens.get_mut(&token_id).expect("a token");
                token.revoked_at = Some(revoked_at.to_string());
                token.revoked_by = Some(revoked_by);
            }
            AdminRow::MapIdentity {
                connector,
                external_user,
                principal,
                mapped_at,
                mapped_by,
            } => {
                self.tables.identities.insert(
                    (connector.to_string(), external_user.to_string()),
                    IdentityMapping {
                        connector: connector.to_string(),
                        external_user: external_user.to_string(),
                        principal: principal.to_string(),
                        mapped_at: mapped_at.to_string(),
                        mapped_by,
                    },
                );
            }
            AdminRow::UnmapIdentity {
                connector,
                external_user,
            } => {
                let removed = self
                    .tables
                    .identities
                    .remove(&(connector.to_string(), external_user.to_string()));
                assert!(removed.is_some(), "an unmapped user read before");
            }
            AdminRow::InsertGrant {
                grant_id,
                grant_json,
                ..
            }
            | AdminRow::UpdateGrant {
                grant_id,
                grant_json,
            } => {
                self.tables.grants.insert(
                    grant_id,
                    serde_json::from_str(&grant_json).expect("a grant"),
                );
            }
        }
    }
}
