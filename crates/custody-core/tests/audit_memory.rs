//! What the audit keeps in memory, counted by a global allocator: per case
//! while it streams the log, and what a report of the rows so far (the
//! continuous monitor's, every scan) allocates beside it.
//!
//! The audit keeps a trail per case (its chain head and rebuilt view) until
//! the end of the log, so its memory grows with the number of cases; these
//! bounds keep that growth from creeping back up (docs/performance.md,
//! "Memory of the audit").

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    unsafe_code
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use custody_core::audit::{Auditor, Retirement, StoredCaseHead, StoredEvent};
use custody_core::case::CaseView;
use custody_core::lifecycle::{self, Placement};
use custody_core::model::{Actor, AuthContext, Change, ChangeKind, PrincipalKind, Via};
use custody_core::policy::AppliedRule;
use custody_core::{CaseId, Event, Timestamp};

/// Counts the bytes live and the most live at once since the last reset.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the
// counters are only read by the test.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live =
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CASES: u64 = 20_000;

fn actor(name: &str) -> Actor {
    Actor {
        principal: name.parse().unwrap(),
        kind: PrincipalKind::Human,
        org: None,
        groups: Vec::new(),
        on_behalf_of: None,
        delegation_grant: None,
        via: Via::Cli,
        auth: AuthContext::Token {
            token_id: format!("tok_{name}"),
        },
    }
}

/// A request that opens its own case, stored at `index`.
fn request_row(index: u64) -> StoredEvent {
    let change = Change::new(
        format!("user:u{index}").parse().unwrap(),
        ChangeKind::Grant,
        "admin".to_string(),
        Some("prod".to_string()),
        None,
    )
    .unwrap();
    let draft = lifecycle::request(change, None, None, &AppliedRule::brief_default()).unwrap();
    let event = draft.seal(
        actor("alice"),
        Placement {
            case_id: CaseId::generate(),
            seq: 1,
            prev_hash: None,
            recorded_at: Timestamp::from_micros(1_800_000_000_000_000 + index as i64),
            occurred_at: None,
            idempotency_key: Some(format!("key-{index}")),
            origin: None,
        },
    );
    StoredEvent {
        log_index: index,
        case_id: event.case_id.to_string(),
        seq: 1,
        bytes: event.canonical_bytes(),
        stored_leaf: None,
    }
}

fn head(row: &StoredEvent) -> StoredCaseHead {
    let view = CaseView::open(&Event::decode(&row.bytes).unwrap()).unwrap();
    StoredCaseHead {
        case_id: row.case_id.clone(),
        head_seq: 1,
        head_hash: view.head_hash.to_hex(),
        state: view.state.as_str().to_string(),
        drill: false,
    }
}

/// One test, so that no other test allocates while it counts.
#[test]
fn the_audit_keeps_little_per_case_and_a_report_copies_none_of_it() {
    let rows: Vec<StoredEvent> = (0..CASES).map(request_row).collect();
    let heads: Vec<StoredCaseHead> = rows.iter().map(head).collect();

    let before = LIVE.load(Ordering::Relaxed);
    let mut auditor = Auditor::new();
    for row in &rows {
        auditor.observe_event(row);
    }
    let kept = LIVE.load(Ordering::Relaxed) - before;
    let per_case = kept / CASES as isize;
    println!(
        "the audit keeps {per_case} bytes per one-event case (the event is {} bytes)",
        rows[0].bytes.len()
    );
    // A rebuilt view is about 1.2 KB; the trail, its map slot and the
    // checks' records the rest. Before the view was boxed and requests
    // were judged as they were read, this was about 2,650 bytes.
    assert!(
        per_case < 2_000,
        "the audit keeps {per_case} bytes per case; it kept about 1,700"
    );

    // A report of the rows so far (the monitor's, every scan) must not
    // copy the trails: what it allocates is the report, not the audit.
    let given = heads.clone();
    let reports_before = LIVE.load(Ordering::Relaxed);
    PEAK.store(reports_before, Ordering::Relaxed);
    let snapshot = auditor.snapshot(given);
    let extra = PEAK.load(Ordering::Relaxed) - reports_before;
    println!("a report of the rows so far allocated at most {extra} bytes beside {kept}");
    assert!(
        extra < kept / 4,
        "a report of the rows so far allocated {extra} bytes beside the audit's {kept}: it copies the audit's state"
    );

    // And it is the report that finishing the audit gives.
    let finished = auditor.clone().finish(heads.clone());
    assert_eq!(snapshot, finished);
    assert!(finished.ok, "{:?}", finished.findings);
    assert_eq!(finished.checked.cases, CASES);

    // Cases let go of (`verify` does it to cases no row touched for a
    // while, the monitor to idle ones between scans) keep a key and two
    // digests each, not a trail.
    let before_retiring = LIVE.load(Ordering::Relaxed);
    auditor.retire(CASES, Retirement::Settled);
    assert_eq!(auditor.retired_cases(), CASES);
    let retired_bytes = before_retiring - LIVE.load(Ordering::Relaxed);
    let kept_retired = kept - retired_bytes;
    let per_retired = kept_retired / CASES as isize;
    println!("a case let go of keeps {per_retired} bytes (a held one {per_case})");
    assert!(
        per_retired < 200,
        "a case let go of keeps {per_retired} bytes; its trail was {per_case}"
    );
    // Whose rows, checked against the digests, give the same report.
    assert_eq!(auditor.finish(Vec::new()).findings, finished.findings);
}
