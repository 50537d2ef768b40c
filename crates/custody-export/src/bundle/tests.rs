use super::*;

fn header() -> Header {
    Header {
        format: BUNDLE_FORMAT.to_string(),
        version: BUNDLE_VERSION,
        origin: "custody.example/log".to_string(),
        scope: Scope::Case {
            case_id: "AC-0192".to_string(),
        },
        created_at: "2026-01-01T00:00:00.000000Z".to_string(),
        checkpoint_size: 3,
        checkpoint_root: encode_base64(&[7; 32]),
        with_evidence: true,
    }
}

fn sample() -> Vec<u8> {
    let mut writer = BundleWriter::new(Vec::new(), header()).unwrap();
    writer.key("custody.example/log+01234567+AAAA").unwrap();
    writer
        .checkpoint("custody.example/log\n3\nBwcH\n\n— sig\n")
        .unwrap();
    writer
        .context(Record::Policy, 0, b"{\"p\":1}", &[[1; 32]])
        .unwrap();
    writer
        .event(1, b"{\"a\":1}", Some(&[[2; 32], [3; 32]]))
        .unwrap();
    writer.event(2, b"{\"a\":2}", Some(&[[4; 32]])).unwrap();
    writer
        .evidence(&"ab".repeat(32), "text/plain", 5, Some(b"hello"))
        .unwrap();
    let (bytes, trailer) = writer.finish().unwrap();
    assert_eq!((trailer.lines, trailer.events, trailer.evidence), (7, 2, 1));
    bytes
}

fn read(bytes: &[u8]) -> (Vec<ReadLine>, Vec<String>) {
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for item in BundleReader::new(bytes) {
        match item {
            Ok(line) => lines.push(line),
            Err(error) => errors.push(error.to_string()),
        }
    }
    (lines, errors)
}

#[test]
fn a_written_bundle_reads_back_line_for_line() {
    let bytes = sample();
    let (lines, errors) = read(&bytes);
    assert_eq!(errors, Vec::<String>::new());
    let types: Vec<&str> = lines.iter().map(|line| line.line.type_name()).collect();
    assert_eq!(
        types,
        [
            "header",
            "key",
            "checkpoint",
            "context",
            "event",
            "event",
            "evidence",
            "trailer"
        ]
    );
    assert_eq!(lines[0].line, Line::Header(header()));
    match &lines[4].line {
        Line::Event(event) => {
            assert_eq!(event.log_index, 1);
            assert_eq!(decode_base64(&event.event).unwrap(), b"{\"a\":1}");
            assert_eq!(
                decode_hashes(event.proof.as_ref().unwrap()).unwrap(),
                vec![[2; 32], [3; 32]]
            );
        }
        other => panic!("expected an event, got {other:?}"),
    }
    assert_eq!(lines[7].number, 8);
}

#[test]
fn every_flipped_byte_is_reported_by_the_reader_alone() {
    let bytes = sample();
    for position in 0..bytes.len() {
        for flip in [0x01_u8, 0x20, 0x80] {
            let mut tampered = bytes.clone();
            tampered[position] ^= flip;
            let (_, errors) = read(&tampered);
            assert!(
                !errors.is_empty(),
                "flipping byte {position} with {flip:#x} went unnoticed"
            );
        }
    }
}

#[test]
fn a_dropped_line_a_swap_and_a_truncation_are_reported() {
    let bytes = sample();
    let lines: Vec<&[u8]> = bytes.split_inclusive(|byte| *byte == b'\n').collect();
    let dropped: Vec<u8> = lines
        .iter()
        .enumerate()
        .filter(|(position, _)| *position != 4)
        .flat_map(|(_, line)| line.to_vec())
        .collect();
    let (_, errors) = read(&dropped);
    assert!(
        errors.iter().any(|error| error.contains("hash to")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|error| error.contains("counts 2 event lines but 1")),
        "{errors:?}"
    );

    let mut swapped: Vec<&[u8]> = lines.clone();
    swapped.swap(4, 5);
    let (_, errors) = read(&swapped.concat());
    assert!(
        errors.iter().any(|error| error.contains("hash to")),
        "{errors:?}"
    );

    let truncated = lines[..7].concat();
    let (_, errors) = read(&truncated);
    assert_eq!(
        errors,
        ["the bundle ends after 7 lines without a trailer: it was truncated"]
    );

    let mut extra = bytes.clone();
    extra.extend_from_slice(b"{}\n");
    let (_, errors) = read(&extra);
    assert_eq!(
        errors,
        ["line 9 follows the trailer: the bundle ends at its trailer"]
    );
}

