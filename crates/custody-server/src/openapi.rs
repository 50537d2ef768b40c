//! The OpenAPI document tells the truth: every constraint the server enforces
//! on a body, a query or a header is in the schema, and every status an
//! operation can answer is documented, errors as `application/problem+json`.
//!
//! The handlers' annotations give the shapes; [`Truthful`] adds what
//! annotations cannot say in one place: the patterns of identifiers, labels,
//! tickets, principal names and free text (the constants of
//! `custody_core::model`, next to the parsers and checked against them by
//! `model::tests::the_documented_patterns_agree_with_the_parsers`; the
//! annotations name no pattern of their own), enums, ranges, the
//! `Idempotency-Key` and `Custody-Via` headers, and the error answers every
//! operation shares.

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{
    ContentBuilder, KnownFormat, OpenApi, Ref, RefOr, Required, ResponseBuilder,
};
use utoipa::Modify;

use custody_core::model::{
    CONNECTOR_NAME_PATTERN, EXTERNAL_USER_PATTERN, IDENTIFIER_PATTERN, LABEL_PATTERN,
    MAX_EXTERNAL_USER_BYTES, MAX_NAME_BYTES, MAX_TEXT_BYTES, PRINCIPAL_PATTERN, TEXT_PATTERN,
    TICKET_PATTERN,
};

use custody_api::evidence::MAX_FILE_NAME_BYTES;

/// A case ID: `AC-` and a UUIDv7 in 32 lowercase hex digits.
pub const CASE_ID_PATTERN: &str = "^AC-[0-9a-f]{12}7[0-9a-f]{19}$";
/// An event ID: `EV-` and a UUIDv7 in 32 lowercase hex digits.
pub const EVENT_ID_PATTERN: &str = "^EV-[0-9a-f]{12}7[0-9a-f]{19}$";
/// A time a client says a step occurred (`occurred_at`, a chat message's
/// time): RFC 3339 (`Timestamp::parse`), never in the future. A schema
/// cannot name "now", so the pattern admits a range that is certainly past
/// (1971 to 2025, days 1 to 28): every time it admits is accepted.
pub const PAST_TIMESTAMP_PATTERN: &str = "^(?:197[1-9]|19[89][0-9]|20[01][0-9]|202[0-5])-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$";
/// An `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";

/// Ten years, the longest duration `parse_duration` accepts.
const MAX_DURATION_SECONDS: u64 = 10 * 366 * 86_400;

/// A duration such as `90s`, `30m`, `8h`, `7d` or `2w`, longer than zero and
/// at most ten years (`parse_duration`), as one exact pattern.
pub fn duration_pattern() -> String {
    let units = [
        ("s", 1),
        ("m", 60),
        ("h", 3600),
        ("d", 86_400),
        ("w", 604_800),
    ];
    let alternatives: Vec<String> = units
        .iter()
        .map(|(unit, size)| format!("(?:{}){unit}", up_to(MAX_DURATION_SECONDS / size)))
        .collect();
    format!("^0*(?:{})$", alternatives.join("|"))
}

/// A regular expression matching the decimal numbers 1 to `max` without
/// leading zeros.
fn up_to(max: u64) -> String {
    let digits: Vec<u32> = max
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let length = digits.len();
    let mut alternatives = Vec::new();
    // Shorter numbers: any.
    for shorter in 1..length {
        alternatives.push(format!("[1-9][0-9]{{{}}}", shorter - 1));
    }
    // As long as `max`: equal on a prefix, then a smaller digit, then any.
    for position in 0..length {
        let lowest = if position == 0 { 1 } else { 0 };
        let digit = digits[position];
        if digit > lowest {
            let prefix: String = digits[..position].iter().map(u32::to_string).collect();
            let rest = length - position - 1;
            alternatives.push(format!("{prefix}[{lowest}-{}][0-9]{{{rest}}}", digit - 1));
        }
    }
    alternatives.push(max.to_string());
    alternatives.join("|")
}

/// Adds the document's constraints and shared error answers.
pub struct Truthful;

