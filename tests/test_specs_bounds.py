"""Specs cannot exhaust the machine: YAML bombs, deep nesting, huge documents and numbers,
duplicate keys, unreadable files, and intervals or steps that would size a plan or a tick
table absurdly are refused with a SpecError naming the place, quickly and in little memory.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from rolloutlab._yaml import MAX_DOCUMENT_BYTES, load_yaml
from rolloutlab.errors import SpecError
from rolloutlab.specs import Spec

#: A "billion laughs" like the issue's 415 bytes: 9**9 "lol"s once its aliases are expanded.
BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BOMB, r"line \d+: larger than 100000 values.*aliases"),
        ("a: &a [*a]\n", "aliases"),
        ("[" * 1_000_000 + "]" * 1_000_000, "line 1: nested more than 64 levels deep"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested more than 64 levels deep"),
        ("- " * 10_000 + "x", "nested more than 64 levels deep"),
        ("threshold: " + "9" * 5000, r"line 1: the number 9999.* more than 40 characters"),
        ("threshold: 1e999999", "threshold: expected a whole number"),
        ("maxWeight: .inf", "maxWeight: expected a finite number"),
        (
            "threshold: 5\nstepWeight: 10\nthreshold: 6\n",
            r"line 3: key 'threshold' is given twice \(first on line 1\)",
        ),
        ("stepWeight: 1.0e-300", "stepWeight: 1e-300 is too small a step"),
        ("interval: 1ms", "interval: 0.001 is out of range. Use between 1s and"),
        ("interval: 1e300", "longer than 100 years"),
        ("interval: 10000000000000000h", "longer than 100 years"),
        ("iterations: 1000000000000", r"iterations: 1e\+12 is out of range"),
        (
            "metrics:\n- name: x\n  metric: x\n  kind: gauge\n  interval: 100us\n",
            "metric 'x' interval: 0.0001 is out of range",
        ),
        ("x" * (MAX_DOCUMENT_BYTES + 1), "more than the 4194304 a spec may have"),
    ],
)
def test_hostile_specs_are_spec_errors(text, expected):
    with pytest.raises(SpecError, match=expected) as info:
        Spec.from_yaml(text)
    assert len(str(info.value)) < 600  # the bomb once printed a 312 MB message


def test_the_bomb_is_refused_in_little_time_and_memory():
    # A child process with a 1 GiB address-space cap: expanding the bomb would need more.
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from rolloutlab.specs import Spec\n"
        "from rolloutlab.errors import SpecError\n"
        "try:\n    Spec.from_yaml(sys.argv[1])\n"
        "except SpecError as exc:\n    print('refused', len(str(exc)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, BOMB], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("refused")
    assert len(BOMB.encode()) < 450


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"threshold: 5\nname: caf\xe9\n", r"not UTF-8 text \(byte 0xe9 at offset 22\)"),
        (b"threshold: 5\n" + b"#" * (MAX_DOCUMENT_BYTES + 1), "bytes, more than the"),
    ],
)
def test_unreadable_spec_files_are_spec_errors(tmp_path, content, expected):
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=expected):
        Spec.load(path)


def test_a_folder_named_like_a_file_is_read_as_a_folder(tmp_path):
    (tmp_path / "spec.yaml").mkdir()
    with pytest.raises(SpecError, match="no .yaml, .yml, .json files in this folder"):
        Spec.load(tmp_path / "spec.yaml")


def test_merge_keys_are_not_duplicates_and_sane_specs_still_load():
    docs = load_yaml("base: &b {x: 1, y: 2}\nover: {<<: *b, y: 3}\n", "<yaml>")
    assert docs == [{"base": {"x": 1, "y": 2}, "over": {"x": 1, "y": 3}}]
    spec = Spec.from_yaml("interval: 1s\nstepWeight: 0.1\n")
    assert spec.interval_s == 1.0 and spec.step_weight == 0.1


def test_a_scalar_where_a_mapping_belongs_is_a_spec_error():
    rollout = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: app}\n"
        "spec: {strategy: {canary: 5}}\n"
    )
    with pytest.raises(SpecError, match=r"Rollout app .*: a field has the wrong shape"):
        Spec.from_yaml(rollout)


def test_a_queries_file_is_read_within_the_same_bounds(tmp_path):
    from rolloutlab.sources.prometheus import load_queries

    path = tmp_path / "queries.yaml"
    path.write_text(BOMB)
    with pytest.raises(SpecError, match="aliases"):
        load_queries(path)
    path.write_text("queries:\n  requests: a\n  requests: b\n")
    with pytest.raises(SpecError, match="key 'requests' is given twice"):
        load_queries(path)
