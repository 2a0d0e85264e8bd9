"""Who gets a confirmed ticket, by when, and how long a fix must hold.

The dispatch file (``settings.dispatch_file``, YAML or JSON) maps category
and area to a department or grid team::

    rules:
      - {category: illegal_parking, area: old-town, assignee: traffic-police}
      - {category: "*", area: old-town/riverside, assignee: riverside-grid-team}
    deadlines_h: {illegal_parking: 2, garbage: 24, "*": 48}
    clear_s: {illegal_parking: 120}

A ticket goes to the rule with the most specific area that covers the
ticket's area; at equal areas a rule naming the category beats ``*``. No
matching rule leaves the ticket confirmed for a dispatcher to assign.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.areas import check_area_path, covers
from vision.errors import ConfigError

ANY_CATEGORY = "*"


class DispatchRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str = Field(description="A category, or '*' for every category.")
    area: str = Field(description="Area path the rule covers (and below); '' all.")
    assignee: str = Field(min_length=1, max_length=255)

    @field_validator("area")
    @classmethod
    def _area(cls, value: str) -> str:
        return check_area_path(value)


class DispatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[DispatchRule] = Field(default_factory=list)
    deadlines_h: dict[str, float] = Field(
        default_factory=dict,
        description="Hours from dispatch to resolution, per category or '*'.",
    )
    clear_s: dict[str, float] = Field(
        default_factory=dict,
        description="Stream seconds a fixed place must stay clear, per category.",
    )

    def assignee_for(self, category: str, area_path: str) -> str | None:
        matching = [
            rule
            for rule in self.rules
            if rule.category in (category, ANY_CATEGORY)
            and covers(rule.area, area_path)
        ]
        if not matching:
            return None
        best = max(
            matching,
            key=lambda rule: (len(rule.area), rule.category != ANY_CATEGORY),
        )
        return best.assignee

    def deadline_for(self, category: str) -> timedelta | None:
        hours = self.deadlines_h.get(category, self.deadlines_h.get(ANY_CATEGORY))
        return None if hours is None else timedelta(hours=hours)

    def clear_s_for(self, category: str, default_s: float) -> float:
        return self.clear_s.get(category, self.clear_s.get(ANY_CATEGORY, default_s))


def load_dispatch_config(path: Path | None) -> DispatchConfig:
    """The dispatch file's rules; no file means no rules (manual dispatch)."""
    if path is None:
        return DispatchConfig()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"dispatch file {path}: cannot read it: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return DispatchConfig.model_validate(data or {})
    except (ValueError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"dispatch file {path}: {exc}") from exc
