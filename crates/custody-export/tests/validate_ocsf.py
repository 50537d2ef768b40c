"""Validates OCSF events (JSON lines on stdin) against the OCSF 1.8.0 JSON
schemas in the directory given as the first argument, with the maintained
`jsonschema` package (Draft 2020-12). Used by tests/ocsf.rs.

Each line is checked against the schema of its class_uid. Prints one line
per error, `<line number>: <class_uid>: <path>: <message>`, and exits 1 if
any line is invalid, 2 if the input or the schemas cannot be read.
"""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator

CLASSES = {
    3001: "account_change",
    3003: "authorize_session",
    3004: "entity_management",
    3005: "user_access",
    3006: "group_management",
    6003: "api_activity",
}


def main() -> int:
    directory = pathlib.Path(sys.argv[1])
    validators = {}
    for uid, name in CLASSES.items():
        schema = json.loads((directory / f"{name}.schema.json").read_text())
        validators[uid] = Draft202012Validator(schema)
    failures = 0
    count = 0
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        count += 1
        event = json.loads(line)
        uid = event.get("class_uid")
        validator = validators.get(uid)
        if validator is None:
            print(f"{number}: no schema for class_uid {uid!r}")
            failures += 1
            continue
        for error in sorted(validator.iter_errors(event), key=lambda e: list(e.path)):
            path = "/".join(str(part) for part in error.absolute_path)
            print(f"{number}: {uid}: {path}: {error.message[:300]}")
            failures += 1
    print(f"checked {count} events, {failures} errors")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