/// How one property is constrained.
enum Rule {
    /// An identifier (`validate_name`).
    Name,
    /// A label for people (`validate_label`).
    Label,
    Text,
    Ticket,
    Duration,
    Principal,
    CaseId,
    EventId,
    DateTime,
    Url,
    FileName,
    OneOf(&'static [&'static str]),
    /// An array whose items are names.
    Names,
    /// An array whose items are principal names.
    Principals,
    /// A connector's name (`ConnectorName`).
    Connector,
    /// An outside user's ID (`ExternalUser`).
    ExternalUser,
}

const SUBJECT_KINDS: &[&str] = &[
    "user",
    "service_account",
    "api_key",
    "token",
    "role",
    "group",
    "workload",
];
const CHANGE_KINDS: &[&str] = &["grant", "revoke", "create", "rotate", "delete", "modify"];

/// Every constrained property of the request bodies: (schema, property, rule).
const BODY_RULES: &[(&str, &str, Rule)] = &[
    ("SubjectBody", "kind", Rule::OneOf(SUBJECT_KINDS)),
    ("SubjectBody", "id", Rule::Name),
    ("RequestBody", "entitlement", Rule::Name),
    ("RequestBody", "change", Rule::OneOf(CHANGE_KINDS)),
    ("RequestBody", "resource", Rule::Name),
    ("RequestBody", "duration", Rule::Duration),
    ("RequestBody", "justification", Rule::Text),
    ("RequestBody", "ticket", Rule::Ticket),
    ("BreakGlassBody", "entitlement", Rule::Name),
    ("BreakGlassBody", "change", Rule::OneOf(CHANGE_KINDS)),
    ("BreakGlassBody", "resource", Rule::Name),
    ("BreakGlassBody", "duration", Rule::Duration),
    ("BreakGlassBody", "justification", Rule::Text),
    ("BreakGlassBody", "ticket", Rule::Ticket),
    ("AppliedBody", "change", Rule::OneOf(CHANGE_KINDS)),
    ("AppliedBody", "entitlement", Rule::Name),
    ("AppliedBody", "resource", Rule::Name),
    ("DecisionBody", "comment", Rule::Text),
    ("DecisionBody", "occurred_at", Rule::DateTime),
    ("DecisionBody", "confirm", Rule::EventId),
    ("ChatBody", "channel", Rule::Name),
    ("ChatBody", "permalink", Rule::Name),
    ("ChatBody", "message_time", Rule::DateTime),
    ("ChatBody", "message_text", Rule::Text),
    ("ChatBody", "approver", Rule::Principal),
    ("ExecutionBody", "comment", Rule::Text),
    (
        "ExecutionBody",
        "status",
        Rule::OneOf(&["completed", "failed", "revocation"]),
    ),
    ("ExecutionBody", "occurred_at", Rule::DateTime),
    (
        "ReviewBody",
        "outcome",
        Rule::OneOf(&["confirmed", "mismatch", "revoke"]),
    ),
    ("ReviewBody", "comment", Rule::Text),
    ("CommentBody", "text", Rule::Text),
    ("MergeBody", "into", Rule::CaseId),
    ("MergeBody", "comment", Rule::Text),
    ("PrincipalBody", "name", Rule::Principal),
    (
        "PrincipalBody",
        "kind",
        Rule::OneOf(&["human", "service", "automation", "vendor"]),
    ),
    ("PrincipalBody", "display_name", Rule::Label),
    ("PrincipalBody", "groups", Rule::Names),
    ("PrincipalBody", "org", Rule::Name),
    ("GroupsBody", "groups", Rule::Names),
    ("TokenBody", "ttl", Rule::Duration),
    ("DelegationBody", "vendor_org", Rule::Name),
    ("DelegationBody", "principals", Rule::Principals),
    ("DelegationBody", "on_behalf_of", Rule::Name),
    ("DelegationBody", "entitlements", Rule::Names),
    ("DelegationBody", "resources", Rule::Names),
    ("DelegationBody", "valid_for", Rule::Duration),
    ("IdentityBody", "principal", Rule::Principal),
    ("IdentityEntry", "external_user", Rule::ExternalUser),
    ("IdentityEntry", "principal", Rule::Principal),
    ("LinkBody", "url", Rule::Url),
    ("RecheckBody", "case", Rule::CaseId),
];

