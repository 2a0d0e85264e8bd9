"""Areas and roles: a user of grid A cannot see, fetch evidence of, or act on
a ticket of grid B, through any endpoint. The cases are checked against the
app's own route list, documented or not, with its cameras mounted (pushed
frames and clips, camera health, metrics) and its pages, so a new endpoint
fails here until it has its case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Mount

from api import auth, users
from api.access import Role
from api.auth import token_secret
from api.cameras import CameraFleet, camera_files_in
from api.dispatch import DispatchConfig
from api.main import create_app
from api.notify import MemoryNotifier
from api.settings import Settings
from tests.api.builders import make_event, store_evidence
from vision.errors import ConfigError
from vision.evidence.local import LocalDirStore

GRID_A = "old-town/riverside/grid-07"
GRID_B = "old-town/riverside/grid-08"
Headers = dict[str, str]


@dataclass
class World:
    ops: TestClient  # every role on the whole city
    user_a: Headers  # every role on grid A only
    camera_a: Headers
    camera_b: Headers
    ticket_b: int
    frame_jpeg: bytes

    def state_of_b(self) -> str:
        return str(self.ops.get(f"/api/tickets/{self.ticket_b}").json()["state"])

    def bring_b_to(self, state: str) -> None:
        steps = {
            "pending_review": [],
            "confirmed": [("review", {"decision": "confirm"})],
            "dispatched": [
                ("review", {"decision": "confirm"}),
                ("dispatch", {"assignee": "grid-08-team"}),
            ],
            "resolved": [
                ("review", {"decision": "confirm"}),
                ("dispatch", {"assignee": "grid-08-team"}),
                ("resolve", {}),
            ],
            "rejected": [("review", {"decision": "reject", "reason": "other"})],
        }
        for action, body in steps[state]:
            response = self.ops.post(
                f"/api/tickets/{self.ticket_b}/{action}", json=body
            )
            assert response.status_code == 200, response.text


@pytest.fixture
def app(
    settings: Settings,
    store: LocalDirStore,
    session_factory: sessionmaker[Session],
    notifier: MemoryNotifier,
    tmp_path: Path,
) -> FastAPI:
    """The service with a camera in each grid beside it (neither streams;
    both take pushed frames), so the camera routes are mounted too."""
    folder = tmp_path / "cameras"
    folder.mkdir()
    for camera_id, area_path in (("cam-a", GRID_A), ("cam-b", GRID_B)):
        camera = {"camera_id": camera_id, "area_path": area_path}
        (folder / f"{camera_id}.yaml").write_text(yaml.safe_dump(camera))
    fleet = CameraFleet(settings, camera_files_in(folder))
    for camera_id in fleet.cameras:
        fleet.board.mark_offline(camera_id, "not started in this test")
    return create_app(
        settings,
        store=store,
        session_factory=session_factory,
        notifier=notifier,
        dispatch_config=DispatchConfig(),
        cameras=fleet,
    )


@pytest.fixture
def world(
    client: TestClient,
    user_headers: Callable[..., Headers],
    camera_headers: Callable[[str], Headers],
    store: LocalDirStore,
    throw_clip: Path,
    street_photo: Path,
) -> World:
    user_headers("bea", [("reviewer", GRID_B)])  # a user only grid B's admin sees
    event = make_event(camera_id="cam-b", area_path=GRID_B)
    event.evidence = store_evidence(store, event.event_id, throw_clip, street_photo)
    filed = client.post("/api/events", json=event.model_dump(mode="json"))
    return World(
        ops=client,
        user_a=user_headers("amy", [(role, GRID_A) for role in Role]),
        camera_a=camera_headers("cam-a"),
        camera_b=camera_headers("cam-b"),
        ticket_b=int(filed.json()["ticket_id"]),
        frame_jpeg=street_photo.read_bytes(),
    )


def _post(world: World, action: str, body: dict, state: str) -> Callable[[], None]:
    def case() -> None:
        world.bring_b_to(state)
        response = world.ops.post(
            f"/api/tickets/{world.ticket_b}/{action}", json=body, headers=world.user_a
        )
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == "ticket_not_found"
        assert world.state_of_b() == state

    return case


def _list(world: World) -> None:
    response = world.ops.get("/api/tickets", headers=world.user_a)
    assert response.status_code == 200
    assert response.json()["total"] == 0
    narrowed = world.ops.get(
        "/api/tickets", params={"area": GRID_B}, headers=world.user_a
    )
    assert narrowed.json()["items"] == []


def _review_queue(world: World) -> None:
    assert [t["id"] for t in world.ops.get("/api/review-queue").json()["items"]] == [
        world.ticket_b
    ]
    response = world.ops.get("/api/review-queue", headers=world.user_a)
    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "next": None}


def _overview(world: World) -> None:
    assert world.ops.get("/api/overview").json()["tickets"] == 1
    mine = world.ops.get("/api/overview", headers=world.user_a)
    narrowed = world.ops.get(
        "/api/overview", params={"area": GRID_B}, headers=world.user_a
    )
    assert mine.status_code == narrowed.status_code == 200
    assert GRID_B.encode() not in mine.content
    for counted in (mine.json(), narrowed.json()):
        assert counted["tickets"] == counted["open"] == 0
        assert counted["categories"] == counted["cameras"] == counted["attention"]
        assert counted["attention"] == []


def _get(world: World) -> None:
    response = world.ops.get(f"/api/tickets/{world.ticket_b}", headers=world.user_a)
    assert response.status_code == 404
    assert response.json()["detail"] == "ticket_not_found"


def _evidence(world: World) -> None:
    url = f"/api/tickets/{world.ticket_b}/evidence/clip"
    assert world.ops.get(url).status_code == 200  # it is there
    response = world.ops.get(url, headers=world.user_a)
    assert response.status_code == 404
    assert response.json()["detail"] == "ticket_not_found"


def _file_event(world: World) -> None:
    event = make_event(camera_id="cam-b", area_path=GRID_B)
    as_user = world.ops.post(
        "/api/events", json=event.model_dump(mode="json"), headers=world.user_a
    )
    as_camera_a = world.ops.post(
        "/api/events", json=event.model_dump(mode="json"), headers=world.camera_a
    )
    assert (as_user.status_code, as_camera_a.status_code) == (403, 403)
    assert world.ops.get("/api/tickets").json()["total"] == 1


def _event_ticket(world: World) -> None:
    event_id = world.ops.get(f"/api/tickets/{world.ticket_b}").json()["event_id"]
    url = f"/api/events/{event_id}"
    answers = {
        who: world.ops.get(url, headers=headers)
        for who, headers in [
            ("user_a", world.user_a),
            ("camera_a", world.camera_a),
            ("camera_b", world.camera_b),
        ]
    }
    for who in ("user_a", "camera_a"):
        assert answers[who].status_code == 404, who
        assert answers[who].json()["detail"] == "event_not_filed"
    assert answers["camera_b"].json()["ticket_id"] == world.ticket_b  # its own


def _evidence_stored(world: World) -> None:
    event_id = world.ops.get(f"/api/tickets/{world.ticket_b}").json()["event_id"]
    url = f"/api/events/{event_id}/evidence-stored"
    body = {"key": f"{event_id}/clip.mp4"}
    by_user = world.ops.post(url, json=body, headers=world.user_a)
    by_camera_a = world.ops.post(url, json=body, headers=world.camera_a)
    by_camera_b = world.ops.post(url, json=body, headers=world.camera_b)
    assert (by_user.status_code, by_camera_a.status_code) == (403, 404)
    assert by_camera_a.json()["detail"] == "evidence_not_found"
    assert by_camera_b.status_code == 204  # its own, already stored: no change


def _camera_verifications(world: World) -> None:
    world.bring_b_to("resolved")
    assert world.ops.get(
        "/api/cameras/cam-b/verifications", headers=world.camera_b
    ).json()  # cam-b has one to do
    for headers in (world.user_a, world.camera_a):
        response = world.ops.get("/api/cameras/cam-b/verifications", headers=headers)
        assert response.status_code == 403


def _verification_result(world: World) -> None:
    world.bring_b_to("resolved")
    body = {
        "outcome": "gone",
        "evidence_event": make_event(camera_id="cam-a").model_dump(mode="json"),
    }
    url = f"/api/verifications/{world.ticket_b}/result"
    by_user = world.ops.post(url, json=body, headers=world.user_a)
    by_camera_a = world.ops.post(url, json=body, headers=world.camera_a)
    assert by_user.status_code == 403
    assert by_camera_a.status_code == 404
    assert world.state_of_b() == "resolved"


def _users_list(world: World) -> None:
    names = [
        u["username"] for u in world.ops.get("/api/users", headers=world.user_a).json()
    ]
    assert names == ["amy"]  # not bea of grid B, nor ops of the whole city


def _users_create(world: World) -> None:
    body = {"username": "eve", "grants": [{"role": "reviewer", "area_path": GRID_B}]}
    response = world.ops.post("/api/users", json=body, headers=world.user_a)
    assert response.status_code == 403


def _users_grant(world: World) -> None:
    body = {"role": "dispatcher", "area_path": GRID_A}
    response = world.ops.post("/api/users/bea/grants", json=body, headers=world.user_a)
    assert response.status_code == 404
    widen = world.ops.post(
        "/api/users/amy/grants",
        json={"role": "reviewer", "area_path": GRID_B},
        headers=world.user_a,
    )
    assert widen.status_code == 403


def _me(world: World) -> None:
    me = world.ops.get("/api/users/me", headers=world.user_a).json()
    assert me["username"] == "amy"
    assert {g["area_path"] for g in me["grants"]} == {GRID_A}


def _token(world: World) -> None:
    response = world.ops.post(
        "/api/auth/token",
        data={"username": "bea", "password": "not-her-password"},
        headers={"Authorization": ""},
    )
    assert response.status_code == 401


def _health(world: World) -> None:
    assert world.ops.get("/healthz", headers=world.user_a).json()["status"] == "ok"


def _push_frame(world: World) -> None:
    url = "/api/cameras/cam-b/frames?captured_at=2026-05-04T08:30:00Z"
    by_camera_b = world.ops.post(url, content=world.frame_jpeg, headers=world.camera_b)
    assert by_camera_b.status_code == 202, by_camera_b.text  # its own camera
    for headers in (world.user_a, world.camera_a):
        response = world.ops.post(url, content=world.frame_jpeg, headers=headers)
        assert response.status_code == 403
        assert response.json()["detail"] == "forbidden"


def _push_clip(world: World) -> None:
    for headers in (world.user_a, world.camera_a):
        response = world.ops.post(
            "/api/cameras/cam-b/clips", content=b"\0" * 1024, headers=headers
        )
        assert response.status_code == 403
        assert response.json()["detail"] == "forbidden"


def _camera_health(world: World) -> None:
    def seen(headers: Headers) -> list[str]:
        statuses = world.ops.get("/api/health/cameras", headers=headers).json()
        return [status["camera_id"] for status in statuses]

    assert seen({}) == ["cam-a", "cam-b"]  # the whole city
    assert seen(world.user_a) == seen(world.camera_a) == ["cam-a"]


def _metrics(world: World) -> None:
    # Prometheus scrapes without credentials: per-camera counters only, no
    # ticket, evidence or area.
    body = world.ops.get("/metrics/", headers=world.user_a).text
    assert "citywatch_camera_tickets_filed_total" in body
    assert GRID_B not in body and "ticket_id" not in body
    assert f"/api/tickets/{world.ticket_b}" not in body


def _same_for_everyone(path: str) -> Callable[[World], None]:
    """A page or document with no data of its own: a user of grid A gets the
    very bytes a user of the whole city gets, and nothing of grid B."""

    def case(world: World) -> None:
        url = path.format(ticket_id=world.ticket_b, name="ticket.js")
        as_user_a = world.ops.get(url, headers=world.user_a)
        as_ops = world.ops.get(url)
        assert as_user_a.status_code == as_ops.status_code == 200
        assert as_user_a.content == as_ops.content
        assert GRID_B.encode() not in as_user_a.content

    return case


CASES: dict[tuple[str, str], Callable[[World], None]] = {
    ("get", "/api/tickets"): _list,
    ("get", "/api/review-queue"): _review_queue,
    ("get", "/api/overview"): _overview,
    ("get", "/api/tickets/{ticket_id}"): _get,
    ("get", "/api/tickets/{ticket_id}/evidence/{kind}"): _evidence,
    ("post", "/api/tickets/{ticket_id}/review"): lambda w: _post(
        w, "review", {"decision": "confirm"}, "pending_review"
    )(),
    ("post", "/api/tickets/{ticket_id}/dispatch"): lambda w: _post(
        w, "dispatch", {"assignee": "grid-07-team"}, "confirmed"
    )(),
    ("post", "/api/tickets/{ticket_id}/assign"): lambda w: _post(
        w, "assign", {"assignee": "grid-07-team"}, "dispatched"
    )(),
    ("post", "/api/tickets/{ticket_id}/resolve"): lambda w: _post(
        w, "resolve", {}, "dispatched"
    )(),
    ("post", "/api/tickets/{ticket_id}/close"): lambda w: _post(
        w, "close", {}, "rejected"
    )(),
    ("post", "/api/tickets/{ticket_id}/reopen"): lambda w: _post(
        w, "reopen", {}, "rejected"
    )(),
    ("post", "/api/events"): _file_event,
    ("get", "/api/events/{event_id}"): _event_ticket,
    ("post", "/api/events/{event_id}/evidence-stored"): _evidence_stored,
    ("get", "/api/cameras/{camera_id}/verifications"): _camera_verifications,
    ("post", "/api/verifications/{ticket_id}/result"): _verification_result,
    ("get", "/api/users"): _users_list,
    ("post", "/api/users"): _users_create,
    ("post", "/api/users/{username}/grants"): _users_grant,
    ("get", "/api/users/me"): _me,
    ("post", "/api/auth/token"): _token,
    ("get", "/healthz"): _health,
    ("post", "/api/cameras/{camera_id}/frames"): _push_frame,
    ("post", "/api/cameras/{camera_id}/clips"): _push_clip,
    ("get", "/api/health/cameras"): _camera_health,
    ("mount", "/metrics"): _metrics,
}
# The pages and the API's documentation: the pages fetch their data from
# the API with the signed-in user's token.
STATIC = [
    "/ui",
    "/ui/",
    "/ui/signin",
    "/ui/queue",
    "/ui/tickets/{ticket_id}",
    "/ui/overview",
    "/ui/static/{name}",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
]
CASES |= {("get", path): _same_for_everyone(path) for path in STATIC}
# Sign-in, health, metrics, pages and docs need no credentials; all else does.
PUBLIC = {
    ("post", "/api/auth/token"),
    ("get", "/healthz"),
    ("mount", "/metrics"),
    *(("get", path) for path in STATIC),
}


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every route the app answers, in its schema or not; a mounted app (the
    metrics) as ``("mount", path)``."""
    found = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            found.add(("mount", str(route.path)))
        else:
            methods = (route.methods or set()) - {"HEAD"}
            found |= {(method.lower(), str(route.path)) for method in methods}
    return found


