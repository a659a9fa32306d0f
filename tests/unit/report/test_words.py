"""Parameters are shown to people in words, never as Python reprs (issue 18, item 4)."""

from __future__ import annotations

from aisec.report.words import params_words


def test_nested_parameters_read_as_words() -> None:
    p = {"attack": "badnets", "trigger": {"kind": "patch", "size": 3, "position": "bottom-right"},
         "eps": 8 / 255, "targeted": False, "quantize": True, "input_scaling": {"method": "minmax"},
         "classes": [0, 7], "poison_rate": 0.1}
    text = params_words(p)
    assert text == ("attack badnets · trigger: patch, size 3, position bottom-right · eps 8/255 · "
                    "classes 0, 7 · poison rate 0.1")
    for raw in ("{", "}", "'", "=", "[", "True", "False"):
        assert raw not in text, raw


def test_empty_and_off_values_are_left_out() -> None:
    assert params_words({"targeted": False, "note": "", "extra": {}, "steps": 10}) == "steps 10"


def test_the_report_and_the_console_say_a_parameter_alike() -> None:
    """One formatter: the report's words are the console's, with another separator."""
    from aisec.core.words import plain_params

    p = {"attack": "pgd", "eps": 2 / 255, "steps": 100, "rate": 0.123456}
    assert params_words(p) == plain_params(p).replace(", ", " · ") == "attack pgd · eps 2/255 · steps 100 · rate 0.1235"