/// Operations whose request body may be absent.
const OPTIONAL_BODIES: &[&str] = &[
    "approve",
    "deny",
    "execute",
    "create_token",
    "upload",
    "upload_for_reference",
];

/// Every constrained path parameter: (parameter, rule), in every operation
/// that has it.
const PATH_RULES: &[(&str, Rule)] = &[
    // Only the connectors' routes name a connector by `name` and an
    // outside user by `external_user`.
    ("external_user", Rule::ExternalUser),
];

/// Operations whose `name` path parameter is a connector's name (elsewhere
/// it is a principal's).
const CONNECTOR_OPERATIONS: &[&str] = &[
    "list_identities",
    "map_identities",
    "map_identity",
    "unmap_identity",
];

/// Every constrained query parameter: (operation ID, parameter, rule).
const QUERY_RULES: &[(&str, &str, Rule)] = &[
    (
        "list_cases",
        "state",
        Rule::OneOf(&[
            "open",
            "approved",
            "denied",
            "executed",
            "reviewed",
            "merged",
            "pending_review",
            "executed_pending_approval",
        ]),
    ),
    ("list_notifications", "case", Rule::CaseId),
    (
        "export",
        "format",
        Rule::OneOf(&["ocsf", "syslog", "cef", "ecs", "cloudevents", "jsonl"]),
    ),
    ("export", "case", Rule::CaseId),
    ("list_tokens", "principal", Rule::Principal),
    ("upload", "name", Rule::FileName),
    ("upload_for_reference", "name", Rule::FileName),
    ("upload_for_reference", "ticket", Rule::Ticket),
];

fn apply(rule: &Rule, object: &mut Object) {
    match rule {
        Rule::Name => {
            object.pattern = Some(IDENTIFIER_PATTERN.to_string());
            object.min_length = Some(1);
            object.max_length = Some(MAX_NAME_BYTES);
        }
        Rule::Label => {
            object.pattern = Some(LABEL_PATTERN.to_string());
            object.min_length = Some(1);
            object.max_length = Some(MAX_NAME_BYTES);
        }
        Rule::Text => {
            object.pattern = Some(TEXT_PATTERN.to_string());
            object.min_length = Some(1);
            object.max_length = Some(MAX_TEXT_BYTES);
        }
        Rule::Ticket => object.pattern = Some(TICKET_PATTERN.to_string()),
        Rule::Duration => object.pattern = Some(duration_pattern()),
        Rule::Principal => object.pattern = Some(PRINCIPAL_PATTERN.to_string()),
        Rule::Connector => {
            object.pattern = Some(CONNECTOR_NAME_PATTERN.to_string());
            object.min_length = Some(1);
            object.max_length = Some(64);
        }
        Rule::ExternalUser => {
            object.pattern = Some(EXTERNAL_USER_PATTERN.to_string());
            object.min_length = Some(1);
            object.max_length = Some(MAX_EXTERNAL_USER_BYTES);
        }
        Rule::CaseId => object.pattern = Some(CASE_ID_PATTERN.to_string()),
        Rule::EventId => object.pattern = Some(EVENT_ID_PATTERN.to_string()),
        Rule::DateTime => {
            object.pattern = Some(PAST_TIMESTAMP_PATTERN.to_string());
            object.description = Some(format!(
                "{} An RFC 3339 time, at most a minute in the future; the schema admits 1971 to 2025.",
                object.description.clone().unwrap_or_default()
            ));
        }
        Rule::Url => {
            object.format = Some(SchemaFormat::Custom("uri".to_string()));
            object.min_length = Some(1);
        }
        Rule::FileName => {
            object.pattern = Some(IDENTIFIER_PATTERN.to_string());
            object.min_length = Some(1);
            object.max_length = Some(MAX_FILE_NAME_BYTES);
        }
        Rule::OneOf(values) => {
            let nullable = object.schema_type.is_null_allowed();
            let mut choices: Vec<serde_json::Value> = values
                .iter()
                .map(|value| serde_json::json!(value))
                .collect();
            if nullable {
                choices.push(serde_json::Value::Null);
            }
            object.enum_values = Some(choices);
        }
        // Arrays: their items are constrained by `constrain_property`.
        Rule::Names | Rule::Principals => {}
    }
}

