"""CSV bytes: RFC 4180 quoting only where needed, UTF-8, \\n, cell formatting."""

import pytest

from stream.formats.csvfile import format_cell, render_csv


def test_header_only_when_empty() -> None:
    assert render_csv(["amplitudeID", "userID"], [[], []]) == b"amplitudeID,userID\n"


def test_fields_are_quoted_only_when_needed() -> None:
    data = render_csv(
        ["amplitudeID", "userID", "note"],
        [
            ["1", "2", "3", "4"],
            ["plain", "a,b", 'say "hi"', None],
            ["line\nbreak", "cr\rx", "", "ünïcødé ✓"],
        ],
    )
    assert (
        data
        == (
            "amplitudeID,userID,note\n"
            '1,plain,"line\nbreak"\n'
            '2,"a,b","cr\rx"\n'
            '3,"say ""hi""",\n'
            "4,,ünïcødé ✓\n"
        ).encode()
    )


def test_header_names_are_quoted_too() -> None:
    assert render_csv(["a,b", "c"], [["1"], ["2"]]) == b'"a,b",c\n1,2\n'


@pytest.mark.parametrize(
    "value, cell",
    [
        (None, None),
        ("x", "x"),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (2.5, "2.5"),
        (1e20, "1e+20"),
        ([1, "a", None], '[1,"a",null]'),
        ({"k": {"é": 1}}, '{"k":{"é":1}}'),
    ],
)
def test_cells_are_formatted_as_json_writes_them(value: object, cell: str | None) -> None:
    assert format_cell(value) == cell


def test_mismatched_header_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        render_csv(["a"], [["1"], ["2"]])
