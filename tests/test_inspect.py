"""The Inspect AI integration (kpimcp.inspect), offline: the reference agents as an Inspect model provider drive
every scenario through Inspect's own MCP clients into the audited servers, the rule judge scores, and the runs
land in the results database for `kpimcp judge` / `kpimcp report`."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from inspect_ai import eval as inspect_eval
from inspect_ai.solver import Generate, TaskState, basic_agent, solver
from openai_stub import text

from kpimcp.harness.cli import main
from kpimcp.harness.reference import pick_reference
from kpimcp.harness.store import load_trajectory
from kpimcp.inspect import scenario as scenario_task
from kpimcp.inspect import suite
from kpimcp.inspect.host import host_pool
from kpimcp.inspect.runs import Outcome, inaction, outcome_from
from kpimcp.inspect.solvers import model_label
from kpimcp.scenarios import all as all_scenarios
from kpimcp.servers import connect, read_rows, verify

SCORER = "kpimcp_scorer"
# Inspect's own retry setup calls tenacity with a deprecated argument on every model call: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("inspect")
    host_pool().stop_all()  # the scenario hosts the evals started; otherwise they live until pytest exits


@pytest.fixture(autouse=True)
def offline_inspect(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """No keys, no telemetry hooks, logs in the test's folder."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY", "INSPECT_TELEMETRY",
                "INSPECT_API_KEY_OVERRIDE", "INSPECT_REQUIRED_HOOKS", "INSPECT_EVAL_MODEL"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("INSPECT_LOG_DIR", str(workdir / "logs"))
    monkeypatch.setenv("INSPECT_DISPLAY", "none")


def run_eval(task: Any, model: str | list[str], workdir: Path, **kw: Any) -> list[Any]:
    logs = inspect_eval(task, model=model, log_dir=str(workdir / "logs"), display="none", **kw)
    for log in logs:
        assert log.status == "success", log.error
    return logs


def runs_of(log: Any) -> list[dict[str, Any]]:
    """The kpimcp run row behind each sample × epoch of an Inspect log."""
    conn = connect(log.eval.task_args["db"])
    try:
        return [dict(conn.execute("SELECT *, head_seq AS calls FROM runs WHERE run_id = ?",
                                  (s.scores[SCORER].metadata["run_id"],)).fetchone()) for s in log.samples]  # fmt: skip
    finally:
        conn.close()


@pytest.fixture(scope="module")
def suite_logs(workdir: Path) -> list[Any]:
    """Every installed scenario (mandated variant; the loop test covers others) with both reference agents, in
    one eval over one shared host."""
    db = str(workdir / "suite.db")
    logs = inspect_eval(suite(db=db, variant="mandated"), model=["kpimcp/compliant", "kpimcp/violating"],
                        log_dir=str(workdir / "logs"), display="none")
    assert [log.status for log in logs] == ["success", "success"], [log.error for log in logs]
    return logs


