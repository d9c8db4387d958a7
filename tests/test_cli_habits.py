"""CLI habits a person relies on: --config anywhere (or RECONCILE_CONFIG), `show` by any unique prefix,
one-line connection failures naming the host and the cause, `check` with the run's exit codes and
hints, allowed values in every enumerated config error, and a quiet cron mode."""

from __future__ import annotations

import json
import re

import click
import pytest
from click.testing import CliRunner
from conftest import API_KEY

from reconcile.cli import main
from reconcile.cli.common import hoist_global_options
from reconcile.config import parse_config
from reconcile.decide import classify as c
from reconcile.demo.embedded_mongo import free_port
from reconcile.errors import ConfigError


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


# --------------------------------------------------------------------------- --config anywhere


def test_global_options_after_a_subcommand_move_before_it():
    assert hoist_global_options(main, ["init", "--config", "x.toml"]) == ["--config", "x.toml", "init"]
    assert hoist_global_options(main, ["show", "2026", "--config=x.toml", "-v"]) == [
        "--config=x.toml",
        "-v",
        "show",
        "2026",
    ]
    # A value of the group's own option is not taken for the subcommand; `--` ends the options.
    assert hoist_global_options(main, ["--trigger", "runs", "show", "--", "--config"]) == [
        "--trigger",
        "runs",
        "show",
        "--",
        "--config",
    ]
    assert hoist_global_options(main, ["--since", "1h"]) == ["--since", "1h"]


def test_config_before_or_after_a_subcommand_or_from_the_environment(cli, db):
    for args, env in (
        (["init", "--config", str(cli.config)], None),  # was "No such option: --config"
        (["--config", str(cli.config), "init"], None),
        (["init"], {"RECONCILE_CONFIG": str(cli.config)}),
        (["check", f"--config={cli.config}"], None),
    ):
        result = invoke(*args, env=env)
        assert result.exit_code == 0, (args, result.output)
        assert "orders" in result.output
    missing = invoke("runs", "--config", str(cli.tmp_path / "nowhere.toml"))
    assert missing.exit_code == 2 and "nowhere.toml not found" in missing.output


def test_a_command_added_by_another_module_gets_the_config_path_too(cli, monkeypatch):
    @click.command("probe-config")
    @click.pass_context
    def probe(ctx: click.Context) -> None:
        """Says which config it would read."""
        click.echo(f"config: {ctx.obj['config_path']}")

    monkeypatch.setitem(main.commands, "probe-config", probe)
    assert invoke("probe-config", "--config", str(cli.config)).output == f"config: {cli.config}\n"
    assert invoke("probe-config", env={"RECONCILE_CONFIG": "from-env.toml"}).output == "config: from-env.toml\n"


# --------------------------------------------------------------------------- show by prefix


def test_show_takes_any_unique_prefix_and_says_ambiguous_or_no_run(cli, db, seed, t0):
    for now in ("2025-03-01T12:00:00", "2026-03-01T12:00:00"):
        result = cli("--now", now, "--since", "2h")
        assert result.exit_code == 0, result.output
    shown = invoke("--config", str(cli.config), "show", "2025")  # 4 characters: was "no run"
    assert shown.exit_code == 0, shown.output
    assert "run           20250301T12" in shown.output
    ambiguous = invoke("show", "20", "--config", str(cli.config))
    assert ambiguous.exit_code == 2
    assert ambiguous.output.strip().splitlines()[-1] == (
        "reconcile: error: ambiguous: 2 runs match '20'; give more of the id (see `reconcile runs`)"
    )
    missing = invoke("show", "19", "--config", str(cli.config))
    assert missing.exit_code == 2 and "no run '19' in the history" in missing.output


# --------------------------------------------------------------------------- connection failures


def test_stripe_unreachable_is_one_line_naming_the_host_and_the_cause(cli, shop):
    port = free_port()
    cli.api_base = f"http://127.0.0.1:{port}"
    cli.configure(stripe={"max_network_retries": 0})
    result = cli()
    assert result.exit_code == 3
    last = result.stderr.strip().splitlines()[-1]
    # The window's lists are pulled side by side: the one refused first names the path (the other stops unasked).
    assert re.fullmatch(
        rf"reconcile: error: Stripe unavailable at /v1/(charges|balance_transactions): cannot reach "
        rf"127\.0\.0\.1:{port}: connection refused, after retries",
        last,
    ), last
    assert "support@stripe.com" not in result.output and "HTTPConnectionPool" not in result.output


