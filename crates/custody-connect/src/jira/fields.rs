//! The field mapping: which issue field (or fixed value) gives each part of
//! the change, and how a Jira field value is read as text.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use custody_core::model::{parse_duration, Change, ChangeKind, Subject, SubjectKind};
use custody_core::CaseId;

use super::{FieldIds, FixedValues};

/// Where one part of the change comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    /// An issue field, by ID.
    Field(String),
    /// The same value for every issue.
    Fixed(String),
}

/// How the subject is given.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SubjectSource {
    /// `KIND:ID` in one place.
    Whole(Source),
    /// The kind and the ID apart.
    Parts { kind: Source, id: Source },
}

/// The checked mapping.
#[derive(Clone, Debug)]
pub(super) struct Mapping {
    subject: SubjectSource,
    change: Source,
    entitlement: Source,
    resource: Option<Source>,
    duration: Option<Source>,
    justification: Option<Source>,
    case_id: Option<String>,
}

/// A part of the change a field gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Subject,
    SubjectKind,
    SubjectId,
    Change,
    Entitlement,
    Resource,
    Duration,
    Justification,
    CaseId,
}

/// Why an issue's fields do not give a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FieldValueError {
    part: Part,
    source: String,
    problem: String,
}

impl fmt::Display for FieldValueError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} ({}) {}",
            self.source,
            self.part.name(),
            self.problem
        )
    }
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::SubjectKind => "subject_kind",
            Part::SubjectId => "subject_id",
            Part::Change => "change",
            Part::Entitlement => "entitlement",
            Part::Resource => "resource",
            Part::Duration => "duration",
            Part::Justification => "justification",
            Part::CaseId => "case_id",
        }
    }
}

/// Whether `id` looks like a Jira field ID (`customfield_10042`,
/// `description`, `labels`).
fn is_field_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

