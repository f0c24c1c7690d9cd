"""Accounts, roles, clearance and audit against a real `obslink collector http` process on
each backend (docs/access.md): every endpoint answered for every role as the table below
says, an account not cleared for a dataset unable to learn that it exists, one audit row
per request, a suspended account refused at its next request, token guessing limited per
address, browser sessions safe from cross-site requests, and a tampered audit row found
by `obslink audit verify`."""

from __future__ import annotations

import dataclasses
import http.client
import json
import subprocess
import sys

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from obslink import wire
from obslink.keys import key_id, public_bytes
from obslink.readings import now_us
from obslink.server.access.tokens import issue_token
from obslink.server.catalog import AcceptedBatch, Station
from tests.conftest import API_TOKENS, make_account
from tests.signed_catalog import batch
from tests.test_catalog_api import serve

ROLES = ("anonymous", "operator", "data-user", "auditor", "administrator")
S2_TOPIC = "obslink/v1/net/S2/data"


def add_restricted_station(catalog) -> None:
    """S2: a station whose observations are classified restricted, with one batch."""
    key = Ed25519PrivateKey.generate()
    catalog.add_station(Station("S2", "net", "Station two"), public_bytes(key.public_key()),
                        key_id(key.public_key()))
    body = wire.encode_batch(dataclasses.replace(batch(1), station="S2"))
    catalog.commit([AcceptedBatch(wire.decode_batch_columns(body), S2_TOPIC,
                                  key_id(key.public_key()),
                                  key.sign(wire.signed_message(S2_TOPIC, body)), body,
                                  now_us())])
    catalog.update_dataset("obslink:S2/surface", classification="restricted")


@pytest.fixture
def centre(signed_catalog):
    """The signed catalog (S1, public) with S2 (restricted), an open alarm on each, an
    account of every role (the operator cleared for internal data, the data user for
    public data) and the API serving it."""
    catalog, directory, _ = signed_catalog
    add_restricted_station(catalog)
    catalog.change_alarms([("S1", "silent", "", "quiet", 2.0),
                           ("S2", "silent", "", "quiet", 2.0)], [], now_us(), [])
    tokens = {"operator": make_account(catalog.location, "olga", "operator", "internal"),
              "data-user": make_account(catalog.location, "dora", "data-user", "public"),
              "auditor": make_account(catalog.location, "audrey", "auditor", "public")}
    url, process = serve(catalog.location, directory)
    tokens["administrator"] = API_TOKENS[url.removeprefix("http://")]
    yield url, catalog, tokens
    process.stop()


def call(url: str, token: str | None, method: str, path: str, body=None,
         **options) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{url}{path}", headers=headers, json=body, timeout=30,
                            allow_redirects=False, **options)