def test_mongodb_unreachable_is_one_line_naming_the_host_and_the_cause(cli, monkeypatch):
    port = free_port()
    monkeypatch.setenv("MONGODB_URI", f"mongodb://reconcile:hunter2secret@127.0.0.1:{port}/?directConnection=true")
    cli.configure(mongodb={"server_selection_timeout": "300ms"})
    result = cli()
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1] == (
        f"reconcile: error: MongoDB unavailable while connecting: 127.0.0.1:{port}: connection refused; "
        "no server answered within 0.3s (mongodb.server_selection_timeout); nothing was changed"
    )
    assert "hunter2secret" not in result.output
    check = invoke("check", "--config", str(cli.config))  # the same code and line as a run
    assert check.exit_code == 3 and f"127.0.0.1:{port}: connection refused" in check.output


def test_check_with_a_rejected_key_exits_2_with_the_runs_hint(cli, monkeypatch):
    cli("init")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_wrongwrongwrong12345")
    run = cli()
    result = invoke("check", "--config", str(cli.config))
    assert run.exit_code == result.exit_code == 2, result.output
    assert "REJECTED" in result.output and "check the key in the environment variable" in result.output
    assert "permission" not in result.output  # was: "give it the permission named", for every endpoint
    assert "wrongwrong" not in result.output


def test_check_exits_3_when_stripe_is_unreachable(cli, stripe_server):
    cli("init")
    stripe_server.close()
    cli.configure(stripe={"max_network_retries": 0})
    result = invoke("check", "--config", str(cli.config))
    assert result.exit_code == 3, result.output
    assert "UNREACHABLE" in result.output and "init" not in result.output and "support@" not in result.output


# --------------------------------------------------------------------------- enumerated config values

MINIMAL = {
    "stripe": {"api_key_env": "K"},
    "mongodb": {"uri_env": "U", "database": "d", "orders_collection": "o"},
}


@pytest.mark.parametrize(
    "section, values, allowed",
    [
        ("email", {"send": False}, "always, on_discrepancy, never"),
        ("email", {"send": "on-discrepancy"}, "always, on_discrepancy, never"),
        ("email", {"security": 465}, "starttls, tls, none"),
        ("email", {"security": "ssl"}, "starttls, tls, none"),
        ("matching", {"link_by": "charge_metadata"}, "charge_metadata, payment_intent_metadata, checkout_session"),
        ("matching", {"link_by": ["metadata"]}, "charge_metadata, payment_intent_metadata, checkout_session"),
    ],
)
def test_every_enumerated_value_error_lists_the_allowed_values(section, values, allowed):
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL | {section: values})
    assert allowed in str(caught.value)
    assert "non-empty string" not in str(caught.value) and "is not set" not in str(caught.value)


# --------------------------------------------------------------------------- quiet, log file


def test_quiet_prints_nothing_when_all_is_well_and_the_summary_when_not(cli, shop, db):
    log = cli.tmp_path / "logs" / "reconcile.log"
    oid = shop.order(c.REPAIRED)
    shop.charge(oid)
    clean = cli("--quiet", "--log-file", str(log))
    assert clean.exit_code == 0, clean.output
    assert clean.output == ""  # cron mails nothing
    assert "run.done" in {json.loads(line)["step"] for line in log.read_text().splitlines()}
    shop.charge(None, amount=990)  # an orphan charge: needs a person
    found = cli("--quiet", "--log-file", str(log), "--since", "1d")
    assert found.exit_code == 1
    assert "needs attention: 1" in found.stdout and found.stderr == "(exit 1)\n"


def test_an_unwritable_log_file_is_one_line_and_exit_2(cli, tmp_path):
    (tmp_path / "file").write_text("")
    result = cli("--log-file", str(tmp_path / "file" / "reconcile.log"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"reconcile: error: --log-file {tmp_path / 'file' / 'reconcile.log'}: cannot append to it: File exists "
        f"({tmp_path / 'file'})"
    ]


def test_api_key_is_not_in_any_line(cli):
    assert API_KEY not in invoke("check", "--config", str(cli.config)).output