def test_every_endpoint_has_an_area_case(app: FastAPI) -> None:
    assert _routes(app) == set(CASES)


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1]}")
def test_grid_a_user_cannot_reach_grid_b(world: World, route: tuple[str, str]) -> None:
    CASES[route](world)


@pytest.mark.parametrize(
    "route", sorted(set(CASES) - PUBLIC), ids=lambda r: f"{r[0]} {r[1]}"
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-jwt"}, {"X-API-Key": "cwk_nope_nope"}],
    ids=["none", "bad-token", "bad-key"],
)
def test_every_endpoint_needs_credentials(
    anonymous: TestClient, route: tuple[str, str], headers: Headers
) -> None:
    method, path = route
    url = (
        path.replace("{ticket_id}", "1")
        .replace("{kind}", "clip")
        .replace("{camera_id}", "cam-a")
        .replace("{username}", "amy")
        .replace("{event_id}", "ev-1")
    )
    response = anonymous.request(method, url, headers=headers, json={})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"


def test_password_sign_in_gives_a_working_token(
    anonymous: TestClient, client: TestClient
) -> None:
    created = client.post(
        "/api/users",
        json={
            "username": "gwen",
            "password": "correct horse battery",
            "grants": [{"role": "grid_worker", "area_path": GRID_A}],
        },
    )
    assert created.status_code == 201, created.text
    again = client.post(
        "/api/users",
        json={"username": "gwen", "grants": [{"role": "reviewer", "area_path": ""}]},
    )
    assert again.status_code == 409

    signed_in = anonymous.post(
        "/api/auth/token",
        data={"username": "gwen", "password": "correct horse battery"},
    )
    assert signed_in.status_code == 200
    token = signed_in.json()["access_token"]
    me = anonymous.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["grants"] == [{"role": "grid_worker", "area_path": GRID_A}]


