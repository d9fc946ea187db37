"""Access control: open on loopback by default; a token (header or cookie) or basic auth when configured."""

from __future__ import annotations

import base64

import httpx
import pytest

from view.auth import COOKIE

pytestmark = pytest.mark.integration


def _basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_no_auth_configured_means_open(view) -> None:
    assert httpx.get(f"{view.url}/api/cameras").status_code == 200


def test_token(serve) -> None:
    server = serve(view_token="tok-123")
    url = server.url
    for path in ("/", "/api/cameras", "/img/preview?camera=c", "/static/common.js", "/api/events"):
        reply = httpx.get(url + path)
        assert reply.status_code == 401, path
        assert "www-authenticate" not in reply.headers  # no basic auth configured: no browser prompt
    assert httpx.get(f"{url}/api/cameras", headers={"authorization": "Bearer tok-123"}).status_code == 200
    assert httpx.get(f"{url}/api/cameras", headers={"authorization": "Bearer tok-124"}).status_code == 401
    assert httpx.get(f"{url}/api/cameras?token=wrong").status_code == 401
    assert httpx.get(f"{url}/healthz").status_code in (200, 503)  # liveness stays open


def test_token_in_the_address_becomes_a_cookie(serve) -> None:
    server = serve(view_token="tok-123")
    with httpx.Client(base_url=server.url) as client:
        first = client.get("/camera", params={"id": "cam-1", "token": "tok-123"})
        assert first.status_code == 303 and first.headers["location"] == "/camera?id=cam-1"  # token leaves the URL
        set_cookie = first.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "tok-123" not in set_cookie
        assert client.get("/api/cameras").status_code == 200  # the cookie carries on
    assert httpx.get(f"{server.url}/api/cameras", cookies={COOKIE: "forged"}).status_code == 401


def test_basic_auth_and_feedback_user(serve, redis_client, redis_prefix) -> None:
    server = serve(view_basic_user="qa", view_basic_password="pa:ss")
    refused = httpx.get(f"{server.url}/")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(f"{server.url}/", headers=_basic("qa", "wrong")).status_code == 401
    assert httpx.get(f"{server.url}/", headers={"authorization": "Basic !!notbase64"}).status_code == 401
    assert httpx.get(f"{server.url}/", headers=_basic("qa", "pa:ss")).status_code == 200
    config = httpx.get(f"{server.url}/api/config", headers=_basic("qa", "pa:ss")).json()
    assert config["user"] == "qa"
    # The signed-in user is recorded, whatever name the page sends.
    reply = httpx.post(f"{server.url}/api/feedback", headers=_basic("qa", "pa:ss"),
                       json={"camera": "c", "frame_id": "0-1", "verdict": "confirmed", "user": "someone-else"})
    assert reply.status_code == 201
    [(_, entry)] = redis_client.xrange(f"{redis_prefix}:feedback")
    assert entry[b"user"] == b"qa"


def test_every_response_is_hardened(serve) -> None:
    server = serve(view_token="t")
    for reply in (httpx.get(f"{server.url}/"), httpx.get(f"{server.url}/?token=t")):
        assert reply.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