#[test]
fn lines_out_of_order_and_unknown_fields_are_refused() {
    let mut writer = BundleWriter::new(Vec::new(), header()).unwrap();
    writer.event(5, b"{}", None).unwrap();
    assert!(matches!(
        writer.event(5, b"{}", None),
        Err(BundleError::EventOrder {
            index: 5,
            previous: 5
        })
    ));
    assert!(matches!(
        writer.key("k"),
        Err(BundleError::Order {
            line: "key",
            after: "event"
        })
    ));

    let bytes = sample();
    let text = String::from_utf8(bytes).unwrap();
    let with_field = text.replacen("\"type\":\"key\",", "\"type\":\"key\",\"extra\":1,", 1);
    let (_, errors) = read(with_field.as_bytes());
    assert!(
        errors
            .iter()
            .any(|error| error.starts_with("line 2 is not a bundle line")),
        "{errors:?}"
    );
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    lines.swap(1, 2);
    let (_, errors) = read(lines.concat().as_bytes());
    assert!(
        errors.iter().any(|error| error
            == "line 3 is a key line after a checkpoint line, out of the bundle's order"),
        "{errors:?}"
    );
}

fn token_line() -> TokenLine {
    TokenLine {
        token_id: "tok_0123".to_string(),
        principal: "alice".to_string(),
        secret_sha256: "ab".repeat(32),
        created_at: "2026-01-01T00:00:00.000000Z".to_string(),
        expires_at: None,
        revoked_at: Some("2026-01-02T00:00:00.000000Z".to_string()),
    }
}

fn idempotency_line() -> IdempotencyLine {
    IdempotencyLine {
        principal: "alice".to_string(),
        key: "retry-me".to_string(),
        fingerprint: "cd".repeat(32),
        response: "{\"case_id\":\"AC-0192\"}".to_string(),
        created_at: "2026-01-01T00:00:00.000000Z".to_string(),
    }
}

#[test]
fn a_whole_log_bundle_carries_token_and_idempotency_lines_between_events_and_evidence() {
    let mut writer = BundleWriter::new(
        Vec::new(),
        Header {
            scope: Scope::Log,
            ..header()
        },
    )
    .unwrap();
    writer.key("custody.example/log+01234567+AAAA").unwrap();
    writer
        .checkpoint("custody.example/log\n3\nBwcH\n\n— sig\n")
        .unwrap();
    writer.event(0, b"{\"a\":0}", None).unwrap();
    writer.token(token_line()).unwrap();
    writer.idempotency(idempotency_line()).unwrap();
    // An idempotency line never precedes a token line: the order is fixed.
    assert!(matches!(
        writer.token(token_line()),
        Err(BundleError::Order {
            line: "token",
            after: "idempotency"
        })
    ));
    writer
        .evidence(&"ab".repeat(32), "text/plain", 5, None)
        .unwrap();
    assert_eq!(
        (writer.tokens_written(), writer.idempotency_written()),
        (1, 1)
    );
    let (bytes, trailer) = writer.finish().unwrap();
    assert_eq!((trailer.lines, trailer.events, trailer.evidence), (7, 1, 1));
    let (lines, errors) = read(&bytes);
    assert_eq!(errors, Vec::<String>::new());
    let types: Vec<&str> = lines.iter().map(|line| line.line.type_name()).collect();
    assert_eq!(
        types,
        [
            "header",
            "key",
            "checkpoint",
            "event",
            "token",
            "idempotency",
            "evidence",
            "trailer"
        ]
    );
    assert_eq!(lines[4].line, Line::Token(token_line()));
    assert_eq!(lines[5].line, Line::Idempotency(idempotency_line()));

    // The trailer's digest covers them: one changed digit is caught.
    let text = String::from_utf8(bytes).unwrap();
    let altered = text.replacen(&"ab".repeat(32), &format!("ac{}", "ab".repeat(31)), 1);
    assert_ne!(altered, text);
    let (_, errors) = read(altered.as_bytes());
    assert!(
        errors.iter().any(|error| error.contains("hash to")),
        "{errors:?}"
    );
    // A token line after the evidence stands out of place.
    let mut shuffled: Vec<&str> = text.split_inclusive('\n').collect();
    shuffled.swap(4, 6);
    let (_, errors) = read(shuffled.concat().as_bytes());
    assert!(
        errors.iter().any(|error| error
            == "line 7 is a token line after a evidence line, out of the bundle's order"),
        "{errors:?}"
    );
}

#[test]
fn a_case_bundle_refuses_token_and_idempotency_lines() {
    let mut writer = BundleWriter::new(Vec::new(), header()).unwrap();
    assert!(matches!(
        writer.token(token_line()),
        Err(BundleError::NotWholeLog { line: "token" })
    ));
    assert!(matches!(
        writer.idempotency(idempotency_line()),
        Err(BundleError::NotWholeLog {
            line: "idempotency"
        })
    ));
}
