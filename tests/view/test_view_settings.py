"""The view's settings: safe defaults, secrets hidden, incomplete auth refused, --help."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from view.server import main
from view.settings import ViewSettings


def test_defaults_bind_loopback_without_auth() -> None:
    settings = ViewSettings()
    assert settings.view_host == "127.0.0.1" and not settings.auth_enabled and not settings.exposed_without_auth
    assert ViewSettings(view_host="0.0.0.0").exposed_without_auth
    assert not ViewSettings(view_host="0.0.0.0", view_token="t0ken").exposed_without_auth


def test_secrets_do_not_print() -> None:
    settings = ViewSettings(view_token="s3cret-token", view_basic_user="qa", view_basic_password="s3cret-pw")
    text = repr(settings) + str(settings.model_dump())
    assert "s3cret" not in text
    assert settings.view_token.get_secret_value() == "s3cret-token"


def test_secrets_from_files(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("from-a-file")
    (tmp_path / "pw").write_text("pw-from-a-file")
    monkeypatch.setenv("LW_VIEW_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("LW_VIEW_BASIC_USER", "qa")
    monkeypatch.setenv("LW_VIEW_BASIC_PASSWORD_FILE", str(tmp_path / "pw"))
    settings = ViewSettings()
    assert settings.view_token.get_secret_value() == "from-a-file"
    assert settings.view_basic_password.get_secret_value() == "pw-from-a-file"


def test_basic_auth_needs_user_and_password() -> None:
    with pytest.raises(ValidationError, match="go together"):
        ViewSettings(view_basic_user="qa")
    with pytest.raises(ValidationError, match="go together"):
        ViewSettings(view_basic_password="pw")


def test_environment_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_VIEW_PORT", "9999")
    monkeypatch.setenv("LW_VIEW_STALE_S", "2.5")
    settings = ViewSettings()
    assert settings.view_port == 9999 and settings.view_stale_s == 2.5
    with pytest.raises(ValidationError):
        ViewSettings(view_push_ms=10)  # below 50 ms the browser would be flooded


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "linewatch-view" in out and "--port" in out and "LW_VIEW_HOST" in out


def test_a_misspelt_variable_stops_start_up(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LW_VIEW_PROT", "1")
    assert main([]) == 2
    assert "LW_VIEW_PROT" in capsys.readouterr().err
