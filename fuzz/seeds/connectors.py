#!/usr/bin/env python3
"""Writes the seeds of the connector targets (fuzz/corpus/connector_*):
requests in custody_fuzz::FuzzRequest's framing (selector byte, endpoint
line, header lines, empty line, body), signed with the secrets of
fuzz/connectors.toml, plus the fixtures of custody-connect's tests."""
import base64, hashlib, hmac, json, os, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
corpus = os.path.join(root, "fuzz", "corpus")
fixtures = os.path.join(root, "crates", "custody-connect", "tests", "fixtures")
NOW = 1796032960


def write(target, name, selector, endpoint, headers, body):
    os.makedirs(os.path.join(corpus, target), exist_ok=True)
    head = endpoint + "".join(f"\n{k}: {v}" for k, v in headers)
    data = bytes([selector]) + head.encode() + b"\n\n" + body
    open(os.path.join(corpus, target, name), "wb").write(data)


def mac(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256)


# Connectors of actions: 0 jira, 1 servicenow, 2 slack, 3 teams.
jira = json.dumps({
    "timestamp": NOW * 1000, "webhookEvent": "jira:issue_created",
    "issue_event_type_name": "issue_created",
    "user": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Alice"},
    "issue": {"id": "10042", "key": "SEC-142", "self": "https://example.atlassian.net/rest/api/2/issue/10042",
              "fields": {"customfield_10040": "user:alice", "customfield_10041": "admin",
                         "customfield_10042": "prod-db", "customfield_10043": "8h",
                         "description": "incident", "status": {"name": "Approved"}}},
}).encode()
write("connector_actions", "jira-created", 0, "webhook",
      [("Content-Type", "application/json"),
       ("X-Hub-Signature", "sha256=" + mac(b"It's a Secret to Everybody", jira).hexdigest())], jira)
snow = json.dumps({"sys_id": "46d44a23a9fe19810012d100cca80666", "number": "RITM0010001",
                   "state": "approved", "sys_updated_on": "2026-11-30 10:02:40",
                   "sys_updated_by": "bob", "u_subject": "user:alice", "u_entitlement": "admin"}).encode()
write("connector_actions", "servicenow", 1, "webhook",
      [("Content-Type", "application/json"),
       ("x-custody-signature", base64.b64encode(mac(b"business-rule-hmac-key-0123456789", snow).digest()).decode())], snow)
slack = b"token=x&team_id=T1&user_id=U2&user_name=bob&command=%2Fcustody&text=approve+AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b&response_url=https%3A%2F%2Fhooks.slack.com%2Fx"
stamp = str(NOW).encode()
write("connector_actions", "slack-command", 2, "commands",
      [("Content-Type", "application/x-www-form-urlencoded"), ("X-Slack-Request-Timestamp", str(NOW)),
       ("X-Slack-Signature", "v0=" + mac(b"8f742231b10e8888abcd99yyyzzz85a5", b"v0:", stamp, b":", slack).hexdigest())], slack)
payload = json.dumps({"type": "block_actions", "user": {"id": "U2", "username": "bob"},
                      "actions": [{"action_id": "approve", "value": "AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b"}],
                      "response_url": "https://hooks.slack.com/x"})
interaction = b"payload=" + __import__("urllib.parse").parse.quote_plus(payload).encode()
write("connector_actions", "slack-interaction", 2, "actions",
      [("Content-Type", "application/x-www-form-urlencoded"), ("X-Slack-Request-Timestamp", str(NOW)),
       ("X-Slack-Signature", "v0=" + mac(b"8f742231b10e8888abcd99yyyzzz85a5", b"v0:", stamp, b":", interaction).hexdigest())], interaction)
teams = json.dumps({"type": "message", "id": "1", "timestamp": "2026-11-30T10:02:40.000Z",
                    "from": {"id": "29:1", "name": "Bob", "aadObjectId": "bob-object-id"},
                    "text": "<at>Custody</at> approve AC-0190a6b2c3d47e8f9a0b1c2d3e4f5a6b"}).encode()
key = base64.b64decode("q0Z9n3kXvJt6m5yB1cR8eW2aL4sD7fG0hJ3kP6uY9iE=")
write("connector_actions", "teams", 3, "webhook",
      [("Content-Type", "application/json"),
       ("Authorization", "HMAC " + base64.b64encode(mac(key, teams).digest()).decode())], teams)

# Sources: 0 okta, 1 cloudtrail, 2 entra, 3 github, 4 vault, 5 kubernetes;
# mode in the high nibble: 0 push, 1 batch file, 2 polled page.
def fixture(path):
    return open(os.path.join(fixtures, path), "rb").read()

write("connector_sources", "okta-hook", 0x00, "events", [("Authorization", "hook-secret-0f1e2d3c")], fixture("okta/event-hook.json"))
write("connector_sources", "okta-page", 0x20, "", [("Link", '<https://example.okta.com/api/v1/logs?after=1>; rel="next"')], fixture("okta/logs-page.json"))
write("connector_sources", "cloudtrail-eventbridge", 0x01, "events", [("Authorization", "eb-api-key-0123456789abcdef")], fixture("cloudtrail/eventbridge-add-user-to-group.json"))
open(os.path.join(corpus, "connector_sources", "cloudtrail-log-file"), "wb").write(b"\x11" + fixture("cloudtrail/log-file.json"))
open(os.path.join(corpus, "connector_sources", "entra-batch"), "wb").write(b"\x12" + fixture("entra/directory-audits.json"))
write("connector_sources", "entra-page", 0x22, "", [], fixture("entra/directory-audits.json"))
github = json.dumps({"action": "member_added", "membership": {"user": {"login": "alice"}, "role": "admin"},
                     "organization": {"login": "acme"}, "team": {"slug": "ops", "name": "ops"},
                     "sender": {"login": "bob"}}).encode()
write("connector_sources", "github-hook", 0x03, "webhook",
      [("X-GitHub-Event", "membership"), ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
       ("X-Hub-Signature-256", "sha256=" + mac(b"github webhook secret, unit", github).hexdigest())], github)
vault = json.dumps({"time": "2026-11-30T10:02:40.123Z", "type": "response",
                    "auth": {"display_name": "userpass-bob", "entity_id": "e1"},
                    "request": {"id": "r1", "operation": "update", "path": "auth/userpass/users/alice",
                                "data": {"policies": "admin"}}}).encode()
open(os.path.join(corpus, "connector_sources", "vault-batch"), "wb").write(b"\x14" + vault + b"\n")
k8s = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [{
    "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": "a1",
    "stage": "ResponseComplete", "verb": "create", "user": {"username": "bob"},
    "objectRef": {"resource": "clusterrolebindings", "name": "alice-admin", "apiGroup": "rbac.authorization.k8s.io"},
    "responseStatus": {"code": 201}, "stageTimestamp": "2026-11-30T10:02:40.000000Z",
    "requestObject": {"kind": "ClusterRoleBinding", "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                      "subjects": [{"kind": "User", "name": "alice"}]}}]}).encode()
write("connector_sources", "kubernetes-hook", 0x05, "webhook", [("Authorization", "Bearer audit webhook token, unit")], k8s)
print("connector seeds written")
