"""Drives a case through request, approval, execution and review with
request bodies that schemathesis draws from the live OpenAPI document, one
principal per step (separation of duties), and checks every answer against
the document with all of schemathesis' checks.

Usage: workflow.py URL REQUESTER APPROVER EXECUTOR REVIEWER
Prints one JSON object: the case and, per step, the attempts and the status
that reached it. Exits 1 if a step is never reached or an answer does not
conform to the document.
"""

import json
import sys
import warnings

import requests
import schemathesis
from schemathesis import GenerationMode

warnings.filterwarnings("ignore")

URL, REQUESTER, APPROVER, EXECUTOR, REVIEWER = sys.argv[1:6]
schema = schemathesis.openapi.from_url(URL + "/v1/openapi.json")
ATTEMPTS = 60
report = {"steps": []}


def drawn(path, method, token, case_id=None):
    """Draws schema-valid requests for one operation, sends them, checks each
    answer against the document; yields (case, response)."""
    operation = schema[path][method]
    strategy = operation.as_strategy(
        GenerationMode.POSITIVE,
        path_parameters={"case_id": case_id} if case_id else None,
    )
    for _ in range(ATTEMPTS):
        case = strategy.example()
        headers = {"Authorization": "Bearer " + token}
        response = case.call(base_url=URL, headers=headers)
        # Every answer, success or refusal, must be what the document says.
        case.validate_response(response, headers=headers)
        yield case, response


def state_of(case_id):
    answer = requests.get(
        URL + "/v1/cases/" + case_id,
        headers={"Authorization": "Bearer " + REQUESTER},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["state"]


def step(name, path, method, token, wanted_state, case_id=None):
    statuses = []
    for attempt, (case, response) in enumerate(drawn(path, method, token, case_id), 1):
        statuses.append(response.status_code)
        if response.status_code >= 500:
            raise SystemExit(f"{name}: server error {response.status_code}: {response.text}")
        if 200 <= response.status_code < 300:
            body = response.json()
            current = body.get("case_id") if case_id is None else case_id
            if state_of(current) == wanted_state:
                report["steps"].append(
                    {"step": name, "attempts": attempt, "status": response.status_code,
                     "body": case.body, "statuses": statuses}
                )
                return current
    raise SystemExit(f"{name}: not reached in {ATTEMPTS} drawn requests; statuses {statuses}")


case_id = step("request", "/v1/cases", "POST", REQUESTER, "open")
report["case_id"] = case_id
step("approval", "/v1/cases/{case_id}/approvals", "POST", APPROVER, "approved", case_id)
step("execution", "/v1/cases/{case_id}/executions", "POST", EXECUTOR, "executed", case_id)
step("review", "/v1/cases/{case_id}/reviews", "POST", REVIEWER, "reviewed", case_id)
print(json.dumps(report, default=str))