# (method, route, concrete path, body, statuses for anonymous, operator, data-user,
# auditor, administrator). The administrator goes last: what it creates or removes, the
# others were refused first. S2's items are restricted: only the administrator is cleared.
TABLE = [
    ("GET", "/v1/stations", "/v1/stations", None, (401, 200, 200, 403, 200)),
    ("GET", "/v1/datasets", "/v1/datasets", None, (401, 200, 200, 403, 200)),
    ("GET", "/v1/datasets/{identifier}", "/v1/datasets/obslink:S1/surface", None,
     (401, 200, 200, 403, 200)),
    ("GET", "/v1/datasets/{identifier}", "/v1/datasets/obslink:S2/surface", None,
     (401, 404, 404, 403, 200)),
    ("PATCH", "/v1/datasets/{identifier}", "/v1/datasets/obslink:S1/surface",
     {"title": "S1 AWS"}, (401, 200, 403, 403, 200)),
    ("PATCH", "/v1/datasets/{identifier}", "/v1/datasets/obslink:S2/surface",
     {"title": "S2 AWS"}, (401, 404, 403, 403, 200)),
    ("GET", "/v1/observations", "/v1/observations?limit=5", None, (401, 200, 200, 403, 200)),
    ("GET", "/v1/provenance/{identifier}", "/v1/provenance/obslink:S1/e1/1", None,
     (401, 200, 200, 403, 200)),
    ("GET", "/v1/provenance/{identifier}", "/v1/provenance/obslink:S2/e1/1", None,
     (401, 404, 404, 403, 200)),
    ("GET", "/v1/log/tree-heads", "/v1/log/tree-heads", None, (401, 200, 200, 403, 200)),
    ("GET", "/v1/log/inclusion", "/v1/log/inclusion?index=0&size=1", None,
     (401, 200, 200, 403, 200)),
    ("GET", "/v1/log/consistency", "/v1/log/consistency?old=1&new=2", None,
     (401, 200, 200, 403, 200)),
    ("GET", "/v1/products", "/v1/products", None, (401, 200, 200, 403, 200)),
    ("GET", "/v1/products/{identifier}", "/v1/products/obslink:S1/e1/p1", None,
     (401, 404, 404, 403, 404)),
    ("GET", "/v1/products/{identifier}/data", "/v1/products/obslink:S1/e1/p1/data", None,
     (401, 404, 404, 403, 404)),
    ("GET", "/v1/monitor/network", "/v1/monitor/network", None, (401, 200, 403, 403, 200)),
    ("GET", "/v1/monitor/stations/{station}", "/v1/monitor/stations/S1", None,
     (401, 200, 403, 403, 200)),
    ("GET", "/v1/monitor/stations/{station}", "/v1/monitor/stations/S2", None,
     (401, 404, 403, 403, 200)),
    ("GET", "/v1/alarms", "/v1/alarms", None, (401, 200, 403, 403, 200)),
    ("POST", "/v1/alarms/{alarm_id}/acknowledge", "/v1/alarms/1/acknowledge", {},
     (401, 200, 403, 403, 200)),
    ("POST", "/v1/alarms/{alarm_id}/acknowledge", "/v1/alarms/2/acknowledge", {},
     (401, 404, 403, 403, 200)),
    ("GET", "/v1/alarms/{alarm_id}/deliveries", "/v1/alarms/1/deliveries", None,
     (401, 200, 403, 403, 200)),
    ("GET", "/dashboard", "/dashboard", None, (401, 200, 403, 403, 200)),
    ("GET", "/dashboard/stations/{station}", "/dashboard/stations/S1", None,
     (401, 200, 403, 403, 200)),
    ("GET", "/dashboard/stations/{station}", "/dashboard/stations/S2", None,
     (401, 404, 403, 403, 200)),
    ("GET", "/metrics", "/metrics", None, (401, 403, 403, 403, 200)),
    ("GET", "/v1/me", "/v1/me", None, (401, 200, 200, 200, 200)),
    ("GET", "/v1/accounts", "/v1/accounts", None, (401, 403, 403, 403, 200)),
    ("POST", "/v1/accounts", "/v1/accounts",
     {"name": "svc-portal", "role": "data-user", "kind": "service"}, (401, 403, 403, 403, 201)),
    ("GET", "/v1/accounts/{name}", "/v1/accounts/dora", None, (401, 403, 403, 403, 200)),
    ("PATCH", "/v1/accounts/{name}", "/v1/accounts/svc-portal", {"clearance": "internal"},
     (401, 403, 403, 403, 200)),
    ("POST", "/v1/accounts/{name}/tokens", "/v1/accounts/svc-portal/tokens",
     {"valid_days": 30}, (401, 403, 403, 403, 201)),
    ("POST", "/v1/tokens/{token_id}/revoke", "/v1/tokens/{spare}/revoke", None,
     (401, 403, 403, 403, 200)),
    ("GET", "/v1/blacklist", "/v1/blacklist", None, (401, 403, 403, 403, 200)),
    ("POST", "/v1/blacklist", "/v1/blacklist", {"network": "192.0.2.0/24"},
     (401, 403, 403, 403, 201)),
    ("DELETE", "/v1/blacklist/{network}", "/v1/blacklist/192.0.2.0/24", None,
     (401, 403, 403, 403, 200)),
    ("GET", "/v1/audit", "/v1/audit?limit=5", None, (401, 403, 403, 200, 200)),
    ("GET", "/v1/audit/verify", "/v1/audit/verify", None, (401, 403, 403, 200, 200)),
    ("GET", "/v1/audit/outflow", "/v1/audit/outflow", None, (401, 403, 403, 200, 200)),
    ("POST", "/v1/enrol", "/v1/enrol", {"token": "not-a-token", "public_key": "00" * 32},
     (403, 403, 403, 403, 403)),
    ("GET", "/login", "/login", None, (200, 200, 200, 200, 200)),
    ("POST", "/logout", "/logout", None, (303, 303, 303, 303, 303)),
    ("GET", "/openapi.json", "/openapi.json", None, (200, 200, 200, 200, 200)),
    ("GET", "/docs", "/docs", None, (200, 200, 200, 200, 200)),
    ("GET", "/docs/oauth2-redirect", "/docs/oauth2-redirect", None, (200, 200, 200, 200, 200)),
    ("GET", "/redoc", "/redoc", None, (200, 200, 200, 200, 200)),
]
# routes the table leaves out, and why
NOT_IN_TABLE = {("POST", "/login"): "test_a_browser_session_is_safe_from_other_sites"}


