"""The benchmark harness: `kpimcp bench` and the command line.

Modules: `models` (model specs, OpenAI clients), `retry` (retry policy for model requests), `config` (run
files), `plan` (cells, resume), `host` (the long-lived scenario host), `agent` (one agent run → status and
trajectory), `reference` (offline reference agents), `store` (bench, run and trajectory tables), `bench`
(orchestration), `display` and `cli_bench` (terminal output), `replay` (reference runs in-process), `cli`.
Nothing is imported here, so `kpimcp --help` stays fast.
"""

__all__: list[str] = []