/// An unsigned integer parameter (`u32`, `u64`) accepts up to its type's
/// maximum, not only up to `int32`'s or `int64`'s.
fn unsigned_range(object: &mut Object) {
    let integer = matches!(
        &object.schema_type,
        utoipa::openapi::schema::SchemaType::Type(Type::Integer)
    );
    if !integer || object.minimum.is_none() {
        return;
    }
    let maximum = match &object.format {
        Some(SchemaFormat::KnownFormat(KnownFormat::Int32)) => u32::MAX as usize,
        Some(SchemaFormat::KnownFormat(KnownFormat::Int64)) => usize::MAX,
        _ => return,
    };
    object.format = None;
    object.maximum = Some(utoipa::Number::UInt(maximum));
}

trait NullAllowed {
    fn is_null_allowed(&self) -> bool;
}

impl NullAllowed for utoipa::openapi::schema::SchemaType {
    fn is_null_allowed(&self) -> bool {
        match self {
            utoipa::openapi::schema::SchemaType::Array(types) => types.contains(&Type::Null),
            utoipa::openapi::schema::SchemaType::Type(kind) => *kind == Type::Null,
            utoipa::openapi::schema::SchemaType::AnyValue => true,
        }
    }
}

fn constrain_property(schema: &mut Schema, property: &str, rule: &Rule) -> bool {
    let Schema::Object(object) = schema else {
        return false;
    };
    let Some(RefOr::T(target)) = object.properties.get_mut(property) else {
        return false;
    };
    match (rule, target) {
        (Rule::Names | Rule::Principals, Schema::Array(array)) => {
            let mut item = ObjectBuilder::new().schema_type(Type::String).build();
            let inner = if matches!(rule, Rule::Names) {
                Rule::Name
            } else {
                Rule::Principal
            };
            apply(&inner, &mut item);
            array.items = utoipa::openapi::schema::ArrayItems::RefOrSchema(Box::new(RefOr::T(
                Schema::Object(item),
            )));
            true
        }
        (_, Schema::Object(object)) => {
            apply(rule, object);
            true
        }
        _ => false,
    }
}

fn operations(openapi: &mut OpenApi) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            ("get", item.get.as_mut()),
            ("put", item.put.as_mut()),
            ("post", item.post.as_mut()),
            ("delete", item.delete.as_mut()),
        ]
        .into_iter()
        .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
    })
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn header(name: &str, description: &str, schema: Object) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(Schema::Object(schema)))
        .build()
}

/// A change set: any JSON without floats, its integers within ±(2^53 − 1)
/// (`custody_core::change_set::MAX_SAFE_INTEGER`: RFC 8785 writes numbers as
/// IEEE doubles), as a recursive schema.
fn change_set_schemas() -> Vec<(&'static str, RefOr<Schema>)> {
    let limit = custody_core::change_set::MAX_SAFE_INTEGER;
    let value = serde_json::json!({
        "description": "A JSON value without floats; integers within ±(2^53 − 1).",
        "oneOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "string"},
            {"type": "integer", "minimum": -limit.cast_signed(), "maximum": limit},
            {"type": "array", "items": {"$ref": "#/components/schemas/ChangeValue"}},
            {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/ChangeValue"}}
        ]
    });
    let set = serde_json::json!({
        "type": "object",
        "description": "What was actually changed: any JSON object without floats.",
        "additionalProperties": {"$ref": "#/components/schemas/ChangeValue"}
    });
    [("ChangeValue", value), ("ChangeSet", set)]
        .into_iter()
        .filter_map(|(name, schema)| {
            serde_json::from_value::<RefOr<Schema>>(schema)
                .ok()
                .map(|schema| (name, schema))
        })
        .collect()
}