def app_routes() -> set[tuple[str, str]]:
    """Every (method, path) the collector's HTTP API serves, from the app itself."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from obslink.server.http_api import create_app

    app = create_app("unused.db", "mqtt://x", Ed25519PrivateKey.generate().public_key(),
                     X25519PrivateKey.generate().public_key())
    def walk(routes):
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's included router
                yield from walk(route.original_router.routes)
            else:
                yield route
    return {(method, route.path.replace(":path", "")) for route in walk(app.routes)
            for method in getattr(route, "methods", ()) or () if method != "HEAD"}


def test_the_table_names_every_route_of_the_api():
    assert {(method, route) for method, route, *_ in TABLE} | set(NOT_IN_TABLE) == \
        app_routes()


def test_every_endpoint_answers_every_role_as_the_table_says(centre):
    url, catalog, tokens = centre
    spare = issue_token(catalog, "dora", (), None)[0]["id"]
    wrong = []
    for method, _route, path, body, statuses in TABLE:
        for role, expected in zip(ROLES, statuses):
            answer = call(url, tokens.get(role), method, path.format(spare=spare), body)
            if answer.status_code != expected:
                wrong.append(f"{role} {method} {path}: {answer.status_code}, expected "
                             f"{expected}: {answer.text[:200]}")
    assert not wrong, "\n".join(wrong)


def test_an_account_not_cleared_for_a_dataset_cannot_learn_that_it_exists(centre):
    url, catalog, tokens = centre
    dora = tokens["data-user"]

    def seen(token):
        stations = {s["id"] for s in call(url, token, "GET", "/v1/stations").json()}
        datasets = {d["id"] for d in call(url, token, "GET", "/v1/datasets").json()["features"]}
        rows = call(url, token, "GET", "/v1/observations?f=csv").text.splitlines()[1:]
        paged = call(url, token, "GET", "/v1/observations?limit=1000").json()["observations"]
        return (stations, {d.rsplit(":", 1)[-1].split(".")[0] for d in datasets},
                {row.split(",")[1] for row in rows}, {row["station"] for row in paged})

    assert seen(dora) == ({"S1"}, {"S1"}, {"S1"}, {"S1"})
    assert seen(tokens["administrator"]) == ({"S1", "S2"},) * 4
    # what a hidden record answers is what an unknown one answers, word for word
    for hidden, unknown in (("/v1/provenance/obslink:S2/e1/1", "/v1/provenance/obslink:S9/e1/1"),
                            ("/v1/datasets/obslink:S2/surface", "/v1/datasets/obslink:S9/surface"),
                            ("/v1/monitor/stations/S2", "/v1/monitor/stations/S9")):
        token = dora if "monitor" not in hidden else tokens["operator"]
        first, second = call(url, token, "GET", hidden), call(url, token, "GET", unknown)
        assert (first.status_code, first.json()["detail"].replace("S2", "S9")) == \
            (second.status_code, second.json()["detail"]), (first.text, second.text)
    # monitoring leaves S2 out for the operator (cleared for internal data), its network
    # totals too
    for token, stations in ((tokens["operator"], ["S1"]),
                            (tokens["administrator"], ["S1", "S2"])):
        network = call(url, token, "GET", "/v1/monitor/network").json()
        assert [entry["station"] for entry in network["stations"]] == stations
        assert network["network"]["stations"] == len(stations)
        alarms = call(url, token, "GET", "/v1/alarms").json()
        assert sorted(alarm["station"] for alarm in alarms) == stations
    # cleared, she sees S2 from her next request on
    run_cli("account", "update", "dora", "--clearance", "restricted", "--db", catalog.location)
    assert seen(dora) == ({"S1", "S2"},) * 4


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "obslink", *map(str, args)],
                            capture_output=True, text=True, timeout=120)
    assert not check or result.returncode == 0, result.stderr
    return result


def test_every_request_is_one_audit_row_with_what_it_released(centre):
    url, catalog, tokens = centre
    before = len(list(catalog.audit_rows()))
    dora = tokens["data-user"]
    csv = call(url, dora, "GET", "/v1/observations?f=csv")
    requests_made = [csv, call(url, dora, "GET", "/v1/observations?limit=4"),
                     call(url, None, "GET", "/v1/stations"),
                     call(url, dora, "GET", "/v1/audit"),
                     call(url, dora, "GET", "/v1/datasets/obslink:S2/surface"),
                     call(url, "obl_000000000000_" + "x" * 43, "GET", "/v1/stations"),
                     call(url, None, "GET", "/openapi.json")]
    rows = list(catalog.audit_rows())[before:]
    assert [(row["action"], row["status"]) for row in rows] == [
        ("GET /v1/observations", 200), ("GET /v1/observations", 200),
        ("GET /v1/stations", 401), ("GET /v1/audit", 403),
        ("GET /v1/datasets/{identifier}", 404), ("GET /v1/stations", 401),
        ("GET /openapi.json", 200)]
    assert [row["bytes"] for row in rows] == [len(r.content) for r in requests_made]
    streamed = rows[0]
    lines = len(csv.text.splitlines()) - 1
    assert (streamed["account"], streamed["address"], streamed["rows"]) == \
        ("dora", "127.0.0.1", lines)
    assert json.loads(streamed["datasets"]) == {"obslink:S1/surface": lines}
    assert json.loads(rows[1]["datasets"]) == {"obslink:S1/surface": 4}
    assert rows[2]["account"] is None and "log in first" in json.loads(rows[2]["detail"])[
        "refused"]
    # the auditor's outflow report holds exactly what dora was given
    report = call(url, tokens["auditor"], "GET", "/v1/audit/outflow?account=dora").json()
    assert report["outflow"] == [{"account": "dora", "dataset": "obslink:S1/surface",
                                  "requests": 2, "rows": lines + 4,
                                  "bytes": len(csv.content) + len(requests_made[1].content)}]
    outflow = run_cli("audit", "outflow", "--account", "dora", "--json", "--db",
                      catalog.location)
    assert json.loads(outflow.stdout) == report["outflow"]


def test_a_suspended_or_revoked_account_is_refused_at_its_next_request(centre):
    url, catalog, tokens = centre
    dora = tokens["data-user"]
    assert call(url, dora, "GET", "/v1/stations").status_code == 200
    run_cli("account", "suspend", "dora", "--db", catalog.location)
    refused = call(url, dora, "GET", "/v1/stations")
    assert refused.status_code == 403 and "suspended" in refused.text
    run_cli("account", "activate", "dora", "--db", catalog.location)
    assert call(url, dora, "GET", "/v1/stations").status_code == 200
    # an expired token, then the whole account revoked for good
    expired = issue_token(catalog, "dora", (), 1, now_us=now_us() - 5_000_000)[1]
    answer = call(url, expired, "GET", "/v1/stations")
    assert answer.status_code == 401 and "expired" in answer.text
    run_cli("account", "revoke", "dora", "--db", catalog.location)
    answer = call(url, dora, "GET", "/v1/stations")
    assert answer.status_code == 401 and "revoked" in answer.text
    again = run_cli("account", "activate", "dora", "--db", catalog.location, check=False)
    assert again.returncode == 2 and "revoked for good" in again.stderr
    # every change is in the audit log, with who made it
    actions = [(row["account"], row["action"]) for row in catalog.audit_rows()
               if row["action"].startswith("obslink account")]
    assert [action for _, action in actions] == [
        "obslink account suspend", "obslink account activate", "obslink account revoke"]
    assert all(account.startswith("cli:") for account, _ in actions)


def get_from(address: str, url: str, path: str, token: str) -> tuple[int, dict]:
    """A GET sent from a loopback address of our choosing (each 127.x is one)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30,
                                            source_address=(address, 0))
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        answer = connection.getresponse()
        answer.read()
        return answer.status, {name.lower(): value for name, value in answer.getheaders()}
    finally:
        connection.close()