impl Mapping {
    /// Checks that every part of a change has exactly one source, that the
    /// field IDs are field IDs and that the fixed values parse.
    pub(super) fn new(fields: &FieldIds, fixed: &FixedValues) -> Result<Mapping, String> {
        let source = |part: Part,
                      field: &Option<String>,
                      value: &Option<String>|
         -> Result<Option<Source>, String> {
            match (field, value) {
                (Some(_), Some(_)) => Err(format!(
                    "`{0}` is in both [fields] and [fixed]; give it one source",
                    part.name()
                )),
                (Some(id), None) => {
                    if !is_field_id(id) {
                        return Err(format!(
                            "`fields.{}` = `{}` is not a Jira field ID (e.g. customfield_10042 or description)",
                            part.name(),
                            custody_core::text::escape(id)
                        ));
                    }
                    Ok(Some(Source::Field(id.clone())))
                }
                (None, Some(value)) => {
                    check_fixed(part, value)?;
                    Ok(Some(Source::Fixed(value.clone())))
                }
                (None, None) => Ok(None),
            }
        };
        let whole = source(Part::Subject, &fields.subject, &fixed.subject)?;
        let kind = source(Part::SubjectKind, &fields.subject_kind, &fixed.subject_kind)?;
        let id = source(Part::SubjectId, &fields.subject_id, &fixed.subject_id)?;
        let subject = match (whole, kind, id) {
            (Some(whole), None, None) => SubjectSource::Whole(whole),
            (None, Some(kind), Some(id)) => SubjectSource::Parts { kind, id },
            (None, None, None) => {
                return Err(
                    "no source for the subject: map `subject` (KIND:ID), or `subject_kind` and `subject_id`".into(),
                )
            }
            (Some(_), _, _) => {
                return Err(
                    "the subject is mapped both as `subject` and as `subject_kind`/`subject_id`; keep one".into(),
                )
            }
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err("`subject_kind` and `subject_id` go together; map both".into())
            }
        };
        let required = |part: Part, found: Option<Source>| {
            found.ok_or_else(|| {
                format!(
                    "no source for `{0}`: set `fields.{0}` to a field ID or `fixed.{0}` to a value",
                    part.name()
                )
            })
        };
        let change = required(
            Part::Change,
            source(Part::Change, &fields.change, &fixed.change)?,
        )?;
        let entitlement = required(
            Part::Entitlement,
            source(Part::Entitlement, &fields.entitlement, &fixed.entitlement)?,
        )?;
        let resource = source(Part::Resource, &fields.resource, &fixed.resource)?;
        let duration = source(Part::Duration, &fields.duration, &fixed.duration)?;
        let justification = source(
            Part::Justification,
            &fields.justification,
            &fixed.justification,
        )?;
        let case_id = match &fields.case_id {
            Some(id) if !is_field_id(id) => {
                return Err(format!(
                    "`fields.case_id` = `{}` is not a Jira field ID",
                    custody_core::text::escape(id)
                ))
            }
            other => other.clone(),
        };
        Ok(Mapping {
            subject,
            change,
            entitlement,
            resource,
            duration,
            justification,
            case_id,
        })
    }

    /// Whether field `id` gives a part of the change (so an edit of it
    /// may describe another change). The case-ID field is not a part of the
    /// change.
    pub(super) fn maps(&self, id: &str) -> bool {
        let is = |source: &Source| matches!(source, Source::Field(field) if field == id);
        let subject = match &self.subject {
            SubjectSource::Whole(source) => is(source),
            SubjectSource::Parts { kind, id } => is(kind) || is(id),
        };
        subject
            || is(&self.change)
            || is(&self.entitlement)
            || self.resource.as_ref().is_some_and(is)
            || self.duration.as_ref().is_some_and(is)
    }

    /// The change the fields describe.
    pub(super) fn change(&self, fields: &Map<String, Value>) -> Result<Change, FieldValueError> {
        let subject = match &self.subject {
            SubjectSource::Whole(source) => {
                let text = required(Part::Subject, source, fields)?;
                Subject::from_str(&text)
                    .map_err(|error| invalid(Part::Subject, source, &error.to_string()))?
            }
            SubjectSource::Parts { kind, id } => {
                let kind_text = required(Part::SubjectKind, kind, fields)?;
                let kind_value = parse_subject_kind(&kind_text)
                    .map_err(|problem| invalid(Part::SubjectKind, kind, &problem))?;
                let id = required(Part::SubjectId, id, fields)?;
                Subject {
                    kind: kind_value,
                    id,
                }
            }
        };
        let kind_text = required(Part::Change, &self.change, fields)?;
        let kind = parse_change_kind(&kind_text)
            .map_err(|problem| invalid(Part::Change, &self.change, &problem))?;
        let entitlement = required(Part::Entitlement, &self.entitlement, fields)?;
        let resource = optional(Part::Resource, self.resource.as_ref(), fields)?;
        let duration = match &self.duration {
            None => None,
            Some(source) => match read(Part::Duration, source, fields)? {
                None => None,
                Some(text) => Some(
                    parse_duration(&text)
                        .map_err(|error| invalid(Part::Duration, source, &error.to_string()))?,
                ),
            },
        };
        // The change's own rules name the part that breaks them.
        Change::new(subject, kind, entitlement, resource, duration).map_err(|error| {
            FieldValueError {
                part: Part::Change,
                source: "the mapped fields".into(),
                problem: format!("do not describe a valid change: {error}"),
            }
        })
    }

    /// The justification, when mapped and filled in.
    pub(super) fn justification(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<Option<String>, FieldValueError> {
        optional(Part::Justification, self.justification.as_ref(), fields)
    }

    /// The case ID the case-ID field holds, when mapped and filled in.
    pub(super) fn case_id(
        &self,
        fields: &Map<String, Value>,
    ) -> Result<Option<CaseId>, FieldValueError> {
        let Some(field) = &self.case_id else {
            return Ok(None);
        };
        let source = Source::Field(field.clone());
        match read(Part::CaseId, &source, fields)? {
            None => Ok(None),
            Some(text) => CaseId::from_str(&text)
                .map(Some)
                .map_err(|error| invalid(Part::CaseId, &source, &error.to_string())),
        }
    }
}