def test_a_grant_above_covers_everything_below(
    client: TestClient, user_headers: Callable[..., Headers]
) -> None:
    for area in (GRID_A, GRID_B, "new-town/grid-01", "old-townhall"):
        client.post(
            "/api/events", json=make_event(area_path=area).model_dump(mode="json")
        )
    office = user_headers("otto", [("read_only", "old-town")])

    listed = client.get("/api/tickets", headers=office).json()["items"]

    assert sorted(t["area_path"] for t in listed) == [GRID_A, GRID_B]


def test_an_integration_key_acts_as_its_user_until_revoked(
    anonymous: TestClient,
    client: TestClient,
    user_headers: Callable[..., Headers],
    session_factory: sessionmaker[Session],
) -> None:
    for area in (GRID_A, GRID_B):
        client.post(
            "/api/events", json=make_event(area_path=area).model_dump(mode="json")
        )
    user_headers("ivy", [("read_only", GRID_A)])
    with session_factory() as session:
        key = auth.create_api_key(
            session, name="grid dashboard", user=users.get_user(session, "ivy")
        )
    headers = {"X-API-Key": key}

    listed = anonymous.get("/api/tickets", headers=headers).json()["items"]
    confirm = anonymous.post(
        f"/api/tickets/{listed[0]['id']}/review",
        json={"decision": "confirm"},
        headers=headers,
    )
    with session_factory() as session:
        auth.revoke_api_key(session, key)
    revoked = anonymous.get("/api/tickets", headers=headers)

    assert [t["area_path"] for t in listed] == [GRID_A]
    assert confirm.status_code == 403  # read-only, like its user
    assert revoked.status_code == 401
    assert revoked.json()["detail"] == "not_authenticated"


def test_token_secret_is_kept_per_data_dir_in_development(tmp_path: Path) -> None:
    first = token_secret(Settings(data_dir=tmp_path))
    again = token_secret(Settings(data_dir=tmp_path))
    other = token_secret(Settings(data_dir=tmp_path / "other"))

    assert first == again != other
    assert len(first) >= 32
    assert (tmp_path / "token_secret").stat().st_mode & 0o077 == 0


def test_production_refuses_to_start_without_a_token_secret() -> None:
    from api.settings import load_settings

    with pytest.raises(ConfigError, match="token_secret is required"):
        load_settings(environment="production")
    settings = load_settings(environment="production", token_secret="x" * 40)
    assert token_secret(settings) == "x" * 40