def test_token_guessing_is_limited_per_address(centre):
    from obslink.server.http_access import MAX_FAILURES

    url, _, tokens = centre
    dora = tokens["data-user"]
    for attempt in range(MAX_FAILURES):
        guess = f"obl_{dora[4:16]}_{attempt:043d}"  # her token's id, a wrong secret
        assert get_from("127.0.0.2", url, "/v1/stations", guess)[0] == 401
    # from then on that address is refused even with the right token, and told when to
    # come back; another address is not
    status, headers = get_from("127.0.0.2", url, "/v1/stations", dora)
    assert status == 429 and 0 < int(headers["retry-after"]) <= 15 * 60
    assert get_from("127.0.0.3", url, "/v1/stations", dora)[0] == 200


def test_a_browser_session_is_safe_from_other_sites(centre):
    url, catalog, tokens = centre
    browser = requests.Session()
    assert browser.post(f"{url}/login", data={"token": "wrong"},
                        allow_redirects=False).status_code == 401
    elsewhere = browser.post(f"{url}/login", data={"token": tokens["operator"]},
                             headers={"Origin": "http://evil.example"}, allow_redirects=False)
    assert elsewhere.status_code == 403 and "obslink_session" not in browser.cookies
    login = browser.post(f"{url}/login", data={"token": tokens["operator"], "next": "/v1/me"},
                         allow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/v1/me"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert browser.get(f"{url}/v1/me").json()["via"] == "session"
    # a change on the cookie alone (what another site's form could send) is refused
    change = browser.patch(f"{url}/v1/datasets/obslink:S1/surface", json={"title": "x"})
    assert change.status_code == 403 and "x-csrf-token" in change.text
    assert catalog.dataset("obslink:S1/surface")["title"] != "x"
    # the page's own script, which can read /v1/me, sends the session's CSRF token
    csrf = browser.get(f"{url}/v1/me").json()["csrf_token"]
    assert browser.patch(f"{url}/v1/datasets/obslink:S1/surface", json={"title": "x"},
                         headers={"X-CSRF-Token": csrf}).status_code == 200
    assert browser.post(f"{url}/logout", allow_redirects=False).status_code == 303
    assert browser.get(f"{url}/v1/me").status_code == 401


def test_a_tampered_audit_row_is_found(centre):
    url, catalog, tokens = centre
    for _ in range(4):
        call(url, tokens["data-user"], "GET", "/v1/stations")
    intact = run_cli("audit", "verify", "--db", catalog.location)
    head = intact.stdout.split("head ")[1].split()[0]
    assert "intact: 4 rows" in intact.stdout
    with pytest.raises(Exception, match="append-only"):
        catalog.conn.execute("UPDATE audit_log SET rows = 7 WHERE seq = 2")
    postgres = "://" in str(catalog.location)
    catalog.conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"
                         if postgres else "DROP TRIGGER audit_log_no_update")
    catalog.conn.execute("UPDATE audit_log SET rows = 7 WHERE seq = 2")
    edited = run_cli("audit", "verify", "--db", catalog.location, check=False)
    assert edited.returncode == 1
    assert "audit row 2: its content does not match its hash" in edited.stderr
    assert call(url, tokens["auditor"], "GET", "/v1/audit/verify").json()["problems"] == [
        "audit row 2: its content does not match its hash (the row was edited)"]
    if not postgres:
        catalog.conn.execute("DROP TRIGGER audit_log_no_delete")
    catalog.conn.execute("DELETE FROM audit_log WHERE seq = 3")
    deleted = run_cli("audit", "verify", "--db", catalog.location, check=False)
    assert "audit row 4: rows 3 to 3 are missing" in deleted.stderr, deleted.stderr
    # rows cut from the end: only the head kept elsewhere shows it
    catalog.conn.execute("DELETE FROM audit_log WHERE seq >= ?", (int(head.split(":")[0]),))
    cut = run_cli("audit", "verify", "--expect", head, "--db", catalog.location, check=False)
    assert cut.returncode == 1 and "the head kept earlier is gone" in cut.stderr, cut.stderr


