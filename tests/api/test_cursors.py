from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.cursors import decode_cursor, encode_cursor
from domain.errors import InvalidValueError


@given(st.text(max_size=50), st.integers(min_value=-(2**53), max_value=2**53))
def test_a_cursor_round_trips(text: str, number: int) -> None:
    assert decode_cursor(encode_cursor(text, number), str, int) == [text, number]


@given(st.text(max_size=200))
def test_any_other_text_is_refused_or_decoded_never_crashes(cursor: str) -> None:
    with contextlib.suppress(InvalidValueError):
        decode_cursor(cursor, str, int)


@pytest.mark.parametrize(
    "cursor",
    ["", "!!", "bm90IGpzb24", encode_cursor("a"), encode_cursor(1, "a"), encode_cursor(True, 1)],
)
def test_malformed_cursors_are_invalid_values(cursor: str) -> None:
    with pytest.raises(InvalidValueError, match="not a cursor"):
        decode_cursor(cursor, str, int)
