"""Shared reader helpers: grade parsing, CSV rows, natural order."""

import pytest

from drscreen.data.readers.common import natural_key, parse_grade, read_csv_rows


@pytest.mark.parametrize("text, grade", [("0", 0), ("4", 4), (" 3 ", 3), ("2.0", 2)])
def test_parse_grade_accepts_integral_values(text, grade):
    assert parse_grade(text) == grade


@pytest.mark.parametrize(
    "text, reason",
    [
        (None, "missing"),
        ("", "missing"),
        ("abc", "not a number"),
        ("2.5", "not an integer"),
        ("7", "not an ICDR grade"),
        ("-1", "not an ICDR grade"),
        ("2.9999999999999999", "not an integer"),  # float() rounds it to 3.0
        ("1e0", "not an integer"),
        ("\u0663", "not written with the digits 0-9"),  # ARABIC-INDIC DIGIT THREE
        ("\uff13", "not written with the digits 0-9"),  # FULLWIDTH DIGIT THREE
    ],
)
def test_parse_grade_rejects_with_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_grade(text)


def test_read_csv_rows_strips_bom_header_spaces_and_blank_rows(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("\ufeffImage name , grade ,,\n a ,1,,\n,,,\nb,2\n", encoding="utf-8")
    rows = read_csv_rows(path, ("Image name", "grade"))
    assert [(r.source, r.values["Image name"], r.values["grade"]) for r in rows] == [
        (f"{path}:2", "a", "1"),
        (f"{path}:4", "b", "2"),
    ]


def test_read_csv_rows_names_missing_columns(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("image,grade\n")
    with pytest.raises(ValueError, match=r"labels.csv: header \['image', 'grade'\] lacks.*'level'"):
        read_csv_rows(path, ("image", "level"))


@pytest.mark.parametrize(
    "content, encoding, message",
    [
        ("", "utf-8", r"labels.csv: empty file; expected a header row with image,level"),
        ("image;level\n1_left;2\n", "utf-8", r"lacks column\(s\) \['image', 'level'\] \(its "
         r"header is separated by ';', expected ','\)"),
        ("image,level\nélodie_left,2\n", "latin-1", r"labels.csv: not UTF-8 text \(byte 0xe9 at "
         r"offset 12\); save the label file as UTF-8"),
        ("image,level\n" + "x" * 200_000, "utf-8", r"labels.csv: not a readable CSV file \(field"),
    ],
)  # fmt: skip
def test_read_csv_rows_names_the_file_and_what_is_wrong(tmp_path, content, encoding, message):
    """An empty, ';'-separated, Latin-1 or oversized label file is a ValueError naming it."""
    path = tmp_path / "labels.csv"
    path.write_bytes(content.encode(encoding))
    with pytest.raises(ValueError, match=message):
        read_csv_rows(path, ("image", "level"))


def test_natural_key_orders_numbers_by_value():
    names = ["10_left", "2_right", "2_left", "1_left"]
    assert sorted(names, key=natural_key) == ["1_left", "2_left", "2_right", "10_left"]