def test_requests_at_once_each_leave_one_row_and_the_chain_holds(centre):
    from concurrent.futures import ThreadPoolExecutor

    url, catalog, tokens = centre
    before = len(list(catalog.audit_rows()))
    paths = ["/v1/stations", "/v1/observations?limit=7", "/v1/observations?f=csv",
             "/v1/datasets", "/v1/provenance/obslink:S1/e1/2"] * 12
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(
            lambda path: call(url, tokens["data-user"], "GET", path).status_code, paths))
    assert statuses == [200] * len(paths)
    rows = list(catalog.audit_rows())
    assert len(rows) == before + len(paths)
    verified = run_cli("audit", "verify", "--db", catalog.location)
    assert f"intact: {len(rows)} rows" in verified.stdout


def test_a_blacklisted_network_is_refused_everything(centre):
    url, catalog, tokens = centre
    bad = run_cli("account", "blacklist", "--add", "127.0.0.999", "--db", catalog.location,
                  check=False)
    assert bad.returncode == 2 and "'127.0.0.999' is not an address or a network" in bad.stderr
    listed = run_cli("account", "blacklist", "--add", "127.0.0.4/31", "--reason", "scanner",
                     "--db", catalog.location)
    assert "127.0.0.4/31" in listed.stdout
    status, _ = get_from("127.0.0.5", url, "/v1/stations", tokens["administrator"])
    assert status == 403
    assert get_from("127.0.0.6", url, "/v1/stations", tokens["administrator"])[0] == 200
    run_cli("account", "blacklist", "--remove", "127.0.0.4/31", "--db", catalog.location)
    assert get_from("127.0.0.5", url, "/v1/stations", tokens["administrator"])[0] == 200
