"""Every bad option value ends the command with exit status 2 and one line naming the option and the range."""

from __future__ import annotations

import argparse
import math

import pytest

from knnserve.cli import build_parser, main
from knnserve.cli.options import Ranged


def _ranged_options() -> list[tuple[str, str, Ranged]]:
    """(command words, option, its type) for every option of every command that takes a ranged number."""
    found: list[tuple[str, str, Ranged]] = []

    def walk(parser: argparse.ArgumentParser, words: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{words} {name}".strip())
            elif isinstance(action.type, Ranged) and action.option_strings:
                found.append((words, action.option_strings[0], action.type))

    walk(build_parser(), "")
    return found


def _bad_values(kind: Ranged) -> list[str]:
    values = ["not-a-number"]
    if kind.low != -math.inf:
        values.append(str(kind.low if kind.low_open else kind.low - 1))
    if kind.high is not None:
        values.append(str(kind.high + 1))
    return values


RANGED = _ranged_options()


def test_the_commands_have_ranged_options() -> None:
    names = {(words, option) for words, option, _ in RANGED}
    assert ("serve", "--batch-wait-fraction") in names and ("serve", "--port") in names
    assert ("train", "--k") in names and ("evaluate", "--repeats") in names and ("tune", "--target-recall") in names
    assert len(RANGED) >= 40


@pytest.mark.parametrize(("words", "option", "kind"), RANGED, ids=[f"{w} {o}" for w, o, _ in RANGED])
def test_out_of_range_values_exit_2_with_one_line(words: str, option: str, kind: Ranged,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for bad in _bad_values(kind):
        with pytest.raises(SystemExit) as exit_info:
            main([*words.split(), option, bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"knnserve {words}: error: argument {option}" in err and kind.describe() in err and bad in err


def test_the_issue_example_names_the_option_and_the_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", "m", "--batch-wait-fraction", "20"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "knnserve serve: error: argument --batch-wait-fraction: expected a number between 0 and 10, got 20 "
        "(see knnserve serve --help)\n"
    )


def test_option_combinations_checked_after_parsing_are_one_line_too(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model", str(tmp_path), "--tls-cert", str(tmp_path / "c.pem")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("knnserve serve: error: --tls-cert/--tls-key: expected both or neither") and err.count("\n") == 1
    assert main(["classify", "--server", "127.0.0.1:1", "--model", "m", "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "o.csv"), "--token-env", "KNNSERVE_TEST_UNSET_VARIABLE"]) == 2
    assert "KNNSERVE_TEST_UNSET_VARIABLE" in capsys.readouterr().err


def test_a_server_that_is_down_is_exit_3_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--server", "127.0.0.1:1", "--timeout", "2"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("knnserve models: error: the server call failed: UNAVAILABLE") and err.count("\n") == 1


def test_help_states_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "3 a call to the server failed" in capsys.readouterr().out


def test_serve_takes_its_addresses_from_the_environment_the_options_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from knnserve.cli.serve import apply_environment

    parser = build_parser()
    monkeypatch.setenv("KNNSERVE_PORT", "6000")
    monkeypatch.setenv("KNNSERVE_METRICS_PORT", "9200")
    monkeypatch.setenv("KNNSERVE_HOST", "0.0.0.0")
    args = parser.parse_args(["serve", "--model", "m", "--port", "7000"])
    apply_environment(args)
    assert (args.host, args.port, args.metrics_port, args.metrics_host) == ("0.0.0.0", 7000, 9200, "127.0.0.1")
    for name in ("KNNSERVE_PORT", "KNNSERVE_METRICS_PORT", "KNNSERVE_HOST"):
        monkeypatch.delenv(name)
    args = parser.parse_args(["serve", "--model", "m"])
    apply_environment(args)
    assert (args.host, args.port, args.metrics_port) == ("127.0.0.1", 50051, None)


def test_a_bad_port_in_the_environment_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KNNSERVE_METRICS_PORT", "99999")
    assert main(["serve", "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("knnserve serve: error: environment variable KNNSERVE_METRICS_PORT: expected an integer between")
    assert "99999" in err and err.count("\n") == 1


def test_serve_takes_the_http_port_from_the_environment_and_its_host_defaults_to_the_grpc_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from knnserve.cli.serve import apply_environment
    from knnserve.service.config import ServeConfig

    parser = build_parser()
    for name in ("KNNSERVE_HTTP_PORT", "KNNSERVE_HTTP_HOST", "KNNSERVE_HOST"):
        monkeypatch.delenv(name, raising=False)
    args = parser.parse_args(["serve", "--model", "m"])
    apply_environment(args)
    assert (args.http_port, args.http_host) == (None, None)  # off unless asked for
    monkeypatch.setenv("KNNSERVE_HTTP_PORT", "8000")
    args = parser.parse_args(["serve", "--model", "m", "--host", "0.0.0.0"])
    apply_environment(args)
    assert args.http_port == 8000
    config = ServeConfig(model_dir=tmp_path, host=args.host, http_port=args.http_port, http_host=args.http_host)
    assert config.rest_host == "0.0.0.0"
    assert ServeConfig(model_dir=tmp_path, http_port=8000, http_host="127.0.0.2").rest_host == "127.0.0.2"
    args = parser.parse_args(["serve", "--model", "m", "--http-port", "8001", "--http-host", "::1"])
    apply_environment(args)
    assert (args.http_port, args.http_host) == (8001, "::1")
    monkeypatch.delenv("KNNSERVE_HTTP_PORT")
    assert main(["serve", "--model", str(tmp_path), "--port", "7000", "--http-port", "7000"]) == 2
    assert "http_port: expected a port other than the gRPC port 7000, got 7000" in capsys.readouterr().err
    monkeypatch.setenv("KNNSERVE_HTTP_PORT", "70000")
    assert main(["serve", "--model", str(tmp_path)]) == 2
    assert "environment variable KNNSERVE_HTTP_PORT: expected an integer between" in capsys.readouterr().err
