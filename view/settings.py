"""Settings of `linewatch-view`: where it listens, who may look, and how fresh "live" is."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from linewatch.settings import RedisSettings, secret_field
from linewatch.shifts import ShiftSettings

LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ViewSettings(RedisSettings, ShiftSettings):
    """Settings of `linewatch-view`."""

    view_host: str = Field(
        "127.0.0.1", description="Address the view binds; loopback by default, 0.0.0.0 exposes it (set auth then)."
    )
    view_port: int = Field(8090, ge=0, le=65535, description="Port of the view (0: any free port).")
    view_token: SecretStr | None = secret_field(
        None,
        "Access token: open the view once as /?token=<token> (a cookie keeps it) or send "
        "'Authorization: Bearer <token>'. Unset with no basic auth: no login.",
    )
    view_basic_user: str | None = Field(None, description="HTTP basic auth user name (with LW_VIEW_BASIC_PASSWORD).")
    view_basic_password: SecretStr | None = secret_field(None, "HTTP basic auth password.")
    model_root: Path = Field(
        Path("models"),
        description="Model store folder whose line recipes and assignments the /recipes page lists (read-only).",
    )
    view_stale_s: float = Field(10.0, gt=0, description="A camera with no result for this long is shown as STALE.")
    view_push_ms: int = Field(
        250, ge=50, le=5000,
        description="Live updates: the newest state of each camera is sent at most this often (ms); "
        "older states in between are dropped, so a slow browser never falls behind.",
    )
    view_max_cameras: int = Field(64, ge=1, le=1024, description="Most cameras on the wall (most recently active first).")
    view_timeline_minutes: float = Field(10.0, gt=0, le=24 * 60, description="Default span of a camera's score timeline.")
    view_timeline_points: int = Field(
        2000, ge=100, le=50_000,
        description="Most points a timeline returns; normal frames are thinned beyond it, anomalous ones always kept.",
    )
    view_layouts: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Saved station screens, JSON: {"press": ["cam-1", "cam-2"]}; /?layout=press shows those cameras '
        "(/?cameras=cam-1,cam-2 works without a saved layout).",
    )
    view_alerts_kept: int = Field(500, ge=10, le=10_000, description="Newest alerts the review queue considers.")
    view_shadow_frames: int = Field(
        2000, ge=10, le=50_000, description="Shadow page (/shadow): newest shadow entries read per candidate and camera.",
    )
    view_part_search_depth: int = Field(
        5000, ge=100, le=200_000,
        description="Part search (/part): newest history entries searched per camera, read 1000 at a time.",
    )
    view_note_max: int = Field(500, ge=0, le=10_000, description="Longest feedback note accepted, in characters.")
    view_feedback_maxlen: int = Field(
        100_000, ge=1000, description="Approximate length cap of the feedback stream (XADD MAXLEN ~)."
    )

    @model_validator(mode="after")
    def _basic_auth_complete(self) -> "ViewSettings":
        if (self.view_basic_user is None) != (self.view_basic_password is None):
            raise ValueError("LW_VIEW_BASIC_USER and LW_VIEW_BASIC_PASSWORD go together")
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.view_token is not None or self.view_basic_user is not None

    @property
    def exposed_without_auth(self) -> bool:
        return self.view_host not in LOOPBACK and not self.auth_enabled
