"""The `filters` query: both client shapes, unknown keys refused, label rules."""

from __future__ import annotations

import pytest
from labagent.api.filters import parse_filters
from labagent.errors import BadParameter


def test_list_and_map_shapes_mean_the_same() -> None:
    a = parse_filters('{"label": ["x=1", "y"]}', ["label"])
    b = parse_filters('{"label": {"x=1": true, "y": true, "z": false}}', ["label"])
    assert a.get("label") == b.get("label") == ["x=1", "y"]


def test_unknown_keys_and_bad_values_are_refused() -> None:
    with pytest.raises(BadParameter, match="invalid filter 'nope'"):
        parse_filters('{"nope": ["1"]}', ["label"])
    with pytest.raises(BadParameter):
        parse_filters('{"label": [1]}', ["label"])
    with pytest.raises(BadParameter):
        parse_filters("[1]", ["label"])
    with pytest.raises(BadParameter):
        parse_filters("{" * 10, ["label"])


def test_labels_match_keys_and_values() -> None:
    f = parse_filters('{"label": ["app", "tier=web"]}', ["label"])
    assert f.labels_match({"app": "x", "tier": "web"})
    assert not f.labels_match({"app": "x", "tier": "db"})
    assert not f.labels_match({"tier": "web"})


def test_flags_and_single_values() -> None:
    f = parse_filters('{"dangling": ["true"]}', ["dangling"])
    assert f.flag("dangling") is True
    assert parse_filters("", ["dangling"]).flag("dangling") is None
    with pytest.raises(BadParameter):
        parse_filters('{"dangling": ["maybe"]}', ["dangling"]).flag("dangling")