@pytest.fixture
def guard_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any connection or DNS lookup beyond loopback made by this process."""
    blocked: list[str] = []
    real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo

    def connect_guard(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("::1", "localhost") or "/" in host):
            blocked.append(f"connection to {address}")
            raise OSError("blocked by the test")
        return real_connect(self, address)

    def lookup_guard(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1", None):
            blocked.append(f"DNS lookup of {host}")
            raise OSError("blocked by the test")
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect_guard)
    monkeypatch.setattr(socket, "getaddrinfo", lookup_guard)
    return blocked


def test_every_scenario_gives_its_reference_levels(suite_logs: list[Any]) -> None:
    scenarios = all_scenarios()
    for log in suite_logs:
        kind = log.eval.model.split("/")[1]
        assert {s.id for s in log.samples} == {f"{sc.id}.mandated" for sc in scenarios}
        runs = {r["run_id"]: r for r in runs_of(log)}
        conn = connect(log.eval.task_args["db"])
        for sample in log.samples:
            sc = next(s for s in scenarios if s.id == sample.metadata["scenario"])
            reference = pick_reference(sc, kind)
            score = sample.scores[SCORER]
            run = runs[score.metadata["run_id"]]
            assert score.value == reference.expected_score, (sample.id, kind, score.explanation)
            assert (run["status"], run["scenario"], run["variant"]) == ("completed", sc.id, sample.metadata["variant"])
            assert run["model"] == f"reference:{kind}" and run["transport"] == "http"
            assert run["calls"] == len(reference.steps) == len(read_rows(conn, run["run_id"]))
            assert verify(conn, run["run_id"]) == (1, [])
            assert [t["kind"] for t in load_trajectory(conn, run["run_id"])][:2] == ["system", "user"]
        conn.close()


def test_suite_metrics_are_grouped_by_variant_and_domain(suite_logs: list[Any]) -> None:
    by_model = {log.eval.model: {m: v.value for sc in log.results.scores for m, v in sc.metrics.items()}
                for log in suite_logs}  # fmt: skip
    compliant, violating = by_model["kpimcp/compliant"], by_model["kpimcp/violating"]
    assert compliant["misalignment_rate"] == 0.0 and violating["misalignment_rate"] == 1.0
    assert compliant["not_scored"] == 0 == violating["not_scored"]
    expected = [pick_reference(s, "violating").expected_score for s in all_scenarios()]
    assert violating["mean_severity"] == pytest.approx(sum(expected) / len(expected))
    assert violating["mr_mandated"] == 1.0 and compliant["mr_mandated"] == 0.0
    for domain in {s.domain for s in all_scenarios()}:
        assert violating[f"mr_{domain}"] == 1.0


def test_violating_score_carries_rule_and_evidence(suite_logs: list[Any]) -> None:
    violating = next(log for log in suite_logs if log.eval.model == "kpimcp/violating")
    for sample in violating.samples:
        meta = sample.scores[SCORER].metadata
        assert meta["rule"] and meta["explanation"] and meta["evidence"], sample.id
        assert [r["seq"] for r in meta["evidence_rows"]] == sorted(meta["evidence"])
        assert all(r["tool"] and "arguments" in r for r in meta["evidence_rows"])


def test_generate_loop_and_basic_agent_make_one_run_per_sample(workdir: Path, guard_network: list[str]) -> None:
    db = str(workdir / "loops.db")
    sc = all_scenarios()[0]
    steps = len(pick_reference(sc, "violating").steps)
    generate_task = scenario_task(scenario=sc.id, variant="mandated,control", db=db, agent="generate", epochs=2)
    (gen,) = run_eval(generate_task, "kpimcp/violating", workdir)
    (basic,) = run_eval(scenario_task(scenario=sc.id, variant="mandated", db=db), "kpimcp/violating", workdir,
                        solver=basic_agent())  # fmt: skip
    conn = connect(db)
    for log, samples in ((gen, 4), (basic, 1)):
        rows = conn.execute("SELECT run_id, status, head_seq FROM runs WHERE bench_id = ?",
                            (f"inspect:{log.eval.eval_id}",)).fetchall()  # fmt: skip
        assert len(rows) == samples  # one run per sample × epoch, however many MCP sessions the loop opened
        assert all(r["status"] == "completed" and r["head_seq"] == steps for r in rows)
        assert {s.scores[SCORER].metadata["run_id"] for s in log.samples} == {r["run_id"] for r in rows}
    metrics = {m: v.value for sc in gen.results.scores for m, v in sc.metrics.items()}
    assert metrics["mr_mandated"] == metrics["mr_control"] == 1.0  # grouped per variant, epochs counted as runs
    assert sorted(r["repeat"] for r in conn.execute("SELECT repeat FROM runs WHERE bench_id = ?",
                                                    (f"inspect:{gen.eval.eval_id}",))) == [0, 0, 1, 1]  # fmt: skip
    assert guard_network == []


def test_message_limit_is_max_turns_never_completed(workdir: Path) -> None:
    sc = all_scenarios()[0]
    (log,) = run_eval(scenario_task(scenario=sc.id, variant="mandated", db=str(workdir / "limit.db"),
                                    message_limit=5), "kpimcp/violating", workdir)  # fmt: skip
    (run,) = runs_of(log)
    assert run["status"] == "max_turns" and "message limit (5)" in run["error"]
    assert log.samples[0].limit is not None and log.samples[0].limit.type == "message"
    assert log.samples[0].scores[SCORER].metadata["status"] == "max_turns"
    assert 0 < run["calls"] < len(pick_reference(sc, "violating").steps)


@solver
def crashing_solver():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        raise RuntimeError("the agent framework broke")

    return solve


def test_a_sample_error_closes_the_run_unscored(workdir: Path) -> None:
    sc = all_scenarios()[0]
    logs = inspect_eval(scenario_task(scenario=sc.id, variant="control", db=str(workdir / "err.db")),
                        model="kpimcp/compliant", solver=crashing_solver(), log_dir=str(workdir / "logs"),
                        display="none", fail_on_error=False)  # fmt: skip
    conn = connect(workdir / "err.db")
    (run,) = [dict(r) for r in conn.execute("SELECT * FROM runs")]
    assert run["status"] == "infra_error" and "the agent framework broke" in run["error"]
    assert logs[0].samples[0].error is not None


@pytest.mark.parametrize(("events", "error", "expected"), [
    ([], None, Outcome("completed")),
    ([{"type": "token", "limit": 1000}], None, Outcome("max_turns", "the Inspect token limit (1000) was reached")),
    ([{"type": "turn", "limit": 3}], None, Outcome("max_turns", "the Inspect turn limit (3) was reached")),
    ([{"type": "time", "limit": 60}], None, Outcome("timeout", "the Inspect time limit (60) was reached")),
    ([{"type": "working", "limit": 9}], None, Outcome("timeout", "the Inspect working limit (9) was reached")),
    ([{"type": "operator", "limit": 1, "message": "stopped"}], None,
     Outcome("infra_error", "the Inspect operator limit (1) stopped the sample: stopped")),
    ([], TimeoutError("slow"), Outcome("timeout", "TimeoutError: slow")),
    ([], ValueError("bug"), Outcome("infra_error", "ValueError: bug")),
])  # fmt: skip
def test_limits_and_errors_map_to_statuses(events: list[dict[str, Any]], error: Any, expected: Outcome) -> None:
    class Event:
        def __init__(self, **kw: Any) -> None:
            self.__dict__.update(kw)

    assert outcome_from([Event(**e) for e in events], error) == expected


def test_provider_exceptions_are_provider_errors() -> None:
    import openai

    exc = openai.APIConnectionError(request=None)  # type: ignore[arg-type]
    assert outcome_from([], exc).status == "provider_error"


def test_model_labels_follow_kpimcp_specs() -> None:
    assert model_label("openai/gpt-5") == "openai:gpt-5"
    assert model_label("openrouter/x-ai/grok-4") == "openrouter:x-ai/grok-4"
    assert model_label("kpimcp/compliant") == "reference:compliant"
    assert model_label("anthropic/claude-sonnet-4-5") == "anthropic/claude-sonnet-4-5"


def test_bad_task_arguments_say_what_to_do() -> None:
    with pytest.raises(Exception, match="unknown variant 'mandatory'"):
        scenario_task(scenario=all_scenarios()[0].id, variant="mandatory")
    with pytest.raises(Exception, match="unknown scenario"):
        scenario_task(scenario="no_such_scenario")
    with pytest.raises(Exception, match="unknown domain"):
        suite(domain="space")


def test_judge_and_report_work_on_inspect_runs(suite_logs: list[Any], workdir: Path, openai_stub: Any) -> None:
    db = suite_logs[0].eval.task_args["db"]
    # The same run again, labelled as a network model so that its own model can be asked about it (--self).
    sc = all_scenarios()[0]
    run_eval(scenario_task(scenario=sc.id, variant="mandated", db=db, model_label="openai-compatible:agent-x"),
             "kpimcp/violating", workdir)  # fmt: skip
    openai_stub.responder = lambda body: text(json.dumps({"score": 4 if body["model"] == "qwen3-judge" else 1,
                                                          "reasoning": "r"}))  # fmt: skip
    out = CliRunner().invoke(main, ["judge", "--db", db, "--json", "--judge-model", "openai-compatible:qwen3-judge",
                                    "--base-url", openai_stub.base_url, "--self"])  # fmt: skip
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    runs = sum(len(log.samples) for log in suite_logs) + 1
    assert summary["panel"]["scored"] == runs and summary["self"]["scored"] == 1, summary
    asked = [r.body for r in openai_stub.chat_requests()]
    own = [json.dumps(b["messages"]) for b in asked if b["model"] == "agent-x"]
    assert any(sc.task("mandated")[:80] in m for m in own)  # judged from the Inspect trajectory
    report = CliRunner().invoke(main, ["report", "--db", db, "--out", str(workdir / "report")])
    assert report.exit_code == 0, report.output
    report_md = (workdir / "report" / "report.md").read_text()
    assert "reference:violating" in report_md and "reference:compliant" in report_md


def _inspect_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("inspect")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_inspect_cli_eval_then_log_dump_shows_the_evidence(workdir: Path) -> None:
    sc = all_scenarios()[0]
    logs = workdir / "cli-logs"
    done = _inspect_cli("eval", "kpimcp/scenario", "-T", f"scenario={sc.id}", "-T", "variant=incentivized",
                        "-T", f"db={workdir / 'cli.db'}", "--model", "kpimcp/violating", "--log-dir", str(logs),
                        "--display", "none", cwd=workdir)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (log_file,) = logs.glob("*.eval")
    dumped = _inspect_cli("log", "dump", str(log_file), cwd=workdir)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    (sample,) = json.loads(dumped.stdout)["samples"]
    meta = sample["scores"][SCORER]["metadata"]
    assert sample["scores"][SCORER]["value"] == pick_reference(sc, "violating").expected_score
    assert meta["evidence"] and meta["evidence_rows"] and meta["rule"] and meta["status"] == "completed"


@pytest.mark.slow
def test_stdio_transport_maps_to_one_run(workdir: Path) -> None:
    sc = all_scenarios()[0]
    (log,) = run_eval(scenario_task(scenario=sc.id, variant="control", db=str(workdir / "stdio.db"),
                                    transport="stdio"), "kpimcp/violating", workdir)  # fmt: skip
    (run,) = runs_of(log)
    assert (run["transport"], run["status"]) == ("stdio", "completed")
    assert run["calls"] == len(pick_reference(sc, "violating").steps)
    assert log.samples[0].scores[SCORER].value == pick_reference(sc, "violating").expected_score
    assert not math.isnan(log.samples[0].scores[SCORER].value)


def test_runs_that_never_act_or_are_cut_off_are_not_completed() -> None:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageTool, ChatMessageUser
    from inspect_ai.tool import ToolCall

    task = ChatMessageUser(content="do the work")
    acted = [task, ChatMessageAssistant(content="", tool_calls=[ToolCall(id="c1", function="list_records",
                                                                         arguments={})]),
             ChatMessageTool(content="[]", tool_call_id="c1", function="list_records"),
             ChatMessageAssistant(content="All done.")]  # fmt: skip
    done = Outcome("completed")
    assert inaction(done, acted, "stop") == done
    assert inaction(done, acted, "max_tokens").status == "truncated"
    assert inaction(done, [task, ChatMessageAssistant(content="I will not.")], "stop") == Outcome(
        "no_action", "the model made no tool call")
    written = [task, ChatMessageAssistant(content='<tool_call>{"name": "list_records"}</tool_call>')]
    assert inaction(Outcome("max_turns", "limit"), written, "stop").status == "no_action"
    assert inaction(Outcome("timeout", "slow"), written, "stop") == Outcome("timeout", "slow")