/// Points the `change_set` of `schema` at the `ChangeSet` schema.
fn use_change_set(schema: &mut Schema) {
    let Schema::Object(object) = schema else {
        return;
    };
    if let Some(property) = object.properties.get_mut("change_set") {
        if let Ok(nullable) = serde_json::from_value::<RefOr<Schema>>(serde_json::json!({
            "oneOf": [{"$ref": "#/components/schemas/ChangeSet"}, {"type": "null"}]
        })) {
            *property = nullable;
        }
    }
}

impl Modify for Truthful {
    fn modify(&self, openapi: &mut OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            for (name, schema) in change_set_schemas() {
                components.schemas.insert(name.to_string(), schema);
            }
            for name in ["ExecutionBody", "BreakGlassBody"] {
                if let Some(RefOr::T(schema)) = components.schemas.get_mut(name) {
                    use_change_set(schema);
                }
            }
            for (name, property, rule) in BODY_RULES {
                let applied = match components.schemas.get_mut(*name) {
                    Some(RefOr::T(schema)) => constrain_property(schema, property, rule),
                    _ => false,
                };
                debug_assert!(applied, "no property {name}.{property} to constrain");
            }
        }
        let problem_schema = Ref::from_schema_name("Problem");
        for (method, operation) in operations(openapi) {
            let id = operation.operation_id.clone().unwrap_or_default();
            let secured = operation
                .security
                .as_ref()
                .is_some_and(|requirements| !requirements.is_empty());
            let mut has_path = false;
            let mut has_key = false;
            for parameter in operation.parameters.iter_mut().flatten() {
                let RefOr::T(parameter) = parameter else {
                    continue;
                };
                match parameter.parameter_in {
                    ParameterIn::Path => {
                        has_path = true;
                        let rule = if parameter.name == "name"
                            && CONNECTOR_OPERATIONS.contains(&id.as_str())
                        {
                            Some(&Rule::Connector)
                        } else {
                            PATH_RULES
                                .iter()
                                .find(|(name, _)| parameter.name == *name)
                                .map(|(_, rule)| rule)
                        };
                        if let (Some(rule), Some(RefOr::T(Schema::Object(object)))) =
                            (rule, parameter.schema.as_mut())
                        {
                            apply(rule, object);
                        }
                    }
                    ParameterIn::Header if parameter.name == "Idempotency-Key" => {
                        has_key = true;
                        // Optional: without one the server makes a key up
                        // (and the write is not protected against retries).
                        parameter.required = Required::False;
                        parameter.schema = Some(RefOr::T(Schema::Object(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .pattern(Some(IDEMPOTENCY_KEY_PATTERN))
                                .min_length(Some(1))
                                .max_length(Some(255))
                                .build(),
                        )));
                    }
                    ParameterIn::Query => {
                        if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut() {
                            unsigned_range(object);
                        }
                        for (operation_id, name, rule) in QUERY_RULES {
                            if *operation_id == id && parameter.name == *name {
                                if let Some(RefOr::T(Schema::Object(object))) =
                                    parameter.schema.as_mut()
                                {
                                    apply(rule, object);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            if secured {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(RefOr::T(header(
                        "Custody-Via",
                        "The channel the request came through (default `api`).",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(["api", "cli"]))
                            .build(),
                    )));
            }
            // Bodies that may be left out: every field optional, or a
            // streamed upload that may be empty.
            if OPTIONAL_BODIES.contains(&id.as_str()) {
                if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
                    body.required = Some(Required::False);
                }
            }
            let has_body = operation.request_body.is_some();
            let has_input = secured
                || has_body
                || operation
                    .parameters
                    .as_ref()
                    .is_some_and(|parameters| !parameters.is_empty());
            // The answers an operation's own annotations name as problems are
            // problem+json, whatever content type the annotation defaulted to.
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let is_problem = response.content.values().any(|content| match content {
                    RefOr::T(content) => matches!(&content.schema, Some(RefOr::Ref(reference)) if reference.ref_location == problem_schema.ref_location),
                    RefOr::Ref(_) => false,
                });
                if is_problem {
                    response.content.clear();
                    response.content.insert(
                        "application/problem+json".to_string(),
                        RefOr::T(
                            ContentBuilder::new()
                                .schema(Some(problem_schema.clone()))
                                .build(),
                        ),
                    );
                }
                if response.description.is_empty() {
                    response.description = "See the schema.".to_string();
                }
            }
            let mut shared: Vec<(&str, &str)> = vec![
                ("408", "The request was not read and answered in time"),
                ("500", "The server failed; a write was not acknowledged"),
                ("503", "Shutting down, or the store is unavailable"),
            ];
            if has_input {
                shared.push(("400", "A malformed header, parameter or body"));
            }
            if secured {
                shared.push(("401", "No valid bearer token"));
                shared.push(("403", "Not allowed for this principal"));
            }
            if has_path || secured {
                shared.push(("404", "No such case, principal, token, grant or blob"));
            }
            if has_key || (secured && method != "get") {
                shared.push(("409", "Refused by a rule, or an Idempotency-Key reused"));
            }
            if has_body {
                shared.push(("413", "The body is larger than the server's limit"));
            }
            for (status, description) in shared {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(problem_response(description)));
            }
        }
    }
}

/// The served document: the OpenAPI value with what utoipa's types cannot
/// hold (`not`), added as JSON.
pub fn document(openapi: &OpenApi) -> serde_json::Value {
    let mut document = serde_json::to_value(openapi).unwrap_or_default();
    // An approval confirms a chat approval or records one, not both.
    if let Some(decision) = document
        .pointer_mut("/components/schemas/DecisionBody")
        .and_then(serde_json::Value::as_object_mut)
    {
        decision.insert(
            "not".to_string(),
            serde_json::json!({
                "required": ["confirm", "chat"],
                "properties": {"confirm": {"type": "string"}, "chat": {"type": "object"}}
            }),
        );
    }
    // `system` matches the principal pattern but names the ledger itself.
    for pointer in [
        "/components/schemas/PrincipalBody/properties/name",
        "/components/schemas/IdentityBody/properties/principal",
        "/components/schemas/IdentityEntry/properties/principal",
    ] {
        if let Some(name) = document
            .pointer_mut(pointer)
            .and_then(serde_json::Value::as_object_mut)
        {
            name.insert(
                "not".to_string(),
                serde_json::json!({"const": custody_core::model::SYSTEM_PRINCIPAL}),
            );
        }
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_matches_exactly_one_to_max() {
        for max in [1u64, 9, 10, 99, 100, 522, 3660, 87_840] {
            let alternatives = up_to(max);
            let accepts = |n: u64| {
                let text = n.to_string();
                alternatives
                    .split('|')
                    .any(|alternative| simple_match(alternative, &text))
            };
            for n in 1..=max + 20 {
                assert_eq!(accepts(n), n <= max, "max {max}, n {n}: {alternatives}");
            }
            assert!(!accepts(0));
        }
    }

    /// Matches `text` against one alternative of `up_to`: literal digits,
    /// `[a-b]` classes and `[0-9]{n}` repetitions.
    fn simple_match(alternative: &str, text: &str) -> bool {
        let mut expected: Vec<(char, char)> = Vec::new();
        let chars: Vec<char> = alternative.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '[' {
                let (low, high) = (chars[i + 1], chars[i + 3]);
                i += 5;
                if i < chars.len() && chars[i] == '{' {
                    let end = i + chars[i..].iter().position(|&c| c == '}').unwrap();
                    let count: usize = chars[i + 1..end]
                        .iter()
                        .collect::<String>()
                        .parse()
                        .unwrap();
                    expected.extend(std::iter::repeat_n((low, high), count));
                    i = end + 1;
                } else {
                    expected.push((low, high));
                }
            } else {
                expected.push((chars[i], chars[i]));
                i += 1;
            }
        }
        text.chars().count() == expected.len()
            && text
                .chars()
                .zip(expected)
                .all(|(c, (low, high))| c >= low && c <= high)
    }
}
