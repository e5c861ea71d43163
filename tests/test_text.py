"""Contract tests of text.py: the one table formatter and the folder-name slug."""

from __future__ import annotations

import pytest

from convscope.text import format_table, slugify, table_lines


def test_columns_are_padded_to_their_longest_cell_and_aligned_as_asked():
    table = format_table(["model", "params"], [["mlp_512", "669,706"], ["cnn_single", "216,650"]], align="lr")

    assert table.split("\n") == ["model        params", "mlp_512     669,706", "cnn_single  216,650"]


def test_a_left_aligned_last_column_is_not_padded_and_trailing_spaces_go_unless_kept():
    rows = [["a", "long description"], ["bb", ""]]

    assert table_lines(["x", "y"], rows) == ["x   y", "a   long description", "bb"]
    assert table_lines(["x", "y"], rows, strip_trailing=False) == ["x   y", "a   long description", "bb  "]
    assert table_lines(["x", "y"], rows, separator="    ")[1] == "a     long description"


def test_an_alignment_per_column_is_required():
    with pytest.raises(ValueError, match="align='lr'"):
        format_table(["a", "b", "c"], [], align="lr")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("mnist", "mnist"), ("my data/v2", "my-data-v2"), ("--x--", "x"), ("cnn_2conv", "cnn_2conv"), ("///", "run")],
)
def test_slugify_keeps_letters_digits_dash_and_underscore(text, expected):
    assert slugify(text) == expected


def test_slugify_falls_back_when_nothing_is_left():
    assert slugify("", fallback="data") == "data"
