"""The DAG comparison's ratios: measured for the full audience, scaled for a smaller one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

from run import EMPTY_DAG, HTTP_OPERATOR_DAG, OPERATOR_DAG, dag_ratio, dag_table  # noqa: E402

ARGS = argparse.Namespace(dag_profiles=1000)
WALLS = {EMPTY_DAG: [5.0], HTTP_OPERATOR_DAG: [65.0], OPERATOR_DAG: [5.2, 5.0, 6.0]}


def test_dag_ratio_full_audience_uses_medians() -> None:
    assert dag_ratio(ARGS, 1000, WALLS, HTTP_OPERATOR_DAG) == "12.5"


def test_dag_ratio_scales_only_above_empty() -> None:
    walls = {**WALLS, HTTP_OPERATOR_DAG: [17.0]}

    ratio = dag_ratio(ARGS, 200, walls, HTTP_OPERATOR_DAG)

    # 5.0 + (17.0 - 5.0) * 5 = 65.0 seconds for 1,000 profiles, against 5.2.
    assert ratio == "12.5 (estimated from 200 profiles)"


def test_dag_table_shows_cold_and_warm() -> None:
    plans = {EMPTY_DAG: (0, 1), HTTP_OPERATOR_DAG: (1000, 1), OPERATOR_DAG: (1000, 3)}
    warm = {EMPTY_DAG: [0.1], HTTP_OPERATOR_DAG: [60.0], OPERATOR_DAG: [0.3, 0.4, 0.5]}

    lines = dag_table(ARGS, plans, WALLS, warm)

    http_row = next(line for line in lines if HTTP_OPERATOR_DAG in line)
    assert "| 65.0 (65.0-65.0) | 60.00 (60.00-60.00) | 12.5 | 150.0 |" in http_row