fn check_fixed(part: Part, value: &str) -> Result<(), String> {
    let bad = |problem: String| {
        Err(format!(
            "`fixed.{}` = `{}` {problem}",
            part.name(),
            custody_core::text::escape(value)
        ))
    };
    if value.trim().is_empty() {
        return bad("is empty".into());
    }
    let checked = match part {
        Part::Subject => Subject::from_str(value)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Part::SubjectKind => parse_subject_kind(value).map(|_| ()),
        Part::Change => parse_change_kind(value).map(|_| ()),
        Part::Duration => parse_duration(value).map(|_| ()).map_err(|e| e.to_string()),
        Part::SubjectId | Part::Entitlement | Part::Resource => {
            custody_core::model::validate_name("value", value)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Part::Justification | Part::CaseId => Ok(()),
    };
    match checked {
        Ok(()) => Ok(()),
        Err(problem) => bad(format!("is refused: {problem}")),
    }
}

fn parse_subject_kind(text: &str) -> Result<SubjectKind, String> {
    SubjectKind::from_str(&text.trim().to_ascii_lowercase()).map_err(|error| error.to_string())
}

fn parse_change_kind(text: &str) -> Result<ChangeKind, String> {
    ChangeKind::from_str(&text.trim().to_ascii_lowercase()).map_err(|error| error.to_string())
}

fn describe(source: &Source) -> String {
    match source {
        Source::Field(id) => format!("field {id}"),
        Source::Fixed(_) => "the fixed value".into(),
    }
}

fn invalid(part: Part, source: &Source, problem: &str) -> FieldValueError {
    FieldValueError {
        part,
        source: describe(source),
        problem: format!("is refused: {problem}"),
    }
}

fn required(
    part: Part,
    source: &Source,
    fields: &Map<String, Value>,
) -> Result<String, FieldValueError> {
    read(part, source, fields)?.ok_or_else(|| FieldValueError {
        part,
        source: describe(source),
        problem: "is empty; the issue must fill it in".into(),
    })
}

fn optional(
    part: Part,
    source: Option<&Source>,
    fields: &Map<String, Value>,
) -> Result<Option<String>, FieldValueError> {
    match source {
        None => Ok(None),
        Some(source) => read(part, source, fields),
    }
}

/// The text a source gives for an issue: `None` when the field is absent,
/// null or blank.
fn read(
    part: Part,
    source: &Source,
    fields: &Map<String, Value>,
) -> Result<Option<String>, FieldValueError> {
    match source {
        Source::Fixed(value) => Ok(Some(value.clone())),
        Source::Field(id) => match fields.get(id) {
            None => Ok(None),
            Some(value) => field_text(value).map_err(|problem| FieldValueError {
                part,
                source: describe(source),
                problem,
            }),
        },
    }
}

/// A Jira field value as text: a string; a number; a select option's
/// `value`; a named object's `name` (a group, a component); a rich text
/// document's text (Atlassian Document Format); the one element of a
/// single-element array. Blank is `None`.
pub(super) fn field_text(value: &Value) -> Result<Option<String>, String> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(_) => return Err("is a boolean, not text".into()),
        Value::Array(items) => match items.as_slice() {
            [] => return Ok(None),
            [one] => return field_text(one),
            many => {
                return Err(format!(
                    "holds {} values; map a field that holds one",
                    many.len()
                ))
            }
        },
        Value::Object(object) => {
            if object.get("type").and_then(Value::as_str) == Some("doc") {
                document_text(value)
            } else if let Some(text) = object.get("value").and_then(Value::as_str) {
                text.to_string()
            } else if let Some(text) = object.get("name").and_then(Value::as_str) {
                text.to_string()
            } else {
                return Err(
                    "is an object without a value or a name (a select option, a group or a document is expected)".into(),
                );
            }
        }
    };
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else {
        Ok(Some(text.to_string()))
    }
}

/// The text of an Atlassian Document Format document: its text nodes in
/// order, block nodes (paragraphs, headings, list items) on lines of their
/// own.
fn document_text(document: &Value) -> String {
    fn walk(node: &Value, out: &mut String, depth: usize) {
        // ADF documents are shallow; a deeper one is cut rather than
        // followed to the end of the stack.
        if depth > 64 {
            return;
        }
        if let Some(text) = node.get("text").and_then(Value::as_str) {
            out.push_str(text);
        }
        if node.get("type").and_then(Value::as_str) == Some("hardBreak") {
            out.push('\n');
        }
        if let Some(children) = node.get("content").and_then(Value::as_array) {
            let block = children.iter().any(|child| child.get("content").is_some());
            for child in children {
                walk(child, out, depth + 1);
                if block && !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    let mut out = String::new();
    walk(document, &mut out, 0);
    out.trim_end().to_string()
}
