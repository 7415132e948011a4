"""Unit tests of the configurable near-expiry discount ladder (rules and settings, no services)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from smart_shelf_platform.rules.allocation import LotStock
from smart_shelf_platform.rules.expiry import (
    DEFAULT_DISCOUNT_LADDER, daily_discount, parse_discount_ladder,
)
from smart_shelf_platform.settings import Settings

TODAY = date(2026, 1, 10)


def test_the_setting_parses_into_days_to_expiry_and_fractions():
    assert parse_discount_ladder("0:0.50,1:0.30") == DEFAULT_DISCOUNT_LADDER
    assert parse_discount_ladder(" 2:0.1 , 0:0.6,1:0.25 ") == {0: 0.6, 1: 0.25, 2: 0.1}
    assert parse_discount_ladder("0:0.95,") == {0: 0.95}  # a trailing comma is harmless


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    (" , ", "empty"),
    ("0-0.5", "'0-0.5' is not days:fraction"),
    ("0:half", "'0:half' is not days:fraction"),
    ("1.5:0.2", "'1.5:0.2' is not days:fraction"),
    ("-1:0.2", "days to expiry must be >= 0"),
    ("0:0", "above 0 and at most 0.95"),
    ("0:0.96", "above 0 and at most 0.95"),
    ("0:nan", "above 0 and at most 0.95"),
    ("0:0.5,0:0.4", "names 0 days to expiry twice"),
])
def test_a_bad_ladder_is_an_error_naming_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_discount_ladder(text)


def test_settings_refuse_a_bad_ladder_from_the_environment(monkeypatch):
    assert parse_discount_ladder(Settings().discount_ladder) == DEFAULT_DISCOUNT_LADDER
    monkeypatch.setenv("SMART_SHELF_DISCOUNT_LADDER", "0:0.40,2:0.10")
    assert parse_discount_ladder(Settings().discount_ladder) == {0: 0.40, 2: 0.10}
    monkeypatch.setenv("SMART_SHELF_DISCOUNT_LADDER", "0:1.5")
    with pytest.raises(ValidationError, match="discount_ladder"):
        Settings()


def test_a_configured_ladder_drives_the_daily_discount():
    ladder = parse_discount_ladder("0:0.40,2:0.10")

    def lot(expiry_in: int) -> LotStock:
        return LotStock("L", TODAY - timedelta(days=3), TODAY + timedelta(days=expiry_in), 4)

    assert daily_discount([lot(0)], TODAY, ladder) == (0.40, 0)
    assert daily_discount([lot(1)], TODAY, ladder) is None  # no step for one day
    assert daily_discount([lot(2)], TODAY, ladder) == (0.10, 2)
