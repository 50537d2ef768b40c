//! [`Finding`], what the audit reports, and the builder every check uses to
//! make one: a code, a severity and a message, then where it points.

use serde::Serialize;

use crate::code::Code;
use crate::event::Event;
use crate::severity::Severity;

/// Something wrong with the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code, documented in `docs/findings.md`.
    pub code: Code,
    /// How bad it is.
    pub severity: Severity,
    /// The case it concerns.
    pub case_id: Option<String>,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The event it points at.
    pub event_id: Option<String>,
    /// The event's sequence number in its case.
    pub seq: Option<u64>,
    /// The event's index in the log.
    pub log_index: Option<u64>,
    /// For a finding about an observed change: the connector that saw it
    /// (the event's `source`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// For a finding about an observed change: the record's ID in the
    /// source (the event's `external_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl Finding {
    /// A finding under `code`, with the severity the table gives it
    /// ([`Code::severity`]), that points nowhere yet; the methods below say
    /// where, and [`Finding::severity`] overrides the severity where the
    /// check knows better.
    pub fn new(code: Code, message: impl Into<String>) -> Finding {
        Finding {
            code,
            severity: code.severity(),
            case_id: None,
            message: message.into(),
            event_id: None,
            seq: None,
            log_index: None,
            source: None,
            external_id: None,
        }
    }

    /// The outside record it concerns: the connector and the record's ID there.
    pub fn origin(mut self, source: Option<&str>, external_id: Option<&str>) -> Finding {
        self.source = source.map(str::to_string);
        self.external_id = external_id.map(str::to_string);
        self
    }

    /// Points at `event`, stored at `log_index`: its case, ID and sequence number.
    pub fn at_event(self, event: &Event, log_index: u64) -> Finding {
        self.case(event.case_id.to_string())
            .event(event.event_id.to_string())
            .seq(event.seq)
            .log_index(log_index)
    }

    /// The case it concerns.
    pub fn case(mut self, case_id: impl Into<String>) -> Finding {
        self.case_id = Some(case_id.into());
        self
    }

    /// The event it points at, when known.
    pub fn event(mut self, event_id: impl Into<Option<String>>) -> Finding {
        self.event_id = event_id.into();
        self
    }

    /// The event's sequence number in its case, when known.
    pub fn seq(mut self, seq: impl Into<Option<u64>>) -> Finding {
        self.seq = seq.into();
        self
    }

    /// The log index it points at, when known.
    pub fn log_index(mut self, log_index: impl Into<Option<u64>>) -> Finding {
        self.log_index = log_index.into();
        self
    }

    /// Another severity than the one it was made with.
    pub fn severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }
}

/// Orders findings as reports list them: most severe first, then by log
/// index. The sort is stable, so findings equal in both keep the order in
/// which the checks made them.
pub(crate) fn sort(findings: &mut [Finding]) {
    findings.sort_by(|left, right| {
        right
            .severity
            .cmp(&left.severity)
            .then_with(|| left.log_index.cmp(&right.log_index))
    });
}

/// Whether `findings` hold nothing above [`Severity::Info`]: an info finding
/// says something worth knowing, never that something is wrong.
pub(crate) fn nothing_wrong(findings: &[Finding]) -> bool {
    findings
        .iter()
        .all(|finding| finding.severity == Severity::Info)
}
